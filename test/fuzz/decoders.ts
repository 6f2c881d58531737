/**
 * Decoder fuzzing: every decoder of untrusted bytes, fed random bytes, random protobuf-shaped
 * fields, and valid frames with one to four mutations (mutate.ts). Each case must either decode
 * to a value that is valid (it re-encodes to a frame that decodes to the same value, and passes
 * the target's own checks) or throw a ShoalError of an expected name whose cause chain holds no
 * untyped error (a TypeError wrapped into a MalformedDataError is still a bug). Nothing may
 * allocate far beyond the frame's size (a length prefix claiming 1 GB must not become a 1 GB
 * buffer). Case `i` of seed `s` is always the same bytes, so a failure replays by its numbers.
 */
import { isDeepStrictEqual } from 'node:util'
import { fromString } from 'uint8arrays/from-string'
import { toString } from 'uint8arrays/to-string'
import { decodeContext, decodeObject, encodeContext, encodeObject } from '../../src/core/causality.ts'
import { decodeCrdt, encodeCrdt } from '../../src/core/crdt/typed-value.ts'
import { MalformedDataError, ShoalError } from '../../src/core/errors.ts'
import { validateRecord } from '../../src/core/membership.ts'
import {
  decodeAdminRequest, decodeAdminResponse, decodeHeartbeat, decodeKvRequest, decodeKvResponse, decodeMemberList,
  decodeMembersRequest, encodeAdminRequest, encodeAdminResponse, encodeHeartbeat, encodeKvRequest, encodeKvResponse,
  encodeMemberList, encodeMembersRequest
} from '../../src/net/codec.ts'
import { MAX_KEY_BYTES } from '../../src/net/constants.ts'
import { decodeSyncRequest, decodeSyncResponse, encodeSyncRequest, encodeSyncResponse } from '../../src/net/sync-codec.ts'
import { SimRandom } from '../../src/sim/random.ts'
import * as messages from './messages.ts'
import { MUTATIONS, mutate, randomFields } from './mutate.ts'
import type { Mutation } from './mutate.ts'

/** A decoder under fuzz: how to make valid frames, and what it may answer. */
export interface DecoderTarget {
  readonly name: string
  /** A valid frame, from a random valid message. */
  readonly frame: (rng: SimRandom) => Uint8Array
  /** Decodes, then re-encodes and decodes again: throws unless the value is valid and stable. */
  readonly check: (bytes: Uint8Array) => 'decoded'
  /** The error names it may throw on bad input. */
  readonly errors: readonly string[]
}

const MALFORMED = ['MalformedDataError'] as const

/**
 * A target from a codec: `valid` adds checks beyond the round trip (the decoder's documented
 * bounds). Frames are the encoder's output for random valid messages.
 */
export function codecTarget<T> (name: string, message: (rng: SimRandom) => T, encode: (value: T) => Uint8Array,
  decode: (bytes: Uint8Array) => T, valid: (value: T) => void = () => {}, errors: readonly string[] = MALFORMED): DecoderTarget {
  return {
    name,
    errors,
    frame: rng => encode(message(rng)),
    check: bytes => {
      const value = decode(bytes)
      valid(value)
      let again: T
      try {
        again = decode(encode(value))
      } catch (err) {
        throw new FuzzFailure(`a decoded value does not survive encode and decode: ${describe(err)}`)
      }
      if (!isDeepStrictEqual(again, value)) throw new FuzzFailure('a decoded value changes through encode and decode')
      return 'decoded'
    }
  }
}

/** What the fuzzer found: not an error a decoder may throw, so never confused with one. */
export class FuzzFailure extends Error {
  override name = 'FuzzFailure'
}

function expect (condition: boolean, what: string): void {
  if (!condition) throw new FuzzFailure(what)
}

function validKey (key: Uint8Array, what: string): void {
  expect(key.length <= MAX_KEY_BYTES, `${what} of ${key.length} bytes`)
}

const utf8 = new TextDecoder()
const utf8Encoder = new TextEncoder()

/** Every decoder Shoal runs on bytes from the network or disk. */
export const DECODERS: readonly DecoderTarget[] = [
  codecTarget('kv-request', messages.kvRequest, encodeKvRequest, decodeKvRequest, r => { validKey(r.key, 'a key') }),
  codecTarget('kv-response', messages.kvResponse, encodeKvResponse, decodeKvResponse),
  codecTarget('sync-request', messages.syncRequest, encodeSyncRequest, decodeSyncRequest, r => {
    if (r.type === 'fetch') for (const key of r.keys) { validKey(key, 'a key'); expect(key.length > 0, 'an empty key') }
    if (r.type === 'push' || r.type === 'purge' || r.type === 'purge-check') for (const e of r.entries) validKey(e.key, 'a key')
  }),
  codecTarget('sync-response', messages.syncResponse, encodeSyncResponse, decodeSyncResponse),
  codecTarget('members-request', () => ({}), encodeMembersRequest, decodeMembersRequest),
  codecTarget('member-list', messages.memberList, encodeMemberList, decodeMemberList, list => { for (const r of list) validateRecord(r) }),
  codecTarget('heartbeat', rng => messages.heartbeat(rng), encodeHeartbeat, decodeHeartbeat, h => { validateRecord(h.record) }),
  codecTarget('admin-request', messages.adminRequest, encodeAdminRequest, decodeAdminRequest),
  codecTarget('admin-response', messages.adminResponse, encodeAdminResponse, decodeAdminResponse),
  codecTarget('object', messages.object, encodeObject, bytes => decodeObject(bytes), o => {
    for (const s of o.siblings) expect((o.vv.get(s.dot.actor) ?? 0) >= s.dot.counter, 'a sibling outside the vv')
  }),
  // A counter's or set's value: anything that does not decode is opaque (undefined), never a throw;
  // here that answer stands as a MalformedDataError, so a throw of any kind is a finding.
  codecTarget('crdt-value', messages.crdtValue, encodeCrdt, bytes => {
    const value = decodeCrdt(bytes)
    if (value === undefined) throw new MalformedDataError('opaque: not a counter or set')
    return value
  }),
  // A context is text; its binary form is what is worth mutating, so frames are that binary.
  codecTarget('context', messages.versionVector, vv => fromString(encodeContext(vv), 'base64url'),
    bytes => decodeContext(toString(bytes, 'base64url')), () => {}, ['InvalidContextError']),
  // And the text itself, mutated as bytes: bad base64url, padding, stray characters.
  codecTarget('context-text', messages.versionVector, vv => utf8Encoder.encode(encodeContext(vv)),
    bytes => decodeContext(utf8.decode(bytes)), () => {}, ['InvalidContextError'])
]

export function decoderTarget (name: string): DecoderTarget {
  const target = DECODERS.find(t => t.name === name)
  if (target === undefined) throw new Error(`no decoder target ${name}; there are ${DECODERS.map(t => t.name).join(', ')}`)
  return target
}

/** How a case's frame was made, for the report. */
export type CaseKind = 'random' | 'fields' | 'valid' | Mutation

/** One seed per (run seed, target, case): a case replays alone. */
export function caseSeed (seed: number, target: string, index: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ index
  for (let i = 0; i < target.length; i++) h = Math.imul(h ^ target.charCodeAt(i), 0xcc9e2d51)
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b) ^ Math.imul(index, 0xc2b2ae35)
  h ^= h >>> 13
  return h | 0
}

/** The frame of case `index` for `frame` (a target's valid-frame maker), and how it was made. */
export function caseFrame (rng: SimRandom, frame: (rng: SimRandom) => Uint8Array): { bytes: Uint8Array, kind: CaseKind } {
  const roll = rng.next()
  if (roll < 0.07) return { bytes: messages.bytes(rng, 0, rng.chance(0.9) ? 64 : 512), kind: 'random' }
  if (roll < 0.15) return { bytes: randomFields(rng), kind: 'fields' }
  const valid = frame(rng)
  if (roll < 0.2) return { bytes: valid, kind: 'valid' }
  const donor = frame(rng)
  let bytes = valid
  let kind: CaseKind = rng.pick(MUTATIONS)
  bytes = mutate(rng, bytes, donor, kind)
  // Sometimes more than one mutation: the report names the first.
  for (let i = rng.chance(0.3) ? rng.int(1, 3) : 0; i > 0; i--) bytes = mutate(rng, bytes, donor)
  return { bytes, kind }
}

export interface CaseResult {
  readonly kind: CaseKind
  readonly outcome: 'decoded' | 'rejected'
  readonly failure?: string
}

/** Untyped errors anywhere in the chain: the error itself or what it wraps. */
function untyped (err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 8; depth++) {
    if (!(e instanceof ShoalError)) return describe(e)
    e = e.cause
  }
  return undefined
}

function describe (err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

/** Most a decoder may allocate beyond its frame: a claimed 1 GB length must not come near it. */
const ALLOCATION_SLACK = 64 * 1024 * 1024

/** Runs case `index` of `target` under `seed`. */
export function runDecoderCase (target: DecoderTarget, seed: number, index: number): CaseResult & { bytes: Uint8Array } {
  const rng = new SimRandom(caseSeed(seed, target.name, index))
  const { bytes, kind } = caseFrame(rng, target.frame)
  const before = process.memoryUsage()
  let outcome: 'decoded' | 'rejected' = 'rejected'
  let failure: string | undefined
  try {
    outcome = target.check(bytes)
  } catch (err) {
    if (err instanceof FuzzFailure) failure = err.message
    else if (!target.errors.includes((err as Error)?.name)) failure = `threw ${describe(err)}, not ${target.errors.join(' or ')}`
    else {
      const inner = untyped(err)
      if (inner !== undefined) failure = `threw ${describe(err)}, wrapping the untyped ${inner}`
    }
  }
  const after = process.memoryUsage()
  const grew = Math.max(after.arrayBuffers - before.arrayBuffers, after.heapUsed - before.heapUsed)
  if (failure === undefined && grew > ALLOCATION_SLACK + 16 * bytes.length) {
    failure = `allocated ${Math.round(grew / 1024 / 1024)} MiB for a frame of ${bytes.length} bytes`
  }
  return { kind, outcome, bytes, ...(failure === undefined ? {} : { failure }) }
}
