import { randomBytes } from 'node:crypto'

/** A `multipart/mixed` body (RFC 2046) with one part per sibling, as Riak answers a read with siblings. */
export interface Multipart {
  /** The Content-Type header, boundary included. */
  readonly contentType: string
  readonly body: Buffer
}

/**
 * Encodes sibling values as the parts of one `multipart/mixed` body. The boundary is random and
 * checked against every value, so no value can end its part early.
 */
export function encodeSiblings (siblings: readonly Uint8Array[]): Multipart {
  let boundary: string
  do boundary = `shoal-${randomBytes(12).toString('hex')}`
  while (siblings.some(v => Buffer.from(v.buffer, v.byteOffset, v.byteLength).includes(boundary)))
  const parts: Buffer[] = []
  siblings.forEach((value, i) => {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${value.byteLength}\r\nX-Shoal-Sibling: ${i + 1}\r\n\r\n`))
    parts.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength))
    parts.push(Buffer.from('\r\n'))
  })
  parts.push(Buffer.from(`--${boundary}--\r\n`))
  return { contentType: `multipart/mixed; boundary=${boundary}`, body: Buffer.concat(parts) }
}

/**
 * Splits a `multipart/mixed` body into its parts' bodies: for callers of the gateway (and its
 * tests) that want the siblings back as bytes.
 */
export function decodeSiblings (contentType: string, body: Uint8Array): Uint8Array[] {
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1]
  if (boundary === undefined) throw new Error(`no boundary in ${contentType}`)
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const delimiter = Buffer.from(`--${boundary}`)
  const out: Uint8Array[] = []
  let at = bytes.indexOf(delimiter)
  while (at !== -1) {
    const start = at + delimiter.byteLength
    if (bytes.subarray(start, start + 2).toString() === '--') break
    const headersEnd = bytes.indexOf('\r\n\r\n', start)
    const next = bytes.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headersEnd)
    if (headersEnd === -1 || next === -1) throw new Error('a part is not terminated')
    out.push(new Uint8Array(bytes.subarray(headersEnd + 4, next)))
    at = next + 2
  }
  return out
}
