import { InvalidArgumentError } from '../core/errors.ts'

/**
 * A key from the path of `/kv/{key}`: percent-escapes become the bytes they name (any bytes, not
 * only UTF-8, so every key the API takes has a URL), other characters their UTF-8. A `%` not
 * followed by two hex digits is an InvalidArgumentError; the node checks the length (1 to 1024 bytes).
 */
export function decodeKey (path: string): Uint8Array {
  const bytes: number[] = []
  const encoder = new TextEncoder()
  for (let i = 0; i < path.length;) {
    if (path[i] === '%') {
      const hex = path.slice(i + 1, i + 3)
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new InvalidArgumentError(`malformed percent-escape ${JSON.stringify(path.slice(i, i + 3))} in the key at character ${i}: write a byte as %XX`)
      bytes.push(parseInt(hex, 16))
      i += 3
      continue
    }
    const next = path.indexOf('%', i)
    const run = next === -1 ? path.slice(i) : path.slice(i, next)
    for (const b of encoder.encode(run)) bytes.push(b)
    i += run.length
  }
  return Uint8Array.from(bytes)
}

/** The path form of a key, for links and examples: every byte outside the unreserved set escaped. */
export function encodeKey (key: Uint8Array | string): string {
  const bytes = typeof key === 'string' ? new TextEncoder().encode(key) : key
  let out = ''
  for (const b of bytes) {
    const c = String.fromCharCode(b)
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}
