import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { multiaddrPeerId, parseBootstrapAddress } from './libp2p.ts'
import type { ShoalLibp2p } from './libp2p.ts'
import type { Logger, PeerId, PeerInfo } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** First bootstrap re-dial delay; it doubles on each failed round. */
export const REDIAL_MS = 1_000
/** Longest wait between two bootstrap rounds, and between two dials of an unreachable member. */
export const MAX_REDIAL_MS = 30_000
/** One dial attempt, all of a peer's addresses included, counted from when it leaves the queue. */
export const DIAL_TIMEOUT_MS = 5_000
/**
 * Dials in flight at once. A noise handshake costs milliseconds of CPU on each side: a node
 * that learns a whole cluster at once and dials every member together finishes none of them
 * before the deadline when many members share a host.
 */
export const MAX_PARALLEL_DIALS = 8

export interface DiscoveryOptions {
  /** Bootstrap multiaddrs, each ending in `/p2p/<peerId>`; addresses of this node are skipped. */
  bootstrap: string[]
  /** First re-dial delay (ms) for bootstrap peers and unreachable members. Default 1 s. */
  redialMs?: number
  /** Backoff cap (ms). Default 30 s. */
  maxRedialMs?: number
  /** Deadline (ms) of one dial. Default 5 s. */
  dialTimeoutMs?: number
  /** Dials in flight at once. Default 8. */
  maxParallelDials?: number
}

interface DialJob {
  id: PeerId
  addrs: Multiaddr[]
  resolve: (connected: boolean) => void
}

interface Backoff {
  failures: number
  notBefore: number
}

interface Deferred {
  timer: ReturnType<typeof setTimeout>
  addrs: Multiaddr[]
}

/**
 * Keeps a node connected to its cluster: dials peers mDNS finds (mDNS does not dial by itself),
 * re-dials bootstrap addresses with backoff while none of them is connected (bootstrap dials once),
 * and dials members' addresses learnt from heartbeats so the cluster is a mesh, not a star.
 *
 * Two members usually learn of each other in the same heartbeat round. So that they do not
 * both pay for a handshake, only the one with the smaller peer id dials at once; the other
 * dials only if they are still apart one dial timeout later (one side may be unreachable).
 *
 * @example
 * ```ts
 * const discovery = new Discovery(libp2p, { bootstrap: ['/ip4/10.0.0.1/tcp/4001/p2p/12D3Koo...'] })
 * discovery.start()
 * // on each heartbeat:
 * discovery.dialMember(record.id, record.addrs)
 * ```
 */
export class Discovery {
  private readonly libp2p: ShoalLibp2p
  private readonly log: Logger
  private readonly bootstrap: Array<{ id: PeerId, addrs: Multiaddr[] }>
  private readonly redialMs: number
  private readonly maxRedialMs: number
  private readonly dialTimeoutMs: number
  private readonly maxParallelDials: number
  /** Dials queued or in flight, by peer id: one at a time per peer. */
  private readonly dialing = new Map<string, Promise<boolean>>()
  private readonly queue: DialJob[] = []
  private active = 0
  /** Members whose last dials failed, by peer id, and when they may be tried again. */
  private readonly backoff = new Map<string, Backoff>()
  /** Members this node leaves to dial it first, by peer id. */
  private readonly deferred = new Map<string, Deferred>()
  private running = false
  private controller = new AbortController()
  private bootstrapTimer: ReturnType<typeof setTimeout> | undefined
  private bootstrapRound = 0
  private bootstrapDialing = false

  constructor (libp2p: ShoalLibp2p, options: DiscoveryOptions) {
    this.libp2p = libp2p
    this.log = libp2p.logger.forComponent('shoal:discovery')
    this.redialMs = options.redialMs ?? REDIAL_MS
    this.maxRedialMs = Math.max(this.redialMs, options.maxRedialMs ?? MAX_REDIAL_MS)
    this.dialTimeoutMs = options.dialTimeoutMs ?? DIAL_TIMEOUT_MS
    this.maxParallelDials = Math.max(1, options.maxParallelDials ?? MAX_PARALLEL_DIALS)
    this.bootstrap = groupByPeer(options.bootstrap.map(parseBootstrapAddress))
      .filter(target => !target.id.equals(libp2p.peerId))
  }

  /** Start listening to mDNS and dialing bootstrap peers. Safe to call twice. */
  start (): void {
    if (this.running) return
    this.running = true
    this.controller = new AbortController()
    this.libp2p.addEventListener('peer:connect', this.onConnect)
    this.libp2p.addEventListener('peer:disconnect', this.onDisconnect)
    this.libp2p.services.mdns?.addEventListener('peer', this.onMdnsPeer)
    if (this.bootstrap.length > 0) this.scheduleBootstrap(0)
  }

  /** Stop: cancels every timer, drops queued dials and aborts those in flight. Safe to call twice. */
  stop (): void {
    if (!this.running) return
    this.running = false
    this.libp2p.removeEventListener('peer:connect', this.onConnect)
    this.libp2p.removeEventListener('peer:disconnect', this.onDisconnect)
    this.libp2p.services.mdns?.removeEventListener('peer', this.onMdnsPeer)
    clearTimeout(this.bootstrapTimer)
    this.bootstrapTimer = undefined
    this.bootstrapRound = 0
    for (const { timer } of this.deferred.values()) clearTimeout(timer)
    this.deferred.clear()
    for (const job of this.queue.splice(0)) job.resolve(false)
    this.controller.abort()
    this.backoff.clear()
  }

  /**
   * Dial a member if not already connected (deduplicated, errors swallowed and logged).
   * Addresses without `/p2p/` get the member's; addresses naming another peer are ignored.
   * A member that could not be reached is tried again only after a backoff, so a heartbeat a
   * second from an unreachable member does not mean a dial a second.
   */
  dialMember (peerId: string, addrs: readonly string[]): void {
    if (!this.running) return
    let id: PeerId
    try {
      id = peerIdFromString(peerId)
    } catch (err) {
      this.log.error('member id %s is not a peer id - %e', peerId, err)
      return
    }
    const mas: Multiaddr[] = []
    for (const addr of addrs) {
      try {
        mas.push(multiaddr(addr))
      } catch {
        this.log.error('member %p announced a bad address %s', id, addr)
      }
    }
    const targets = withPeerId(id, mas)
    if (targets.length === 0 || id.equals(this.libp2p.peerId) || this.connected(id)) return

    const key = id.toString()
    if (this.libp2p.peerId.toString() < key) {
      this.dialPeer(id, targets)
      return
    }
    const waiting = this.deferred.get(key)
    if (waiting !== undefined) {
      waiting.addrs = targets
      return
    }
    const timer = setTimeout(() => {
      const deferred = this.deferred.get(key)
      this.deferred.delete(key)
      if (deferred !== undefined && this.running) this.dialPeer(id, deferred.addrs)
    }, this.dialTimeoutMs)
    this.deferred.set(key, { timer, addrs: targets })
  }

  /** Whether at least one open connection to `id` exists. */
  private connected (id: PeerId): boolean {
    return this.libp2p.getConnections(id).some(conn => conn.status === 'open')
  }

  /** Dial `id` now unless connected, already dialing, or backing off after failures. */
  private dialPeer (id: PeerId, addrs: Multiaddr[]): void {
    const key = id.toString()
    if (id.equals(this.libp2p.peerId) || this.connected(id) || this.dialing.has(key)) return
    const waiting = this.backoff.get(key)
    if (waiting !== undefined && Date.now() < waiting.notBefore) return
    if (addrs.length === 0) return
    void this.dial(id, addrs).then(ok => {
      if (ok || !this.running) {
        this.backoff.delete(key)
        return
      }
      const failures = (this.backoff.get(key)?.failures ?? 0) + 1
      this.backoff.set(key, { failures, notBefore: Date.now() + this.delay(failures - 1) })
    })
  }

  /** Queue a dial of one peer at `addrs`; resolves true when connected. Never rejects. */
  private async dial (id: PeerId, addrs: Multiaddr[]): Promise<boolean> {
    const key = id.toString()
    const pending = this.dialing.get(key)
    if (pending !== undefined) return await pending
    const attempt = new Promise<boolean>(resolve => { this.queue.push({ id, addrs, resolve }) })
      .finally(() => this.dialing.delete(key))
    this.dialing.set(key, attempt)
    this.drain()
    return await attempt
  }

  private drain (): void {
    while (this.active < this.maxParallelDials) {
      const job = this.queue.shift()
      if (job === undefined) return
      // The peer may have dialed us while the job waited.
      if (!this.running || this.connected(job.id)) {
        job.resolve(this.running)
        continue
      }
      this.active++
      const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(this.dialTimeoutMs)])
      this.libp2p.dial(job.addrs, { signal }).then(
        () => {
          this.log.trace('connected to %p', job.id)
          return true
        },
        (err: unknown) => {
          this.log('could not dial %p - %e', job.id, err)
          return false
        }
      ).then(ok => {
        this.active--
        job.resolve(ok)
        this.drain()
      }, () => {})
    }
  }

  private scheduleBootstrap (delayMs: number): void {
    clearTimeout(this.bootstrapTimer)
    this.bootstrapTimer = setTimeout(() => {
      this.bootstrapTimer = undefined
      void this.redialBootstrap()
    }, delayMs)
  }

  /** One round: dial every bootstrap peer unless one is connected; back off while none answers. */
  private async redialBootstrap (): Promise<void> {
    if (!this.running || this.bootstrapDialing) return
    if (this.bootstrap.some(target => this.connected(target.id))) {
      this.bootstrapRound = 0
      return
    }
    this.bootstrapDialing = true
    try {
      this.log('dialing %d bootstrap peers, round %d', this.bootstrap.length, this.bootstrapRound)
      await Promise.all(this.bootstrap.map(async target => await this.dial(target.id, target.addrs)))
    } finally {
      this.bootstrapDialing = false
    }
    if (!this.running) return
    if (this.bootstrap.some(target => this.connected(target.id))) {
      this.bootstrapRound = 0
      return
    }
    this.scheduleBootstrap(this.delay(this.bootstrapRound++))
  }

  /** Exponential backoff with ±20 % jitter, so members that lost the same peer do not dial in step. */
  private delay (round: number): number {
    const base = Math.min(this.maxRedialMs, this.redialMs * 2 ** Math.min(round, 30))
    return Math.round(base * (0.8 + 0.4 * Math.random()))
  }

  private readonly onConnect = (evt: CustomEvent<PeerId>): void => {
    const key = evt.detail.toString()
    this.backoff.delete(key)
    const deferred = this.deferred.get(key)
    if (deferred !== undefined) {
      clearTimeout(deferred.timer)
      this.deferred.delete(key)
    }
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const lost = evt.detail
    if (!this.bootstrap.some(target => target.id.equals(lost))) return
    if (this.bootstrapTimer !== undefined || this.bootstrapDialing) return
    // The last connection to a bootstrap peer closed: start over from the short delay.
    this.bootstrapRound = 0
    this.scheduleBootstrap(this.redialMs)
  }

  private readonly onMdnsPeer = (evt: CustomEvent<PeerInfo>): void => {
    // Not tie-broken: an mDNS answer reaches one side first, often long before the other.
    this.log.trace('mDNS found %p', evt.detail.id)
    this.dialPeer(evt.detail.id, withPeerId(evt.detail.id, evt.detail.multiaddrs))
  }
}

/** Bootstrap addresses grouped by the peer they name, in first-seen order. */
function groupByPeer (addrs: readonly Multiaddr[]): Array<{ id: PeerId, addrs: Multiaddr[] }> {
  const byPeer = new Map<string, { id: PeerId, addrs: Multiaddr[] }>()
  for (const ma of addrs) {
    const id = multiaddrPeerId(ma)
    if (id === undefined) continue
    const target = byPeer.get(id.toString())
    if (target === undefined) byPeer.set(id.toString(), { id, addrs: [ma] })
    else target.addrs.push(ma)
  }
  return [...byPeer.values()]
}

/** `addrs` that name `id`, with `/p2p/<id>` added where missing; those naming another peer dropped. */
function withPeerId (id: PeerId, addrs: readonly Multiaddr[]): Multiaddr[] {
  const out: Multiaddr[] = []
  const want = id.toString()
  for (const ma of addrs) {
    const named = ma.getComponents().findLast(c => c.name === 'p2p')?.value
    if (named === undefined) out.push(ma.encapsulate(`/p2p/${want}`))
    else if (named === want) out.push(ma)
  }
  return out
}
