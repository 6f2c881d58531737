import assert from 'node:assert/strict'
import fc from 'fast-check'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream, streamPair } from '@libp2p/utils'
import { writer } from 'protons-runtime'
import type { PeerId } from '@libp2p/interface'
import { toBytes } from '../../src/core/bytes.ts'
import { EMPTY, isValidActor, objectDigest, update } from '../../src/core/causality.ts'
import type { DvvSet } from '../../src/core/causality.ts'
import { HASH_BYTES } from '../../src/core/merkle.ts'
import { SYNC_LIMITS } from '../../src/core/sync/messages.ts'
import type { CopyState, SyncChannel, SyncRequest, SyncResponse } from '../../src/core/sync/messages.ts'
import { HANDOFF_PROTOCOL, MAX_STRING_BYTES, MAX_SYNC_MESSAGE_BYTES, SYNC_PROTOCOL } from '../../src/net/constants.ts'
import { createShoalLibp2p } from '../../src/net/libp2p.ts'
import type { ShoalLibp2p } from '../../src/net/libp2p.ts'
import { DIGEST_BYTES, decodeSyncRequest, decodeSyncResponse, encodeSyncRequest, encodeSyncResponse } from '../../src/net/sync-codec.ts'
import { SyncServer, syncTransport } from '../../src/net/sync.ts'
import { assertMalformed, codecProperties, decodeOrMalformed, frame, plainRecord } from '../support/codec-properties.ts'
import type { Build, Codec } from '../support/codec-properties.ts'

/** Valid objects, made as replicas make them: a run of writes, some blind, some with the last context. */
const objectArb: fc.Arbitrary<DvvSet> = fc.array(plainRecord({
  actor: fc.constantFrom('a', 'b', 'replica-é'),
  value: fc.option(fc.uint8Array({ maxLength: 32 }), { nil: null }),
  timestamp: fc.nat(),
  seen: fc.boolean()
}), { maxLength: 5 }).map(writes => writes.reduce<DvvSet>(
  (obj, w) => update(obj, w.seen ? obj.vv : new Map(), w.actor, w.value, w.timestamp), EMPTY))

const keyArb = fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 32 }), fc.uint8Array({ minLength: 1024, maxLength: 1024 }))
const bytesOf = (length: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: length, maxLength: length })
const hashArb = bytesOf(HASH_BYTES)
const digestArb = bytesOf(DIGEST_BYTES)
const partitionArb = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 65535 }))
const indexArb = fc.oneof(fc.nat(63), fc.integer({ min: 0, max: 2 ** 20 - 1 }))
const countArb = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: SYNC_LIMITS.maxEntries }))
const keyDigestArb = plainRecord({ key: keyArb, digest: digestArb })
const keyObjectArb = plainRecord({ key: keyArb, object: objectArb })
const text = (minLength: number, maxLength: number): fc.Arbitrary<string> => fc.string({ unit: 'grapheme', minLength, maxLength })

const requestArb: fc.Arbitrary<SyncRequest> = fc.oneof(
  plainRecord({ type: fc.constant('roots' as const), partitions: fc.array(partitionArb, { maxLength: 20 }), summary: bytesOf(32) }),
  plainRecord({ type: fc.constant('children' as const), partition: partitionArb, level: fc.nat(31), indexes: fc.array(indexArb, { maxLength: 20 }) }),
  plainRecord({ type: fc.constant('keys' as const), partition: partitionArb, segments: fc.array(indexArb, { maxLength: 20 }) }),
  plainRecord({ type: fc.constant('fetch' as const), keys: fc.array(keyArb, { maxLength: 5 }) }),
  plainRecord({ type: fc.constant('push' as const), entries: fc.array(keyObjectArb, { maxLength: 4 }) }),
  plainRecord({ type: fc.constantFrom('purge-check' as const, 'purge' as const), entries: fc.array(keyDigestArb, { maxLength: 5 }) })
)

const copyStates: CopyState[] = ['absent', 'same', 'different']
const responseArb: fc.Arbitrary<SyncResponse> = fc.oneof(
  plainRecord({ type: fc.constant('roots' as const), same: fc.constant(true), roots: fc.constant([]) }),
  plainRecord({ type: fc.constant('roots' as const), same: fc.constant(false), roots: fc.array(hashArb, { maxLength: 20 }) }),
  plainRecord({ type: fc.constant('children' as const), hashes: fc.array(hashArb, { maxLength: 24 }) }),
  plainRecord({ type: fc.constant('keys' as const), entries: fc.array(keyDigestArb, { maxLength: 5 }) }),
  plainRecord({ type: fc.constant('objects' as const), entries: fc.array(keyObjectArb, { maxLength: 4 }) }),
  plainRecord({ type: fc.constant('pushed' as const), changed: countArb }),
  plainRecord({ type: fc.constant('copies' as const), states: fc.array(fc.constantFrom(...copyStates), { maxLength: 20 }) }),
  plainRecord({ type: fc.constant('purged' as const), count: countArb }),
  plainRecord({ type: fc.constant('error' as const), name: text(1, 30), message: text(0, 200) })
)

const codecs = [
  { name: 'SyncRequest', arb: requestArb, encode: encodeSyncRequest, decode: decodeSyncRequest },
  { name: 'SyncResponse', arb: responseArb, encode: encodeSyncResponse, decode: decodeSyncResponse }
] as Array<Codec<unknown>>



/** A packed repeated uint32 field. */
const packed = (field: number, values: readonly number[]): Build => w => {
  w.uint32(field << 3 | 2).fork()
  for (const v of values) w.uint32(v)
  w.ldelim()
}

/** An embedded KeyDigest or KeyObject under `field`, with whatever fields `build` writes. */
const entry = (field: number, build: Build): Build => w => { w.uint32(field << 3 | 2).fork(); build(w); w.ldelim() }

const request = (type: number, ...builds: Build[]): Uint8Array => frame(w => { w.uint32(1 << 3).uint32(type); for (const b of builds) b(w) })
const response = request


describe('sync codec', () => {
  for (const c of codecs) {
    describe(c.name, () => {
      codecProperties(c, { roundTrip: 300, random: 2000, mutated: 500 })

      it('refuses a frame over MAX_SYNC_MESSAGE_BYTES, and what is not bytes', () => {
        assertMalformed(() => c.decode(new Uint8Array(MAX_SYNC_MESSAGE_BYTES + 1)), /exceeds/)
        assertMalformed(() => c.decode('hello' as unknown as Uint8Array))
      })
    })
  }

  describe('bounds', () => {
    it('digests are objectDigest\'s 16 bytes, hashes the tree\'s 16', () => {
      assert.equal(DIGEST_BYTES, 16)
      assert.equal(objectDigest(update(EMPTY, new Map(), 'a', toBytes('v'), 1)).length, DIGEST_BYTES)
      assert.equal(HASH_BYTES, 16)
    })

    it('takes repeated numbers packed or one by one, mixed', () => {
      const unpacked = request(0, w => w.uint32(2 << 3).uint32(7), packed(2, [8, 9]), w => w.uint32(2 << 3).uint32(10),
        w => w.uint32(3 << 3 | 2).bytes(new Uint8Array(32)))
      assert.deepStrictEqual(decodeSyncRequest(unpacked), { type: 'roots', partitions: [7, 8, 9, 10], summary: new Uint8Array(32) })
      const children = request(1, w => w.uint32(6 << 3).uint32(5), packed(6, [6]))
      assert.deepStrictEqual(decodeSyncRequest(children), { type: 'children', partition: 0, level: 0, indexes: [5, 6] })
      const keys = request(2, w => w.uint32(7 << 3).uint32(1), w => w.uint32(7 << 3).uint32(2))
      assert.deepStrictEqual(decodeSyncRequest(keys), { type: 'keys', partition: 0, segments: [1, 2] })
      const copies = response(5, w => w.uint32(7 << 3).uint32(2), packed(7, [0, 1]))
      assert.deepStrictEqual(decodeSyncResponse(copies), { type: 'copies', states: ['different', 'absent', 'same'] })
    })

    it('refuses hashes, digests and summaries of the wrong length, and a roots request without its summary', () => {
      for (const length of [0, 15, 17]) {
        assertMalformed(() => decodeSyncResponse(response(1, w => w.uint32(3 << 3 | 2).bytes(new Uint8Array(length)))), /hash/)
        assertMalformed(() => decodeSyncResponse(response(0, w => w.uint32(3 << 3 | 2).bytes(new Uint8Array(length)))), /hash/)
        const key = (w: ReturnType<typeof writer>): void => { w.uint32(1 << 3 | 2).bytes(toBytes('k')) }
        const digest = (w: ReturnType<typeof writer>): void => { w.uint32(2 << 3 | 2).bytes(new Uint8Array(length)) }
        assertMalformed(() => decodeSyncRequest(request(6, entry(10, w => { key(w); digest(w) }))), /digest/)
        assertMalformed(() => decodeSyncResponse(response(2, entry(4, w => { key(w); digest(w) }))), /digest/)
      }
      for (const length of [0, 31, 33]) {
        assertMalformed(() => decodeSyncRequest(request(0, w => w.uint32(3 << 3 | 2).bytes(new Uint8Array(length)))), /summary/)
      }
      assertMalformed(() => decodeSyncRequest(request(0, packed(2, [1]))), /without its summary/)
    })

    it('refuses partitions >= 65536, levels >= 32, indexes and segments >= 2^20, copy states >= 3, counts over maxEntries', () => {
      const summary: Build = w => w.uint32(3 << 3 | 2).bytes(new Uint8Array(32))
      assertMalformed(() => decodeSyncRequest(request(0, packed(2, [65536]), summary)), /65536/)
      assert.deepEqual(decodeSyncRequest(request(0, packed(2, [65535]), summary)), { type: 'roots', partitions: [65535], summary: new Uint8Array(32) })
      assertMalformed(() => decodeSyncRequest(request(1, w => w.uint32(4 << 3).uint32(65536))), /partition/)
      assertMalformed(() => decodeSyncRequest(request(1, w => w.uint32(5 << 3).uint32(32))), /level/)
      assertMalformed(() => decodeSyncRequest(request(1, packed(6, [2 ** 20]))), /indexes/)
      assertMalformed(() => decodeSyncRequest(request(2, w => w.uint32(7 << 3).uint32(2 ** 20))), /segments/)
      assertMalformed(() => decodeSyncResponse(response(5, packed(7, [3]))), /copy states/)
      assertMalformed(() => decodeSyncResponse(response(4, w => w.uint32(6 << 3).uint32(SYNC_LIMITS.maxEntries + 1))), /count/)
      assertMalformed(() => decodeSyncResponse(response(6, w => w.uint32(6 << 3).uint64Number(2 ** 40))), /uint32/)
    })

    it('refuses lists longer than SYNC_LIMITS, and takes lists at the limit', () => {
      const summary: Build = w => w.uint32(3 << 3 | 2).bytes(new Uint8Array(32))
      const partitions = Array<number>(SYNC_LIMITS.maxPartitions).fill(1)
      const full = decodeSyncRequest(request(0, packed(2, partitions), summary))
      assert.ok(full.type === 'roots' && full.partitions.length === SYNC_LIMITS.maxPartitions)
      assertMalformed(() => decodeSyncRequest(request(0, packed(2, [...partitions, 1]), summary)), /more than 65536 partitions/)
      // The limit holds across runs: two packed runs count together.
      assertMalformed(() => decodeSyncRequest(request(0, packed(2, partitions), packed(2, [1]), summary)), /more than 65536/)
      const indexes = Array<number>(SYNC_LIMITS.maxIndexes + 1).fill(0)
      assertMalformed(() => decodeSyncRequest(request(1, packed(6, indexes))), /more than 4096 indexes/)
      assertMalformed(() => decodeSyncRequest(request(2, packed(7, indexes))), /more than 4096 segments/)

      const keys = Array.from({ length: SYNC_LIMITS.maxEntries + 1 }, () => Uint8Array.of(1))
      assert.equal(decodeSyncRequest(encodeSyncRequest({ type: 'fetch', keys: keys.slice(1) })).type, 'fetch')
      assertMalformed(() => decodeSyncRequest(encodeSyncRequest({ type: 'fetch', keys })), /more than 100000 keys/)
      const states = Array<CopyState>(SYNC_LIMITS.maxEntries + 1).fill('same')
      assertMalformed(() => decodeSyncResponse(encodeSyncResponse({ type: 'copies', states })), /more than 100000 copy states/)
      const digests = Array(SYNC_LIMITS.maxEntries + 1).fill({ key: Uint8Array.of(1), digest: new Uint8Array(DIGEST_BYTES) })
      assertMalformed(() => decodeSyncRequest(encodeSyncRequest({ type: 'purge-check', entries: digests })), /more than 100000 entries/)
      assertMalformed(() => decodeSyncResponse(encodeSyncResponse({ type: 'keys', entries: digests })), /more than 100000 entries/)
      const hashes = Array(SYNC_LIMITS.maxPartitions + 1).fill(new Uint8Array(HASH_BYTES))
      assertMalformed(() => decodeSyncResponse(encodeSyncResponse({ type: 'children', hashes })), /more than 65536 hashes/)
    })

    it('refuses entries without a key, digest or object, empty and over-long keys', () => {
      const key: Build = w => w.uint32(1 << 3 | 2).bytes(toBytes('k'))
      const digest: Build = w => w.uint32(2 << 3 | 2).bytes(new Uint8Array(DIGEST_BYTES))
      assertMalformed(() => decodeSyncRequest(request(5, entry(10, digest))), /without its key/)
      assertMalformed(() => decodeSyncRequest(request(5, entry(10, key))), /without its digest/)
      assertMalformed(() => decodeSyncRequest(request(4, entry(9, key))), /without its object/)
      assertMalformed(() => decodeSyncResponse(response(3, entry(5, key))), /without its object/)
      // An empty object is an object: written as zero bytes, and read back.
      assert.deepStrictEqual(decodeSyncRequest(request(4, entry(9, w => { key(w); w.uint32(2 << 3 | 2).bytes(new Uint8Array(0)) }))),
        { type: 'push', entries: [{ key: toBytes('k'), object: { vv: new Map(), siblings: [] } }] })
      assertMalformed(() => decodeSyncRequest(request(3, w => w.uint32(8 << 3 | 2).bytes(new Uint8Array(0)))), /empty key/)
      assertMalformed(() => decodeSyncRequest(encodeSyncRequest({ type: 'fetch', keys: [new Uint8Array(1025)] })), /key/)
      assertMalformed(() => decodeSyncResponse(encodeSyncResponse({ type: 'keys', entries: [{ key: new Uint8Array(1025), digest: new Uint8Array(DIGEST_BYTES) }] })), /key/)
    })

    it('refuses a bad object inside an entry', () => {
      // A sibling whose dot the vv does not cover.
      const badObject = frame(w => { w.uint32(2 << 3 | 2).fork().uint32(1 << 3 | 2).string('a').uint32(2 << 3).uint32(1).ldelim() })
      const bytes = request(4, entry(9, w => { w.uint32(1 << 3 | 2).bytes(toBytes('k')); w.uint32(2 << 3 | 2).bytes(badObject) }))
      assertMalformed(() => decodeSyncRequest(bytes))
    })

    it('refuses unknown types, a roots response both same and with roots, an error without a name', () => {
      assertMalformed(() => decodeSyncRequest(request(7)), /type 7/)
      assertMalformed(() => decodeSyncResponse(response(8)), /type 8/)
      assertMalformed(() => decodeSyncResponse(response(0, w => w.uint32(2 << 3).bool(true).uint32(3 << 3 | 2).bytes(new Uint8Array(HASH_BYTES)))), /same/)
      assertMalformed(() => decodeSyncResponse(response(7, w => w.uint32(9 << 3 | 2).string('why'))), /without a name/)
    })

    it('refuses truncated frames instead of reading past the end', () => {
      const object = update(EMPTY, new Map(), 'a', toBytes('value'), 5)
      const samples: Array<[Codec<unknown>, Uint8Array]> = [
        [codecs[0] as Codec<unknown>, encodeSyncRequest({ type: 'push', entries: [{ key: toBytes('k1'), object }, { key: toBytes('k2'), object }] })],
        [codecs[0] as Codec<unknown>, encodeSyncRequest({ type: 'roots', partitions: [1, 300, 65535], summary: new Uint8Array(32).fill(7) })],
        [codecs[1] as Codec<unknown>, encodeSyncResponse({ type: 'keys', entries: [{ key: toBytes('k'), digest: objectDigest(object) }] })],
        [codecs[1] as Codec<unknown>, encodeSyncResponse({ type: 'children', hashes: [new Uint8Array(HASH_BYTES).fill(1), new Uint8Array(HASH_BYTES)] })]
      ]
      for (const [c, valid] of samples) {
        const whole = c.decode(valid)
        for (let cut = 1; cut < valid.length; cut++) {
          const decoded = decodeOrMalformed(c, valid.subarray(0, cut))
          // A cut on a field boundary leaves a shorter valid message; anything else must be refused.
          if (decoded !== undefined) assert.notDeepEqual(decoded, whole)
        }
      }
      assertMalformed(() => decodeSyncRequest(new Uint8Array([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f])), /truncated partitions/)
      assertMalformed(() => decodeSyncRequest(new Uint8Array([0x08, 0x80])), /truncated varint/)
      assertMalformed(() => decodeSyncRequest(new Uint8Array([0x12, 0x02, 0x81, 0x80])), /truncated varint/)
    })

    it('cuts an error name and message over 4 KiB at a character boundary, so the response still decodes', () => {
      const decoded = decodeSyncResponse(encodeSyncResponse({ type: 'error', name: 'N'.repeat(5000), message: 'a' + 'é'.repeat(MAX_STRING_BYTES) }))
      assert.deepEqual(decoded, { type: 'error', name: 'N'.repeat(MAX_STRING_BYTES), message: 'a' + 'é'.repeat((MAX_STRING_BYTES - 2) / 2) })
    })

    it('decoded bytes are plain copies that do not alias the frame, even a Node Buffer', () => {
      const object = update(EMPTY, new Map(), 'a', toBytes('v'), 1)
      const messages: SyncRequest[] = [
        { type: 'push', entries: [{ key: toBytes('k'), object }] },
        { type: 'purge', entries: [{ key: toBytes('k'), digest: objectDigest(object) }] },
        { type: 'roots', partitions: [1], summary: new Uint8Array(32).fill(9) }
      ]
      for (const message of messages) {
        for (const bytes of [encodeSyncRequest(message), Buffer.from(encodeSyncRequest(message))]) {
          const decoded = decodeSyncRequest(bytes)
          bytes.fill(0)
          assert.deepStrictEqual(decoded, message)
        }
      }
      const hashes = [new Uint8Array(HASH_BYTES).fill(3)]
      const bytes = Buffer.from(encodeSyncResponse({ type: 'children', hashes }))
      const decoded = decodeSyncResponse(bytes)
      bytes.fill(0)
      assert.deepStrictEqual(decoded, { type: 'children', hashes })
    })
  })
})

const silentLogger = { forComponent: () => Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false, newScope: () => { throw new Error('unused') } }) }

describe('sync server over an in-memory stream pair', () => {
  it('answers on the channel a stream came on, and a handler that throws with a typed error', async () => {
    const registered: string[] = []
    const registrar = { handle: async (protocol: string) => { registered.push(protocol) }, unhandle: async () => {} }
    const seen: Array<{ channel: SyncChannel, from: string }> = []
    const server = new SyncServer({ registrar, logger: silentLogger }, {
      handle: async (request, from, { channel }) => {
        seen.push({ channel, from: from.toString() })
        if (request.type === 'purge') throw new RangeError('no purging today')
        return { type: 'pushed', changed: 1 }
      }
    })
    await server.start()
    await server.start()
    assert.deepEqual(registered.sort(), [HANDOFF_PROTOCOL, SYNC_PROTOCOL].sort())
    const from = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))

    const ask = async (channel: SyncChannel, message: SyncRequest): Promise<SyncResponse> => {
      const [outbound, inbound] = await streamPair()
      const serving = server.serve(inbound, from, channel)
      const lp = lpStream(outbound)
      await lp.write(encodeSyncRequest(message))
      await outbound.close()
      const reply = decodeSyncResponse((await lp.read()).subarray())
      await serving
      return reply
    }
    assert.deepEqual(await ask('handoff', { type: 'push', entries: [] }), { type: 'pushed', changed: 1 })
    assert.deepEqual(await ask('sync', { type: 'purge', entries: [] }), { type: 'error', name: 'RangeError', message: 'no purging today' })
    assert.deepEqual(seen, [{ channel: 'handoff', from: from.toString() }, { channel: 'sync', from: from.toString() }])
    await server.stop()
    await server.stop()
    assert.equal(server.isStarted(), false)
  })
})

describe('sync and handoff over real libp2p', function () {
  const nodes: ShoalLibp2p[] = []

  afterEach(async () => {
    // Aborted first: a graceful close of a connection still running identify takes ~500 ms.
    const stopping = nodes.splice(0)
    for (const node of stopping) for (const connection of node.getConnections()) connection.abort(new Error('test over'))
    await Promise.all(stopping.map(async node => { await node.stop() }))
  })

  async function node (): Promise<ShoalLibp2p> {
    const created = await createShoalLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], cluster: 'sync-test' })
    nodes.push(created)
    return created
  }

  it('a SyncServer answers on both protocols, and the transport reports the bytes of each call', async () => {
    const serverNode = await node()
    const clientNode = await node()
    const object = update(EMPTY, new Map(), 'a', toBytes('handed off'), 3)
    const seen: Array<{ channel: SyncChannel, type: string, from: PeerId }> = []
    const server = new SyncServer(serverNode, {
      handle: async (request, from, { channel }) => {
        seen.push({ channel, type: request.type, from })
        switch (request.type) {
          case 'roots': return { type: 'roots', same: false, roots: request.partitions.map(p => new Uint8Array(HASH_BYTES).fill(p)) }
          case 'push': return { type: 'pushed', changed: request.entries.length }
          default: throw new RangeError(`no ${request.type} here`)
        }
      }
    })
    await server.start()
    await clientNode.dial(serverNode.getMultiaddrs())

    const bytes: Array<[number, number]> = []
    const transport = syncTransport(clientNode, { onBytes: (sent, received) => { bytes.push([sent, received]) } })
    const to = serverNode.peerId.toString()

    const roots: SyncRequest = { type: 'roots', partitions: [1, 2, 3], summary: new Uint8Array(32) }
    const rootsReply = await transport(to, roots, 5000, 'sync')
    assert.deepEqual(rootsReply, { type: 'roots', same: false, roots: [1, 2, 3].map(p => new Uint8Array(HASH_BYTES).fill(p)) })
    const push: SyncRequest = { type: 'push', entries: [{ key: toBytes('k1'), object }, { key: toBytes('k2'), object }] }
    assert.deepEqual(await transport(to, push, 5000, 'handoff'), { type: 'pushed', changed: 2 })
    // An error response is a response: the caller turns it into a rejection.
    assert.deepEqual(await transport(to, { type: 'fetch', keys: [toBytes('k')] }, 5000, 'handoff'),
      { type: 'error', name: 'RangeError', message: 'no fetch here' })

    assert.deepEqual(seen.map(s => [s.channel, s.type]), [['sync', 'roots'], ['handoff', 'push'], ['handoff', 'fetch']])
    assert.ok(seen.every(s => s.from.equals(clientNode.peerId)))
    assert.equal(bytes.length, 3)
    for (const [sent, received] of bytes) assert.ok(sent > 0 && received > 0, `${sent} sent, ${received} received`)
    assert.deepEqual(bytes[0], [encodeSyncRequest(roots).length, encodeSyncResponse(rootsReply).length])
    assert.deepEqual(bytes[1], [encodeSyncRequest(push).length, encodeSyncResponse({ type: 'pushed', changed: 2 }).length])

    // Not sent: rejected as kvTransport rejects, with no bytes reported.
    await assert.rejects(transport('not a peer id', roots, 500, 'sync'), { name: 'UnreachableError' })
    await server.stop()
    await assert.rejects(transport(to, roots, 2000, 'sync'), { name: 'UnreachableError' })
    await assert.rejects(transport(to, roots, 2000, 'handoff'), { name: 'UnreachableError' })
    assert.equal(bytes.length, 3)
  })
})
