import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Ring, movedShare, ownershipChanges, DEFAULT_N, DEFAULT_PARTITIONS } from '../../src/core/ring.ts'
import type { RingMember } from '../../src/core/ring.ts'
import { keyHash, topBits } from '../../src/core/hash.ts'
import { fakePeerId, seeded } from '../../src/sim/random.ts'

const Q = DEFAULT_PARTITIONS
const N = DEFAULT_N
// Fixed fast-check seed: the suite is reproducible, and a failure names its counterexample.
const check = { seed: 20251125, endOnFailure: true }

function shuffled<T> (list: readonly T[], random: () => number): T[] {
  const out = [...list]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

function equalMembers (random: () => number, count: number): RingMember[] {
  return Array.from({ length: count }, () => ({ id: fakePeerId(random), weight: 1 }))
}

function loads (ring: Ring): number[] {
  return ring.members.map(m => ring.replicaCount(m.id))
}

const seeds = fc.integer({ min: 0, max: 2 ** 31 - 1 })

describe('ring', () => {
  describe('bars (Q=4096, N=3)', () => {
    for (const [size, runs] of [[5, 50], [10, 50], [50, 30], [100, 20]] as const) {
      it(`no member holds more than 1.10x the mean among ${size} equal members`, () => {
        fc.assert(fc.property(seeds, seed => {
          const ring = new Ring(equalMembers(seeded(seed), size))
          const mean = Q * N / size
          assert.ok(Math.max(...loads(ring)) / mean <= 1.1)
        }), { ...check, numRuns: runs })
      })
    }

    for (const [size, runs] of [[5, 30], [10, 30], [50, 20], [100, 15]] as const) {
      it(`one join or one leave among ${size} members moves at most 1.25/S of the replicas`, () => {
        fc.assert(fc.property(seeds, fc.nat(), (seed, pick) => {
          const random = seeded(seed)
          const members = equalMembers(random, size)
          const ring = new Ring(members)
          const joined = new Ring([...members, { id: fakePeerId(random), weight: 1 }])
          const left = new Ring(members.filter((_, i) => i !== pick % size))
          assert.ok(movedShare(ring, joined) <= 1.25 / size, `join moved ${movedShare(ring, joined) * size}/S`)
          assert.ok(movedShare(ring, left) <= 1.25 / size, `leave moved ${movedShare(ring, left) * size}/S`)
        }), { ...check, numRuns: runs })
      })
    }

    for (const [size, runs] of [[5, 30], [10, 30], [50, 20], [100, 15]] as const) {
      it(`a weight-2 member among ${size - 1} equal members holds 1.8x to 2.2x their mean share`, () => {
        fc.assert(fc.property(seeds, seed => {
          const members = equalMembers(seeded(seed), size)
          const heavy = members[0]?.id ?? ''
          members[0] = { id: heavy, weight: 2 }
          const ring = new Ring(members)
          const others = (Q * N - ring.replicaCount(heavy)) / (size - 1)
          const ratio = ring.replicaCount(heavy) / others
          assert.ok(ratio >= 1.8 && ratio <= 2.2, `ratio ${ratio}`)
        }), { ...check, numRuns: runs })
      })
    }

    it('every partition has N distinct owners when S >= N, and all S when S < N', () => {
      fc.assert(fc.property(seeds, fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 5 }), (seed, size, n) => {
        const random = seeded(seed)
        const members = equalMembers(random, size).map(m => ({ ...m, weight: 0.5 + random() * 3 }))
        const ring = new Ring(members, { n, partitions: 64 })
        for (let p = 0; p < ring.partitions; p++) {
          const owners = ring.owners(p)
          assert.equal(owners.length, Math.min(n, size))
          assert.equal(new Set(owners).size, owners.length)
        }
      }), { ...check, numRuns: 25 })
    })
  })

  describe('a pure function of the member set', () => {
    it('the same members in any order give identical preference lists', () => {
      fc.assert(fc.property(seeds, fc.integer({ min: 1, max: 40 }), (seed, size) => {
        const random = seeded(seed)
        const members = equalMembers(random, size).map(m => ({ ...m, weight: random() < 0.2 ? 2 : 1 }))
        const a = new Ring(members, { partitions: 256 })
        const b = new Ring(shuffled(members, random), { partitions: 256 })
        assert.deepEqual(b.members, a.members)
        for (let p = 0; p < 256; p++) assert.deepEqual(b.preflist(p), a.preflist(p))
      }), { ...check, numRuns: 15 })
    })

    it('lists members sorted by id', () => {
      const ring = new Ring(equalMembers(seeded(7), 20))
      const ids = ring.members.map(m => m.id)
      assert.deepEqual(ids, [...ids].sort())
    })
  })

  describe('partitions and preference lists', () => {
    it('partitionOf is the top log2(Q) bits of the key hash', () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 16 }), (key, bits) => {
        const ring = new Ring([{ id: fakePeerId(seeded(1)), weight: 1 }], { partitions: 2 ** bits })
        assert.equal(ring.partitionOf(key), topBits(keyHash(key), bits))
        assert.ok(ring.partitionOf(key) < 2 ** bits)
      }), { ...check, numRuns: 100 })
    })

    it('a preference list names every member once: the owners, then the fallbacks', () => {
      const ring = new Ring(equalMembers(seeded(11), 12), { partitions: 128 })
      for (let p = 0; p < 128; p++) {
        const preflist = ring.preflist(p)
        assert.equal(new Set(preflist).size, 12)
        assert.deepEqual(preflist.slice(0, N), ring.owners(p))
        assert.deepEqual(preflist.slice(N), ring.fallbacks(p))
      }
    })

    it('partitionsOf and replicaCount agree with the owners of every partition', () => {
      const ring = new Ring(equalMembers(seeded(12), 9), { partitions: 256 })
      for (const { id } of ring.members) {
        const mine = ring.partitionsOf(id)
        assert.deepEqual(mine, [...Array(256).keys()].filter(p => ring.owners(p).includes(id)))
        assert.equal(ring.replicaCount(id), mine.length)
      }
      assert.deepEqual(ring.partitionsOf('12D3KooWnotamember'), [])
      assert.equal(ring.replicaCount('12D3KooWnotamember'), 0)
    })

    it('an empty ring has no owners and no fallbacks', () => {
      const ring = new Ring([])
      assert.equal(ring.partitions, Q)
      assert.deepEqual(ring.owners(0), [])
      assert.deepEqual(ring.preflist(Q - 1), [])
      assert.deepEqual(ring.fallbacks(5), [])
    })

    it('a single partition and a single member work', () => {
      const id = fakePeerId(seeded(3))
      const ring = new Ring([{ id, weight: 1 }], { partitions: 1 })
      assert.equal(ring.partitionOf(new Uint8Array([1, 2, 3])), 0)
      assert.deepEqual(ring.owners(0), [id])
      assert.deepEqual(ring.fallbacks(0), [])
    })

    it('rejects a partition index out of range', () => {
      const ring = new Ring(equalMembers(seeded(4), 3), { partitions: 16 })
      for (const bad of [-1, 16, 1.5, Number.NaN]) {
        assert.throws(() => ring.owners(bad), (err: Error) => err.name === 'InvalidArgumentError')
      }
    })
  })

  describe('ownershipChanges', () => {
    it('lists exactly the partitions whose owner sets differ, with what each gained and lost', () => {
      fc.assert(fc.property(seeds, fc.integer({ min: 3, max: 30 }), (seed, size) => {
        const random = seeded(seed)
        const members = equalMembers(random, size)
        const before = new Ring(members, { partitions: 128 })
        const after = new Ring([...members.slice(1), { id: fakePeerId(random), weight: 2 }], { partitions: 128 })
        const changes = ownershipChanges(before, after)
        const changed = new Map(changes.map(c => [c.partition, c]))
        assert.equal(changed.size, changes.length)
        for (let p = 0; p < 128; p++) {
          const was = new Set(before.owners(p))
          const now = new Set(after.owners(p))
          const change = changed.get(p)
          const differs = was.size !== now.size || [...was].some(id => !now.has(id))
          assert.equal(change !== undefined, differs)
          if (change === undefined) continue
          assert.deepEqual(new Set(change.gained), new Set([...now].filter(id => !was.has(id))))
          assert.deepEqual(new Set(change.lost), new Set([...was].filter(id => !now.has(id))))
        }
      }), { ...check, numRuns: 15 })
    })

    it('is empty between equal rings and rejects rings of different sizes', () => {
      const members = equalMembers(seeded(5), 6)
      assert.deepEqual(ownershipChanges(new Ring(members), new Ring([...members].reverse())), [])
      assert.throws(() => ownershipChanges(new Ring(members), new Ring(members, { partitions: 512 })),
        (err: Error) => err.name === 'InvalidArgumentError')
    })
  })

  describe('constructor', () => {
    const ok = { id: fakePeerId(seeded(9)), weight: 1 }
    const invalid: Array<[string, () => Ring]> = [
      ['a duplicate id', () => new Ring([ok, { ...ok }])],
      ['an empty id', () => new Ring([ok, { id: '', weight: 1 }])],
      ['a zero weight', () => new Ring([{ ...ok, weight: 0 }])],
      ['a negative weight', () => new Ring([{ ...ok, weight: -1 }])],
      ['a NaN weight', () => new Ring([{ ...ok, weight: Number.NaN }])],
      ['an infinite weight', () => new Ring([{ ...ok, weight: Infinity }])],
      ['a weight that is not a number', () => new Ring([{ id: ok.id, weight: '1' as unknown as number }])],
      ['zero partitions', () => new Ring([ok], { partitions: 0 })],
      ['partitions not a power of two', () => new Ring([ok], { partitions: 1000 })],
      ['more than 2^16 partitions', () => new Ring([ok], { partitions: 2 ** 17 })],
      ['n = 0', () => new Ring([ok], { n: 0 })],
      ['a fractional n', () => new Ring([ok], { n: 1.5 })]
    ]
    for (const [what, build] of invalid) {
      it(`rejects ${what} with InvalidArgumentError`, () => {
        assert.throws(build, (err: Error) => err.name === 'InvalidArgumentError')
      })
    }

    it('accepts fewer members than N: every member owns every partition', () => {
      const members = equalMembers(seeded(10), 2)
      const ring = new Ring(members, { partitions: 8 })
      for (let p = 0; p < 8; p++) assert.deepEqual(new Set(ring.owners(p)), new Set(members.map(m => m.id)))
    })
  })
})
