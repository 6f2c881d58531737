import assert from 'node:assert/strict'
import fc from 'fast-check'
import { MemberTable, compareRecords, validateRecord } from '../../src/core/membership.ts'
import type { MemberRecord, MemberStatus } from '../../src/core/membership.ts'

const statuses: MemberStatus[] = ['joining', 'up', 'leaving', 'left']

function record (fields: Partial<MemberRecord> = {}): MemberRecord {
  return { id: 'peerA', incarnation: 1, seq: 0, status: 'up', addrs: ['/ip4/10.0.0.1/tcp/4001'], weight: 1, ...fields }
}

// Few ids and small numbers, so records about one member often tie on incarnation and seq.
const recordArb: fc.Arbitrary<MemberRecord> = fc.record({
  id: fc.constantFrom('peerA', 'peerB', 'peerC'),
  incarnation: fc.integer({ min: 0, max: 2 }),
  seq: fc.integer({ min: 0, max: 2 }),
  status: fc.constantFrom(...statuses),
  addrs: fc.uniqueArray(fc.constantFrom('/ip4/10.0.0.1/tcp/1', '/ip4/10.0.0.2/tcp/1', '/dns4/a/tcp/2'), { maxLength: 3 }).map(a => a.sort()),
  weight: fc.constantFrom(0.5, 1, 2)
})

/** Records in a random order, some delivered more than once, as gossip does. */
const deliveries = fc.array(recordArb, { minLength: 1, maxLength: 20 }).chain(records =>
  fc.tuple(
    fc.constant(records),
    fc.shuffledSubarray(records, { minLength: 0 }).chain(dups => fc.shuffledSubarray([...records, ...dups], { minLength: records.length + dups.length }))
  )
)

describe('membership', () => {
  it('merges converge whatever the order and duplication of the records', () => {
    fc.assert(fc.property(deliveries, ([records, shuffled]) => {
      const a = new MemberTable(records)
      const b = new MemberTable()
      for (const r of shuffled) b.merge(r)
      assert.deepEqual(a.all(), b.all())
      assert.equal(a.digest(), b.digest())
      // The winner for each member is the maximum of the total order.
      for (const r of a.all()) {
        for (const other of records.filter(x => x.id === r.id)) assert.ok(compareRecords(r, other) >= 0)
      }
    }), { numRuns: 300 })
  })

  it('orders records totally: antisymmetric, transitive, 0 only for equal records', () => {
    fc.assert(fc.property(recordArb, recordArb, recordArb, (a, b, c) => {
      // Written as a sum: Object.is(0, -0) is false, so comparing sign with -sign fails on equal records.
      assert.equal(Math.sign(compareRecords(a, b)) + Math.sign(compareRecords(b, a)), 0)
      assert.equal(compareRecords(a, b) === 0, isEqual(a, b))
      if (compareRecords(a, b) >= 0 && compareRecords(b, c) >= 0) assert.ok(compareRecords(a, c) >= 0)
    }), { numRuns: 500 })
  })

  it('a newer incarnation wins over any seq and status of an older one', () => {
    fc.assert(fc.property(fc.nat(1e6), fc.nat(), fc.constantFrom(...statuses), fc.constantFrom(...statuses), (older, seq, s1, s2) => {
      const old = record({ incarnation: older, seq, status: s1 })
      const fresh = record({ incarnation: older + 1, seq: 0, status: s2 })
      assert.ok(compareRecords(fresh, old) > 0)
      const table = new MemberTable([fresh])
      assert.equal(table.merge(old), false)
      assert.deepEqual(table.get('peerA'), fresh)
    }))
  })

  it('within an incarnation a higher seq wins, then the later status', () => {
    assert.ok(compareRecords(record({ seq: 2, status: 'joining' }), record({ seq: 1, status: 'left' })) > 0)
    assert.ok(compareRecords(record({ status: 'left' }), record({ status: 'leaving' })) > 0)
    assert.ok(compareRecords(record({ status: 'leaving' }), record({ status: 'up' })) > 0)
    assert.ok(compareRecords(record({ status: 'up' }), record({ status: 'joining' })) > 0)
  })

  it('merge reports news only: a record already known or older changes nothing', () => {
    const table = new MemberTable()
    assert.equal(table.merge(record()), true)
    assert.equal(table.merge(record()), false)
    assert.equal(table.merge(record({ seq: 1 })), true)
    assert.equal(table.merge(record({ seq: 0, status: 'left' })), false)
    assert.deepEqual(table.mergeAll([record({ id: 'peerB' }), record({ seq: 2 }), record({ id: 'peerB' }), record()]), ['peerA', 'peerB'])
    assert.equal(table.size, 2)
  })

  it('stores its own frozen, normalized copy of a record', () => {
    const addrs = ['/ip4/10.0.0.2/tcp/1', '/ip4/10.0.0.1/tcp/1', '/ip4/10.0.0.2/tcp/1']
    const mine = { ...record(), addrs }
    const table = new MemberTable([mine])
    addrs.push('/ip4/6.6.6.6/tcp/1')
    const stored = table.get('peerA')
    assert.deepEqual(stored?.addrs, ['/ip4/10.0.0.1/tcp/1', '/ip4/10.0.0.2/tcp/1'])
    assert.ok(Object.isFrozen(stored) && Object.isFrozen(stored?.addrs))
  })

  it('equal tables have equal digests, and any change to a record changes the digest', () => {
    const base = [record(), record({ id: 'peerB', weight: 2 })]
    const digest = new MemberTable(base).digest()
    assert.match(digest, /^[0-9a-f]{32}$/)
    assert.equal(new MemberTable([...base].reverse()).digest(), digest)
    for (const change of [{ seq: 1 }, { incarnation: 2 }, { status: 'leaving' as const }, { weight: 1.5 }, { addrs: [] }]) {
      const changed = new MemberTable(base.map(r => r.id === 'peerA' ? { ...r, ...change } : r))
      assert.notEqual(changed.digest(), digest, JSON.stringify(change))
    }
    const grown = new MemberTable(base)
    grown.merge(record({ id: 'peerC' }))
    assert.notEqual(grown.digest(), digest)
    assert.notEqual(new MemberTable().digest(), digest)
  })

  it('ringMembers lists the up members by id, with their weights: leaving ones own nothing', () => {
    const table = new MemberTable([
      record({ id: 'd', status: 'left' }),
      record({ id: 'c', status: 'leaving', weight: 2 }),
      record({ id: 'b', status: 'joining' }),
      record({ id: 'a', status: 'up' })
    ])
    assert.deepEqual(table.ringMembers(), [{ id: 'a', weight: 1 }])
    assert.deepEqual(table.all().map(r => r.id), ['a', 'b', 'c', 'd'])
  })

  it('validateRecord accepts a well-formed record and ignores unknown fields', () => {
    const input = { ...record(), extra: 'x', addrs: ['/b', '/a', '/a'] }
    assert.deepEqual(validateRecord(input), { ...record(), addrs: ['/a', '/b'] })
    assert.deepEqual(validateRecord(record({ weight: 1000, id: 'x'.repeat(128), incarnation: Number.MAX_SAFE_INTEGER })).weight, 1000)
  })

  it('validateRecord rejects every malformed field with MalformedDataError', () => {
    const good = record() as unknown as Record<string, unknown>
    const bad: Array<[string, unknown]> = [
      ['not an object', null],
      ['a string', 'peerA'],
      ['an array', []],
      ['no id', { ...good, id: undefined }],
      ['empty id', { ...good, id: '' }],
      ['id too long', { ...good, id: 'x'.repeat(129) }],
      ['id a number', { ...good, id: 7 }],
      ['incarnation missing', { ...good, incarnation: undefined }],
      ['incarnation negative', { ...good, incarnation: -1 }],
      ['incarnation fractional', { ...good, incarnation: 1.5 }],
      ['incarnation unsafe', { ...good, incarnation: 2 ** 53 }],
      ['incarnation a string', { ...good, incarnation: '1' }],
      ['incarnation NaN', { ...good, incarnation: NaN }],
      ['seq negative', { ...good, seq: -1 }],
      ['seq infinite', { ...good, seq: Infinity }],
      ['seq a bigint', { ...good, seq: 1n }],
      ['status unknown', { ...good, status: 'down' }],
      ['status inherited', { ...good, status: 'toString' }],
      ['status missing', { ...good, status: undefined }],
      ['addrs not a list', { ...good, addrs: '/ip4/1.2.3.4' }],
      ['too many addrs', { ...good, addrs: Array.from({ length: 33 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`) }],
      ['addr too long', { ...good, addrs: ['/' + 'x'.repeat(256)] }],
      ['addr empty', { ...good, addrs: [''] }],
      ['addr a number', { ...good, addrs: [4001] }],
      ['weight zero', { ...good, weight: 0 }],
      ['weight negative', { ...good, weight: -1 }],
      ['weight too large', { ...good, weight: 1000.5 }],
      ['weight infinite', { ...good, weight: Infinity }],
      ['weight NaN', { ...good, weight: NaN }],
      ['weight a string', { ...good, weight: '1' }]
    ]
    for (const [why, input] of bad) {
      assert.throws(() => validateRecord(input), { name: 'MalformedDataError' }, why)
    }
    assert.throws(() => new MemberTable().merge({ ...record(), weight: 0 }), { name: 'MalformedDataError' })
  })
})

function isEqual (a: MemberRecord, b: MemberRecord): boolean {
  return a.id === b.id && a.incarnation === b.incarnation && a.seq === b.seq && a.status === b.status &&
    a.weight === b.weight && a.addrs.join('\n') === b.addrs.join('\n')
}
