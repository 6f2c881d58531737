/**
 * `npm run bench` (or `npm run bench -- ycsb [flags]`): a YCSB-style benchmark of Shoal beside the
 * floor of its network stack, kad-dht and etcd, in one run on this machine. Prints numbers and
 * asserts nothing.
 *
 * For each target: start it on loopback (bench/ycsb/targets.ts), start the load generators in
 * processes of their own (bench/ycsb/generators.ts and worker.ts, the same code for every target),
 * settle, load the records, run workloads A, B, C with C closed-loop clients each, stop everything. Then the table, Shoal's
 * ratios, the issue's goals, SVG charts (docs/bench/) and bench/results/latest.json. Every
 * process and temp dir started here goes at the end, on error and on Ctrl-C.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { latencyCdfChart, throughputChart } from './charts.ts'
import { INSERT_WEIGHT_S, runGenerators } from './generators.ts'
import { Progress } from './progress.ts'
import { goals, goalsText, ratioTable, resultsTable } from './report.ts'
import type { Report, Row } from './report.ts'
import { BenchProcesses, DURABILITY, TARGETS, startTarget } from './targets.ts'
import type { TargetName } from './targets.ts'
import type { WorkerJob } from './messages.ts'
import { WORKLOAD, WORKLOADS } from './workload.ts'
import type { WorkloadName } from './workload.ts'
import { ZIPFIAN_CONSTANT } from './zipfian.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const RESULTS = join(root, 'bench', 'results', 'latest.json')
const CHARTS = join(root, 'docs', 'bench')
const VALUE_BYTES = 1024
const READY_TIMEOUT_MS = 60_000
/**
 * Two generator processes: a libp2p client does as much noise and yamux work per request as the
 * server it calls, and one event loop driving 32 clients of the floor measured 97 % busy.
 */
const DEFAULT_GENERATORS = 2
/** Nominal seconds for progress: starting a target. */
const START_WEIGHT_S = 6

export const USAGE = `npm run bench [-- ycsb] [--quick] [--targets ${TARGETS.join(',')}] [--workloads A,B,C]
    [--clients 32[,8,1]] [--seconds S] [--warmup S] [--settle S] [--records N] [--load-clients N] [--generators 2] [--seed N]
    [--out FILE] [--charts DIR | --no-charts] [--report FILE]
  --quick      2,000 records, 3 s per workload (figures are rougher); writes to a temp file, no charts
  --report F   prints the tables of a results file again and redraws its charts; runs nothing`

export interface Options {
  readonly targets: readonly TargetName[]
  readonly workloads: readonly WorkloadName[]
  readonly clients: readonly number[]
  readonly records: number
  readonly loadClients: number
  /** Load-generator processes; clients and records are dealt out among them. */
  readonly generators: number
  readonly seed: number
  readonly settleMs: number
  readonly warmupMs: number
  readonly measureMs: number
  readonly out: string
  /** Where the SVG charts go; undefined: none. */
  readonly charts?: string
  readonly quick: boolean
  /** Only re-render this results file. */
  readonly report?: string
}

class UsageError extends Error {
  override readonly name = 'UsageError'
}

function list<T extends string> (flag: string, value: string | undefined, allowed: readonly T[], fallback: readonly T[]): T[] {
  if (value === undefined) return [...fallback]
  const items = value.split(',').map(s => s.trim()).filter(s => s !== '')
  const bad = items.filter(i => !(allowed as readonly string[]).includes(i))
  if (bad.length > 0 || items.length === 0) throw new UsageError(`--${flag} takes some of ${allowed.join(',')}; got ${JSON.stringify(value)}`)
  return [...new Set(items)] as T[]
}

function positive (flag: string, value: string | undefined, fallback: number, integer: boolean, zeroOk = false): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < 0 || (n === 0 && !zeroOk)) {
    throw new UsageError(`--${flag} takes a ${zeroOk ? 'non-negative' : 'positive'} ${integer ? 'integer' : 'number'}; got ${JSON.stringify(value)}`)
  }
  return n
}

/** Parses the flags (both `--flag value` and `--flag=value`); a bad one is a UsageError naming it. */
export function parseOptions (args: readonly string[]): Options {
  let values
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean' },
        targets: { type: 'string' },
        workloads: { type: 'string' },
        clients: { type: 'string' },
        seconds: { type: 'string' },
        warmup: { type: 'string' },
        settle: { type: 'string' },
        records: { type: 'string' },
        'load-clients': { type: 'string' },
        generators: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        charts: { type: 'string' },
        'no-charts': { type: 'boolean' },
        report: { type: 'string' }
      }
    }))
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const quick = values.quick === true
  const clients = values.clients === undefined
    ? [32]
    : values.clients.split(',').map(c => positive('clients', c.trim(), 32, true))
  const records = positive('records', values.records, quick ? 2_000 : 10_000, true)
  if (records < 2) throw new UsageError('--records takes at least 2')
  const charts = values['no-charts'] === true ? undefined : values.charts ?? (quick ? undefined : CHARTS)
  return {
    targets: list('targets', values.targets, TARGETS, TARGETS),
    workloads: list('workloads', values.workloads?.toUpperCase(), WORKLOADS, WORKLOADS),
    clients: [...new Set(clients)],
    records,
    loadClients: positive('load-clients', values['load-clients'], 32, true),
    generators: positive('generators', values.generators, DEFAULT_GENERATORS, true),
    seed: positive('seed', values.seed, 1, true, true),
    settleMs: positive('settle', values.settle, quick ? 1.5 : 3, false, true) * 1000,
    warmupMs: positive('warmup', values.warmup, quick ? 1 : 2, false, true) * 1000,
    measureMs: positive('seconds', values.seconds, quick ? 3 : 15, false) * 1000,
    out: values.out ?? (quick ? join(tmpdir(), 'shoal-ycsb-quick.json') : RESULTS),
    ...(charts === undefined ? {} : { charts }),
    quick,
    ...(values.report === undefined ? {} : { report: values.report })
  }
}

function machine (): Report['machine'] {
  return {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10,
    node: process.version,
    platform: `${process.platform} ${process.arch}`
  }
}

/** The tables, goals and what each target guarantees, as printed at the end. */
export function summary (report: Report): string {
  const rows = report.results
  const clients = Math.max(...report.parameters.clients)
  const parts = [resultsTable(rows)]
  const busy = rows.filter(r => r.generatorElu > 0.9)
  if (busy.length > 0) {
    parts.push(`note: a generator's event loop was over 90 % busy in ${busy.map(r => `${r.target} ${r.workload} ${r.op} x${r.clients}`).join('; ')}: those figures may be the generator's limit, not the target's`)
  }
  for (const shoal of ['shoal-3', 'shoal-3-client-driven'] as const) {
    const table = ratioTable(rows, shoal)
    if (table !== undefined) parts.push(table)
  }
  parts.push(goalsText(goals(rows, clients)))
  parts.push('what an acknowledged put means on each target\n' + Object.entries(report.durability).map(([t, d]) => `  ${t.padEnd(22)} ${d}`).join('\n'))
  if (report.skipped.length > 0) parts.push('skipped\n' + report.skipped.map(s => `  ${s.target.padEnd(22)} ${s.reason}`).join('\n'))
  parts.push('gen cpu %: the load generator processes\' CPU in % of one core, summed; gen loop: the busiest one\'s event-loop busy share; servers cpu %: the target\'s processes, summed.')
  return parts.join('\n\n')
}

async function writeCharts (report: Report, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true })
  const rows = report.results
  const clients = Math.max(...report.parameters.clients)
  const p = report.parameters
  const subtitle = `${p.records.toLocaleString('en-US')} records of ${p.valueBytes} B, zipfian ${p.zipfianConstant}, ${p.measureMs / 1000} s per workload, ${report.machine.cpus} CPUs, ${report.date.slice(0, 10)}`
  const written: string[] = []
  const write = async (name: string, content: string): Promise<void> => {
    const file = join(dir, name)
    await writeFile(file, content)
    written.push(file)
  }
  await write('ycsb-throughput.svg', throughputChart(rows, clients, subtitle))
  const pick = (op: 'get' | 'put', order: readonly string[]): { rows: Row[], workload: string } | undefined => {
    for (const workload of order) {
      const chosen = rows.filter(r => r.op === op && r.workload === workload && (workload === 'load' || r.clients === clients))
      if (chosen.length > 0) return { rows: chosen, workload }
    }
    return undefined
  }
  const gets = pick('get', ['C', 'B', 'A'])
  if (gets !== undefined) await write('ycsb-latency-get.svg', latencyCdfChart(gets.rows, `Get latency, workload ${gets.workload}, ${clients} clients (left is better)`, subtitle))
  const puts = pick('put', ['A', 'load', 'B'])
  if (puts !== undefined) {
    const what = puts.workload === 'load' ? `insert phase, ${p.loadClients} clients` : `workload ${puts.workload}, ${clients} clients`
    await write('ycsb-latency-put.svg', latencyCdfChart(puts.rows, `Put latency, ${what} (left is better)`, subtitle))
  }
  return written
}

async function finish (report: Report, options: Options): Promise<void> {
  console.log('\n' + summary(report))
  if (options.charts !== undefined && report.results.length > 0) {
    const written = await writeCharts(report, options.charts)
    console.log(`\ncharts: ${written.map(f => relative(process.cwd(), f)).join(', ')}`)
  }
}

export async function run (args: string[]): Promise<void> {
  let options: Options
  try {
    options = parseOptions(args)
  } catch (err) {
    if ((err as Error).name !== 'UsageError') throw err
    console.error(`ycsb: ${(err as Error).message}\nusage: ${USAGE}`)
    process.exitCode = 2
    return
  }
  if (options.report !== undefined) {
    let report: Report
    try {
      report = JSON.parse(await readFile(options.report, 'utf8')) as Report
      if (!Array.isArray(report.results) || report.parameters === undefined) throw new Error('not a ycsb results file (no results or parameters)')
    } catch (err) {
      console.error(`ycsb: cannot read ${options.report}: ${(err as Error).message}`)
      process.exitCode = 2
      return
    }
    await finish(report, options)
    return
  }
  const procs = new BenchProcesses()
  const runPhases = options.clients.length * options.workloads.length * (options.warmupMs + options.measureMs) / 1000
  const perTarget = START_WEIGHT_S + options.settleMs / 1000 + options.records * INSERT_WEIGHT_S + runPhases
  const progress = new Progress(process.stderr, perTarget * options.targets.length)
  let interrupted = false
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = true
    progress.finish()
    console.error(`\nycsb: ${signal}: stopping every process the bench started`)
    void procs.cleanup().finally(() => { process.exit(130) })
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.on('exit', procs.lastResort)
  const began = performance.now()
  const rows: Row[] = []
  const skipped: Array<{ target: string, reason: string }> = []
  console.log(`ycsb: ${options.records.toLocaleString('en-US')} records of ${VALUE_BYTES} B, zipfian ${ZIPFIAN_CONSTANT} (scrambled), seed ${options.seed}; ` +
    `workloads ${options.workloads.map(w => `${w} (${WORKLOAD[w].description})`).join(', ')}; ` +
    `${options.clients.join(', ')} closed-loop clients; each workload warms up ${options.warmupMs / 1000} s and measures ${options.measureMs / 1000} s; ` +
    `${availableParallelism()} CPUs, Node ${process.version}; targets ${options.targets.join(', ')}; load from ${options.generators} generator process${options.generators === 1 ? '' : 'es'} of its own`)
  try {
    for (const target of options.targets) {
      progress.stage(`${target}: starting`, START_WEIGHT_S)
      let started
      try {
        started = await startTarget(procs, target, line => { progress.log(line) })
      } catch (err) {
        if (interrupted) await new Promise(() => {})
        const reason = `did not start: ${(err as Error).message}`
        progress.log(`${target}: skipped, ${reason}`)
        skipped.push({ target, reason })
        continue
      }
      try {
        const job: Omit<WorkerJob, 'generator'> = {
          target,
          spec: started.spec,
          records: options.records,
          valueBytes: VALUE_BYTES,
          seed: options.seed,
          clients: options.clients,
          workloads: options.workloads,
          loadClients: options.loadClients,
          settleMs: options.settleMs,
          warmupMs: options.warmupMs,
          measureMs: options.measureMs,
          readyTimeoutMs: READY_TIMEOUT_MS
        }
        rows.push(...await runGenerators(procs, progress, job, options.generators, started.servers))
      } catch (err) {
        if (interrupted) await new Promise(() => {})
        const reason = `failed: ${(err as Error).message}`
        progress.log(`${target}: ${reason}`)
        skipped.push({ target, reason })
      } finally {
        progress.stage(`${target}: stopping`, 0)
        await started.stop()
      }
    }
  } finally {
    progress.finish()
    await procs.cleanup()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.off('exit', procs.lastResort)
  }
  const ran = options.targets.filter(t => !skipped.some(s => s.target === t))
  const report: Report = {
    date: new Date().toISOString(),
    command: ['npm run bench', ...(args.length === 0 ? [] : ['--', 'ycsb', ...args])].join(' '),
    machine: machine(),
    seed: options.seed,
    parameters: {
      records: options.records,
      valueBytes: VALUE_BYTES,
      zipfianConstant: ZIPFIAN_CONSTANT,
      clients: options.clients,
      loadClients: options.loadClients,
      generators: options.generators,
      workloads: options.workloads,
      settleMs: options.settleMs,
      warmupMs: options.warmupMs,
      measureMs: options.measureMs,
      targets: options.targets
    },
    durability: Object.fromEntries(ran.map(t => [t, DURABILITY[t]])),
    skipped,
    results: rows
  }
  await finish(report, options)
  await mkdir(dirname(options.out), { recursive: true })
  await writeFile(options.out, JSON.stringify(report, null, 2) + '\n')
  console.log(`results: ${relative(process.cwd(), options.out) || options.out}  (${((performance.now() - began) / 1000).toFixed(0)} s in all)`)
}
