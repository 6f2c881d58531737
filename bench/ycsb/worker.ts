/**
 * The ycsb load generator: a process apart from the bench's own and the target's, the same
 * code for every target; the bench runs G of them (--generators), each with every G-th client
 * and every G-th record, and starts each stage in all of them at once (a barrier over IPC), so
 * one event loop is never what limits a target. It connects to the target (a {@link Driver}), settles it under load,
 * loads the records, then runs each workload as a closed loop of C clients (each one operation
 * at a time, its operations drawn from its own seeded stream), recording each operation's latency
 * in an HDR histogram per operation. It reports each phase over its IPC channel, with its own CPU
 * use and event-loop utilisation in the measuring window: a generator near one full core, or an
 * event loop near 100 % busy, would be measuring itself rather than the target.
 *
 * The job comes as JSON in argv[2] (a WorkerJob, bench/ycsb/messages.ts).
 */
import { performance } from 'node:perf_hooks'
import { build, encodeIntoCompressedBase64 } from 'hdr-histogram-js'
import type { Histogram } from 'hdr-histogram-js'
import { createDriver } from './driver.ts'
import type { Driver } from './driver.ts'
import { shareOf } from './messages.ts'
import type { GoMessage, PhaseName, PhaseResult, WorkerJob, WorkerMessage } from './messages.ts'
import { WORKLOAD, keyOf, operationStream, valueOf } from './workload.ts'
import type { OpName, WorkloadName } from './workload.ts'

const TICK_MS = 500
/** Latencies above a minute are clamped: no request here may take that long (its deadline is 15 s). */
const HIGHEST_US = 60_000_000
/** After a failed operation a client pauses this long, so a target that fails at once does not spin the loop. */
const ERROR_PAUSE_MS = 10
const INSERT_ATTEMPTS = 3

function send (message: WorkerMessage): void {
  process.send?.(message)
}

/** Sends and resolves once the message is handed to the channel, so exiting cannot drop it. */
async function sendLast (message: WorkerMessage): Promise<void> {
  await new Promise<void>(resolve => {
    if (process.send === undefined || !process.connected) resolve()
    else process.send(message, undefined, {}, () => { resolve() })
  })
}

/** Waits until the bench says every generator is ready for the next stage. */
async function barrier (): Promise<void> {
  const go = new Promise<void>(resolve => {
    const onMessage = (message: GoMessage): void => {
      if (message.type !== 'go') return
      process.off('message', onMessage)
      resolve()
    }
    process.on('message', onMessage)
  })
  send({ type: 'waiting' })
  await go
}

function histogram (): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_US, numberOfSignificantValueDigits: 3, autoResize: false })
}

function describe (err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

const pause = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** Records each operation's latency per op, and errors; measures the generator itself over the window. */
class Recorder {
  readonly histograms = new Map<OpName, Histogram>()
  readonly errors = new Map<OpName, number>()
  firstError: string | undefined
  lastEnd = 0
  private readonly cpu = process.cpuUsage()
  private readonly elu = performance.eventLoopUtilization()
  readonly from = performance.now()

  record (op: OpName, startMs: number, endMs: number): void {
    let h = this.histograms.get(op)
    if (h === undefined) this.histograms.set(op, h = histogram())
    h.recordValue(Math.min(HIGHEST_US, Math.max(1, Math.round((endMs - startMs) * 1000))))
    if (endMs > this.lastEnd) this.lastEnd = endMs
  }

  fail (op: OpName, err: unknown): void {
    this.errors.set(op, (this.errors.get(op) ?? 0) + 1)
    this.firstError ??= `${op}: ${describe(err)}`
  }

  count (): number {
    let n = 0
    for (const h of this.histograms.values()) n += h.totalCount
    return n
  }

  result (workload: PhaseName, clients: number, stats: Record<string, number>): PhaseResult {
    const windowMs = Math.max(1, this.lastEnd - this.from)
    const cpu = process.cpuUsage(this.cpu)
    const elu = performance.eventLoopUtilization(this.elu)
    const histograms: Partial<Record<OpName, string>> = {}
    const counts: Partial<Record<OpName, number>> = {}
    for (const [op, h] of this.histograms) {
      histograms[op] = encodeIntoCompressedBase64(h)
      counts[op] = h.totalCount
      h.destroy()
    }
    return {
      workload,
      clients,
      histograms,
      counts,
      windowMs,
      errors: Object.fromEntries(this.errors),
      ...(this.firstError === undefined ? {} : { firstError: this.firstError }),
      generatorCpuPercent: (cpu.user + cpu.system) / 1000 / (performance.now() - this.from) * 100,
      generatorElu: elu.utilization,
      stats
    }
  }
}

/** Sends a tick every TICK_MS while `during` runs. */
async function ticking<T> (progress: () => { done: number, total: number, ops: number }, during: Promise<T>): Promise<T> {
  let lastOps = 0
  let lastAt = performance.now()
  const timer = setInterval(() => {
    const { done, total, ops } = progress()
    const now = performance.now()
    send({ type: 'tick', done, total, opsPerSec: (ops - lastOps) / ((now - lastAt) / 1000) })
    lastOps = ops
    lastAt = now
  }, TICK_MS)
  try {
    return await during
  } finally {
    clearInterval(timer)
  }
}

/** Puts to keys outside the key space for `ms`, nothing recorded: warms every process and settles a new cluster. */
async function settle (driver: Driver, job: WorkerJob, value: Uint8Array): Promise<void> {
  if (job.settleMs <= 0) return
  const callers = shareOf(job.loadClients, job.generator.index, job.generator.count).length
  send({ type: 'stage', workload: 'settle', clients: job.loadClients, stage: 'settle', total: job.settleMs })
  const start = performance.now()
  const until = start + job.settleMs
  let seq = 0
  let ok = 0
  let firstError: string | undefined
  let errors = 0
  const loop = async (): Promise<void> => {
    while (performance.now() < until) {
      try {
        await driver.put(`settle${job.generator.index}-${seq++}`, value)
        ok++
      } catch (err) {
        errors++
        firstError ??= describe(err)
        await pause(ERROR_PAUSE_MS)
      }
    }
  }
  await ticking(() => ({ done: performance.now() - start, total: job.settleMs, ops: ok }),
    Promise.all(Array.from({ length: callers }, loop)))
  if (ok === 0 && callers > 0) throw new Error(`no put succeeded while settling (${errors} failed; first: ${firstError ?? ''})`)
}

/** The load phase: every record put once, by `loadClients` callers; recorded as workload 'load'. */
async function load (driver: Driver, job: WorkerJob, value: Uint8Array): Promise<PhaseResult> {
  send({ type: 'stage', workload: 'load', clients: job.loadClients, stage: 'load', total: job.records })
  send({ type: 'window' })
  const recorder = new Recorder()
  const callers = shareOf(job.loadClients, job.generator.index, job.generator.count).length
  // Record i is loader (i mod loadClients)'s, and loaders are dealt out as clients are: a
  // generator with no loader (fewer loaders than generators) has no records either.
  const items = Array.from({ length: job.records }, (_, i) => i).filter(i => (i % job.loadClients) % job.generator.count === job.generator.index)
  let next = 0
  let failed = 0
  const loop = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) {
      const item = items[i] as number
      for (let attempt = 1; ; attempt++) {
        const start = performance.now()
        try {
          await driver.put(keyOf(item), value)
          recorder.record('put', start, performance.now())
          break
        } catch (err) {
          recorder.fail('put', err)
          if (attempt === INSERT_ATTEMPTS) { failed++; break }
          await pause(ERROR_PAUSE_MS)
        }
      }
    }
  }
  await ticking(() => ({ done: Math.min(next, items.length), total: items.length, ops: recorder.count() }),
    Promise.all(Array.from({ length: callers }, loop)))
  if (failed > 0) throw new Error(`${failed} of ${items.length} records could not be loaded (first error: ${recorder.firstError ?? ''})`)
  return recorder.result('load', job.loadClients, driver.stats())
}

/**
 * One workload with `clients` closed loops: a warm-up (not recorded), then the window: operations
 * started in it are recorded, up to their end.
 */
async function runWorkload (driver: Driver, job: WorkerJob, name: WorkloadName, clients: number, value: Uint8Array): Promise<PhaseResult> {
  const workload = WORKLOAD[name]
  const start = performance.now()
  const from = start + job.warmupMs
  const until = from + job.measureMs
  let recorder: Recorder | undefined
  const opened = job.warmupMs > 0 ? pause(job.warmupMs) : Promise.resolve()
  send({ type: 'stage', workload: name, clients, stage: 'warmup', total: job.warmupMs })
  void opened.then(() => {
    recorder = new Recorder()
    send({ type: 'window' })
    send({ type: 'stage', workload: name, clients, stage: 'measure', total: job.measureMs })
  })
  const loop = async (client: number): Promise<void> => {
    const next = operationStream(workload, job.records, job.seed, client)
    for (;;) {
      const begin = performance.now()
      if (begin >= until) return
      const { op, item } = next()
      const key = keyOf(item)
      try {
        if (op === 'get') await driver.get(key)
        else await driver.put(key, value)
      } catch (err) {
        if (begin >= from) recorder?.fail(op, err)
        await pause(ERROR_PAUSE_MS)
        continue
      }
      if (begin >= from) recorder?.record(op, begin, performance.now())
    }
  }
  await ticking(() => {
    const now = performance.now()
    return now < from
      ? { done: now - start, total: job.warmupMs, ops: 0 }
      : { done: Math.min(now, until) - from, total: job.measureMs, ops: recorder?.count() ?? 0 }
  }, Promise.all(shareOf(clients, job.generator.index, job.generator.count).map(async client => { await loop(client) })))
  await opened
  // A generator with no client here (fewer clients than generators) still spans the window, so
  // that its CPU and event-loop figures cover the same time as the others'.
  const left = until - performance.now()
  if (left > 0) await pause(left)
  if (recorder === undefined) throw new Error('the measuring window never opened')
  return recorder.result(name, clients, driver.stats())
}

async function main (): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as WorkerJob
  // The bench went away: nobody to report to, stop generating load.
  process.on('disconnect', () => { process.exit(1) })
  let last: WorkerMessage = { type: 'done' }
  let driver: Driver | undefined
  try {
    const began = performance.now()
    driver = await createDriver(job.spec, { valueBytes: job.valueBytes, concurrency: Math.max(job.loadClients, ...job.clients), readyTimeoutMs: job.readyTimeoutMs })
    send({ type: 'ready', ms: performance.now() - began })
    const value = valueOf(job.valueBytes, job.seed)
    await barrier()
    await settle(driver, job, value)
    await barrier()
    send({ type: 'result', result: await load(driver, job, value) })
    for (const clients of job.clients) {
      for (const name of job.workloads) {
        await barrier()
        send({ type: 'result', result: await runWorkload(driver, job, name, clients, value) })
      }
    }
  } catch (err) {
    last = { type: 'failed', message: describe(err) }
  }
  await driver?.stop().catch(() => {})
  await sendLast(last)
  // Exit without waiting for libp2p's last timers; everything it started is stopped.
  process.exit(last.type === 'done' ? 0 : 1)
}

await main()
