/**
 * Random valid messages for every wire decoder, from one SimRandom: the seeds the fuzzer mutates.
 * They favour edge values (empty and full-size keys, counters at 2^53 - 1, 32 addresses, every
 * request and response type) because a mutation of an edge is most likely to cross a bound.
 */
import { bytesId, fromBytesId } from '../../src/core/bytes.ts'
import { EMPTY_COUNTER, MAX_ACTOR_BYTES, bump } from '../../src/core/crdt/counter.ts'
import type { CounterState } from '../../src/core/crdt/counter.ts'
import { EMPTY_SET, MAX_MEMBER_BYTES, TAG_BYTES, add as orsetAdd, remove as orsetRemove } from '../../src/core/crdt/orset.ts'
import type { OrSetState } from '../../src/core/crdt/orset.ts'
import type { CrdtValue } from '../../src/core/crdt/typed-value.ts'
import type { DvvSet, Sibling, VersionVector } from '../../src/core/causality.ts'
import type { KvRequest, KvResponse } from '../../src/core/coordinator/messages.ts'
import type { Heartbeat } from '../../src/core/membership-agent.ts'
import { validateRecord } from '../../src/core/membership.ts'
import type { MemberRecord, MemberStatus } from '../../src/core/membership.ts'
import type { CopyState, KeyDigest, KeyObject, SyncRequest, SyncResponse } from '../../src/core/sync/messages.ts'
import { HASH_BYTES } from '../../src/core/merkle.ts'
import type { AdminRequest, AdminResponse } from '../../src/net/codec.ts'
import { DIGEST_BYTES } from '../../src/net/sync-codec.ts'
import type { SimRandom } from '../../src/sim/random.ts'
import { fakePeerId } from '../../src/sim/random.ts'

const MAX_SAFE = Number.MAX_SAFE_INTEGER
const STATUSES: readonly MemberStatus[] = ['joining', 'up', 'leaving', 'left']
const COPY_STATES: readonly CopyState[] = ['absent', 'same', 'different']
// Text with one-, two-, three- and four-byte UTF-8 characters.
const ALPHABET = ['a', 'b', 'z', '0', '-', '/', 'é', 'ß', 'Ж', '€', '中', '🦈', '\u0000', ' ']

export function bytes (rng: SimRandom, min: number, max: number): Uint8Array {
  const out = new Uint8Array(rng.int(min, max))
  for (let i = 0; i < out.length; i++) out[i] = rng.int(0, 255)
  return out
}

export function text (rng: SimRandom, min: number, max: number): string {
  let s = ''
  const length = rng.int(min, max)
  for (let i = 0; i < length; i++) s += rng.pick(ALPHABET)
  return s
}

function count (rng: SimRandom): number {
  return rng.pick([1, 2, 3, rng.int(1, 1000), rng.int(1, MAX_SAFE), MAX_SAFE])
}

function key (rng: SimRandom): Uint8Array {
  return rng.chance(0.05) ? bytes(rng, 1024, 1024) : bytes(rng, 1, 24)
}

function actor (rng: SimRandom): string {
  return rng.chance(0.5) ? fakePeerId(() => rng.next()) : text(rng, 1, 12)
}

export function versionVector (rng: SimRandom): VersionVector {
  const vv = new Map<string, number>()
  const entries = rng.int(0, 4)
  for (let i = 0; i < entries; i++) vv.set(actor(rng), count(rng))
  return vv
}

/** A valid object: each sibling's dot at or below its actor's vv entry, dots unique. */
export function object (rng: SimRandom): DvvSet {
  const vv = versionVector(rng)
  const siblings: Sibling[] = []
  for (const [who, counter] of vv) {
    const dots = new Set<number>()
    for (let i = rng.int(0, 2); i > 0; i--) dots.add(Math.max(1, counter - rng.int(0, 3)))
    for (const c of dots) {
      siblings.push({
        dot: { actor: who, counter: c },
        value: rng.chance(0.2) ? null : bytes(rng, 0, 24),
        timestamp: rng.chance(0.3) ? 0 : rng.int(0, MAX_SAFE)
      })
    }
  }
  siblings.sort((a, b) => a.dot.actor < b.dot.actor ? -1 : a.dot.actor > b.dot.actor ? 1 : a.dot.counter - b.dot.counter)
  return { vv, siblings }
}

export function record (rng: SimRandom, id: string = actor(rng)): MemberRecord {
  const addrs: string[] = []
  for (let i = rng.chance(0.05) ? 32 : rng.int(0, 3); i > 0; i--) addrs.push(`/ip4/127.0.0.${rng.int(1, 254)}/tcp/${rng.int(1, 65535)}/${text(rng, 0, 8)}`)
  const signed = rng.chance(0.5)
  return validateRecord({
    id,
    incarnation: rng.chance(0.2) ? 0 : count(rng),
    seq: rng.chance(0.2) ? 0 : count(rng),
    status: rng.pick(STATUSES),
    addrs,
    weight: rng.pick([1, 0.5, 1000, rng.next() * 999 + 0.001]),
    ...(signed ? { signer: rng.chance(0.8) ? id : actor(rng), signature: bytes(rng, 1, 80) } : {})
  })
}

export function heartbeat (rng: SimRandom, id?: string): Heartbeat {
  return { record: record(rng, id), digest: rng.chance(0.2) ? '' : text(rng, 1, 64) }
}

export function memberList (rng: SimRandom): MemberRecord[] {
  const out: MemberRecord[] = []
  for (let i = rng.int(0, 5); i > 0; i--) out.push(record(rng))
  return out
}

export function kvRequest (rng: SimRandom): KvRequest {
  const k = key(rng)
  switch (rng.int(0, 3)) {
    case 0: return { type: 'read', key: k }
    case 1: return rng.chance(0.5)
      ? { type: 'write', key: k, object: object(rng) }
      : { type: 'write', key: k, object: object(rng), hintFor: fakePeerId(() => rng.next()) }
    case 2: return {
      type: 'put',
      key: k,
      value: rng.chance(0.2) ? null : bytes(rng, 0, 32),
      context: versionVector(rng),
      ...(rng.chance(0.5) ? { w: rng.int(1, 5) } : {}),
      ...(rng.chance(0.2) ? { forwarded: true } : {})
    }
    default: return rng.chance(0.5) ? { type: 'get', key: k } : { type: 'get', key: k, r: rng.int(1, 5) }
  }
}

export function kvResponse (rng: SimRandom): KvResponse {
  switch (rng.int(0, 4)) {
    case 0: return rng.chance(0.3) ? { type: 'read' } : { type: 'read', object: object(rng) }
    case 1: return { type: 'written' }
    case 2: return { type: 'put', object: object(rng) }
    case 3: return rng.chance(0.3) ? { type: 'get' } : { type: 'get', object: object(rng) }
    default: return { type: 'error', name: text(rng, 1, 20), message: text(rng, 0, 60) }
  }
}

function numbers (rng: SimRandom, max: number, below: number): number[] {
  const out: number[] = []
  for (let i = rng.int(0, max); i > 0; i--) out.push(rng.chance(0.1) ? below - 1 : rng.int(0, Math.min(below - 1, 100)))
  return out
}

function keyDigests (rng: SimRandom): KeyDigest[] {
  const out: KeyDigest[] = []
  for (let i = rng.int(0, 4); i > 0; i--) out.push({ key: key(rng), digest: bytes(rng, DIGEST_BYTES, DIGEST_BYTES) })
  return out
}

function keyObjects (rng: SimRandom): KeyObject[] {
  const out: KeyObject[] = []
  for (let i = rng.int(0, 3); i > 0; i--) out.push({ key: key(rng), object: object(rng) })
  return out
}

export function syncRequest (rng: SimRandom): SyncRequest {
  switch (rng.int(0, 6)) {
    case 0: return { type: 'roots', partitions: numbers(rng, 8, 65536), summary: bytes(rng, 32, 32) }
    case 1: return { type: 'children', partition: rng.int(0, 70), level: rng.int(0, 31), indexes: numbers(rng, 6, 1 << 20) }
    case 2: return { type: 'keys', partition: rng.int(0, 70), segments: numbers(rng, 6, 1 << 20) }
    case 3: {
      const keys: Uint8Array[] = []
      for (let i = rng.int(0, 4); i > 0; i--) keys.push(key(rng))
      return { type: 'fetch', keys }
    }
    case 4: return { type: 'push', entries: keyObjects(rng) }
    case 5: return { type: 'purge-check', entries: keyDigests(rng) }
    default: return { type: 'purge', entries: keyDigests(rng) }
  }
}

export function syncResponse (rng: SimRandom): SyncResponse {
  const hashes = (): Uint8Array[] => {
    const out: Uint8Array[] = []
    for (let i = rng.int(0, 8); i > 0; i--) out.push(bytes(rng, HASH_BYTES, HASH_BYTES))
    return out
  }
  switch (rng.int(0, 7)) {
    case 0: return rng.chance(0.3) ? { type: 'roots', same: true, roots: [] } : { type: 'roots', same: false, roots: hashes() }
    case 1: return { type: 'children', hashes: hashes() }
    case 2: return { type: 'keys', entries: keyDigests(rng) }
    case 3: return { type: 'objects', entries: keyObjects(rng) }
    case 4: return { type: 'pushed', changed: rng.int(0, 100_000) }
    case 5: return { type: 'copies', states: Array.from({ length: rng.int(0, 6) }, () => rng.pick(COPY_STATES)) }
    case 6: return { type: 'purged', count: rng.int(0, 100_000) }
    default: return { type: 'error', name: text(rng, 1, 20), message: text(rng, 0, 60) }
  }
}

export function adminRequest (rng: SimRandom): AdminRequest {
  const op = rng.pick(['status', 'leave', 'remove'] as const)
  return op === 'remove' ? { op, member: fakePeerId(() => rng.next()) } : { op }
}

export function adminResponse (rng: SimRandom): AdminResponse {
  return rng.chance(0.5)
    ? { type: 'ok', json: JSON.stringify({ peerId: fakePeerId(() => rng.next()), members: [text(rng, 0, 10)] }) }
    : { type: 'error', name: text(rng, 1, 20), message: text(rng, 0, 60) }
}

/** A counter or set value as the CRDT operations make it (actors and members are bytes ids). */
export function crdtValue (rng: SimRandom): CrdtValue {
  if (rng.chance(0.5)) {
    let state: CounterState = EMPTY_COUNTER
    for (let i = rng.int(0, 6); i > 0; i--) {
      const actor = bytesId(bytes(rng, 1, rng.chance(0.1) ? MAX_ACTOR_BYTES : 16))
      state = bump(state, actor, state.get(actor) ?? { p: 0, n: 0 }, rng.int(-1000, 1000) * (rng.chance(0.1) ? 1e9 : 1))
    }
    return { type: 'counter', state }
  }
  let state: OrSetState = EMPTY_SET
  for (let i = rng.int(0, 6); i > 0; i--) {
    const member = bytes(rng, 1, rng.chance(0.05) ? MAX_MEMBER_BYTES : 12)
    state = rng.chance(0.3) ? orsetRemove(state, member) : orsetAdd(state, member, bytes(rng, TAG_BYTES, TAG_BYTES))
    if (rng.chance(0.3) && state.adds.size > 0) state = orsetRemove(state, fromBytesId(rng.pick([...state.adds.keys()])))
  }
  return { type: 'set', state }
}
