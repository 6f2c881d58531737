import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { Level } from 'level'
import { bytesEqual, bytesId, fromBytesId, toBytes } from '../../src/core/bytes.ts'
import { EMPTY, equals, isDeleted, merge, objectDigest, update } from '../../src/core/causality.ts'
import type { DvvSet } from '../../src/core/causality.ts'
import type { Env, Timer } from '../../src/core/env.ts'
import { UnreachableError, TimeoutError, remoteError } from '../../src/core/errors.ts'
import { HASH_BYTES, MerkleTree } from '../../src/core/merkle.ts'
import { Ring } from '../../src/core/ring.ts'
import { AntiEntropy } from '../../src/core/sync/anti-entropy.ts'
import { exchange } from '../../src/core/sync/exchange.ts'
import type { ExchangeResult, SyncCall } from '../../src/core/sync/exchange.ts'
import { OwnershipHandoff } from '../../src/core/sync/handoff.ts'
import { HintedHandoff } from '../../src/core/sync/hints.ts'
import { LatencyMonitor } from '../../src/core/sync/load.ts'
import { SYNC_LIMITS } from '../../src/core/sync/messages.ts'
import type { KeyObject, SyncChannel, SyncRequest, SyncResponse } from '../../src/core/sync/messages.ts'
import { TombstoneReaper } from '../../src/core/sync/reaper.ts'
import { rootsOf, serveSync, summarize } from '../../src/core/sync/serve.ts'
import type { MemberCall } from '../../src/core/sync/worker.ts'
import { Store } from '../../src/store/store.ts'
import { eventually } from '../support/eventually.ts'

const PARTITIONS = 16

/** Virtual time: timers fire only when the test advances the clock. */
class ManualEnv implements Env {
  time = 0
  /** The delay of every timer asked for, in order. */
  readonly delays: number[] = []
  private readonly timers: Array<{ at: number, fn: () => void, live: boolean }> = []
  now = (): number => this.time
  random = (): number => 0.5
  setTimer = (ms: number, fn: () => void): Timer => {
    this.delays.push(ms)
    const timer = { at: this.time + ms, fn, live: true }
    this.timers.push(timer)
    return { cancel: () => { timer.live = false } }
  }

  /** Fires every timer due by now + ms, letting the promise work each one starts run in between. */
  async advance (ms: number): Promise<void> {
    const end = this.time + ms
    for (;;) {
      await turn()
      const due = this.timers.filter(t => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0]
      if (due === undefined) break
      due.live = false
      this.time = due.at
      due.fn()
    }
    this.time = end
  }
}

/** One macrotask: every microtask queued before it has run. */
const turn = async (): Promise<void> => { await new Promise<void>(resolve => setImmediate(resolve)) }

/** Waits for `promise`, firing the env's zero-delay timers it may wait on (a store's I/O takes real time). */
async function settle<T> (env: ManualEnv, promise: Promise<T>): Promise<T> {
  let done = false
  const watched = promise.finally(() => { done = true })
  while (!done) {
    await env.advance(0)
    await new Promise(resolve => setTimeout(resolve, 1))
  }
  return watched
}

/** Real timers, for workers driven by runNow only. */
const realEnv: Env = {
  now: () => Date.now(),
  random: () => 0.5,
  setTimer: (ms, fn) => {
    const t = setTimeout(fn, ms)
    return { cancel: () => { clearTimeout(t) } }
  }
}

type Deliver = () => Promise<SyncResponse>
/** Sees every request before it is delivered: may change it, drop it, fail it or change its answer. */
type Fault = (to: string, request: SyncRequest, deliver: Deliver) => Promise<SyncResponse>

/**
 * The network, faked: members are Stores in temp dirs, and a call goes straight to serveSync of
 * the member's store. Down members are unreachable; an error response becomes a rejection.
 */
class Net {
  readonly stores = new Map<string, Store>()
  readonly down = new Set<string>()
  readonly log: Array<{ to: string, request: SyncRequest, channel: SyncChannel }> = []
  fault: Fault | undefined
  private readonly dir: string

  constructor (dir: string) {
    this.dir = dir
  }

  async add (id: string): Promise<Store> {
    const store = await Store.open(join(this.dir, id), { partitions: PARTITIONS })
    this.stores.set(id, store)
    return store
  }

  store (id: string): Store {
    const store = this.stores.get(id)
    if (store === undefined) throw new Error(`no store ${id}`)
    return store
  }

  isUp = (member: string): boolean => !this.down.has(member)

  call: MemberCall = async (to, request, channel) => {
    this.log.push({ to, request, channel })
    const store = this.stores.get(to)
    if (store === undefined || this.down.has(to)) throw new UnreachableError(`${to} is unreachable`)
    const deliver: Deliver = async () => await serveSync(store, request)
    const response = this.fault === undefined ? await deliver() : await this.fault(to, request, deliver)
    if (response.type === 'error') throw remoteError(response.name, response.message)
    return response
  }

  /** An exchange's view of one member. */
  to (member: string): SyncCall {
    return async request => await this.call(member, request, 'sync')
  }

  requests (type: SyncRequest['type'], to?: string): SyncRequest[] {
    return this.log.filter(e => e.request.type === type && (to === undefined || e.to === to)).map(e => e.request)
  }

  async close (): Promise<void> {
    await Promise.allSettled([...this.stores.values()].map(async s => s.close()))
  }
}

async function write (store: Store, key: Uint8Array, value: string | Uint8Array | null, timestamp = 1000, context = true): Promise<DvvSet> {
  const bytes = value === null ? null : typeof value === 'string' ? toBytes(value) : value
  const object = await store.modify(key, current => update(current, context ? current?.vv ?? new Map() : new Map(), store.actorId, bytes, timestamp))
  assert.ok(object !== undefined)
  return object
}

/** Copy `from`'s object of the key to `to`, as a replica write would. */
async function replicate (from: Store, to: Store, key: Uint8Array): Promise<void> {
  const object = await from.get(key)
  assert.ok(object !== undefined)
  await to.merge(key, object)
}

/** `count` keys that all fall in `partition`. */
function keysIn (partition: number, count: number, prefix = 'k'): Uint8Array[] {
  const ring = new Ring([{ id: 'x', weight: 1 }], { partitions: PARTITIONS })
  const keys: Uint8Array[] = []
  for (let i = 0; keys.length < count; i++) {
    const key = toBytes(`${prefix}${i}`)
    if (ring.partitionOf(key) === partition) keys.push(key)
  }
  return keys
}

/** Every object a store holds, by bytesId of the key. */
async function contents (store: Store): Promise<Map<string, DvvSet>> {
  const out = new Map<string, DvvSet>()
  for (let p = 0; p < store.partitions; p++) {
    for await (const { key, object } of store.scan(p)) out.set(bytesId(key), object)
  }
  return out
}

function mergeOf (a: DvvSet | undefined, b: DvvSet | undefined): DvvSet {
  return a === undefined ? b ?? EMPTY : b === undefined ? a : merge(a, b)
}

/** Key by key, the merge of two replicas' contents. */
function mergedContents (a: ReadonlyMap<string, DvvSet>, b: ReadonlyMap<string, DvvSet>): Map<string, DvvSet> {
  const out = new Map<string, DvvSet>()
  for (const id of new Set([...a.keys(), ...b.keys()])) out.set(id, mergeOf(a.get(id), b.get(id)))
  return out
}

/** Keys on one side only or with different digests. */
function differingIds (a: ReadonlyMap<string, DvvSet>, b: ReadonlyMap<string, DvvSet>): Set<string> {
  const ids = new Set<string>()
  for (const id of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(id)
    const y = b.get(id)
    if (x === undefined || y === undefined || !bytesEqual(objectDigest(x), objectDigest(y))) ids.add(id)
  }
  return ids
}

function assertSameContents (actual: ReadonlyMap<string, DvvSet>, expected: ReadonlyMap<string, DvvSet>, what: string): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: the same keys`)
  for (const [id, object] of expected) {
    assert.ok(equals(actual.get(id)!, object), `${what}: key ${JSON.stringify(id)} holds the expected object`)
  }
}

/** Every partition's tree matches a tree rebuilt from its objects. */
async function assertTreesConsistent (store: Store): Promise<void> {
  for (let p = 0; p < store.partitions; p++) {
    const fresh = new MerkleTree()
    for await (const { key, object } of store.scan(p)) fresh.update(key, undefined, objectDigest(object))
    assert.ok((await store.tree(p)).equals(fresh), `partition ${p}'s tree matches its objects`)
  }
}

async function assertSameTrees (a: Store, b: Store): Promise<void> {
  for (let p = 0; p < a.partitions; p++) assert.ok((await a.tree(p)).equals(await b.tree(p)), `partition ${p}: equal trees`)
}

/** Each key of `after` is unchanged from `before` or is the merge of both replicas' copies; no key came from nowhere. */
function assertOnlyValidMerges (after: ReadonlyMap<string, DvvSet>, before: ReadonlyMap<string, DvvSet>, other: ReadonlyMap<string, DvvSet>): void {
  for (const [id, object] of after) {
    const mine = before.get(id)
    const merged = mergeOf(mine, other.get(id))
    assert.ok((mine !== undefined && equals(object, mine)) || equals(object, merged), `key ${JSON.stringify(id)} is unchanged or a valid merge`)
  }
  for (const id of before.keys()) assert.ok(after.has(id), 'nothing held was lost')
}

function keysOf (requests: readonly SyncRequest[]): string[] {
  const ids: string[] = []
  for (const r of requests) {
    if (r.type === 'fetch') ids.push(...r.keys.map(k => bytesId(k)))
    if (r.type === 'push') ids.push(...r.entries.map(e => bytesId(e.key)))
  }
  return ids
}

function sorted (ids: Iterable<string>): string[] {
  return [...ids].sort()
}

/** A write to one replica, the other, or both (one write, then replicated). */
interface Op {
  key: number
  side: 'a' | 'b' | 'both'
  value: string | null
  /** With the replica's current context (replaces what it holds) or none (adds a sibling). */
  context: boolean
}

const opArb: fc.Arbitrary<Op> = fc.record({
  key: fc.integer({ min: 0, max: 40 }),
  side: fc.constantFrom<'a' | 'b' | 'both'>('a', 'b', 'both'),
  value: fc.option(fc.string({ maxLength: 8 }), { nil: null, freq: 6 }),
  context: fc.boolean()
})

async function applyOps (a: Store, b: Store, ops: readonly Op[]): Promise<void> {
  for (const [i, op] of ops.entries()) {
    const key = toBytes(`key-${op.key}`)
    const target = op.side === 'b' ? b : a
    await write(target, key, op.value, i + 1, op.context)
    if (op.side === 'both') await replicate(a, b, key)
  }
}

describe('sync', () => {
  let dir: string
  let nets: Net[]

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-sync-'))
    nets = []
  })

  afterEach(async () => {
    await Promise.allSettled(nets.map(async n => n.close()))
    await rm(dir, { recursive: true, force: true })
  })

  async function net (...members: string[]): Promise<Net> {
    const n = new Net(await mkdtemp(join(dir, 'net-')))
    nets.push(n)
    for (const m of members) await n.add(m)
    return n
  }

  /** Runs `fn` on a fresh pair of stores, closed and removed afterwards: for property runs. */
  async function withPair (fn: (n: Net, a: Store, b: Store) => Promise<void>): Promise<void> {
    const path = await mkdtemp(join(dir, 'run-'))
    const n = new Net(path)
    try {
      const a = await n.add('a')
      const b = await n.add('b')
      await fn(n, a, b)
    } finally {
      await n.close()
      await rm(path, { recursive: true, force: true })
    }
  }

  describe('serveSync', () => {
    let n: Net
    let s: Store
    let keys: Uint8Array[]

    beforeEach(async () => {
      n = await net('s')
      s = n.store('s')
      keys = Array.from({ length: 40 }, (_, i) => toBytes(`served-${i}`))
      for (const [i, key] of keys.entries()) await write(s, key, `v${i}`)
    })

    async function serve (request: SyncRequest): Promise<SyncResponse> {
      return await serveSync(s, request)
    }

    function expectError (response: SyncResponse, name: string): void {
      assert.equal(response.type, 'error')
      assert.equal(response.type === 'error' && response.name, name)
    }

    it('roots: answers same and no roots when the summaries match, else one root per partition in order', async () => {
      const partitions = [3, 0, 15]
      const roots = await rootsOf(s, partitions)
      assert.deepEqual(await serve({ type: 'roots', partitions, summary: summarize(roots) }), { type: 'roots', same: true, roots: [] })
      const answer = await serve({ type: 'roots', partitions, summary: new Uint8Array(32) })
      assert.ok(answer.type === 'roots' && !answer.same)
      assert.equal(answer.roots.length, 3)
      for (const [i, p] of partitions.entries()) assert.ok(bytesEqual(answer.roots[i]!, (await s.tree(p)).root()))
    })

    it('roots: a partition out of range is an error response, not a throw', async () => {
      for (const bad of [-1, PARTITIONS, 1.5, Number.NaN]) {
        expectError(await serve({ type: 'roots', partitions: [0, bad], summary: new Uint8Array(32) }), 'InvalidArgumentError')
      }
    })

    it('children: fanout hashes per index, in request order, as the tree holds them', async () => {
      const p = s.partitionOf(keys[0]!)
      const tree = await s.tree(p)
      const root = await serve({ type: 'children', partition: p, level: 0, indexes: [0] })
      assert.ok(root.type === 'children')
      assert.deepEqual(root.hashes, tree.children(0, 0))
      const inner = await serve({ type: 'children', partition: p, level: 1, indexes: [5, 2] })
      assert.ok(inner.type === 'children')
      assert.deepEqual(inner.hashes, [...tree.children(1, 5), ...tree.children(1, 2)])
    })

    it('children: a bad partition, level or index is an error response', async () => {
      const ok = { type: 'children', partition: 1, level: 0, indexes: [0] } as const
      expectError(await serve({ ...ok, partition: PARTITIONS }), 'InvalidArgumentError')
      expectError(await serve({ ...ok, partition: -1 }), 'InvalidArgumentError')
      expectError(await serve({ ...ok, level: 2 }), 'InvalidArgumentError') // the segments: no children
      expectError(await serve({ ...ok, level: 3 }), 'InvalidArgumentError')
      expectError(await serve({ ...ok, level: -1 }), 'InvalidArgumentError')
      expectError(await serve({ ...ok, level: 0, indexes: [1] }), 'InvalidArgumentError')
      expectError(await serve({ ...ok, level: 1, indexes: [0, 8] }), 'InvalidArgumentError')
      expectError(await serve({ ...ok, level: 1, indexes: [0.5] }), 'InvalidArgumentError')
    })

    it('keys: the keys of the asked segments with their digests; a bad partition is an error response', async () => {
      const p = s.partitionOf(keys[0]!)
      const segments = [0, 7, 20, 33, 63]
      const answer = await serve({ type: 'keys', partition: p, segments })
      assert.ok(answer.type === 'keys')
      assert.deepEqual(answer.entries, await s.segmentKeys(p, segments))
      expectError(await serve({ type: 'keys', partition: PARTITIONS, segments }), 'InvalidArgumentError')
    })

    it('fetch: the objects of the keys held, in request order, skipping keys not held', async () => {
      const asked = [keys[5]!, toBytes('absent'), keys[1]!, keys[30]!]
      const answer = await serve({ type: 'fetch', keys: asked })
      assert.ok(answer.type === 'objects')
      assert.deepEqual(answer.entries.map(e => bytesId(e.key)), [keys[5]!, keys[1]!, keys[30]!].map(k => bytesId(k)))
      for (const { key, object } of answer.entries) assert.ok(equals(object, (await s.get(key))!))
    })

    it('fetch: stops past the byte budget, always sending at least one object', async () => {
      const big = Array.from({ length: 3 }, (_, i) => toBytes(`big-${i}`))
      const value = new Uint8Array(Math.ceil(SYNC_LIMITS.batchBytes * 0.6))
      for (const key of big) await write(s, key, value)
      const first = await serve({ type: 'fetch', keys: big })
      assert.ok(first.type === 'objects')
      assert.equal(first.entries.length, 1)
      const huge = toBytes('huge')
      await write(s, huge, new Uint8Array(SYNC_LIMITS.batchBytes + 10))
      const alone = await serve({ type: 'fetch', keys: [huge, big[0]!] })
      assert.ok(alone.type === 'objects')
      assert.deepEqual(alone.entries.map(e => bytesId(e.key)), [bytesId(huge)])
    })

    it('push: merges every object and counts those that changed the copy here', async () => {
      const other = update(undefined, new Map(), 'peer-x', toBytes('concurrent'), 5)
      const held = (await s.get(keys[0]!))!
      const answer = await serve({
        type: 'push',
        entries: [{ key: keys[0]!, object: other }, { key: keys[1]!, object: (await s.get(keys[1]!))! }, { key: toBytes('new'), object: other }]
      })
      assert.deepEqual(answer, { type: 'pushed', changed: 2 })
      assert.ok(equals((await s.get(keys[0]!))!, merge(held, other)))
      assert.ok(equals((await s.get(toBytes('new')))!, other))
      assert.deepEqual(await serve({ type: 'push', entries: [{ key: toBytes('new'), object: other }] }), { type: 'pushed', changed: 0 })
      await assertTreesConsistent(s)
    })

    it('purge-check: absent, same and different, and a pending hint makes any copy different', async () => {
      const same = keys[0]!
      const changed = keys[1]!
      const hinted = keys[2]!
      const hintedOnly = toBytes('hinted-only')
      const digestOf = async (k: Uint8Array): Promise<Uint8Array> => objectDigest((await s.get(k))!)
      const sameDigest = await digestOf(same)
      const staleDigest = await digestOf(changed)
      await write(s, changed, 'newer')
      const hintedDigest = await digestOf(hinted)
      await s.putHint('peer-b', hinted, update(undefined, new Map(), 'peer-x', toBytes('old'), 1))
      await s.putHint('peer-b', hintedOnly, update(undefined, new Map(), 'peer-x', toBytes('old'), 1))

      const answer = await serve({
        type: 'purge-check',
        entries: [
          { key: toBytes('absent'), digest: sameDigest },
          { key: same, digest: sameDigest },
          { key: changed, digest: staleDigest },
          { key: hinted, digest: hintedDigest },
          { key: hintedOnly, digest: sameDigest }
        ]
      })
      assert.deepEqual(answer, { type: 'copies', states: ['absent', 'same', 'different', 'different', 'different'] })
    })

    it('purge: deletes only the objects whose digest still matches, keeping the trees consistent', async () => {
      const stale = objectDigest((await s.get(keys[1]!))!)
      await write(s, keys[1]!, 'newer')
      const answer = await serve({
        type: 'purge',
        entries: [
          { key: keys[0]!, digest: objectDigest((await s.get(keys[0]!))!) },
          { key: keys[1]!, digest: stale },
          { key: toBytes('absent'), digest: stale },
          { key: keys[2]!, digest: new Uint8Array(16) }
        ]
      })
      assert.deepEqual(answer, { type: 'purged', count: 1 })
      assert.equal(await s.get(keys[0]!), undefined)
      assert.ok(await s.get(keys[1]!) !== undefined)
      assert.ok(await s.get(keys[2]!) !== undefined)
      await assertTreesConsistent(s)
    })

    it('answers a malformed request or a closed store with an error response, never a throw', async () => {
      const malformed = { type: 'roots', partitions: null, summary: new Uint8Array(32) } as unknown as SyncRequest
      assert.equal((await serve(malformed)).type, 'error')
      await s.close()
      expectError(await serve({ type: 'fetch', keys: [keys[0]!] }), 'StoreClosedError')
      expectError(await serve({ type: 'roots', partitions: [0], summary: new Uint8Array(32) }), 'StoreClosedError')
    })
  })

  describe('exchange', () => {
    it('mode both: each side ends with the merge of both, trees equal, and only differing keys move', async function () {
      this.timeout(120_000)
      await fc.assert(fc.asyncProperty(fc.array(opArb, { maxLength: 80 }), async (ops) => {
        await withPair(async (n, a, b) => {
          await applyOps(a, b, ops)
          const a0 = await contents(a)
          const b0 = await contents(b)
          const expected = mergedContents(a0, b0)
          const differing = differingIds(a0, b0)

          const result = await exchange(a, n.to('b'), Array.from({ length: PARTITIONS }, (_, p) => p), { mode: 'both' })

          assertSameContents(await contents(a), expected, 'here')
          assertSameContents(await contents(b), expected, 'there')
          await assertSameTrees(a, b)
          await assertTreesConsistent(a)
          await assertTreesConsistent(b)

          assert.equal(result.compared, PARTITIONS)
          assert.equal(result.keysDiffering, differing.size)
          assert.equal(result.repairedHere, [...expected].filter(([id, o]) => !equals(o, a0.get(id) ?? EMPTY)).length)
          assert.equal(result.repairedThere, [...expected].filter(([id, o]) => !equals(o, b0.get(id) ?? EMPTY)).length)
          assert.equal(result.truncated, false)

          // Only the differing keys travel: fetched if the other side holds them, pushed back unless
          // the merge here came out equal to their copy.
          const fetched = keysOf(n.requests('fetch'))
          const pushed = keysOf(n.requests('push'))
          assert.deepEqual(sorted(fetched), sorted([...differing].filter(id => b0.has(id))))
          assert.deepEqual(sorted(pushed), sorted([...differing].filter(id => !b0.has(id) || !equals(expected.get(id)!, b0.get(id)!))))

          n.log.length = 0
          const again = await exchange(a, n.to('b'), Array.from({ length: PARTITIONS }, (_, p) => p), { mode: 'both' })
          assert.equal(again.differing, 0)
          assert.equal(again.keysDiffering, 0)
          assert.deepEqual(n.log.map(e => e.request.type), ['roots'], 'a quiet exchange is one summary')
        })
      }), { numRuns: 20 })
    })

    it('mode push: only the other side changes, and it ends covering every object sent', async function () {
      this.timeout(120_000)
      await fc.assert(fc.asyncProperty(fc.array(opArb, { maxLength: 80 }), async (ops) => {
        await withPair(async (n, a, b) => {
          await applyOps(a, b, ops)
          const a0 = await contents(a)
          const b0 = await contents(b)
          const aTrees = await Promise.all(Array.from({ length: PARTITIONS }, async (_, p) => await a.tree(p)))
          const differing = differingIds(a0, b0)

          const result = await exchange(a, n.to('b'), Array.from({ length: PARTITIONS }, (_, p) => p), { mode: 'push' })

          assertSameContents(await contents(a), a0, 'the sender is unchanged')
          for (let p = 0; p < PARTITIONS; p++) assert.ok((await a.tree(p)).equals(aTrees[p]!))
          const b1 = await contents(b)
          const expected = new Map(b0)
          for (const [id, object] of a0) expected.set(id, mergeOf(b0.get(id), object))
          assertSameContents(b1, expected, 'the receiver holds the merge')
          for (const [id, object] of a0) assert.ok(equals(merge(b1.get(id)!, object), b1.get(id)!), 'the receiver covers the sender')
          await assertTreesConsistent(b)

          assert.equal(result.repairedHere, 0)
          assert.equal(n.requests('fetch').length, 0, 'a push never fetches')
          assert.deepEqual(sorted(keysOf(n.requests('push'))), sorted([...differing].filter(id => a0.has(id))))
        })
      }), { numRuns: 20 })
    })

    it('an empty partition list asks nothing; equal replicas answer with one summary', async () => {
      const n = await net('a', 'b')
      const a = n.store('a')
      const b = n.store('b')
      assert.deepEqual(await exchange(a, n.to('b'), [], { mode: 'both' }), { compared: 0, differing: 0, keysDiffering: 0, repairedHere: 0, repairedThere: 0, truncated: false })
      assert.equal(n.log.length, 0)
      for (const key of keysIn(3, 5)) {
        await write(a, key, 'v')
        await replicate(a, b, key)
      }
      const result = await exchange(a, n.to('b'), [0, 3, 5], { mode: 'both' })
      assert.equal(result.differing, 0)
      assert.deepEqual(n.log.map(e => e.request.type), ['roots'])
    })

    it('maxKeys cuts an exchange short between partitions, and later exchanges finish the job', async () => {
      const n = await net('a', 'b')
      const a = n.store('a')
      const b = n.store('b')
      const partitions = [1, 4, 6, 9, 12]
      for (const p of partitions) for (const key of keysIn(p, 3)) await write(a, key, 'v')
      const all = Array.from({ length: PARTITIONS }, (_, p) => p)

      const first = await exchange(a, n.to('b'), all, { mode: 'both', maxKeys: 2, concurrency: 1 })
      assert.equal(first.truncated, true)
      assert.equal(first.differing, partitions.length)
      assert.equal(first.repairedThere, 3, 'one partition (its 3 keys) before the limit stopped it')
      assert.equal((await b.heldPartitions()).length, 1)

      let runs = 1
      for (;;) {
        const next = await exchange(a, n.to('b'), all, { mode: 'both', maxKeys: 2, concurrency: 1 })
        if (next.differing === 0) break
        runs++
        assert.ok(runs <= partitions.length, 'each exchange makes progress')
      }
      assert.equal(runs, partitions.length)
      assertSameContents(await contents(b), await contents(a), 'converged')
    })

    it('a fetch answer cut at the byte budget is asked again from where it stopped, and still converges', async function () {
      this.timeout(60_000)
      const n = await net('a', 'b')
      const a = n.store('a')
      const b = n.store('b')
      const big = keysIn(5, 3, 'big')
      // 3 × 0.4 of the budget: the first answer carries two, the second the last one.
      for (const key of big) await write(b, key, randomBytes(Math.ceil(SYNC_LIMITS.batchBytes * 0.4)))
      await write(b, keysIn(5, 1, 'small')[0]!, 'small')

      const result = await exchange(a, n.to('b'), [5], { mode: 'both' })
      assert.equal(result.repairedHere, 4)
      const fetches = n.requests('fetch')
      assert.equal(fetches.length, 2)
      assertSameContents(await contents(a), await contents(b), 'converged')
      await assertSameTrees(a, b)
    })

    it('a fake that cuts every fetch answer to one object still converges, one fetch per key', async () => {
      const n = await net('a', 'b')
      const a = n.store('a')
      const b = n.store('b')
      const keys = [...keysIn(2, 6, 'x'), ...keysIn(7, 4, 'y')]
      for (const key of keys) await write(b, key, 'theirs')
      await write(a, keys[0]!, 'mine', 1, false)
      n.fault = async (_to, request, deliver) => {
        const response = await deliver()
        return request.type === 'fetch' && response.type === 'objects' ? { ...response, entries: response.entries.slice(0, 1) } : response
      }
      await exchange(a, n.to('b'), [2, 7], { mode: 'both' })
      assert.equal(n.requests('fetch').length, keys.length)
      const expected = mergedContents(await contents(a), await contents(b))
      assertSameContents(await contents(a), expected, 'here')
      assertSameContents(await contents(b), expected, 'there')
    })

    describe('malformed replies', () => {
      let n: Net
      let a: Store
      let b: Store
      let a0: Map<string, DvvSet>
      let b0: Map<string, DvvSet>
      const all = Array.from({ length: PARTITIONS }, (_, p) => p)

      beforeEach(async () => {
        n = await net('a', 'b')
        a = n.store('a')
        b = n.store('b')
        for (let i = 0; i < 40; i++) {
          const key = toBytes(`m-${i}`)
          if (i < 30) await write(a, key, `a${i}`)
          if (i >= 20) await write(b, key, `b${i}`)
        }
        a0 = await contents(a)
        b0 = await contents(b)
      })

      /** Answers one type of request with what `change` makes of the true answer. */
      function corrupt (type: SyncRequest['type'], change: (response: SyncResponse, request: SyncRequest) => SyncResponse): void {
        n.fault = async (_to, request, deliver) => {
          const response = await deliver()
          return request.type === type ? change(response, request) : response
        }
      }

      async function assertUnchanged (): Promise<void> {
        assertSameContents(await contents(a), a0, 'here')
        await assertTreesConsistent(a)
      }

      it('too few roots reject with MalformedDataError and change nothing', async () => {
        corrupt('roots', r => r.type === 'roots' ? { ...r, roots: r.roots.slice(1) } : r)
        await assert.rejects(exchange(a, n.to('b'), all, { mode: 'both' }), { name: 'MalformedDataError' })
        await assertUnchanged()
      })

      it('a root of the wrong length rejects with MalformedDataError', async () => {
        corrupt('roots', r => r.type === 'roots' ? { ...r, roots: r.roots.map(x => x.slice(1)) } : r)
        await assert.rejects(exchange(a, n.to('b'), all, { mode: 'both' }), { name: 'MalformedDataError' })
        await assertUnchanged()
      })

      it('too few child hashes, or hashes of the wrong length, reject with MalformedDataError', async () => {
        corrupt('children', r => r.type === 'children' ? { ...r, hashes: r.hashes.slice(1) } : r)
        await assert.rejects(exchange(a, n.to('b'), all, { mode: 'both' }), { name: 'MalformedDataError' })
        corrupt('children', r => r.type === 'children' ? { ...r, hashes: r.hashes.map(h => h.slice(0, HASH_BYTES - 1)) } : r)
        await assert.rejects(exchange(a, n.to('b'), all, { mode: 'both' }), { name: 'MalformedDataError' })
        await assertUnchanged()
      })

      it('a fetched key of another partition rejects with MalformedDataError and is not stored', async () => {
        const stranger = toBytes('stranger')
        const planted = update(undefined, new Map(), 'peer-x', toBytes('planted'), 1)
        corrupt('fetch', (r, request) => {
          if (r.type !== 'objects' || request.type !== 'fetch') return r
          const partition = a.partitionOf(request.keys[0]!)
          assert.notEqual(a.partitionOf(stranger), partition)
          return { ...r, entries: [...r.entries.slice(0, 1), { key: stranger, object: planted }, ...r.entries.slice(1)] }
        })
        // stranger must not fall in the partition whose keys are fetched first.
        await assert.rejects(exchange(a, n.to('b'), all.filter(p => p !== a.partitionOf(stranger)), { mode: 'both', concurrency: 1 }), { name: 'MalformedDataError' })
        assert.equal(await a.get(stranger), undefined)
        const after = await contents(a)
        assertOnlyValidMerges(after, a0, b0)
        await assertTreesConsistent(a)
      })

      it('a fetched key that was not asked for rejects with MalformedDataError and is not stored', async () => {
        let planted: Uint8Array | undefined
        const object = update(undefined, new Map(), 'peer-x', toBytes('planted'), 1)
        corrupt('fetch', (r, request) => {
          if (r.type !== 'objects' || request.type !== 'fetch') return r
          planted = keysIn(a.partitionOf(request.keys[0]!), 1, 'unasked-')[0]!
          return { ...r, entries: [{ key: planted, object }] }
        })
        await assert.rejects(exchange(a, n.to('b'), all, { mode: 'both', concurrency: 1 }), { name: 'MalformedDataError' })
        assert.ok(planted !== undefined)
        assert.equal(await a.get(planted), undefined, 'the unasked key was not stored')
        await assertUnchanged()
      })

      it('an error response rejects with the remote error\'s name and changes nothing', async () => {
        corrupt('keys', () => ({ type: 'error', name: 'TimeoutError', message: 'deadline passed' }))
        await assert.rejects(exchange(a, n.to('b'), all, { mode: 'both' }), { name: 'TimeoutError' })
        await assertUnchanged()
        // Straight from serveSync, without a transport that turns it into a rejection first.
        const raw: SyncCall = async request => request.type === 'children'
          ? { type: 'error', name: 'InvalidArgumentError', message: 'no' }
          : await serveSync(b, request)
        await assert.rejects(exchange(a, raw, all, { mode: 'both' }), { name: 'InvalidArgumentError' })
        await assertUnchanged()
      })

      it('a response of the wrong type rejects with a ShoalError', async () => {
        corrupt('keys', () => ({ type: 'pushed', changed: 0 }))
        await assert.rejects(exchange(a, n.to('b'), all, { mode: 'both' }), { name: 'ShoalError', message: /expected a keys response, got pushed/ })
        await assertUnchanged()
      })

      it('a failed push leaves here only valid merges', async () => {
        n.fault = async (_to, request, deliver) => {
          if (request.type === 'push') throw new TimeoutError('deadline passed')
          return await deliver()
        }
        await assert.rejects(exchange(a, n.to('b'), all, { mode: 'both', concurrency: 1 }), { name: 'TimeoutError' })
        assertOnlyValidMerges(await contents(a), a0, b0)
        await assertTreesConsistent(a)
        assertSameContents(await contents(b), b0, 'there: nothing pushed')
      })
    })
  })

  describe('hinted handoff', () => {
    const members = ['h', 'o1', 'o2', 't']
    const ringOf = (ids: readonly string[]): Ring => new Ring(ids.map(id => ({ id, weight: 1 })), { partitions: PARTITIONS, n: 3 })
    let n: Net
    let h: Store
    let ring: Ring
    let hinted: KeyObject[]

    beforeEach(async () => {
      n = await net('h', 'o1', 'o2', 'o3', 't')
      h = n.store('h')
      ring = ringOf(members)
      hinted = Array.from({ length: 6 }, (_, i) => ({ key: toBytes(`hinted-${i}`), object: update(undefined, new Map(), 'coordinator', toBytes(`v${i}`), i + 1) }))
      for (const { key, object } of hinted) assert.equal(await h.putHint('t', key, object), true)
    })

    function handoff (options: { batch?: number } = {}): HintedHandoff {
      return new HintedHandoff({ self: 'h', env: new ManualEnv(), replica: h, ring: () => ring, isUp: n.isUp, call: n.call, ...options })
    }

    async function assertHeldBy (member: string, entries: readonly KeyObject[]): Promise<void> {
      for (const { key, object } of entries) {
        const held = await n.store(member).get(key)
        assert.ok(held !== undefined && equals(merge(held, object), held), `${member} covers the hinted copy`)
      }
    }

    it('delivers every hint to its target once it is up, deleting each after the ack', async () => {
      n.down.add('t')
      const hh = handoff({ batch: 4 })
      await hh.runNow()
      assert.equal(n.log.length, 0, 'nothing is sent to a target that is down')
      assert.deepEqual(hh.stats, { pending: hinted.length, delivered: 0 })

      n.down.delete('t')
      await hh.runNow()
      await assertHeldBy('t', hinted)
      assert.equal(await h.hintCount(), 0)
      assert.deepEqual(hh.stats, { pending: 0, delivered: hinted.length })
      assert.ok(n.log.every(e => e.to === 't' && e.channel === 'handoff' && e.request.type === 'push'))
      assert.equal(n.log.length, 2, 'two batches of at most 4')
      assert.equal(await h.get(hinted[0]!.key), undefined, 'a hint is never kept as the fallback\'s own data')
    })

    it('keeps every hint when the push fails', async () => {
      n.fault = async () => { throw new UnreachableError('connection refused') }
      const hh = handoff()
      await hh.runNow()
      assert.equal(await h.hintCount(), hinted.length)
      assert.deepEqual(hh.stats, { pending: hinted.length, delivered: 0 })
    })

    it('keeps a hint that was delivered but not acknowledged, and deletes it after a later ack', async () => {
      n.fault = async (_to, _request, deliver) => {
        await deliver()
        throw new TimeoutError('the ack was lost')
      }
      const hh = handoff()
      await hh.runNow()
      await assertHeldBy('t', hinted)
      assert.equal(await h.hintCount(), hinted.length)
      n.fault = undefined
      await hh.runNow()
      assert.equal(await h.hintCount(), 0)
      assert.deepEqual(hh.stats, { pending: 0, delivered: hinted.length })
    })

    it('keeps a hint that a newer write merged into while it was being sent, and sends that next round', async () => {
      const target = hinted[2]!
      const newer = update(target.object, target.object.vv, 'coordinator', toBytes('newer'), 100)
      let merged = false
      n.fault = async (_to, _request, deliver) => {
        const response = await deliver()
        if (!merged) {
          merged = true
          assert.equal(await h.putHint('t', target.key, newer), false)
        }
        return response
      }
      const hh = handoff()
      await hh.runNow()
      const left = []
      for await (const hint of h.hints()) left.push(hint)
      assert.equal(left.length, 1)
      assert.ok(bytesEqual(left[0]!.key, target.key) && equals(left[0]!.object, newer), 'the merged hint stays')
      assert.deepEqual(hh.stats, { pending: 1, delivered: hinted.length - 1 })

      await hh.runNow()
      assert.equal(await h.hintCount(), 0)
      assert.ok(equals((await n.store('t').get(target.key))!, newer))
      assert.deepEqual(hh.stats, { pending: 0, delivered: hinted.length })
    })

    it('sends the hints of a target gone from the ring to every current owner of each key', async () => {
      ring = ringOf(['h', 'o1', 'o2', 'o3'])
      const hh = handoff()
      await hh.runNow()
      assert.equal(n.requests('push', 't').length, 0, 'nothing goes to the member that left')
      for (const entry of hinted) {
        for (const owner of ring.owners(ring.partitionOf(entry.key))) await assertHeldBy(owner, [entry])
      }
      assert.equal(await h.hintCount(), 0)
      assert.deepEqual(hh.stats, { pending: 0, delivered: hinted.length })
    })

    it('sends a hint whose key the ring moved off its target to the key\'s current owners, not to the target', async () => {
      ring = ringOf(['h', 'o1', 'o2', 'o3', 't'])
      const owns = (entry: KeyObject): boolean => ring.owners(ring.partitionOf(entry.key)).includes('t')
      const partitions = Array.from({ length: PARTITIONS }, (_, p) => p)
      const away = partitions.find(p => !ring.owners(p).includes('t'))!
      const still = partitions.find(p => ring.owners(p).includes('t'))!
      for (const key of [...keysIn(away, 2, 'moved-'), ...keysIn(still, 2, 'stayed-')]) {
        const object = update(undefined, new Map(), 'coordinator', key, 1)
        assert.equal(await h.putHint('t', key, object), true)
        hinted.push({ key, object })
      }
      const stayed = hinted.filter(owns)
      const moved = hinted.filter(e => !owns(e))
      assert.ok(stayed.length > 0 && moved.length > 0, 'the ring moves some keys off t and keeps others')
      const hh = handoff()
      await hh.runNow()
      await assertHeldBy('t', stayed)
      for (const entry of moved) {
        assert.equal(await n.store('t').get(entry.key), undefined, 't no longer owns it and is not given it')
        for (const owner of ring.owners(ring.partitionOf(entry.key))) {
          if (owner === 'h') assert.ok(await h.get(entry.key) !== undefined, 'h owns it now and keeps it as its own')
          else await assertHeldBy(owner, [entry])
        }
      }
      assert.equal(await h.hintCount(), 0)
      assert.deepEqual(hh.stats, { pending: 0, delivered: hinted.length })
    })

    it('keeps the hints of a target gone from the ring while an owner of their keys is down', async () => {
      ring = ringOf(['h', 'o1', 'o2', 'o3'])
      n.down.add('o3')
      const hh = handoff({ batch: 1 })
      await hh.runNow()
      for (const entry of hinted) {
        const kept = (await h.hintDigests([entry.key])).size === 1
        assert.equal(kept, ring.owners(ring.partitionOf(entry.key)).includes('o3'), 'kept exactly when an owner is down')
      }
    })

    it('while leaving, hands a down target\'s hints to the key\'s live owners', async () => {
      n.down.add('t')
      const hh = handoff()
      await hh.runNow()
      assert.equal(await h.hintCount(), hinted.length, 'not leaving: the hints wait for the target')
      hh.setLeaving()
      await hh.runNow()
      assert.equal(await h.hintCount(), 0)
      for (const entry of hinted) {
        const live = ring.owners(ring.partitionOf(entry.key)).filter(o => o !== 't' && o !== 'h')
        assert.ok(live.length > 0)
        for (const owner of live) await assertHeldBy(owner, [entry])
      }
      assert.equal(n.requests('push', 't').length, 0)
      assert.deepEqual(hh.stats, { pending: 0, delivered: hinted.length })
    })

    it('while leaving, keeps the hints when no other live owner takes them', async () => {
      n.down.add('t')
      n.down.add('o1')
      n.down.add('o2')
      const hh = handoff()
      hh.setLeaving()
      await hh.runNow()
      assert.equal(await h.hintCount(), hinted.length)
      assert.equal(hh.stats.delivered, 0)
    })

    it('counts a hint stored while running as pending', async () => {
      n.down.add('t')
      const hh = handoff()
      await hh.runNow()
      const created = await h.putHint('t', toBytes('another'), hinted[0]!.object)
      hh.stored('t', created)
      assert.equal(hh.stats.pending, hinted.length + 1)
      hh.stored('t', await h.putHint('t', toBytes('another'), hinted[1]!.object))
      assert.equal(hh.stats.pending, hinted.length + 1, 'a hint merged into is not a new one')
    })
  })

  describe('ownership handoff', () => {
    const owners = ['o1', 'o2', 'o3']
    const ring = new Ring(owners.map(id => ({ id, weight: 1 })), { partitions: PARTITIONS, n: 3 })
    let n: Net
    let x: Store
    let held: Uint8Array[]

    beforeEach(async () => {
      n = await net('x', ...owners)
      x = n.store('x')
      held = Array.from({ length: 24 }, (_, i) => toBytes(`owned-elsewhere-${i}`))
      for (const [i, key] of held.entries()) await write(x, key, `v${i}`, i + 1)
      // The owners hold some of it already, some newer, and keys x never had.
      await replicate(x, n.store('o1'), held[0]!)
      await replicate(x, n.store('o2'), held[1]!)
      await write(n.store('o2'), held[1]!, 'newer on o2', 100)
      await write(n.store('o3'), toBytes('only-on-o3'), 'theirs')
    })

    function handoff (): OwnershipHandoff {
      return new OwnershipHandoff({ self: 'x', env: new ManualEnv(), replica: x, ring: () => ring, isUp: n.isUp, call: n.call })
    }

    async function assertOwnersCover (objects: ReadonlyMap<string, DvvSet>): Promise<void> {
      for (const owner of owners) {
        for (const [id, object] of objects) {
          const copy = await n.store(owner).get(fromBytesId(id))
          assert.ok(copy !== undefined && equals(merge(copy, object), copy), `${owner} covers ${id}`)
        }
      }
    }

    it('pushes every partition it no longer owns to all owners, then drops it', async () => {
      const before = await contents(x)
      const partitions = await x.heldPartitions()
      const hh = handoff()
      assert.equal(await hh.runNow(), 0)
      await assertOwnersCover(before)
      assert.deepEqual(await x.heldPartitions(), [])
      assert.equal(await x.get(toBytes('only-on-o3')), undefined, 'a push-only exchange brings nothing back')
      assert.equal(hh.stats.partitions, partitions.length)
      assert.equal(hh.stats.keysDropped, held.length)
      assert.ok(n.log.every(e => e.channel === 'handoff'))
      assert.equal(n.requests('fetch').length, 0)
      for (const owner of owners) await assertTreesConsistent(n.store(owner))
      await assertTreesConsistent(x)
    })

    it('drops nothing while an owner is down', async () => {
      n.down.add('o2')
      const before = await contents(x)
      const partitions = await x.heldPartitions()
      const hh = handoff()
      assert.equal(await hh.runNow(), partitions.length)
      assertSameContents(await contents(x), before, 'all kept')
      assert.equal(n.log.length, 0, 'nothing is sent while it could not be dropped')
    })

    it('drops nothing of a partition whose push to some owner failed', async () => {
      const before = await contents(x)
      const failing = x.partitionOf(held[5]!)
      n.fault = async (to, request, deliver) => {
        if (to === 'o3' && request.type === 'push' && request.entries.some(e => x.partitionOf(e.key) === failing)) throw new TimeoutError('deadline passed')
        return await deliver()
      }
      const hh = handoff()
      assert.equal(await hh.runNow(), 1)
      assert.deepEqual(await x.heldPartitions(), [failing])
      for (const [id, object] of before) {
        if (x.partitionOf(fromBytesId(id)) === failing) assert.ok(equals((await x.get(fromBytesId(id)))!, object))
      }
      n.fault = undefined
      assert.equal(await hh.runNow(), 0)
      await assertOwnersCover(before)
    })

    it('keeps a key written after the snapshot and hands it off next round', async () => {
      const p = x.partitionOf(held[3]!)
      const sibling = held.find(k => k !== held[3] && x.partitionOf(k) === p)
      const late = keysIn(p, 1, 'late-')[0]!
      let wrote = false
      n.fault = async (_to, request, deliver) => {
        if (!wrote && request.type === 'push' && request.entries.some(e => x.partitionOf(e.key) === p)) {
          wrote = true
          await write(x, held[3]!, 'written during the handoff', 500)
          await write(x, late, 'a new key during the handoff', 500)
        }
        return await deliver()
      }
      const hh = handoff()
      const partitions = (await x.heldPartitions()).length
      assert.equal(await hh.runNow(), 1, 'the partition still holds keys: it stays pending')
      assert.equal(hh.stats.partitions, partitions - 1, 'every other partition was handed off and dropped')
      const kept = await contents(x)
      assert.deepEqual(sorted(kept.keys()), sorted([bytesId(held[3]!), bytesId(late)]), 'only the writes after the snapshot stay')
      if (sibling !== undefined) assert.equal(await x.get(sibling), undefined)

      n.fault = undefined
      assert.equal(await hh.runNow(), 0)
      await assertOwnersCover(kept)
      assert.deepEqual(await x.heldPartitions(), [])
    })
  })

  describe('tombstone reaper', () => {
    const members = ['m1', 'm2', 'm3', 'm4']
    const ring = new Ring(members.map(id => ({ id, weight: 1 })), { partitions: PARTITIONS, n: 3 })
    const GRACE = 10_000
    const DELETED_AT = 1000
    let n: Net
    let env: ManualEnv
    let key: Uint8Array
    let self: string
    let owners: readonly string[]
    let outsider: string
    let old: DvvSet

    beforeEach(async () => {
      n = await net(...members)
      env = new ManualEnv()
      key = toBytes('doomed')
      const p = ring.partitionOf(key)
      owners = ring.owners(p)
      self = owners[0]!
      outsider = members.find(m => !owners.includes(m))!
      const first = n.store(self)
      old = await write(first, key, 'the old value', 10)
      for (const o of owners.slice(1)) await replicate(first, n.store(o), key)
      await write(first, key, null, DELETED_AT)
      for (const o of owners.slice(1)) await replicate(first, n.store(o), key)
    })

    function reaper (): TombstoneReaper {
      return new TombstoneReaper({ self, env, replica: n.store(self), ring: () => ring, isUp: n.isUp, call: n.call, members: () => members, graceMs: GRACE })
    }

    async function holders (): Promise<string[]> {
      const out: string[] = []
      for (const m of members) if (await n.store(m).get(key) !== undefined) out.push(m)
      return out
    }

    it('keeps a tombstone younger than the grace period without asking anyone', async () => {
      env.time = DELETED_AT + GRACE - 1
      const r = reaper()
      await r.runNow()
      assert.deepEqual(await holders(), [...owners].sort())
      assert.equal(n.log.length, 0)
    })

    it('past the grace period, with every member up and agreeing, purges it on every replica', async () => {
      env.time = DELETED_AT + GRACE
      const r = reaper()
      await r.runNow()
      assert.deepEqual(await holders(), [])
      assert.equal(r.stats.purged, 1)
      const others = members.filter(m => m !== self)
      assert.deepEqual(sorted(n.log.filter(e => e.request.type === 'purge-check').map(e => e.to)), sorted([...others, ...others]), 'every other member is asked, not only the owners, in two rounds')
      assert.equal(n.requests('purge', outsider).length, 0, 'a member without a copy is not told to purge')
      for (const m of members) await assertTreesConsistent(n.store(m))
    })

    it('purges nothing while any member is down, owner or not', async () => {
      env.time = DELETED_AT + GRACE
      n.down.add(outsider)
      const r = reaper()
      await r.runNow()
      assert.deepEqual(await holders(), [...owners].sort())
      assert.equal(n.log.length, 0)
    })

    it('purges nothing when a member does not answer', async () => {
      env.time = DELETED_AT + GRACE
      n.fault = async (to, _request, deliver) => {
        if (to === outsider) throw new TimeoutError('deadline passed')
        return await deliver()
      }
      const r = reaper()
      await r.runNow()
      assert.deepEqual(await holders(), [...owners].sort())
      assert.equal(r.stats.kept, 1)
      assert.equal(n.requests('purge').length, 0)
    })

    it('a member holding the old value blocks the purge', async () => {
      env.time = DELETED_AT + GRACE
      await n.store(outsider).merge(key, old)
      const r = reaper()
      await r.runNow()
      assert.deepEqual(await holders(), sorted([...owners, outsider]))
      assert.equal(r.stats.kept, 1)
      assert.equal(n.requests('purge').length, 0)
    })

    it('an owner that missed the delete blocks the purge', async () => {
      env.time = DELETED_AT + GRACE
      const lagging = owners[2]!
      await n.store(lagging).removeIfUnchanged(key, objectDigest((await n.store(lagging).get(key))!))
      await n.store(lagging).merge(key, old)
      const r = reaper()
      await r.runNow()
      assert.ok(!isDeleted((await n.store(lagging).get(key))!))
      assert.deepEqual(await holders(), [...owners].sort())
      assert.equal(r.stats.purged, 0)
    })

    it('an owner without any copy blocks the purge: owners must hold the same tombstone', async () => {
      env.time = DELETED_AT + GRACE
      const lagging = owners[1]!
      await n.store(lagging).removeIfUnchanged(key, objectDigest((await n.store(lagging).get(key))!))
      const r = reaper()
      await r.runNow()
      assert.deepEqual(await holders(), owners.filter(o => o !== lagging).sort())
      assert.equal(r.stats.purged, 0)
    })

    it('a pending hint for the key on any member blocks the purge', async () => {
      env.time = DELETED_AT + GRACE
      await n.store(outsider).putHint(owners[1]!, key, old)
      const r = reaper()
      await r.runNow()
      assert.deepEqual(await holders(), [...owners].sort())
      assert.equal(r.stats.purged, 0)
    })

    it('purges only while every member asked answers with the same member table as this one', async () => {
      // Found by the simulator (seed 77548): a member that rejoined unseen by the reaper took an
      // old copy and was never asked. Another view of the members anywhere means: not yet.
      env.time = DELETED_AT + GRACE
      const other = members.find(m => m !== self)!
      let views: Record<string, string> = { [other]: 'their view' }
      const call: typeof n.call = async (member, request, channel) => {
        const response = await n.call(member, request, channel)
        return response.type === 'copies' ? { ...response, members: views[member] ?? 'our view' } : response
      }
      const r = new TombstoneReaper({ self, env, replica: n.store(self), ring: () => ring, isUp: n.isUp, call, members: () => members, membersDigest: () => 'our view', graceMs: GRACE })
      await r.runNow()
      assert.equal(r.stats.purged, 0)
      assert.deepEqual(await holders(), sorted([...owners]))
      views = {}
      await r.runNow()
      assert.equal(r.stats.purged, 1, 'once the views agree')
      assert.deepEqual(await holders(), [])
    })

    it('a hint delivered during the check, from a member not yet asked to one already asked, blocks the purge', async () => {
      // Found by the simulator (seed 8604): the target, asked first, answered absent; the holder
      // delivered the hint before it was asked, so the first round saw the old value nowhere.
      env.time = DELETED_AT + GRACE
      const order = [outsider, ...members.filter(m => m !== outsider)]
      const holder = order.filter(m => m !== self).at(-1)!
      await n.store(holder).putHint(outsider, key, old)
      let moved = false
      n.fault = async (to, request, deliver) => {
        if (!moved && to === holder && request.type === 'purge-check') {
          moved = true
          await n.store(outsider).merge(key, old)
          assert.ok(await n.store(holder).deleteHint(outsider, key, objectDigest(old)))
        }
        return await deliver()
      }
      const r = new TombstoneReaper({ self, env, replica: n.store(self), ring: () => ring, isUp: n.isUp, call: n.call, members: () => order, graceMs: GRACE })
      await r.runNow()
      assert.ok(moved)
      assert.equal(r.stats.purged, 0)
      assert.deepEqual(await holders(), sorted([...owners, outsider]))
      assert.ok(!isDeleted((await n.store(outsider).get(key))!), 'the old value, which the tombstone must outlive')
    })

    it('a pending hint with the old value on the reaping member itself blocks the purge', async () => {
      env.time = DELETED_AT + GRACE
      await n.store(self).putHint(owners[1]!, key, old)
      const r = reaper()
      await r.runNow()
      assert.deepEqual(await holders(), [...owners].sort())
      assert.equal(r.stats.purged, 0)
    })

    it('a member outside the owners holding the same tombstone is told to purge it too', async () => {
      env.time = DELETED_AT + GRACE
      await replicate(n.store(self), n.store(outsider), key)
      const r = reaper()
      await r.runNow()
      assert.deepEqual(await holders(), [])
      assert.equal(n.requests('purge', outsider).length, 1)
    })

    it('never purges a live value, nor a tombstone with a live sibling', async () => {
      env.time = DELETED_AT + GRACE * 10
      const first = n.store(self)
      const live = keysIn(ring.partitionOf(key), 1, 'live-')[0]!
      await write(first, live, 'alive', 1)
      const mixed = keysIn(ring.partitionOf(key), 1, 'mixed-')[0]!
      await write(first, mixed, 'alive', 1)
      await write(first, mixed, null, 2, false)
      for (const o of owners.slice(1)) {
        await replicate(first, n.store(o), live)
        await replicate(first, n.store(o), mixed)
      }
      const r = reaper()
      await r.runNow()
      assert.equal(r.stats.purged, 1, 'only the real tombstone')
      for (const o of owners) {
        assert.ok(await n.store(o).get(live) !== undefined)
        assert.ok(await n.store(o).get(mixed) !== undefined)
      }
    })

    it('only the first owner of a partition reaps it', async () => {
      env.time = DELETED_AT + GRACE
      const second = owners[1]!
      const r = new TombstoneReaper({ self: second, env, replica: n.store(second), ring: () => ring, isUp: n.isUp, call: n.call, members: () => members, graceMs: GRACE })
      await r.runNow()
      assert.deepEqual(await holders(), [...owners].sort())
    })
  })

  describe('latency monitor', () => {
    it('is not busy before it has 20 samples, however slow they are', () => {
      const m = new LatencyMonitor()
      for (let i = 0; i < 19; i++) m.record(i < 10 ? 10 : 500, i)
      assert.equal(m.busy(19), false)
    })

    it('turns busy when requests get much slower than usual, and quiet again when they stop', () => {
      const m = new LatencyMonitor({ quietMs: 1000 })
      let now = 0
      for (let i = 0; i < 200; i++) m.record(10, now++)
      assert.equal(m.busy(now), false, 'steady latency is not busy')
      for (let i = 0; i < 10; i++) m.record(100, now++)
      assert.equal(m.busy(now), true)
      assert.ok(m.latencyMs() > 20)
      assert.equal(m.busy(now + 1001), false, 'no request for quietMs: not busy')
      for (let i = 0; i < 100; i++) m.record(10, now++)
      assert.equal(m.busy(now), false, 'back to usual latency')
    })

    it('latencies under the floor never count as busy', () => {
      const m = new LatencyMonitor({ floorMs: 5 })
      let now = 0
      for (let i = 0; i < 100; i++) m.record(0.5, now++)
      for (let i = 0; i < 20; i++) m.record(4, now++)
      assert.equal(m.busy(now), false)
    })

    it('ignores samples that are not finite non-negative numbers', () => {
      const m = new LatencyMonitor()
      let now = 0
      for (let i = 0; i < 50; i++) m.record(10, now++)
      for (const bad of [Number.NaN, -5, Number.POSITIVE_INFINITY]) m.record(bad, now)
      assert.equal(m.latencyMs(), 10)
      assert.equal(m.busy(now), false)
    })
  })

  describe('anti-entropy', () => {
    it('backs off while busy, doubling the interval up to the maximum, and returns to the base after', async () => {
      const n = await net('a')
      const env = new ManualEnv()
      let busy = true
      const ring = new Ring([{ id: 'a', weight: 1 }], { partitions: PARTITIONS })
      const ae = new AntiEntropy({
        self: 'a', env, replica: n.store('a'), ring: () => ring, isUp: n.isUp, call: n.call,
        intervalMs: 1000, maxIntervalMs: 8000, busy: () => busy
      })
      await settle(env, ae.ready())
      env.delays.length = 0
      ae.start()
      try {
        const expected = [2000, 4000, 8000, 8000, 8000]
        for (const [i, interval] of expected.entries()) {
          await env.advance(env.delays.at(-1)!)
          assert.equal(ae.stats.deferred, i + 1)
          assert.equal(ae.stats.intervalMs, interval)
        }
        assert.deepEqual(env.delays, [1000, ...expected], 'each next run waits the interval in force')
        busy = false
        await env.advance(8000)
        assert.equal(ae.stats.intervalMs, 1000)
        assert.equal(ae.stats.deferred, expected.length)
        assert.equal(env.delays.at(-1), 1000)
        assert.equal(ae.stats.failed, 0)
      } finally {
        ae.stop()
      }
    })

    it('a start-up tree check that failed is run again by the next round, and its partitions then take part', async () => {
      const n = await net('a', 'b')
      const a = n.store('a')
      for (let i = 0; i < 20; i++) await write(a, toBytes(`retry-${i}`), `v${i}`)
      const held = (await a.heldPartitions()).length
      const verifyTree = a.verifyTree.bind(a)
      let failures = 1
      a.verifyTree = async (p: number) => {
        if (failures-- > 0) throw new Error('a disk hiccup')
        return await verifyTree(p)
      }
      const env = new ManualEnv()
      const ring = new Ring([{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }], { partitions: PARTITIONS, n: 2 })
      const ae = new AntiEntropy({ self: 'a', env, replica: a, ring: () => ring, isUp: n.isUp, call: n.call, intervalMs: 1000 })
      ae.start()
      try {
        await settle(env, ae.ready())
        assert.equal(ae.stats.treesVerified, 0, 'the first pass failed at its first partition')
        // Waited for, not asked for: ready() would itself run the pass again.
        await env.advance(1000)
        await settle(env, eventually('the next round runs the pass again', () => ae.stats.treesVerified === held, 2000, 5))
        await env.advance(1000)
        await settle(env, eventually('an exchange repairs b', () => ae.stats.keysRepaired >= 20, 5000, 5))
        assert.equal(ae.stats.keysRepaired, 20, 'b got every key once the partitions were checked')
        assertSameContents(await contents(a), await contents(n.store('b')), 'converged')
      } finally {
        ae.stop()
      }
    })

    it('runNow exchanges with each live partner, rebuilding tampered trees first', async () => {
      const n = await net('a', 'b', 'c')
      const a = n.store('a')
      const b = n.store('b')
      for (let i = 0; i < 30; i++) await write(i % 2 === 0 ? a : b, toBytes(`ae-${i}`), `v${i}`)
      // Corrupt a's stored tree behind its back.
      await a.close()
      const db = new Level<Uint8Array, Uint8Array>(join(a.path, 'db'), { keyEncoding: 'view', valueEncoding: 'view' })
      await db.open()
      const trees = db.sublevel<Uint8Array, Uint8Array>('trees', { keyEncoding: 'view', valueEncoding: 'view' })
      for await (const k of trees.keys()) await trees.del(k)
      await db.close()
      const reopened = await n.add('a')

      n.down.add('c')
      const ring = new Ring(['a', 'b', 'c'].map(id => ({ id, weight: 1 })), { partitions: PARTITIONS, n: 3 })
      const ae = new AntiEntropy({ self: 'a', env: realEnv, replica: reopened, ring: () => ring, isUp: n.isUp, call: n.call })
      const held = (await reopened.heldPartitions()).length
      const result: ExchangeResult = await ae.runNow()
      assert.ok(ae.stats.treesRebuilt > 0)
      assert.equal(ae.stats.treesVerified, held, 'every partition with data, and no other')
      assert.equal(result.keysDiffering, 30)
      assert.equal(ae.stats.keysRepaired, 30)
      assert.equal(ae.stats.exchanges, 1, 'only the live partner')
      assert.equal(n.requests('roots', 'c').length, 0)
      assertSameContents(await contents(reopened), await contents(b), 'converged')
      await assertSameTrees(reopened, b)

      n.down.delete('c')
      n.fault = async (to, _request, deliver) => {
        if (to === 'c') throw new UnreachableError('connection refused')
        return await deliver()
      }
      await ae.runNow()
      assert.equal(ae.stats.failed, 1)
      assert.match(ae.stats.lastError ?? '', /^c: UnreachableError/)
    })
  })
})
