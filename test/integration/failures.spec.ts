import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createNode } from '../../src/node.ts'
import type { NodeOptions, ShoalNode } from '../../src/node.ts'
import { eventually } from '../support/eventually.ts'

const text = (values: Uint8Array[] | undefined): string[] => (values ?? []).map(v => new TextDecoder().decode(v)).sort()

function p2p (node: ShoalNode): string {
  return `${node.addrs[0] ?? ''}/p2p/${node.peerId}`.replace(/\/p2p\/[^/]+\/p2p\//, '/p2p/')
}

/** Real in-process nodes over TCP on loopback with LevelDB in a temp dir; stopped and restarted by index. */
class Cluster {
  readonly nodes: Array<ShoalNode | undefined> = []
  readonly dirs: string[] = []
  root = ''
  private readonly options: Partial<NodeOptions>
  private readonly ports: number[] = []

  constructor (options: Partial<NodeOptions>) {
    this.options = options
  }

  async create (count: number): Promise<void> {
    this.root = await mkdtemp(join(tmpdir(), 'shoal-failures-'))
    for (let i = 0; i < count; i++) await this.start(i)
    await this.settled(count)
  }

  async start (i: number): Promise<ShoalNode> {
    this.dirs[i] ??= join(this.root, `node-${i}`)
    const first = this.nodes.find((n, j) => n !== undefined && j !== i)
    const node = await createNode({
      dataDir: this.dirs[i],
      // A restarted node comes back on its old port, so the others' dials find it.
      listen: [`/ip4/127.0.0.1/tcp/${this.ports[i] ?? 0}`],
      bootstrap: first === undefined ? [] : [p2p(first)],
      cluster: 'failures',
      timeoutMs: 2000,
      ...this.options
    })
    this.ports[i] = Number(/\/tcp\/(\d+)/.exec(node.addrs[0] ?? '')?.[1] ?? 0)
    this.nodes[i] = node
    return node
  }

  async stop (i: number): Promise<void> {
    await this.nodes[i]?.stop()
    this.nodes[i] = undefined
  }

  live (): ShoalNode[] {
    return this.nodes.filter((n): n is ShoalNode => n !== undefined)
  }

  node (i: number): ShoalNode {
    const node = this.nodes[i]
    if (node === undefined) throw new Error(`node ${i} is stopped`)
    return node
  }

  /** Every live node sees `up` members up. */
  async settled (up: number): Promise<void> {
    await eventually(`every node sees ${up} members up`, () => this.live().every(n => n.status().members.filter(m => m.state === 'up').length === up), 20_000)
  }

  async destroy (): Promise<void> {
    for (const node of this.live()) await node.stop()
    if (this.root !== '') await rm(this.root, { recursive: true, force: true })
  }
}

describe('writable through failures (in-process nodes over TCP)', function () {
  this.timeout(180_000)

  describe('hinted handoff: five nodes, two stopped', () => {
    const cluster = new Cluster({ hintIntervalMs: 200, antiEntropyIntervalMs: 0, handoffIntervalMs: 0, reaperIntervalMs: 0 })
    before(async () => { await cluster.create(5) })
    after(async () => { await cluster.destroy() })

    it('accepts 500 writes at W=2 with two members down, then hands every hinted copy to its owner', async () => {
      const stopped = [cluster.node(3).peerId, cluster.node(4).peerId]
      await cluster.stop(3)
      await cluster.stop(4)
      await eventually('the survivors see two members down', () => cluster.live().every(n => n.status().members.filter(m => m.state === 'down').length === 2), 20_000)

      const keys = Array.from({ length: 500 }, (_, i) => `hinted-${i}`)
      const coordinators = cluster.live()
      let both = 0
      await Promise.all(keys.map(async (key, i) => {
        const via = coordinators[i % coordinators.length]!
        if (via.owners(key).filter(o => stopped.includes(o)).length === 2) both++
        await via.put(key, `v-${i}`)
      }))
      assert.ok(both > 0, 'some keys have two of their three owners down')
      const pending = cluster.live().reduce((n, node) => n + node.status().hintsPending, 0)
      assert.ok(pending > 0, 'fallbacks hold hints')

      await cluster.start(3)
      await cluster.start(4)
      await cluster.settled(5)
      await eventually('no node has hints pending', () => cluster.live().every(n => n.status().hintsPending === 0), 30_000)
      // At least the hints counted then: a put returns after W acknowledgements, so the last hinted
      // copies may still have been on their way when they were counted.
      const delivered = cluster.live().reduce((n, node) => n + node.status().hintsDelivered, 0)
      assert.ok(delivered >= pending, `${delivered} delivered, ${pending} were pending`)

      for (const [i, key] of keys.entries()) {
        for (const node of cluster.live()) {
          const local = await node.getLocal(key)
          if (node.owners(key).includes(node.peerId)) {
            assert.deepEqual(text(local?.siblings), [`v-${i}`], `${key} on its owner ${node.peerId}`)
          } else {
            assert.equal(local, undefined, `${key} left behind on ${node.peerId}, which does not own it`)
          }
        }
      }
    })
  })

  describe('anti-entropy alone (no hints, no read repair)', () => {
    const cluster = new Cluster({
      n: 3, sloppyQuorum: false, readRepair: false, hintIntervalMs: 0, handoffIntervalMs: 0, reaperIntervalMs: 0, antiEntropyIntervalMs: 300
    })
    before(async () => { await cluster.create(3) })
    after(async () => { await cluster.destroy() })

    it('brings a replica that missed 200 writes to identical objects, then finds nothing more to repair', async () => {
      await cluster.stop(2)
      await eventually('the others see it down', () => cluster.live().every(n => n.status().members.filter(m => m.state === 'down').length === 1), 20_000)
      const keys = Array.from({ length: 200 }, (_, i) => `ae-${i}`)
      await Promise.all(keys.map(async (key, i) => { await cluster.node(i % 2).put(key, `v-${i}`) }))
      assert.equal(await (await cluster.start(2)).getLocal(keys[0]!), undefined, 'the returning replica missed the writes')
      await cluster.settled(3)

      await eventually('all three replicas hold identical objects', async () => {
        for (const key of keys) {
          const copies = await Promise.all(cluster.live().map(async n => JSON.stringify(await n.getLocal(key) ?? null)))
          if (new Set(copies).size !== 1 || copies[0] === 'null') return false
        }
        return true
      }, 60_000, 500)
      const repaired = cluster.live().reduce((n, node) => n + node.status().antiEntropy.keysRepaired, 0)
      assert.ok(repaired >= keys.length, `repaired ${repaired}: ${JSON.stringify(cluster.live().map(n => n.status().antiEntropy))}`)
      const bytes = cluster.live().reduce((n, node) => n + node.status().antiEntropy.bytesSent, 0)
      assert.ok(bytes > 0)

      // Quiescence: every node runs exchanges with both others, and none repairs anything.
      const before = cluster.live().map(n => n.status().antiEntropy)
      for (const node of cluster.live()) {
        const result = await node.syncNow()
        assert.equal(result.repairedHere + result.repairedThere, 0)
        assert.equal(result.differing, 0)
      }
      await eventually('background exchanges keep running', () => cluster.live().every((n, i) => n.status().antiEntropy.exchanges >= before[i]!.exchanges + 3), 20_000)
      assert.equal(cluster.live().reduce((n, node) => n + node.status().antiEntropy.keysRepaired, 0), repaired, 'no repairs without writes')
    })
  })

  describe('safe deletes', () => {
    const cluster = new Cluster({
      n: 3, hintIntervalMs: 200, antiEntropyIntervalMs: 300, handoffIntervalMs: 0, reaperIntervalMs: 300, tombstoneGraceMs: 500
    })
    before(async () => { await cluster.create(3) })
    after(async () => { await cluster.destroy() })

    it('a replica that missed a delete does not bring the value back, before or after the purge', async () => {
      await cluster.node(0).put('doomed', 'alive')
      await eventually('all three hold the value', async () => (await Promise.all(cluster.live().map(async n => await n.getLocal('doomed')))).every(r => r !== undefined))
      await cluster.stop(2)
      await eventually('the others see it down', () => cluster.live().every(n => n.status().members.filter(m => m.state === 'down').length === 1), 20_000)
      const read = await cluster.node(0).get('doomed')
      await cluster.node(1).delete('doomed', { context: read?.context })
      assert.equal(await cluster.node(0).get('doomed'), undefined)

      // Past the grace period, but a member is down: nothing may be purged.
      await new Promise(resolve => setTimeout(resolve, 1000))
      for (const node of cluster.live()) await node.purgeNow()
      assert.equal(cluster.live().reduce((n, node) => n + node.status().tombstones.purged, 0), 0)

      const returning = await cluster.start(2)
      assert.deepEqual(text((await returning.getLocal('doomed'))?.siblings), ['alive'], 'it still holds the old value')
      await cluster.settled(3)
      assert.equal(await returning.get('doomed', { r: 3 }), undefined, 'a read sees the delete')
      await eventually('the tombstone is purged everywhere', () => cluster.live().reduce((n, node) => n + node.status().tombstones.purged, 0) >= 1, 30_000)
      for (const node of cluster.live()) await node.syncNow()
      for (const node of cluster.live()) {
        assert.equal(await node.getLocal('doomed'), undefined)
        assert.equal(await node.get('doomed', { r: 3 }), undefined)
      }
    })
  })

  describe('join and leave under a write load', () => {
    const cluster = new Cluster({ hintIntervalMs: 200, antiEntropyIntervalMs: 1000, handoffIntervalMs: 300, reaperIntervalMs: 0 })
    before(async () => { await cluster.create(5) })
    after(async () => { await cluster.destroy() })

    it('a sixth node gets its share, a node leaves, no acknowledged key is lost and every key ends on exactly its owners', async () => {
      const acked = new Map<string, string>()
      let failures = 0
      let running = true
      let next = 0
      const leaverIndex = 1
      let leaverGone = false
      const writer = async (): Promise<void> => {
        while (running) {
          const i = next++
          const via = cluster.live().filter(n => !(leaverGone && n === cluster.nodes[leaverIndex]))
          const node = via[i % via.length]!
          try {
            await node.put(`load-${i}`, `v-${i}`)
            acked.set(`load-${i}`, `v-${i}`)
          } catch {
            failures++
          }
        }
      }
      const writers = Array.from({ length: 4 }, writer)
      await eventually('some writes land', () => acked.size >= 100, 20_000)

      const joiner = await cluster.start(5)
      await cluster.settled(6)
      await eventually('the new node holds its share', () => joiner.status().members.find(m => m.peerId === joiner.peerId)!.partitions > 0 && joiner.status().handoff.pending === 0, 30_000)
      await eventually('the old owners handed off what the new node owns', () => cluster.live().every(n => n.status().handoff.pending === 0), 60_000, 200)
      const joinerShare = joiner.status().members.find(m => m.peerId === joiner.peerId)!.partitions
      assert.ok(joinerShare > 0)

      const leaver = cluster.node(leaverIndex)
      const left = await leaver.leave()
      assert.equal(left.state, 'left')
      assert.equal(left.handoff.pending, 0)
      assert.equal(left.hintsPending, 0)
      leaverGone = true
      const beforeLeft = acked.size
      await eventually('more writes land after the leave', () => acked.size >= beforeLeft + 50, 20_000)
      running = false
      await Promise.all(writers)
      await cluster.stop(leaverIndex)
      await eventually('every node sees five members up', () => cluster.live().every(n => n.status().members.filter(m => m.state === 'up').length === 5), 20_000)

      // Done is a sweep over every node in which none has anything pending and nothing moved: a
      // node checked early in a sweep could otherwise take a delivery from one checked later.
      const moved = (): number => cluster.live().reduce((n, node) => {
        const s = node.status()
        return n + s.hintsDelivered + s.handoff.keysSent + s.handoff.keysDropped
      }, 0)
      await eventually('hints and handoffs are done everywhere', async () => {
        const before = moved()
        for (const node of cluster.live()) {
          await node.handoffNow()
          const s = node.status()
          if (s.hintsPending !== 0 || s.handoff.pending !== 0) return false
        }
        return moved() === before
      }, 60_000, 500)

      assert.ok(acked.size >= 200, `${acked.size} writes acknowledged, ${failures} failed`)
      for (const [key, value] of acked) {
        let copies = 0
        for (const node of cluster.live()) {
          const local = await node.getLocal(key)
          if (node.owners(key).includes(node.peerId)) {
            assert.deepEqual(text(local?.siblings), [value], `${key} on its owner`)
            copies++
          } else {
            assert.equal(local, undefined, `${key} left behind on a node that does not own it`)
          }
        }
        assert.equal(copies, 3)
      }
    })
  })
})
