import assert from 'node:assert/strict'
import { checkCounters } from '../harness/counter-checker.ts'
import type { IncrementRecord } from '../harness/protocol.ts'
import { counterElements } from '../harness/counter-workload.ts'
import { encodeCrdt } from '../../src/core/crdt/typed-value.ts'

describe('chaos counter checker on a hand-made history', () => {
  const incrs: IncrementRecord[] = [
    { client: 0, key: 'k', amount: 3, outcome: 'ok' },
    { client: 1, key: 'k', amount: 2, outcome: 'unknown', error: 'TimeoutError' },
    { client: 1, key: 'k', amount: 5, outcome: 'failed', error: 'UnavailableError' },
    { client: 0, key: 'j', amount: 4, outcome: 'ok' }
  ]

  it('a value between the acknowledged and possible sums is valid; the unknown increment that landed is recovered', () => {
    const result = checkCounters(incrs, { k: [{ node: 0, elements: ['5'] }, { node: 1, elements: ['5'] }], j: [{ node: 0, elements: ['4'] }] }, [])
    assert.equal(result.valid, true)
    assert.equal(result.recovered, 2)
    assert.deepEqual(result.sums.find(s => s.key === 'k'), { key: 'k', acknowledged: 3, possible: 5, attempted: 10, values: [5, 5] })
  })

  it('below the acknowledged sum is lost, above the possible sum (a definitely failed increment) is unexpected', () => {
    const result = checkCounters(incrs, { k: [{ node: 0, elements: ['2'] }, { node: 1, elements: ['10'] }], j: [{ node: 0, elements: ['4'] }] }, [])
    assert.deepEqual(result.lost, [{ key: 'k', element: '2 < acknowledged 3', nodes: [0] }])
    assert.deepEqual(result.unexpected, [{ key: 'k', element: '10 > possible 5', nodes: [1] }])
    assert.deepEqual(result.divergent, ['k'], 'the nodes read different values')
    assert.equal(result.valid, false)
  })

  it('a key nobody can read, or that holds no counter, fails the run', () => {
    const result = checkCounters(incrs, { k: [{ node: 0, error: 'QuorumError' }], j: [{ node: 0, elements: counterElements({ siblings: [new Uint8Array([1])], context: '' }) }] }, [])
    assert.deepEqual(result.unreadable, ['k'])
    assert.equal(result.unexpected.length, 1)
    assert.equal(result.valid, false)
  })

  it('reads a counter value from a read result', () => {
    assert.deepEqual(counterElements(undefined), ['0'])
    assert.deepEqual(counterElements({ siblings: [encodeCrdt({ type: 'counter', state: new Map([['a', { p: 7, n: 2 }]]) })], context: '' }), ['5'])
  })
})
