/**
 * `npm run chaos -- --time 600 --seed S [--nodes 5] [--clients 5] [--keys 8] [--workload set|counter] [--json]`:
 * a Jepsen-style run of real `shoal start` processes in network namespaces under a seeded nemesis
 * (kill -9, pause, partitions), checked with the set test or the counter test. Exit 0 valid, 1 invalid (loss,
 * unexpected element, divergence, crash), 2 usage, 3 cannot run here (not root, no iptables).
 */
import { parseArgs } from 'node:util'
import { summaryTable } from './checker.ts'
import { HarnessUnavailableError, runChaos, tearDownNow } from './run.ts'
import { counterTable } from './counter-checker.ts'
import type { CounterCheckResult } from './counter-checker.ts'
import type { WorkloadName } from './workload.ts'

const USAGE = `usage: npm run chaos -- [--time SECONDS] [--seed S] [--nodes 5] [--clients 5] [--keys 8] [--workload set|counter] [--converge SECONDS] [--json]
  K shoal nodes (N=3, R=2, W=2), each in its own network namespace on a bridge, a set workload from
  a client namespace, and a seeded nemesis: kill -9 and restart, SIGSTOP/SIGCONT, partitions (halves,
  one isolated node, a majorities ring). Then heal, wait for the replicas to agree, and check: lost,
  unexpected, recovered, divergent. Needs root; installs iptables if missing.
  --time      nemesis duration in seconds (default 60)     --seed   the seed (default: random, printed)
  --nodes     nodes, 3 to 9 (default 5)                      --clients  concurrent clients (default 5)
  --keys      size of the key space (default 8)             --converge seconds allowed to settle (default 120)
  --workload  set (default): read, add a unique element, write back with the context; counter:
              increment PN-counters, each final value must lie between the acknowledged and possible sums
  --json      print the result as JSON instead of the table`

class UsageError extends Error {
  override name = 'UsageError'
}

function integer (value: string | undefined, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(value)}`)
  return Number(value)
}

async function main (): Promise<number> {
  let options
  try {
    const { values, positionals } = parseArgs({
      args: process.argv.slice(2),
      options: {
        time: { type: 'string' }, seed: { type: 'string' }, nodes: { type: 'string' }, clients: { type: 'string' },
        keys: { type: 'string' }, converge: { type: 'string' }, workload: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false }
      },
      strict: true,
      allowPositionals: true
    })
    if (values.help) {
      console.log(USAGE)
      return 0
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`)
    const workload = values.workload ?? 'set'
    if (workload !== 'set' && workload !== 'counter') throw new UsageError(`--workload must be set or counter, not ${JSON.stringify(workload)}`)
    options = {
      timeMs: integer(values.time, 'time', 1, 86_400, 60) * 1000,
      seed: integer(values.seed, 'seed', 0, 2 ** 31 - 1, Math.floor(Math.random() * 2 ** 31)),
      nodes: integer(values.nodes, 'nodes', 3, 9, 5),
      clients: integer(values.clients, 'clients', 1, 64, 5),
      keys: integer(values.keys, 'keys', 1, 1000, 8),
      convergeTimeoutMs: integer(values.converge, 'converge', 1, 3600, 120) * 1000,
      workload: workload as WorkloadName,
      json: values.json
    }
  } catch (err) {
    // parseArgs's own errors (unknown option, missing value) are usage errors too.
    console.error(`chaos: ${(err as Error).message.split('\n')[0]!.split('. ')[0]} (see --help)`)
    return 2
  }

  const json = options.json
  const log = (line: string): void => { (json ? console.error : console.log)(`[chaos] ${line}`) }
  try {
    const result = await runChaos({ ...options, log })
    if (json) console.log(JSON.stringify(result, null, 2))
    else {
      console.log(summaryTable(result.check, { seed: result.seed, nemesisMs: result.nemesisMs, convergeMs: result.convergeMs, events: result.eventCounts, crashes: result.crashes.length, readsFailed: result.readsFailed, unit: options.workload === 'counter' ? 'increments' : 'adds' }))
      if ('sums' in result.check) console.log(counterTable((result.check as CounterCheckResult).sums))
      for (const crash of result.crashes) console.log(`node n${crash.node + 1} crashed (${crash.code ?? crash.signal}): ${crash.stderr.split('\n').slice(-3).join(' | ')}`)
      console.log(`replay: npm run chaos -- --time ${options.timeMs / 1000} --seed ${result.seed} --nodes ${options.nodes} --clients ${options.clients} --keys ${options.keys}${options.workload === 'counter' ? ' --workload counter' : ''}`)
    }
    return result.valid ? 0 : 1
  } catch (err) {
    if (err instanceof HarnessUnavailableError) {
      console.error(`chaos: cannot run here: ${err.message}`)
      return 3
    }
    throw err
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`chaos: ${signal}, tearing down`)
    tearDownNow()
    process.exit(signal === 'SIGINT' ? 130 : 143)
  })
}
process.exitCode = await main()
