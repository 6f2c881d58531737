import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { Level } from 'level'
import { bytesEqual, bytesId, toBytes } from '../../src/core/bytes.ts'
import { equals, merge, objectDigest, update } from '../../src/core/causality.ts'
import type { DvvSet } from '../../src/core/causality.ts'
import { HASH_BYTES, MerkleTree, SEGMENTS, segmentOf } from '../../src/core/merkle.ts'
import { Store } from '../../src/store/store.ts'

const PARTITIONS = 16

function write (store: Store, key: Uint8Array, value: string | null, timestamp = 1000): Promise<DvvSet | undefined> {
  return store.modify(key, current => update(current, current?.vv ?? new Map(), store.actorId, value === null ? null : toBytes(value), timestamp))
}

/** An object written by some other replica, concurrent with anything this store holds. */
function foreign (actor: string, value: string, base?: DvvSet): DvvSet {
  return update(base, base?.vv ?? new Map(), actor, toBytes(value), 2000)
}

/** `count` keys that all fall in `partition`. */
function keysIn (store: Store, partition: number, count: number, prefix = 'k'): Uint8Array[] {
  const keys: Uint8Array[] = []
  for (let i = 0; keys.length < count; i++) {
    const key = toBytes(`${prefix}${i}`)
    if (store.partitionOf(key) === partition) keys.push(key)
  }
  return keys
}

async function collect<T> (iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of iterable) out.push(item)
  return out
}

/** The tree a partition's objects call for, computed from a scan. */
async function rebuilt (store: Store, partition: number): Promise<MerkleTree> {
  const tree = new MerkleTree()
  for await (const { key, object } of store.scan(partition)) tree.update(key, undefined, objectDigest(object))
  return tree
}

async function assertTreeMatchesObjects (store: Store, partition: number): Promise<void> {
  assert.ok((await store.tree(partition)).equals(await rebuilt(store, partition)), `partition ${partition}'s tree matches its objects`)
}

function treesOf (db: Level<Uint8Array, Uint8Array>) {
  return db.sublevel<Uint8Array, Uint8Array>('trees', { keyEncoding: 'view', valueEncoding: 'view' })
}

/** Runs `fn` on the store's raw `trees` sublevel (the store must be closed). */
async function withTrees (dataDir: string, fn: (trees: ReturnType<typeof treesOf>) => Promise<void>): Promise<void> {
  const db = new Level<Uint8Array, Uint8Array>(join(dataDir, 'db'), { keyEncoding: 'view', valueEncoding: 'view', createIfMissing: false })
  await db.open()
  try {
    await fn(treesOf(db))
  } finally {
    await db.close()
  }
}

function u16 (n: number): Uint8Array {
  return new Uint8Array([n >>> 8, n & 0xff])
}

function segmentKey (partition: number, segment: number): Uint8Array {
  return new Uint8Array([...u16(partition), ...u16(segment)])
}

describe('store: sync support', () => {
  let dir: string
  let stores: Store[]

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-sync-store-'))
    stores = []
  })

  afterEach(async () => {
    await Promise.allSettled(stores.map(async s => s.close()))
    await rm(dir, { recursive: true, force: true })
  })

  async function open (path = dir): Promise<Store> {
    const store = await Store.open(path, { partitions: PARTITIONS })
    stores.push(store)
    return store
  }

  describe('putHint', () => {
    it('says a hint is new the first time, and keeps the object given', async () => {
      const store = await open()
      const key = toBytes('hinted')
      const object = foreign('x', 'one')
      assert.equal(await store.putHint('peer-b', key, object), true)
      const [hint] = await collect(store.hints('peer-b'))
      assert.ok(hint !== undefined && equals(hint.object, object))
      assert.equal(await store.hintCount(), 1)
    })

    it('merges a concurrent copy into the hint held and says it is not new', async () => {
      const store = await open()
      const key = toBytes('hinted')
      const first = foreign('x', 'one')
      const second = foreign('y', 'two')
      await store.putHint('peer-b', key, first)
      assert.equal(await store.putHint('peer-b', key, second), false)
      const hints = await collect(store.hints('peer-b'))
      assert.equal(hints.length, 1)
      assert.ok(equals(hints[0]!.object, merge(first, second)), 'the hint holds both siblings')
      assert.equal(await store.hintCount(), 1)
    })

    it('a copy the hint already covers is a no-op: not new, nothing changes', async () => {
      const store = await open()
      const key = toBytes('hinted')
      const older = foreign('x', 'one')
      const newer = foreign('x', 'two', older)
      await store.putHint('peer-b', key, newer)
      assert.equal(await store.putHint('peer-b', key, older), false)
      assert.equal(await store.putHint('peer-b', key, newer), false)
      const hints = await collect(store.hints('peer-b'))
      assert.equal(hints.length, 1)
      assert.ok(equals(hints[0]!.object, newer))
    })

    it('hints for two targets of one key are two hints, and neither touches the object store', async () => {
      const store = await open()
      const key = toBytes('hinted')
      assert.equal(await store.putHint('peer-b', key, foreign('x', 'one')), true)
      assert.equal(await store.putHint('peer-c', key, foreign('x', 'one')), true)
      assert.equal(await store.hintCount(), 2)
      assert.equal(await store.get(key), undefined)
      assert.deepEqual(await store.heldPartitions(), [])
    })
  })

  describe('hintTargets', () => {
    it('lists each target with hints exactly once, and drops a target whose hints are all deleted', async () => {
      const store = await open()
      // Targets of different lengths (the length prefix orders them) and one past 255 bytes.
      const targets = ['peer-c', 'peer-a', 'b', 'peer-bb', 'x'.repeat(300), 'ü-target']
      for (const [t, target] of targets.entries()) {
        for (let i = 0; i <= t + 1; i++) await store.putHint(target, toBytes(`key-${i}`), foreign('x', `${target}-${i}`))
      }
      const listed = await store.hintTargets()
      assert.deepEqual([...listed].sort(), [...targets].sort())
      assert.equal(new Set(listed).size, listed.length)

      for (const hint of await collect(store.hints('peer-a'))) assert.equal(await store.deleteHint('peer-a', hint.key), true)
      const [first] = await collect(store.hints('peer-c'))
      assert.ok(first !== undefined)
      await store.deleteHint('peer-c', first.key)
      const after = await store.hintTargets()
      assert.deepEqual([...after].sort(), targets.filter(t => t !== 'peer-a').sort())
    })

    it('is empty with no hints', async () => {
      const store = await open()
      assert.deepEqual(await store.hintTargets(), [])
    })
  })

  describe('hintDigests', () => {
    it('gives, for each key asked, the digest of every hint held for it, whatever the target', async () => {
      const store = await open()
      const k1 = toBytes('k1')
      const k2 = toBytes('k2')
      const k3 = toBytes('k3')
      const forB = foreign('x', 'for-b')
      const forC = foreign('y', 'for-c')
      await store.putHint('peer-b', k1, forB)
      await store.putHint('peer-c', k1, forC)
      await store.putHint('peer-b', k2, forB)
      await store.putHint('peer-b', toBytes('not-asked'), forB)
      await write(store, k3, 'an object, not a hint')

      const found = await store.hintDigests([k1, k2, k3])
      assert.deepEqual([...found.keys()].sort(), [bytesId(k1), bytesId(k2)].sort())
      const d1 = found.get(bytesId(k1))!.map(d => bytesId(d)).sort()
      assert.deepEqual(d1, [bytesId(objectDigest(forB)), bytesId(objectDigest(forC))].sort())
      assert.deepEqual(found.get(bytesId(k2)), [objectDigest(forB)])
    })

    it('a hint deleted no longer counts', async () => {
      const store = await open()
      const key = toBytes('k')
      const object = foreign('x', 'v')
      await store.putHint('peer-b', key, object)
      await store.deleteHint('peer-b', key, objectDigest(object))
      assert.equal((await store.hintDigests([key])).size, 0)
    })
  })

  describe('heldPartitions', () => {
    it('lists the partitions holding objects, ascending, and forgets one once its last object is removed', async () => {
      const store = await open()
      assert.deepEqual(await store.heldPartitions(), [])
      // The first and last partitions too: the seek past each must not skip its neighbour.
      const chosen = [0, 3, 4, 9, PARTITIONS - 1]
      const written = new Map<number, Uint8Array[]>()
      for (const p of chosen) {
        const keys = keysIn(store, p, 2)
        written.set(p, keys)
        for (const key of keys) await write(store, key, 'v')
      }
      await store.putHint('peer-b', keysIn(store, 5, 1)[0]!, foreign('x', 'hint only'))
      assert.deepEqual(await store.heldPartitions(), chosen)

      for (const key of written.get(4)!) {
        const object = await store.get(key)
        assert.ok(object !== undefined)
        assert.equal(await store.removeIfUnchanged(key, objectDigest(object)), true)
      }
      const [one] = written.get(PARTITIONS - 1)!
      await store.removeIfUnchanged(one!, objectDigest((await store.get(one!))!))
      assert.deepEqual(await store.heldPartitions(), [0, 3, 9, PARTITIONS - 1])
    })
  })

  describe('segmentKeys', () => {
    it('returns exactly the partition\'s keys in the asked segments, with their objects\' digests', async function () {
      this.timeout(60_000)
      const store = await open()
      const keys = Array.from({ length: 300 }, (_, i) => toBytes(`seg-${i}`))
      for (const [i, key] of keys.entries()) await write(store, key, `v${i}`)
      const digests = new Map<string, Uint8Array>()
      for (const key of keys) digests.set(bytesId(key), objectDigest((await store.get(key))!))

      await fc.assert(fc.asyncProperty(
        fc.integer({ min: 0, max: PARTITIONS - 1 }),
        fc.uniqueArray(fc.integer({ min: 0, max: SEGMENTS - 1 }), { maxLength: SEGMENTS }),
        async (partition, segments) => {
          const got = await store.segmentKeys(partition, segments)
          const expected = keys.filter(k => store.partitionOf(k) === partition && segments.includes(segmentOf(k)))
          assert.deepEqual(got.map(e => bytesId(e.key)).sort(), expected.map(k => bytesId(k)).sort())
          for (const { key, digest } of got) assert.ok(bytesEqual(digest, digests.get(bytesId(key))!))
        }
      ), { numRuns: 100 })
    })

    it('refuses a partition out of range', async () => {
      const store = await open()
      await assert.rejects(async () => store.segmentKeys(PARTITIONS, [0]), { name: 'InvalidArgumentError' })
      await assert.rejects(async () => store.segmentKeys(-1, [0]), { name: 'InvalidArgumentError' })
    })
  })

  describe('removeIfUnchanged', () => {
    it('removing a copy that carries this replica\'s dots gives the partition a fresh actor, durably, so no dot repeats', async () => {
      let store = await open()
      const [key, other] = keysIn(store, 5, 2)
      const actors: string[] = []
      const mint = async (k: Uint8Array, value: string): Promise<DvvSet | undefined> => await store.modify(k, (current, actor) => {
        actors.push(actor)
        return update(current, current?.vv ?? new Map(), actor, toBytes(value), 1000)
      })
      const first = await mint(key!, 'one')
      assert.equal(actors[0], store.actorId)
      // A foreign copy's removal changes nothing: none of its dots are ours.
      await store.merge(other!, foreign('someone-else', 'x'))
      assert.ok(await store.removeIfUnchanged(other!, objectDigest(foreign('someone-else', 'x'))))
      await mint(other!, 'mine')
      assert.equal(actors[1], store.actorId)

      assert.ok(await store.removeIfUnchanged(key!, objectDigest(first!)))
      const again = await mint(key!, 'two')
      assert.notEqual(actors[2], store.actorId)
      assert.ok(actors[2]!.startsWith(`${store.actorId}.`))
      const dot = (o: DvvSet | undefined): string => `${o?.siblings[0]?.dot.actor}:${o?.siblings[0]?.dot.counter}`
      assert.notEqual(dot(again), dot(first), 'the second write of the key has another dot')
      // Merged with the removed copy (still held by another replica), both writes survive as siblings.
      assert.equal(merge(first!, again!).siblings.length, 2)

      const path = store.path
      await store.close()
      store = await Store.open(path)
      await store.modify(key!, (_current, actor) => { actors.push(actor); return undefined })
      assert.equal(actors[3], actors[2], 'the epoch survives a restart')
      assert.ok(await store.removeIfUnchanged(other!, objectDigest((await store.get(other!))!)))
      await store.modify(key!, (_current, actor) => { actors.push(actor); return undefined })
      assert.notEqual(actors[4], actors[3])
      await store.close()
    })

    it('deletes only when the digest is the current one, keeping the tree equal to a rebuild', async () => {
      const store = await open()
      const partition = 7
      const keys = keysIn(store, partition, 12)
      for (const key of keys) await write(store, key, 'first')
      const victim = keys[3]!
      const old = (await store.get(victim))!
      await write(store, victim, 'second')

      assert.equal(await store.removeIfUnchanged(victim, objectDigest(old)), false, 'a stale digest deletes nothing')
      assert.ok(await store.get(victim) !== undefined)
      await assertTreeMatchesObjects(store, partition)

      assert.equal(await store.removeIfUnchanged(toBytes('never-written'), objectDigest(old)), false)

      const current = (await store.get(victim))!
      assert.equal(await store.removeIfUnchanged(victim, objectDigest(current)), true)
      assert.equal(await store.get(victim), undefined)
      assert.equal(await store.removeIfUnchanged(victim, objectDigest(current)), false, 'a second remove finds nothing')
      await assertTreeMatchesObjects(store, partition)
    })

    it('keeps the tree equal to a rebuild through any mix of writes and removes, also after a reopen', async function () {
      this.timeout(60_000)
      await fc.assert(fc.asyncProperty(
        fc.array(fc.record({ key: fc.integer({ min: 0, max: 15 }), remove: fc.boolean(), stale: fc.boolean() }), { maxLength: 40 }),
        async (ops) => {
          const path = await mkdtemp(join(dir, 'run-'))
          let store = await Store.open(path, { partitions: PARTITIONS })
          try {
            const stale = new Map<number, Uint8Array>()
            for (const [i, op] of ops.entries()) {
              const key = toBytes(`r${op.key}`)
              const current = await store.get(key)
              if (op.remove) {
                const digest = op.stale ? stale.get(op.key) : current === undefined ? undefined : objectDigest(current)
                if (digest === undefined) continue
                const removed = await store.removeIfUnchanged(key, digest)
                assert.equal(removed, current !== undefined && bytesEqual(digest, objectDigest(current)))
              } else {
                if (current !== undefined) stale.set(op.key, objectDigest(current))
                await write(store, key, `v${i}`, i)
              }
            }
            for (let p = 0; p < PARTITIONS; p++) await assertTreeMatchesObjects(store, p)
            await store.close()
            store = await Store.open(path, { partitions: PARTITIONS })
            for (let p = 0; p < PARTITIONS; p++) await assertTreeMatchesObjects(store, p)
          } finally {
            await store.close()
            await rm(path, { recursive: true, force: true })
          }
        }
      ), { numRuns: 15 })
    })
  })

  describe('verifyTree', () => {
    it('returns false and changes nothing when the stored tree matches the objects', async () => {
      const store = await open()
      for (const key of keysIn(store, 2, 20)) await write(store, key, 'v')
      const before = await store.tree(2)
      assert.equal(await store.verifyTree(2), false)
      assert.ok((await store.tree(2)).equals(before))
      assert.equal(await store.verifyTree(5), false, 'an empty partition with no segments is consistent')
    })

    it('repairs a tree whose stored segments were tampered with, and says so', async () => {
      let store = await open()
      const partition = 2
      for (const key of keysIn(store, partition, 20)) await write(store, key, 'v')
      const good = await store.tree(partition)
      const touched = good.segmentHashes().findIndex(h => h.some(b => b !== 0))
      assert.ok(touched >= 0)
      await store.close()

      await withTrees(dir, async trees => {
        await trees.put(segmentKey(partition, touched), new Uint8Array(HASH_BYTES).fill(0xab))
      })
      store = await open()
      assert.equal((await store.tree(partition)).equals(good), false, 'the tampered tree was loaded as it is')
      assert.equal(await store.verifyTree(partition), true)
      assert.ok((await store.tree(partition)).equals(good))
      await assertTreeMatchesObjects(store, partition)
      assert.equal(await store.verifyTree(partition), false, 'once repaired it is consistent')

      // The repair was written to disk, not only to the cache.
      await store.close()
      store = await open()
      assert.equal(await store.verifyTree(partition), false)
      assert.ok((await store.tree(partition)).equals(good))
    })

    it('repairs a tree whose stored segments are missing', async () => {
      let store = await open()
      const partition = 11
      for (const key of keysIn(store, partition, 20)) await write(store, key, 'v')
      const other = 12
      for (const key of keysIn(store, other, 5)) await write(store, key, 'v')
      const good = await store.tree(partition)
      const otherTree = await store.tree(other)
      await store.close()

      await withTrees(dir, async trees => {
        for await (const key of trees.keys({ gte: u16(partition), lt: u16(partition + 1) })) await trees.del(key)
      })
      store = await open()
      assert.equal(await store.verifyTree(partition), true)
      assert.ok((await store.tree(partition)).equals(good))
      assert.equal(await store.verifyTree(other), false, 'another partition\'s tree was left alone')
      assert.ok((await store.tree(other)).equals(otherTree))
    })

    it('repairs a stray segment in a partition that holds no objects', async () => {
      let store = await open()
      await store.close()
      await withTrees(dir, async trees => {
        await trees.put(segmentKey(6, 1), new Uint8Array(HASH_BYTES).fill(1))
      })
      store = await open()
      assert.equal(await store.verifyTree(6), true)
      assert.ok((await store.tree(6)).equals(new MerkleTree()))
    })

    it('says it had to rebuild when a stored segment record is malformed', async () => {
      let store = await open()
      const partition = 3
      for (const key of keysIn(store, partition, 10)) await write(store, key, 'v')
      const good = await store.tree(partition)
      await store.close()
      await withTrees(dir, async trees => {
        await trees.put(segmentKey(partition, 0), new Uint8Array(3))
      })
      store = await open()
      assert.equal(await store.verifyTree(partition), true)
      assert.ok((await store.tree(partition)).equals(good))
    })

    it('a malformed stored segment record is repaired (whatever verifyTree answers)', async () => {
      let store = await open()
      const partition = 3
      for (const key of keysIn(store, partition, 10)) await write(store, key, 'v')
      const good = await store.tree(partition)
      await store.close()
      await withTrees(dir, async trees => {
        await trees.put(segmentKey(partition, 0), new Uint8Array(3))
      })
      store = await open()
      await store.verifyTree(partition)
      assert.ok((await store.tree(partition)).equals(good))
      assert.equal(await store.verifyTree(partition), false)
    })

    it('refuses a partition out of range', async () => {
      const store = await open()
      await assert.rejects(async () => store.verifyTree(PARTITIONS), { name: 'InvalidArgumentError' })
    })
  })
})
