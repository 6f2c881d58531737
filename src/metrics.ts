/**
 * What a node counts about itself: requests by operation and outcome, their latencies (a sliding
 * window of percentiles, and a cumulative histogram), read repairs; and the two views of them the
 * HTTP gateway serves: a JSON snapshot ({@link NodeStats}, `GET /stats`) and Prometheus text
 * (`GET /metrics`).
 *
 * Each node has its own prom-client Registry, never the global one: several nodes may share a
 * process (tests, `shoal dev`), and each must report only itself.
 *
 * @example
 * ```ts
 * const metrics = new NodeMetrics(() => node.status())
 * metrics.request('put', 3.2)                    // one put, 3.2 ms, succeeded
 * await metrics.latency()                        // { get: { p50, ... }, put: { p50: 3.2, ... }, ... }
 * await metrics.text()                           // '# HELP shoal_requests_total ...'
 * ```
 */
import { Counter, Gauge, Histogram, Registry, Summary, collectDefaultMetrics } from 'prom-client'
import type { Ring } from './core/ring.ts'
import type { MemberState, NodeStatus } from './node.ts'

export type RequestOp = 'get' | 'put' | 'delete'
export const REQUEST_OPS: readonly RequestOp[] = ['get', 'put', 'delete']

/** Percentiles of one operation's latency over the recent window, in ms (all 0 when none ran in it). */
export interface LatencyPercentiles {
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly p999: number
}

export interface RequestCounts {
  readonly ok: number
  readonly failed: number
  readonly rejected: number
}

/** Errors that are the caller's doing: counted apart, so `failed` means the cluster's trouble. */
const REJECTIONS = new Set(['InvalidArgumentError', 'InvalidContextError', 'TooManySiblingsError'])

/** The ring as the status page draws it: member ids once, then an index per partition and replica. */
export interface RingSnapshot {
  readonly partitions: number
  readonly n: number
  /** The ring's members, sorted. */
  readonly members: readonly string[]
  /**
   * owners[k][p] is the index in `members` of partition p's k-th owner (k = 0: its primary),
   * -1 when the ring has fewer than k + 1 members.
   */
  readonly owners: ReadonlyArray<readonly number[]>
}

/** `GET /stats`: one node's counters and view of the cluster. JSON fields may be added, never removed. */
export interface NodeStats {
  readonly peerId: string
  readonly cluster: string
  readonly state: MemberState
  readonly uptimeMs: number
  /**
   * Requests coordinated (or forwarded) by this node since start, by operation: succeeded, failed
   * (quorum not met, timeouts: the cluster's trouble) and rejected (bad input: the caller's).
   */
  readonly requests: Record<RequestOp, RequestCounts>
  /**
   * Replica reads and writes this node served for coordinators (other members, client peers that
   * route themselves, read repair): its load even when it coordinates nothing.
   */
  readonly replicaRequests: { readonly read: number, readonly write: number }
  /** Latency percentiles by operation over the last `latencyWindowSeconds`. */
  readonly latencyMs: Record<RequestOp, LatencyPercentiles>
  readonly latencyWindowSeconds: number
  /** Stale replicas this node's reads wrote the merged object back to. */
  readonly readRepairs: number
  readonly hints: { readonly pending: number, readonly delivered: number, readonly dropped: number }
  readonly antiEntropy: NodeStatus['antiEntropy']
  readonly handoff: NodeStatus['handoff']
  readonly tombstones: NodeStatus['tombstones']
  readonly members: ReadonlyArray<{ readonly peerId: string, readonly state: MemberState, readonly partitions: number, readonly addrs: readonly string[] }>
  readonly ring: RingSnapshot
  /** Replicas per key and the default quorums. */
  readonly replication: NodeStatus['replication']
}

/** The window of the percentiles in /stats: recent enough for a live graph, long enough for a p99. */
export const LATENCY_WINDOW_SECONDS = 10
const WINDOW_BUCKETS = 5
/** Request duration buckets in seconds: 0.25 ms to 30 s, about ×2.5 apart. */
const DURATION_BUCKETS = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const MEMBER_STATES: readonly MemberState[] = ['up', 'suspect', 'down', 'leaving', 'left']

/** A node's counters and its Prometheus registry. */
export class NodeMetrics {
  readonly registry = new Registry()
  private readonly started = Date.now()
  private readonly counts: Record<RequestOp, { ok: number, failed: number, rejected: number }> = {
    get: { ok: 0, failed: 0, rejected: 0 }, put: { ok: 0, failed: 0, rejected: 0 }, delete: { ok: 0, failed: 0, rejected: 0 }
  }

  private repairs = 0
  private readonly replicaCounts = { read: 0, write: 0 }
  private readonly replicaCounter: Counter<'type'>
  private processMetrics = false
  private readonly requests: Counter<'op' | 'outcome'>
  private readonly duration: Histogram<'op'>
  private readonly recent: Summary<'op'>
  private readonly readRepairCounter: Counter
  private readonly ringCache = new WeakMap<Ring, RingSnapshot>()

  /** @param source the node's status, read at each scrape for the gauges (members, hints, anti-entropy). */
  constructor (source: () => NodeStatus) {
    const registers = [this.registry]
    // One scrape reads a dozen figures: one status for all of them.
    let cached: { at: number, status: NodeStatus } | undefined
    const status = (): NodeStatus => {
      const now = Date.now()
      if (cached === undefined || now - cached.at > 100) cached = { at: now, status: source() }
      return cached.status
    }
    this.requests = new Counter({ name: 'shoal_requests_total', help: 'Requests coordinated or forwarded by this node, by operation and outcome.', labelNames: ['op', 'outcome'], registers })
    this.duration = new Histogram({ name: 'shoal_request_duration_seconds', help: 'Time to coordinate a request, by operation.', labelNames: ['op'], buckets: DURATION_BUCKETS, registers })
    // Only for /stats' percentiles: a summary's quantiles cannot be aggregated across nodes, the histogram's buckets can.
    this.recent = new Summary({ name: 'shoal_request_latency_recent_seconds', help: 'unexported', labelNames: ['op'], percentiles: [0.5, 0.95, 0.99, 0.999], maxAgeSeconds: LATENCY_WINDOW_SECONDS, ageBuckets: WINDOW_BUCKETS, registers: [] })
    this.replicaCounter = new Counter({ name: 'shoal_replica_requests_total', help: 'Replica reads and writes this node served for coordinators.', labelNames: ['type'], registers })
    this.replicaCounter.inc({ type: 'read' }, 0)
    this.replicaCounter.inc({ type: 'write' }, 0)
    this.readRepairCounter = new Counter({ name: 'shoal_read_repairs_total', help: 'Stale replicas a read by this node wrote the merged object back to.', registers })
    for (const op of REQUEST_OPS) {
      for (const outcome of ['ok', 'failed', 'rejected']) this.requests.inc({ op, outcome }, 0)
    }
    this.readRepairCounter.inc(0)

    // Figures the node's workers keep: read from its status at each scrape.
    const fromStatus = (name: string, help: string, kind: 'counter' | 'gauge', value: (s: NodeStatus) => number): void => {
      // A counter can only grow: at each scrape it is reset to the figure the node keeps.
      if (kind === 'counter') {
        new Counter({ name, help, registers, collect (this: Counter) { this.reset(); this.inc(value(status())) } })
      } else {
        new Gauge({ name, help, registers, collect (this: Gauge) { this.set(value(status())) } })
      }
    }
    fromStatus('shoal_hints_pending', 'Hints held here for members that were down.', 'gauge', s => s.hintsPending)
    fromStatus('shoal_hints_delivered_total', 'Hints handed to their members since start.', 'counter', s => s.hintsDelivered)
    fromStatus('shoal_anti_entropy_exchanges_total', 'Anti-entropy exchanges run to the end.', 'counter', s => s.antiEntropy.exchanges)
    fromStatus('shoal_anti_entropy_failed_total', 'Anti-entropy exchanges that failed.', 'counter', s => s.antiEntropy.failed)
    fromStatus('shoal_anti_entropy_keys_repaired_total', 'Keys anti-entropy repaired, here or on the other replica.', 'counter', s => s.antiEntropy.keysRepaired)
    fromStatus('shoal_anti_entropy_trees_verified_total', 'Partition trees checked against storage since start.', 'counter', s => s.antiEntropy.treesVerified)
    fromStatus('shoal_handoff_partitions_pending', 'Partitions held here that others now own, still to hand off.', 'gauge', s => s.handoff.pending)
    fromStatus('shoal_handoff_keys_sent_total', 'Keys handed off to their new owners.', 'counter', s => s.handoff.keysSent)
    fromStatus('shoal_tombstones_purged_total', 'Tombstones purged once every replica held them.', 'counter', s => s.tombstones.purged)
    fromStatus('shoal_partitions_owned', 'Partitions this node is a primary of.', 'gauge', s => s.members.find(m => m.peerId === s.peerId)?.partitions ?? 0)
    new Gauge({
      name: 'shoal_members', help: 'Members by state, as this node sees them.', labelNames: ['state'], registers,
      collect (this: Gauge<'state'>) {
        const members = status().members
        for (const state of MEMBER_STATES) this.set({ state }, members.filter(m => m.state === state).length)
      }
    })
  }

  /** Called once for every get, put and delete this node coordinated or forwarded, with its error if it failed. */
  request (op: RequestOp, ms: number, error?: Error): void {
    const outcome = error === undefined ? 'ok' : REJECTIONS.has(error.name) ? 'rejected' : 'failed'
    this.counts[op][outcome]++
    this.requests.inc({ op, outcome })
    // A refused argument costs nothing: its latency would only pull the percentiles down.
    if (outcome === 'rejected' || !Number.isFinite(ms) || ms < 0) return
    this.duration.observe({ op }, ms / 1000)
    this.recent.observe({ op }, ms)
  }

  /** Called for each replica read or write this node serves. */
  replicaRequest (type: 'read' | 'write'): void {
    this.replicaCounts[type]++
    this.replicaCounter.inc({ type })
  }

  /** Called for each stale replica a read wrote back to. */
  readRepair (replicas = 1): void {
    this.repairs += replicas
    this.readRepairCounter.inc(replicas)
  }

  /**
   * Adds Node.js process metrics (CPU, memory, event-loop lag, GC) to this registry. For a node
   * that has its process to itself (`shoal start`): they describe the process, not the node, and
   * their observers are never stopped.
   */
  collectProcessMetrics (): void {
    if (this.processMetrics) return
    this.processMetrics = true
    // Their usual names (process_*, nodejs_*), which Node.js dashboards expect.
    collectDefaultMetrics({ register: this.registry })
  }

  /** Latency percentiles by operation over the recent window. */
  async latency (): Promise<Record<RequestOp, LatencyPercentiles>> {
    const { values } = await this.recent.get()
    const out = {} as Record<RequestOp, { p50: number, p95: number, p99: number, p999: number }>
    for (const op of REQUEST_OPS) out[op] = { p50: 0, p95: 0, p99: 0, p999: 0 }
    for (const v of values) {
      const labels = v.labels as { op?: string, quantile?: number }
      const row = out[labels.op as RequestOp]
      if (row === undefined) continue
      // An empty window's quantiles are undefined: 0, which the status page shows as idle.
      const value = Number.isFinite(v.value) ? round(v.value) : 0
      if (labels.quantile === 0.5) row.p50 = value
      else if (labels.quantile === 0.95) row.p95 = value
      else if (labels.quantile === 0.99) row.p99 = value
      else if (labels.quantile === 0.999) row.p999 = value
    }
    return out
  }

  /** Prometheus text exposition of this node's registry. */
  async text (): Promise<string> {
    return await this.registry.metrics()
  }

  get contentType (): string {
    return this.registry.contentType
  }

  /** The JSON of `GET /stats`, from the node's status and ring. */
  async stats (status: NodeStatus, ring: Ring): Promise<NodeStats> {
    return {
      peerId: status.peerId,
      cluster: status.cluster,
      state: status.state,
      uptimeMs: Date.now() - this.started,
      requests: {
        get: { ...this.counts.get }, put: { ...this.counts.put }, delete: { ...this.counts.delete }
      },
      replicaRequests: { ...this.replicaCounts },
      latencyMs: await this.latency(),
      latencyWindowSeconds: LATENCY_WINDOW_SECONDS,
      readRepairs: this.repairs,
      hints: { pending: status.hintsPending, delivered: status.hintsDelivered, dropped: status.hintsDropped },
      antiEntropy: status.antiEntropy,
      handoff: status.handoff,
      tombstones: status.tombstones,
      members: status.members.map(m => ({ peerId: m.peerId, state: m.state, partitions: m.partitions, addrs: m.addrs })),
      ring: this.ringSnapshot(ring),
      replication: status.replication
    }
  }

  /** Rings are immutable and replaced on membership changes: each is encoded once. */
  private ringSnapshot (ring: Ring): RingSnapshot {
    const cached = this.ringCache.get(ring)
    if (cached !== undefined) return cached
    const owners: number[][] = Array.from({ length: ring.n }, () => new Array<number>(ring.partitions).fill(-1))
    const members = new Set<string>()
    for (let p = 0; p < ring.partitions; p++) for (const id of ring.owners(p)) members.add(id)
    const sorted = [...members].sort()
    const index = new Map(sorted.map((id, i) => [id, i]))
    for (let p = 0; p < ring.partitions; p++) {
      ring.owners(p).forEach((id, k) => {
        const row = owners[k]
        if (row !== undefined) row[p] = index.get(id) ?? -1
      })
    }
    const snapshot = { partitions: ring.partitions, n: ring.n, members: sorted, owners }
    this.ringCache.set(ring, snapshot)
    return snapshot
  }
}

/** Milliseconds to the microsecond: enough for a latency, shorter JSON. */
function round (ms: number): number {
  return Math.round(ms * 1000) / 1000
}
