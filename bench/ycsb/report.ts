/**
 * The ycsb benchmark's results: rows computed from the generator's HDR histograms, the terminal
 * table, Shoal's ratios to every other target, the goals checked against them, and the
 * JSON kept in bench/results/latest.json.
 */
import { renderTable } from '../../src/cli/table.ts'
import { decodeFromCompressedBase64, encodeIntoCompressedBase64 } from 'hdr-histogram-js'
import type { TargetName } from './targets.ts'
import type { PhaseName, PhaseResult } from './messages.ts'
import type { OpName } from './workload.ts'

/** One row of latest.json's `results`: a target, workload, operation and client count. */
export interface Row {
  readonly target: TargetName
  /** 'load' is the insert phase (100 % put to fresh keys); A, B, C are YCSB's workloads. */
  readonly workload: PhaseName
  readonly op: OpName
  readonly clients: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p95Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly maxMs: number
  readonly meanMs: number
  readonly ops: number
  readonly errors: number
  readonly firstError?: string
  /** The load generators' CPU in % of one core (summed), and the busiest one's event-loop utilisation, in the window. */
  readonly generatorCpuPercent: number
  readonly generatorElu: number
  /** The target's server processes' CPU, in % of one core, summed, in the window. */
  readonly serverCpuPercent?: number
  /** Shoal: the most siblings a read returned in the phase. */
  readonly maxSiblings?: number
  /** Latencies in microseconds, an HDR histogram in its compressed base64 form. */
  readonly hdr: string
}

export interface Report {
  readonly date: string
  /** The command that made this file, to run it again. */
  readonly command: string
  readonly machine: { readonly cpus: number, readonly cpuModel: string, readonly memoryGiB: number, readonly node: string, readonly platform: string }
  readonly seed: number
  readonly parameters: {
    readonly records: number
    readonly valueBytes: number
    readonly zipfianConstant: number
    readonly clients: readonly number[]
    readonly loadClients: number
    readonly generators: number
    readonly workloads: readonly string[]
    readonly settleMs: number
    readonly warmupMs: number
    readonly measureMs: number
    readonly targets: readonly string[]
  }
  readonly durability: Partial<Record<TargetName, string>>
  readonly skipped: ReadonlyArray<{ readonly target: string, readonly reason: string }>
  readonly results: readonly Row[]
}

const round = (x: number, digits = 3): number => {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/**
 * One phase as measured by several generators at once: histograms added, counts and errors summed,
 * the longest window, the generators' CPU summed and the busiest event loop.
 */
export function mergeResults (results: readonly PhaseResult[]): PhaseResult {
  const first = results[0]
  if (first === undefined) throw new Error('nothing to merge')
  const histograms: Partial<Record<OpName, string>> = {}
  const counts: Partial<Record<OpName, number>> = {}
  const errors: Partial<Record<OpName, number>> = {}
  for (const op of ['get', 'put'] as const) {
    const encoded = results.map(r => r.histograms[op]).filter((h): h is string => h !== undefined)
    const [head, ...rest] = encoded.map(h => decodeFromCompressedBase64(h))
    if (head !== undefined) {
      for (const h of rest) { head.add(h); h.destroy() }
      histograms[op] = encodeIntoCompressedBase64(head)
      counts[op] = head.totalCount
      head.destroy()
    }
    const e = results.reduce((sum, r) => sum + (r.errors[op] ?? 0), 0)
    if (e > 0) errors[op] = e
  }
  const firstError = results.find(r => r.firstError !== undefined)?.firstError
  const stats: Record<string, number> = {}
  for (const r of results) for (const [k, v] of Object.entries(r.stats)) stats[k] = Math.max(stats[k] ?? v, v)
  return {
    workload: first.workload,
    clients: first.clients,
    histograms,
    counts,
    windowMs: Math.max(...results.map(r => r.windowMs)),
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    generatorCpuPercent: results.reduce((sum, r) => sum + r.generatorCpuPercent, 0),
    generatorElu: Math.max(...results.map(r => r.generatorElu)),
    stats
  }
}

/** A phase's rows, one per operation it ran. */
export function rowsOf (target: TargetName, result: PhaseResult, serverCpuPercent: number | undefined): Row[] {
  const rows: Row[] = []
  for (const op of ['get', 'put'] as const) {
    const hdr = result.histograms[op]
    if (hdr === undefined) continue
    const h = decodeFromCompressedBase64(hdr)
    const ms = (us: number): number => round(us / 1000)
    rows.push({
      target,
      workload: result.workload,
      op,
      clients: result.clients,
      opsPerSec: round(h.totalCount / (result.windowMs / 1000), 1),
      p50Ms: ms(h.getValueAtPercentile(50)),
      p95Ms: ms(h.getValueAtPercentile(95)),
      p99Ms: ms(h.getValueAtPercentile(99)),
      p999Ms: ms(h.getValueAtPercentile(99.9)),
      maxMs: ms(h.maxValue),
      meanMs: ms(h.mean),
      ops: h.totalCount,
      errors: result.errors[op] ?? 0,
      ...(result.firstError === undefined ? {} : { firstError: result.firstError }),
      generatorCpuPercent: round(result.generatorCpuPercent, 1),
      generatorElu: round(result.generatorElu, 3),
      ...(serverCpuPercent === undefined ? {} : { serverCpuPercent: round(serverCpuPercent, 1) }),
      ...(result.stats.maxSiblings === undefined ? {} : { maxSiblings: result.stats.maxSiblings }),
      hdr
    })
    h.destroy()
  }
  return rows
}

/** Points of a row's latency CDF: [milliseconds, fraction of operations at or below]. */
export function cdfOf (row: Row): Array<[number, number]> {
  const h = decodeFromCompressedBase64(row.hdr)
  const percentiles = [0.1, 1, 2, 5, ...Array.from({ length: 17 }, (_, i) => 10 + i * 5), 92, 94, 95, 96, 97, 98, 99, 99.5, 99.9, 99.95, 99.99, 100]
  const points = percentiles.map((p): [number, number] => [h.getValueAtPercentile(p) / 1000, p / 100])
  h.destroy()
  return points
}

/** Aligns columns: the first `left` columns to the left, the others (numbers) to the right. */
export function formatTable (header: readonly string[], rows: ReadonlyArray<readonly string[]>, left: number): string {
  return renderTable(header, rows, { right: header.map((_, c) => c).filter(c => c >= left) }).join('\n')
}

const fixed = (x: number): string => x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)

/** Every row: throughput, percentiles, errors, and how busy the generator and the servers were. */
export function resultsTable (rows: readonly Row[]): string {
  return formatTable(
    ['target', 'workload', 'op', 'clients', 'ops/s', 'p50 ms', 'p95 ms', 'p99 ms', 'p99.9 ms', 'errors', 'gen cpu %', 'gen loop', 'servers cpu %'],
    rows.map(r => [
      r.target, r.workload, r.op, String(r.clients), r.opsPerSec.toFixed(0), fixed(r.p50Ms), fixed(r.p95Ms), fixed(r.p99Ms), fixed(r.p999Ms),
      String(r.errors), r.generatorCpuPercent.toFixed(0), `${(r.generatorElu * 100).toFixed(0)} %`, r.serverCpuPercent === undefined ? '-' : r.serverCpuPercent.toFixed(0)
    ]),
    3)
}

const key = (r: Pick<Row, 'workload' | 'op' | 'clients'>): string => `${r.workload}|${r.op}|${r.clients}`

/**
 * `shoal` against every other target, row by row: throughput ratio (above 1: Shoal does more) and
 * p50 ratio (below 1: Shoal answers sooner).
 */
export function ratioTable (rows: readonly Row[], shoal: TargetName = 'shoal-3'): string | undefined {
  const mine = rows.filter(r => r.target === shoal)
  const others = [...new Set(rows.map(r => r.target))].filter(t => t !== shoal)
  if (mine.length === 0 || others.length === 0) return undefined
  const byTarget = new Map(others.map(t => [t, new Map(rows.filter(r => r.target === t).map(r => [key(r), r]))]))
  const cells = mine.map(r => [
    r.workload, r.op, String(r.clients),
    ...others.map(t => {
      const o = byTarget.get(t)?.get(key(r))
      return o === undefined || o.opsPerSec === 0 || o.p50Ms === 0 ? '-' : `${(r.opsPerSec / o.opsPerSec).toFixed(2)}x / ${(r.p50Ms / o.p50Ms).toFixed(2)}x`
    })
  ])
  return `${shoal} against each target: ops/s ratio / p50 ratio (ops/s above 1x and p50 below 1x favour ${shoal})\n` +
    formatTable(['workload', 'op', 'clients', ...others], cells, 3)
}

export interface Goal {
  readonly goal: string
  /** The measured figure, e.g. "0.83x"; undefined when a target it needs did not run. */
  readonly measured?: string
  readonly met?: boolean
}

function find (rows: readonly Row[], target: TargetName, workload: PhaseName, op: OpName, clients: number): Row | undefined {
  return rows.find(r => r.target === target && r.workload === workload && r.op === op && r.clients === clients)
}

/** Issue 6's goals, judged on this run's rows (puts: the insert phase; gets: workload C with `clients`). */
export function goals (rows: readonly Row[], clients = 32): Goal[] {
  const out: Goal[] = []
  const ratio = (goal: string, a: Row | undefined, b: Row | undefined, figure: (a: Row, b: Row) => number, holds: (x: number) => boolean): void => {
    if (a === undefined || b === undefined) { out.push({ goal }); return }
    const x = figure(a, b)
    out.push({ goal, measured: `${x.toFixed(2)}x`, met: holds(x) })
  }
  // Puts: the insert phase, all writes, whatever its caller count (the same on every target).
  const inserts = (target: TargetName): Row | undefined => rows.find(r => r.target === target && r.workload === 'load' && r.op === 'put')
  const shoalPut = inserts('shoal-3')
  const shoalGet = find(rows, 'shoal-3', 'C', 'get', clients)
  ratio('put throughput, shoal-3 / etcd >= 1 (insert phase)', shoalPut, inserts('etcd'), (a, b) => a.opsPerSec / b.opsPerSec, x => x >= 1)
  ratio(`get throughput, shoal-3 / etcd >= 2 (workload C, ${clients} clients)`, shoalGet, find(rows, 'etcd', 'C', 'get', clients), (a, b) => a.opsPerSec / b.opsPerSec, x => x >= 2)
  ratio('put p50, shoal-3 / floor <= 2.5 (insert phase)', shoalPut, inserts('floor'), (a, b) => a.p50Ms / b.p50Ms, x => x <= 2.5)
  ratio('get p50, shoal-3-client-driven / floor <= 1.3 (workload C)', find(rows, 'shoal-3-client-driven', 'C', 'get', clients), find(rows, 'floor', 'C', 'get', clients), (a, b) => a.p50Ms / b.p50Ms, x => x <= 1.3)
  ratio('get p50, kad-dht / shoal-3 >= 20 (workload C)', find(rows, 'kad-dht', 'C', 'get', clients), shoalGet, (a, b) => a.p50Ms / b.p50Ms, x => x >= 20)
  const shoalRows = rows.filter(r => r.target.startsWith('shoal-'))
  if (shoalRows.length === 0) out.push({ goal: 'p99 <= 10x p50 on every Shoal row' })
  else {
    const worst = shoalRows.reduce((w, r) => r.p99Ms / r.p50Ms > w.p99Ms / w.p50Ms ? r : w)
    const x = worst.p99Ms / worst.p50Ms
    out.push({ goal: 'p99 <= 10x p50 on every Shoal row', measured: `${x.toFixed(2)}x (worst: ${worst.target} ${worst.workload} ${worst.op} x${worst.clients})`, met: x <= 10 })
  }
  return out
}

export function goalsText (list: readonly Goal[]): string {
  return 'goals (issue 6; measured, not asserted)\n' + formatTable(['goal', 'measured', ''],
    list.map(g => [g.goal, g.measured ?? '-', g.met === undefined ? 'not measured' : g.met ? 'met' : 'missed']), 1)
}
