import assert from 'node:assert/strict'
import { noise } from '@chainsafe/libp2p-noise'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import type { Libp2p } from '@libp2p/interface'
import { toBytes } from '../../src/core/bytes.ts'
import type { DvvSet } from '../../src/core/causality.ts'
import type { KvRequest, KvResponse } from '../../src/core/coordinator/messages.ts'
import { Admission } from '../../src/net/admission.ts'
import type { AdmissionLimits } from '../../src/net/admission.ts'
import { KvServer, kvTransport } from '../../src/net/kv.ts'
import { shoalMuxer } from '../../src/net/libp2p.ts'
import { eventually } from '../support/eventually.ts'

const limits: AdmissionLimits = { maxRequests: 4, maxRequestsPerPeer: 2, maxBytes: 1000, maxBytesPerPeer: 600, maxHandlingPerPeer: 2 }

function objectOf (bytes: number): DvvSet {
  return { vv: new Map([['a', 1]]), siblings: [{ dot: { actor: 'a', counter: 1 }, value: new Uint8Array(bytes), timestamp: 1 }] }
}

describe('admission: requests and bytes a node holds, in all and per peer', () => {
  it('admits up to the request limits, in all and per peer, and again once released', () => {
    const admission = new Admission(limits)
    const a1 = admission.enter('a')
    const a2 = admission.enter('a')
    assert.ok(a1 !== undefined && a2 !== undefined)
    assert.equal(admission.enter('a'), undefined, 'a third request of one peer is refused')
    const b1 = admission.enter('b')
    const c1 = admission.enter('c')
    assert.ok(b1 !== undefined && c1 !== undefined)
    assert.equal(admission.enter('d'), undefined, 'a fifth request of the node is refused')
    a1.release()
    a1.release()
    assert.deepEqual(admission.usage(), { requests: 3, bytes: 0 }, 'a release counts once')
    assert.ok(admission.enter('d') !== undefined)
    assert.equal(admission.refused, 2)
  })

  it('holds bytes within both budgets; a peer whose budget ran out is refused until half of it is free', () => {
    const admission = new Admission({ ...limits, maxRequestsPerPeer: 4 })
    const a1 = admission.enter('a')!
    assert.equal(a1.reserve(400), true)
    const a2 = admission.enter('a')!
    assert.equal(a2.reserve(250), false, 'over the peer budget: nothing held')
    assert.deepEqual(admission.usage('a'), { requests: 2, bytes: 400 })
    assert.equal(a2.blocked(), true)
    assert.equal(admission.enter('a'), undefined, 'a saturated peer gets nothing new')
    const b1 = admission.enter('b')!
    assert.equal(b1.blocked(), false, 'other peers are not held back')
    assert.equal(b1.reserve(500), true)
    assert.equal(b1.reserve(200), false, 'over the node budget')
    a2.release()
    a1.release()
    assert.ok(admission.enter('a') !== undefined, 'free again once its bytes are given back')
    b1.force(2000)
    assert.equal(admission.usage().bytes, 2500, 'a forced reply is held past the budget')
  })

  it('rejects limits that are not positive integers', () => {
    assert.throws(() => new Admission({ ...limits, maxBytes: 0 }), { name: 'InvalidArgumentError' })
    assert.throws(() => new Admission({ ...limits, maxRequests: 1.5 }), { name: 'InvalidArgumentError' })
  })
})

describe('a kv server beyond its admission limits, over real libp2p', function () {
  this.timeout(30_000)
  const nodes: Libp2p[] = []

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async node => { await node.stop() }))
  })

  async function node (): Promise<Libp2p> {
    const created = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [shoalMuxer()],
      services: { identify: identify() }
    })
    nodes.push(created)
    return created
  }

  async function pair (handle: (request: KvRequest) => Promise<KvResponse>, admission: Partial<AdmissionLimits>): Promise<(request: KvRequest) => Promise<KvResponse>> {
    const server = await node()
    const kv = new KvServer(server, { handle, admission })
    await kv.start()
    const client = await node()
    await client.dial(server.getMultiaddrs())
    const transport = kvTransport(client)
    return async (request) => await transport(server.peerId.toString(), request, 10_000)
  }

  it('requests past the per-peer limit are answered with OverloadedError, unserved; the node serves again once they finish', async () => {
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    let served = 0
    const send = await pair(async () => { served++; await gate; return { type: 'written' } }, { maxRequestsPerPeer: 3 })
    const settled: KvResponse[] = []
    const calls = Array.from({ length: 8 }, async (_, i) => {
      settled.push(await send({ type: 'write', key: toBytes(`k${i}`), object: objectOf(1) }))
    })
    // Three are held by the handler; the other five come back at once, refused.
    await eventually('five requests refused', () => settled.length === 5, 10_000, 20)
    for (const response of settled) assert.equal(response.type === 'error' && response.name, 'OverloadedError')
    release()
    await Promise.all(calls)
    assert.deepEqual(settled.slice(5), Array(3).fill({ type: 'written' }))
    assert.equal(served, 3, 'a refused request never reached the handler')
    assert.deepEqual(await send({ type: 'write', key: toBytes('after'), object: objectOf(1) }), { type: 'written' })
  })

  it('a read whose reply does not fit the byte budget is refused; a write\'s acknowledgement always goes out', async () => {
    const send = await pair(async (request) => request.type === 'read'
      ? { type: 'read', object: objectOf(64 * 1024) }
      : request.type === 'put' ? { type: 'put', object: objectOf(64 * 1024) } : { type: 'written' },
    { maxBytes: 32 * 1024, maxBytesPerPeer: 32 * 1024 })
    const read = await send({ type: 'read', key: toBytes('big') })
    assert.equal(read.type === 'error' && read.name, 'OverloadedError')
    // The request frame itself (64 KiB) is past the budget: refused before it is served.
    const bigWrite = await send({ type: 'write', key: toBytes('w'), object: objectOf(64 * 1024) })
    assert.equal(bigWrite.type === 'error' && bigWrite.name, 'OverloadedError')
    assert.deepEqual(await send({ type: 'write', key: toBytes('w'), object: objectOf(16) }), { type: 'written' })
    // A put was applied by the time its 64 KiB reply is known: it is sent past the budget.
    const put = await send({ type: 'put', key: toBytes('p'), value: toBytes('v'), context: new Map() })
    assert.equal(put.type, 'put')
  })

  it('a peer handles at most maxHandlingPerPeer requests at once; the others wait their turn and are served', async () => {
    let inFlight = 0
    let most = 0
    const send = await pair(async () => {
      most = Math.max(most, ++inFlight)
      await new Promise(resolve => setTimeout(resolve, 20))
      inFlight--
      return { type: 'written' }
    }, { maxHandlingPerPeer: 2 })
    const responses = await Promise.all(Array.from({ length: 10 }, async (_, i) => await send({ type: 'write', key: toBytes(`k${i}`), object: objectOf(1) })))
    assert.deepEqual(responses, Array(10).fill({ type: 'written' }))
    assert.equal(most, 2)
  })
})
