import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from '../../src/client.ts'
import type { ShoalClient } from '../../src/client.ts'
import { createNode } from '../../src/node.ts'
import type { ShoalNode } from '../../src/node.ts'
import { eventually } from '../support/eventually.ts'

const text = (values: Uint8Array[] | undefined): string[] => (values ?? []).map(v => new TextDecoder().decode(v)).sort()

function p2p (node: ShoalNode): string {
  return `${node.addrs[0] ?? ''}/p2p/${node.peerId}`.replace(/\/p2p\/[^/]+\/p2p\//, '/p2p/')
}

describe('client peers route requests themselves', function () {
  this.timeout(120_000)
  let root: string
  const nodes: Array<ShoalNode | undefined> = []
  const clients: ShoalClient[] = []

  async function start (i: number, bootstrap: ShoalNode | undefined): Promise<ShoalNode> {
    const node = await createNode({
      dataDir: join(root, `node-${i}`),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: bootstrap === undefined ? [] : [p2p(bootstrap)],
      cluster: 'ctest',
      timeoutMs: 2000
    })
    nodes[i] = node
    return node
  }

  async function client (bootstrap: ShoalNode, routing?: 'client' | 'server'): Promise<ShoalClient> {
    const c = await createClient({ bootstrap: [p2p(bootstrap)], cluster: 'ctest', timeoutMs: 6000, ...(routing === undefined ? {} : { routing }) })
    clients.push(c)
    return c
  }

  const live = (): ShoalNode[] => nodes.filter((n): n is ShoalNode => n !== undefined)

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-client-'))
    const first = await start(0, undefined)
    await start(1, first)
    await start(2, first)
    await eventually('three members up everywhere', () => live().every(n => n.status().members.filter(m => m.state === 'up').length === 3))
  })

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.stop()
    for (const node of nodes.splice(0)) await node?.stop()
    await rm(root, { recursive: true, force: true })
  })

  it('knows every member and the ring from its first request, and coordinates reads and writes itself', async () => {
    const c = await client(nodes[0]!)
    assert.equal(c.routing, 'client')
    assert.deepEqual(c.members().map(m => m.peerId).sort(), live().map(n => n.peerId).sort())
    for (let i = 0; i < 20; i++) await c.put(`key-${i}`, `value-${i}`)
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(text((await c.get(`key-${i}`))?.siblings), [`value-${i}`])
      assert.deepEqual(c.owners(`key-${i}`), nodes[0]!.owners(`key-${i}`), 'the client computes the same preference list as a member')
    }
    assert.deepEqual(c.stats, { routed: 40, forwarded: 0 })
    assert.ok(live().every(n => n.status().members.length === 3), 'the client never became a member')
  })

  it('with server routing, every request goes to a member to coordinate', async () => {
    const c = await client(nodes[0]!, 'server')
    await c.put('k', 'v')
    assert.deepEqual(text((await c.get('k'))?.siblings), ['v'])
    assert.deepEqual(c.stats, { routed: 0, forwarded: 2 })
  })

  it('reads its own writes and resolves siblings with the context it was given', async () => {
    const c = await client(nodes[1]!)
    await c.put('colour', 'red')
    await c.put('colour', 'blue')
    const both = await c.get('colour')
    assert.deepEqual(text(both?.siblings), ['blue', 'red'])
    await c.put('colour', 'purple', { context: both!.context })
    assert.deepEqual(text((await c.get('colour', { r: 3 }))?.siblings), ['purple'])
    const read = await c.get('colour')
    await c.delete('colour', { context: read!.context })
    assert.equal(await c.get('colour'), undefined)
  })

  it('learns a member that joins after it started, and routes that member\'s keys to it', async () => {
    const c = await client(nodes[0]!)
    const joined = await start(3, nodes[1]!)
    await eventually('the client sees the fourth member up', () => c.members().some(m => m.peerId === joined.peerId && m.state === 'up'))
    await eventually('the client and the members agree on the ring', () => {
      const keys = Array.from({ length: 64 }, (_, i) => `probe-${i}`)
      return keys.every(k => c.owners(k).join() === joined.owners(k).join())
    })
    const key = Array.from({ length: 500 }, (_, i) => `joined-${i}`).find(k => c.owners(k)[0] === joined.peerId)
    assert.ok(key !== undefined, 'some key has the new member first in its preflist')
    await c.put(key, 'to the newcomer', { w: 3 })
    assert.deepEqual(text((await joined.getLocal(key))?.siblings), ['to the newcomer'])
  })

  it('goes on reading and writing after the member it bootstrapped from stops', async () => {
    const c = await client(nodes[0]!)
    await c.put('before', 'stop')
    await nodes[0]!.stop()
    nodes[0] = undefined
    for (let i = 0; i < 10; i++) await c.put(`after-${i}`, `v${i}`)
    for (let i = 0; i < 10; i++) assert.deepEqual(text((await c.get(`after-${i}`))?.siblings), [`v${i}`])
    assert.deepEqual(text((await c.get('before'))?.siblings), ['stop'])
    await eventually('the client sees the stopped member as not up', () => c.members().some(m => m.state !== 'up'))
  })

  it('drops a member an operator removed from its ring', async () => {
    const c = await client(nodes[0]!)
    const gone = nodes[2]!
    const goneId = gone.peerId
    await gone.stop()
    nodes[2] = undefined
    nodes[0]!.remove(goneId)
    await eventually('the client sees the removed member as left', () => c.members().find(m => m.peerId === goneId)?.state === 'left')
    assert.ok(Array.from({ length: 64 }, (_, i) => `k${i}`).every(k => !c.owners(k).includes(goneId)))
  })

  it('a bootstrap address whose /p2p/ id names another peer fails at once, saying so', async () => {
    const wrong = `${nodes[0]!.addrs[0]!.replace(/\/p2p\/.*$/, '')}/p2p/${nodes[1]!.peerId}`
    await assert.rejects(createClient({ bootstrap: [wrong], cluster: 'ctest', timeoutMs: 6000 }), (err: Error) => {
      assert.equal(err.name, 'UnreachableError')
      assert.match(err.message, /another peer listens there/)
      return true
    })
  })
})
