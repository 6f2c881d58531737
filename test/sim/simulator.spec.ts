import assert from 'node:assert/strict'
import type { Bug } from '../../src/sim/cluster.ts'
import { DEFAULT_SIM, simulate } from '../../src/sim/run.ts'

const SEEDS = 500

describe('deterministic simulator', function () {
  this.timeout(120_000)

  it(`${SEEDS} seeded runs under crashes, partitions, loss, duplication and reordering lose no acknowledged write, show no phantom, and converge`, async () => {
    const failures: string[] = []
    let acknowledged = 0
    let unknown = 0
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = await simulate(seed)
      acknowledged += result.writes.ok
      unknown += result.writes.unknown
      if (!result.ok) failures.push(`seed ${seed}: ${result.violations.map(v => `${v.property} ${v.detail}`).join('; ')} (replay: npm run sim -- --seed ${seed} --trace)`)
    }
    assert.deepEqual(failures, [])
    // The faults must bite and the load must land, or the check above proves nothing.
    assert.ok(acknowledged > SEEDS * 20, `only ${acknowledged} acknowledged writes over ${SEEDS} seeds`)
    assert.ok(unknown > 0, 'no write ever had an unknown outcome: the fault schedule did nothing')
  })

  it('the same seed replays the same run, and another seed a different one', async () => {
    const a = await simulate(42)
    const b = await simulate(42)
    const c = await simulate(43)
    assert.equal(a.traceHash, b.traceHash)
    assert.deepEqual(a.trace, b.trace)
    assert.notEqual(a.traceHash, c.traceHash)
  })

  // A check that cannot fail proves nothing: each broken replica below must be caught.
  const broken: Array<[Bug, string]> = [
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
})
