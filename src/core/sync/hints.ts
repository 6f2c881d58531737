import { objectDigest } from '../causality.ts'
import { expect, objectBatches } from './exchange.ts'
import type { KeyObject } from './messages.ts'
import { Periodic } from './worker.ts'
import type { WorkerInit } from './worker.ts'

export interface HintedHandoffInit extends WorkerInit {
  /** How often targets are checked for being back. Default 1 s. */
  readonly intervalMs?: number
  /** Hints sent per push. Default 512. */
  readonly batch?: number
}

export interface HintStats {
  /** Hints held, waiting for their targets. */
  pending: number
  /** Hints handed to their targets (or, for a target gone from the ring, to the key's owners). */
  delivered: number
}

/**
 * Hinted handoff (Dynamo §4.6): a fallback keeps a down primary's copies as durable hints and
 * hands them over once the failure detector sees the primary alive again. A hint is deleted
 * only after the target acknowledged it, and only if no newer write merged into it meanwhile.
 *
 * A target that left the ring (or was removed) gets nothing: its hints go to the key's current
 * owners instead, and so does a hint whose key the ring moved off its target meanwhile. While
 * this member leaves, hints for a target still down go to the key's live owners too, so that
 * leaving never waits on a member that may not come back.
 */
export class HintedHandoff {
  readonly stats: HintStats = { pending: 0, delivered: 0 }
  private readonly init: HintedHandoffInit
  private readonly job: Periodic
  private readonly targets = new Set<string>()
  private loaded: Promise<void> | undefined
  private leaving = false

  constructor (init: HintedHandoffInit) {
    this.init = init
    this.job = new Periodic(init.env, async () => { await this.deliverAll() }, () => init.intervalMs ?? 1000)
  }

  start (): void {
    void this.load()
    this.job.start()
  }

  stop (): void {
    this.job.stop()
  }

  /** A hint was stored for `target` (`created`: a new one, not merged into one held already). */
  stored (target: string, created: boolean): void {
    this.targets.add(target)
    if (created) this.stats.pending++
  }

  /** Hand hints for down targets to live owners from now on (see the class comment). */
  setLeaving (): void {
    this.leaving = true
  }

  /** One delivery round now; resolves when it is over. */
  async runNow (): Promise<void> {
    await this.job.now()
  }

  private async load (): Promise<void> {
    this.loaded ??= (async () => {
      for (const target of await this.init.replica.hintTargets()) this.targets.add(target)
      this.stats.pending = await this.init.replica.hintCount()
    })().catch(() => { this.loaded = undefined })
    await this.loaded
  }

  private async deliverAll (): Promise<void> {
    await this.load()
    const before = this.stats.delivered
    for (const target of [...this.targets]) {
      const inRing = this.init.ring().members.some(m => m.id === target)
      if (inRing && this.init.isUp(target)) await this.deliver(target, 'target')
      else if (!inRing || this.leaving) await this.deliver(target, 'owners')
    }
    // Recount after deliveries: a hint merged into while it was being sent stays and is counted.
    if (this.stats.delivered !== before) this.stats.pending = await this.init.replica.hintCount()
  }

  /** Sends one target's hints, a batch at a time; stops at the first failure. */
  private async deliver (target: string, to: 'target' | 'owners'): Promise<void> {
    const batch = this.init.batch ?? 512
    let held: KeyObject[] = []
    let any = false
    const flush = async (): Promise<boolean> => {
      const entries = held
      held = []
      const ok = to === 'target' ? await this.pushToTarget(target, entries) : await this.pushToOwners(entries)
      if (!ok) return false
      for (const { key, object } of entries) {
        if (await this.init.replica.deleteHint(target, key, objectDigest(object))) {
          this.stats.pending--
          this.stats.delivered++
        }
      }
      return true
    }
    for await (const hint of this.init.replica.hints(target)) {
      any = true
      held.push({ key: hint.key, object: hint.object })
      if (held.length >= batch && !await flush()) return
    }
    if (held.length > 0 && !await flush()) return
    if (!any) this.targets.delete(target)
  }

  /**
   * Hints to their target, which is back; but a key whose partition moved off the target while it
   * was down goes to the key's current owners instead (as Riak's fallbacks hand a partition to its
   * owner of now), so that no copy lands on a member that no longer owns it.
   */
  private async pushToTarget (target: string, entries: readonly KeyObject[]): Promise<boolean> {
    const ring = this.init.ring()
    const owned: KeyObject[] = []
    const moved: KeyObject[] = []
    for (const entry of entries) (ring.owners(ring.partitionOf(entry.key)).includes(target) ? owned : moved).push(entry)
    if (owned.length > 0 && !await this.push(target, owned)) return false
    return moved.length === 0 || await this.pushToOwners(moved)
  }

  private async push (member: string, entries: readonly KeyObject[]): Promise<boolean> {
    try {
      for (const part of objectBatches(entries)) expect(await this.init.call(member, { type: 'push', entries: part }, 'handoff'), 'pushed')
      return true
    } catch {
      return false
    }
  }

  /**
   * Each hint to its key's owners: to every owner when the target left the ring, to the live ones
   * (at least one) when this member is leaving and the target is down.
   */
  private async pushToOwners (entries: readonly KeyObject[]): Promise<boolean> {
    const ring = this.init.ring()
    const byOwner = new Map<string, KeyObject[]>()
    for (const entry of entries) {
      for (const owner of ring.owners(ring.partitionOf(entry.key))) {
        let list = byOwner.get(owner)
        if (list === undefined) byOwner.set(owner, list = [])
        list.push(entry)
      }
    }
    if (byOwner.size === 0) return false
    const reached = new Set<string>()
    for (const [owner, list] of byOwner) {
      if (owner === this.init.self) {
        for (const { key, object } of list) await this.init.replica.merge(key, object)
        reached.add(owner)
      } else if (this.init.isUp(owner) && await this.push(owner, list)) {
        reached.add(owner)
      }
    }
    if (this.leaving) {
      // Every hint must have reached at least one owner.
      return entries.every(e => ring.owners(ring.partitionOf(e.key)).some(o => reached.has(o) && o !== this.init.self))
    }
    return reached.size === byOwner.size
  }
}
