import type { IncomingMessage } from 'node:http'
import { InvalidArgumentError } from '../core/errors.ts'
import { PayloadTooLargeError } from './errors.ts'

/** The upload ended before its announced length, or its connection failed: nothing is written. */
export class AbortedUploadError extends InvalidArgumentError {
  override name = 'AbortedUploadError'
}

/**
 * Reads a request body of at most `limit` bytes. A Content-Length above it is refused before a
 * byte is read; a body without one (chunked) is counted as it streams and refused as soon as it
 * passes the limit. At most `limit` bytes are ever held.
 * @throws PayloadTooLargeError past the limit; AbortedUploadError when the client goes away mid-body
 */
export async function readBody (req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const announced = contentLength(req)
  if (announced !== undefined && announced > limit) throw tooLarge(announced, limit)
  const chunks: Buffer[] = []
  let total = 0
  try {
    for await (const chunk of req) {
      const bytes = chunk as Buffer
      if (total + bytes.byteLength > limit) throw tooLarge(undefined, limit)
      total += bytes.byteLength
      chunks.push(bytes)
    }
  } catch (err) {
    if (err instanceof PayloadTooLargeError) throw err
    throw new AbortedUploadError(`the upload broke off after ${total} bytes (${(err as Error).message})`)
  }
  // Node's parser ends a body at Content-Length: fewer bytes means the client went away.
  if (!req.complete || (announced !== undefined && total !== announced)) {
    throw new AbortedUploadError(`the upload broke off after ${total} of ${announced ?? 'its'} bytes`)
  }
  const body = Buffer.concat(chunks, total)
  return new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
}

/** The announced body length, when there is one. */
export function contentLength (req: IncomingMessage): number | undefined {
  const header = req.headers['content-length']
  if (header === undefined) return undefined
  // Node's parser already refuses a malformed or repeated Content-Length with a 400.
  return Number(header)
}

function tooLarge (announced: number | undefined, limit: number): PayloadTooLargeError {
  const size = announced === undefined ? `more than ${limit}` : String(announced)
  return new PayloadTooLargeError(`the value is ${size} bytes, the limit is ${limit}`)
}
