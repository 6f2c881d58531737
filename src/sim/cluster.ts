import { bytesEqual, bytesId, fromBytesId } from '../core/bytes.ts'
import { EMPTY, decodeObject, encodeObject, equals, merge, objectDigest, update } from '../core/causality.ts'
import type { DvvSet } from '../core/causality.ts'
import { Coordinator } from '../core/coordinator/coordinator.ts'
import type { KvRequest, KvResponse } from '../core/coordinator/messages.ts'
import type { Env, Timer } from '../core/env.ts'
import { ShoalError, remoteError } from '../core/errors.ts'
import { keyHash, topBits } from '../core/hash.ts'
import { MembershipAgent } from '../core/membership-agent.ts'
import type { Heartbeat } from '../core/membership-agent.ts'
import type { MemberRecord, MemberStatus } from '../core/membership.ts'
import { MerkleTree, segmentOf } from '../core/merkle.ts'
import type { Ring } from '../core/ring.ts'
import { AntiEntropy } from '../core/sync/anti-entropy.ts'
import { OwnershipHandoff } from '../core/sync/handoff.ts'
import { HintedHandoff } from '../core/sync/hints.ts'
import { LatencyMonitor } from '../core/sync/load.ts'
import type { KeyDigest, KeyObject, SyncRequest, SyncResponse } from '../core/sync/messages.ts'
import { TombstoneReaper } from '../core/sync/reaper.ts'
import type { HeldHint, SyncReplica } from '../core/sync/replica.ts'
import { serveMember } from '../core/sync/serve.ts'
import type { MemberCall, WorkerInit } from '../core/sync/worker.ts'
import type { SimNetwork } from './network.ts'
import type { SimRandom } from './random.ts'
import type { Scheduler } from './scheduler.ts'

/**
 * What survives a crash: the simulated disk, in memory. Objects are kept by partition (the
 * ring's partition function), each partition with a Merkle tree that every object change updates
 * in the same step, and hints by (target, key), as the LevelDB store keeps them. Every method's
 * change is atomic: nothing else runs between its read and its write.
 */
export class MemoryStorage implements SyncReplica {
  readonly actorId: string
  readonly partitions: number
  private readonly bits: number
  /** partition -> bytesId(key) -> object, with its digest (what its Merkle leaf is made of) */
  private readonly data = new Map<number, Map<string, Stored>>()
  /** bytesId(key) -> partition: the key hash, once per key. */
  private readonly partitionCache = new Map<string, number>()
  /** Only partitions holding objects have a tree; the others' is all zeros. */
  private readonly trees = new Map<number, MerkleTree>()
  /** A copy of a partition's tree as of its last change, handed to every reader until the next. */
  private readonly snapshots = new Map<number, MerkleTree>()
  /** target -> bytesId(key) -> object */
  private readonly held = new Map<string, Map<string, DvvSet>>()
  /** Each partition's actor epoch, bumped by removing a copy that carries this replica's dots (as the store does). */
  private readonly epochs = new Map<number, number>()
  /** The member table as last seen, for the next start (a node keeps it in its meta records). */
  members: readonly MemberRecord[] | undefined

  constructor (actorId: string, partitions: number) {
    this.actorId = actorId
    this.partitions = partitions
    this.bits = Math.log2(partitions)
  }

  partitionOf (key: Uint8Array): number {
    const id = bytesId(key)
    let partition = this.partitionCache.get(id)
    if (partition === undefined) this.partitionCache.set(id, partition = topBits(keyHash(key), this.bits))
    return partition
  }

  /** The stored object, read directly (for the checker). */
  object (key: Uint8Array): DvvSet | undefined {
    return this.stored(key)?.object
  }

  /** Every object held, partition by partition (for the checker). */
  * objects (): Iterable<KeyObject> {
    for (const p of [...this.data.keys()].sort((a, b) => a - b)) {
      for (const [id, { object }] of sortedEntries(this.data.get(p))) yield { key: fromBytesId(id), object }
    }
  }

  /** Every hint held (for the checker). */
  * allHints (): Iterable<HeldHint> {
    for (const target of [...this.held.keys()].sort()) {
      for (const [id, object] of sortedEntries(this.held.get(target) as Map<string, DvvSet>)) yield { target, key: fromBytesId(id), object }
    }
  }

  /** Whether the partition's tree is the tree of its objects (for the checker; changes nothing). */
  treeMatches (partition: number): boolean {
    const tree = this.treeOf(partition)
    const snapshot = this.snapshots.get(partition)
    return tree.equals(this.rebuilt(partition)) && (snapshot === undefined || snapshot.equals(tree)) && EMPTY_TREE.equals(new MerkleTree())
  }

  async get (key: Uint8Array): Promise<DvvSet | undefined> {
    return this.object(key)
  }

  /** The actor new dots of this key are minted with: see Store.modify. */
  actorFor (key: Uint8Array): string {
    const epoch = this.epochs.get(this.partitionOf(key)) ?? 0
    return epoch === 0 ? this.actorId : `${this.actorId}.${epoch}`
  }

  async modify (key: Uint8Array, fn: (current: DvvSet | undefined, actor: string) => DvvSet | undefined): Promise<DvvSet | undefined> {
    const current = this.stored(key)
    const next = fn(current?.object, this.actorFor(key))
    if (next === undefined || (current !== undefined && equals(current.object, next))) return current?.object
    this.write(key, current, next)
    return next
  }

  async merge (key: Uint8Array, incoming: DvvSet): Promise<{ object: DvvSet, changed: boolean }> {
    const current = this.stored(key)
    const next = current === undefined ? incoming : merge(current.object, incoming)
    const changed = current === undefined ? !equals(next, EMPTY) : !equals(current.object, next)
    if (changed) this.write(key, current, next)
    return { object: changed ? next : (current?.object ?? EMPTY), changed }
  }

  async putHint (target: string, key: Uint8Array, object: DvvSet): Promise<boolean> {
    let hints = this.held.get(target)
    if (hints === undefined) this.held.set(target, hints = new Map())
    const id = bytesId(key)
    const current = hints.get(id)
    if (current === undefined) {
      hints.set(id, object)
      return true
    }
    const next = merge(current, object)
    if (!equals(current, next)) hints.set(id, next)
    return false
  }

  async tree (partition: number): Promise<MerkleTree> {
    const tree = this.trees.get(partition)
    // Readers only read what they are given (treeMatches checks that the shared copies stay
    // true): one copy per change, and one empty tree for the many empty partitions.
    if (tree === undefined) return EMPTY_TREE
    let snapshot = this.snapshots.get(partition)
    if (snapshot === undefined) this.snapshots.set(partition, snapshot = MerkleTree.fromSegments(tree.segmentHashes()))
    return snapshot
  }

  async verifyTree (partition: number): Promise<boolean> {
    if (!this.data.has(partition) && !this.trees.has(partition)) return false
    const fresh = this.rebuilt(partition)
    if (this.treeOf(partition).equals(fresh)) return false
    if (this.data.has(partition)) this.trees.set(partition, fresh)
    else this.trees.delete(partition)
    this.snapshots.delete(partition)
    return true
  }

  async segmentKeys (partition: number, segments: readonly number[]): Promise<KeyDigest[]> {
    const wanted = new Set(segments)
    const out: KeyDigest[] = []
    for (const [id, { digest }] of sortedEntries(this.data.get(partition))) {
      const key = fromBytesId(id)
      if (wanted.has(segmentOf(key))) out.push({ key, digest: digest.slice() })
    }
    return out
  }

  async * scan (partition: number): AsyncIterable<KeyObject> {
    // A snapshot, as a LevelDB iterator reads one.
    const entries = sortedEntries(this.data.get(partition))
    for (const [id, { object }] of entries) yield { key: fromBytesId(id), object }
  }

  async removeIfUnchanged (key: Uint8Array, digest: Uint8Array): Promise<boolean> {
    const partition = this.partitionOf(key)
    const objects = this.data.get(partition)
    const id = bytesId(key)
    const current = objects?.get(id)
    if (objects === undefined || current === undefined || !bytesEqual(current.digest, digest)) return false
    if ([...current.object.vv.keys()].some(a => a === this.actorId || a.startsWith(`${this.actorId}.`))) {
      this.epochs.set(partition, (this.epochs.get(partition) ?? 0) + 1)
    }
    this.treeOf(partition, true).update(key, current.digest, undefined)
    objects.delete(id)
    if (objects.size === 0) {
      this.data.delete(partition)
      this.trees.delete(partition)
      this.snapshots.delete(partition)
    }
    return true
  }

  async heldPartitions (): Promise<number[]> {
    return [...this.data.keys()].sort((a, b) => a - b)
  }

  async * hints (target?: string): AsyncIterable<HeldHint> {
    const all = [...this.allHints()]
    for (const hint of all) if (target === undefined || hint.target === target) yield hint
  }

  async deleteHint (target: string, key: Uint8Array, ifDigest: Uint8Array): Promise<boolean> {
    const hints = this.held.get(target)
    const id = bytesId(key)
    const current = hints?.get(id)
    if (hints === undefined || current === undefined || !bytesEqual(objectDigest(current), ifDigest)) return false
    hints.delete(id)
    if (hints.size === 0) this.held.delete(target)
    return true
  }

  async hintTargets (): Promise<string[]> {
    return [...this.held.keys()].sort()
  }

  async hintCount (): Promise<number> {
    let count = 0
    for (const hints of this.held.values()) count += hints.size
    return count
  }

  async hintDigests (keys: readonly Uint8Array[]): Promise<Map<string, Uint8Array[]>> {
    const wanted = new Set(keys.map(k => bytesId(k)))
    const found = new Map<string, Uint8Array[]>()
    for (const hint of this.allHints()) {
      const id = bytesId(hint.key)
      if (!wanted.has(id)) continue
      let list = found.get(id)
      if (list === undefined) found.set(id, list = [])
      list.push(objectDigest(hint.object))
    }
    return found
  }

  private stored (key: Uint8Array): Stored | undefined {
    return this.data.get(this.partitionOf(key))?.get(bytesId(key))
  }

  /** The object and its Merkle leaf change together. */
  private write (key: Uint8Array, current: Stored | undefined, next: DvvSet): void {
    const partition = this.partitionOf(key)
    let objects = this.data.get(partition)
    if (objects === undefined) this.data.set(partition, objects = new Map())
    const digest = objectDigest(next)
    this.treeOf(partition, true).update(key, current?.digest, digest)
    objects.set(bytesId(key), { object: next, digest })
  }

  private treeOf (partition: number, create = false): MerkleTree {
    if (create) this.snapshots.delete(partition)
    let tree = this.trees.get(partition)
    if (tree === undefined) {
      tree = new MerkleTree()
      if (create) this.trees.set(partition, tree)
    }
    return tree
  }

  private rebuilt (partition: number): MerkleTree {
    const tree = new MerkleTree()
    for (const [id, { object }] of this.data.get(partition) ?? []) tree.update(fromBytesId(id), undefined, objectDigest(object))
    return tree
  }
}

interface Stored {
  readonly object: DvvSet
  readonly digest: Uint8Array
}

const EMPTY_TREE = new MerkleTree()

/** A map's entries in key byte order (bytesId is one char per byte), as LevelDB iterates. */
function sortedEntries<T> (map: ReadonlyMap<string, T> | undefined): Array<[string, T]> {
  if (map === undefined) return []
  return [...map].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
}

export interface SimNodeOptions {
  readonly n: number
  readonly r: number
  readonly w: number
  readonly partitions: number
  readonly timeoutMs: number
  readonly heartbeatMs: number
  /** Sloppy quorum and hinted handoff (the coordinator's default). */
  readonly sloppy: boolean
  /** Background work, in virtual ms: short, so one run of some seconds exercises all of it. */
  readonly antiEntropyMs: number
  readonly hintMs: number
  readonly handoffMs: number
  readonly reaperMs: number
  /** How long a tombstone is kept at least before the reaper may purge it. */
  readonly graceMs: number
  /** A deliberately broken replica, to show that the checker notices each kind of failure. */
  readonly bug?: Bug
}

/**
 * - drop-writes: the disk takes no write at all (lost writes).
 * - drop-replica-writes: replica writes, repairs and syncs are acknowledged but not kept (divergence).
 * - invent-values: reads add a value nobody wrote (phantoms).
 * - purge-early: the tombstone reaper purges at once, whoever is down, and takes every member's
 *   answer as "same tombstone here", so a replica that missed the delete brings the value back
 *   (resurrection).
 * - purge-ignores-hints: a member asked before a purge does not count the hints it holds, so a
 *   hint delivered after the purge brings the old value back (resurrection).
 */
export type Bug = 'drop-writes' | 'drop-replica-writes' | 'invent-values' | 'purge-early' | 'purge-ignores-hints'

/** What a node's background mechanisms did over all its lives. */
export interface SyncTotals {
  /** Replica writes this node stored as hints for a down primary. */
  hinted: number
  hintsDelivered: number
  /** Keys whose copy changed by an anti-entropy exchange this node started (either side). */
  aeRepaired: number
  aeExchanges: number
  /** Objects that changed on a new owner by ownership handoff, and partitions handed off. */
  handoffKeys: number
  handoffPartitions: number
  purged: number
}

/** Thrown into code of a crashed process that tries to touch its disk. */
class CrashedError extends ShoalError {
  override name = 'CrashedError'
}

interface Life {
  readonly hints: HintedHandoff
  readonly antiEntropy: AntiEntropy
  readonly handoff: OwnershipHandoff
  readonly reaper: TombstoneReaper
}

/**
 * One simulated Shoal member: the production coordinator, membership agent, hinted handoff,
 * anti-entropy, ownership handoff and tombstone reaper over a simulated network, with a map for
 * a disk. A crash drops everything but the disk; a restart builds the member anew from it, as a
 * real process would.
 */
export class SimNode {
  readonly id: string
  readonly storage: MemoryStorage
  generation = 0
  alive = false
  coordinator!: Coordinator
  agent!: MembershipAgent
  hints!: HintedHandoff
  antiEntropy!: AntiEntropy
  handoff!: OwnershipHandoff
  reaper!: TombstoneReaper
  /** This life's view of the disk: what the peers' sync requests are served from. */
  replica!: SyncReplica
  private hinted = 0
  private readonly lives: Life[] = []
  private readonly scheduler: Scheduler
  private readonly network: SimNetwork
  private readonly random: SimRandom
  private readonly options: SimNodeOptions
  private readonly members: readonly MemberRecord[]
  private readonly peers: () => ReadonlyMap<string, SimNode>

  constructor (id: string, actorId: string, init: {
    scheduler: Scheduler, network: SimNetwork, random: SimRandom, options: SimNodeOptions,
    members: readonly MemberRecord[], peers: () => ReadonlyMap<string, SimNode>
  }) {
    this.id = id
    this.storage = new MemoryStorage(actorId, init.options.partitions)
    this.scheduler = init.scheduler
    this.network = init.network
    this.random = init.random
    this.options = init.options
    this.members = init.members
    this.peers = init.peers
  }

  start (): void {
    this.generation++
    this.alive = true
    const generation = this.generation
    const env = this.env(generation)
    const self = this.members.find(m => m.id === this.id)
    if (self === undefined) throw new Error(`${this.id} is not a member`)
    this.agent = new MembershipAgent({
      // A restart is a new incarnation, up again: its record must win over the previous life's.
      self: { ...self, incarnation: this.scheduler.now, seq: 0, status: 'up' },
      env,
      // The table this member kept on disk, as a node does; the configured one at first start.
      known: (this.storage.members ?? this.members).filter(r => r.id !== this.id),
      onChange: () => { if (this.generation === generation) this.storage.members = this.agent.records() },
      intervalMs: this.options.heartbeatMs,
      ring: { n: this.options.n, partitions: this.options.partitions },
      publish: (heartbeat: Heartbeat) => {
        for (const peer of this.peers().values()) {
          if (peer.id === this.id) continue
          this.network.send(this, peer.id, () => { peer.agent.receive(this.id, heartbeat) })
        }
      },
      pull: async (member) => await this.network.request(this, member, async () => {
        const peer = this.peers().get(member)
        return peer === undefined ? [] : peer.agent.records()
      }, this.options.timeoutMs)
    })
    const replica = this.replica = this.disk(generation)
    // The ring is a function of the member table, and the table's digest is cached: every
    // request and background step asks for the ring, and the agent rebuilds its key each time.
    const agent = this.agent
    let known: { digest: string, ring: Ring } | undefined
    const ring = (): Ring => {
      const digest = agent.digest()
      if (known?.digest !== digest) known = { digest, ring: agent.ring() }
      return known.ring
    }
    const latency = new LatencyMonitor()
    const worker: WorkerInit = {
      self: this.id,
      env,
      replica,
      ring,
      isUp: (member) => this.agent.isUp(member),
      call: async (member, request) => await this.syncCall(member, request)
    }
    const hints = this.hints = new HintedHandoff({ ...worker, intervalMs: this.options.hintMs })
    this.antiEntropy = new AntiEntropy({
      ...worker,
      intervalMs: this.options.antiEntropyMs,
      maxIntervalMs: this.options.antiEntropyMs * 4,
      busy: () => latency.busy(this.scheduler.now),
      active: () => latency.active(this.scheduler.now)
    })
    this.handoff = new OwnershipHandoff({ ...worker, intervalMs: this.options.handoffMs })
    const early = this.options.bug === 'purge-early'
    this.reaper = new TombstoneReaper({
      ...worker,
      isUp: early ? () => true : worker.isUp,
      call: early ? this.ignoringAnswers(worker.call) : worker.call,
      members: () => this.agent.records().filter(r => r.status !== 'left').map(r => r.id),
      membersDigest: () => this.agent.digest(),
      graceMs: early ? 0 : this.options.graceMs,
      intervalMs: this.options.reaperMs
    })
    this.lives.push({ hints, antiEntropy: this.antiEntropy, handoff: this.handoff, reaper: this.reaper })
    this.coordinator = new Coordinator({
      self: this.id,
      env,
      replica,
      ring,
      isUp: (member) => this.agent.isUp(member),
      observe: (member, ok) => { this.agent.observe(member, ok) },
      r: this.options.r,
      w: this.options.w,
      timeoutMs: this.options.timeoutMs,
      sloppy: this.options.sloppy,
      onHint: (target, created) => {
        this.hinted++
        hints.stored(target, created)
      },
      onLatency: (ms) => { latency.record(ms, this.scheduler.now) },
      transport: async (to, request, timeoutMs) => await this.network.request(this, to, async () => {
        const peer = this.peers().get(to)
        if (peer === undefined) return { type: 'error', name: 'UnreachableError', message: `no member ${to}` }
        // As a node's kv server does (src/node.ts): a member that left takes no replica writes.
        if (request.type === 'write' && peer.status() === 'left') return { type: 'error', name: 'UnavailableError', message: `${to} has left the cluster` }
        return wire(await peer.coordinator.handle(wire(request)))
      }, timeoutMs)
    })
    this.agent.start()
    this.hints.start()
    this.antiEntropy.start()
    this.handoff.start()
    this.reaper.start()
  }

  crash (): void {
    this.hints.stop()
    this.antiEntropy.stop()
    this.handoff.stop()
    this.reaper.stop()
    this.agent.stop()
    this.alive = false
    this.generation++
  }

  /** This member's status in its own record. */
  status (): MemberStatus | undefined {
    return this.agent.member(this.id)?.status
  }

  /**
   * Leaves the cluster as a node does: owns nothing from now on, hands every partition and hint
   * to the owners, and announces that it left once it holds nothing. A crash abandons the leave
   * (the restart comes back as a member).
   */
  leave (onLeft: () => void): void {
    const generation = this.generation
    const env = this.env(generation)
    const { handoff, hints } = this
    this.agent.announce({ status: 'leaving' })
    hints.setLeaving()
    const step = async (): Promise<void> => {
      await handoff.runNow()
      await hints.runNow()
      if (this.generation !== generation) return
      if ((await this.storage.heldPartitions()).length === 0 && (await this.storage.hintCount()) === 0) {
        this.agent.announce({ status: 'left' })
        onLeft()
        return
      }
      env.setTimer(500, () => { void step() })
    }
    void step()
  }

  totals (): SyncTotals {
    const totals: SyncTotals = { hinted: this.hinted, hintsDelivered: 0, aeRepaired: 0, aeExchanges: 0, handoffKeys: 0, handoffPartitions: 0, purged: 0 }
    for (const life of this.lives) {
      totals.hintsDelivered += life.hints.stats.delivered
      totals.aeRepaired += life.antiEntropy.stats.keysRepaired
      totals.aeExchanges += life.antiEntropy.stats.exchanges
      totals.handoffKeys += life.handoff.stats.keysSent
      totals.handoffPartitions += life.handoff.stats.partitions
      totals.purged += life.reaper.stats.purged
    }
    return totals
  }

  /** Virtual time; timers of an older life never fire. */
  private env (generation: number): Env {
    return {
      now: () => this.scheduler.now,
      random: () => this.random.next(),
      setTimer: (ms, fn): Timer => this.scheduler.after(ms, () => { if (this.generation === generation) fn() })
    }
  }

  /**
   * A sync request over the simulated network, answered by the peer's serveMember from its disk;
   * feeds the failure detector and turns an error response into a rejection, as a node does.
   */
  private async syncCall (member: string, request: SyncRequest): Promise<SyncResponse> {
    let response: SyncResponse
    try {
      response = await this.network.request(this, member, async () => {
        const peer = this.peers().get(member)
        if (peer === undefined) return { type: 'error', name: 'UnreachableError', message: `no member ${member}` }
        // As a node's sync server (src/node.ts) answers.
        return copySync(await serveMember(peer.replica, copySync(request), this.id, {
          own: () => peer.status(),
          status: (id) => peer.agent.member(id)?.status,
          digest: () => peer.agent.digest()
        }))
      }, this.options.timeoutMs)
    } catch (err) {
      this.agent.observe(member, false)
      throw err
    }
    this.agent.observe(member, true)
    if (response.type === 'error') throw remoteError(response.name, response.message)
    return response
  }

  /** The 'purge-early' bug: every member seems to hold the same tombstone, whatever it answers. */
  private ignoringAnswers (call: MemberCall): MemberCall {
    return async (member, request, channel) => {
      if (request.type !== 'purge-check') return await call(member, request, channel)
      await call(member, request, channel).catch(() => {})
      return { type: 'copies', states: request.entries.map(() => 'same' as const), members: this.agent.digest() }
    }
  }

  /** The disk as this life of the process sees it: a crashed life can no longer touch it. */
  private disk (generation: number): SyncReplica {
    const storage = this.storage
    const bug = this.options.bug
    const check = (): void => {
      if (this.generation !== generation) throw new CrashedError(`${this.id} crashed`)
    }
    return {
      actorId: storage.actorId,
      partitions: storage.partitions,
      partitionOf: (key) => storage.partitionOf(key),
      get: async (key) => {
        check()
        const object = await storage.get(key)
        if (bug === 'invent-values' && object !== undefined) return merge(object, update(undefined, new Map(), 'liar', new TextEncoder().encode('invented'), 0))
        return object
      },
      modify: async (key, fn) => {
        check()
        if (bug === 'drop-writes') {
          const current = await storage.get(key)
          return fn(current, storage.actorFor(key)) ?? current
        }
        return await storage.modify(key, fn)
      },
      merge: async (key, incoming) => {
        check()
        if (bug === 'drop-writes' || bug === 'drop-replica-writes') {
          const current = await storage.get(key)
          const object = current === undefined ? incoming : merge(current, incoming)
          return { object, changed: current === undefined || !equals(current, object) }
        }
        return await storage.merge(key, incoming)
      },
      putHint: async (target, key, object) => {
        check()
        if (bug === 'drop-writes') return true
        return await storage.putHint(target, key, object)
      },
      tree: async (partition) => { check(); return await storage.tree(partition) },
      verifyTree: async (partition) => { check(); return await storage.verifyTree(partition) },
      segmentKeys: async (partition, segments) => { check(); return await storage.segmentKeys(partition, segments) },
      scan: (partition) => { check(); return storage.scan(partition) },
      removeIfUnchanged: async (key, digest) => { check(); return await storage.removeIfUnchanged(key, digest) },
      heldPartitions: async () => { check(); return await storage.heldPartitions() },
      hints: (target) => { check(); return storage.hints(target) },
      deleteHint: async (target, key, ifDigest) => { check(); return await storage.deleteHint(target, key, ifDigest) },
      hintTargets: async () => { check(); return await storage.hintTargets() },
      hintCount: async () => { check(); return await storage.hintCount() },
      hintDigests: async (keys) => {
        check()
        return bug === 'purge-ignores-hints' ? new Map() : await storage.hintDigests(keys)
      }
    }
  }
}

/**
 * Passes a message through the object codec, as the network does: the receiver gets its own
 * copy, and every simulated run exercises the encoder and decoder.
 */
function wire<T extends KvRequest | KvResponse> (message: T): T {
  if ('object' in message && message.object !== undefined) return { ...message, object: copyObject(message.object) }
  return message
}

/** A sync message as the other side decodes it: nothing shared, objects through the codec. */
function copySync<T extends SyncRequest | SyncResponse> (message: T): T {
  const m: SyncRequest | SyncResponse = message
  const bytes = (list: readonly Uint8Array[]): Uint8Array[] => list.map(b => b.slice())
  const digests = (list: readonly KeyDigest[]): KeyDigest[] => list.map(e => ({ key: e.key.slice(), digest: e.digest.slice() }))
  const objects = (list: readonly KeyObject[]): KeyObject[] => list.map(e => ({ key: e.key.slice(), object: copyObject(e.object) }))
  let copy: SyncRequest | SyncResponse
  switch (m.type) {
    case 'roots':
      copy = 'summary' in m ? { ...m, partitions: [...m.partitions], summary: m.summary.slice() } : { ...m, roots: bytes(m.roots) }
      break
    case 'children':
      copy = 'indexes' in m ? { ...m, indexes: [...m.indexes] } : { ...m, hashes: bytes(m.hashes) }
      break
    case 'keys':
      copy = 'segments' in m ? { ...m, segments: [...m.segments] } : { ...m, entries: digests(m.entries) }
      break
    case 'fetch': copy = { ...m, keys: bytes(m.keys) }; break
    case 'push': case 'objects': copy = { ...m, entries: objects(m.entries) }; break
    case 'purge-check': case 'purge': copy = { ...m, entries: digests(m.entries) }; break
    case 'copies': copy = { ...m, states: [...m.states] }; break
    default: copy = { ...m }
  }
  return copy as T
}

function copyObject (object: DvvSet): DvvSet {
  return decodeObject(encodeObject(object))
}
