/**
 * The bench's side of the load generators (bench/ycsb/worker.ts): starts G of them against a
 * started target, releases each stage in all of them at once (they wait at a barrier), shows their
 * progress, samples the target's CPU over each measuring window, and merges their phases into rows.
 */
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stderrTail, sumCpuMs } from '../processes.ts'
import type { Processes } from '../processes.ts'
import type { GoMessage, PhaseResult, WorkerJob, WorkerMessage } from './messages.ts'
import type { Progress } from './progress.ts'
import { mergeResults, rowsOf } from './report.ts'
import type { Row } from './report.ts'

const WORKER = join(fileURLToPath(new URL('.', import.meta.url)), 'worker.ts')
/** Nominal seconds per inserted record, to weigh the load phase in the progress bar. */
export const INSERT_WEIGHT_S = 1 / 400

/**
 * Runs `count` generators against one started target, each stage in all of them at once; merges
 * their phases and resolves with the rows. If one fails, the others are stopped.
 */
export async function runGenerators (procs: Processes, progress: Progress, job: Omit<WorkerJob, 'generator'>, count: number, servers: readonly ChildProcess[]): Promise<Row[]> {
  const target = job.target
  const children = Array.from({ length: count }, (_, index) => {
    const worker: WorkerJob = { ...job, generator: { index, count } }
    return procs.spawn(`${target} generator-${index + 1}`, [WORKER, JSON.stringify(worker)], { ipc: true })
  })
  const tails = children.map(c => stderrTail(c))
  const rows: Row[] = []
  let failure: string | undefined
  let done = 0
  let ready = 0
  let waiting = 0
  /** Per phase (in order): the generators' results so far, and the servers' CPU when its window opened. */
  const phases: Array<{ results: PhaseResult[], window?: { at: number, cpu: number | undefined } }> = []
  const resultsFrom = children.map(() => 0)
  const windowsFrom = children.map(() => 0)
  const ticks = children.map((): { done: number, total: number, opsPerSec: number } | undefined => undefined)
  let stageIsLoad = false
  const phase = (k: number): { results: PhaseResult[], window?: { at: number, cpu: number | undefined } } => (phases[k] ??= { results: [] })
  const onMessage = (i: number, message: WorkerMessage): void => {
    switch (message.type) {
      case 'ready':
        if (++ready === count) progress.log(`${target}: ready (${(message.ms / 1000).toFixed(1)} s), ${count} generator process${count === 1 ? '' : 'es'}`)
        break
      case 'waiting':
        if (++waiting === count) {
          waiting = 0
          for (const child of children) if (child.connected) child.send({ type: 'go' } satisfies GoMessage)
        }
        break
      case 'stage': {
        if (i !== 0) break
        ticks.fill(undefined)
        stageIsLoad = message.stage === 'load'
        const weight = message.stage === 'load' ? message.total * INSERT_WEIGHT_S : message.total / 1000
        const what = message.stage === 'settle'
          ? 'settling'
          : message.stage === 'load' ? `loading ${message.total.toLocaleString('en-US')} records` : `workload ${message.workload} x${message.clients} ${message.stage}`
        progress.stage(`${target}: ${what}`, weight)
        break
      }
      case 'tick': {
        ticks[i] = message
        const known = ticks.filter(t => t !== undefined)
        const rate = known.reduce((sum, t) => sum + t.opsPerSec, 0)
        const sumDone = known.reduce((sum, t) => sum + t.done, 0)
        const lead = ticks[0] ?? message
        progress.update(stageIsLoad ? sumDone / Math.max(1, job.records) : lead.done / Math.max(1, lead.total), stageIsLoad
          ? `${sumDone.toLocaleString('en-US')}/${job.records.toLocaleString('en-US')}  ${rate.toFixed(0)} ops/s`
          : `${(lead.done / 1000).toFixed(0)}/${(lead.total / 1000).toFixed(0)} s  ${rate.toFixed(0)} ops/s`)
        break
      }
      case 'window': {
        const p = phase(bump(windowsFrom, i))
        p.window ??= { at: performance.now(), cpu: sumCpuMs(servers) }
        break
      }
      case 'result': {
        const p = phase(bump(resultsFrom, i))
        p.results.push(message.result)
        if (p.results.length < count) break
        const now = sumCpuMs(servers)
        const serverCpu = now === undefined || p.window?.cpu === undefined ? undefined : (now - p.window.cpu) / (performance.now() - p.window.at) * 100
        const added = rowsOf(target, mergeResults(p.results), serverCpu)
        rows.push(...added)
        for (const r of added) {
          progress.log(`${target} ${r.workload === 'load' ? 'insert' : `workload ${r.workload}`} ${r.op} x${r.clients}: ${r.opsPerSec.toFixed(0)} ops/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms` +
            `${r.maxSiblings !== undefined && r.maxSiblings > 1 ? `, reads saw up to ${r.maxSiblings} siblings` : ''}` +
            `${r.errors > 0 ? `, ${r.errors} errors (${r.firstError ?? ''})` : ''}`)
        }
        break
      }
      case 'failed':
        failure ??= count === 1 ? message.message : `generator ${i + 1}: ${message.message}`
        // The others would wait at the next barrier for ever.
        for (const child of children) void procs.stop(child)
        break
      case 'done':
        done++
        break
    }
  }
  const exits = children.map(async (child, i) => {
    child.stdout?.on('data', (chunk: Buffer) => { progress.log(chunk.toString().trimEnd()) })
    child.on('message', (message: WorkerMessage) => { onMessage(i, message) })
    const how = await new Promise<string>(resolve => child.once('exit', (code, signal) => { resolve(signal ?? `code ${code}`) }))
    if (failure === undefined && how !== 'code 0') {
      failure = `generator ${i + 1} exited (${how}) before it was done${tails[i]?.() === '' ? '' : `: ${tails[i]?.() ?? ''}`}`
      for (const other of children) void procs.stop(other)
    }
  })
  await Promise.all(exits)
  if (failure !== undefined) throw new Error(failure)
  if (done < count) throw new Error(`${count - done} generator(s) ended before they were done`)
  return rows
}

/** Returns counts[i] and adds one to it. */
function bump (counts: number[], i: number): number {
  const k = counts[i] ?? 0
  counts[i] = k + 1
  return k
}

