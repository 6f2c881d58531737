import { stat } from 'node:fs/promises'
import { toBytes } from './core/bytes.ts'
import { decodeContext, encodeContext, isDeleted, values } from './core/causality.ts'
import type { DvvSet, VersionVector } from './core/causality.ts'
import { Coordinator, DEFAULT_QUORUM, DEFAULT_TIMEOUT_MS, SERVE_DEADLINES } from './core/coordinator/coordinator.ts'
import type { Env } from './core/env.ts'
import { InvalidArgumentError, MalformedDataError, UnavailableError, remoteError } from './core/errors.ts'
import { MembershipAgent } from './core/membership-agent.ts'
import type { RecordSigner } from './core/membership-agent.ts'
import type { MemberRecord } from './core/membership.ts'
import { DEFAULT_N, DEFAULT_PARTITIONS } from './core/ring.ts'
import { AntiEntropy } from './core/sync/anti-entropy.ts'
import type { ExchangeResult } from './core/sync/exchange.ts'
import { OwnershipHandoff } from './core/sync/handoff.ts'
import { HintedHandoff } from './core/sync/hints.ts'
import { LatencyMonitor } from './core/sync/load.ts'
import type { SyncChannel, SyncRequest, SyncResponse, SyncTransport } from './core/sync/messages.ts'
import { TombstoneReaper } from './core/sync/reaper.ts'
import { serveMember } from './core/sync/serve.ts'
import type { MemberView } from './core/sync/serve.ts'
import { AdminServer } from './net/admin.ts'
import { decodeHeartbeat, decodeMemberList, encodeHeartbeat, encodeMemberList } from './net/codec.ts'
import { Discovery } from './net/discovery.ts'
import { ClusterGossip } from './net/gossip.ts'
import { KvServer, kvTransport } from './net/kv.ts'
import { checkAddresses, createShoalLibp2p } from './net/libp2p.ts'
import type { ShoalLibp2p } from './net/libp2p.ts'
import { MembersServer, pullMembers } from './net/members.ts'
import { parsePsk } from './net/psk.ts'
import { recordSigner } from './net/record-signer.ts'
import { SyncServer, syncTransport } from './net/sync.ts'
import { NotADataDirectoryError } from './store/errors.ts'
import { loadOrCreateIdentity } from './store/identity.ts'
import { Store } from './store/store.ts'
import { joinValues, refuseReserved } from './core/crdt/typed-value.ts'
import { KvOps, checkResolver, resolveRead } from './kv-ops.ts'
import type { Resolver, ShoalCounter, ShoalSet, UpdateFunction, UpdateOptions, UpdateResult } from './kv-ops.ts'
import { NodeMetrics } from './metrics.ts'
import type { NodeStats } from './metrics.ts'

export const DEFAULT_CLUSTER = 'shoal'
export { DEFAULT_TIMEOUT_MS }

export interface NodeOptions {
  /** Holds the LevelDB store and the node's private key: a restarted node keeps its peer ID and data. */
  readonly dataDir: string
  /** Multiaddrs to listen on. Default `/ip4/0.0.0.0/tcp/0`. */
  readonly listen?: readonly string[]
  /** Multiaddrs (with `/p2p/<peer id>`) of members to join through. */
  readonly bootstrap?: readonly string[]
  /** Nodes join only clusters of their own name. Default `shoal`. */
  readonly cluster?: string
  /** Find members on the LAN by mDNS. Default false. */
  readonly mdns?: boolean
  /**
   * A private-network key file's bytes (`shoal psk FILE` writes one): only peers with the same key
   * can connect. A malformed key is an InvalidArgumentError before anything starts.
   */
  readonly psk?: Uint8Array
  /** Multiaddrs other peers should dial instead of the listen addresses (a port forward, a proxy). */
  readonly announce?: readonly string[]
  /** Replicas per key. Default 3. */
  readonly n?: number
  /** Replies a get waits for. Default 2. */
  readonly r?: number
  /** Acknowledgements a put waits for. Default 2. */
  readonly w?: number
  /** This member's share of the data relative to others. Default 1. */
  readonly weight?: number
  /** Deadline of one request in ms. Default 5000. */
  readonly timeoutMs?: number
  /** Largest value accepted, in bytes: default 1 MiB, at most 16 MiB. */
  readonly maxValueBytes?: number
  /** Write a down primary's copy to a fallback with a hint (sloppy quorum). Default true. */
  readonly sloppyQuorum?: boolean
  /** Repair stale replicas after a read. Default true. */
  readonly readRepair?: boolean
  /** How often hints are offered to their targets, in ms; 0 turns hinted handoff off. Default 1000. */
  readonly hintIntervalMs?: number
  /** Between anti-entropy exchanges, in ms; 0 turns anti-entropy off. Default 10,000. */
  readonly antiEntropyIntervalMs?: number
  /** How often partitions this node no longer owns are handed off, in ms; 0 turns it off. Default 5000. */
  readonly handoffIntervalMs?: number
  /** How long a tombstone is kept at least, in ms. Default 1 hour. */
  readonly tombstoneGraceMs?: number
  /** Between tombstone purge rounds, in ms; 0 turns purging off. Default 30,000. */
  readonly reaperIntervalMs?: number
  /** Called once this node has left the cluster (after `leave` handed everything off). */
  readonly onLeft?: () => void
  /** Merges siblings for this node's update() calls (a call's own resolver wins). None by default. */
  readonly resolver?: Resolver
}

export interface PutResult {
  /** Write back with this context to replace what this put wrote. */
  readonly context: string
  /**
   * Live siblings of the written object at its coordinator: more than 1 means a write concurrent
   * with this one is kept beside it (update() resolves them).
   */
  readonly siblings: number
}

export interface GetResult {
  /** Every live sibling: one value unless writes were concurrent. */
  readonly siblings: Uint8Array[]
  /** Pass to put or delete to replace exactly these siblings. */
  readonly context: string
  /** Each sibling's write time by its coordinator's clock, in ms, in sibling order (what lastWriterWins compares). */
  readonly timestamps?: number[]
}

export interface WriteOptions {
  readonly context?: string
  readonly w?: number
}

export interface ReadOptions {
  readonly r?: number
  /**
   * Merge siblings into one value with this (e.g. lastWriterWins); only when given here, never
   * the node's or client's own resolver: a plain read shows every sibling.
   */
  readonly resolver?: Resolver
}

export type MemberState = 'up' | 'suspect' | 'down' | 'leaving' | 'left'

export interface MemberStatus {
  readonly peerId: string
  readonly state: MemberState
  readonly addrs: readonly string[]
  /** Partitions this member is a primary of. */
  readonly partitions: number
}

export interface NodeStatus {
  readonly peerId: string
  readonly cluster: string
  readonly addrs: readonly string[]
  /** This node's own state: 'leaving' while it hands its data off, 'left' after. */
  readonly state: MemberState
  readonly members: readonly MemberStatus[]
  /** Hints held here for members that were down. */
  readonly hintsPending: number
  /** Hints handed to their members since start. */
  readonly hintsDelivered: number
  /** Hint records that did not decode, dropped by the start-up check (only a disk fault makes one). */
  readonly hintsDropped: number
  readonly antiEntropy: {
    readonly exchanges: number
    readonly failed: number
    readonly deferred: number
    readonly keysRepaired: number
    /** Bytes of anti-entropy requests sent and replies received since start. */
    readonly bytesSent: number
    readonly bytesReceived: number
    readonly treesVerified: number
    readonly treesRebuilt: number
    /** The start-up check of every stored tree against its objects is over. */
    readonly treesChecked: boolean
    readonly intervalMs: number
  }
  readonly handoff: {
    /** Partitions held here that others now own, still to hand off. */
    readonly pending: number
    readonly partitions: number
    readonly keysSent: number
    readonly keysDropped: number
  }
  readonly tombstones: { readonly purged: number, readonly kept: number }
  /** Replicas per key and the default quorums: client peers route with these. */
  readonly replication: { readonly n: number, readonly r: number, readonly w: number }
}

/** The key-value operations a node and a client peer share. */
export interface KeyValue {
  put: (key: string | Uint8Array, value: string | Uint8Array, options?: WriteOptions) => Promise<PutResult>
  get: (key: string | Uint8Array, options?: ReadOptions) => Promise<GetResult | undefined>
  delete: (key: string | Uint8Array, options?: WriteOptions) => Promise<void>
  /** Read-modify-write with the context handled and siblings resolved (src/kv-ops.ts). */
  update: (key: string | Uint8Array, fn: UpdateFunction, options?: UpdateOptions) => Promise<UpdateResult>
  /** The PN-counter stored at `key`. */
  counter: (key: string | Uint8Array) => ShoalCounter
  /** The add-wins set stored at `key`. */
  set: (key: string | Uint8Array) => ShoalSet
  stop: () => Promise<void>
}

const MAX_VALUE_LIMIT = 16 * 1024 * 1024
/** A sync request may carry a 4 MiB batch of objects to merge: longer than a kv request. */
const SYNC_DEADLINE_MS = 30_000
const MEMBERS_META = 'members'

/** The real world, for the core: wall-clock time (sibling timestamps), Math.random, unref'd timers. */
export const realEnv: Env = {
  now: () => Date.now(),
  random: () => Math.random(),
  setTimer: (ms, fn) => {
    const timer = setTimeout(fn, ms)
    timer.unref()
    return { cancel: () => { clearTimeout(timer) } }
  }
}

/**
 * A Shoal member: stores its share of the data, coordinates requests, gossips membership.
 *
 * @example
 * ```ts
 * const node = await createNode({ dataDir: './shoal-data', listen: ['/ip4/127.0.0.1/tcp/4001'] })
 * const { context } = await node.put('greeting', 'hello')
 * const read = await node.get('greeting')            // { siblings: [bytes of 'hello'], context }
 * await node.put('greeting', 'hello again', { context: read?.context })
 * await node.stop()
 * ```
 */
export class ShoalNode implements KeyValue {
  readonly peerId: string
  readonly cluster: string
  private readonly libp2p: ShoalLibp2p
  private readonly store: Store
  private readonly agent: MembershipAgent
  private readonly coordinator: Coordinator
  private readonly gossip: ClusterGossip
  private readonly discovery: Discovery
  private readonly servers: Array<{ start: () => Promise<void>, stop: () => Promise<void> }>
  private readonly timeoutMs: number
  private readonly options: NodeOptions
  private readonly latency = new LatencyMonitor()
  /** update(), counters and sets (src/kv-ops.ts), with this process's own CRDT actor. */
  private readonly ops: KvOps
  /** Requests, latencies and read repairs, as /stats and /metrics show them (src/metrics.ts). */
  readonly metrics: NodeMetrics = new NodeMetrics(() => this.status())
  private readonly hinted: HintedHandoff
  private readonly antiEntropy: AntiEntropy
  private readonly handoff: OwnershipHandoff
  private readonly reaper: TombstoneReaper
  private readonly syncBytes = { sent: 0, received: 0 }
  private readonly abort = new AbortController()
  private leaving: Promise<NodeStatus> | undefined
  private persisting: Promise<void> = Promise.resolve()
  private stopped = false
  private hintsDropped = 0
  private readonly memberView: MemberView = {
    own: () => this.agent.member(this.peerId)?.status,
    status: (member) => this.agent.member(member)?.status,
    digest: () => this.agent.digest()
  }

  private constructor (init: {
    libp2p: ShoalLibp2p, store: Store, options: NodeOptions, known: MemberRecord[], signer: RecordSigner
  }) {
    const { libp2p, store, options } = init
    this.libp2p = libp2p
    this.store = store
    this.peerId = libp2p.peerId.toString()
    this.cluster = options.cluster ?? DEFAULT_CLUSTER
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.options = options
    this.ops = new KvOps({ get: async (key, o) => await this.get(key, o), write: async (key, value, o) => await this.write(key, value, o) }, options.resolver)
    const n = options.n ?? DEFAULT_N
    const maxValueBytes = options.maxValueBytes ?? 1024 * 1024

    this.discovery = new Discovery(libp2p, { bootstrap: [...(options.bootstrap ?? [])] })
    this.gossip = new ClusterGossip(libp2p, this.cluster, (from, data) => {
      let heartbeat
      try {
        heartbeat = decodeHeartbeat(data)
      } catch {
        return
      }
      this.agent.receive(from, heartbeat)
    })
    this.agent = new MembershipAgent({
      self: {
        id: this.peerId,
        // A new life of the process: its record must win over the previous life's.
        incarnation: Date.now(),
        seq: 0,
        status: 'up',
        addrs: this.addrs,
        weight: options.weight ?? 1
      },
      env: realEnv,
      known: init.known.filter(r => r.id !== this.peerId),
      ring: { n, partitions: store.partitions },
      publish: (heartbeat) => { this.gossip.publish(encodeHeartbeat(heartbeat)).catch(() => {}) },
      pull: async (member) => await pullMembers(libp2p, member, this.timeoutMs),
      onChange: (ids) => { this.membersChanged(ids) },
      signer: init.signer
    })
    this.coordinator = new Coordinator({
      self: this.peerId,
      env: realEnv,
      replica: store,
      ring: () => this.agent.ring(),
      isUp: (member) => this.agent.isUp(member),
      observe: (member, ok) => { this.agent.observe(member, ok) },
      r: options.r,
      w: options.w,
      timeoutMs: this.timeoutMs,
      limits: { maxValueBytes },
      transport: kvTransport(libp2p, { signal: this.abort.signal }),
      sloppy: options.sloppyQuorum ?? true,
      readRepair: options.readRepair ?? true,
      onHint: (target, created) => { this.hinted.stored(target, created) },
      onLatency: (ms) => { this.latency.record(ms, Date.now()) },
      onRequest: (op, ms, error) => { this.metrics.request(op, ms, error) },
      onReadRepair: () => { this.metrics.readRepair() },
      metricsClock: () => performance.now()
    })
    const transport = syncTransport(libp2p, {
      signal: this.abort.signal,
      onBytes: (sent, received) => {
        this.syncBytes.sent += sent
        this.syncBytes.received += received
      }
    })
    const worker = {
      self: this.peerId,
      env: realEnv,
      replica: store,
      ring: () => this.agent.ring(),
      isUp: (member: string) => this.agent.isUp(member),
      call: async (member: string, request: SyncRequest, channel: SyncChannel) => await this.syncCall(transport, member, request, channel)
    }
    this.hinted = new HintedHandoff({ ...worker, intervalMs: options.hintIntervalMs || 1000 })
    this.antiEntropy = new AntiEntropy({
      ...worker,
      intervalMs: options.antiEntropyIntervalMs || 10_000,
      busy: () => this.latency.busy(Date.now()),
      active: () => this.latency.active(Date.now())
    })
    this.handoff = new OwnershipHandoff({ ...worker, intervalMs: options.handoffIntervalMs || 5000 })
    this.reaper = new TombstoneReaper({
      ...worker,
      members: () => this.agent.records().filter(r => r.status !== 'left').map(r => r.id),
      membersDigest: () => this.agent.digest(),
      graceMs: options.tombstoneGraceMs ?? 3_600_000,
      intervalMs: options.reaperIntervalMs || 30_000
    })
    this.servers = [
      new KvServer(libp2p, {
        handle: async (request) => {
          // A member that left holds nothing and runs no handoff: a copy sent by a member with an
          // older view must go elsewhere (the sender's sloppy quorum picks a fallback).
          if (request.type === 'write' && this.hasLeft()) return { type: 'error', name: 'UnavailableError', message: `${this.peerId} has left the cluster` }
          // Replica reads and writes served here are foreground work too: background work paces
          // itself while they come in (their latency is not a request's, so it is not recorded).
          this.latency.touch(Date.now())
          if (request.type === 'read' || request.type === 'write') this.metrics.replicaRequest(request.type)
          return await this.coordinator.handle(request)
        },
        timeoutMs: SERVE_DEADLINES * this.timeoutMs
      }),
      new MembersServer(libp2p, { records: () => this.agent.records() }),
      new SyncServer(libp2p, {
        handle: async (request, from) => await serveMember(store, request, from.toString(), this.memberView)
      }),
      new AdminServer(libp2p, {
        handle: async ({ op, member }) => {
          // An operator's leave returns at once; `shoal leave` follows it through status.
          if (op === 'leave') return this.startLeave()
          if (op === 'remove') return this.remove(member ?? '')
          return this.status()
        }
      })
    ]
  }

  /** Opens the data directory, starts libp2p and joins the cluster. */
  static async create (options: NodeOptions): Promise<ShoalNode> {
    validateOptions(options)
    await refuseNonDirectory(options.dataDir)
    // The store first: it refuses a directory holding data Shoal did not write before anything
    // (the identity file included) is written into it.
    const store = await Store.open(options.dataDir, { partitions: DEFAULT_PARTITIONS })
    let libp2p: ShoalLibp2p | undefined
    try {
      const identity = await loadOrCreateIdentity(options.dataDir)
      libp2p = await createShoalLibp2p({
        privateKey: identity.privateKey,
        listen: [...(options.listen ?? ['/ip4/0.0.0.0/tcp/0'])],
        bootstrap: [...(options.bootstrap ?? [])],
        mdns: options.mdns ?? false,
        cluster: options.cluster ?? DEFAULT_CLUSTER,
        ...(options.psk === undefined ? {} : { psk: options.psk }),
        ...(options.announce === undefined ? {} : { announce: [...options.announce] })
      })
      const saved = await store.getMeta(MEMBERS_META)
      const known = saved === undefined ? [] : loadMembers(saved)
      const node = new ShoalNode({ libp2p, store, options, known, signer: recordSigner(identity.privateKey) })
      await node.start()
      return node
    } catch (err) {
      await libp2p?.stop()
      await store.close()
      throw err
    }
  }

  /** The largest value this node accepts, in bytes (`maxValueBytes`). */
  get maxValueBytes (): number {
    return this.coordinator.limits.maxValueBytes
  }

  /** Counters, recent latencies, members and the ring: what the HTTP gateway serves at /stats. */
  async stats (): Promise<NodeStats> {
    return await this.metrics.stats(this.status(), this.agent.ring())
  }

  get addrs (): string[] {
    return this.libp2p.getMultiaddrs().map(a => a.toString())
  }

  async put (key: string | Uint8Array, value: string | Uint8Array, options: WriteOptions = {}): Promise<PutResult> {
    const bytes = toBytes(value)
    if (bytes instanceof Uint8Array) refuseReserved(bytes)
    return await this.write(key, bytes, options)
  }

  /**
   * Reads, resolves siblings, applies `fn` and writes back with the read's context; see
   * {@link KvOps.update}.
   *
   * @example
   * ```ts
   * const decode = (v?: Uint8Array) => v === undefined ? '' : new TextDecoder().decode(v)
   * await node.update('greeting', current => decode(current) + '!', { resolver: lastWriterWins })
   * ```
   */
  async update (key: string | Uint8Array, fn: UpdateFunction, options: UpdateOptions = {}): Promise<UpdateResult> {
    return await this.ops.update(key, fn, options)
  }

  /** The PN-counter at `key` (see {@link ShoalCounter}): `await node.counter('hits').increment()`. */
  counter (key: string | Uint8Array): ShoalCounter {
    return this.ops.counter(key)
  }

  /** The add-wins set at `key` (see {@link ShoalSet}): `await node.set('tags').add('red')`. */
  set (key: string | Uint8Array): ShoalSet {
    return this.ops.set(key)
  }

  /** A put or delete without the reserved-prefix check: the one path CRDT values take. */
  private async write (key: string | Uint8Array, value: Uint8Array | null, options: WriteOptions): Promise<PutResult> {
    const object = await this.coordinator.put(toBytes(key), value, writeOptions(options))
    return { context: encodeContext(object.vv), siblings: values(object).length }
  }

  async get (key: string | Uint8Array, options: ReadOptions = {}): Promise<GetResult | undefined> {
    checkResolver(options.resolver)
    return resolveRead(readResult(await this.coordinator.get(toBytes(key), options)), options.resolver)
  }

  async delete (key: string | Uint8Array, options: WriteOptions = {}): Promise<void> {
    await this.write(key, null, options)
  }

  /** The members that own a key (its preference list's primaries, best first), in this node's view. */
  owners (key: string | Uint8Array): string[] {
    const ring = this.agent.ring()
    return [...ring.owners(ring.partitionOf(toBytes(key)))]
  }

  /** This node's own copy of a key: no quorum, no repair. */
  async getLocal (key: string | Uint8Array): Promise<GetResult | undefined> {
    return readResult(await this.coordinator.readLocal(toBytes(key)))
  }

  status (): NodeStatus {
    const ring = this.agent.ring()
    const members = this.agent.records().map((record): MemberStatus => ({
      peerId: record.id,
      state: record.status === 'leaving' || record.status === 'left' ? record.status : liveState(this.agent.liveness(record.id)),
      addrs: record.addrs,
      partitions: ring.replicaCount(record.id)
    }))
    const own = this.agent.member(this.peerId)?.status
    const ae = this.antiEntropy.stats
    return {
      peerId: this.peerId,
      cluster: this.cluster,
      addrs: this.addrs,
      state: own === 'leaving' || own === 'left' ? own : 'up',
      members,
      hintsPending: this.hinted.stats.pending,
      hintsDelivered: this.hinted.stats.delivered,
      hintsDropped: this.hintsDropped,
      antiEntropy: {
        exchanges: ae.exchanges,
        failed: ae.failed,
        deferred: ae.deferred,
        keysRepaired: ae.keysRepaired,
        bytesSent: this.syncBytes.sent,
        bytesReceived: this.syncBytes.received,
        treesVerified: ae.treesVerified,
        treesRebuilt: ae.treesRebuilt,
        treesChecked: this.antiEntropy.treesChecked,
        intervalMs: ae.intervalMs
      },
      handoff: { ...this.handoff.stats },
      tombstones: { ...this.reaper.stats },
      replication: { n: ring.n, r: this.options.r ?? DEFAULT_QUORUM, w: this.options.w ?? DEFAULT_QUORUM }
    }
  }

  /**
   * Leaves the cluster: this member stops owning partitions at once (the others route to the new
   * owners), hands every partition and hint it holds to their owners, drops each only once they
   * acknowledged it, and then announces that it left. Resolves when it has: from then on it holds
   * nothing anyone else lacks, and can be stopped.
   * @throws UnavailableError if it is the last member: nobody could take its data
   */
  async leave (): Promise<NodeStatus> {
    this.startLeave()
    return await (this.leaving as Promise<NodeStatus>)
  }

  /** Starts leaving (once) and returns the status as it stands. */
  private startLeave (): NodeStatus {
    if (this.leaving === undefined) {
      const others = this.agent.records().filter(r => r.id !== this.peerId && r.status === 'up')
      if (others.length === 0) throw new UnavailableError('the last member cannot leave: nobody would hold its data')
      this.agent.announce({ status: 'leaving' })
      this.hinted.setLeaving()
      this.leaving = this.handOffEverything()
      this.leaving.catch(() => {})
    }
    return this.status()
  }

  private async handOffEverything (): Promise<NodeStatus> {
    while (!this.stopped) {
      const partitions = await this.handoff.runNow()
      await this.hinted.runNow()
      if (partitions === 0 && this.hinted.stats.pending === 0 && (await this.store.heldPartitions()).length === 0) {
        this.agent.announce({ status: 'left' })
        this.options.onLeft?.()
        return this.status()
      }
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    throw new UnavailableError('the node stopped before it finished leaving')
  }

  /**
   * One anti-entropy exchange with every live member sharing partitions with this one, now (for
   * operators, tests and benchmarks; the background runs them on its own).
   */
  async syncNow (): Promise<ExchangeResult> {
    return await this.antiEntropy.runNow()
  }

  /** Hand off hints and partitions others own, now; resolves with the partitions still to go. */
  async handoffNow (): Promise<number> {
    await this.hinted.runNow()
    return await this.handoff.runNow()
  }

  /** One tombstone purge round now. */
  async purgeNow (): Promise<void> {
    await this.reaper.runNow()
  }

  /**
   * An operator takes a member out of the ring (one that is gone for good): the others stop
   * counting it as an owner. If it comes back it must be started anew, as a new incarnation.
   */
  remove (member: string): NodeStatus {
    this.agent.remove(member)
    return this.status()
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const worker of [this.hinted, this.antiEntropy, this.handoff, this.reaper]) worker.stop()
    this.abort.abort(new UnavailableError('the node is stopping'))
    this.agent.stop()
    this.discovery.stop()
    this.gossip.stop()
    for (const server of this.servers) await server.stop()
    await this.libp2p.stop()
    await this.persisting
    await this.store.close()
  }

  private async start (): Promise<void> {
    // Before anything can write a hint: one that can never be delivered would stay pending forever.
    this.hintsDropped = (await this.store.verifyHints()).dropped
    for (const server of this.servers) await server.start()
    this.gossip.start()
    this.discovery.start()
    for (const record of this.agent.records()) if (record.id !== this.peerId) this.discovery.dialMember(record.id, record.addrs)
    this.agent.start()
    const intervals = this.options
    if (intervals.hintIntervalMs !== 0) this.hinted.start()
    if (intervals.antiEntropyIntervalMs !== 0) this.antiEntropy.start()
    if (intervals.handoffIntervalMs !== 0) this.handoff.start()
    if (intervals.reaperIntervalMs !== 0) this.reaper.start()
  }

  private hasLeft (): boolean {
    return this.agent.member(this.peerId)?.status === 'left'
  }

  /** A sync request with its deadline, feeding the failure detector like kv requests do. */
  private async syncCall (transport: SyncTransport, member: string, request: SyncRequest, channel: SyncChannel): Promise<SyncResponse> {
    let response: SyncResponse
    try {
      response = await transport(member, request, SYNC_DEADLINE_MS, channel)
    } catch (err) {
      this.agent.observe(member, false)
      throw err
    }
    this.agent.observe(member, true)
    if (response.type === 'error') throw remoteError(response.name, response.message)
    return response
  }

  /** New or changed members: dial them (a mesh, not a star) and keep the table for the next start. */
  private membersChanged (ids: readonly string[]): void {
    for (const id of ids) {
      const record = this.agent.member(id)
      if (record !== undefined && id !== this.peerId && record.status !== 'left') this.discovery.dialMember(id, record.addrs)
    }
    if (this.stopped) return
    const table = encodeMemberList(this.agent.records())
    this.persisting = this.persisting.then(async () => { await this.store.putMeta(MEMBERS_META, table) }).catch(() => {})
  }
}

/** Starts a node. See {@link ShoalNode}. */
export async function createNode (options: NodeOptions): Promise<ShoalNode> {
  return await ShoalNode.create(options)
}

/** A data directory path naming a file (or anything but a directory) is refused before it is touched. */
async function refuseNonDirectory (dataDir: string): Promise<void> {
  let info
  try {
    info = await stat(dataDir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new NotADataDirectoryError(dataDir, `${dataDir} is inside a file, not a directory`)
    throw err
  }
  if (!info.isDirectory()) throw new NotADataDirectoryError(dataDir, `${dataDir} is a file, not a data directory`)
}

function validateOptions (options: NodeOptions): void {
  if (typeof options?.dataDir !== 'string' || options.dataDir === '') throw new InvalidArgumentError('dataDir is required')
  const n = options.n ?? DEFAULT_N
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new InvalidArgumentError(`n must be an integer from 1 to 16, got ${n}`)
  for (const [name, value] of [['r', options.r], ['w', options.w]] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < 1 || value > n)) {
      throw new InvalidArgumentError(`${name} must be an integer from 1 to ${n} (N), got ${value}`)
    }
  }
  const weight = options.weight ?? 1
  if (!Number.isFinite(weight) || weight <= 0 || weight > 1000) throw new InvalidArgumentError(`weight must be a number in (0, 1000], got ${weight}`)
  const max = options.maxValueBytes ?? 1024 * 1024
  if (!Number.isInteger(max) || max < 1 || max > MAX_VALUE_LIMIT) throw new InvalidArgumentError(`maxValueBytes must be 1..${MAX_VALUE_LIMIT}, got ${max}`)
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  if (!Number.isFinite(timeout) || timeout <= 0) throw new InvalidArgumentError(`timeoutMs must be a positive number, got ${timeout}`)
  for (const name of ['hintIntervalMs', 'antiEntropyIntervalMs', 'handoffIntervalMs', 'tombstoneGraceMs', 'reaperIntervalMs'] as const) {
    const value = options[name]
    if (value !== undefined && (!Number.isFinite(value) || value < 0 || value > 2 ** 31 - 1)) {
      throw new InvalidArgumentError(`${name} must be a number of ms from 0 to ${2 ** 31 - 1}, got ${value}`)
    }
  }
  const cluster = options.cluster ?? DEFAULT_CLUSTER
  if (typeof cluster !== 'string' || !/^[\w.-]{1,64}$/.test(cluster)) throw new InvalidArgumentError(`cluster must be 1 to 64 letters, digits, '.', '_' or '-', got ${JSON.stringify(cluster)}`)
  if (options.psk !== undefined) parsePsk(options.psk)
  checkResolver(options.resolver)
  checkAddresses({ listen: options.listen, bootstrap: options.bootstrap, announce: options.announce })
}

function writeOptions (options: WriteOptions): { context?: VersionVector, w?: number } {
  return {
    ...(options.context === undefined ? {} : { context: decodeContext(options.context) }),
    ...(options.w === undefined ? {} : { w: options.w })
  }
}

/**
 * A read as callers see it: live siblings and a context, or undefined when absent or deleted.
 * Siblings that are all states of one CRDT (counter, set) are joined into one value: writing back
 * with the context replaces them all, and the join holds every one.
 */
export function readResult (object: DvvSet | undefined): GetResult | undefined {
  if (object === undefined || isDeleted(object)) return undefined
  const live = object.siblings.filter(s => s.value !== null)
  const context = encodeContext(object.vv)
  const joined = live.length > 1 ? joinValues(values(object)) : undefined
  if (joined !== undefined) return { siblings: [joined], context, timestamps: [Math.max(...live.map(s => s.timestamp))] }
  return { siblings: values(object), context, timestamps: live.map(s => s.timestamp) }
}

function liveState (liveness: 'alive' | 'suspect' | 'down'): MemberState {
  return liveness === 'alive' ? 'up' : liveness
}

function loadMembers (bytes: Uint8Array): MemberRecord[] {
  try {
    return decodeMemberList(bytes)
  } catch (err) {
    // A damaged saved table only costs the shortcut: the members are learnt again by gossip.
    if (err instanceof MalformedDataError) return []
    throw err
  }
}
