import type { Reader } from 'protons-runtime'
import { MalformedDataError } from './errors.ts'

/**
 * Strict protobuf reading for untrusted bytes, over protons-runtime's Reader cursor. The
 * Reader's own methods are lenient: a varint cut off by the end of the buffer reads as if
 * zero-padded, a length of 2^32 wraps, and invalid UTF-8 becomes U+FFFD. These throw
 * MalformedDataError instead.
 */

export const VARINT = 0
export const FIXED64 = 1
export const LENGTH_DELIMITED = 2
export const FIXED32 = 5

// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a leading BOM stays in the string,
// so decoding then encoding an actor gives back the same bytes.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * The input as a plain Uint8Array. Frames from a socket or LevelDB are often Node Buffers, whose
 * slice() is a view, not a copy: through a plain view every slice() copies, so nothing decoded
 * aliases the caller's buffer.
 */
export function plainBytes (bytes: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(bytes) === Uint8Array.prototype ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** A varint up to 2^53 - 1: tags, lengths, counters, timestamps and incarnations all fit. */
export function readVarint (r: Reader): number {
  let value = 0
  let scale = 1
  for (let i = 0; i < 8; i++) {
    if (r.pos >= r.len) throw new MalformedDataError('truncated varint')
    const byte = r.buf[r.pos++] as number
    value += (byte & 0x7f) * scale
    if (byte < 0x80) {
      if (value > Number.MAX_SAFE_INTEGER) throw new MalformedDataError('integer beyond 2^53 - 1')
      return value
    }
    scale *= 128
  }
  throw new MalformedDataError('integer beyond 2^53 - 1')
}

export function readUint32 (r: Reader): number {
  const value = readVarint(r)
  if (value > 0xffffffff) throw new MalformedDataError('uint32 beyond 2^32 - 1')
  return value
}

/** A length-delimited field as a view of the input (callers copy what they keep). */
export function readBytes (r: Reader, max: number = Number.MAX_SAFE_INTEGER, what: string = 'field'): Uint8Array {
  const length = readVarint(r)
  if (length > r.len - r.pos) throw new MalformedDataError(`truncated ${what}`)
  if (length > max) throw new MalformedDataError(`${what} of ${length} bytes exceeds ${max}`)
  const bytes = r.buf.subarray(r.pos, r.pos + length)
  r.pos += length
  return bytes
}

export function readString (r: Reader, maxBytes: number, what: string): string {
  return utf8String(readBytes(r, maxBytes, what), what)
}

export function utf8String (bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes)
  } catch {
    throw new MalformedDataError(`${what} is not valid UTF-8`)
  }
}

export function readDouble (r: Reader): number {
  if (r.len - r.pos < 8) throw new MalformedDataError('truncated double')
  return r.double()
}

/** Unknown fields are skipped, so a newer writer's additions don't break this reader. */
export function skipField (r: Reader, tag: number): void {
  if (tag < 8) throw new MalformedDataError('field number 0')
  switch (tag % 8) {
    case VARINT:
      // An unknown varint may be a full 64-bit value: up to 10 bytes.
      for (let i = 0; ; i++) {
        if (i === 10 || r.pos >= r.len) throw new MalformedDataError('bad varint')
        if ((r.buf[r.pos++] as number) < 0x80) return
      }
    case FIXED64: skipBytes(r, 8); return
    case LENGTH_DELIMITED: readBytes(r); return
    case FIXED32: skipBytes(r, 4); return
    // Groups (3, 4) are deprecated and never written by proto3 encoders.
    default: throw new MalformedDataError(`unsupported wire type ${tag % 8}`)
  }
}

function skipBytes (r: Reader, n: number): void {
  if (n > r.len - r.pos) throw new MalformedDataError('truncated field')
  r.pos += n
}
