import { emptyResult, exchange } from './exchange.ts'
import type { ExchangeResult } from './exchange.ts'
import { sleep } from '../env.ts'
import { Periodic, jitter } from './worker.ts'
import type { WorkerInit } from './worker.ts'

/** The longest pause pacing puts between two partitions. */
const MAX_PAUSE_MS = 5000

export interface AntiEntropyInit extends WorkerInit {
  /** Between exchanges when the node is not busy. Default 10 s. */
  readonly intervalMs?: number
  /** The longest the backoff stretches the interval to. Default 16 × intervalMs. */
  readonly maxIntervalMs?: number
  /** Keys repaired per exchange at most; the rest waits for the next one. Default 10,000. */
  readonly maxKeys?: number
  /** Partitions whose trees are checked against storage per step of the start-up pass. Default 64. */
  readonly verifyBatch?: number
  /**
   * True while foreground requests are slower than usual (Dynamo §6.5 admission control): the
   * exchange waits and the interval doubles, up to maxIntervalMs.
   */
  readonly busy?: () => boolean
  /**
   * True while foreground requests are coming in: exchanges then pace themselves to `dutyCycle`
   * of the time (after a partition that took t ms they wait t × (1 / dutyCycle − 1)), so repairs
   * never crowd out requests; with no requests they run at full speed.
   */
  readonly active?: () => boolean
  /** The share of time exchanges may take while foreground requests run. Default 0.1. */
  readonly dutyCycle?: number
}

export interface AntiEntropyStats {
  /** Exchanges run to the end. */
  exchanges: number
  /** Exchanges that failed (the other member unreachable, a deadline passed). */
  failed: number
  /** Exchanges put off because foreground requests were slow. */
  deferred: number
  /** Keys whose copy changed, here or on the other replica. */
  keysRepaired: number
  /** Partitions with data whose tree was checked against storage since start. */
  treesVerified: number
  /** Of those, trees that did not match their objects and were rebuilt. */
  treesRebuilt: number
  /** The interval in force, after backoff. */
  intervalMs: number
  /** Why the last failed exchange failed. */
  lastError?: string
}

/**
 * Merkle-tree anti-entropy (Dynamo §4.7, Riak's AAE): every interval this member picks the next
 * live member it shares partitions with, and the two compare the trees of all shared partitions
 * and exchange only the keys that differ; both keep the merge.
 *
 * Before a partition takes part, its tree is checked once against its objects (rebuilt if missing
 * or inconsistent), in the background after start. Exchanges are rate-limited (one at a time,
 * maxKeys each) and back off while foreground requests are slow.
 */
export class AntiEntropy {
  readonly stats: AntiEntropyStats
  private readonly init: AntiEntropyInit
  private readonly baseMs: number
  private readonly maxMs: number
  private readonly job: Periodic
  private readonly verified = new Set<number>()
  /** Set once the start-up pass is over: partitions gained later start empty or arrive by handoff. */
  private allVerified = false
  private verifying: Promise<void> | undefined
  private stopped = false
  private cursor = 0

  constructor (init: AntiEntropyInit) {
    this.init = init
    this.baseMs = init.intervalMs ?? 10_000
    this.maxMs = init.maxIntervalMs ?? this.baseMs * 16
    this.stats = { exchanges: 0, failed: 0, deferred: 0, keysRepaired: 0, treesVerified: 0, treesRebuilt: 0, intervalMs: this.baseMs }
    this.job = new Periodic(init.env, async () => { await this.tick() }, () => jitter(init.env, this.stats.intervalMs))
  }

  start (): void {
    this.stopped = false
    void this.ready()
    this.job.start()
  }

  stop (): void {
    this.stopped = true
    this.job.stop()
  }

  /** Whether the start-up pass is over: every partition held at start has had its tree checked. */
  get treesChecked (): boolean {
    return this.allVerified
  }

  /** Resolves once every partition held or owned at start has had its tree checked, or the pass failed. */
  async ready (): Promise<void> {
    // A failed pass (the store closing under it) is tried again by the next caller.
    this.verifying ??= this.verifyAll().catch(() => { this.verifying = undefined })
    await this.verifying
  }

  /**
   * An exchange with each live member sharing partitions, now, whatever the load: for operators
   * and tests. Returns the sum of their results.
   */
  async runNow (): Promise<ExchangeResult> {
    await this.ready()
    const total = emptyResult()
    for (const peer of this.partners()) {
      const result = await this.exchangeWith(peer)
      if (result === undefined) continue
      total.compared += result.compared
      total.differing += result.differing
      total.keysDiffering += result.keysDiffering
      total.repairedHere += result.repairedHere
      total.repairedThere += result.repairedThere
      total.truncated ||= result.truncated
    }
    return total
  }

  private async tick (): Promise<void> {
    // A start-up pass that failed (a store error) leaves its partitions out of every exchange
    // until it is run again: try again each round until it is over.
    if (!this.allVerified && this.verifying === undefined) void this.ready()
    if (this.init.busy?.() === true) {
      this.stats.deferred++
      this.stats.intervalMs = Math.min(this.maxMs, this.stats.intervalMs * 2)
      return
    }
    this.stats.intervalMs = this.baseMs
    const partners = this.partners()
    if (partners.length === 0) return
    const peer = partners[this.cursor++ % partners.length]!
    await this.exchangeWith(peer)
  }

  /** Live members sharing at least one partition with this one, in id order. */
  private partners (): string[] {
    const ring = this.init.ring()
    const mine = ring.partitionsOf(this.init.self)
    if (mine.length === 0) return []
    const peers = new Set<string>()
    for (const p of mine) for (const owner of ring.owners(p)) if (owner !== this.init.self) peers.add(owner)
    return [...peers].filter(m => this.init.isUp(m)).sort()
  }

  private async exchangeWith (peer: string): Promise<ExchangeResult | undefined> {
    const ring = this.init.ring()
    const shared = ring.partitionsOf(this.init.self).filter(p => (this.allVerified || this.verified.has(p)) && ring.owners(p).includes(peer))
    const result = emptyResult()
    try {
      await exchange(this.init.replica, async (request) => await this.init.call(peer, request, 'sync'), shared, {
        mode: 'both',
        maxKeys: this.init.maxKeys ?? 10_000,
        now: () => this.init.env.now(),
        pace: async (elapsedMs) => { await this.pace(elapsedMs) }
      }, result)
      this.stats.exchanges++
      return result
    } catch (err) {
      this.stats.failed++
      this.stats.lastError = `${peer}: ${(err as Error).name}: ${(err as Error).message}`
      return undefined
    } finally {
      this.stats.keysRepaired += result.repairedHere + result.repairedThere
    }
  }

  /** After background work of `elapsedMs`: a pause to keep to the duty cycle while requests come in. */
  private async pace (elapsedMs: number): Promise<void> {
    if (this.init.active?.() !== true) {
      await sleep(this.init.env, 0)
      return
    }
    const duty = this.init.dutyCycle ?? 0.1
    await sleep(this.init.env, Math.min(Math.max(0, elapsedMs) * (1 / duty - 1), MAX_PAUSE_MS))
  }

  /**
   * The start-up pass: every partition with objects or a stored tree gets its tree checked against
   * its objects. The others have neither, and so agree already.
   */
  private async verifyAll (): Promise<void> {
    const replica = this.init.replica
    const partitions = [...new Set([...await replica.heldPartitions(), ...await replica.treePartitions?.() ?? []])].sort((a, b) => a - b)
    const batch = this.init.verifyBatch ?? 64
    for (let i = 0; i < partitions.length && !this.stopped; i += batch) {
      const started = this.init.env.now()
      for (const p of partitions.slice(i, i + batch)) {
        if (this.verified.has(p)) continue
        if (await this.init.replica.verifyTree(p)) this.stats.treesRebuilt++
        this.stats.treesVerified++
        this.verified.add(p)
      }
      // Let foreground work in between steps, and pace the pass like exchanges while it runs.
      await this.pace(this.init.env.now() - started)
    }
    if (!this.stopped) this.allVerified = true
  }
}
