import { bytesId } from '../bytes.ts'
import { isDeleted, objectDigest } from '../causality.ts'
import type { DvvSet } from '../causality.ts'
import { expect } from './exchange.ts'
import type { CopyState, KeyDigest } from './messages.ts'
import { SYNC_LIMITS } from './messages.ts'
import { Periodic } from './worker.ts'
import type { WorkerInit } from './worker.ts'

export interface TombstoneReaperInit extends WorkerInit {
  /** Every member not gone for good (up, joining, leaving): all of them are asked before a purge. */
  readonly members: () => readonly string[]
  /**
   * This member's member-table digest. When given, a purge goes ahead only if every member asked
   * answers with the same digest and this one's did not change meanwhile: a member that rejoined
   * (or joined) unseen here may already hold an old copy it was sent, and it is not asked.
   */
  readonly membersDigest?: () => string
  /** How long a tombstone is kept at least, from the delete. Default 1 hour. */
  readonly graceMs?: number
  /** Between rounds. Default 30 s. */
  readonly intervalMs?: number
  /** Partitions scanned per round. Default 64. */
  readonly partitionsPerRound?: number
}

export interface ReaperStats {
  /** Tombstones purged on every replica. */
  purged: number
  /** Candidates kept because some member still held another copy or could not be asked. */
  kept: number
}

/** The most candidates checked in one round. */
const MAX_CANDIDATES = SYNC_LIMITS.keysPerRequest

/**
 * Safe deletes: a tombstone is purged only once the grace period has passed and every member
 * (not only the key's owners) has been asked and answers that the owners hold this exact
 * tombstone and nobody holds anything else of the key: no older value on a replica that missed
 * the delete, on a fallback's hint, or in data not yet handed off. Then every holder deletes it
 * where it is still unchanged. A member down or unreachable means no purge at all.
 *
 * So a replica that missed the delete cannot bring the value back (Riak's "doomstone" and
 * Cassandra's "zombie" failures): while it holds the value, the tombstone stays, and anti-entropy
 * brings it the tombstone first. The first owner of each partition does the reaping.
 */
export class TombstoneReaper {
  readonly stats: ReaperStats = { purged: 0, kept: 0 }
  private readonly init: TombstoneReaperInit
  private readonly job: Periodic
  private cursor = 0

  constructor (init: TombstoneReaperInit) {
    this.init = init
    this.job = new Periodic(init.env, async () => { await this.round() }, () => init.intervalMs ?? 30_000)
  }

  start (): void {
    this.job.start()
  }

  stop (): void {
    this.job.stop()
  }

  async runNow (): Promise<void> {
    await this.job.now()
  }

  private async round (): Promise<void> {
    const others = this.init.members().filter(m => m !== this.init.self)
    if (!others.every(m => this.init.isUp(m))) return
    const ring = this.init.ring()
    const mine = ring.partitionsOf(this.init.self).filter(p => ring.owners(p)[0] === this.init.self)
    if (mine.length === 0) return
    const count = Math.min(mine.length, this.init.partitionsPerRound ?? 64)
    const now = this.init.env.now()
    const grace = this.init.graceMs ?? 3_600_000
    const candidates: KeyDigest[] = []
    for (let i = 0; i < count && candidates.length < MAX_CANDIDATES; i++) {
      const partition = mine[this.cursor++ % mine.length]!
      for await (const { key, object } of this.init.replica.scan(partition)) {
        if (expired(object, now, grace)) candidates.push({ key, digest: objectDigest(object) })
      }
    }
    if (candidates.length > 0) await this.purge(candidates, others)
  }

  private async purge (found: KeyDigest[], others: readonly string[]): Promise<void> {
    const ring = this.init.ring()
    // A hint held here (from a time this member was a fallback) may carry an older write too.
    const hinted = await this.init.replica.hintDigests(found.map(c => c.key))
    const candidates = found.filter(c => (hinted.get(bytesId(c.key))?.length ?? 0) === 0)
    this.stats.kept += found.length - candidates.length
    if (candidates.length === 0) return
    // Two rounds of questions: the members are asked one after another, so a copy can move from
    // one not yet asked to one already asked (a hint delivered to its target, now no owner) and
    // be missed by the first round; it cannot also leave its new holder unseen by the second.
    const view = this.init.membersDigest?.()
    const rounds: Array<Map<string, readonly CopyState[]>> = []
    for (let round = 0; round < 2; round++) {
      const states = new Map<string, readonly CopyState[]>()
      for (const member of others) {
        try {
          const answer = expect(await this.init.call(member, { type: 'purge-check', entries: candidates }, 'sync'), 'copies')
          if (answer.states.length !== candidates.length) throw new Error('wrong number of states')
          if (view !== undefined && answer.members !== view) throw new Error('another view of the members')
          states.set(member, answer.states)
        } catch {
          this.stats.kept += candidates.length
          return
        }
      }
      rounds.push(states)
    }
    if (view !== undefined && this.init.membersDigest?.() !== view) {
      this.stats.kept += candidates.length
      return
    }
    const states = rounds[1]!
    const purgeable: number[] = []
    candidates.forEach((candidate, i) => {
      const owners = ring.owners(ring.partitionOf(candidate.key))
      const ok = rounds.every(asked => others.every(m => {
        const state = asked.get(m)?.[i]
        return owners.includes(m) ? state === 'same' : state !== 'different'
      }))
      if (ok) purgeable.push(i)
    })
    this.stats.kept += candidates.length - purgeable.length
    if (purgeable.length === 0) return
    // The others first: if this fails midway, the copy kept here is what anti-entropy spreads again.
    for (const member of others) {
      const holds = purgeable.filter(i => states.get(member)?.[i] === 'same').map(i => candidates[i]!)
      for (let i = 0; i < holds.length; i += SYNC_LIMITS.keysPerRequest) {
        try {
          expect(await this.init.call(member, { type: 'purge', entries: holds.slice(i, i + SYNC_LIMITS.keysPerRequest) }, 'sync'), 'purged')
        } catch {}
      }
    }
    for (const { key, digest } of purgeable.map(i => candidates[i]!)) {
      if (await this.init.replica.removeIfUnchanged(key, digest)) this.stats.purged++
    }
  }
}

/** A tombstone (every sibling one) whose newest sibling is older than the grace period. */
function expired (object: DvvSet, now: number, graceMs: number): boolean {
  if (object.siblings.length === 0 || !isDeleted(object)) return false
  let newest = 0
  for (const s of object.siblings) newest = Math.max(newest, s.timestamp)
  return newest + graceMs <= now
}
