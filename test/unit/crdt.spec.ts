import assert from 'node:assert/strict'
import fc from 'fast-check'
import { bytesEqual, bytesId, toBytes } from '../../src/core/bytes.ts'
import { EMPTY, equals, merge, update, values } from '../../src/core/causality.ts'
import type { DvvSet } from '../../src/core/causality.ts'
import { collapseSiblings } from '../../src/core/crdt/collapse.ts'
import { EMPTY_COUNTER, bump, counterValue, join as joinCounters, maxEntry } from '../../src/core/crdt/counter.ts'
import type { CounterEntry, CounterState } from '../../src/core/crdt/counter.ts'
import { EMPTY_SET, TAG_BYTES, add, has, join as joinSets, members, remove } from '../../src/core/crdt/orset.ts'
import type { OrSetState } from '../../src/core/crdt/orset.ts'
import { CRDT_MAGIC, decodeCrdt, encodeCrdt, isReserved, joinValues, refuseReserved } from '../../src/core/crdt/typed-value.ts'

const ACTORS = ['a', 'b', 'c', 'd'].map(a => bytesId(toBytes(a)))
const MEMBERS = ['x', 'y', 'z'].map(toBytes)
const TAGS = Array.from({ length: 6 }, (_, i) => new Uint8Array(TAG_BYTES).fill(i + 1))

const counterArb: fc.Arbitrary<CounterState> = fc.array(fc.tuple(fc.constantFrom(...ACTORS), fc.nat(1000), fc.nat(1000)), { maxLength: 6 })
  .map(entries => new Map(entries.filter(([, p, n]) => p !== 0 || n !== 0).map(([a, p, n]) => [a, { p, n }])))

const setArb: fc.Arbitrary<OrSetState> = fc.record({
  adds: fc.array(fc.tuple(fc.constantFrom(...MEMBERS), fc.uniqueArray(fc.constantFrom(...TAGS), { minLength: 1, maxLength: 3 })), { maxLength: 4 }),
  removed: fc.uniqueArray(fc.constantFrom(...TAGS), { maxLength: 4 })
}).map(({ adds, removed }) => joinSets({
  adds: new Map(adds.map(([m, tags]) => [bytesId(m), new Set(tags.map(bytesId))])),
  removed: new Set(removed.map(bytesId))
}, EMPTY_SET))

const sameCounter = (a: CounterState, b: CounterState): boolean => bytesEqual(encodeCrdt({ type: 'counter', state: a }), encodeCrdt({ type: 'counter', state: b }))
const sameSet = (a: OrSetState, b: OrSetState): boolean => bytesEqual(encodeCrdt({ type: 'set', state: a }), encodeCrdt({ type: 'set', state: b }))

describe('PN-counter', () => {
  it('join is commutative, associative and idempotent', () => {
    fc.assert(fc.property(counterArb, counterArb, counterArb, (a, b, c) => {
      assert.ok(sameCounter(joinCounters(a, b), joinCounters(b, a)))
      assert.ok(sameCounter(joinCounters(joinCounters(a, b), c), joinCounters(a, joinCounters(b, c))))
      assert.ok(sameCounter(joinCounters(a, a), a))
    }), { numRuns: 500 })
  })

  it('the value is the sum of every increment, whatever the order and repetition of merges', () => {
    // Replicas (one per actor) increment from their own latest entry and merge with each other at
    // random; the final join over every replica, in a random order, counts each increment once.
    const step = fc.record({ actor: fc.nat(ACTORS.length - 1), amount: fc.integer({ min: -50, max: 50 }), mergeFrom: fc.option(fc.nat(ACTORS.length - 1)) })
    fc.assert(fc.property(fc.array(step, { maxLength: 60 }), fc.array(fc.nat(ACTORS.length - 1), { minLength: ACTORS.length, maxLength: 12 }), (steps, order) => {
      const replicas: CounterState[] = ACTORS.map(() => EMPTY_COUNTER)
      // What each actor remembers of its own entry: a stale replica state can never lower it.
      const memory: Array<CounterEntry | undefined> = ACTORS.map(() => undefined)
      let sum = 0
      for (const { actor, amount, mergeFrom } of steps) {
        const id = ACTORS[actor] as string
        if (mergeFrom !== null) replicas[actor] = joinCounters(replicas[actor] as CounterState, replicas[mergeFrom] as CounterState)
        const from = maxEntry(memory[actor], (replicas[actor] as CounterState).get(id))
        replicas[actor] = bump(replicas[actor] as CounterState, id, from, amount)
        memory[actor] = (replicas[actor] as CounterState).get(id)
        sum += amount
      }
      const all = [...order, ...ACTORS.keys()].map(i => replicas[i] as CounterState).reduce(joinCounters, EMPTY_COUNTER)
      assert.equal(counterValue(all), sum)
    }), { numRuns: 500 })
  })

  it('round-trips through its canonical encoding', () => {
    fc.assert(fc.property(counterArb, state => {
      const decoded = decodeCrdt(encodeCrdt({ type: 'counter', state }))
      assert.equal(decoded?.type, 'counter')
      assert.ok(decoded?.type === 'counter' && sameCounter(decoded.state, state))
      assert.equal(counterValue(decoded.state), counterValue(state))
    }))
  })

  it('refuses a total beyond 2^53 - 1', () => {
    assert.throws(() => bump(EMPTY_COUNTER, 'a', { p: Number.MAX_SAFE_INTEGER, n: 0 }, 1), { name: 'InvalidArgumentError' })
  })
})

describe('add-wins OR-set', () => {
  it('join is commutative, associative and idempotent', () => {
    fc.assert(fc.property(setArb, setArb, setArb, (a, b, c) => {
      assert.ok(sameSet(joinSets(a, b), joinSets(b, a)))
      assert.ok(sameSet(joinSets(joinSets(a, b), c), joinSets(a, joinSets(b, c))))
      assert.ok(sameSet(joinSets(a, a), a))
    }), { numRuns: 500 })
  })

  it('an add concurrent with a remove of the same member wins', () => {
    fc.assert(fc.property(setArb, fc.constantFrom(...MEMBERS), fc.uint8Array({ minLength: TAG_BYTES, maxLength: TAG_BYTES }), (base, member, tag) => {
      fc.pre(![...base.removed].includes(bytesId(tag)) && ![...base.adds.values()].some(tags => tags.has(bytesId(tag))))
      const removed = remove(base, member)
      const added = add(base, member, tag)
      assert.equal(has(removed, member), false)
      assert.ok(has(joinSets(removed, added), member))
      assert.ok(has(joinSets(added, removed), member))
    }), { numRuns: 500 })
  })

  it('a remove that observed every add removes the member for good', () => {
    fc.assert(fc.property(setArb, setArb, fc.constantFrom(...MEMBERS), (a, b, member) => {
      const seen = joinSets(a, b)
      const gone = remove(seen, member)
      assert.equal(has(joinSets(gone, a), member), false)
      assert.equal(has(joinSets(b, gone), member), false)
    }), { numRuns: 300 })
  })

  it('round-trips through its canonical encoding, members in byte order', () => {
    fc.assert(fc.property(setArb, state => {
      const decoded = decodeCrdt(encodeCrdt({ type: 'set', state }))
      assert.ok(decoded?.type === 'set' && sameSet(decoded.state, state))
      const listed = members(state)
      assert.deepEqual(listed.map(m => bytesId(m)), [...state.adds.keys()].sort())
    }))
  })
})

describe('typed values', () => {
  it('no text value is ever in the reserved space (0xFF never occurs in UTF-8)', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), text => { assert.equal(isReserved(toBytes(text)), false) }))
  })

  it('a plain value starting with the prefix is refused with InvalidArgumentError', () => {
    assert.throws(() => { refuseReserved(Uint8Array.of(...CRDT_MAGIC, 9, 9)) }, { name: 'InvalidArgumentError' })
    refuseReserved(Uint8Array.of(0xff, 0x53))
  })

  it('a malformed, unknown or truncated body decodes as opaque (undefined), never throws', () => {
    const valid = encodeCrdt({ type: 'set', state: add(EMPTY_SET, toBytes('x'), TAGS[0] as Uint8Array) })
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(valid.length), fc.nat(), (noise, cut, flip) => {
      for (const bytes of [Uint8Array.of(...CRDT_MAGIC, ...noise), valid.subarray(0, cut), Uint8Array.of(...valid.subarray(0, cut), ...noise)]) {
        const mutated = Uint8Array.from(bytes)
        if (mutated.length > 0) mutated[flip % mutated.length]! ^= 1 << (flip % 8)
        for (const candidate of [bytes, mutated]) {
          const decoded = decodeCrdt(candidate)
          // Whatever decodes re-encodes to something that decodes the same.
          if (decoded !== undefined) assert.deepEqual(decodeCrdt(encodeCrdt(decoded)), decoded)
        }
      }
    }), { numRuns: 2000 })
    assert.equal(decodeCrdt(Uint8Array.of(...CRDT_MAGIC, 1, 2)), undefined, 'an unknown version')
    assert.equal(decodeCrdt(Uint8Array.of(...CRDT_MAGIC, 7, 1)), undefined, 'an unknown type')
  })

  it('joinValues joins siblings of one type and leaves anything else to a resolver', () => {
    const c = (state: CounterState): Uint8Array => encodeCrdt({ type: 'counter', state })
    const joined = joinValues([c(new Map([['a', { p: 3, n: 0 }]])), c(new Map([['b', { p: 4, n: 1 }]]))])
    assert.ok(joined !== undefined)
    const decoded = decodeCrdt(joined)
    assert.ok(decoded?.type === 'counter')
    assert.equal(counterValue(decoded.state), 6)
    assert.equal(joinValues([c(EMPTY_COUNTER), toBytes('plain')]), undefined)
    assert.equal(joinValues([c(EMPTY_COUNTER), encodeCrdt({ type: 'set', state: EMPTY_SET })]), undefined)
  })
})

describe('collapse of convergent siblings in a replica merge', () => {
  const counterValueOf = (obj: DvvSet): number[] => values(obj).map(v => {
    const d = decodeCrdt(v)
    assert.ok(d?.type === 'counter')
    return counterValue(d.state)
  })

  it('replaces unequal states by their join under a fresh dot, and leaves equal states be', () => {
    const a = update(undefined, new Map(), 'ra', encodeCrdt({ type: 'counter', state: new Map([['x', { p: 2, n: 0 }]]) }), 10)
    const b = update(undefined, new Map(), 'rb', encodeCrdt({ type: 'counter', state: new Map([['y', { p: 5, n: 0 }]]) }), 20)
    const both = merge(a, b)
    const collapsed = collapseSiblings(both, 'ra')
    assert.ok(collapsed !== undefined)
    assert.deepEqual(counterValueOf(collapsed), [7])
    assert.equal(collapsed.siblings[0]?.dot.actor, 'ra')
    assert.equal(collapsed.siblings[0]?.dot.counter, 2)
    assert.equal(collapsed.siblings[0]?.timestamp, 20)
    // Merged into a replica holding the old siblings, the collapse replaces them.
    assert.ok(equals(merge(both, collapsed), collapsed))
    // Another replica collapsing concurrently mints the same join: no further collapse.
    const other = collapseSiblings(both, 'rb')
    assert.ok(other !== undefined)
    const twoJoins = merge(collapsed, other)
    assert.equal(twoJoins.siblings.length, 2)
    assert.equal(collapseSiblings(twoJoins, 'ra'), undefined)
    // Plain values and tombstones are never touched.
    assert.equal(collapseSiblings(merge(a, update(undefined, new Map(), 'rb', toBytes('plain'), 1)), 'ra'), undefined)
    assert.equal(collapseSiblings(merge(a, update(undefined, new Map(), 'rb', null, 1)), 'ra'), undefined)
  })

  it('replicas exchanging concurrent states in any order converge to one value and stop minting dots', () => {
    // A replica merge as Store.merge does it: merge, then collapse with the replica's own actor.
    const replicaMerge = (current: DvvSet, incoming: DvvSet, actor: string): DvvSet => {
      const merged = merge(current, incoming)
      return collapseSiblings(merged, actor) ?? merged
    }
    const write = fc.record({ replica: fc.nat(2), actor: fc.nat(ACTORS.length - 1), amount: fc.integer({ min: 1, max: 9 }) })
    const exchange = fc.tuple(fc.nat(2), fc.nat(2))
    fc.assert(fc.property(fc.array(write, { minLength: 1, maxLength: 12 }), fc.array(exchange, { maxLength: 30 }), (writes, exchanges) => {
      const names = ['r0', 'r1', 'r2']
      const replicas: DvvSet[] = [EMPTY, EMPTY, EMPTY]
      let sum = 0
      // Blind concurrent writes (no context), each a whole counter state of a distinct client.
      writes.forEach(({ replica, amount }, i) => {
        const state = new Map([[`client-${i}`, { p: amount, n: 0 }]])
        replicas[replica] = update(replicas[replica], new Map(), names[replica] as string, encodeCrdt({ type: 'counter', state }), i)
        sum += amount
      })
      const sync = (i: number, j: number): void => {
        replicas[j] = replicaMerge(replicas[j] as DvvSet, replicas[i] as DvvSet, names[j] as string)
        replicas[i] = replicaMerge(replicas[i] as DvvSet, replicas[j] as DvvSet, names[i] as string)
      }
      for (const [i, j] of exchanges) sync(i, j)
      // Then anti-entropy rounds until quiet; it must get quiet, and fast.
      let rounds = 0
      for (;;) {
        const before = replicas.map(r => r)
        sync(0, 1); sync(1, 2); sync(0, 2)
        if (replicas.every((r, i) => equals(r, before[i] as DvvSet))) break
        assert.ok(++rounds < 10, 'replicas keep minting dots')
      }
      assert.ok(equals(replicas[0] as DvvSet, replicas[1] as DvvSet) && equals(replicas[1] as DvvSet, replicas[2] as DvvSet))
      const readValue = joinValues(values(replicas[0] as DvvSet))
      assert.ok(readValue !== undefined)
      const decoded = decodeCrdt(readValue)
      assert.ok(decoded?.type === 'counter')
      assert.equal(counterValue(decoded.state), sum)
    }), { numRuns: 300 })
  })
})
