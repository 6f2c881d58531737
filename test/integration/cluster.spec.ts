import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from '../../src/client.ts'
import { createNode } from '../../src/node.ts'
import type { ShoalNode } from '../../src/node.ts'
import { Ring } from '../../src/core/ring.ts'
import { toBytes } from '../../src/core/bytes.ts'
import { eventually } from '../support/eventually.ts'

const text = (values: Uint8Array[] | undefined): string[] => (values ?? []).map(v => new TextDecoder().decode(v)).sort()

function p2p (node: ShoalNode): string {
  return `${node.addrs[0] ?? ''}/p2p/${node.peerId}`.replace(/\/p2p\/[^/]+\/p2p\//, '/p2p/')
}

describe('a live cluster of five nodes in one process', function () {
  this.timeout(120_000)
  let root: string
  const nodes: ShoalNode[] = []
  const dirs: string[] = []

  async function start (i: number): Promise<ShoalNode> {
    const first = nodes.find(n => n !== undefined)
    const node = await createNode({
      dataDir: dirs[i] as string,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: first === undefined ? [] : [p2p(first)],
      cluster: 'itest',
      timeoutMs: 2000
    })
    nodes[i] = node
    return node
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-itest-'))
    for (let i = 0; i < 5; i++) dirs.push(join(root, `node-${i}`))
    for (let i = 0; i < 5; i++) await start(i)
    await eventually('every node sees 5 members up', () => nodes.every(n => n.status().members.filter(m => m.state === 'up').length === 5))
  })

  after(async () => {
    for (const node of nodes) await node?.stop()
    await rm(root, { recursive: true, force: true })
  })

  it('every node sees the same five members and the same ring', () => {
    const views = nodes.map(n => n.status().members.map(m => `${m.peerId}:${m.partitions}`).join(','))
    assert.equal(new Set(views).size, 1)
  })

  it('put, get and delete round-trip through any node', async () => {
    const { context } = await nodes[0]!.put('colour', 'red')
    assert.ok(context.length > 0)
    assert.deepEqual(text((await nodes[3]!.get('colour'))?.siblings), ['red'])
    const read = await nodes[2]!.get('colour')
    await nodes[4]!.delete('colour', { context: read?.context })
    assert.equal(await nodes[1]!.get('colour'), undefined)
  })

  it('concurrent writes without context become siblings; a write with the read\'s context collapses them', async () => {
    await Promise.all([nodes[0]!.put('shape', 'circle'), nodes[1]!.put('shape', 'square'), nodes[2]!.put('shape', 'star')])
    const read = await nodes[3]!.get('shape', { r: 3 })
    assert.deepEqual(text(read?.siblings), ['circle', 'square', 'star'])
    await nodes[4]!.put('shape', 'hexagon', { context: read?.context })
    assert.deepEqual(text((await nodes[0]!.get('shape', { r: 3 }))?.siblings), ['hexagon'])
  })

  it('a client peer that is no member reads and writes through the cluster', async () => {
    const client = await createClient({ bootstrap: [p2p(nodes[1]!)], cluster: 'itest' })
    try {
      await client.put('from-client', 'hello')
      assert.deepEqual(text((await client.get('from-client'))?.siblings), ['hello'])
      assert.ok(nodes.every(n => n.status().members.length === 5), 'the client never became a member')
    } finally {
      await client.stop()
    }
  })

  it('read repair brings a stale replica up to date', async () => {
    const key = 'repair-me'
    const ring = new Ring(nodes.map(n => ({ id: n.peerId, weight: 1 })))
    const owners = ring.owners(ring.partitionOf(toBytes(key)))
    const byId = new Map(nodes.map((n, i) => [n.peerId, i]))
    const stale = byId.get(owners[2]!)!
    await nodes[stale]!.stop()
    await nodes[byId.get(owners[0]!)!]!.put(key, 'fresh')
    await start(stale)
    assert.equal(await nodes[stale]!.getLocal(key), undefined, 'the restarted replica missed the write')
    await eventually('the restarted node is up again everywhere', () => nodes.every(n => n.status().members.filter(m => m.state === 'up').length === 5))
    assert.deepEqual(text((await nodes[0]!.get(key, { r: 3 }))?.siblings), ['fresh'])
    await eventually('read repair reached the stale replica', async () => text((await nodes[stale]!.getLocal(key))?.siblings).join() === 'fresh')
  })

  it('a W=2 write succeeds while one of the key\'s replicas is stopped, and an R=2 read returns it', async () => {
    const key = 'one-down'
    const ring = new Ring(nodes.map(n => ({ id: n.peerId, weight: 1 })))
    const owners = ring.owners(ring.partitionOf(toBytes(key)))
    const byId = new Map(nodes.map((n, i) => [n.peerId, i]))
    const down = byId.get(owners[1]!)!
    await nodes[down]!.stop()
    try {
      const via = nodes[byId.get(owners[0]!)!]!
      await via.put(key, 'still-writable', { w: 2 })
      assert.deepEqual(text((await via.get(key, { r: 2 }))?.siblings), ['still-writable'])
      await eventually('the others see the stopped node down', () =>
        nodes.filter((_, i) => i !== down).every(n => n.status().members.find(m => m.peerId === owners[1])?.state !== 'up'))
    } finally {
      await start(down)
    }
    await eventually('the returning node is seen up again', () => nodes.every(n => n.status().members.filter(m => m.state === 'up').length === 5))
  })
})

describe('twenty nodes on one host', function () {
  this.timeout(120_000)
  let root: string
  const nodes: ShoalNode[] = []

  before(async () => { root = await mkdtemp(join(tmpdir(), 'shoal-twenty-')) })
  after(async () => {
    await Promise.all(nodes.map(async n => { await n.stop() }))
    await rm(root, { recursive: true, force: true })
  })

  it('all see twenty members up though each was given only the first one\'s address; one that leaves and one an operator removes drop out of the ring', async () => {
    for (let i = 0; i < 20; i++) {
      nodes.push(await createNode({
        dataDir: join(root, `node-${i}`),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        bootstrap: i === 0 ? [] : [p2p(nodes[0]!)],
        cluster: 'twenty'
      }))
    }
    await eventually('every node sees 20 members up', () => nodes.every(n => n.status().members.filter(m => m.state === 'up').length === 20), 60_000)

    const leaver = nodes[5]!
    await leaver.leave()
    await eventually('every other node sees it left, and it owns no partitions', () => nodes.filter(n => n !== leaver).every(n => {
      const m = n.status().members.find(x => x.peerId === leaver.peerId)
      return m?.state === 'left' && m.partitions === 0
    }))
    await nodes[7]!.put('after-leave', 'ok')
    assert.deepEqual(text((await nodes[12]!.get('after-leave'))?.siblings), ['ok'])

    // A member gone for good: stopped, then removed by an operator through any other node.
    const gone = nodes[9]!
    await gone.stop()
    nodes[3]!.remove(gone.peerId)
    await eventually('every node sees the removed member out of the ring', () => nodes.filter(n => n !== leaver && n !== gone).every(n => {
      const m = n.status().members.find(x => x.peerId === gone.peerId)
      return m?.state === 'left' && m.partitions === 0
    }))
  })
})
