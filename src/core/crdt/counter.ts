/**
 * PN-counter (Shapiro et al. 2011): each actor keeps two grow-only totals, p (its increments) and
 * n (its decrements); the value is Σp − Σn and the join takes each actor's larger totals. The join
 * is commutative, associative and idempotent, so replicas and readers can merge states in any
 * order, any number of times, and agree.
 *
 * Soundness needs one rule from writers: an actor's entry only grows from that actor's own latest
 * entry. Writers get it by using an actor no one else uses (a random id per client instance or
 * node process) and by remembering their own last entry per key (see src/kv-ops.ts).
 */
import { reader, writer } from 'protons-runtime'
import { bytesId, compareBytes, fromBytesId } from '../bytes.ts'
import { InvalidArgumentError, MalformedDataError } from '../errors.ts'
import { LENGTH_DELIMITED, VARINT, plainBytes, readBytes, readVarint, skipField } from '../protobuf.ts'

/** One actor's totals: both non-negative safe integers. */
export interface CounterEntry {
  readonly p: number
  readonly n: number
}

/** actor (as {@link bytesId} of its bytes) -> its totals. Entries at (0, 0) are never stored. */
export type CounterState = ReadonlyMap<string, CounterEntry>

export const MAX_ACTOR_BYTES = 64
const TAG_ENTRY = (1 << 3) | LENGTH_DELIMITED
const TAG_ACTOR = (1 << 3) | LENGTH_DELIMITED
const TAG_P = (2 << 3) | VARINT
const TAG_N = (3 << 3) | VARINT

export const EMPTY_COUNTER: CounterState = new Map()

/** Σp − Σn. */
export function counterValue (state: CounterState): number {
  let value = 0
  for (const { p, n } of state.values()) value += p - n
  return value
}

/** Each actor's larger totals. */
export function join (a: CounterState, b: CounterState): CounterState {
  if (b.size === 0) return a
  if (a.size === 0) return b
  const out = new Map(a)
  for (const [actor, theirs] of b) {
    const ours = out.get(actor)
    out.set(actor, ours === undefined ? theirs : { p: Math.max(ours.p, theirs.p), n: Math.max(ours.n, theirs.n) })
  }
  return out
}

/**
 * `actor`'s entry moved by `amount` (positive: p grows; negative: n grows), starting from `from`,
 * the larger of what the writer remembers and what it read. Throws InvalidArgumentError when a
 * total would pass 2^53 − 1.
 */
export function bump (state: CounterState, actor: string, from: CounterEntry, amount: number): CounterState {
  const entry = amount >= 0 ? { p: from.p + amount, n: from.n } : { p: from.p, n: from.n - amount }
  if (!Number.isSafeInteger(entry.p) || !Number.isSafeInteger(entry.n)) throw new InvalidArgumentError('the counter\'s totals would pass 2^53 - 1')
  const out = new Map(state)
  out.set(actor, entry)
  return out
}

/** Entrywise maximum of two entries (the writer's memory and its read). */
export function maxEntry (a: CounterEntry | undefined, b: CounterEntry | undefined): CounterEntry {
  return { p: Math.max(a?.p ?? 0, b?.p ?? 0), n: Math.max(a?.n ?? 0, b?.n ?? 0) }
}

/** Canonical protobuf body: entries sorted by actor bytes, zero entries left out. */
export function encodeBody (state: CounterState): Uint8Array {
  const w = writer()
  const actors = [...state.keys()].map(fromBytesId).sort(compareBytes)
  for (const actor of actors) {
    const { p, n } = state.get(bytesId(actor)) as CounterEntry
    if (p === 0 && n === 0) continue
    w.uint32(TAG_ENTRY).fork()
    w.uint32(TAG_ACTOR).bytes(actor)
    if (p !== 0) w.uint32(TAG_P).uint64Number(p)
    if (n !== 0) w.uint32(TAG_N).uint64Number(n)
    w.ldelim()
  }
  return w.finish()
}

/** A body from untrusted bytes: throws MalformedDataError (only) when it does not decode. */
export function decodeBody (bytes: Uint8Array): CounterState {
  const state = new Map<string, CounterEntry>()
  const r = reader(plainBytes(bytes))
  while (r.pos < r.len) {
    const tag = readVarint(r)
    if (tag !== TAG_ENTRY) {
      skipField(r, tag)
      continue
    }
    const entry = reader(readBytes(r, bytes.byteLength, 'counter entry'))
    let actor: Uint8Array | undefined
    let p = 0
    let n = 0
    while (entry.pos < entry.len) {
      const field = readVarint(entry)
      if (field === TAG_ACTOR) actor = readBytes(entry, MAX_ACTOR_BYTES, 'actor')
      else if (field === TAG_P) p = readVarint(entry)
      else if (field === TAG_N) n = readVarint(entry)
      else skipField(entry, field)
    }
    if (actor === undefined || actor.byteLength === 0) throw new MalformedDataError('a counter entry has no actor')
    const id = bytesId(actor)
    if (state.has(id)) throw new MalformedDataError('a counter names an actor twice')
    if (p !== 0 || n !== 0) state.set(id, { p, n })
  }
  return state
}
