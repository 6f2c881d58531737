import { equals } from 'uint8arrays/equals'
import { compare } from 'uint8arrays/compare'
import { fromString } from 'uint8arrays/from-string'
import { toString } from 'uint8arrays/to-string'

export { equals as bytesEqual, compare as compareBytes }

/** Keys and values arrive as text or bytes; internally they are always bytes (UTF-8 for text). */
export function toBytes (value: string | Uint8Array): Uint8Array {
  return typeof value === 'string' ? fromString(value, 'utf8') : value
}

export function toHex (bytes: Uint8Array): string {
  return toString(bytes, 'base16')
}

export function fromHex (hex: string): Uint8Array {
  return fromString(hex, 'base16')
}

/** A string that stands for these exact bytes, for use as a Map key (one char per byte). */
export function bytesId (bytes: Uint8Array): string {
  return toString(bytes, 'latin1')
}

export function fromBytesId (id: string): Uint8Array {
  return fromString(id, 'latin1')
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** The bytes as text when they are well-formed UTF-8, else undefined. */
export function utf8Text (bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes)
  } catch {
    return undefined
  }
}

/** A key as an operator would type it: quoted UTF-8 when printable, else 0x-prefixed hex. */
export function describeKey (key: Uint8Array): string {
  const text = utf8Text(key)
  if (text !== undefined && text.length > 0 && !/[\u0000-\u001f\u007f-\u009f]/.test(text)) return JSON.stringify(text)
  return '0x' + toHex(key)
}
