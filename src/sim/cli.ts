import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import type { Bug, SyncTotals } from './cluster.ts'
import { runSeeds } from './parallel.ts'
import { DEFAULT_SIM, simulate } from './run.ts'
import type { SimOptions } from './run.ts'

/**
 * `npm run sim -- [--seeds N] [--from S] [--jobs J] [--seed S [--trace]] [--bug B]`: runs simulated
 * clusters under seeded faults, on J worker threads (default: one per core), and prints every
 * failing seed with the command that replays it. `--bug` runs a deliberately broken replica, to
 * see the checker catch it.
 */
const BUGS: readonly Bug[] = ['drop-writes', 'drop-replica-writes', 'invent-values', 'purge-early', 'purge-ignores-hints']
const usage = `usage: npm run sim -- [--seeds N] [--from FIRST_SEED] [--jobs THREADS] | --seed S [--trace]; [--bug ${BUGS.join('|')}]`

async function main (): Promise<number> {
  let args
  try {
    args = parseArgs({
      options: {
        seeds: { type: 'string', default: '1000' },
        from: { type: 'string', default: '1' },
        jobs: { type: 'string', default: String(availableParallelism()) },
        seed: { type: 'string' },
        trace: { type: 'boolean', default: false },
        bug: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false }
      },
      strict: true
    }).values
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`)
    return 2
  }
  if (args.help) { console.log(usage); return 0 }
  const bug = args.bug as Bug | undefined
  if (bug !== undefined && !BUGS.includes(bug)) { console.error(`--bug takes one of ${BUGS.join(', ')}\n${usage}`); return 2 }
  const options: SimOptions = bug === undefined ? DEFAULT_SIM : { ...DEFAULT_SIM, node: { ...DEFAULT_SIM.node, bug } }
  const replay = bug === undefined ? '' : ` --bug ${bug}`

  if (args.seed !== undefined) {
    const seed = integer(args.seed)
    if (seed === undefined) { console.error(`--seed takes an integer\n${usage}`); return 2 }
    const result = await simulate(seed, options)
    if (args.trace) for (const line of result.trace) console.log(line)
    for (const v of result.violations) console.log(`${v.property}${v.key === undefined ? '' : ` ${v.key}`}: ${v.detail}`)
    console.log(`seed ${seed}: ${result.ok ? 'ok' : 'FAILED'}  writes ${JSON.stringify(result.writes)}  reads ${result.reads}  events ${result.events}  trace ${result.traceHash.slice(0, 16)}`)
    console.log(`  ${describeSync(result.sync)}; ${result.convergedMs === undefined ? 'never converged' : `converged ${result.convergedMs} ms after the heal`}`)
    return result.ok ? 0 : 1
  }

  const count = integer(args.seeds)
  const from = integer(args.from)
  if (count === undefined || count < 1 || from === undefined) { console.error(`--seeds and --from take integers\n${usage}`); return 2 }
  const jobs = integer(args.jobs)
  if (jobs === undefined || jobs < 1) { console.error(`--jobs takes a positive integer\n${usage}`); return 2 }
  const started = performance.now()
  const failed: number[] = []
  let acknowledged = 0
  const sync: SyncTotals = { hinted: 0, hintsDelivered: 0, aeRepaired: 0, aeExchanges: 0, handoffKeys: 0, handoffPartitions: 0, purged: 0 }
  let slowest = 0
  let done = 0
  const summary = (): void => {
    const seconds = (performance.now() - started) / 1000
    console.log(`${done} seeds (${from}..${from + done - 1}) with ${options.nodes} nodes, ${options.clients} clients${replay}: ${done - failed.length} passed, ${failed.length} failed in ${seconds.toFixed(1)} s; ${acknowledged} acknowledged writes checked`)
    console.log(`  ${describeSync(sync)}; the slowest run converged ${Number.isFinite(slowest) ? `${slowest} ms` : 'never'} after its heal`)
    if (failed.length > 0) console.log(`  failed: ${failed.join(' ')}`)
  }
  // A long run stopped early still says what it checked: every seed before the first unfinished one.
  const interrupted = (signal: NodeJS.Signals): void => {
    console.log(`interrupted by ${signal} after ${done} of ${count} seeds`)
    summary()
    process.exit(130)
  }
  process.once('SIGINT', interrupted)
  process.once('SIGTERM', interrupted)
  // Outcomes arrive in seed order whatever the jobs, so the output is the same for any --jobs.
  await runSeeds({ from, count, jobs, options }, outcome => {
    const seed = outcome.seed
    done++
    if ('error' in outcome) {
      failed.push(seed)
      console.log(`seed ${seed} FAILED: the simulation threw ${outcome.error}`)
      console.log(`  replay: npm run sim -- --seed ${seed} --trace${replay}`)
    } else {
      const result = outcome.result
      acknowledged += result.writes.ok
      for (const name of Object.keys(sync) as Array<keyof SyncTotals>) sync[name] += result.sync[name]
      slowest = Math.max(slowest, result.convergedMs ?? Infinity)
      if (!result.ok) {
        failed.push(seed)
        console.log(`seed ${seed} FAILED: ${result.violations.map(v => `${v.property} ${v.key ?? ''} ${v.detail}`).join('; ')}`)
        console.log(`  replay: npm run sim -- --seed ${seed} --trace${replay}`)
      }
    }
    if ((seed - from + 1) % 500 === 0) console.log(`${seed - from + 1} seeds, ${failed.length} failed, ${((performance.now() - started) / 1000).toFixed(1)} s`)
  })
  process.off('SIGINT', interrupted)
  process.off('SIGTERM', interrupted)
  summary()
  return failed.length === 0 ? 0 : 1
}

function describeSync (s: SyncTotals): string {
  return `${s.hinted} hinted writes, ${s.hintsDelivered} hints delivered, ${s.aeRepaired} keys repaired by ${s.aeExchanges} anti-entropy exchanges, ${s.handoffPartitions} partitions (${s.handoffKeys} keys) handed off, ${s.purged} tombstones purged`
}

function integer (text: string): number | undefined {
  return /^-?\d+$/.test(text) ? Number(text) : undefined
}

process.exitCode = await main()
