import { TimeoutError, UnreachableError } from '../core/errors.ts'
import type { SimRandom } from './random.ts'
import type { Scheduler } from './scheduler.ts'

export interface NetworkFaults {
  /** Probability that one message is lost. */
  dropRate: number
  /** Probability that one message is delivered twice. */
  duplicateRate: number
  /** One-way delay, uniform in [minDelayMs, maxDelayMs]: different delays reorder messages. */
  minDelayMs: number
  maxDelayMs: number
}

export const CALM: NetworkFaults = { dropRate: 0, duplicateRate: 0, minDelayMs: 1, maxDelayMs: 5 }

/** What the network needs to know of a simulated process. */
export interface Endpoint {
  readonly id: string
  /** Bumped at each crash and restart: messages and timers of an older life are void. */
  readonly generation: number
  readonly alive: boolean
}

/**
 * A simulated network between endpoints: seeded loss, duplication, delay (hence reordering),
 * and partitions. A crashed endpoint refuses connections (UnreachableError); a partitioned one
 * is silent (the caller times out), as TCP behaves.
 */
export class SimNetwork {
  faults: NetworkFaults = { ...CALM }
  private readonly blocked = new Set<string>()
  private readonly endpoints = new Map<string, Endpoint>()
  private readonly scheduler: Scheduler
  private readonly random: SimRandom
  sent = 0
  dropped = 0

  constructor (scheduler: Scheduler, random: SimRandom) {
    this.scheduler = scheduler
    this.random = random
  }

  add (endpoint: Endpoint): void {
    this.endpoints.set(endpoint.id, endpoint)
  }

  /** Cuts the network between two groups (both directions). */
  partition (a: readonly string[], b: readonly string[]): void {
    for (const x of a) for (const y of b) { this.blocked.add(`${x}|${y}`); this.blocked.add(`${y}|${x}`) }
  }

  heal (): void {
    this.blocked.clear()
  }

  connected (from: string, to: string): boolean {
    return this.blocked.size === 0 || !this.blocked.has(`${from}|${to}`)
  }

  /**
   * Delivers `deliver` at `to` after a delay, unless lost, cut off, or either side crashed or
   * restarted in between.
   */
  send (from: Endpoint, to: string, deliver: () => void): void {
    this.sent++
    const generation = from.generation
    const target = this.endpoints.get(to)
    if (target === undefined || !this.connected(from.id, to) || this.random.chance(this.faults.dropRate)) {
      this.dropped++
      return
    }
    const targetGeneration = target.generation
    const copies = this.random.chance(this.faults.duplicateRate) ? 2 : 1
    for (let i = 0; i < copies; i++) {
      this.scheduler.after(this.delay(), () => {
        // A message from an older life of the sender, or to an older life of the target, is void.
        if (from.generation !== generation || !target.alive || target.generation !== targetGeneration) return
        if (!this.connected(from.id, to)) return
        deliver()
      })
    }
  }

  /**
   * A request/response exchange with a deadline, as the transport of a real node does it: the
   * handler runs at the target, its answer travels back, and the caller's promise settles once.
   */
  request<Res> (from: Endpoint, to: string, handle: () => Promise<Res>, timeoutMs: number): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      let settled = false
      const finish = (fn: () => void): void => {
        if (settled) return
        settled = true
        timer.cancel()
        fn()
      }
      const generation = from.generation
      const timer = this.scheduler.after(timeoutMs, () => {
        if (from.generation === generation) finish(() => { reject(new TimeoutError(`no answer from ${to} within ${timeoutMs} ms`)) })
      })
      const target = this.endpoints.get(to)
      if (target !== undefined && !target.alive && this.connected(from.id, to)) {
        // Connection refused: the caller learns at once that nothing was delivered.
        this.scheduler.after(this.delay(), () => {
          if (from.generation === generation) finish(() => { reject(new UnreachableError(`${to} refused the connection`)) })
        })
        return
      }
      this.send(from, to, () => {
        void handle().then(response => {
          if (target === undefined) return
          this.send(target, from.id, () => { finish(() => { resolve(response) }) })
        })
      })
    })
  }

  private delay (): number {
    return this.random.int(this.faults.minDelayMs, this.faults.maxDelayMs)
  }
}
