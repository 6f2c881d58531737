import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from '../../src/client.ts'
import type { ShoalClient } from '../../src/client.ts'
import { CRDT_MAGIC } from '../../src/core/crdt/typed-value.ts'
import { lastWriterWins } from '../../src/kv-ops.ts'
import type { Resolver } from '../../src/kv-ops.ts'
import { createNode } from '../../src/node.ts'
import type { NodeOptions, ShoalNode } from '../../src/node.ts'
import { eventually } from '../support/eventually.ts'

const text = (v: Uint8Array | undefined): string => v === undefined ? '' : new TextDecoder().decode(v)
/** Siblings holding JSON arrays of strings: their union, sorted (a resolver users might write). */
const union: Resolver = siblings => new TextEncoder().encode(JSON.stringify([...new Set(siblings.flatMap(s => JSON.parse(text(s)) as string[]))].sort()))

function p2p (node: ShoalNode): string {
  return `${node.addrs[0] ?? ''}/p2p/${node.peerId}`.replace(/\/p2p\/[^/]+\/p2p\//, '/p2p/')
}

describe('counters, sets and update() on a live cluster (in-process nodes over TCP)', function () {
  this.timeout(180_000)
  let root: string
  const nodes: Array<ShoalNode | undefined> = []
  const ports: number[] = []
  const clients: ShoalClient[] = []
  // No read repair and no sloppy quorum: a replica that missed writes catches up through
  // anti-entropy alone, so its merges (and their collapse of counter siblings) are what is tested.
  const options: Partial<NodeOptions> = { n: 3, readRepair: false, sloppyQuorum: false, hintIntervalMs: 0, handoffIntervalMs: 0, reaperIntervalMs: 0, antiEntropyIntervalMs: 300, timeoutMs: 2000 }

  async function start (i: number): Promise<ShoalNode> {
    const first = nodes.find((n, j) => n !== undefined && j !== i)
    const node = await createNode({
      dataDir: join(root, `node-${i}`),
      listen: [`/ip4/127.0.0.1/tcp/${ports[i] ?? 0}`],
      bootstrap: first === undefined ? [] : [p2p(first)],
      cluster: 'crdt',
      ...options,
      ...(i === 0 ? { resolver: lastWriterWins } : {})
    })
    ports[i] = Number(/\/tcp\/(\d+)/.exec(node.addrs[0] ?? '')?.[1] ?? 0)
    nodes[i] = node
    return node
  }

  const live = (): ShoalNode[] => nodes.filter((n): n is ShoalNode => n !== undefined)
  const up = async (count: number): Promise<void> => {
    await eventually(`every node sees ${count} members up`, () => live().every(n => n.status().members.filter(m => m.state === 'up').length === count), 30_000)
  }

  async function client (via: ShoalNode): Promise<ShoalClient> {
    const c = await createClient({ bootstrap: [p2p(via)], cluster: 'crdt', timeoutMs: 6000 })
    clients.push(c)
    return c
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-crdt-'))
    for (let i = 0; i < 3; i++) await start(i)
    await up(3)
  })

  after(async () => {
    for (const c of clients.splice(0)) await c.stop().catch(() => {})
    for (const node of nodes.splice(0)) await node?.stop().catch(() => {})
    await rm(root, { recursive: true, force: true })
  })

  it('concurrent increments from two clients at W=1, across a stopped and restarted replica, add up exactly once converged', async () => {
    const [a, b] = [await client(nodes[0]!), await client(nodes[1]!)]
    const hits = [a.counter('hits'), b.counter('hits')] as const
    let expected = 0
    const phase = async (rounds: number): Promise<void> => {
      await Promise.all([
        (async () => { for (let i = 0; i < rounds; i++) { await hits[0].increment(1, { w: 1, r: 1 }); expected += 1 } })(),
        (async () => { for (let i = 0; i < rounds; i++) { await hits[1].increment(3, { w: 1, r: 1 }); await hits[1].decrement(1, { w: 1, r: 1 }); expected += 2 } })()
      ])
    }
    await phase(15)
    // One replica misses the next phase entirely.
    await nodes[2]!.stop()
    nodes[2] = undefined
    await eventually('the others see it down', () => live().every(n => n.status().members.filter(m => m.state === 'up').length === 2), 30_000)
    await phase(15)
    await start(2)
    await up(3)
    await phase(10)
    assert.equal(expected, 3 * (15 + 15 + 10), 'every increment was acknowledged')

    // Anti-entropy alone brings every replica to the same copy holding every increment.
    // Each replica's own copy's context: equal contexts, equal copies.
    const locals = async (): Promise<Array<string | undefined>> => await Promise.all(live().map(async n => (await n.getLocal('hits'))?.context))
    await eventually('every replica holds the same copy', async () => {
      const copies = await locals()
      return copies.every(c => c !== undefined) && new Set(copies).size === 1
    }, 60_000, 200)
    for (const c of [a, b]) assert.equal(await c.counter('hits').value({ r: 3 }), expected, 'read through each client with R=3')
    for (const n of live()) assert.equal(await n.counter('hits').value({ r: 1 }), expected, 'read through each node')

    // Quiescent: more exchanges run, and no replica mints another dot.
    const before = await locals()
    const exchanges = live().map(n => n.status().antiEntropy.exchanges)
    await eventually('three more exchanges on every node', () => live().every((n, i) => n.status().antiEntropy.exchanges >= exchanges[i]! + 3), 30_000)
    assert.deepEqual(await locals(), before)
  })

  it('sets: adds and removes from two clients merge; members read the same through every node', async () => {
    const [a, b] = [await client(nodes[1]!), await client(nodes[2]!)]
    await Promise.all([
      (async () => { for (const m of ['apples', 'pears', 'plums']) await a.set('cart').add(m, { w: 1 }) })(),
      (async () => { for (const m of ['kiwis', 'limes']) await b.set('cart').add(m, { w: 1 }) })()
    ])
    assert.equal(await b.set('cart').remove('pears'), true)
    assert.equal(await a.set('cart').remove('mangos'), false)
    const expected = ['apples', 'kiwis', 'limes', 'plums']
    await eventually('every node reads the same members', async () => {
      const reads = await Promise.all(live().map(async n => (await n.set('cart').members({ r: 3 })).map(text).join(',')))
      return reads.every(r => r === expected.join(','))
    }, 30_000, 200)
    assert.equal(await a.set('cart').has('pears'), false)
  })

  it('update(): resolves with the given resolver, refuses siblings without one, and keeps every concurrent change', async () => {
    const [a, b] = [await client(nodes[0]!), await client(nodes[1]!)]
    // Two blind writes: siblings.
    await a.put('doc', '["x"]')
    await b.put('doc', '["y"]')
    assert.equal((await a.get('doc', { r: 3 }))?.siblings.length, 2)
    // A read can merge them for the caller, and only when asked.
    const merged = await a.get('doc', { r: 3, resolver: union })
    assert.deepEqual(merged?.siblings.map(text), ['["x","y"]'])
    await assert.rejects(a.get('doc', { resolver: 'lww' as unknown as Resolver }), { name: 'InvalidArgumentError' })
    await assert.rejects(a.update('doc', () => '["z"]'), { name: 'SiblingsError' })
    assert.equal((await a.get('doc', { r: 3 }))?.siblings.length, 2, 'nothing written')

    // Twenty concurrent appends from two clients, merged by the union resolver.
    const append = async (c: ShoalClient, element: string): Promise<void> => {
      try {
        await c.update('doc', current => JSON.stringify([...(JSON.parse(text(current) || '[]') as string[]), element]), { resolver: union, attempts: 10 })
      } catch (err) {
        // Written, but still beside a concurrent sibling: the final resolve below merges it.
        if ((err as Error).name !== 'ConflictError') throw err
      }
    }
    await Promise.all([
      (async () => { for (let i = 0; i < 10; i++) await append(a, `a${i}`) })(),
      (async () => { for (let i = 0; i < 10; i++) await append(b, `b${i}`) })()
    ])
    const final = await a.update('doc', current => current ?? '[]', { resolver: union })
    const elements = JSON.parse(text(final.value)) as string[]
    for (const e of ['x', 'y', ...Array.from({ length: 10 }, (_, i) => `a${i}`), ...Array.from({ length: 10 }, (_, i) => `b${i}`)]) {
      assert.ok(elements.includes(e), `${e} kept`)
    }
    assert.equal((await b.get('doc', { r: 3 }))?.siblings.length, 1)
  })

  it('a node\'s own resolver (lastWriterWins here) applies when the call gives none', async () => {
    const node = nodes[0]!
    await node.put('greeting', 'hello')
    await nodes[1]!.put('greeting', 'hi')
    assert.deepEqual((await node.get('greeting', { r: 3, resolver: lastWriterWins }))?.siblings.map(text), ['hi'])
    const result = await node.update('greeting', current => `${text(current)}!`)
    assert.equal(text(result.value), 'hi!')
    assert.deepEqual((await node.get('greeting', { r: 3 }))?.siblings.map(text), ['hi!'])
  })

  it('a plain value in the reserved prefix is refused by node and client alike; counters refuse plain keys', async () => {
    const c = await client(nodes[2]!)
    const forged = Uint8Array.of(...CRDT_MAGIC, 1, 1)
    await assert.rejects(c.put('forged', forged), { name: 'InvalidArgumentError' })
    await assert.rejects(nodes[0]!.put('forged', forged), { name: 'InvalidArgumentError' })
    await assert.rejects(c.update('forged', () => forged), { name: 'InvalidArgumentError' })
    assert.equal(await c.get('forged', { r: 3 }), undefined)
    await c.put('plain', 'text')
    await assert.rejects(c.counter('plain').increment(), { name: 'WrongTypeError' })
    await assert.rejects(c.set('plain').add('x'), { name: 'WrongTypeError' })
    assert.deepEqual((await c.get('plain', { r: 3 }))?.siblings.map(text), ['text'])
  })
})
