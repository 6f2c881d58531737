import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { toBytes } from '../../src/core/bytes.ts'
import { equals, update, values } from '../../src/core/causality.ts'
import type { DvvSet } from '../../src/core/causality.ts'
import { counterValue } from '../../src/core/crdt/counter.ts'
import type { CounterState } from '../../src/core/crdt/counter.ts'
import { decodeCrdt, encodeCrdt } from '../../src/core/crdt/typed-value.ts'
import { Store } from '../../src/store/store.ts'

const counter = (state: CounterState): Uint8Array => encodeCrdt({ type: 'counter', state })
const valueOf = (obj: DvvSet): number => {
  const [only, ...rest] = values(obj)
  assert.equal(rest.length, 0, 'one sibling')
  const decoded = decodeCrdt(only as Uint8Array)
  assert.ok(decoded?.type === 'counter')
  return counterValue(decoded.state)
}

describe('Store.merge collapses convergent siblings (real LevelDB)', () => {
  let dir: string
  let stores: Store[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-crdt-store-'))
    stores = [await Store.open(join(dir, 'a')), await Store.open(join(dir, 'b'))]
  })

  afterEach(async () => {
    await Promise.all(stores.map(async s => { await s.close() }))
    await rm(dir, { recursive: true, force: true })
  })

  it('two replicas exchanging concurrent counter states converge to one equal value and stop minting dots', async () => {
    const [a, b] = stores as [Store, Store]
    const key = toBytes('hits')
    // Concurrent writes coordinated by each replica: two siblings nowhere merged yet.
    await a.modify(key, (current, actor) => update(current, new Map(), actor, counter(new Map([['c1', { p: 3, n: 0 }]])), 1))
    await b.modify(key, (current, actor) => update(current, new Map(), actor, counter(new Map([['c2', { p: 4, n: 1 }]])), 2))
    await b.modify(key, (current, actor) => update(current, new Map(), actor, counter(new Map([['c3', { p: 10, n: 0 }]])), 3))

    // Anti-entropy back and forth until neither side changes: it must stop, and soon.
    let exchanges = 0
    for (;;) {
      const fromA = await a.merge(key, (await b.get(key)) as DvvSet)
      const fromB = await b.merge(key, (await a.get(key)) as DvvSet)
      exchanges++
      if (!fromA.changed && !fromB.changed) break
      assert.ok(exchanges < 5, 'the replicas keep minting dots')
    }
    const [copyA, copyB] = [await a.get(key), await b.get(key)] as [DvvSet, DvvSet]
    assert.ok(equals(copyA, copyB))
    assert.equal(valueOf(copyA), 3 + 3 + 10)
    // The collapse is stored with its Merkle segment: the trees agree too.
    const partition = a.partitionOf(key)
    assert.deepEqual((await a.tree(partition)).root(), (await b.tree(partition)).root())
    // And it survives a reopen.
    await a.close()
    stores[0] = await Store.open(join(dir, 'a'))
    assert.ok(equals((await stores[0].get(key)) as DvvSet, copyB))
  })

  it('plain siblings, tombstones and equal states are merged as before, never collapsed', async () => {
    const [a] = stores as [Store]
    const plain = toBytes('plain')
    const x = update(undefined, new Map(), 'r1', toBytes('x'), 1)
    const y = update(undefined, new Map(), 'r2', toBytes('y'), 2)
    await a.merge(plain, x)
    const { object } = await a.merge(plain, y)
    assert.deepEqual(values(object).map(v => new TextDecoder().decode(v)), ['x', 'y'])

    const same = toBytes('same')
    const state = counter(new Map([['c1', { p: 1, n: 0 }]]))
    await a.merge(same, update(undefined, new Map(), 'r1', state, 1))
    const twice = await a.merge(same, update(undefined, new Map(), 'r2', state, 1))
    assert.equal(twice.object.siblings.length, 2, 'equal states stay siblings: nothing to mint')

    const mixed = toBytes('mixed')
    await a.merge(mixed, update(undefined, new Map(), 'r1', state, 1))
    const withTombstone = await a.merge(mixed, update(undefined, new Map(), 'r2', null, 1))
    assert.equal(withTombstone.object.siblings.length, 2)
  })
})
