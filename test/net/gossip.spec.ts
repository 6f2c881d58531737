import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Discovery } from '../../src/net/discovery.ts'
import { ClusterGossip, clusterTopic } from '../../src/net/gossip.ts'
import { createShoalLibp2p, mdnsServiceTag } from '../../src/net/libp2p.ts'
import type { ShoalLibp2p, ShoalLibp2pOptions } from '../../src/net/libp2p.ts'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { freePort } from '../support/ports.ts'

const LOOPBACK = '/ip4/127.0.0.1/tcp/0'
const encoder = new TextEncoder()

interface Received {
  from: string
  text: string
}

/** What the router knows beyond the public GossipSub interface: the mesh itself. */
interface MeshView {
  getMeshPeers (topic: string): string[]
}

function hasMeshView (pubsub: object): pubsub is MeshView {
  return 'getMeshPeers' in pubsub && typeof pubsub.getMeshPeers === 'function'
}

function meshSize (node: ShoalLibp2p, topic: string): number {
  const pubsub = node.services.pubsub
  assert.ok(hasMeshView(pubsub), 'gossipsub exposes getMeshPeers')
  return pubsub.getMeshPeers(topic).length
}

function connected (a: ShoalLibp2p, b: ShoalLibp2p): boolean {
  return a.getConnections(b.peerId).some(conn => conn.status === 'open')
}

/** Poll `condition` until it holds; fail naming `what` after `deadlineMs`. No fixed sleeps. */
async function waitFor (what: string, condition: () => boolean | Promise<boolean>, deadlineMs = 10_000): Promise<number> {
  const start = Date.now()
  while (!await condition()) {
    if (Date.now() - start > deadlineMs) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  return Date.now() - start
}


describe('cluster gossip and discovery over real libp2p', function () {
  this.timeout(30_000)

  let nodes: ShoalLibp2p[] = []
  let discoveries: Discovery[] = []
  let gossips: ClusterGossip[] = []

  afterEach(async () => {
    for (const discovery of discoveries) discovery.stop()
    for (const gossip of gossips) {
      try { gossip.stop() } catch {}
    }
    await Promise.allSettled(nodes.map(async node => { await node.stop() }))
    nodes = []
    discoveries = []
    gossips = []
  })

  async function node (options: Partial<ShoalLibp2pOptions> & { privateKey?: PrivateKey } = {}): Promise<ShoalLibp2p> {
    const libp2p = await createShoalLibp2p({
      privateKey: options.privateKey ?? await generateKeyPair('Ed25519'),
      listen: options.listen ?? [LOOPBACK],
      cluster: options.cluster ?? 'test',
      ...(options.bootstrap !== undefined ? { bootstrap: options.bootstrap } : {}),
      ...(options.mdns !== undefined ? { mdns: options.mdns } : {})
    })
    nodes.push(libp2p)
    return libp2p
  }

  function discovery (libp2p: ShoalLibp2p, bootstrap: string[] = [], redialMs = 100, dialTimeoutMs?: number): Discovery {
    const d = new Discovery(libp2p, { bootstrap, redialMs, maxRedialMs: 400, ...(dialTimeoutMs !== undefined ? { dialTimeoutMs } : {}) })
    discoveries.push(d)
    d.start()
    return d
  }

  function gossip (libp2p: ShoalLibp2p, cluster: string, inbox: Received[] = [], handler?: (from: string, data: Uint8Array) => void): ClusterGossip {
    const g = new ClusterGossip(libp2p, cluster, handler ?? ((from, data) => { inbox.push({ from, text: new TextDecoder().decode(data) }) }))
    gossips.push(g)
    g.start()
    return g
  }

  function subscribed (a: ShoalLibp2p, b: ShoalLibp2p, topic: string): boolean {
    return a.services.pubsub.getSubscribers(topic).some(peer => peer.equals(b.peerId))
  }

  it('20 members bootstrapped to one form a mesh once they dial each other, and a message reaches all', async () => {
    const cluster = 'twenty'
    const topic = clusterTopic(cluster)
    const seed = await node({ cluster })
    const seedAddr = seed.getMultiaddrs()[0]?.toString()
    assert.ok(seedAddr !== undefined)
    const members = [seed, ...await Promise.all(Array.from({ length: 19 }, async () => node({ cluster, bootstrap: [seedAddr] })))]
    const inboxes = members.map(() => [] as Received[])
    const dialers = members.map((m, i) => discovery(m, i === 0 ? [] : [seedAddr]))
    members.forEach((m, i) => gossip(m, cluster, inboxes[i]))

    // What heartbeats will do: each member dials the addresses the others announce.
    for (const d of dialers) {
      for (const m of members) d.dialMember(m.peerId.toString(), m.getMultiaddrs().map(String))
    }
    await waitFor('a full mesh of connections', () => members.every(m => m.getPeers().length === 19))
    await waitFor('every member to graft gossip mesh peers', () => members.every(m => meshSize(m, topic) >= 4))

    const sender = members[7]
    assert.ok(sender !== undefined)
    await sender.services.pubsub.publish(topic, encoder.encode('from seven'))
    await waitFor('the message to reach the 19 others', () => inboxes.every((inbox, i) => i === 7 || inbox.length > 0))

    inboxes.forEach((inbox, i) => {
      if (i === 7) assert.deepEqual(inbox, [], 'no echo to the sender')
      else assert.deepEqual(inbox, [{ from: sender.peerId.toString(), text: 'from seven' }], `member ${i} got it once`)
    })
    for (const m of members) assert.ok(meshSize(m, topic) >= 1, 'no member is isolated')
  })

  it('a member started before its bootstrap peer connects once that peer comes up', async () => {
    // The joiner has no libp2p bootstrap module: only Discovery's re-dials can connect it.
    const seedKey = await generateKeyPair('Ed25519')
    const seedId = peerIdFromPrivateKey(seedKey)
    const port = await freePort()
    const seedAddr = `/ip4/127.0.0.1/tcp/${port}/p2p/${seedId.toString()}`
    const joiner = await node()
    discovery(joiner, [seedAddr])

    await waitFor('a failed first dial', async () => await hasFailedDial(joiner, seedId))
    const seed = await node({ privateKey: seedKey, listen: [`/ip4/127.0.0.1/tcp/${port}`] })
    await waitFor('the joiner to reach the seed', () => connected(joiner, seed), 5_000)
  })

  it('a member that loses its bootstrap peer dials it again when it comes back', async () => {
    const seedKey = await generateKeyPair('Ed25519')
    const port = await freePort()
    const listen = [`/ip4/127.0.0.1/tcp/${port}`]
    let seed = await node({ privateKey: seedKey, listen })
    const seedAddr = `${listen[0]}/p2p/${seed.peerId.toString()}`
    const joiner = await node()
    discovery(joiner, [seedAddr])
    await waitFor('the first connection', () => connected(joiner, seed))

    await seed.stop()
    await waitFor('the joiner to notice', () => joiner.getConnections(seed.peerId).length === 0)
    seed = await node({ privateKey: seedKey, listen })
    await waitFor('the joiner to reconnect', () => connected(joiner, seed), 5_000)
  })

  // mDNS multicasts on every interface, so it is tested where that stays on this machine: in a
  // network namespace of its own (test/system/mdns.spec.ts). Here only the per-cluster tag.
  it('mDNS service tags differ per cluster, so other clusters are not even discovered', () => {
    assert.notEqual(mdnsServiceTag('lan-one'), mdnsServiceTag('lan-two'))
    assert.match(mdnsServiceTag('lan-one'), /^_shoal-[0-9a-f]{16}\._udp\.local$/)
  })

  it('messages on another cluster\'s topic are not delivered', async () => {
    const a = await node()
    const b = await node()
    await a.dial(b.getMultiaddrs())
    const red: Received[] = []
    const blue: Received[] = []
    const ga = gossip(a, 'red')
    // B listens to both topics on one router: only the red listener may see red messages.
    gossip(b, 'red', red)
    gossip(b, 'blue', blue)
    await waitFor('B\'s red subscription to reach A', () => subscribed(a, b, ga.topic))

    await ga.publish(encoder.encode('red alert'))
    await waitFor('the red message', () => red.length > 0)
    assert.deepEqual(red, [{ from: a.peerId.toString(), text: 'red alert' }])
    assert.deepEqual(blue, [])
  })

  it('a throwing or rejecting message handler does not break gossip', async () => {
    const a = await node()
    const b = await node()
    await a.dial(b.getMultiaddrs())
    const seen: string[] = []
    const ga = gossip(a, 'test')
    gossip(b, 'test', [], (_from, data) => {
      const text = new TextDecoder().decode(data)
      seen.push(text)
      if (text === 'throw') throw new Error('handler bug')
    })
    // An async handler that rejects: its rejection must be caught, not left unhandled.
    const asyncHandler = async (): Promise<void> => { throw new Error('async handler bug') }
    gossip(b, 'test', [], asyncHandler)
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
    process.on('unhandledRejection', onUnhandled)
    try {
      await waitFor('B\'s subscription to reach A', () => subscribed(a, b, ga.topic))
      await ga.publish(encoder.encode('throw'))
      await ga.publish(encoder.encode('after'))
      await waitFor('the message after the throw', () => seen.includes('after'))
      await new Promise(resolve => setImmediate(resolve))
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
    assert.deepEqual(seen, ['throw', 'after'])
    assert.deepEqual(unhandled, [])
  })

  it('a client that only dials (no listen address) joins through its bootstrap peer and hears gossip', async () => {
    const member = await node()
    const memberAddr = member.getMultiaddrs()[0]?.toString()
    assert.ok(memberAddr !== undefined)
    const client = await node({ listen: [], bootstrap: [memberAddr] })
    assert.deepEqual(client.getMultiaddrs(), [])
    discovery(client, [memberAddr])
    const inbox: Received[] = []
    gossip(client, 'test', inbox)
    const gm = gossip(member, 'test')
    await waitFor('the client to connect and subscribe', () => subscribed(member, client, gm.topic))
    await gm.publish(encoder.encode('hello client'))
    await waitFor('the heartbeat to reach the client', () => inbox.length > 0)
    assert.deepEqual(inbox, [{ from: member.peerId.toString(), text: 'hello client' }])
  })

  it('of two members that learn of each other, the larger peer id dials only if the other did not', async () => {
    const [lowKey, highKey] = await orderedKeys()
    const low = await node({ privateKey: lowKey })
    const high = await node({ privateKey: highKey })
    const fromLow = discovery(low, [], 100, 300)
    const fromHigh = discovery(high, [], 100, 300)
    const lowDials = countDials(low)
    const highDials = countDials(high)

    // Both hear a heartbeat: only the smaller id dials, so the pair pays for one handshake.
    fromLow.dialMember(high.peerId.toString(), high.getMultiaddrs().map(String))
    fromHigh.dialMember(low.peerId.toString(), low.getMultiaddrs().map(String))
    await waitFor('the pair to connect', () => connected(low, high))
    assert.deepEqual([lowDials.count, highDials.count], [1, 0])
    assert.equal(low.getConnections(high.peerId).length, 1)

    // Only the larger id hears of the other (say the smaller cannot reach it): it still dials,
    // once the grace of one dial timeout has passed.
    await low.hangUp(high.peerId)
    await waitFor('the pair to part', () => !connected(low, high) && !connected(high, low))
    fromHigh.dialMember(low.peerId.toString(), low.getMultiaddrs().map(String))
    assert.equal(connected(high, low), false)
    await waitFor('the larger id to dial after its grace', () => connected(high, low), 5_000)
  })

  it('an unreachable member is dialed with backoff, not on every heartbeat', async () => {
    const [lowKey, highKey] = await orderedKeys()
    const self = await node({ privateKey: lowKey })
    const ghost = peerIdFromPrivateKey(highKey).toString()
    const deadAddr = `/ip4/127.0.0.1/tcp/${await freePort()}`
    const d = discovery(self, [], 100)
    const dials = countDials(self)
    const start = Date.now()
    // Heartbeats every 20 ms for 600 ms: without backoff that would be about 30 dials.
    while (Date.now() - start < 600) {
      d.dialMember(ghost, [deadAddr])
      d.dialMember(ghost, [deadAddr])
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    assert.ok(dials.count >= 2, `re-dialed (${dials.count})`)
    assert.ok(dials.count <= 5, `backed off (${dials.count} dials)`)
  })

  it('a lone member publishes without error, and start and stop are idempotent', async () => {
    const a = await node()
    const g = gossip(a, 'alone')
    g.start()
    await g.publish(encoder.encode('anyone?'))
    assert.deepEqual(a.services.pubsub.getTopics(), [g.topic])
    g.stop()
    g.stop()
    assert.deepEqual(a.services.pubsub.getTopics(), [])
    const d = discovery(a, [])
    d.start()
    d.stop()
    d.stop()
  })

  it('cluster names map to distinct topics', () => {
    assert.equal(clusterTopic('prod'), '/shoal/prod/members/1')
    assert.notEqual(clusterTopic('a/b'), clusterTopic('a%2Fb'))
    assert.equal(clusterTopic('a/b/members/1').split('/').length, clusterTopic('x').split('/').length)
  })

  it('bad listen and bootstrap addresses are rejected with InvalidArgumentError naming them', async () => {
    const privateKey = await generateKeyPair('Ed25519')
    await assert.rejects(createShoalLibp2p({ privateKey, listen: ['/ip4/127.0.0.1/tcp/nope'], cluster: 'x' }),
      (err: Error) => err.name === 'InvalidArgumentError' && err.message.includes('/ip4/127.0.0.1/tcp/nope'))
    await assert.rejects(createShoalLibp2p({ privateKey, listen: ['/ip4/127.0.0.1/udp/1'], cluster: 'x' }),
      (err: Error) => err.name === 'InvalidArgumentError' && err.message.includes('/ip4/127.0.0.1/udp/1'))
    await assert.rejects(createShoalLibp2p({ privateKey, listen: [], bootstrap: ['/ip4/127.0.0.1/tcp/4001'], cluster: 'x' }),
      (err: Error) => err.name === 'InvalidArgumentError' && err.message.includes('/ip4/127.0.0.1/tcp/4001'))
  })
})

/** Whether libp2p recorded a failed dial of `peerId` (it keeps the time in peer store metadata). */
async function hasFailedDial (libp2p: ShoalLibp2p, peerId: PeerId): Promise<boolean> {
  try {
    return (await libp2p.peerStore.get(peerId)).metadata.has('last-dial-failure')
  } catch {
    return false
  }
}

/** Two keys whose peer ids sort in this order. */
async function orderedKeys (): Promise<[PrivateKey, PrivateKey]> {
  const a = await generateKeyPair('Ed25519')
  const b = await generateKeyPair('Ed25519')
  return peerIdFromPrivateKey(a).toString() < peerIdFromPrivateKey(b).toString() ? [a, b] : [b, a]
}

/** Count the dials a node makes from now on. */
function countDials (libp2p: ShoalLibp2p): { count: number } {
  const counter = { count: 0 }
  const dial = libp2p.dial.bind(libp2p)
  libp2p.dial = async (target, options) => {
    counter.count++
    return await dial(target, options)
  }
  return counter
}
