import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { Bug } from '../../src/sim/cluster.ts'
import type { Violation } from '../../src/sim/history.ts'
import { runSeeds } from '../../src/sim/parallel.ts'
import type { SeedOutcome } from '../../src/sim/parallel.ts'
import { DEFAULT_SIM, simulate } from '../../src/sim/run.ts'

const SEEDS = 500
// Seeds are independent runs, so threads only change how long they take; more than two would
// just contend on this 2-core machine.
const JOBS = Math.min(2, availableParallelism())
const CLI = fileURLToPath(new URL('../../src/sim/cli.ts', import.meta.url))

describe('deterministic simulator', function () {
  this.timeout(120_000)

  it(`${SEEDS} seeded runs under crashes, partitions, loss, duplication, reordering, leaves and rejoins lose no acknowledged write, show no phantom or resurrection, and converge by hinted handoff, anti-entropy, ownership handoff and the reaper alone`, async () => {
    const failures: string[] = []
    let acknowledged = 0
    let unknown = 0
    const sync = { hinted: 0, hintsDelivered: 0, aeRepaired: 0, handoffPartitions: 0, purged: 0 }
    let outcomes = 0
    await runSeeds({ from: 1, count: SEEDS, jobs: JOBS, options: DEFAULT_SIM }, outcome => {
      outcomes++
      const seed = outcome.seed
      if ('error' in outcome) { failures.push(`seed ${seed} threw ${outcome.error} (replay: npm run sim -- --seed ${seed} --trace)`); return }
      const result = outcome.result
      acknowledged += result.writes.ok
      unknown += result.writes.unknown
      for (const name of Object.keys(sync) as Array<keyof typeof sync>) sync[name] += result.sync[name]
      if (!result.ok) failures.push(`seed ${seed}: ${result.violations.map(v => `${v.property} ${v.detail}`).join('; ')} (replay: npm run sim -- --seed ${seed} --trace)`)
    })
    assert.equal(outcomes, SEEDS)
    assert.deepEqual(failures, [])
    // The faults must bite, the load must land and every mechanism must have had work, or the
    // checks above prove nothing.
    assert.ok(acknowledged > SEEDS * 20, `only ${acknowledged} acknowledged writes over ${SEEDS} seeds`)
    assert.ok(unknown > 0, 'no write ever had an unknown outcome: the fault schedule did nothing')
    for (const [name, count] of Object.entries(sync)) assert.ok(count >= SEEDS / 10, `${name} only ${count} times over ${SEEDS} seeds: ${JSON.stringify(sync)}`)
  })

  it('the same seed replays the same run, and another seed a different one', async () => {
    const a = await simulate(42)
    const b = await simulate(42)
    const c = await simulate(43)
    assert.equal(a.traceHash, b.traceHash)
    assert.deepEqual(a.trace, b.trace)
    assert.deepEqual(a.sync, b.sync)
    assert.notEqual(a.traceHash, c.traceHash)
  })

  it('worker threads give each seed the same result as one thread, reported in seed order', async () => {
    const run = async (jobs: number): Promise<SeedOutcome[]> => {
      const outcomes: SeedOutcome[] = []
      await runSeeds({ from: 101, count: 30, jobs, options: DEFAULT_SIM }, outcome => { outcomes.push(outcome) })
      return outcomes
    }
    const alone = await run(1)
    const threaded = await run(3)
    assert.deepEqual(alone.map(o => o.seed), Array.from({ length: 30 }, (_, i) => 101 + i))
    assert.deepEqual(threaded, alone)
    // And a seed run on its own, after no other, is the same run as in either batch.
    const single = await simulate(117)
    const fromBatch = threaded[16]
    assert.ok(fromBatch !== undefined && 'result' in fromBatch && fromBatch.seed === 117)
    assert.equal(fromBatch.result.traceHash, single.traceHash)
  })

  it('a seed whose simulation throws is that seed\'s failure, in order, and the other seeds still run', async () => {
    // A ring needs a power-of-two partition count: every seed of this run throws.
    const broken = { ...DEFAULT_SIM, node: { ...DEFAULT_SIM.node, partitions: 3 } }
    for (const jobs of [1, 2]) {
      const outcomes: SeedOutcome[] = []
      await runSeeds({ from: 5, count: 3, jobs, options: broken }, outcome => { outcomes.push(outcome) })
      assert.deepEqual(outcomes.map(o => o.seed), [5, 6, 7])
      for (const outcome of outcomes) assert.ok('error' in outcome && outcome.error.startsWith('InvalidArgumentError: partitions'), JSON.stringify(outcome).slice(0, 200))
    }
  })

  it('runSeeds refuses a job count that is not a positive integer', async () => {
    for (const jobs of [0, -1, 1.5, Number.NaN]) {
      await assert.rejects(runSeeds({ from: 1, count: 2, jobs, options: DEFAULT_SIM }, () => {}), (err: Error) => err.name === 'RangeError')
    }
  })

  it('npm run sim prints the same report with --jobs 1 and --jobs 2, failing seeds included, and exits 2 on a bad --jobs', async () => {
    const sim = async (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => {
      const run = promisify(execFile)(process.execPath, [CLI, '--seeds', '12', '--from', '7', ...args], { timeout: 120_000 })
      const { code, stdout, stderr } = await run.then(
        out => ({ ...out, code: 0 }),
        (err: Error & { code?: number, stdout?: string, stderr?: string }) => ({ code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? err.message })
      )
      // Only the elapsed seconds may differ.
      return { code, stdout: stdout.replace(/ in \d+\.\d s;/g, ' in T s;'), stderr }
    }
    const one = await sim('--jobs', '1')
    assert.equal(one.code, 0, one.stderr)
    assert.match(one.stdout, /^12 seeds \(7\.\.18\) with 5 nodes, 3 clients: 12 passed, 0 failed in T s; \d+ acknowledged writes checked$/m)
    assert.deepEqual(await sim('--jobs', '2'), one)

    // Failing seeds: the same lines, in seed order, each with its replay command.
    const failing = await sim('--jobs', '1', '--bug', 'drop-writes')
    assert.equal(failing.code, 1, failing.stderr)
    assert.match(failing.stdout, /^seed 7 FAILED: lost k\d /m)
    assert.match(failing.stdout, /^ {2}replay: npm run sim -- --seed 18 --trace --bug drop-writes$/m)
    assert.match(failing.stdout, /^ {2}failed: 7 8 9 10 11 12 13 14 15 16 17 18$/m)
    assert.deepEqual(await sim('--jobs', '2', '--bug', 'drop-writes'), failing)

    for (const bad of ['0', 'two', '1.5']) {
      const refused = await sim('--jobs', bad)
      assert.equal(refused.code, 2)
      assert.match(refused.stderr, /--jobs takes a positive integer/)
      assert.equal(refused.stdout, '')
    }
  })

  // A check that cannot fail proves nothing: each broken replica below must be caught.
  const broken: Array<[Bug, Violation['property']]> = [
    ['drop-writes', 'lost'],
    ['drop-replica-writes', 'divergent'],
    ['invent-values', 'phantom']
  ]
  for (const [bug, property] of broken) {
    it(`the checker reports ${property} data when replicas ${bug.replace('-', ' ')}`, async () => {
      const result = await simulate(1, { ...DEFAULT_SIM, faults: false, node: { ...DEFAULT_SIM.node, bug } })
      assert.equal(result.ok, false)
      assert.ok(result.violations.some(v => v.property === property), `no ${property} violation among ${JSON.stringify(result.violations.slice(0, 3))}`)
    })
  }

  // Unsafe purges only show when a delete races a fault, so these take a few seeds each.
  const unsafe: Array<[Bug, number, string]> = [
    ['purge-early', 40, 'the reaper purges at once without listening to the other members'],
    ['purge-ignores-hints', 200, 'members asked before a purge do not count the hints they hold']
  ]
  for (const [bug, seeds, what] of unsafe) {
    it(`the checker reports a resurrected value within ${seeds} seeds when ${what}`, async () => {
      const seen: string[] = []
      for (let seed = 1; seed <= seeds; seed++) {
        const result = await simulate(seed, { ...DEFAULT_SIM, node: { ...DEFAULT_SIM.node, bug } })
        seen.push(...result.violations.map(v => v.property))
        if (result.violations.some(v => v.property === 'resurrected')) return
      }
      assert.fail(`no resurrection in ${seeds} seeds (saw ${JSON.stringify([...new Set(seen)])})`)
    })
  }
})
