/**
 * Versioning: dotted version vector sets (Almeida et al., "Scalable and Accurate Causality Tracking
 * for Eventually Consistent Stores"; Riak 2.0's dvvset), in the dot-store form: an object is a set
 * of siblings, each tagged with the dot (actor, counter) of the write that made it, plus a version
 * vector covering every dot the object has ever seen. A sibling is alive iff it is in `siblings`;
 * a dot the vv covers but no sibling holds was superseded by a write that saw it.
 *
 * Because a sibling's dot, not the whole history, says which write it is, a client that writes back
 * with the context of its read replaces exactly what it read, and C clients doing so leave at most
 * C siblings (the sibling explosion of per-actor version vectors cannot happen).
 *
 * Objects are immutable values: functions here never write into their inputs and share arrays
 * between results freely.
 *
 * @example
 * ```ts
 * const a = update(undefined, new Map(), 'replica-a', toBytes('v1'), now)        // put without context
 * const b = update(undefined, new Map(), 'replica-b', toBytes('v2'), now)        // concurrent put elsewhere
 * const both = merge(a, b)                                                       // two siblings
 * const ctx = encodeContext(both.vv)                                             // what a get returns
 * const resolved = update(both, decodeContext(ctx), 'replica-a', toBytes('v3'), now) // one sibling: v3
 * ```
 */
import { bytesEqual, compareBytes } from './bytes.ts'
import { InvalidArgumentError } from './errors.ts'
import { isValidActor } from './object-codec.ts'

export {
  encodeContext, decodeContext, encodeObject, decodeObject, objectDigest, isValidActor,
  MAX_ACTOR_BYTES, MAX_VV_ENTRIES, DEFAULT_MAX_SIBLINGS, DEFAULT_MAX_VALUE_BYTES
} from './object-codec.ts'
export type { DecodeObjectLimits } from './object-codec.ts'

/** One write: the `counter`-th event coordinated by replica `actor`. */
export interface Dot {
  readonly actor: string
  /** >= 1, a safe integer. */
  readonly counter: number
}

/** actor -> highest counter seen. Covers every dot (actor, n) with n at or below it. */
export type VersionVector = ReadonlyMap<string, number>

export interface Sibling {
  readonly dot: Dot
  /** null is a tombstone: the value a delete writes. */
  readonly value: Uint8Array | null
  /** The coordinator's clock in ms at the write (for last-writer-wins and tombstone purge). */
  readonly timestamp: number
}

export interface DvvSet {
  readonly vv: VersionVector
  /** Sorted by (actor, counter); every dot is covered by `vv`; no dot twice. */
  readonly siblings: readonly Sibling[]
}

/** The object of a key never written: no siblings, an empty vv. */
export const EMPTY: DvvSet = Object.freeze({ vv: new Map<string, number>(), siblings: Object.freeze([]) })

/** Total order on dots: by actor (plain string comparison), then counter. */
export function compareDots (a: Dot, b: Dot): number {
  if (a.actor !== b.actor) return a.actor < b.actor ? -1 : 1
  return a.counter - b.counter
}

/** Whether the vv has seen this dot. */
export function covers (vv: VersionVector, dot: Dot): boolean {
  return (vv.get(dot.actor) ?? 0) >= dot.counter
}

/** Whether `a` has seen everything `b` has (a >= b entrywise). */
export function descends (a: VersionVector, b: VersionVector): boolean {
  for (const [actor, counter] of b) {
    if ((a.get(actor) ?? 0) < counter) return false
  }
  return true
}

/** Entrywise maximum: everything either side has seen. */
export function join (a: VersionVector, b: VersionVector): VersionVector {
  if (b.size === 0) return a
  if (a.size === 0) return b
  const out = new Map(a)
  for (const [actor, counter] of b) {
    if ((out.get(actor) ?? 0) < counter) out.set(actor, counter)
  }
  return out
}

/**
 * The coordinator's write. Drops the siblings `context` covers (what the client read and is
 * replacing), adds `value` (null for a delete) with a fresh dot (actor, n + 1), and sets
 * vv := join(obj.vv, context) + the new dot, where n is that joined vv's entry for `actor`.
 *
 * `obj` MUST be the coordinator's own stored object for the key (undefined if it has none) and
 * `actor` the coordinator's replica id: dots are minted from that replica's counter, and a dot
 * minted from any other replica's copy could be reused for a different value. Taking n from the
 * join (not only obj.vv) keeps the new dot fresh even against a context that has seen more of
 * this actor than `obj` has.
 *
 * Throws InvalidArgumentError for an invalid actor, timestamp, value or context entry.
 */
export function update (obj: DvvSet | undefined, context: VersionVector, actor: string, value: Uint8Array | null, timestamp: number): DvvSet {
  if (!isValidActor(actor)) throw new InvalidArgumentError('actor must be 1..256 bytes of well-formed UTF-8')
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new InvalidArgumentError('timestamp must be a non-negative safe integer')
  if (value !== null && !(value instanceof Uint8Array)) throw new InvalidArgumentError('value must be bytes or null')
  for (const [a, n] of context) {
    if (typeof a !== 'string' || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('context counters must be safe integers >= 1')
  }
  const base = obj ?? EMPTY
  const vv = new Map(join(base.vv, context))
  const counter = (vv.get(actor) ?? 0) + 1
  if (!Number.isSafeInteger(counter)) throw new InvalidArgumentError(`counter of ${actor} is exhausted`)
  vv.set(actor, counter)
  const fresh: Sibling = { dot: { actor, counter }, value, timestamp }
  const siblings = base.siblings.filter(s => !covers(context, s.dot))
  // The new dot is above every dot of `actor` in obj, so it goes after that actor's siblings.
  const at = siblings.findIndex(s => s.dot.actor > actor)
  siblings.splice(at === -1 ? siblings.length : at, 0, fresh)
  return { vv, siblings }
}

/**
 * Sync two replicas' copies: vv := join; a sibling of one side survives unless the other side's
 * vv covers its dot and the other side does not hold it (then a write that saw it replaced it).
 * Commutative, associative and idempotent under {@link equals}.
 */
export function merge (a: DvvSet, b: DvvSet): DvvSet {
  if (a === b) return a
  const siblings: Sibling[] = []
  const as = a.siblings
  const bs = b.siblings
  let i = 0
  let j = 0
  while (i < as.length || j < bs.length) {
    const x = as[i]
    const y = bs[j]
    const order = x === undefined ? 1 : y === undefined ? -1 : compareDots(x.dot, y.dot)
    if (order === 0 && x !== undefined && y !== undefined) {
      siblings.push(sameDot(x, y))
      i++
      j++
    } else if (order < 0 && x !== undefined) {
      if (!covers(b.vv, x.dot)) siblings.push(x)
      i++
    } else if (y !== undefined) {
      if (!covers(a.vv, y.dot)) siblings.push(y)
      j++
    }
  }
  return { vv: join(a.vv, b.vv), siblings }
}

/**
 * Both sides hold a dot. They are the same write unless a dot was reused (a replica that lost its
 * data and came back under the same actor id); then keep the greater by (timestamp, value) so every
 * replica still converges on the same choice, whatever the merge order.
 */
function sameDot (x: Sibling, y: Sibling): Sibling {
  if (x.timestamp !== y.timestamp) return x.timestamp > y.timestamp ? x : y
  if (x.value === null || y.value === null) return x.value === null ? y : x
  return compareBytes(x.value, y.value) >= 0 ? x : y
}

function vvEquals (a: VersionVector, b: VersionVector): boolean {
  if (a.size !== b.size) return false
  for (const [actor, counter] of a) {
    if (b.get(actor) !== counter) return false
  }
  return true
}

function siblingEquals (a: Sibling, b: Sibling): boolean {
  if (compareDots(a.dot, b.dot) !== 0 || a.timestamp !== b.timestamp) return false
  if (a.value === null || b.value === null) return a.value === b.value
  return bytesEqual(a.value, b.value)
}

/**
 * Same vv and same siblings: dots, values (tombstones alike) and timestamps. Timestamps count so
 * that equal objects always encode to identical bytes (and digests); one write's dot carries one
 * timestamp anyway.
 */
export function equals (a: DvvSet, b: DvvSet): boolean {
  if (a === b) return true
  if (a.siblings.length !== b.siblings.length || !vvEquals(a.vv, b.vv)) return false
  return a.siblings.every((s, i) => siblingEquals(s, b.siblings[i] as Sibling))
}

/** The live values a read returns: every sibling that is not a tombstone, in sibling order. */
export function values (obj: DvvSet): Uint8Array[] {
  const out: Uint8Array[] = []
  for (const s of obj.siblings) {
    if (s.value !== null) out.push(s.value)
  }
  return out
}

/**
 * Whether a read finds nothing: every sibling is a tombstone. An object with no siblings at all
 * (EMPTY, a key never written) counts as deleted too, so `isDeleted(obj)` is "reads as absent".
 */
export function isDeleted (obj: DvvSet): boolean {
  return obj.siblings.every(s => s.value === null)
}
