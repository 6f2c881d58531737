/**
 * Mutations of protobuf frames, for the fuzzer: blind ones (bit flips, truncation, extension,
 * inserted and deleted bytes) and ones that know the wire format (a corrupted varint, a duplicated
 * or dropped field, a wrong wire type, a length claiming far more than the frame holds, a mutation
 * inside a nested message with its length fixed up, fields spliced from another frame).
 */
import type { SimRandom } from '../../src/sim/random.ts'
import { bytes } from './messages.ts'

/** One top-level field of a frame, by byte offsets. */
interface Field {
  readonly start: number
  /** Where the tag's varint ends and the value (or an LD field's length varint) begins. */
  readonly tagEnd: number
  /** An LD field's content start (after its length); else the value's start. */
  readonly valueStart: number
  readonly end: number
  readonly wireType: number
}

export const MUTATIONS = [
  'flip', 'set', 'truncate', 'extend', 'insert', 'delete', 'varint', 'duplicate', 'drop', 'wire-type',
  'field-number', 'huge-length', 'length', 'nested', 'splice'
] as const
export type Mutation = typeof MUTATIONS[number]

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x08, 0x0a, 0x12]
/** Varints a peer may claim: zero, around 2^31, 2^32, 2^53 and 2^64. */
const HUGE = [2 ** 30, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 53 - 1, 2 ** 53]

/** A varint of any non-negative number up to 2^64 - 1 (exact up to 2^53). */
export function varint (value: number): number[] {
  const out: number[] = []
  let v = value
  while (v >= 128) {
    out.push((v % 128) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
  return out
}

function readVarintAt (buf: Uint8Array, pos: number): { value: number, end: number } | undefined {
  let value = 0
  let scale = 1
  for (let i = pos; i < buf.length && i < pos + 10; i++) {
    const byte = buf[i] as number
    value += (byte & 0x7f) * scale
    if (byte < 0x80) return { value, end: i + 1 }
    scale *= 128
  }
  return undefined
}

/** The frame's top-level fields, as far as they parse (a broken tail is left out). */
export function scan (buf: Uint8Array): Field[] {
  const fields: Field[] = []
  let pos = 0
  while (pos < buf.length) {
    const tag = readVarintAt(buf, pos)
    if (tag === undefined) break
    const wireType = tag.value % 8
    let valueStart = tag.end
    let end: number
    if (wireType === 0) {
      const v = readVarintAt(buf, tag.end)
      if (v === undefined) break
      end = v.end
    } else if (wireType === 1) {
      end = tag.end + 8
    } else if (wireType === 5) {
      end = tag.end + 4
    } else if (wireType === 2) {
      const length = readVarintAt(buf, tag.end)
      if (length === undefined) break
      valueStart = length.end
      end = length.end + length.value
    } else {
      break
    }
    if (end > buf.length) break
    fields.push({ start: pos, tagEnd: tag.end, valueStart, end, wireType })
    pos = end
  }
  return fields
}

function concat (...parts: Array<Uint8Array | number[]>): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** A corrupted or extreme varint: overlong, unterminated, 10 bytes of 2^64 - 1, or a huge value. */
function badVarint (rng: SimRandom, original: number): number[] {
  switch (rng.int(0, 4)) {
    case 0: { // the same value, padded with continuation bytes (non-canonical)
      const v = varint(original)
      const last = v.pop() as number
      return [...v, last | 0x80, ...Array<number>(rng.int(1, 9)).fill(0x80), 0x00]
    }
    case 1: return Array<number>(rng.int(1, 12)).fill(0xff) // never terminates, or beyond 2^64
    case 2: return [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01] // 2^64 - 1
    case 3: return varint(rng.pick(HUGE))
    default: return varint(rng.int(0, 300))
  }
}

/** A field of the frame, or undefined when none parses. */
function someField (rng: SimRandom, buf: Uint8Array, wireType?: number): Field | undefined {
  const fields = scan(buf).filter(f => wireType === undefined || f.wireType === wireType)
  return fields.length === 0 ? undefined : rng.pick(fields)
}

/**
 * One mutation of `buf`, of the given kind (random if not given). `donor` is another frame of
 * the same message, for splicing. Falls back to a bit flip when the kind does not apply.
 */
export function mutate (rng: SimRandom, buf: Uint8Array, donor: Uint8Array, kind: Mutation = rng.pick(MUTATIONS), depth = 0): Uint8Array {
  const at = (extra = 0): number => rng.int(0, buf.length - 1 + extra)
  switch (kind) {
    case 'flip': {
      if (buf.length === 0) return Uint8Array.of(rng.int(0, 255))
      const out = buf.slice()
      for (let n = rng.int(1, 4); n > 0; n--) {
        const i = at()
        out[i] = (out[i] as number) ^ (1 << rng.int(0, 7))
      }
      return out
    }
    case 'set': {
      if (buf.length === 0) return Uint8Array.of(rng.pick(INTERESTING_BYTES))
      const out = buf.slice()
      out[at()] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.int(0, 255)
      return out
    }
    case 'truncate': return buf.subarray(0, buf.length === 0 ? 0 : at())
    case 'extend': return concat(buf, bytes(rng, 1, rng.chance(0.1) ? 256 : 16))
    case 'insert': {
      const i = at(1)
      return concat(buf.subarray(0, i), bytes(rng, 1, 8), buf.subarray(i))
    }
    case 'delete': {
      if (buf.length === 0) return buf
      const i = at()
      return concat(buf.subarray(0, i), buf.subarray(Math.min(buf.length, i + rng.int(1, 8))))
    }
    case 'varint': {
      const f = someField(rng, buf)
      if (f === undefined) return mutate(rng, buf, donor, 'flip')
      const tag = readVarintAt(buf, f.start)?.value ?? 0
      // The tag, or the value of a varint field, or the length of an LD field.
      if (rng.chance(0.3) || f.wireType === 1 || f.wireType === 5) return concat(buf.subarray(0, f.start), badVarint(rng, tag), buf.subarray(f.tagEnd))
      const value = readVarintAt(buf, f.tagEnd)
      const valueEnd = value?.end ?? f.end
      return concat(buf.subarray(0, f.tagEnd), badVarint(rng, value?.value ?? 0), buf.subarray(valueEnd))
    }
    case 'duplicate': {
      const f = someField(rng, buf)
      if (f === undefined) return mutate(rng, buf, donor, 'flip')
      // Now and then past a decoder's count bound: siblings, vv entries, records, hashes, entries.
      const n = rng.chance(0.02) ? rng.pick([1025, 4097, 10_001, 65_537, 100_001]) : rng.chance(0.1) ? rng.int(10, 200) : rng.int(1, 3)
      const copies = Array.from({ length: n }, () => buf.subarray(f.start, f.end))
      return concat(buf.subarray(0, f.end), ...copies, buf.subarray(f.end))
    }
    case 'drop': {
      const f = someField(rng, buf)
      if (f === undefined) return mutate(rng, buf, donor, 'flip')
      return concat(buf.subarray(0, f.start), buf.subarray(f.end))
    }
    case 'wire-type': {
      const f = someField(rng, buf)
      if (f === undefined) return mutate(rng, buf, donor, 'flip')
      const tag = readVarintAt(buf, f.start)?.value ?? 0
      const retyped = tag - (tag % 8) + rng.pick([0, 1, 2, 3, 4, 5, 6, 7].filter(t => t !== f.wireType))
      return concat(buf.subarray(0, f.start), varint(retyped), buf.subarray(f.tagEnd))
    }
    case 'field-number': {
      const f = someField(rng, buf)
      if (f === undefined) return mutate(rng, buf, donor, 'flip')
      const number = rng.chance(0.9) ? rng.int(0, 12) : rng.pick([2 ** 29 - 1, 2 ** 29, 2 ** 32, 2 ** 50])
      return concat(buf.subarray(0, f.start), varint(number * 8 + f.wireType), buf.subarray(f.tagEnd))
    }
    case 'huge-length':
    case 'length': {
      const f = someField(rng, buf, 2)
      if (f === undefined) return mutate(rng, buf, donor, 'extend')
      const actual = f.end - f.valueStart
      const claimed = kind === 'huge-length' ? rng.pick(HUGE) : Math.max(0, actual + rng.pick([-2, -1, 1, 2, 100]))
      return concat(buf.subarray(0, f.tagEnd), varint(claimed), buf.subarray(f.valueStart))
    }
    case 'nested': {
      const f = someField(rng, buf, 2)
      if (f === undefined || depth > 3) return mutate(rng, buf, donor, 'flip')
      const inner = buf.subarray(f.valueStart, f.end)
      const donorField = someField(rng, donor, 2)
      const innerDonor = donorField === undefined ? inner : donor.subarray(donorField.valueStart, donorField.end)
      const mutated = mutate(rng, inner, innerDonor, rng.pick(MUTATIONS), depth + 1)
      return concat(buf.subarray(0, f.tagEnd), varint(mutated.length), mutated, buf.subarray(f.end))
    }
    case 'splice': {
      const fields = scan(donor)
      if (fields.length === 0) return mutate(rng, buf, donor, 'extend')
      const from = rng.pick(fields)
      const own = scan(buf)
      const i = rng.chance(0.5) || own.length === 0 ? buf.length : rng.pick(own).start
      return concat(buf.subarray(0, i), donor.subarray(from.start, from.end), buf.subarray(i))
    }
  }
}

/** Random protobuf-shaped bytes: fields of small numbers and any wire type, with random contents. */
export function randomFields (rng: SimRandom, depth = 0): Uint8Array {
  const parts: number[][] = []
  for (let i = rng.int(0, 8); i > 0; i--) {
    const wireType = rng.pick([0, 0, 1, 2, 2, 2, 3, 5, 7])
    const part = varint(rng.int(0, 12) * 8 + wireType)
    if (wireType === 0) part.push(...varint(rng.chance(0.5) ? rng.int(0, 10) : rng.int(0, Number.MAX_SAFE_INTEGER)))
    else if (wireType === 1) part.push(...bytes(rng, 8, 8))
    else if (wireType === 5) part.push(...bytes(rng, 4, 4))
    else if (wireType === 2) {
      const content = depth < 3 && rng.chance(0.5) ? randomFields(rng, depth + 1) : bytes(rng, 0, 40)
      part.push(...varint(content.length), ...content)
    }
    parts.push(part)
  }
  return concat(...parts)
}
