import assert from 'node:assert/strict'
import type { Bug } from '../../src/sim/cluster.ts'
import type { Violation } from '../../src/sim/history.ts'
import { DEFAULT_SIM, simulate } from '../../src/sim/run.ts'

const SEEDS = 500

describe('deterministic simulator', function () {
  this.timeout(120_000)

  it(`${SEEDS} seeded runs under crashes, partitions, loss, duplication, reordering, leaves and rejoins lose no acknowledged write, show no phantom or resurrection, and converge by hinted handoff, anti-entropy, ownership handoff and the reaper alone`, async () => {
    const failures: string[] = []
    let acknowledged = 0
    let unknown = 0
    const sync = { hinted: 0, hintsDelivered: 0, aeRepaired: 0, handoffPartitions: 0, purged: 0 }
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = await simulate(seed)
      acknowledged += result.writes.ok
      unknown += result.writes.unknown
      for (const name of Object.keys(sync) as Array<keyof typeof sync>) sync[name] += result.sync[name]
      if (!result.ok) failures.push(`seed ${seed}: ${result.violations.map(v => `${v.property} ${v.detail}`).join('; ')} (replay: npm run sim -- --seed ${seed} --trace)`)
    }
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
