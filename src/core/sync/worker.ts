import type { Env, Timer } from '../env.ts'
import type { Ring } from '../ring.ts'
import type { SyncChannel, SyncRequest, SyncResponse } from './messages.ts'
import type { SyncReplica } from './replica.ts'

/**
 * One request to another member on a sync channel. The node applies the deadline and feeds the
 * failure detector; an error response comes back as a rejection named after the remote error.
 */
export type MemberCall = (member: string, request: SyncRequest, channel: SyncChannel) => Promise<SyncResponse>

/** What every background worker of a member is given. */
export interface WorkerInit {
  readonly self: string
  readonly env: Env
  readonly replica: SyncReplica
  readonly ring: () => Ring
  /** The failure detector's view: routing only. */
  readonly isUp: (member: string) => boolean
  readonly call: MemberCall
}

/**
 * A background job run every `intervalMs` (the delay `next` returns), one run at a time: a slow
 * run pushes the next one back instead of piling runs up. Errors end the run, not the job.
 */
export class Periodic {
  private readonly env: Env
  private readonly run: () => Promise<void>
  private readonly next: () => number
  private timer: Timer | undefined
  private running: Promise<void> | undefined
  private stopped = true

  constructor (env: Env, run: () => Promise<void>, next: () => number) {
    this.env = env
    this.run = run
    this.next = next
  }

  start (): void {
    if (!this.stopped) return
    this.stopped = false
    this.schedule(this.next())
  }

  stop (): void {
    this.stopped = true
    this.timer?.cancel()
    this.timer = undefined
  }

  /** Run now (after the run in progress, if any); resolves when that run is over. */
  async now (): Promise<void> {
    while (this.running !== undefined) await this.running
    await this.once()
  }

  /** Resolves once the run in progress, if any, is over. */
  async idle (): Promise<void> {
    while (this.running !== undefined) await this.running
  }

  private schedule (ms: number): void {
    if (this.stopped) return
    this.timer?.cancel()
    this.timer = this.env.setTimer(ms, () => {
      this.timer = undefined
      if (this.running !== undefined) {
        this.schedule(this.next())
        return
      }
      void this.once().then(() => { this.schedule(this.next()) })
    })
  }

  private async once (): Promise<void> {
    const run = this.run().catch(() => {})
    this.running = run
    try {
      await run
    } finally {
      if (this.running === run) this.running = undefined
    }
  }
}

/** Spread runs over ±25 % of the interval, so members do not all run at once. */
export function jitter (env: Env, ms: number): number {
  return Math.round(ms * (0.75 + env.random() * 0.5))
}
