import { objectDigest } from '../causality.ts'
import { emptyResult, exchange } from './exchange.ts'
import type { KeyDigest } from './messages.ts'
import { Periodic } from './worker.ts'
import type { WorkerInit } from './worker.ts'

export interface OwnershipHandoffInit extends WorkerInit {
  /** How often held partitions are checked against the ring. Default 5 s. */
  readonly intervalMs?: number
}

export interface HandoffStats {
  /** Partitions held here that this member no longer owns, as of the last check. */
  pending: number
  /** Partitions handed to their owners and dropped here. */
  partitions: number
  /** Objects that changed on an owner by a handoff. */
  keysSent: number
  /** Objects dropped here after their owners acknowledged them. */
  keysDropped: number
}

/**
 * Ownership handoff: when members join, leave or are removed, partitions change owners. A member
 * that holds data of a partition it no longer owns brings every current owner up to date with it
 * (a push-only Merkle exchange on `/shoal/handoff/1.0.0`: only what an owner lacks moves), and
 * drops its copy only once all of them acknowledged it. Keys written here meanwhile are kept and
 * go in the next round. Reads and writes go to the new owners throughout; the two owners that
 * stay on a partition still answer for it while the third catches up.
 */
export class OwnershipHandoff {
  readonly stats: HandoffStats = { pending: 0, partitions: 0, keysSent: 0, keysDropped: 0 }
  private readonly init: OwnershipHandoffInit
  private readonly job: Periodic

  constructor (init: OwnershipHandoffInit) {
    this.init = init
    this.job = new Periodic(init.env, async () => { await this.round() }, () => init.intervalMs ?? 5000)
  }

  start (): void {
    this.job.start()
  }

  stop (): void {
    this.job.stop()
  }

  /** One round now; resolves with how many partitions are still to hand off. */
  async runNow (): Promise<number> {
    await this.job.now()
    return this.stats.pending
  }

  private async round (): Promise<void> {
    const foreign = await this.foreign()
    this.stats.pending = foreign.length
    for (const partition of foreign) {
      if (await this.handOff(partition)) this.stats.pending--
    }
  }

  private async foreign (): Promise<number[]> {
    const ring = this.init.ring()
    const held = await this.init.replica.heldPartitions()
    return held.filter(p => !ring.owners(p).includes(this.init.self))
  }

  /** Hands one partition to all its owners; true once dropped here. */
  private async handOff (partition: number): Promise<boolean> {
    const owners = this.init.ring().owners(partition)
    // All owners must take it: dropping on fewer would leave fewer than N copies.
    if (owners.length === 0 || !owners.every(o => this.init.isUp(o))) return false

    // What is dropped at the end: exactly these copies, unless a write changes them meanwhile.
    const snapshot: KeyDigest[] = []
    for await (const { key, object } of this.init.replica.scan(partition)) snapshot.push({ key, digest: objectDigest(object) })

    for (const owner of owners) {
      const result = emptyResult()
      try {
        await exchange(this.init.replica, async (request) => await this.init.call(owner, request, 'handoff'), [partition], { mode: 'push' }, result)
      } catch {
        return false
      } finally {
        this.stats.keysSent += result.repairedThere
      }
    }
    // The ring may have given the partition back meanwhile.
    if (this.init.ring().owners(partition).includes(this.init.self)) return false
    for (const { key, digest } of snapshot) {
      if (await this.init.replica.removeIfUnchanged(key, digest)) this.stats.keysDropped++
    }
    // A key written or changed here meanwhile was kept: the partition is still pending, for the next round.
    for await (const _ of this.init.replica.scan(partition)) return false
    this.stats.partitions++
    return true
  }
}
