/**
 * How causal data leaves memory: objects as protobuf (to disk and to other replicas), contexts as
 * short base64url strings (to clients). Both decoders face untrusted bytes: they bound every count
 * and size and throw only their own error type.
 *
 * The object schema (encoded by hand: generated protons code uses TypeScript namespaces, which
 * Node's type stripping cannot run):
 * ```
 * message VvEntry { string actor = 1; uint64 counter = 2; }
 * message Sibling { string actor = 1; uint64 counter = 2; bytes value = 3; bool tombstone = 4; uint64 timestamp = 5; }
 * message Object  { repeated VvEntry vv = 1; repeated Sibling siblings = 2; }
 * ```
 * The encoder writes vv entries sorted by actor, then siblings sorted by (actor, counter), and
 * omits proto3 defaults (empty value, tombstone = false, timestamp = 0), so equal objects give
 * identical bytes. The decoder accepts any field order, skips unknown fields, and sorts.
 *
 * A context is base64url (no padding) of:
 * ```
 * 0x01 (version) | varint count | count × (varint actor length | actor UTF-8 | varint counter)
 * ```
 */
import { fromString } from 'uint8arrays/from-string'
import { toString } from 'uint8arrays/to-string'
import { reader, writer } from 'protons-runtime'
import type { Reader } from 'protons-runtime'
import { sha256 } from './hash.ts'
import { InvalidContextError, MalformedDataError } from './errors.ts'
import { LENGTH_DELIMITED, VARINT, plainBytes, readBytes, readVarint, skipField, utf8String } from './protobuf.ts'
import type { Dot, DvvSet, Sibling, VersionVector } from './causality.ts'

/** Actors are replica ids (peer ids in practice, ~52 chars); anything longer is garbage. */
export const MAX_ACTOR_BYTES = 256
/** Entries in a version vector or context: one per replica that ever coordinated a write. */
export const MAX_VV_ENTRIES = 10_000
/** Default bound on siblings in a decoded object (Riak refuses writes past 100). */
export const DEFAULT_MAX_SIBLINGS = 1024
/** Default bound on one sibling's value in a decoded object. */
export const DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024

export interface DecodeObjectLimits {
  /** Most siblings accepted; default {@link DEFAULT_MAX_SIBLINGS}. */
  maxSiblings?: number
  /** Most bytes in one sibling's value; default {@link DEFAULT_MAX_VALUE_BYTES}. */
  maxValueBytes?: number
}

const CONTEXT_VERSION = 1
// Version byte, count, then each entry at its largest: length varint, actor, 8-byte counter varint.
const MAX_CONTEXT_BYTES = 1 + 3 + MAX_VV_ENTRIES * (2 + MAX_ACTOR_BYTES + 8)
const MAX_CONTEXT_CHARS = Math.ceil(MAX_CONTEXT_BYTES * 4 / 3)
const BASE64URL = /^[A-Za-z0-9_-]*$/

// Wire types and tags (field << 3 | wire type).
const TAG_OBJECT_VV = 1 << 3 | LENGTH_DELIMITED
const TAG_OBJECT_SIBLING = 2 << 3 | LENGTH_DELIMITED
const TAG_ACTOR = 1 << 3 | LENGTH_DELIMITED
const TAG_COUNTER = 2 << 3 | VARINT
const TAG_VALUE = 3 << 3 | LENGTH_DELIMITED
const TAG_TOMBSTONE = 4 << 3 | VARINT
const TAG_TIMESTAMP = 5 << 3 | VARINT

const utf8Encoder = new TextEncoder()

/** An actor is 1..256 bytes of UTF-8 with no lone surrogates (those would not round-trip). */
export function isValidActor (actor: unknown): actor is string {
  if (typeof actor !== 'string' || actor.length === 0 || actor.length > MAX_ACTOR_BYTES) return false
  if (/\p{Cs}/u.test(actor)) return false
  return utf8Encoder.encode(actor).length <= MAX_ACTOR_BYTES
}

/** A counter (or timestamp) that survives the trip through a uint64 and back into a number. */
function isCounter (n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= 1
}

function sortedEntries (vv: VersionVector): Array<[string, number]> {
  return [...vv].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
}

/** Opaque, URL-safe text for a version vector: what a client gets with a read and hands back with a write. */
export function encodeContext (vv: VersionVector): string {
  const entries = sortedEntries(vv)
  const w = writer().uint32(CONTEXT_VERSION).uint32(entries.length)
  for (const [actor, counter] of entries) w.string(actor).uint64Number(counter)
  return toString(w.finish(), 'base64url')
}

/**
 * The version vector inside a context string. Throws InvalidContextError on anything malformed:
 * bad base64url, unknown version, truncation, trailing bytes, counters outside 1..2^53-1,
 * duplicate actors, actors of 0 or more than 256 bytes, more than 10 000 entries.
 */
export function decodeContext (text: string): VersionVector {
  if (typeof text !== 'string' || text.length > MAX_CONTEXT_CHARS || !BASE64URL.test(text)) {
    throw new InvalidContextError('context is not base64url text of a sane length')
  }
  let bytes: Uint8Array
  try {
    bytes = fromString(text, 'base64url')
  } catch {
    throw new InvalidContextError('context is not valid base64url')
  }
  // Only the canonical spelling is accepted (no stray low bits in the last character).
  if (toString(bytes, 'base64url') !== text) throw new InvalidContextError('context is not canonical base64url')
  if (bytes[0] !== CONTEXT_VERSION) throw new InvalidContextError('unknown context version')
  try {
    const r = reader(bytes)
    r.pos = 1
    const count = readVarint(r)
    if (count > MAX_VV_ENTRIES) throw new MalformedDataError(`context has ${count} entries, more than ${MAX_VV_ENTRIES}`)
    const vv = new Map<string, number>()
    for (let i = 0; i < count; i++) {
      const actor = readActor(r)
      const counter = readVarint(r)
      if (counter < 1) throw new MalformedDataError('context counter is 0')
      if (vv.has(actor)) throw new MalformedDataError('context names an actor twice')
      vv.set(actor, counter)
    }
    if (r.pos !== r.len) throw new MalformedDataError('trailing bytes after context')
    return vv
  } catch (err) {
    throw new InvalidContextError(`malformed context: ${(err as Error).message}`, { cause: err })
  }
}

/** Canonical protobuf bytes of an object: equal objects (see `equals`) give identical bytes. */
export function encodeObject (obj: DvvSet): Uint8Array {
  const w = writer()
  for (const [actor, counter] of sortedEntries(obj.vv)) {
    w.uint32(TAG_OBJECT_VV).fork()
    w.uint32(TAG_ACTOR).string(actor)
    w.uint32(TAG_COUNTER).uint64Number(counter)
    w.ldelim()
  }
  // Siblings are kept sorted by (actor, counter) in every DvvSet this module family builds.
  for (const s of obj.siblings) {
    w.uint32(TAG_OBJECT_SIBLING).fork()
    w.uint32(TAG_ACTOR).string(s.dot.actor)
    w.uint32(TAG_COUNTER).uint64Number(s.dot.counter)
    if (s.value === null) w.uint32(TAG_TOMBSTONE).bool(true)
    else if (s.value.length > 0) w.uint32(TAG_VALUE).bytes(s.value)
    if (s.timestamp !== 0) w.uint32(TAG_TIMESTAMP).uint64Number(s.timestamp)
    w.ldelim()
  }
  return w.finish()
}

/**
 * An object from untrusted bytes (disk or network). Throws MalformedDataError, and nothing else,
 * unless every sibling's dot is covered by the vv, dots are unique, actors are unique in the vv,
 * counters are 1..2^53-1, and counts and sizes are within `limits`. Values are copied, so the
 * result does not pin or alias `bytes`.
 */
export function decodeObject (bytes: Uint8Array, limits: DecodeObjectLimits = {}): DvvSet {
  const maxSiblings = limits.maxSiblings ?? DEFAULT_MAX_SIBLINGS
  const maxValueBytes = limits.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES
  try {
    if (!(bytes instanceof Uint8Array)) throw new MalformedDataError('object is not bytes')
    const vv = new Map<string, number>()
    const siblings: Sibling[] = []
    // A plain view: values are slice()d out of it, and a Buffer's slice() would alias the input.
    const r = reader(plainBytes(bytes))
    while (r.pos < r.len) {
      const tag = readVarint(r)
      if (tag === TAG_OBJECT_VV) {
        const [actor, counter] = decodeVvEntry(readBytes(r))
        if (vv.has(actor)) throw new MalformedDataError('vv names an actor twice')
        if (vv.size === MAX_VV_ENTRIES) throw new MalformedDataError(`vv has more than ${MAX_VV_ENTRIES} entries`)
        vv.set(actor, counter)
      } else if (tag === TAG_OBJECT_SIBLING) {
        if (siblings.length === maxSiblings) throw new MalformedDataError(`more than ${maxSiblings} siblings`)
        siblings.push(decodeSibling(readBytes(r), maxValueBytes))
      } else {
        skipField(r, tag)
      }
    }
    siblings.sort((a, b) => compareDotsOf(a.dot, b.dot))
    for (let i = 0; i < siblings.length; i++) {
      const dot = (siblings[i] as Sibling).dot
      if ((vv.get(dot.actor) ?? 0) < dot.counter) throw new MalformedDataError('a sibling dot is not covered by the vv')
      const prev = siblings[i - 1]
      if (prev !== undefined && compareDotsOf(prev.dot, dot) === 0) throw new MalformedDataError('two siblings share a dot')
    }
    return { vv, siblings }
  } catch (err) {
    if (err instanceof MalformedDataError) throw err
    throw new MalformedDataError(`malformed object: ${(err as Error)?.message}`, { cause: err })
  }
}

/** 16 bytes that stand for the object in Merkle trees: equal objects give equal digests. */
export function objectDigest (obj: DvvSet): Uint8Array {
  return sha256(encodeObject(obj)).slice(0, 16)
}

function decodeVvEntry (bytes: Uint8Array): [string, number] {
  const r = reader(bytes)
  let actor = ''
  let counter = 0
  while (r.pos < r.len) {
    const tag = readVarint(r)
    if (tag === TAG_ACTOR) actor = readActor(r)
    else if (tag === TAG_COUNTER) counter = readVarint(r)
    else skipField(r, tag)
  }
  if (actor === '') throw new MalformedDataError('vv entry without an actor')
  if (!isCounter(counter)) throw new MalformedDataError('vv entry counter is 0')
  return [actor, counter]
}

function decodeSibling (bytes: Uint8Array, maxValueBytes: number): Sibling {
  const r = reader(bytes)
  let actor = ''
  let counter = 0
  let value: Uint8Array | undefined
  let tombstone = false
  let timestamp = 0
  while (r.pos < r.len) {
    const tag = readVarint(r)
    if (tag === TAG_ACTOR) {
      actor = readActor(r)
    } else if (tag === TAG_COUNTER) {
      counter = readVarint(r)
    } else if (tag === TAG_VALUE) {
      const v = readBytes(r)
      if (v.length > maxValueBytes) throw new MalformedDataError(`a value of ${v.length} bytes exceeds ${maxValueBytes}`)
      value = v
    } else if (tag === TAG_TOMBSTONE) {
      tombstone = readVarint(r) !== 0
    } else if (tag === TAG_TIMESTAMP) {
      timestamp = readVarint(r)
    } else {
      skipField(r, tag)
    }
  }
  if (actor === '') throw new MalformedDataError('sibling without an actor')
  if (!isCounter(counter)) throw new MalformedDataError('sibling counter is 0')
  if (tombstone && value !== undefined) throw new MalformedDataError('a tombstone carries a value')
  const dot: Dot = { actor, counter }
  return { dot, value: tombstone ? null : (value?.slice() ?? new Uint8Array(0)), timestamp }
}

function compareDotsOf (a: Dot, b: Dot): number {
  if (a.actor !== b.actor) return a.actor < b.actor ? -1 : 1
  return a.counter - b.counter
}

function readActor (r: Reader): string {
  const bytes = readBytes(r)
  if (bytes.length === 0 || bytes.length > MAX_ACTOR_BYTES) throw new MalformedDataError(`actor of ${bytes.length} bytes`)
  return utf8String(bytes, 'actor')
}
