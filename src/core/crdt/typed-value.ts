/**
 * Convergent values stored in Shoal: a value that starts with the reserved prefix is the state of
 * a CRDT (Shapiro et al., "Conflict-free Replicated Data Types"), written by Shoal's counter and
 * set operations only. Layout: 4 magic bytes, a type byte, a version byte, then the type's
 * protobuf body.
 *
 * The magic starts with 0xFF, a byte that never occurs in UTF-8: no text value can be mistaken
 * for a CRDT, and plain writes of bytes that start with the prefix are refused (see
 * {@link refuseReserved}), so no user value can be either.
 */
import { bytesEqual } from '../bytes.ts'
import { InvalidArgumentError, MalformedDataError } from '../errors.ts'
import * as counter from './counter.ts'
import type { CounterState } from './counter.ts'
import * as orset from './orset.ts'
import type { OrSetState } from './orset.ts'

/** `\xFF S H L`: the first bytes of every CRDT value. */
export const CRDT_MAGIC = Uint8Array.of(0xff, 0x53, 0x48, 0x4c)
const HEADER_BYTES = CRDT_MAGIC.length + 2
const VERSION = 1
const TYPE_BYTE = { counter: 1, set: 2 } as const

export type CrdtType = keyof typeof TYPE_BYTE

/** A decoded CRDT value. */
export type CrdtValue =
  | { readonly type: 'counter', readonly state: CounterState }
  | { readonly type: 'set', readonly state: OrSetState }

/** Whether bytes start with the reserved prefix (whether or not the rest decodes). */
export function isReserved (value: Uint8Array): boolean {
  if (value.byteLength < CRDT_MAGIC.length) return false
  for (let i = 0; i < CRDT_MAGIC.length; i++) {
    if (value[i] !== CRDT_MAGIC[i]) return false
  }
  return true
}

/** A plain put or update of a value in the reserved space is refused: it could pose as a CRDT. */
export function refuseReserved (value: Uint8Array): void {
  if (isReserved(value)) {
    throw new InvalidArgumentError('a value may not start with the bytes ff 53 48 4c: they mark Shoal\'s counters and sets (use counter() or set() to write those)')
  }
}

/** Canonical bytes of a CRDT value: equal states give identical bytes. */
export function encodeCrdt (value: CrdtValue): Uint8Array {
  const body = value.type === 'counter' ? counter.encodeBody(value.state) : orset.encodeBody(value.state)
  const out = new Uint8Array(HEADER_BYTES + body.byteLength)
  out.set(CRDT_MAGIC)
  out[CRDT_MAGIC.length] = TYPE_BYTE[value.type]
  out[CRDT_MAGIC.length + 1] = VERSION
  out.set(body, HEADER_BYTES)
  return out
}

/**
 * The CRDT a value holds, or undefined for anything else: a plain value, an unknown type or
 * version (a newer writer), or a malformed body. Such values are opaque, never an error: they
 * stay siblings as any plain value would.
 */
export function decodeCrdt (value: Uint8Array): CrdtValue | undefined {
  if (!isReserved(value) || value.byteLength < HEADER_BYTES || value[CRDT_MAGIC.length + 1] !== VERSION) return undefined
  const body = value.subarray(HEADER_BYTES)
  try {
    switch (value[CRDT_MAGIC.length]) {
      case TYPE_BYTE.counter: return { type: 'counter', state: counter.decodeBody(body) }
      case TYPE_BYTE.set: return { type: 'set', state: orset.decodeBody(body) }
      default: return undefined
    }
  } catch (err) {
    if (err instanceof MalformedDataError) return undefined
    throw err
  }
}

/** The least upper bound of two states of one type. */
export function joinCrdt (a: CrdtValue, b: CrdtValue): CrdtValue {
  if (a.type === 'counter' && b.type === 'counter') return { type: 'counter', state: counter.join(a.state, b.state) }
  if (a.type === 'set' && b.type === 'set') return { type: 'set', state: orset.join(a.state, b.state) }
  throw new InvalidArgumentError(`cannot join a ${a.type} with a ${b.type}`)
}

/**
 * Siblings that are all states of one CRDT type, decoded; undefined when any sibling is something
 * else (a plain value, a tombstone, another type, a malformed body).
 */
export function sameTypeStates (siblings: ReadonlyArray<Uint8Array | null>): CrdtValue[] | undefined {
  const states: CrdtValue[] = []
  for (const sibling of siblings) {
    if (sibling === null) return undefined
    const state = decodeCrdt(sibling)
    if (state === undefined || (states[0] !== undefined && states[0].type !== state.type)) return undefined
    states.push(state)
  }
  return states.length === 0 ? undefined : states
}

/**
 * The join of sibling values that are all states of one CRDT type, as canonical bytes; undefined
 * when they are not (then the siblings are left for the caller's resolver).
 */
export function joinValues (siblings: readonly Uint8Array[]): Uint8Array | undefined {
  const states = sameTypeStates(siblings)
  if (states === undefined) return undefined
  return encodeCrdt(states.reduce(joinCrdt))
}

/** Whether every state encodes to the same canonical bytes (a hostile or old encoder may differ only in form). */
export function allEqual (states: readonly CrdtValue[]): boolean {
  const first = states[0]
  if (first === undefined) return true
  const bytes = encodeCrdt(first)
  return states.every(s => bytesEqual(encodeCrdt(s), bytes))
}
