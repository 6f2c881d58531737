import assert from 'node:assert/strict'
import fc from 'fast-check'
import { writer } from 'protons-runtime'
import { toString } from 'uint8arrays/to-string'
import {
  EMPTY, update, merge, join, covers, descends, equals, values, isDeleted,
  encodeContext, decodeContext, encodeObject, decodeObject, objectDigest
} from '../../src/core/causality.ts'
import type { Dot, DvvSet, Sibling, VersionVector } from '../../src/core/causality.ts'
import { toBytes, bytesEqual } from '../../src/core/bytes.ts'

// Random histories: replicas coordinating puts with contexts taken from any earlier state, and
// syncing pairwise. Every object the properties see is one that a real run could hold.

const ACTORS = ['a', 'b', 'c'] as const

interface Step {
  put: boolean
  replica: number
  other: number
  /** Index into the states seen so far; the context of a put. 0 is EMPTY (a put without context). */
  context: number
  tombstone: boolean
}

interface History {
  replicas: DvvSet[]
  /** Every state any replica held, oldest first, starting with EMPTY. */
  states: DvvSet[]
  /** Every write made, and every context a put was given. */
  writes: Sibling[]
  contexts: VersionVector[]
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  put: fc.boolean(),
  replica: fc.nat(ACTORS.length - 1),
  other: fc.nat(ACTORS.length - 1),
  context: fc.nat(),
  tombstone: fc.nat(9).map(n => n < 3)
})
const stepsArb = fc.array(stepArb, { maxLength: 40, size: 'medium' })

function replay (steps: readonly Step[]): History {
  const replicas: DvvSet[] = ACTORS.map(() => EMPTY)
  const states: DvvSet[] = [EMPTY]
  const writes: Sibling[] = []
  const contexts: VersionVector[] = []
  steps.forEach((step, time) => {
    const own = replicas[step.replica] as DvvSet
    let next: DvvSet
    if (step.put) {
      const context = (states[step.context % states.length] as DvvSet).vv
      contexts.push(context)
      next = update(own, context, ACTORS[step.replica] as string, step.tombstone ? null : toBytes(`w${writes.length}`), time)
      writes.push(newSibling(own, next))
    } else {
      next = merge(own, replicas[step.other] as DvvSet)
    }
    // Frozen, so any function that writes into an input array throws here.
    Object.freeze(next.siblings)
    replicas[step.replica] = next
    states.push(next)
  })
  return { replicas, states, writes, contexts }
}

function newSibling (before: DvvSet, after: DvvSet): Sibling {
  const fresh = after.siblings.filter(s => !holds(before, s.dot))
  assert.equal(fresh.length, 1)
  return fresh[0] as Sibling
}

function holds (obj: DvvSet, dot: Dot): boolean {
  return obj.siblings.some(s => s.dot.actor === dot.actor && s.dot.counter === dot.counter)
}

function holdsSibling (obj: DvvSet, sibling: Sibling): boolean {
  return obj.siblings.some(s => s.dot.actor === sibling.dot.actor && s.dot.counter === sibling.dot.counter &&
    (s.value === null ? sibling.value === null : sibling.value !== null && bytesEqual(s.value, sibling.value)))
}

function syncAll (replicas: readonly DvvSet[]): DvvSet {
  return replicas.reduce(merge, EMPTY)
}

function pick<T> (items: readonly T[], i: number): T {
  return items[i % items.length] as T
}

/** A state of a random history, for properties over single objects. */
const objectArb = fc.tuple(stepsArb, fc.nat()).map(([steps, i]) => pick(replay(steps).states, i))

const NUM_RUNS = 200

describe('causality', () => {
  describe('merge', () => {
    it('is commutative, associative and idempotent over objects from real histories', () => {
      fc.assert(fc.property(stepsArb, fc.nat(), fc.nat(), fc.nat(), (steps, i, j, k) => {
        const { states } = replay(steps)
        const [a, b, c] = [pick(states, i), pick(states, j), pick(states, k)]
        assert.ok(equals(merge(a, b), merge(b, a)), 'commutative')
        assert.ok(equals(merge(merge(a, b), c), merge(a, merge(b, c))), 'associative')
        assert.ok(equals(merge(a, a), a), 'idempotent')
        assert.ok(equals(merge(a, EMPTY), a), 'EMPTY is the identity')
        // Equal objects encode alike, whatever order they were merged in.
        assert.deepEqual(encodeObject(merge(a, b)), encodeObject(merge(b, a)))
      }), { numRuns: NUM_RUNS })
    })

    it('loses nothing acknowledged: a sibling leaves only when the other side saw it and dropped it', () => {
      fc.assert(fc.property(stepsArb, fc.nat(), fc.nat(), (steps, i, j) => {
        const { states } = replay(steps)
        const [a, b] = [pick(states, i), pick(states, j)]
        const m = merge(a, b)
        for (const [side, other] of [[a, b], [b, a]] as const) {
          for (const s of side.siblings) {
            assert.ok(holdsSibling(m, s) || (covers(other.vv, s.dot) && !holds(other, s.dot)))
          }
        }
        assert.ok(descends(m.vv, a.vv) && descends(m.vv, b.vv))
        assert.ok(m.siblings.every(s => covers(m.vv, s.dot)), 'the vv covers every sibling')
      }), { numRuns: NUM_RUNS })
    })

    it('after a full sync, every write made is a sibling or was in the context of a later put', () => {
      fc.assert(fc.property(stepsArb, steps => {
        const { replicas, writes, contexts } = replay(steps)
        const final = syncAll(replicas)
        for (const w of writes) {
          assert.ok(holdsSibling(final, w) || contexts.some(c => covers(c, w.dot)))
        }
        // Every replica that catches up ends with the same object (convergence).
        for (const r of replicas) assert.ok(equals(merge(r, final), final))
      }), { numRuns: NUM_RUNS })
    })
  })

  describe('update', () => {
    it('a write with a read\'s context replaces exactly what was read', () => {
      fc.assert(fc.property(stepsArb, fc.nat(), stepsArb, fc.nat(), (before, reader, since, coordinator) => {
        const h = replay(before)
        const read = pick(h.replicas, reader)
        // Writes and syncs concurrent with the client's read-modify-write.
        const after = replay([...before, ...since])
        const c = coordinator % ACTORS.length
        const own = after.replicas[c] as DvvSet
        const written = update(own, read.vv, ACTORS[c] as string, toBytes('new'), 1_000)

        for (const s of read.siblings) assert.ok(!holds(written, s.dot), 'what was read is gone')
        for (const s of own.siblings) {
          if (!covers(read.vv, s.dot)) assert.ok(holdsSibling(written, s), 'concurrent writes survive')
        }
        assert.equal(written.siblings.length, own.siblings.filter(s => !covers(read.vv, s.dot)).length + 1)
        assert.ok(values(written).some(v => bytesEqual(v, toBytes('new'))), 'the new value is present')
        // No replica can bring back what was read.
        for (const other of after.states) {
          const m = merge(written, other)
          for (const s of read.siblings) assert.ok(!holds(m, s.dot))
        }
      }), { numRuns: NUM_RUNS })
    })

    it('C writers, each writing with the context of its own last read, never leave more than C siblings', () => {
      // N = 3 replicas, W = 2, R = 2: a read quorum meets the quorum of the client's previous write,
      // so its context covers that write (read-your-writes, as Dynamo's R + W > N gives).
      const action = fc.record({
        client: fc.nat(3),
        op: fc.constantFrom('read', 'write', 'sync'),
        p: fc.nat(2),
        q: fc.nat(1),
        tombstone: fc.boolean()
      })
      let most = 0
      fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.array(action, { maxLength: 80, size: 'max' }), (clients, actions) => {
        const replicas: DvvSet[] = [EMPTY, EMPTY, EMPTY]
        const context: VersionVector[] = Array.from({ length: clients }, () => new Map())
        const fresh: boolean[] = Array.from({ length: clients }, () => false)
        actions.forEach((act, time) => {
          const k = act.client % clients
          const p = act.p
          const q = (p + 1 + act.q) % 3
          const rp = replicas[p] as DvvSet
          const rq = replicas[q] as DvvSet
          if (act.op === 'sync') {
            replicas[p] = merge(rp, rq)
          } else if (act.op === 'read' || !fresh[k]) {
            context[k] = merge(rp, rq).vv
            fresh[k] = true
          } else {
            const written = update(rp, context[k] as VersionVector, ACTORS[p] as string, act.tombstone ? null : toBytes(`c${k}@${time}`), time)
            replicas[p] = written
            replicas[q] = merge(rq, written)
            fresh[k] = false
          }
          for (const r of replicas) {
            assert.ok(r.siblings.length <= clients, `${r.siblings.length} siblings with ${clients} writers`)
            most = Math.max(most, r.siblings.length)
          }
        })
        assert.ok(syncAll(replicas).siblings.length <= clients)
      }), { numRuns: NUM_RUNS })
      assert.ok(most >= 3, 'the histories did produce concurrent siblings')
    })

    it('a put without context adds a sibling; a delete with the read\'s context hides the value', () => {
      fc.assert(fc.property(objectArb, fc.nat(ACTORS.length - 1), (obj, r) => {
        const actor = ACTORS[r] as string
        const added = update(obj, new Map(), actor, toBytes('x'), 5)
        assert.equal(added.siblings.length, obj.siblings.length + 1)
        for (const s of obj.siblings) assert.ok(holdsSibling(added, s))

        const deleted = update(added, added.vv, actor, null, 6)
        assert.equal(deleted.siblings.length, 1)
        assert.deepEqual(values(deleted), [])
        assert.ok(isDeleted(deleted))
        assert.ok(descends(deleted.vv, added.vv))
      }), { numRuns: NUM_RUNS })
    })

    it('a delete does not hide a value written concurrently with the read it is based on', () => {
      const v1 = update(undefined, new Map(), 'a', toBytes('v1'), 1)
      const read = v1
      const v2 = update(v1, new Map(), 'a', toBytes('v2'), 2) // another client, no context
      const deleted = update(v2, read.vv, 'a', null, 3)
      assert.deepEqual(values(deleted), [toBytes('v2')])
      assert.ok(!isDeleted(deleted))
      assert.ok(isDeleted(update(deleted, deleted.vv, 'b', null, 4)))
    })

    it('an object never written reads as deleted, a written one does not', () => {
      assert.ok(isDeleted(EMPTY))
      assert.deepEqual(values(EMPTY), [])
      assert.ok(!isDeleted(update(undefined, new Map(), 'a', new Uint8Array(0), 0)), 'an empty value is a value')
    })

    it('mints each dot from the join of the object and the context, so dots are never reused', () => {
      const mine = update(undefined, new Map(), 'a', toBytes('v1'), 1)
      // A context that saw more of actor 'a' than this copy (a stale copy, or a wiped replica).
      const written = update(mine, new Map([['a', 5]]), 'a', toBytes('v2'), 2)
      assert.deepEqual(written.siblings.map(s => s.dot), [{ actor: 'a', counter: 6 }])
      assert.equal(written.vv.get('a'), 6)
    })

    it('rejects an invalid actor, timestamp or context', () => {
      for (const actor of ['', 'x'.repeat(257), '\ud800']) {
        assert.throws(() => update(undefined, new Map(), actor, null, 0), { name: 'InvalidArgumentError' })
      }
      for (const ts of [-1, 0.5, Number.NaN, 2 ** 53]) {
        assert.throws(() => update(undefined, new Map(), 'a', null, ts), { name: 'InvalidArgumentError' })
      }
      assert.throws(() => update(undefined, new Map([['b', 0]]), 'a', null, 0), { name: 'InvalidArgumentError' })
      assert.throws(() => update(undefined, new Map([['a', Number.MAX_SAFE_INTEGER]]), 'a', null, 0), { name: 'InvalidArgumentError' })
    })
  })

  it('resolves the classic two-client conflict (Dynamo paper, figure 3)', () => {
    const vv = (o: DvvSet): Record<string, number> => Object.fromEntries(o.vv)
    // D1 and D2 written through Sx, D2 replicated everywhere.
    const d1 = update(undefined, new Map(), 'Sx', toBytes('D1'), 1)
    const d2 = update(d1, d1.vv, 'Sx', toBytes('D2'), 2)
    assert.deepEqual(vv(d2), { Sx: 2 })
    const [sx, sy, sz] = [d2, merge(EMPTY, d2), merge(EMPTY, d2)]
    // Two clients read D2 and write concurrently, through Sy and Sz.
    const d3 = update(sy, d2.vv, 'Sy', toBytes('D3'), 3)
    const d4 = update(sz, d2.vv, 'Sz', toBytes('D4'), 4)
    assert.deepEqual(vv(d3), { Sx: 2, Sy: 1 })
    assert.deepEqual(vv(d4), { Sx: 2, Sz: 1 })
    // A read sees both as siblings, with a context covering both.
    const read = merge(merge(sx, d3), d4)
    assert.deepEqual(values(read), [toBytes('D3'), toBytes('D4')])
    const context = decodeContext(encodeContext(read.vv))
    assert.deepEqual(Object.fromEntries(context), { Sx: 2, Sy: 1, Sz: 1 })
    // The client reconciles and writes D5 through Sx: one value, everywhere, once synced.
    const d5 = update(sx, context, 'Sx', toBytes('D5'), 5)
    assert.deepEqual(vv(d5), { Sx: 3, Sy: 1, Sz: 1 })
    assert.deepEqual(values(d5), [toBytes('D5')])
    for (const replica of [d3, d4]) assert.deepEqual(values(merge(replica, d5)), [toBytes('D5')])
  })

  it('join, covers and descends agree', () => {
    const a = new Map([['x', 2], ['y', 1]])
    const b = new Map([['x', 1], ['z', 3]])
    assert.deepEqual(Object.fromEntries(join(a, b)), { x: 2, y: 1, z: 3 })
    assert.ok(descends(join(a, b), a) && descends(join(a, b), b))
    assert.ok(!descends(a, b) && !descends(b, a))
    assert.ok(covers(a, { actor: 'x', counter: 2 }) && !covers(a, { actor: 'x', counter: 3 }) && !covers(a, { actor: 'z', counter: 1 }))
    assert.equal(a.get('x'), 2, 'inputs untouched')
  })
})

// ---- encodings ----

const actorArb = fc.string({ unit: 'binary', minLength: 1, maxLength: 20 })
const counterArb = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })
const vvArb = fc.dictionary(actorArb, counterArb, { maxKeys: 8 }).map(d => new Map(Object.entries(d)) as VersionVector)

/** A context's binary form, written field by field so tests can write bad ones. */
function contextText (version: number, count: number, entries: ReadonlyArray<[Uint8Array, number]>, trailing = new Uint8Array(0)): string {
  const w = writer().uint32(version).uint32(count)
  for (const [actor, counter] of entries) w.bytes(actor).uint64Number(counter)
  return toString(concat(w.finish(), trailing), 'base64url')
}

function rejectsContext (text: string): void {
  assert.throws(() => decodeContext(text), { name: 'InvalidContextError' }, JSON.stringify(String(text).slice(0, 40)))
}

function rejectsObject (bytes: Uint8Array, limits?: { maxSiblings?: number, maxValueBytes?: number }): void {
  assert.throws(() => decodeObject(bytes, limits), { name: 'MalformedDataError' })
}

/** Calls fn; any throw must be of the named error. */
function onlyThrows (name: string, fn: () => void): void {
  try {
    fn()
  } catch (err) {
    assert.equal((err as Error).name, name, String(err))
  }
}

/** Protobuf pieces, to write objects the encoder never would. */
function field (tag: number, body: Uint8Array): Uint8Array {
  return writer().uint32(tag).bytes(body).finish()
}
function sib (actor: string, counter: number, extra: (w: ReturnType<typeof writer>) => void = () => {}, tail = new Uint8Array(0)): Uint8Array {
  const w = writer().uint32(10).string(actor).uint32(16).uint64Number(counter)
  extra(w)
  return field(18, concat(w.finish(), tail))
}
function vvEntry (actor: string, counter: number | bigint): Uint8Array {
  return field(10, writer().uint32(10).string(actor).uint32(16).uint64(BigInt(counter)).finish())
}
function concat (...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

describe('causality encodings', () => {
  describe('context', () => {
    it('round-trips any version vector through compact URL-safe text', () => {
      fc.assert(fc.property(vvArb, vv => {
        const text = encodeContext(vv)
        assert.match(text, /^[A-Za-z0-9_-]+$/)
        assert.deepEqual(decodeContext(text), vv)
      }), { numRuns: NUM_RUNS })
      assert.equal(encodeContext(new Map([['b', 1], ['a', 2]])), encodeContext(new Map([['a', 2], ['b', 1]])), 'canonical')
    })

    it('rejects malformed context strings with InvalidContextError', () => {
      const a = toBytes('a')
      const valid = contextText(1, 1, [[a, 1]])
      assert.deepEqual(decodeContext(valid), new Map([['a', 1]]))
      rejectsContext('')
      rejectsContext('!!!!')
      rejectsContext(valid + '=')
      rejectsContext(valid.slice(0, -1) + String.fromCharCode(valid.charCodeAt(valid.length - 1) + 1)) // stray low bits
      rejectsContext('A') // impossible base64 length
      rejectsContext(contextText(2, 1, [[a, 1]])) // unknown version
      rejectsContext(contextText(1, 2, [[a, 1]])) // truncated
      rejectsContext(toString(new Uint8Array([1, 1, 1, 0x61, 0x80]), 'base64url')) // cut mid-varint
      rejectsContext(contextText(1, 1, [[a, 0]])) // counter 0
      rejectsContext(toString(writer().uint32(1).uint32(1).bytes(a).uint64(2n ** 53n).finish(), 'base64url')) // unsafe counter
      rejectsContext(toString(writer().uint32(1).uint32(1).bytes(a).int64Number(-1).finish(), 'base64url')) // "negative"
      rejectsContext(contextText(1, 2, [[a, 1], [a, 2]])) // duplicate actor
      rejectsContext(contextText(1, 10_001, [])) // too many entries
      rejectsContext(contextText(1, 1, [[new Uint8Array(0), 1]])) // empty actor
      rejectsContext(contextText(1, 1, [[new Uint8Array(257).fill(0x61), 1]])) // long actor
      rejectsContext(contextText(1, 1, [[new Uint8Array([0xff]), 1]])) // not UTF-8
      rejectsContext(contextText(1, 1, [[a, 1]], new Uint8Array([0]))) // trailing bytes
      rejectsContext('A'.repeat(4_000_000)) // far too long to be a context
      rejectsContext(123 as unknown as string)
    })

    it('never throws anything but InvalidContextError on random or mutated text', () => {
      fc.assert(fc.property(fc.string({ maxLength: 60 }), text => {
        onlyThrows('InvalidContextError', () => decodeContext(text))
      }), { numRuns: 500 })
      const b64 = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_')
      fc.assert(fc.property(vvArb, fc.nat(), b64, (vv, at, ch) => {
        const text = encodeContext(vv)
        const i = at % text.length
        onlyThrows('InvalidContextError', () => decodeContext(text.slice(0, i) + ch + text.slice(i + 1)))
        onlyThrows('InvalidContextError', () => decodeContext(text.slice(0, i)))
      }), { numRuns: 500 })
    })
  })

  describe('object', () => {
    it('round-trips through canonical bytes, and its digest follows equality', () => {
      fc.assert(fc.property(objectArb, obj => {
        const bytes = encodeObject(obj)
        const back = decodeObject(bytes)
        assert.ok(equals(back, obj))
        assert.deepEqual(encodeObject(back), bytes)
        assert.equal(objectDigest(obj).length, 16)
        assert.deepEqual(objectDigest(back), objectDigest(obj))
      }), { numRuns: NUM_RUNS })
      const one = update(undefined, new Map(), 'a', toBytes('x'), 1)
      assert.notDeepEqual(objectDigest(one), objectDigest(update(undefined, new Map(), 'a', toBytes('y'), 1)))
      assert.ok(equals(decodeObject(encodeObject(EMPTY)), EMPTY))
    })

    it('keeps tombstones, empty values, large counters and timestamps apart', () => {
      let obj = update(undefined, new Map(), 'a', null, 0)
      obj = update(obj, new Map(), 'b', new Uint8Array(0), Number.MAX_SAFE_INTEGER)
      obj = update(obj, new Map([['c', Number.MAX_SAFE_INTEGER - 1]]), 'c', toBytes('z'), 7)
      const back = decodeObject(encodeObject(obj))
      assert.ok(equals(back, obj))
      assert.deepEqual(back.siblings.map(s => s.value), [null, new Uint8Array(0), toBytes('z')])
      assert.equal(back.vv.get('c'), Number.MAX_SAFE_INTEGER)
    })

    it('skips unknown fields at every level and accepts any field order', () => {
      const unknown = concat(
        writer().uint32(9 << 3).uint64(2n ** 64n - 1n).finish(), // a 10-byte varint
        writer().uint32(10 << 3 | 1).fixed64Number(1).finish(),
        writer().uint32(11 << 3 | 5).fixed32(1).finish(),
        field(12 << 3 | 2, toBytes('future'))
      )
      const bytes = concat(
        unknown,
        sib('b', 1, w => w.uint32(26).bytes(toBytes('vb')), unknown),
        field(10, concat(writer().uint32(16).uint32(1).finish(), unknown, writer().uint32(10).string('b').finish())),
        sib('a', 1, w => w.uint32(40).uint32(9)),
        vvEntry('a', 1)
      )
      const obj = decodeObject(bytes)
      assert.deepEqual(Object.fromEntries(obj.vv), { a: 1, b: 1 })
      assert.deepEqual(obj.siblings.map(s => [s.dot.actor, s.value, s.timestamp]), [['a', new Uint8Array(0), 9], ['b', toBytes('vb'), 0]])
    })

    it('rejects objects no replica could hold with MalformedDataError', () => {
      const ok = concat(vvEntry('a', 2), sib('a', 1), sib('a', 2))
      assert.equal(decodeObject(ok).siblings.length, 2)
      rejectsObject(concat(vvEntry('a', 1), sib('a', 2))) // dot not covered
      rejectsObject(concat(vvEntry('a', 2), sib('a', 1), sib('a', 1))) // dot twice
      rejectsObject(concat(vvEntry('a', 2), vvEntry('a', 2))) // actor twice in vv
      rejectsObject(concat(vvEntry('a', 0))) // counter 0
      rejectsObject(concat(vvEntry('a', 1), sib('a', 0)))
      rejectsObject(concat(vvEntry('a', 2n ** 53n), sib('a', 1))) // unsafe counter
      rejectsObject(concat(vvEntry('', 1))) // empty actor
      rejectsObject(concat(vvEntry('a'.repeat(257), 1)))
      rejectsObject(concat(vvEntry('a', 1), sib('a', 1, w => w.uint32(26).bytes(toBytes('v')).uint32(32).bool(true)))) // tombstone with a value
      rejectsObject(concat(vvEntry('a', 1), sib('a', 1, w => w.uint32(40).uint64(2n ** 60n)))) // unsafe timestamp
      rejectsObject(ok, { maxSiblings: 1 })
      rejectsObject(concat(vvEntry('a', 1), sib('a', 1, w => w.uint32(26).bytes(new Uint8Array(9)))), { maxValueBytes: 8 })
      rejectsObject(ok.subarray(0, ok.length - 1)) // truncated
      rejectsObject(new Uint8Array([0x10, 0x80, 0x80, 0x80])) // cut mid-varint (protons' reader would read 0)
      rejectsObject(new Uint8Array([0x1a, 0x80, 0x80, 0x80, 0x80, 0x10, 1])) // length 2^32
      rejectsObject(new Uint8Array([0x0b, 0x0c])) // group wire type
      rejectsObject(new Uint8Array([0x00, 0x00])) // field number 0
      rejectsObject(field(10, writer().uint32(10).bytes(new Uint8Array([0xc3])).uint32(16).uint32(1).finish())) // bad UTF-8 actor
      rejectsObject('abc' as unknown as Uint8Array)
    })

    it('never throws anything but MalformedDataError on random or mutated bytes', () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), bytes => {
        onlyThrows('MalformedDataError', () => decodeObject(bytes))
      }), { numRuns: 1000 })
      const mutation = fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), kind: fc.constantFrom('set', 'insert', 'delete', 'cut') })
      fc.assert(fc.property(objectArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (obj, mutations) => {
        let bytes = [...encodeObject(obj)]
        for (const m of mutations) {
          const i = bytes.length === 0 ? 0 : m.at % bytes.length
          if (m.kind === 'set') bytes[i] = m.byte
          else if (m.kind === 'insert') bytes.splice(i, 0, m.byte)
          else if (m.kind === 'delete') bytes.splice(i, 1)
          else bytes = bytes.slice(0, i)
        }
        onlyThrows('MalformedDataError', () => {
          // Whatever decodes is a valid object: it survives its own round trip.
          const decoded = decodeObject(Uint8Array.from(bytes))
          assert.ok(equals(decodeObject(encodeObject(decoded)), decoded))
          assert.ok(decoded.siblings.every(s => covers(decoded.vv, s.dot)))
        })
      }), { numRuns: 500 })
    })

    it('does not alias the input buffer', () => {
      const bytes = encodeObject(update(undefined, new Map(), 'a', toBytes('v'), 1))
      const obj = decodeObject(bytes)
      bytes.fill(0)
      assert.deepEqual(values(obj), [toBytes('v')])
    })
  })
})
