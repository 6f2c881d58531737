import { InvalidArgumentError, QuorumError } from '../errors.ts'

/**
 * The pure core of a write, after riak_kv_put_core: it holds no socket or timer. The coordinator
 * tells it each acknowledgement and failure as they arrive; it says when the write is done, what
 * to answer, and (with a sloppy quorum) which fallback takes over a failed replica's copy.
 */

/** A replica a write goes to; `hintFor` names the primary a fallback holds the copy for. */
export interface WriteTarget {
  readonly member: string
  readonly hintFor?: string
}

export interface WritePlanInput {
  /** The partition's primaries, in preference order (ring.owners). */
  readonly owners: readonly string[]
  /** Every other member, in preference order (ring.fallbacks). */
  readonly fallbacks: readonly string[]
  /** The local liveness view: routing only, never ownership. */
  readonly isUp: (member: string) => boolean
  /** Send a down primary's copy to the next live fallback, with a hint (Dynamo §4.6). */
  readonly sloppy: boolean
}

export interface WritePlan {
  readonly targets: WriteTarget[]
  /** Live fallbacks not used yet, in order: where a failed target's copy goes next. */
  readonly spare: string[]
}

/** Which members a write goes to: the primaries, with down ones replaced by fallbacks when sloppy. */
export function planWrite (input: WritePlanInput): WritePlan {
  const spare = input.sloppy ? input.fallbacks.filter(m => input.isUp(m)) : []
  const targets: WriteTarget[] = []
  for (const owner of input.owners) {
    if (input.sloppy && !input.isUp(owner)) {
      const fallback = spare.shift()
      // With no live fallback left, try the down primary anyway: the detector may be wrong.
      targets.push(fallback === undefined ? { member: owner } : { member: fallback, hintFor: owner })
    } else {
      targets.push({ member: owner })
    }
  }
  return { targets, spare }
}

export type PutOutcome =
  | { readonly done: false }
  | { readonly done: true, readonly ok: true, readonly acks: number }
  | { readonly done: true, readonly ok: false, readonly error: QuorumError }

export interface PutCoreInit {
  readonly op?: 'put' | 'delete'
  readonly w: number
  readonly plan: WritePlan
}

type TargetState = 'pending' | 'acked' | 'failed'

export class PutCore {
  private readonly op: 'put' | 'delete'
  private readonly w: number
  private readonly spare: string[]
  private readonly state = new Map<string, TargetState>()
  private readonly targets = new Map<string, WriteTarget>()
  private readonly failures: string[] = []
  private acks = 0
  private decided: PutOutcome = { done: false }

  constructor (init: PutCoreInit) {
    // W may exceed the targets when the ring has fewer members than N: the write then fails
    // with a QuorumError saying so, as it would with members down.
    if (!Number.isInteger(init.w) || init.w < 1) throw new InvalidArgumentError(`w must be a positive integer, got ${init.w}`)
    this.op = init.op ?? 'put'
    this.w = init.w
    this.spare = [...init.plan.spare]
    for (const target of init.plan.targets) {
      if (this.state.has(target.member)) throw new InvalidArgumentError(`write target ${target.member} listed twice`)
      this.state.set(target.member, 'pending')
      this.targets.set(target.member, target)
    }
    this.decide()
  }

  /** A target stored its copy. Unknown members and repeats are ignored. */
  ack (member: string): void {
    if (this.state.get(member) !== 'pending') return
    this.state.set(member, 'acked')
    this.acks++
    this.decide()
  }

  /**
   * A target failed or timed out. With spare fallbacks left, returns the replacement target that
   * now holds the copy for the same primary; the coordinator sends to it.
   */
  fail (member: string, reason: string): WriteTarget | undefined {
    if (this.state.get(member) !== 'pending') return undefined
    this.state.set(member, 'failed')
    this.failures.push(`${member}: ${reason}`)
    const failed = this.targets.get(member)
    const next = this.spare.shift()
    let replacement: WriteTarget | undefined
    if (next !== undefined && failed !== undefined) {
      replacement = { member: next, hintFor: failed.hintFor ?? failed.member }
      this.state.set(next, 'pending')
      this.targets.set(next, replacement)
    }
    this.decide()
    return replacement
  }

  /** A target that missed the request's deadline: failed, and too late to replace. */
  expire (member: string, reason: string): void {
    if (this.state.get(member) !== 'pending') return
    this.state.set(member, 'failed')
    this.failures.push(`${member}: ${reason}`)
    this.spare.length = 0
    this.decide()
  }

  /** Targets that have neither acknowledged nor failed. */
  pending (): string[] {
    return [...this.state].filter(([, s]) => s === 'pending').map(([m]) => m)
  }

  outcome (): PutOutcome {
    return this.decided
  }

  /** True once every target has answered one way or the other. */
  settled (): boolean {
    for (const s of this.state.values()) if (s === 'pending') return false
    return true
  }

  private decide (): void {
    if (this.decided.done) return
    if (this.acks >= this.w) {
      this.decided = { done: true, ok: true, acks: this.acks }
      return
    }
    let pending = 0
    for (const s of this.state.values()) if (s === 'pending') pending++
    if (this.acks + pending + this.spare.length < this.w) {
      const asked = this.state.size
      this.decided = { done: true, ok: false, error: new QuorumError(this.op, this.w, this.acks, asked, this.failures) }
    }
  }
}
