import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SimRandom } from '../../src/sim/random.ts'
import { checkSets, divergentKeys, settled } from '../harness/checker.ts'
import { findIptables } from '../harness/iptables.ts'
import type { AddRecord, NodeReport } from '../harness/protocol.ts'
import { runChaos } from '../harness/run.ts'
import type { ChaosResult } from '../harness/run.ts'
import { majoritiesRing, nemesisSchedule, visibility } from '../harness/schedule.ts'

describe('chaos checker (set test) on a hand-made history', () => {
  const adds: AddRecord[] = [
    { client: 0, key: 'k', element: 'c0-0', outcome: 'ok' },
    { client: 0, key: 'k', element: 'c0-1', outcome: 'ok' },
    { client: 1, key: 'k', element: 'c1-0', outcome: 'unknown', error: 'TimeoutError' },
    { client: 1, key: 'k', element: 'c1-1', outcome: 'unknown', error: 'QuorumError' },
    { client: 1, key: 'j', element: 'c1-2', outcome: 'failed', error: 'UnavailableError' },
    { client: 2, key: 'j', element: 'c2-0', outcome: 'ok' }
  ]

  it('finds an acknowledged add that is missing (lost) and an element nobody added (unexpected)', () => {
    const result = checkSets(adds, {
      // c0-1 acknowledged but gone through n2; c1-0 unknown yet present; 'c9-9' never attempted.
      k: [{ node: 0, elements: ['c0-0', 'c0-1', 'c1-0'] }, { node: 1, elements: ['c0-0', 'c1-0', 'c9-9'] }],
      j: [{ node: 0, elements: ['c2-0'] }, { node: 1, error: 'QuorumError: get needed 3 of 3 replicas, 2 replied' }]
    }, [])
    assert.equal(result.attempted, 6)
    assert.equal(result.acknowledged, 3)
    assert.equal(result.unknown, 2)
    assert.equal(result.failed, 1)
    assert.deepEqual(result.lost, [{ key: 'k', element: 'c0-1', nodes: [1] }])
    assert.deepEqual(result.unexpected, [{ key: 'k', element: 'c9-9' }])
    assert.equal(result.recovered, 1)
    assert.deepEqual(result.revived, [])
    assert.deepEqual(result.unreadable, [])
    assert.equal(result.valid, false)
  })

  it('an element added to another key is unexpected here, and a definitely failed add that is present is revived', () => {
    const result = checkSets(adds, {
      k: [{ node: 0, elements: ['c0-0', 'c0-1', 'c2-0'] }],
      j: [{ node: 0, elements: ['c2-0', 'c1-2'] }]
    }, [])
    assert.deepEqual(result.lost, [])
    assert.deepEqual(result.unexpected, [{ key: 'k', element: 'c2-0' }])
    assert.deepEqual(result.revived, [{ key: 'j', element: 'c1-2' }])
    assert.equal(result.valid, false)
  })

  it('a key no node can read is unreadable; a history fully present is valid', () => {
    const unreadable = checkSets(adds, { k: [{ node: 0, error: 'TimeoutError: no reply' }], j: [{ node: 0, elements: ['c2-0'] }] }, [])
    assert.deepEqual(unreadable.unreadable, ['k'])
    assert.equal(unreadable.valid, false)
    const valid = checkSets(adds, { k: [{ node: 0, elements: ['c0-0', 'c0-1'] }, { node: 1, elements: ['c0-0', 'c0-1', 'c1-1'] }], j: [{ node: 2, elements: ['c2-0'] }] }, [])
    assert.equal(valid.valid, true)
    assert.equal(valid.recovered, 1)
  })

  it('replicas whose own copies differ, or that are not exactly N, are divergent', () => {
    const copy = (context: string, elements: string[]): { context: string, elements: string[], siblings: number } => ({ context, elements, siblings: 1 })
    const reports: NodeReport[] = [
      { node: 0, hintsPending: 0, membersUp: 4, copies: { a: copy('x', ['1']), b: copy('y', ['1']), c: copy('z', ['1']), d: null } },
      { node: 1, hintsPending: 0, membersUp: 4, copies: { a: copy('x', ['1']), b: copy('y', ['1', '2']), c: copy('z', ['1']), d: null } },
      { node: 2, hintsPending: 0, membersUp: 4, copies: { a: copy('x', ['1']), b: copy('y', ['1']), c: null, d: null } },
      { node: 3, hintsPending: 0, membersUp: 4, copies: { a: null, b: null, c: null, d: null } }
    ]
    assert.deepEqual(divergentKeys(reports, ['a', 'b', 'c', 'd'], 3), ['b', 'c'])
    assert.equal(settled(reports, ['a', 'd'], 3), true)
    assert.equal(settled([...reports.slice(0, 3), { node: 3, error: 'unreachable' }], ['a'], 3), false, 'a node that cannot be asked is not settled')
    assert.equal(settled([{ ...reports[0]!, hintsPending: 1 } as NodeReport, ...reports.slice(1)], ['a'], 3), false, 'pending hints are not settled')
  })

  it('with the owners known, a copy on a node that does not own the key, or rings that disagree, are divergent', () => {
    const copy = { context: 'x', elements: ['1'], siblings: 1 }
    const report = (node: number, held: boolean, owners: number[]): NodeReport => ({ node, hintsPending: 0, membersUp: 4, copies: { a: held ? copy : null }, owners: { a: owners } })
    assert.deepEqual(divergentKeys([report(0, true, [0, 1, 2]), report(1, true, [0, 1, 2]), report(2, true, [0, 1, 2]), report(3, false, [0, 1, 2])], ['a'], 3), [])
    assert.deepEqual(divergentKeys([report(0, true, [0, 1, 3]), report(1, true, [0, 1, 3]), report(2, true, [0, 1, 3]), report(3, false, [0, 1, 3])], ['a'], 3), ['a'], 'n3 holds a copy it does not own, n4 lacks one')
    assert.deepEqual(divergentKeys([report(0, true, [0, 1, 2]), report(1, true, [0, 1, 2]), report(2, true, [0, 1, 3]), report(3, false, [0, 1, 2])], ['a'], 3), ['a'], 'two rings')
  })
})

describe('chaos nemesis schedule', () => {
  it('one seed gives one schedule, and its first two faults are a kill -9 and a partition', () => {
    for (let seed = 0; seed < 50; seed++) {
      const schedule = nemesisSchedule(seed, 5, 60_000)
      assert.deepEqual(nemesisSchedule(seed, 5, 60_000), schedule)
      assert.deepEqual(schedule.slice(0, 2).map(s => s.faults.map(f => f.kind)).sort(), [['kill'], ['partition']])
      for (const step of schedule) {
        assert.ok(step.at + step.holdMs <= 60_000)
        for (const fault of step.faults) {
          if (fault.kind !== 'partition') assert.ok(fault.nodes.length >= 1 && fault.nodes.length <= 2, 'at most a minority is killed or paused')
          else assert.ok(fault.cuts.length > 0, 'a partition cuts something')
        }
      }
    }
    assert.notDeepEqual(nemesisSchedule(1, 5, 60_000), nemesisSchedule(2, 5, 60_000))
  })

  it('a majorities ring lets every node see a majority, and no two nodes see the same one', () => {
    for (const k of [4, 5, 7, 9]) {
      const seen = visibility(k, majoritiesRing(new SimRandom(k).shuffle(Array.from({ length: k }, (_, i) => i))))
      const majority = Math.floor(k / 2) + 1
      for (const view of seen) assert.ok(view.length >= majority && view.length < k, `${k} nodes: sees ${view.length}`)
      assert.equal(new Set(seen.map(v => v.join(','))).size, k)
    }
  })
})

/**
 * A short Jepsen-style run: five `shoal start` processes, each in its own network namespace on
 * a bridge, under a minute of seeded kill -9, pauses and partitions while five clients add to
 * sets. Then heal, settle, and check.
 */
describe('chaos run: real nodes in network namespaces under kill -9, pauses and partitions', function () {
  this.timeout(600_000)
  let result: ChaosResult

  before(async function () {
    result = await chaosOrSkip(this, { seed: 20261125, timeMs: 60_000, nodes: 5, clients: 5, keys: 8 }, 'adds')
  })

  it('loses no acknowledged add, invents no element, and the replicas converge', () => {
    assert.deepEqual(result.check.lost, [])
    assert.deepEqual(result.check.unexpected, [])
    assert.deepEqual(result.check.revived, [])
    assert.deepEqual(result.check.divergent, [])
    assert.deepEqual(result.check.unreadable, [])
    assert.deepEqual(result.crashes, [], 'no node exited by itself')
    assert.notEqual(result.convergeMs, undefined)
    assert.equal(result.valid, true)
  })

  it('did real work: hundreds of adds, most acknowledged', () => {
    assert.ok(result.check.acknowledged >= 100, `only ${result.check.acknowledged} adds acknowledged`)
    assert.ok(result.check.acknowledged >= result.check.attempted / 2, `${result.check.acknowledged} of ${result.check.attempted} acknowledged`)
  })

  it('the faults happened: a kill -9 took the process down and it came back, a partition put DROP rules in force and the heal removed them', () => {
    const kills = result.events.filter(e => e.fault.kind === 'kill')
    assert.ok(kills.length >= 1)
    for (const kill of kills) {
      assert.equal(kill.evidence.stillAlive, 0, 'the killed pids are gone')
      const before = kill.evidence.killedPids as number[]
      const after = kill.evidence.restartedPids as number[]
      assert.equal(after.length, before.length)
      for (const pid of after) assert.ok(pid > 0 && !before.includes(pid), 'restarted as new processes')
    }
    const partitions = result.events.filter(e => e.fault.kind === 'partition')
    assert.ok(partitions.length >= 1)
    for (const partition of partitions) {
      const rules = partition.evidence.dropRules as number[]
      // Each cut pair is two rules (INPUT and OUTPUT) on each of its two sides.
      assert.equal(rules.reduce((a, b) => a + b, 0), 4 * (partition.fault.kind === 'partition' ? partition.fault.cuts.length : 0))
      assert.equal(partition.evidence.dropRulesAfterHeal, 0)
    }
    for (const pause of result.events.filter(e => e.fault.kind === 'pause')) {
      assert.equal(pause.evidence.stopped, (pause.evidence.pausedPids as number[]).length, 'SIGSTOP reached the shoal processes')
    }
  })

  it('kept all cluster traffic inside its namespaces: the root namespace had no address or route on the subnet', () => {
    assert.equal(result.rootIsolated, true)
  })

  it('leaves no namespace, process or temp dir behind', () => {
    assertNothingLeft(result.runId)
  })
})

/**
 * The counter workload under the same nemesis, shorter: clients increment counters; every
 * counter's final value must lie between its acknowledged and its possible sum.
 */
describe('chaos run, counter workload: every counter between its acknowledged and possible sums', function () {
  this.timeout(600_000)
  let result: ChaosResult

  before(async function () {
    result = await chaosOrSkip(this, { seed: 20261126, timeMs: 30_000, nodes: 5, clients: 4, keys: 4, workload: 'counter' }, 'increments')
  })

  it('no counter below its acknowledged sum or above its possible sum, and the replicas agree', () => {
    assert.deepEqual(result.check.lost, [])
    assert.deepEqual(result.check.unexpected, [])
    assert.deepEqual(result.check.divergent, [])
    assert.deepEqual(result.check.unreadable, [])
    assert.deepEqual(result.crashes, [], 'no node exited by itself')
    assert.equal(result.valid, true)
  })

  it('did real work under real faults: increments acknowledged, a kill and a partition applied', () => {
    assert.ok(result.check.acknowledged >= 20, `only ${result.check.acknowledged} increments acknowledged`)
    assert.ok(result.events.some(e => e.fault.kind === 'kill'))
    assert.ok(result.events.some(e => e.fault.kind === 'partition'))
  })

  it('leaves no namespace, process or temp dir behind', () => {
    assertNothingLeft(result.runId)
  })
})

/** A run's namespaces, processes and temp dir are all gone. */
function assertNothingLeft (runId: string): void {
  const namespaces = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout
  assert.ok(!namespaces.includes(`shoal-chaos-${runId}`), namespaces)
  const dirs = spawnSync('ls', [tmpdir()], { encoding: 'utf8' }).stdout
  assert.ok(!dirs.includes(`shoal-chaos-${runId}`))
  assert.equal(existsSync(join(tmpdir(), `shoal-chaos-${runId}`)), false)
  const processes = spawnSync('pgrep', ['-f', `chaos-${runId}`], { encoding: 'utf8' })
  assert.equal(processes.stdout.trim(), '', 'no process of the run is left')
}

/**
 * One chaos run, logged in a line; skipped (mocha reports it pending, the reason goes to the log,
 * never a silent pass) where iptables cannot be had.
 */
async function chaosOrSkip (context: Mocha.Context, options: Parameters<typeof runChaos>[0], what: string): Promise<ChaosResult> {
  const probe = findIptables()
  if (!probe.ok) {
    console.log(`      chaos run skipped: ${probe.reason}`)
    context.skip()
  }
  const result = await runChaos(options)
  const c = result.check
  console.log(`      seed ${result.seed}: ${c.attempted} ${what}, ${c.acknowledged} acknowledged, ${c.unknown} unknown, ${c.recovered} recovered; ` +
    `${Object.entries(result.eventCounts).map(([k, v]) => `${k} ${v}`).join(', ')}; converged in ${((result.convergeMs ?? NaN) / 1000).toFixed(1)} s`)
  return result
}
