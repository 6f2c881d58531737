/**
 * `npm run crash -- [--rounds 100] [--seed S] [--nodes 3] [--writers 16] [--json]`: kill -9 a
 * node of a real cluster during heavy writes, round after round, restart it on the same data
 * directory, and check that nothing acknowledged is lost and that its trees and hints are
 * consistent (see crash-run.ts). Prints a line per round and a summary table; exits 1 when
 * anything was lost or inconsistent, 2 on a usage error.
 */
import { parseArgs } from 'node:util'
import { passed, runCrash, summarize } from './crash-run.ts'
import type { CrashReport } from './crash-run.ts'

const USAGE = 'usage: npm run crash -- [--rounds 100] [--seed S] [--nodes 3] [--writers 16] [--json]'

interface Options {
  readonly rounds: number
  readonly seed: number
  readonly nodes: number
  readonly writers: number
  readonly json: boolean
}

function parse (argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string' },
      seed: { type: 'string' },
      nodes: { type: 'string' },
      writers: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    },
    strict: true,
    allowPositionals: false
  })
  if (values.help === true) return 'help'
  return {
    rounds: integer('rounds', values.rounds, 100, 1, 100_000),
    seed: integer('seed', values.seed, Math.floor(Math.random() * 2 ** 31), 0, 2 ** 31 - 1),
    // N is 3: fewer nodes could not hold three replicas.
    nodes: integer('nodes', values.nodes, 3, 3, 16),
    writers: integer('writers', values.writers, 16, 1, 256),
    json: values.json === true
  }
}

function integer (name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageError(`--${name} takes an integer from ${min} to ${max}, got ${JSON.stringify(value)}`)
  return n
}

class UsageError extends Error {
  override name = 'UsageError'
}

function table (report: CrashReport): string {
  const rows = Object.entries(summarize(report))
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')
}

async function main (): Promise<number> {
  let options: Options | 'help'
  try {
    options = parse(process.argv.slice(2))
  } catch (err) {
    console.error(`crash: ${(err as Error).message}\n${USAGE}`)
    return 2
  }
  if (options === 'help') {
    console.log(USAGE)
    return 0
  }
  const log = options.json ? (line: string): void => { console.error(line) } : (line: string): void => { console.log(line) }
  log(`crash: ${options.rounds} rounds on ${options.nodes} nodes, ${options.writers} writers, seed ${options.seed} (replay: npm run crash -- --rounds ${options.rounds} --seed ${options.seed})`)
  const report = await runCrash({ rounds: options.rounds, seed: options.seed, nodes: options.nodes, writers: options.writers, log })
  if (options.json) console.log(JSON.stringify({ summary: summarize(report), report }))
  else {
    console.log(`\n${table(report)}`)
    for (const example of report.examples) console.log(`  ${example}`)
  }
  const ok = passed(report)
  log(ok ? 'crash: nothing lost, every restart succeeded, trees and hints consistent' : `crash: FAILED (seed ${options.seed})`)
  return ok ? 0 : 1
}

// Ctrl-C: runCrash's cleanup runs as the pending awaits unwind; exiting at once still kills the children.
process.on('SIGINT', () => { process.exit(130) })
process.on('SIGTERM', () => { process.exit(143) })
main().then(code => { process.exit(code) }, (err: unknown) => {
  console.error(`crash: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
  process.exit(1)
})
