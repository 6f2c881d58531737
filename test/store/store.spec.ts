import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { compareBytes, toBytes } from '../../src/core/bytes.ts'
import { decodeObject, equals, objectDigest, update, values } from '../../src/core/causality.ts'
import type { DvvSet } from '../../src/core/causality.ts'
import { Store } from '../../src/store/store.ts'
import type { CorruptRecordError } from '../../src/store/errors.ts'

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
/** A length-delimited field that claims 5 bytes and has 1: no decoder accepts it. */
const GARBAGE = new Uint8Array([0x0a, 0x05, 0x01])

function write (store: Store, key: Uint8Array, value: string): Promise<DvvSet | undefined> {
  return store.modify(key, current => update(current, current?.vv ?? new Map(), store.actorId, toBytes(value), 1000))
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

function u16 (n: number): Uint8Array {
  return new Uint8Array([n >>> 8, n & 0xff])
}

function concat (a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

/** Every raw key and value of a LevelDB, opened directly (the store must be closed). */
async function rawEntries (location: string): Promise<Array<[string, string]>> {
  const db = new Level<Uint8Array, Uint8Array>(location, { keyEncoding: 'view', valueEncoding: 'view', createIfMissing: false })
  await db.open()
  try {
    const entries: Array<[string, string]> = []
    for await (const [k, v] of db.iterator()) entries.push([Buffer.from(k).toString('hex'), Buffer.from(v).toString('hex')])
    return entries
  } finally {
    await db.close()
  }
}

async function rawPut (location: string, sublevel: string, key: Uint8Array, value: Uint8Array): Promise<void> {
  const db = new Level<Uint8Array, Uint8Array>(location, { keyEncoding: 'view', valueEncoding: 'view' })
  await db.open()
  try {
    await db.sublevel<Uint8Array, Uint8Array>(sublevel, { keyEncoding: 'view', valueEncoding: 'view' }).put(key, value)
  } finally {
    await db.close()
  }
}

describe('store', () => {
  let dir: string
  let stores: Store[]

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-store-'))
    stores = []
  })

  afterEach(async () => {
    await Promise.allSettled(stores.map(async s => s.close()))
    await rm(dir, { recursive: true, force: true })
  })

  async function open (options?: Parameters<typeof Store.open>[1]): Promise<Store> {
    const store = await Store.open(dir, options)
    stores.push(store)
    return store
  }

  it('keeps objects, tree roots, hints, meta and its actor id across close and reopen', async () => {
    const store = await open({ partitions: 16 })
    assert.match(store.actorId, /^[0-9a-f]{16}$/)
    const keys = Array.from({ length: 40 }, (_, i) => toBytes(`user:${i}`))
    for (const key of keys) await write(store, key, `v-${text(key)}`)
    const hinted = await write(store, toBytes('hinted'), 'for-b')
    const roots = await Promise.all(Array.from({ length: 16 }, async (_, p) => (await store.tree(p)).root()))
    assert.ok(hinted)
    await store.putHint('peer-b', toBytes('hinted'), hinted)
    await store.putMeta('members', toBytes('table'))
    const actorId = store.actorId
    await store.close()

    const again = await open()
    assert.equal(again.actorId, actorId)
    assert.equal(again.partitions, 16)
    for (const key of keys) {
      const object = await again.get(key)
      assert.ok(object)
      assert.deepEqual(values(object), [toBytes(`v-${text(key)}`)])
    }
    for (let p = 0; p < 16; p++) assert.deepEqual((await again.tree(p)).root(), roots[p])
    assert.ok(roots.some(root => root.some(b => b !== 0)))
    const hints = await collect(again.hints())
    assert.equal(hints.length, 1)
    assert.equal(hints[0]?.target, 'peer-b')
    assert.deepEqual(hints[0]?.key, toBytes('hinted'))
    assert.ok(hints[0] !== undefined && equals(hints[0].object, hinted))
    assert.deepEqual(await again.getMeta('members'), toBytes('table'))
    assert.deepEqual(await again.getMeta('format'), toBytes('1'))
  })

  it('gives a new data directory a new actor id', async () => {
    const first = await open()
    const other = await mkdtemp(join(tmpdir(), 'shoal-store-'))
    try {
      const second = await Store.open(other)
      assert.notEqual(second.actorId, first.actorId)
      await second.close()
    } finally {
      await rm(other, { recursive: true, force: true })
    }
  })

  it('a corrupted record fails get, modify and merge with CorruptRecordError naming the key, writes nothing, and other keys keep working', async () => {
    const store = await open({ partitions: 16 })
    const bad = toBytes('user:bad')
    const partition = store.partitionOf(bad)
    const [neighbour] = keysIn(store, partition, 1, 'neighbour')
    assert.ok(neighbour)
    await write(store, bad, 'before')
    await write(store, neighbour, 'n1')
    await store.close()
    assert.throws(() => decodeObject(GARBAGE), { name: 'MalformedDataError' })
    await rawPut(join(dir, 'db'), 'objects', concat(u16(partition), bad), GARBAGE)

    const again = await open()
    const rootBefore = (await again.tree(partition)).root()
    const named = (err: unknown): boolean => {
      const e = err as CorruptRecordError
      assert.equal(e.name, 'CorruptRecordError')
      assert.deepEqual(e.key, bad)
      assert.equal(e.partition, partition)
      assert.match(e.message, /"user:bad"/)
      assert.match(e.message, new RegExp(`partition ${partition}\\b`))
      return true
    }
    await assert.rejects(again.get(bad), named)
    await assert.rejects(write(again, bad, 'after'), named)
    const incoming = update(undefined, new Map(), 'other-actor', toBytes('x'), 1)
    await assert.rejects(again.merge(bad, incoming), named)
    await again.close()
    const raw = await rawEntries(join(dir, 'db'))
    const badHex = Buffer.from(concat(toBytes('!objects!'), concat(u16(partition), bad))).toString('hex')
    assert.deepEqual(raw.find(([k]) => k === badHex)?.[1], Buffer.from(GARBAGE).toString('hex'))

    const third = await open()
    assert.deepEqual((await third.tree(partition)).root(), rootBefore)
    assert.deepEqual(values((await third.get(neighbour))!), [toBytes('n1')])
    await write(third, neighbour, 'n2')
    assert.deepEqual(values((await third.get(neighbour))!), [toBytes('n2')])
    const reported: CorruptRecordError[] = []
    const scanned = await collect(third.scan(partition, { onCorrupt: err => reported.push(err) }))
    assert.deepEqual(scanned.map(s => text(s.key)), [text(neighbour)])
    assert.equal(reported.length, 1)
    assert.deepEqual(reported[0]?.key, bad)
  })

  it('concurrent modify() of many keys in one partition leaves the stored tree equal to rebuildTree()', async () => {
    const store = await open()
    const partition = 7
    const keys = keysIn(store, partition, 60)
    // Several writes per key and many keys at once, all contending for one partition's segments.
    await Promise.all(keys.flatMap((key, i) => [0, 1, 2].map(async round => write(store, key, `${i}-${round}`))))
    const other = keysIn(store, partition + 1, 5)
    await Promise.all(other.map(async key => write(store, key, 'elsewhere')))
    const live = await store.tree(partition)
    await store.close()

    const again = await open()
    const stored = await again.tree(partition)
    const rebuilt = await again.rebuildTree(partition)
    assert.ok(stored.equals(rebuilt))
    assert.ok(live.equals(rebuilt))
    assert.ok(rebuilt.root().some(b => b !== 0))
    for (const key of keys) assert.equal((await again.get(key))?.siblings.length, 1)
  })

  it('a failed batch leaves the cached tree as it was', async () => {
    const store = await open({ partitions: 4 })
    const key = toBytes('k')
    const partition = store.partitionOf(key)
    await write(store, key, 'one')
    const before = await store.tree(partition)
    const db = (store as unknown as { db: { batch: (...args: unknown[]) => Promise<void> } }).db
    const batch = db.batch
    db.batch = async () => { throw new Error('disk full') }
    await assert.rejects(write(store, key, 'two'), /disk full/)
    db.batch = batch
    assert.ok((await store.tree(partition)).equals(before))
    assert.deepEqual(values((await store.get(key))!), [toBytes('one')])
    assert.ok((await store.rebuildTree(partition)).equals(before))
  })

  it('a malformed stored tree segment is rebuilt from the objects on load', async () => {
    const store = await open({ partitions: 4, sync: true })
    const keys = keysIn(store, 2, 10)
    for (const key of keys) await write(store, key, 'v')
    const good = await store.tree(2)
    await store.close()
    await rawPut(join(dir, 'db'), 'trees', concat(u16(2), u16(3)), new Uint8Array([1, 2, 3]))

    const again = await open()
    assert.ok((await again.tree(2)).equals(good))
    await again.close()
    const treeKeys = (await rawEntries(join(dir, 'db')))
      .filter(([k]) => k.startsWith(Buffer.from('!trees!').toString('hex')))
    assert.ok(treeKeys.every(([, v]) => v.length === 32), 'the malformed segment was rewritten')
  })

  it('merge stores what the replica lacks and reports no change for what it already covers', async () => {
    const store = await open({ partitions: 4 })
    const key = toBytes('k')
    const incoming = update(undefined, new Map(), 'replica-b', toBytes('b'), 1)
    const first = await store.merge(key, incoming)
    assert.equal(first.changed, true)
    assert.ok(equals(first.object, incoming))
    const treeAfterFirst = await store.tree(store.partitionOf(key))
    const second = await store.merge(key, incoming)
    assert.equal(second.changed, false)
    assert.ok((await store.tree(store.partitionOf(key))).equals(treeAfterFirst))
    const mine = await write(store, key, 'a')
    assert.equal(mine?.siblings.length, 1, 'a write with the stored vv as context replaces b')
  })

  it('scan returns exactly a partition\'s keys, in key order', async () => {
    const store = await open({ partitions: 4 })
    const keys = Array.from({ length: 50 }, (_, i) => toBytes(`key-${i}`))
    keys.push(new Uint8Array([0xff, 0xff]), new Uint8Array([]), new Uint8Array([0]))
    for (const key of keys) await write(store, key, 'v')
    const seen: string[] = []
    for (let p = 0; p < 4; p++) {
      const scanned = await collect(store.scan(p))
      const expected = keys.filter(k => store.partitionOf(k) === p).sort(compareBytes)
      assert.deepEqual(scanned.map(s => s.key), expected)
      for (const { key, object } of scanned) {
        assert.deepEqual(object, await store.get(key))
        seen.push(Buffer.from(key).toString('hex'))
      }
    }
    assert.equal(seen.length, keys.length)
    await assert.rejects(collect(store.scan(4)), { name: 'InvalidArgumentError' })
  })

  it('hints round-trip, merge into an existing hint, and deleteHint honours ifDigest', async () => {
    const store = await open({ partitions: 4 })
    const key = toBytes('k')
    const a = update(undefined, new Map(), 'replica-a', toBytes('a'), 1)
    const b = update(undefined, new Map(), 'replica-b', toBytes('b'), 2)
    await store.putHint('peer-1', key, a)
    await store.putHint('peer-2', key, a)
    await store.putHint('peer-2', toBytes('other'), b)
    assert.equal(await store.hintCount(), 3)

    const forOne = await collect(store.hints('peer-1'))
    assert.equal(forOne.length, 1)
    const read = forOne[0]!
    assert.ok(equals(read.object, a))
    const digestAtRead = objectDigest(read.object)

    await store.putHint('peer-1', key, b) // a concurrent write lands after the read
    const merged = (await collect(store.hints('peer-1')))[0]!
    assert.deepEqual(values(merged.object).map(text).sort(), ['a', 'b'])
    assert.equal(await store.deleteHint('peer-1', key, digestAtRead), false, 'changed since read: kept')
    assert.equal(await store.hintCount(), 3)
    assert.equal(await store.deleteHint('peer-1', key, objectDigest(merged.object)), true)
    assert.equal(await store.deleteHint('peer-1', key), false, 'already gone')
    assert.deepEqual((await collect(store.hints())).map(h => `${h.target}/${text(h.key)}`), ['peer-2/k', 'peer-2/other'])
    assert.equal(await store.deleteHint('peer-2', key), true)
    assert.equal(await store.hintCount(), 1)
  })

  it('refuses a LevelDB with foreign data and changes nothing', async () => {
    const location = join(dir, 'db')
    const foreign = new Level(location)
    await foreign.open()
    await foreign.put('app:config', '{"x":1}')
    await foreign.put('app:user', 'ada')
    await foreign.close()
    const before = await rawEntries(location)

    await assert.rejects(Store.open(dir), { name: 'NotADataDirectoryError' })
    assert.deepEqual(await rawEntries(location), before)
  })

  it('refuses a data directory that is itself a LevelDB and creates nothing in it', async () => {
    const foreign = new Level(dir)
    await foreign.open()
    await foreign.put('a', 'b')
    await foreign.close()
    const files = (await readdir(dir)).sort()

    await assert.rejects(Store.open(dir), { name: 'NotADataDirectoryError' })
    assert.deepEqual((await readdir(dir)).sort(), files)
  })

  it('refuses an unknown storage format and leaves it as it was', async () => {
    const store = await open()
    await store.close()
    await rawPut(join(dir, 'db'), 'meta', toBytes('format'), toBytes('2'))
    const before = await rawEntries(join(dir, 'db'))
    await assert.rejects(Store.open(dir), { name: 'UnsupportedFormatError' })
    assert.deepEqual(await rawEntries(join(dir, 'db')), before)
  })

  it('refuses to reopen with a different partition count', async () => {
    const store = await open({ partitions: 64 })
    await store.close()
    await assert.rejects(Store.open(dir, { partitions: 128 }), { name: 'PartitionCountMismatchError' })
    const again = await open({ partitions: 64 })
    assert.equal(again.partitions, 64)
  })

  it('a second open of a data directory in use fails with DataDirectoryInUseError', async () => {
    await open()
    await assert.rejects(Store.open(dir), { name: 'DataDirectoryInUseError' })
  })

  it('close waits for writes in flight, is safe to call twice, and later calls fail with StoreClosedError', async () => {
    const store = await open({ partitions: 4 })
    const keys = Array.from({ length: 30 }, (_, i) => toBytes(`k${i}`))
    const writes = keys.map(async key => write(store, key, 'v'))
    await Promise.all([store.close(), store.close()])
    await Promise.all(writes)
    await assert.rejects(store.get(keys[0]!), { name: 'StoreClosedError' })
    await assert.rejects(write(store, keys[0]!, 'w'), { name: 'StoreClosedError' })

    const again = await open()
    for (const key of keys) assert.deepEqual(values((await again.get(key))!), [toBytes('v')])
  })

  it('putMeta refuses the records the store owns', async () => {
    const store = await open()
    await assert.rejects(store.putMeta('actor', toBytes('x')), { name: 'InvalidArgumentError' })
    await assert.rejects(store.putMeta('format', toBytes('2')), { name: 'InvalidArgumentError' })
    assert.equal(await store.getMeta('nothing'), undefined)
  })
})
