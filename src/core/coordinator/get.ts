import { equals, merge } from '../causality.ts'
import type { DvvSet } from '../causality.ts'
import { InvalidArgumentError, QuorumError } from '../errors.ts'

/**
 * The pure core of a read, after riak_kv_get_core: replies arrive one by one; it says when R
 * replicas have answered, what to return (every replica's object merged, so concurrent writes
 * come back as siblings), and once all have answered, which replicas are stale and need the
 * merged object (read repair).
 */

export type GetOutcome =
  | { readonly done: false }
  /** `object` is undefined when no replica had the key. */
  | { readonly done: true, readonly ok: true, readonly object: DvvSet | undefined }
  | { readonly done: true, readonly ok: false, readonly error: QuorumError }

export interface GetCoreInit {
  readonly r: number
  /** The replicas asked, normally the partition's primaries. */
  readonly replicas: readonly string[]
}

export interface Repair {
  readonly member: string
  readonly object: DvvSet
}

type Reply = { readonly ok: true, readonly object: DvvSet | undefined } | { readonly ok: false, readonly reason: string }

export class GetCore {
  private readonly r: number
  private readonly replicas: readonly string[]
  private readonly replies = new Map<string, Reply>()
  private merged: DvvSet | undefined
  private answered = 0
  private decided: GetOutcome = { done: false }

  constructor (init: GetCoreInit) {
    if (new Set(init.replicas).size !== init.replicas.length) throw new InvalidArgumentError('read replicas must be distinct')
    // R may exceed the replicas when the ring has fewer members than N: a QuorumError then.
    if (!Number.isInteger(init.r) || init.r < 1) throw new InvalidArgumentError(`r must be a positive integer, got ${init.r}`)
    this.r = init.r
    this.replicas = init.replicas
    this.decide()
  }

  /** A replica answered; `object` undefined means it has no copy (counts toward R: notfound_ok). */
  reply (member: string, object: DvvSet | undefined): void {
    if (!this.expects(member)) return
    this.replies.set(member, { ok: true, object })
    this.answered++
    if (object !== undefined) this.merged = this.merged === undefined ? object : merge(this.merged, object)
    this.decide()
  }

  fail (member: string, reason: string): void {
    if (!this.expects(member)) return
    this.replies.set(member, { ok: false, reason })
    this.decide()
  }

  /** A replica that missed the deadline. */
  expire (member: string, reason: string): void {
    this.fail(member, reason)
  }

  /** Replicas that have neither replied nor failed. */
  pending (): string[] {
    return this.replicas.filter(m => !this.replies.has(m))
  }

  outcome (): GetOutcome {
    return this.decided
  }

  /** True once every replica asked has replied or failed. */
  settled (): boolean {
    return this.replies.size === this.replicas.length
  }

  /** The merge of every reply so far: after settled(), the newest the replicas know of the key. */
  object (): DvvSet | undefined {
    return this.merged
  }

  /**
   * Read repair: replicas that replied with less than the merged object. Replicas that failed
   * are left alone (anti-entropy and hinted handoff reach those). Call once the read settles.
   */
  repairs (): Repair[] {
    const merged = this.merged
    if (merged === undefined) return []
    const out: Repair[] = []
    for (const [member, reply] of this.replies) {
      if (reply.ok && (reply.object === undefined || !equals(reply.object, merged))) out.push({ member, object: merged })
    }
    return out
  }

  private expects (member: string): boolean {
    return this.replicas.includes(member) && !this.replies.has(member)
  }

  private decide (): void {
    if (this.decided.done) return
    if (this.answered >= this.r) {
      this.decided = { done: true, ok: true, object: this.merged }
      return
    }
    const outstanding = this.replicas.length - this.replies.size
    if (this.answered + outstanding < this.r) {
      const failures: string[] = []
      for (const [member, reply] of this.replies) if (!reply.ok) failures.push(`${member}: ${reply.reason}`)
      this.decided = { done: true, ok: false, error: new QuorumError('get', this.r, this.answered, this.replicas.length, failures) }
    }
  }
}
