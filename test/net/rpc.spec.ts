import assert from 'node:assert/strict'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { lpStream, streamPair } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { toBytes } from '../../src/core/bytes.ts'
import type { DvvSet } from '../../src/core/causality.ts'
import type { KvRequest, KvResponse } from '../../src/core/coordinator/messages.ts'
import { MalformedDataError } from '../../src/core/errors.ts'
import { validateRecord } from '../../src/core/membership.ts'
import { adminCall, adminServer } from '../../src/net/admin.ts'
import { KV_PROTOCOL } from '../../src/net/constants.ts'
import { KvServer, kvServer, kvTransport } from '../../src/net/kv.ts'
import { membersServer, pullMembers } from '../../src/net/members.ts'
import { RpcServer, StreamLimiter, rpcCall } from '../../src/net/rpc.ts'
import type { RpcCodec, RpcComponents } from '../../src/net/rpc.ts'
import { freePort } from '../support/ports.ts'

const ECHO = '/shoal-test/echo/1.0.0'
// new Uint8Array(b) copies into a plain Uint8Array: frames from a socket are Node Buffers.
const bytesCodec: RpcCodec<Uint8Array, Uint8Array> = { encode: b => b, decode: b => new Uint8Array(b) }
const object: DvvSet = { vv: new Map([['a', 1]]), siblings: [{ dot: { actor: 'a', counter: 1 }, value: toBytes('v'), timestamp: 7 }] }

interface Deferred { promise: Promise<void>, resolve: () => void }
function deferred (): Deferred {
  let resolve!: () => void
  const promise = new Promise<void>(r => { resolve = r })
  return { promise, resolve }
}


async function closed (stream: Stream): Promise<void> {
  if (stream.status !== 'open' && stream.status !== 'closing') return
  await new Promise(resolve => stream.addEventListener('close', resolve, { once: true }))
}

describe('request/response over real libp2p', function () {
  const nodes: Libp2p[] = []
  const waiting: Deferred[] = []
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }

  before(() => { process.on('unhandledRejection', onUnhandled) })
  after(() => { process.off('unhandledRejection', onUnhandled) })

  afterEach(async () => {
    for (const d of waiting.splice(0)) d.resolve()
    // Aborted first: a graceful close of a connection still running identify takes ~500 ms.
    const stopping = nodes.splice(0)
    for (const node of stopping) for (const connection of node.getConnections()) connection.abort(new Error('test over'))
    await Promise.all(stopping.map(async node => { await node.stop() }))
    // Give rejections from torn-down streams a turn to surface.
    await new Promise(resolve => setTimeout(resolve, 10))
    assert.deepEqual(unhandled.splice(0), [], 'no unhandled rejections')
  })

  async function node (services: Record<string, (components: RpcComponents) => unknown> = {}): Promise<Libp2p> {
    const created = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      // As the node configures it (src/net/libp2p.ts): yamux's default of 10 streams opened before
      // the receiving side is ready would make it kill a fresh connection hit by a burst.
      streamMuxers: [yamux({ maxEarlyStreams: 512 })],
      services: { identify: identify(), ...services }
    })
    nodes.push(created)
    return created
  }

  /** A server node with an echo service (replies with the request reversed) and a client node connected to it. */
  async function echoPair (init: { handle?: (req: Uint8Array, from: PeerId, options: { signal: AbortSignal }) => Promise<Uint8Array>, timeoutMs?: number, maxBytes?: number } = {}): Promise<{ server: Libp2p, client: Libp2p, echo: RpcServer<Uint8Array, Uint8Array> }> {
    const server = await node()
    const client = await node()
    const echo = new RpcServer<Uint8Array, Uint8Array>(server, {
      protocol: ECHO,
      decode: b => new Uint8Array(b),
      encode: b => b,
      handle: init.handle ?? (async req => req.reverse()),
      timeoutMs: init.timeoutMs ?? 5000,
      maxBytes: init.maxBytes ?? 1024
    })
    await echo.start()
    await client.dial(server.getMultiaddrs())
    return { server, client, echo }
  }

  const call = async (client: Libp2p, to: PeerId | Multiaddr, request: Uint8Array, timeoutMs = 2000, maxBytes = 1024): Promise<Uint8Array> =>
    await rpcCall(client, to, ECHO, request, bytesCodec, { timeoutMs, maxBytes })

  it('a request gets its reply, and the handler learns who sent it', async () => {
    let sender: string | undefined
    const { server, client } = await echoPair({ handle: async (req, from) => { sender = from.toString(); return req.reverse() } })
    assert.deepEqual(await call(client, server.peerId, Uint8Array.of(1, 2, 3)), Uint8Array.of(3, 2, 1))
    assert.equal(sender, client.peerId.toString())
    // An empty request and reply are frames like any other.
    assert.deepEqual(await call(client, server.peerId, new Uint8Array(0)), new Uint8Array(0))
  })

  it('a kv request registered as a libp2p service gets the coordinator handle\'s response', async () => {
    const seen: KvRequest[] = []
    const server = await node({
      kv: kvServer({ handle: async (request) => { seen.push(request); return { type: 'read', object } } })
    })
    const client = await node()
    await client.dial(server.getMultiaddrs())
    const transport = kvTransport(client)
    const response = await transport(server.peerId.toString(), { type: 'read', key: toBytes('k') }, 2000)
    assert.deepEqual(response, { type: 'read', object })
    assert.deepEqual(seen, [{ type: 'read', key: toBytes('k') }])
  })

  it('a kv handler that throws is answered with a typed error response', async () => {
    const server = await node()
    const kv = new KvServer(server, { handle: async () => { throw new MalformedDataError('nope') } })
    await kv.start()
    const client = await node()
    await client.dial(server.getMultiaddrs())
    const response = await kvTransport(client)(server.peerId.toString(), { type: 'get', key: toBytes('k') }, 2000)
    assert.deepEqual(response, { type: 'error', name: 'MalformedDataError', message: 'nope' })
  })

  it('300 concurrent kv requests on one connection all succeed: stream limits are raised and excess calls queue', async () => {
    let inFlight = 0
    let most = 0
    const server = await node()
    const kv = new KvServer(server, {
      handle: async (request): Promise<KvResponse> => {
        most = Math.max(most, ++inFlight)
        await new Promise(resolve => setTimeout(resolve, 20))
        inFlight--
        return { type: 'get', object: { ...object, siblings: [{ ...object.siblings[0]!, value: request.key }] } }
      },
      // The streams are what is under test here, not the per-peer handling slots (test/net/admission.spec.ts).
      admission: { maxHandlingPerPeer: 256 }
    })
    await kv.start()
    const client = await node()
    await client.dial(server.getMultiaddrs())
    const transport = kvTransport(client)
    const responses = await Promise.all(Array.from({ length: 300 }, async (_, i) =>
      await transport(server.peerId.toString(), { type: 'get', key: toBytes(`key-${i}`) }, 10_000)))
    responses.forEach((response, i) => {
      assert.equal(response.type, 'get')
      assert.deepEqual(response.type === 'get' ? response.object?.siblings[0]?.value : undefined, toBytes(`key-${i}`))
    })
    assert.equal(client.getConnections(server.peerId).length, 1)
    // Far above libp2p's default of 32 inbound streams, never above ours.
    assert.ok(most > 64, `at most ${most} requests were handled at once`)
    assert.ok(most <= 256, `${most} requests were handled at once`)
  })

  it('a handler slower than the deadline rejects with TimeoutError, and the handler\'s signal aborts', async () => {
    const slow = deferred()
    waiting.push(slow)
    let handlerSignal: AbortSignal | undefined
    const { server, client } = await echoPair({
      handle: async (req, _from, { signal }) => { handlerSignal = signal; await slow.promise; return req }
    })
    await assert.rejects(call(client, server.peerId, Uint8Array.of(1), 100), { name: 'TimeoutError' })
    // The caller's reset reaches the server long before the server's own 5 s timeout.
    for (let i = 0; i < 100 && handlerSignal?.aborted !== true; i++) await new Promise(resolve => setTimeout(resolve, 10))
    assert.equal(handlerSignal?.aborted, true)
    slow.resolve()
    // The connection and the server are fine afterwards.
    assert.deepEqual(await call(client, server.peerId, Uint8Array.of(1, 2)), Uint8Array.of(1, 2))
  })

  it('a dead address, an unknown peer and a peer without the protocol reject with UnreachableError', async () => {
    const client = await node()
    const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const dead = multiaddr(`/ip4/127.0.0.1/tcp/${await freePort()}/p2p/${stranger.toString()}`)
    await assert.rejects(call(client, dead, Uint8Array.of(1)), { name: 'UnreachableError' })
    await assert.rejects(call(client, stranger, Uint8Array.of(1)), { name: 'UnreachableError' })
    await assert.rejects(kvTransport(client)(stranger.toString(), { type: 'read', key: toBytes('k') }, 500), { name: 'UnreachableError' })
    await assert.rejects(kvTransport(client)('not a peer id', { type: 'read', key: toBytes('k') }, 500), { name: 'UnreachableError' })
    const other = await node()
    await assert.rejects(call(client, other.getMultiaddrs()[0]!, Uint8Array.of(1)), { name: 'UnreachableError' })
  })

  it('garbage, oversized and silent streams are aborted; the server keeps answering good requests', async () => {
    const { server, client } = await echoPair({ timeoutMs: 200, maxBytes: 1024 })
    const rawStream = async (bytes: Uint8Array): Promise<Stream> => {
      const stream = await client.dialProtocol(server.peerId, ECHO)
      if (bytes.length > 0) stream.send(bytes)
      return stream
    }
    const kvStream = async (bytes: Uint8Array): Promise<Stream> => {
      const stream = await client.dialProtocol(server.peerId, KV_PROTOCOL)
      stream.send(bytes)
      return stream
    }
    const kv = new KvServer(server, { handle: async () => ({ type: 'written' }) })
    await kv.start()

    const streams = await Promise.all([
      rawStream(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f)), // a length far over maxBytes
      rawStream(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)), // a varint that never ends
      rawStream(Uint8Array.of(10, 1, 2)), // a frame cut short, then silence
      rawStream(new Uint8Array(0)), // nothing at all
      kvStream(Uint8Array.of(4, 0x08, 0x09, 0x12, 0x00)) // a whole frame that is not a kv request (type 9)
    ])
    await Promise.all(streams.map(closed))
    for (const stream of streams) assert.equal(stream.status, 'reset', 'the server reset the stream')

    assert.deepEqual(await call(client, server.peerId, Uint8Array.of(4, 5)), Uint8Array.of(5, 4))
    assert.deepEqual(await kvTransport(client)(server.peerId.toString(), { type: 'read', key: toBytes('k') }, 2000), { type: 'written' })
  })

  it('a reply that is too big or does not decode rejects with MalformedDataError', async () => {
    const { server, client } = await echoPair({ handle: async () => new Uint8Array(2000) })
    await assert.rejects(call(client, server.peerId, Uint8Array.of(1), 2000, 1000), { name: 'MalformedDataError' })
    const refuse: RpcCodec<Uint8Array, Uint8Array> = { encode: b => b, decode: () => { throw new MalformedDataError('bad reply') } }
    await assert.rejects(rpcCall(client, server.peerId, ECHO, Uint8Array.of(1), refuse, { timeoutMs: 2000, maxBytes: 4096 }), { name: 'MalformedDataError' })
  })

  it('a handler that throws ends the stream without a reply: NoReplyError', async () => {
    const { server, client } = await echoPair({ handle: async () => { throw new Error('boom') } })
    await assert.rejects(call(client, server.peerId, Uint8Array.of(1)), { name: 'NoReplyError' })
  })

  it('the caller\'s signal aborts a call with its reason', async () => {
    const slow = deferred()
    waiting.push(slow)
    const { server, client } = await echoPair({ handle: async (req) => { await slow.promise; return req } })
    const controller = new AbortController()
    const pending = rpcCall(client, server.peerId, ECHO, Uint8Array.of(1), bytesCodec, { timeoutMs: 5000, maxBytes: 1024, signal: controller.signal })
    setTimeout(() => { controller.abort(new Error('caller gave up')) }, 20)
    await assert.rejects(pending, { message: 'caller gave up' })
  })

  it('stop() then start() works, and both are safe to call twice', async () => {
    const { server, client, echo } = await echoPair()
    await echo.start()
    await echo.stop()
    await echo.stop()
    assert.equal(echo.isStarted(), false)
    await assert.rejects(call(client, server.peerId, Uint8Array.of(1)), { name: 'UnreachableError' })
    await echo.start()
    assert.deepEqual(await call(client, server.peerId, Uint8Array.of(1, 2)), Uint8Array.of(2, 1))
  })

  it('stop() aborts the streams still being served', async () => {
    const slow = deferred()
    const arrived = deferred()
    waiting.push(slow, arrived)
    const { server, client, echo } = await echoPair({ handle: async (req) => { arrived.resolve(); await slow.promise; return req } })
    const pending = call(client, server.peerId, Uint8Array.of(1), 5000)
    await arrived.promise
    await echo.stop()
    await assert.rejects(pending, { name: 'NoReplyError' })
  })

  it('a member pulls another member\'s table', async () => {
    const records = [
      validateRecord({ id: 'b-member', incarnation: 2, seq: 1, status: 'up', addrs: ['/ip4/10.0.0.2/tcp/4001'], weight: 1 }),
      validateRecord({ id: 'a-member', incarnation: 1, seq: 0, status: 'leaving', addrs: [], weight: 2.5 })
    ]
    const server = await node({ members: membersServer({ records: () => records }) })
    const client = await node()
    await client.dial(server.getMultiaddrs())
    assert.deepEqual(await pullMembers(client, server.peerId.toString(), 2000), records)
  })

  it('an admin command returns its JSON, a failure its typed error, a refused peer AccessDeniedError', async () => {
    let allowed = true
    const server = await node({
      admin: adminServer({
        handle: async ({ op }) => {
          if (op === 'leave') throw Object.assign(new Error('already left'), { name: 'NotMemberError' })
          return { peerId: 'me', members: 3 }
        },
        allow: () => allowed
      })
    })
    const client = await node()
    const addr = server.getMultiaddrs()[0]!.toString()
    assert.deepEqual(await adminCall(client, addr, { op: 'status' }, 2000), { peerId: 'me', members: 3 })
    await assert.rejects(adminCall(client, server.peerId, { op: 'leave' }, 2000), { name: 'NotMemberError', message: 'already left' })
    allowed = false
    await assert.rejects(adminCall(client, server.peerId, { op: 'status' }, 2000), { name: 'AccessDeniedError' })
    await assert.rejects(adminCall(client, 'neither', { op: 'status' }, 2000), { name: 'InvalidArgumentError' })
  })
})

describe('request/response over an in-memory stream pair', () => {
  it('serve() answers one frame and aborts a stream whose frame is too big', async () => {
    const logger = { forComponent: () => Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false, newScope: () => { throw new Error('unused') } }) }
    const registrar = { handle: async () => {}, unhandle: async () => {} }
    const server = new RpcServer<Uint8Array, Uint8Array>({ registrar, logger }, { protocol: ECHO, decode: b => new Uint8Array(b), encode: b => b, handle: async req => req, maxBytes: 8 })
    const from = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))

    const [outbound, inbound] = await streamPair()
    const serving = server.serve(inbound, from)
    const lp = lpStream(outbound)
    await lp.write(Uint8Array.of(1, 2, 3))
    await outbound.close()
    assert.deepEqual((await lp.read()).subarray(), Uint8Array.of(1, 2, 3))
    await serving

    const [tooBig, tooBigInbound] = await streamPair()
    const refusing = server.serve(tooBigInbound, from)
    await lpStream(tooBig).write(new Uint8Array(9))
    await refusing
    assert.equal(tooBigInbound.status, 'aborted')
  })

  it('the stream limiter queues calls past its limit per peer, in order, and drops a waiter whose signal aborts', async () => {
    const limiter = new StreamLimiter(2)
    const first = await limiter.acquire('p')
    await limiter.acquire('p')
    const other = await limiter.acquire('q')
    const granted: string[] = []
    const third = limiter.acquire('p').then(release => { granted.push('third'); return release })
    const controller = new AbortController()
    const gaveUp = limiter.acquire('p', controller.signal)
    const fifth = limiter.acquire('p').then(release => { granted.push('fifth'); return release })
    assert.deepEqual(limiter.load('p'), { active: 2, waiting: 3 })
    controller.abort(new Error('gave up'))
    await assert.rejects(gaveUp, { message: 'gave up' })
    first()
    first()   // a second release of the same slot is ignored
    await third
    assert.deepEqual(granted, ['third'])
    assert.deepEqual(limiter.load('p'), { active: 2, waiting: 1 })
    ;(await third)()
    await fifth
    assert.deepEqual(granted, ['third', 'fifth'])
    other()
    assert.deepEqual(limiter.load('q'), { active: 0, waiting: 0 })
  })
})
