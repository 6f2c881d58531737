import { parseArgs } from 'node:util'
import { DEFAULT_SIM, simulate } from './run.ts'

/**
 * `npm run sim -- [--seeds N] [--from S] [--seed S [--trace]]`: runs simulated clusters under
 * seeded faults and prints every failing seed with the command that replays it.
 */
const usage = 'usage: npm run sim -- [--seeds N] [--from FIRST_SEED] | --seed S [--trace]'

async function main (): Promise<number> {
  let args
  try {
    args = parseArgs({
      options: {
        seeds: { type: 'string', default: '1000' },
        from: { type: 'string', default: '1' },
        seed: { type: 'string' },
        trace: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      },
      strict: true
    }).values
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`)
    return 2
  }
  if (args.help) { console.log(usage); return 0 }

  if (args.seed !== undefined) {
    const seed = integer(args.seed)
    if (seed === undefined) { console.error(`--seed takes an integer\n${usage}`); return 2 }
    const result = await simulate(seed)
    if (args.trace) for (const line of result.trace) console.log(line)
    for (const v of result.violations) console.log(`${v.property}${v.key === undefined ? '' : ` ${v.key}`}: ${v.detail}`)
    console.log(`seed ${seed}: ${result.ok ? 'ok' : 'FAILED'}  writes ${JSON.stringify(result.writes)}  reads ${result.reads}  events ${result.events}  trace ${result.traceHash.slice(0, 16)}`)
    return result.ok ? 0 : 1
  }

  const count = integer(args.seeds)
  const from = integer(args.from)
  if (count === undefined || count < 1 || from === undefined) { console.error(`--seeds and --from take integers\n${usage}`); return 2 }
  const started = performance.now()
  const failed: number[] = []
  let acknowledged = 0
  for (let seed = from; seed < from + count; seed++) {
    const result = await simulate(seed)
    acknowledged += result.writes.ok
    if (!result.ok) {
      failed.push(seed)
      console.log(`seed ${seed} FAILED: ${result.violations.map(v => `${v.property} ${v.key ?? ''} ${v.detail}`).join('; ')}`)
      console.log(`  replay: npm run sim -- --seed ${seed} --trace`)
    }
    if ((seed - from + 1) % 500 === 0) console.log(`${seed - from + 1} seeds, ${failed.length} failed, ${((performance.now() - started) / 1000).toFixed(1)} s`)
  }
  const seconds = (performance.now() - started) / 1000
  console.log(`${count} seeds (${from}..${from + count - 1}) with ${DEFAULT_SIM.nodes} nodes, ${DEFAULT_SIM.clients} clients: ${count - failed.length} passed, ${failed.length} failed in ${seconds.toFixed(1)} s; ${acknowledged} acknowledged writes checked`)
  return failed.length === 0 ? 0 : 1
}

function integer (text: string): number | undefined {
  return /^-?\d+$/.test(text) ? Number(text) : undefined
}

process.exitCode = await main()
