/**
 * Protocol handler fuzzing over real libp2p on 127.0.0.1: a live node (createNode in a temp dir)
 * and a hostile peer (a bare Shoal libp2p with its own key) that opens streams on every Shoal
 * protocol and writes random and mutated frames, framed well or badly (no frame, half a frame, a
 * length prefix claiming 1 GB, a prefix that never ends, several frames, garbage after a frame),
 * and publishes random and mutated heartbeats on the cluster's gossip topic.
 *
 * Each stream case must end, never hang: a frame that does not decode (or is not whole) gets the
 * stream reset with no reply; one that decodes gets a reply that decodes, whose errors are typed.
 * After each batch the node must have raised no unhandled rejection or uncaught exception, must
 * hold exactly what it held before (Merkle roots of every partition, member table, hints) unless
 * the batch sent a request that decodes as a write, and must still answer real puts and gets.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId, PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { bytesEqual, toBytes } from '../../src/core/bytes.ts'
import { values } from '../../src/core/causality.ts'
import type { KvRequest } from '../../src/core/coordinator/messages.ts'
import { recordPayload, validateRecord } from '../../src/core/membership.ts'
import type { MemberRecord } from '../../src/core/membership.ts'
import { DEFAULT_PARTITIONS } from '../../src/core/ring.ts'
import type { SyncRequest } from '../../src/core/sync/messages.ts'
import {
  decodeAdminRequest, decodeAdminResponse, decodeKvRequest, decodeKvResponse, decodeMemberList, decodeMembersRequest,
  encodeAdminRequest, encodeHeartbeat, encodeKvRequest, encodeMemberList, encodeMembersRequest
} from '../../src/net/codec.ts'
import type { AdminRequest } from '../../src/net/codec.ts'
import {
  ADMIN_PROTOCOL, HANDOFF_PROTOCOL, KV_PROTOCOL, MAX_KV_MESSAGE_BYTES, MAX_STRING_BYTES, MAX_SYNC_MESSAGE_BYTES,
  MEMBERS_PROTOCOL, SYNC_PROTOCOL
} from '../../src/net/constants.ts'
import { clusterTopic } from '../../src/net/gossip.ts'
import { kvTransport } from '../../src/net/kv.ts'
import { createShoalLibp2p } from '../../src/net/libp2p.ts'
import type { ShoalLibp2p } from '../../src/net/libp2p.ts'
import { pullMembers } from '../../src/net/members.ts'
import { recordSigner } from '../../src/net/record-signer.ts'
import { decodeSyncRequest, decodeSyncResponse, encodeSyncRequest } from '../../src/net/sync-codec.ts'
import { syncTransport } from '../../src/net/sync.ts'
import { createNode } from '../../src/node.ts'
import type { ShoalNode } from '../../src/node.ts'
import { SimRandom } from '../../src/sim/random.ts'
import { eventually } from '../support/eventually.ts'
import { caseFrame, caseSeed } from './decoders.ts'
import type { CaseKind } from './decoders.ts'
import * as messages from './messages.ts'
import { varint } from './mutate.ts'

export const HANDLER_TARGETS = ['kv', 'sync', 'handoff', 'members', 'admin', 'gossip'] as const
export type HandlerTarget = typeof HANDLER_TARGETS[number]

/** How a stream case puts its bytes on the wire. */
export const FRAMINGS = ['frame', 'many', 'trailing', 'none', 'half', 'huge-prefix', 'bad-prefix'] as const
export type Framing = typeof FRAMINGS[number]

const CLUSTER = 'fuzz'
/** Heartbeats up to this size must reach the node (bigger ones may exceed gossipsub's limits). */
const GOSSIP_DELIVERED_BYTES = 1024 * 1024
/** Names of JavaScript's own errors: a reply naming one is an untyped failure escaping a handler. */
const UNTYPED = new Set(['Error', 'TypeError', 'RangeError', 'SyntaxError', 'ReferenceError', 'EvalError', 'URIError', 'AggregateError'])

interface StreamProtocol {
  readonly protocol: string
  /** The largest request the node's server takes: a prefix claiming more is refused at once. */
  readonly maxBytes: number
  readonly frame: (rng: SimRandom) => Uint8Array
  /** The request, or undefined when the frame does not decode. */
  readonly decode: (bytes: Uint8Array) => unknown
  /** Checks a reply frame; returns a failure or undefined. */
  readonly reply: (bytes: Uint8Array) => string | undefined
  /** A decoded request the node may act on by changing what it holds. */
  readonly writes: (request: unknown) => boolean
  /** A decoded request never to send: it would take the node out of the cluster. */
  readonly forbidden?: (request: unknown) => boolean
  /** Streams open at once: below the protocol's inbound limit per connection. */
  readonly concurrency: number
}

function typedError (name: string): string | undefined {
  return UNTYPED.has(name) ? `replied with the untyped error ${name}` : undefined
}

function replyCheck (decode: (bytes: Uint8Array) => unknown): (bytes: Uint8Array) => string | undefined {
  return bytes => {
    let reply: unknown
    try {
      reply = decode(bytes)
    } catch (err) {
      return `a reply that does not decode: ${(err as Error).message}`
    }
    if (typeof reply === 'object' && reply !== null && 'type' in reply && reply.type === 'error' && 'name' in reply) return typedError(String(reply.name))
    return undefined
  }
}

const syncProtocol = (protocol: string): StreamProtocol => ({
  protocol,
  maxBytes: MAX_SYNC_MESSAGE_BYTES,
  frame: rng => encodeSyncRequest(messages.syncRequest(rng)),
  decode: decodeSyncRequest,
  reply: replyCheck(decodeSyncResponse),
  writes: r => (r as SyncRequest).type === 'push' || (r as SyncRequest).type === 'purge',
  concurrency: 8
})

const STREAM_PROTOCOLS: Readonly<Record<Exclude<HandlerTarget, 'gossip'>, StreamProtocol>> = {
  kv: {
    protocol: KV_PROTOCOL,
    maxBytes: MAX_KV_MESSAGE_BYTES,
    frame: rng => encodeKvRequest(messages.kvRequest(rng)),
    decode: decodeKvRequest,
    reply: replyCheck(decodeKvResponse),
    writes: r => (r as KvRequest).type === 'write' || (r as KvRequest).type === 'put',
    concurrency: 16
  },
  sync: syncProtocol(SYNC_PROTOCOL),
  handoff: syncProtocol(HANDOFF_PROTOCOL),
  members: {
    protocol: MEMBERS_PROTOCOL,
    maxBytes: MAX_STRING_BYTES,
    frame: () => encodeMembersRequest({}),
    decode: decodeMembersRequest,
    reply: bytes => {
      try {
        decodeMemberList(bytes)
        return undefined
      } catch (err) {
        return `a member list that does not decode: ${(err as Error).message}`
      }
    },
    writes: () => false,
    concurrency: 8
  },
  admin: {
    protocol: ADMIN_PROTOCOL,
    maxBytes: MAX_STRING_BYTES,
    frame: rng => encodeAdminRequest(messages.adminRequest(rng)),
    decode: decodeAdminRequest,
    reply: bytes => {
      const failure = replyCheck(decodeAdminResponse)(bytes)
      if (failure !== undefined) return failure
      const reply = decodeAdminResponse(bytes)
      if (reply.type === 'ok') {
        try { JSON.parse(reply.json) } catch { return 'an admin answer that is not JSON' }
      }
      return undefined
    },
    writes: () => false,
    // Any peer may send leave and remove today (the private network's key is what keeps
    // strangers out): a fuzzer that sent them would only show that they work.
    forbidden: r => (r as AdminRequest).op !== 'status',
    concurrency: 4
  }
}

export interface CaseFailure {
  readonly target: HandlerTarget
  readonly index: number
  readonly kind: CaseKind | 'batch'
  readonly framing?: Framing
  readonly failure: string
}

export interface BatchResult {
  readonly cases: number
  /** Frames the node answered (they decoded), streams it reset, heartbeats published. */
  readonly replied: number
  readonly reset: number
  readonly published: number
  /** Pulls of the hostile peer's member table the node made, each answered with a fuzzed reply. */
  readonly pulls: number
  /**
   * Cases not sent: admin commands that would take the node out (see STREAM_PROTOCOLS.admin),
   * and in a batch without writes, frames that decode as writes.
   */
  readonly skipped: number
  /** Whether every frame sent failed to decode or could not change the node (so nothing may have changed). */
  readonly clean: boolean
  readonly failures: CaseFailure[]
}

interface Snapshot {
  readonly roots: readonly Uint8Array[]
  readonly members: readonly MemberRecord[]
  readonly hints: number
}

export interface HandlerFuzzOptions {
  /** How long one stream case may take before it counts as a hang. Default 20 s. */
  readonly caseTimeoutMs?: number
  /** The node's request deadline (its kv streams get three). Default the node's own. */
  readonly timeoutMs?: number
}

/**
 * A live node and a hostile peer connected to it. `start`, then `runBatch` per target and range
 * of cases, then `stop` (always: it removes the node's directory).
 */
export class HandlerFuzz {
  readonly node: ShoalNode
  readonly hostile: ShoalLibp2p
  private readonly dir: string
  private readonly key: PrivateKey
  private readonly nodeId: PeerId
  private readonly caseTimeoutMs: number
  private readonly escaped: string[] = []
  private snapshot: Snapshot | undefined
  private probes = 0
  private markers = 0
  /** Member-table pulls the node made of the hostile peer, each answered with a fuzzed reply. */
  private pulls = 0
  private pullSeed = 0
  private readonly onUnhandled = (reason: unknown): void => { this.escaped.push(`unhandled rejection: ${describe(reason)}`) }
  private readonly onUncaught = (err: unknown): void => { this.escaped.push(`uncaught exception: ${describe(err)}`) }

  private constructor (init: { node: ShoalNode, hostile: ShoalLibp2p, dir: string, key: PrivateKey, caseTimeoutMs: number }) {
    this.node = init.node
    this.hostile = init.hostile
    this.dir = init.dir
    this.key = init.key
    this.nodeId = peerIdFromString(init.node.peerId)
    this.caseTimeoutMs = init.caseTimeoutMs
  }

  static async start (options: HandlerFuzzOptions = {}): Promise<HandlerFuzz> {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-fuzz-'))
    let node: ShoalNode | undefined
    let hostile: ShoalLibp2p | undefined
    try {
      // One member owning everything (N = 1): a put or get is answered by this node alone.
      node = await createNode({
        dataDir: dir,
        listen: ['/ip4/127.0.0.1/tcp/0'],
        cluster: CLUSTER,
        n: 1,
        r: 1,
        w: 1,
        // Workers that change data on their own schedule would pass for hostile input: the
        // reaper purges a fuzzed tombstone whose timestamp is long past. (Anti-entropy and
        // ownership handoff have nobody to talk to.) Hinted handoff stays on: the checks wait for it.
        reaperIntervalMs: 0,
        antiEntropyIntervalMs: 0,
        handoffIntervalMs: 0,
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs })
      })
      const key = await generateKeyPair('Ed25519')
      hostile = await createShoalLibp2p({ privateKey: key, listen: [], cluster: CLUSTER })
      await hostile.dial(multiaddr(node.addrs[0] as string))
      const fuzz = new HandlerFuzz({ node, hostile, dir, key, caseTimeoutMs: options.caseTimeoutMs ?? 20_000 })
      // The node pulls the hostile peer's member table whenever one of its (signed) heartbeats
      // carries another digest: the answer is a fuzzed member list, so the node's client side
      // (rpcCall, decodeMemberList, the merge of unsigned records) is fuzzed too.
      await hostile.handle(MEMBERS_PROTOCOL, (stream) => { fuzz.answerPull(stream) })
      const topic = clusterTopic(CLUSTER)
      const pubsub = hostile.services.pubsub
      await eventually('the hostile peer sees the node on the gossip topic', () => pubsub.getSubscribers(topic).some(p => p.equals(fuzz.nodeId)))
      for (let i = 0; i < 8; i++) await node.put(`seed-${i}`, `value-${i}`)
      await fuzz.marker()
      fuzz.snapshot = await fuzz.takeSnapshot()
      process.on('unhandledRejection', fuzz.onUnhandled)
      process.on('uncaughtException', fuzz.onUncaught)
      return fuzz
    } catch (err) {
      await hostile?.stop()
      await node?.stop()
      await rm(dir, { recursive: true, force: true })
      throw err
    }
  }

  async stop (): Promise<void> {
    process.off('unhandledRejection', this.onUnhandled)
    process.off('uncaughtException', this.onUncaught)
    try {
      await this.hostile.stop()
    } finally {
      try {
        await this.node.stop()
      } finally {
        await rm(this.dir, { recursive: true, force: true })
      }
    }
  }

  /**
   * Cases `from` to `from + count - 1` of `target` under `seed`, then the checks after a batch
   * (nothing escaped, nothing changed unless a frame decoded as a write, puts and gets work).
   * `writes: false` leaves out the frames that decode as writes, so that nothing may change.
   */
  async runBatch (target: HandlerTarget, seed: number, from: number, count: number, options: {
    writes?: boolean
    /** Runs while the cases do: a test's way to show that the checks after a batch can fail. */
    during?: () => Promise<void>
  } = {}): Promise<BatchResult> {
    const writes = options.writes ?? true
    // Settled here, so that a failing `during` is a failure of the batch, not an unhandled rejection.
    const during = options.during?.().then(() => undefined, (err: unknown) => `during the batch: ${describe(err)}`)
    const failures: CaseFailure[] = []
    const tally = { replied: 0, reset: 0, published: 0, skipped: 0, writes: 0 }
    const indexes = Array.from({ length: count }, (_, i) => from + i)
    const pullsBefore = this.pulls
    if (target === 'gossip') {
      this.pullSeed = seed
      for (const index of indexes) {
        const failure = await this.publishCase(seed, index)
        tally.published++
        if (failure !== undefined) failures.push(failure)
        if (index % 25 === 24) await this.signedHeartbeat(`pull-${index}`)
      }
      // A heartbeat this peer really signed, about itself: once the node has taken it, it has
      // handled every heartbeat published before it. It says 'left', so the ring stays the same.
      await this.marker()
    } else {
      const protocol = STREAM_PROTOCOLS[target]
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < indexes.length) {
          const index = indexes[next++] as number
          const { outcome, write } = await this.streamCase(target, protocol, seed, index, writes)
          // A write sent may have been applied, whatever came back: the batch is not clean.
          if (write) tally.writes++
          if (typeof outcome !== 'string') failures.push(outcome)
          else tally[outcome]++
        }
      }
      await Promise.all(Array.from({ length: protocol.concurrency }, worker))
    }
    const duringFailure = await during
    if (duringFailure !== undefined) failures.push({ target, index: from, kind: 'batch', failure: duringFailure })
    const clean = tally.writes === 0
    failures.push(...(await this.afterBatch(target, clean)).map(failure => ({ target, index: from, kind: 'batch' as const, failure })))
    return {
      cases: count,
      replied: tally.replied,
      reset: tally.reset,
      published: tally.published,
      pulls: this.pulls - pullsBefore,
      skipped: tally.skipped,
      clean,
      failures
    }
  }

  /** The bytes of stream case `index`, how they were made, and what the node should do with them. */
  streamBytes (target: Exclude<HandlerTarget, 'gossip'>, seed: number, index: number): {
    wire: Uint8Array, kind: CaseKind, framing: Framing, request: unknown, whole: boolean
  } {
    const protocol = STREAM_PROTOCOLS[target]
    const rng = new SimRandom(caseSeed(seed, `handler-${target}`, index))
    const roll = rng.next()
    const framing: Framing = roll < 0.6 ? 'frame' : rng.pick(FRAMINGS)
    const { bytes, kind } = caseFrame(rng, protocol.frame)
    let request: unknown
    try {
      request = protocol.decode(bytes)
    } catch {
      request = undefined
    }
    const lp = (b: Uint8Array): number[] => [...varint(b.length), ...b]
    let wire: number[]
    switch (framing) {
      case 'frame': wire = lp(bytes); break
      case 'many': wire = [...lp(bytes), ...Array.from({ length: rng.int(1, 4) }, () => lp(caseFrame(rng, protocol.frame).bytes)).flat()]; break
      case 'trailing': wire = [...lp(bytes), ...messages.bytes(rng, 1, 64)]; break
      case 'none': wire = []; break
      // The prefix promises the whole frame (at least one byte more than follows).
      case 'half': wire = [...varint(bytes.length + 1), ...bytes.subarray(0, Math.floor(bytes.length / 2))]; break
      case 'huge-prefix': wire = [...varint(rng.pick([2 ** 30, 2 ** 31, 2 ** 32, protocol.maxBytes + 1, 2 ** 53 - 1])), ...bytes]; break
      case 'bad-prefix': wire = [...Array<number>(rng.int(10, 14)).fill(0xff), ...bytes]; break
    }
    const whole = framing === 'frame' || framing === 'many' || framing === 'trailing'
    return { wire: Uint8Array.from(wire), kind, framing, request, whole }
  }

  private async streamCase (target: Exclude<HandlerTarget, 'gossip'>, protocol: StreamProtocol, seed: number, index: number, writes: boolean): Promise<{
    outcome: 'replied' | 'reset' | 'skipped' | CaseFailure, write: boolean
  }> {
    const { wire, kind, framing, request, whole } = this.streamBytes(target, seed, index)
    const answers = whole && request !== undefined
    const write = answers && protocol.writes(request)
    if ((answers && protocol.forbidden?.(request) === true) || (write && !writes)) return { outcome: 'skipped', write: false }
    return { outcome: await this.sendCase(protocol, wire, whole, answers, (failure) => ({ target, index, kind, framing, failure })), write }
  }

  /** Sends one case's bytes and judges how the node answered (`answers`: its first frame decodes). */
  private async sendCase (protocol: StreamProtocol, wire: Uint8Array, whole: boolean, answers: boolean,
    fail: (failure: string) => CaseFailure): Promise<'replied' | 'reset' | CaseFailure> {
    const { received, status, error } = await this.exchange(protocol.protocol, wire)
    if (status === 'hang') return fail(`no end to the stream within ${this.caseTimeoutMs} ms`)
    if (status === 'refused') return fail(`could not open a stream: ${error}`)
    const frames = readFrames(received)
    // Frames after the first one that together overflow the node's read buffer may get the
    // stream reset before the first is answered: a peer that sends more than it may is refused.
    if (answers && frames.length === 0 && status === 'reset' && wire.length > protocol.maxBytes + 10) return 'reset'
    if (!answers) {
      if (frames.length > 0) return fail(`a reply to ${whole ? 'a frame that does not decode' : 'no whole frame'}`)
      if (status !== 'reset') return fail(`the stream ${status} without an error; expected a reset`)
      return 'reset'
    }
    if (frames.length !== 1) return fail(`expected one reply frame, got ${frames.length} (${status}${error === undefined ? '' : `: ${error}`})`)
    const bad = protocol.reply(frames[0] as Uint8Array)
    if (bad !== undefined) return fail(bad)
    return 'replied'
  }

  /**
   * Writes `wire` on a new stream of `target` and leaves the stream open, as a peer that stops
   * half-way does: the node must reset it at its own deadline. Resolves with how it ended.
   */
  async silent (target: Exclude<HandlerTarget, 'gossip'>, wire: Uint8Array): Promise<{ received: number, status: 'closed' | 'reset' | 'hang' | 'refused' }> {
    const { received, status } = await this.exchange(STREAM_PROTOCOLS[target].protocol, wire, false)
    return { received: received.length, status }
  }

  /** Opens a stream, writes `wire`, closes the writing end (unless told not to), reads until the stream ends. */
  private async exchange (protocol: string, wire: Uint8Array, close = true): Promise<{ received: Uint8Array, status: 'closed' | 'reset' | 'hang' | 'refused', error?: string }> {
    let stream: Stream
    try {
      stream = await this.hostile.dialProtocol(this.nodeId, protocol, { signal: AbortSignal.timeout(this.caseTimeoutMs) })
    } catch (err) {
      return { received: new Uint8Array(0), status: 'refused', error: describe(err) }
    }
    const chunks: Uint8Array[] = []
    let timer: NodeJS.Timeout | undefined
    const hang = new Promise<'hang'>(resolve => { timer = setTimeout(() => { resolve('hang') }, this.caseTimeoutMs) })
    // Reading runs beside writing: a node that has its one frame reads no more, so the rest of a
    // large write may never drain, and the reply must still be seen.
    const writing = (async () => {
      try {
        if (wire.length > 0 && !stream.send(wire)) await stream.onDrain()
        if (close) await stream.close()
      } catch {
        // The node may reset before all is written (a bad prefix): reading tells what happened.
      }
    })()
    const reading = (async (): Promise<{ status: 'closed' | 'reset', error?: string }> => {
      try {
        for await (const chunk of stream) chunks.push(chunk.subarray())
      } catch (err) {
        return { status: 'reset', error: describe(err) }
      }
      return { status: stream.status === 'reset' || stream.status === 'aborted' ? 'reset' : 'closed' }
    })()
    const outcome = await Promise.race([reading, hang])
    clearTimeout(timer)
    const received = Uint8Array.from(chunks.flatMap(c => [...c]))
    // What the node did not read is dropped with our end of the stream.
    if (outcome === 'hang' || stream.writeStatus !== 'closed') stream.abort(new Error('fuzz case over'))
    await writing
    if (outcome === 'hang') return { received, status: 'hang' }
    return { received, ...outcome }
  }

  /** The heartbeat of gossip case `index`. */
  heartbeatBytes (seed: number, index: number): { bytes: Uint8Array, kind: CaseKind } {
    const rng = new SimRandom(caseSeed(seed, 'handler-gossip', index))
    const ids = [this.hostile.peerId.toString(), this.node.peerId]
    if (rng.chance(0.01)) return { bytes: messages.bytes(rng, 65 * 1024, 70 * 1024), kind: 'random' }
    // Records about the sender, about the node itself, and about strangers; none validly signed.
    return caseFrame(rng, r => encodeHeartbeat(messages.heartbeat(r, r.chance(0.7) ? r.pick(ids) : undefined)))
  }

  private async publishCase (seed: number, index: number): Promise<CaseFailure | undefined> {
    const { bytes, kind } = this.heartbeatBytes(seed, index)
    try {
      const result = await this.hostile.services.pubsub.publish(clusterTopic(CLUSTER), bytes)
      // Gossipsub's own frame limit (4 MiB by default) keeps the largest mutants from leaving.
      if (bytes.length <= GOSSIP_DELIVERED_BYTES && !result.recipients.some(p => p.equals(this.nodeId))) return { target: 'gossip', index, kind, failure: 'the heartbeat did not go to the node' }
    } catch (err) {
      return { target: 'gossip', index, kind, failure: `publishing failed: ${describe(err)}` }
    }
    return undefined
  }

  /**
   * A heartbeat this peer really signed, about itself, saying it has left (so the ring stays the
   * same); its digest differs from the node's, so the node pulls this peer's table.
   */
  private async signedHeartbeat (digest: string): Promise<void> {
    const id = this.hostile.peerId.toString()
    // 'leaving': it owns nothing, so the ring stays as it is, but it is a member the node serves
    // sync and handoff requests to (it refuses them to strangers and to members that left).
    const record = validateRecord({ id, incarnation: 1, seq: ++this.markers, status: 'leaving', addrs: [], weight: 1 })
    const signature = recordSigner(this.key).sign(recordPayload(record, id))
    await this.hostile.services.pubsub.publish(clusterTopic(CLUSTER), encodeHeartbeat({ record: { ...record, signer: id, signature }, digest }))
  }

  /** Member-table pulls the node has made of the hostile peer so far. */
  get pullsAnswered (): number {
    return this.pulls
  }

  /** Answers one pull by the node with a fuzzed member list, framed well or badly. */
  private answerPull (stream: Stream): void {
    const rng = new SimRandom(caseSeed(this.pullSeed, 'handler-pull', this.pulls++))
    const { bytes } = caseFrame(rng, r => encodeMemberList(messages.memberList(r)))
    const framing = rng.next() < 0.6 ? 'frame' : rng.pick(FRAMINGS)
    const wire: number[] = framing === 'none'
      ? []
      : framing === 'half' ? [...varint(bytes.length + 1), ...bytes.subarray(0, bytes.length >> 1)]
        : framing === 'huge-prefix' ? [...varint(2 ** 31), ...bytes]
          : framing === 'bad-prefix' ? [...Array<number>(11).fill(0xff)]
            : [...varint(bytes.length), ...bytes, ...(framing === 'trailing' ? [0xff, 0x00] : [])]
    try {
      if (wire.length > 0) stream.send(Uint8Array.from(wire))
      if (rng.chance(0.1)) stream.abort(new Error('fuzzed pull answer'))
      else stream.close().catch(() => {})
    } catch {
      stream.abort(new Error('fuzzed pull answer'))
    }
  }

  private async marker (): Promise<void> {
    const id = this.hostile.peerId.toString()
    await this.signedHeartbeat('')
    await eventually('the node takes the marker heartbeat', async () => {
      const members = await pullMembers(this.hostile, this.nodeId, 5000)
      return members.some(r => r.id === id && r.seq === this.markers)
    }, 15_000, 20)
  }

  /** What a request of this peer can see of the node's data and membership. */
  private async takeSnapshot (): Promise<Snapshot> {
    const sync = syncTransport(this.hostile)
    const partitions = Array.from({ length: DEFAULT_PARTITIONS }, (_, i) => i)
    const roots = await sync(this.node.peerId, { type: 'roots', partitions, summary: new Uint8Array(32) }, 30_000, 'sync')
    if (roots.type !== 'roots') throw new Error(`a roots request answered ${roots.type === 'error' ? `${roots.name}: ${roots.message}` : roots.type}`)
    const hostileId = this.hostile.peerId.toString()
    const members = (await pullMembers(this.hostile, this.nodeId, 5000)).filter(r => r.id !== hostileId)
    return { roots: roots.roots, members, hints: this.node.status().hintsPending }
  }

  private async afterBatch (target: HandlerTarget, clean: boolean): Promise<string[]> {
    const failures = this.escaped.splice(0)
    const before = this.snapshot
    const now = await this.takeSnapshot()
    if (clean && before !== undefined) {
      const changed = before.roots.reduce((n, root, i) => n + (bytesEqual(root, now.roots[i] ?? new Uint8Array(0)) ? 0 : 1), 0)
      if (changed > 0) failures.push(`${target} frames that do not decode changed the data of ${changed} partitions`)
      if (!isDeepStrictEqual(before.members, now.members)) failures.push(`${target} frames that do not decode changed the member table`)
      if (before.hints !== now.hints) failures.push(`${target} frames that do not decode changed the hints held (${before.hints} to ${now.hints})`)
    }
    failures.push(...await this.probe())
    if (!clean) {
      // A replica write with a hint for a stranger is merged into the node's own data by the
      // hinted-handoff worker a moment later: that must not land in the next batch.
      try {
        await eventually('the hints the batch left are delivered', () => this.node.status().hintsPending === 0, 30_000)
      } catch (err) {
        failures.push(`${describe(err)} (${this.node.status().hintsPending} pending)`)
      }
    }
    if (this.node.status().state !== 'up') failures.push(`the node is ${this.node.status().state}`)
    failures.push(...this.escaped.splice(0))
    this.snapshot = await this.takeSnapshot()
    return failures
  }

  /** A real put and get, through the API and over the network: the node must still serve both. */
  private async probe (): Promise<string[]> {
    const failures: string[] = []
    const n = ++this.probes
    try {
      await this.node.put(`probe-${n}`, `api-${n}`)
      const read = await this.node.get(`probe-${n}`)
      if (read === undefined || read.siblings.length !== 1 || !bytesEqual(read.siblings[0] as Uint8Array, toBytes(`api-${n}`))) failures.push('a get through the API does not return the put')
      for (let i = 0; i < 8; i++) {
        const seedRead = await this.node.get(`seed-${i}`)
        if (seedRead === undefined || !bytesEqual(seedRead.siblings[0] as Uint8Array, toBytes(`value-${i}`))) failures.push(`seed-${i} no longer reads back`)
      }
      const kv = kvTransport(this.hostile)
      const key = toBytes(`probe-net-${n}`)
      const put = await kv(this.node.peerId, { type: 'put', key, value: toBytes(`net-${n}`), context: new Map() }, 5000)
      if (put.type !== 'put') failures.push(`a put over the network answered ${put.type === 'error' ? `${put.name}: ${put.message}` : put.type}`)
      const get = await kv(this.node.peerId, { type: 'get', key }, 5000)
      if (get.type !== 'get' || get.object === undefined || !values(get.object).some(v => bytesEqual(v, toBytes(`net-${n}`)))) failures.push('a get over the network does not return the put')
    } catch (err) {
      failures.push(`a put or get failed: ${describe(err)}`)
    }
    return failures
  }
}

/** The length-prefixed frames in `bytes` (a trailing partial frame is left out). */
function readFrames (bytes: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = []
  let pos = 0
  while (pos < bytes.length) {
    let length = 0
    let scale = 1
    let i = pos
    for (; i < bytes.length; i++) {
      length += ((bytes[i] as number) & 0x7f) * scale
      scale *= 128
      if ((bytes[i] as number) < 0x80) break
    }
    if (i >= bytes.length || i + 1 + length > bytes.length) break
    frames.push(bytes.subarray(i + 1, i + 1 + length))
    pos = i + 1 + length
  }
  return frames
}

function describe (err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

