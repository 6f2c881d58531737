import assert from 'node:assert/strict'
import { simulate } from '../../src/sim/run.ts'
import { REGRESSIONS } from './regressions.ts'

describe('simulator regressions: every seed that ever failed passes', function () {
  this.timeout(120_000)

  it('lists each seed once', () => {
    const seeds = REGRESSIONS.map(r => r.seed)
    assert.deepEqual([...new Set(seeds)], seeds)
    assert.ok(seeds.length > 0)
  })

  for (const { seed, found, fix, open } of REGRESSIONS) {
    (open === true ? it.skip : it)(`seed ${seed} (found: ${found.split(':')[0]}; fixed by ${fix.split(':')[0]})`, async () => {
      const result = await simulate(seed)
      assert.deepEqual(result.violations.map(v => `${v.property}${v.key === undefined ? '' : ` ${v.key}`}: ${v.detail}`), [],
        `seed ${seed} fails again (it once found ${found}; fixed by ${fix}). Replay: npm run sim -- --seed ${seed} --trace`)
      assert.ok(result.ok)
      // The run must have done something, or passing proves nothing.
      assert.ok(result.writes.ok > 0, `seed ${seed} acknowledged no write`)
    })
  }
})
