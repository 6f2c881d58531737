import { bytesId } from '../core/bytes.ts'
import { decodeObject, encodeObject, equals, merge, update } from '../core/causality.ts'
import type { DvvSet } from '../core/causality.ts'
import { Coordinator } from '../core/coordinator/coordinator.ts'
import type { LocalReplica } from '../core/coordinator/coordinator.ts'
import type { KvRequest, KvResponse } from '../core/coordinator/messages.ts'
import type { Env, Timer } from '../core/env.ts'
import { ShoalError } from '../core/errors.ts'
import { MembershipAgent } from '../core/membership-agent.ts'
import type { Heartbeat } from '../core/membership-agent.ts'
import type { MemberRecord } from '../core/membership.ts'
import type { SimNetwork } from './network.ts'
import type { SimRandom } from './random.ts'
import type { Scheduler } from './scheduler.ts'

/** What survives a crash: the simulated disk. Writes are atomic and durable once applied. */
export class MemoryStorage {
  readonly actorId: string
  readonly objects = new Map<string, DvvSet>()

  constructor (actorId: string) {
    this.actorId = actorId
  }
}

export interface SimNodeOptions {
  readonly n: number
  readonly r: number
  readonly w: number
  readonly partitions: number
  readonly timeoutMs: number
  readonly heartbeatMs: number
  /** A deliberately broken replica, to show that the checker notices each kind of failure. */
  readonly bug?: Bug
}

export type Bug = 'drop-writes' | 'drop-replica-writes' | 'invent-values'

/** Thrown into code of a crashed process that tries to touch its disk. */
class CrashedError extends ShoalError {
  override name = 'CrashedError'
}

/**
 * One simulated Shoal member: the production coordinator and membership agent over a simulated
 * network, with a map for a disk. A crash drops everything but the disk; a restart builds the
 * member anew from it, as a real process would.
 */
export class SimNode {
  readonly id: string
  readonly storage: MemoryStorage
  generation = 0
  alive = false
  coordinator!: Coordinator
  agent!: MembershipAgent
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
    this.storage = new MemoryStorage(actorId)
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
    const env: Env = {
      now: () => this.scheduler.now,
      random: () => this.random.next(),
      setTimer: (ms, fn): Timer => this.scheduler.after(ms, () => { if (this.generation === generation) fn() })
    }
    const self = this.members.find(m => m.id === this.id)
    if (self === undefined) throw new Error(`${this.id} is not a member`)
    this.agent = new MembershipAgent({
      // A restart is a new incarnation: its record must win over the previous life's.
      self: { ...self, incarnation: this.scheduler.now, seq: 0 },
      env,
      known: this.members,
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
    this.coordinator = new Coordinator({
      self: this.id,
      env,
      replica: this.replica(generation),
      ring: () => this.agent.ring(),
      isUp: (member) => this.agent.isUp(member),
      observe: (member, ok) => { this.agent.observe(member, ok) },
      r: this.options.r,
      w: this.options.w,
      timeoutMs: this.options.timeoutMs,
      transport: async (to, request, timeoutMs) => await this.network.request(this, to, async () => {
        const peer = this.peers().get(to)
        if (peer === undefined) return { type: 'error', name: 'UnreachableError', message: `no member ${to}` }
        return wire(await peer.coordinator.handle(wire(request)))
      }, timeoutMs)
    })
    this.agent.start()
  }

  crash (): void {
    this.agent.stop()
    this.alive = false
    this.generation++
  }

  /** The disk as this life of the process sees it: a crashed life can no longer write. */
  private replica (generation: number): LocalReplica {
    const storage = this.storage
    const bug = this.options.bug
    const check = (): void => {
      if (this.generation !== generation) throw new CrashedError(`${this.id} crashed`)
    }
    return {
      actorId: storage.actorId,
      get: async (key) => {
        check()
        const object = storage.objects.get(bytesId(key))
        if (bug === 'invent-values' && object !== undefined) return merge(object, update(undefined, new Map(), 'liar', new TextEncoder().encode('invented'), 0))
        return object
      },
      modify: async (key, fn) => {
        check()
        const id = bytesId(key)
        const next = fn(storage.objects.get(id))
        if (next !== undefined && bug !== 'drop-writes') storage.objects.set(id, next)
        return next ?? storage.objects.get(id)
      },
      merge: async (key, incoming) => {
        check()
        const id = bytesId(key)
        const current = storage.objects.get(id)
        const object = current === undefined ? incoming : merge(current, incoming)
        const changed = current === undefined || !equals(current, object)
        if (changed && bug !== 'drop-writes' && bug !== 'drop-replica-writes') storage.objects.set(id, object)
        return { object, changed }
      }
    }
  }
}

/**
 * Passes a message through the object codec, as the network does: the receiver gets its own
 * copy, and every simulated run exercises the encoder and decoder.
 */
function wire<T extends KvRequest | KvResponse> (message: T): T {
  const copy = (o: DvvSet): DvvSet => decodeObject(encodeObject(o))
  if ('object' in message && message.object !== undefined) return { ...message, object: copy(message.object) }
  return message
}
