import { Worker } from 'node:worker_threads'
import { simulate } from './run.ts'
import type { SimOptions, SimResult } from './run.ts'

/** A run's result without its trace: what a worker sends back (traces are large; replay a seed to see one). */
export type SeedSummary = Omit<SimResult, 'trace'>

/** What became of one seed: its result, or the exception the simulation threw. */
export type SeedOutcome = { readonly seed: number, readonly result: SeedSummary } | { readonly seed: number, readonly error: string }

export interface SeedRange {
  readonly from: number
  readonly count: number
  /** Worker threads to run seeds on; 1 runs them in this thread. */
  readonly jobs: number
  readonly options: SimOptions
}

/** What the parent sends a worker: the seeds to run next. */
export interface SeedChunk { readonly seeds: readonly number[] }

/** What a worker is started with. */
export interface SeedWorkerData { readonly options: SimOptions }

const WORKER = new URL('./seed-worker.ts', import.meta.url)

/**
 * Runs seeds `from` to `from + count - 1` and hands each outcome to `onOutcome` in seed order,
 * whatever the number of jobs: each seed is its own simulation, so which thread ran it, and
 * after which other seeds, changes nothing in its result. Seeds go out to the workers in small
 * chunks as each finishes its last, so a slow seed holds up one worker, not the rest.
 *
 * Rejects if a worker dies (not if a simulation throws: that is the seed's outcome); the other
 * workers are stopped first.
 */
export async function runSeeds (range: SeedRange, onOutcome: (outcome: SeedOutcome) => void): Promise<void> {
  if (!Number.isSafeInteger(range.jobs) || range.jobs < 1) throw new RangeError(`jobs must be a positive integer, not ${range.jobs}`)
  if (range.jobs === 1 || range.count <= 1) {
    for (let seed = range.from; seed < range.from + range.count; seed++) onOutcome(await runOne(seed, range.options))
    return
  }

  const end = range.from + range.count
  // Small enough that the workers finish together, large enough that messages cost nothing.
  const chunkSize = Math.max(1, Math.min(20, Math.ceil(range.count / (range.jobs * 8))))
  let nextToSend = range.from
  let nextToReport = range.from
  const early = new Map<number, SeedOutcome>()
  const workers: Worker[] = []

  await new Promise<void>((resolve, reject) => {
    let failed = false
    const fail = (err: Error): void => {
      if (failed) return
      failed = true
      reject(err)
    }
    const report = (outcome: SeedOutcome): void => {
      early.set(outcome.seed, outcome)
      for (let next = early.get(nextToReport); next !== undefined; next = early.get(nextToReport)) {
        early.delete(nextToReport)
        nextToReport++
        try { onOutcome(next) } catch (err) { fail(err as Error); return }
      }
      if (nextToReport === end) resolve()
    }
    const startWorker = (): void => {
      const data: SeedWorkerData = { options: range.options }
      const worker = new Worker(WORKER, { workerData: data })
      workers.push(worker)
      let outstanding = 0
      let running: readonly number[] = []
      const feed = (): void => {
        if (nextToSend >= end) return
        const seeds: number[] = []
        for (; seeds.length < chunkSize && nextToSend < end; nextToSend++) seeds.push(nextToSend)
        outstanding = seeds.length
        running = seeds
        const chunk: SeedChunk = { seeds }
        worker.postMessage(chunk)
      }
      worker.on('message', (outcome: SeedOutcome) => {
        if (failed) return
        report(outcome)
        if (--outstanding === 0) feed()
      })
      // An exception outside any seed's simulate (an unhandled rejection, say) ends the worker.
      const inFlight = (): string => running.slice(running.length - outstanding).join(' ')
      worker.on('error', err => { fail(new Error(`a simulator worker failed running seeds ${inFlight()}: ${err.message}`, { cause: err })) })
      worker.on('exit', code => {
        if (nextToReport < end) fail(new Error(`a simulator worker exited (code ${code}) before seeds ${nextToReport}..${end - 1} were reported`))
      })
      feed()
    }
    for (let i = 0; i < Math.min(range.jobs, Math.ceil(range.count / chunkSize)); i++) startWorker()
  }).finally(async () => {
    await Promise.all(workers.map(async worker => await worker.terminate()))
  })
}

/** One seed in this thread; a throw is the seed's outcome, not the run's. */
export async function runOne (seed: number, options: SimOptions): Promise<SeedOutcome> {
  try {
    const { trace: _trace, ...result } = await simulate(seed, options)
    return { seed, result }
  } catch (err) {
    return { seed, error: (err as Error).stack ?? String(err) }
  }
}
