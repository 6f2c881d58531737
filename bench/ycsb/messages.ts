/**
 * What the ycsb bench and its load-generator processes (bench/ycsb/worker.ts) tell each other:
 * the job, handed over as JSON in argv, and the messages on the IPC channel.
 */
import type { TargetSpec } from './driver.ts'
import type { TargetName } from './targets.ts'
import type { OpName, WorkloadName } from './workload.ts'

export interface WorkerJob {
  readonly target: TargetName
  readonly spec: TargetSpec
  readonly records: number
  readonly valueBytes: number
  readonly seed: number
  /** Client counts; each runs every workload. */
  readonly clients: readonly number[]
  readonly workloads: readonly WorkloadName[]
  /** Callers inserting the records in the load phase. */
  readonly loadClients: number
  /** Writes to keys outside the key space before the load phase: JIT warm-up, a new cluster settling. */
  readonly settleMs: number
  readonly warmupMs: number
  readonly measureMs: number
  readonly readyTimeoutMs: number
  /** This generator's index among `count`: it runs clients and records whose index is `index` modulo `count`. */
  readonly generator: { readonly index: number, readonly count: number }
}

/** The indexes in 0..n-1 that are `index` modulo `count`: a generator's share of clients or records. */
export function shareOf (n: number, index: number, count: number): number[] {
  const out: number[] = []
  for (let i = index; i < n; i += count) out.push(i)
  return out
}

/** 'load' is the insert phase: every record put once, the only writes to fresh keys. */
export type PhaseName = 'load' | WorkloadName

export interface PhaseResult {
  readonly workload: PhaseName
  readonly clients: number
  /** Latencies in microseconds, HDR histograms in their compressed base64 form, one per operation run. */
  readonly histograms: Partial<Record<OpName, string>>
  /** Operations recorded, per operation, and the time they took from the window's start to the last one's end. */
  readonly counts: Partial<Record<OpName, number>>
  readonly windowMs: number
  readonly errors: Partial<Record<OpName, number>>
  readonly firstError?: string
  /** The generator's CPU (user + system) over the window, in % of one core, and its event-loop utilisation (0..1). */
  readonly generatorCpuPercent: number
  readonly generatorElu: number
  readonly stats: Record<string, number>
}

export type WorkerMessage =
  | { readonly type: 'ready', readonly ms: number }
  /** Ready for the next stage: the bench answers 'go' once every generator is. */
  | { readonly type: 'waiting' }
  | { readonly type: 'stage', readonly workload: PhaseName | 'settle', readonly clients: number, readonly stage: 'settle' | 'load' | 'warmup' | 'measure', readonly total: number }
  /** Progress in the current stage: ms for timed stages, records for the load. */
  | { readonly type: 'tick', readonly done: number, readonly total: number, readonly opsPerSec: number }
  /** The measuring window opened: the bench samples the servers' CPU now and at the result. */
  | { readonly type: 'window' }
  | { readonly type: 'result', readonly result: PhaseResult }
  | { readonly type: 'failed', readonly message: string }
  | { readonly type: 'done' }

/** The bench's answer to 'waiting'. */
export interface GoMessage { readonly type: 'go' }
