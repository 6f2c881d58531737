import assert from 'node:assert/strict'
import fc from 'fast-check'
import { writer } from 'protons-runtime'
import { compareDots, isValidActor } from '../../src/core/causality.ts'
import type { DvvSet, Sibling, VersionVector } from '../../src/core/causality.ts'
import type { KvRequest, KvResponse } from '../../src/core/coordinator/messages.ts'
import type { Heartbeat } from '../../src/core/membership-agent.ts'
import { validateRecord } from '../../src/core/membership.ts'
import type { MemberRecord, MemberStatus } from '../../src/core/membership.ts'
import {
  decodeAdminRequest, decodeAdminResponse, decodeHeartbeat, decodeKvRequest, decodeKvResponse, decodeMemberList,
  decodeMembersRequest, encodeAdminRequest, encodeAdminResponse, encodeHeartbeat, encodeKvRequest, encodeKvResponse,
  encodeMemberList, encodeMembersRequest
} from '../../src/net/codec.ts'
import type { AdminRequest, AdminResponse } from '../../src/net/codec.ts'
import { MAX_HEARTBEAT_BYTES, MAX_RECORDS, MAX_STRING_BYTES } from '../../src/net/constants.ts'
import { assertMalformed, codecProperties, decodeOrMalformed, frame, plainRecord } from '../support/codec-properties.ts'
import type { Codec } from '../support/codec-properties.ts'

const MAX_SAFE = Number.MAX_SAFE_INTEGER

// Well-formed text only: a lone surrogate cannot survive UTF-8, on the wire or anywhere else.
const text = (minLength: number, maxLength: number, maxUnits = Infinity): fc.Arbitrary<string> =>
  fc.string({ unit: 'grapheme', minLength, maxLength }).filter(s => s.length <= maxUnits)

const actorArb = text(1, 12).filter(isValidActor)
const counterArb = fc.oneof(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: MAX_SAFE }))

/** A valid object: each actor's siblings sit at or below its vv entry, sorted by dot. */
const objectArb: fc.Arbitrary<DvvSet> = fc.uniqueArray(plainRecord({
  actor: actorArb,
  counter: counterArb,
  siblings: fc.uniqueArray(plainRecord({
    offset: fc.nat(3),
    value: fc.option(fc.uint8Array({ maxLength: 32 }), { nil: null }),
    timestamp: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: MAX_SAFE }))
  }), { selector: s => s.offset, maxLength: 3 })
}), { selector: e => e.actor, maxLength: 4 }).map(entries => {
  const siblings: Sibling[] = entries.flatMap(e => e.siblings
    .filter(s => e.counter - s.offset >= 1)
    .map(s => ({ dot: { actor: e.actor, counter: e.counter - s.offset }, value: s.value, timestamp: s.timestamp })))
  siblings.sort((a, b) => compareDots(a.dot, b.dot))
  return { vv: new Map(entries.map(e => [e.actor, e.counter])), siblings }
})

const vvArb: fc.Arbitrary<VersionVector> = fc.uniqueArray(fc.tuple(actorArb, counterArb), { selector: ([a]) => a, maxLength: 4 })
  .map(entries => new Map(entries))
const keyArb = fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 32 }), fc.uint8Array({ minLength: 1024, maxLength: 1024 }))
const quorumArb = fc.integer({ min: 1, max: 255 })

const requestArb: fc.Arbitrary<KvRequest> = fc.oneof(
  plainRecord({ type: fc.constant('read' as const), key: keyArb }),
  plainRecord({ type: fc.constant('write' as const), key: keyArb, object: objectArb, hintFor: text(1, 60, 128) }, { requiredKeys: ['type', 'key', 'object'] }),
  plainRecord({
    type: fc.constant('put' as const),
    key: keyArb,
    value: fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null }),
    context: vvArb,
    w: quorumArb,
    forwarded: fc.constant(true as const)
  }, { requiredKeys: ['type', 'key', 'value', 'context'] }),
  plainRecord({ type: fc.constant('get' as const), key: keyArb, r: quorumArb }, { requiredKeys: ['type', 'key'] })
)

const responseArb: fc.Arbitrary<KvResponse> = fc.oneof(
  plainRecord({ type: fc.constantFrom('read' as const, 'get' as const), object: objectArb }, { requiredKeys: ['type'] }),
  plainRecord({ type: fc.constant('written' as const) }),
  plainRecord({ type: fc.constant('put' as const), object: objectArb }),
  plainRecord({ type: fc.constant('error' as const), name: text(1, 30), message: text(0, 200) })
)

const statuses: MemberStatus[] = ['joining', 'up', 'leaving', 'left']
const recordArb: fc.Arbitrary<MemberRecord> = plainRecord({
  id: text(1, 60, 128),
  incarnation: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: MAX_SAFE })),
  seq: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: MAX_SAFE })),
  status: fc.constantFrom(...statuses),
  addrs: fc.uniqueArray(text(1, 40, 256), { maxLength: 32 }),
  weight: fc.double({ min: Number.MIN_VALUE, max: 1000, noNaN: true })
}).map(validateRecord)

const heartbeatArb: fc.Arbitrary<Heartbeat> = plainRecord({ record: recordArb, digest: fc.string({ maxLength: 64 }) })
const memberListArb = fc.array(recordArb, { maxLength: 8 })
const adminRequestArb: fc.Arbitrary<AdminRequest> = plainRecord({ op: fc.constantFrom('status' as const, 'leave' as const, 'remove' as const), member: text(1, 60, 128) }, { requiredKeys: ['op'] })
const adminResponseArb: fc.Arbitrary<AdminResponse> = fc.oneof(
  plainRecord({ type: fc.constant('ok' as const), json: fc.json() }),
  plainRecord({ type: fc.constant('error' as const), name: text(1, 30), message: text(0, 200) })
)

function codec<T> (name: string, arb: fc.Arbitrary<T>, encode: (value: T) => Uint8Array, decode: (bytes: Uint8Array) => T): Codec<T> {
  return { name, arb, encode, decode }
}

const codecs = [
  codec('KvRequest', requestArb, encodeKvRequest, decodeKvRequest),
  codec('KvResponse', responseArb, encodeKvResponse, decodeKvResponse),
  codec('Heartbeat', heartbeatArb, encodeHeartbeat, decodeHeartbeat),
  codec('MemberList', memberListArb, encodeMemberList, decodeMemberList),
  codec('MembersRequest', fc.constant({}), encodeMembersRequest, decodeMembersRequest),
  codec('AdminRequest', adminRequestArb, encodeAdminRequest, decodeAdminRequest),
  codec('AdminResponse', adminResponseArb, encodeAdminResponse, decodeAdminResponse)
] as Array<Codec<unknown>>




describe('net codec', () => {
  for (const c of codecs) {
    describe(c.name, () => {
      codecProperties(c, { roundTrip: 200, random: 1000, mutated: 300 })
    })
  }

  describe('bounds', () => {
    it('refuses a key over 1024 bytes', () => {
      const bytes = encodeKvRequest({ type: 'read', key: new Uint8Array(1025) })
      assertMalformed(() => decodeKvRequest(bytes), /key/)
      assert.equal(decodeKvRequest(encodeKvRequest({ type: 'read', key: new Uint8Array(1024) })).type, 'read')
    })

    it('refuses strings over 4 KiB', () => {
      const long = 'x'.repeat(MAX_STRING_BYTES + 1)
      assertMalformed(() => decodeKvResponse(frame(w => w.uint32(1 << 3).uint32(4).uint32(3 << 3 | 2).string(long))), /error_name/)
      assertMalformed(() => decodeKvRequest(frame(w => w.uint32(1 << 3).uint32(1).uint32(4 << 3 | 2).string(long))), /hint_for/)
    })

    it('cuts an error message over 4 KiB at a character boundary, so the response still decodes', () => {
      const message = 'é'.repeat(MAX_STRING_BYTES)   // 2 bytes each
      const decoded = decodeKvResponse(encodeKvResponse({ type: 'error', name: 'QuorumError', message: 'a' + message }))
      assert.equal(decoded.type, 'error')
      if (decoded.type !== 'error') return
      assert.equal(decoded.name, 'QuorumError')
      assert.equal(decoded.message, 'a' + 'é'.repeat((MAX_STRING_BYTES - 2) / 2))
      const admin = decodeAdminResponse(encodeAdminResponse({ type: 'error', name: 'E', message: 'z'.repeat(10_000) }))
      assert.deepEqual(admin, { type: 'error', name: 'E', message: 'z'.repeat(MAX_STRING_BYTES) })
    })

    it(`refuses more than ${MAX_RECORDS} member records`, () => {
      const record = validateRecord({ id: 'peer', incarnation: 1, seq: 1, status: 'up', addrs: [], weight: 1 })
      assert.equal(decodeMemberList(encodeMemberList(Array(MAX_RECORDS).fill(record))).length, MAX_RECORDS)
      assertMalformed(() => decodeMemberList(encodeMemberList(Array(MAX_RECORDS + 1).fill(record))), /10000/)
    })

    it('refuses a record that validateRecord refuses: 33 addrs, weight 0, unknown status, no id', () => {
      const base = { id: 'peer', incarnation: 1, seq: 0, status: 'up' as const, addrs: ['/a'], weight: 1 }
      const addrs = Array.from({ length: 33 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`)
      const list = (build: (w: ReturnType<typeof writer>) => void): Uint8Array => frame(w => { w.uint32(1 << 3 | 2).fork(); build(w); w.ldelim() })
      assertMalformed(() => decodeMemberList(list(w => { w.uint32(1 << 3 | 2).string('peer'); for (const a of addrs) w.uint32(5 << 3 | 2).string(a); w.uint32(6 << 3 | 1).double(1) })), /addrs/)
      assertMalformed(() => decodeMemberList(list(w => { w.uint32(1 << 3 | 2).string('peer') })), /weight/)
      assertMalformed(() => decodeMemberList(list(w => { w.uint32(1 << 3 | 2).string('peer').uint32(4 << 3).uint32(4).uint32(6 << 3 | 1).double(1) })), /status/)
      assertMalformed(() => decodeHeartbeat(frame(w => { w.uint32(1 << 3 | 2).fork().uint32(6 << 3 | 1).double(1).ldelim() })), /id/)
      assertMalformed(() => decodeHeartbeat(frame(w => w.uint32(2 << 3 | 2).string('digest'))), /without a record/)
      assert.deepEqual(decodeHeartbeat(encodeHeartbeat({ record: base, digest: 'ab' })).record, validateRecord(base))
    })

    it('refuses a heartbeat over its size bound and a digest over 128 bytes', () => {
      const record = validateRecord({ id: 'peer', incarnation: 1, seq: 0, status: 'up', addrs: [], weight: 1 })
      const big = encodeHeartbeat({ record, digest: '' })
      const padded = new Uint8Array(MAX_HEARTBEAT_BYTES + 1)
      padded.set(big)
      assertMalformed(() => decodeHeartbeat(padded), /exceeds/)
      assertMalformed(() => decodeHeartbeat(encodeHeartbeat({ record, digest: 'd'.repeat(129) })), /digest/)
    })

    it('a put with a bad context is a MalformedDataError caused by InvalidContextError', () => {
      const bytes = frame(w => w.uint32(1 << 3).uint32(2).uint32(2 << 3 | 2).bytes(new Uint8Array([1])).uint32(7 << 3 | 2).string('not a context!'))
      assert.throws(() => decodeKvRequest(bytes), (err: Error) => err.name === 'MalformedDataError' && (err.cause as Error).name === 'InvalidContextError')
    })

    it('refuses a put with both a value and a tombstone, and unknown types and ops', () => {
      assertMalformed(() => decodeKvRequest(frame(w => w.uint32(1 << 3).uint32(2).uint32(5 << 3 | 2).bytes(new Uint8Array([1])).uint32(6 << 3).bool(true))), /tombstone/)
      assertMalformed(() => decodeKvRequest(frame(w => w.uint32(1 << 3).uint32(4))), /type 4/)
      assertMalformed(() => decodeKvResponse(frame(w => w.uint32(1 << 3).uint32(5))), /type 5/)
      assertMalformed(() => decodeKvResponse(frame(w => w.uint32(1 << 3).uint32(2))), /without its object/)
      assertMalformed(() => decodeAdminRequest(frame(w => w.uint32(1 << 3).uint32(3))), /op 3/)
    })

    it('refuses truncated fields and varints instead of reading past the end', () => {
      const valid = encodeKvRequest({ type: 'put', key: new Uint8Array([1, 2, 3]), value: new Uint8Array(100), context: new Map([['a', 1]]) })
      for (let cut = 1; cut < valid.length; cut++) {
        const decoded = decodeOrMalformed(codecs[0] as Codec<unknown>, valid.subarray(0, cut))
        // A cut on a field boundary leaves a shorter valid message; anything else must be refused.
        if (decoded !== undefined) assert.notDeepEqual(decoded, decodeKvRequest(valid))
      }
      assertMalformed(() => decodeKvRequest(new Uint8Array([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f])), /truncated key/)
      assertMalformed(() => decodeKvRequest(new Uint8Array([0x08, 0x80])), /truncated varint/)
    })

    it('keeps "no object" apart from an empty object', () => {
      const empty: DvvSet = { vv: new Map(), siblings: [] }
      assert.deepStrictEqual(decodeKvResponse(encodeKvResponse({ type: 'read', object: empty })), { type: 'read', object: empty })
      assert.deepStrictEqual(decodeKvResponse(encodeKvResponse({ type: 'read' })), { type: 'read' })
    })

    it('decoded bytes are plain copies that do not alias the frame, even a Node Buffer', () => {
      const requests: KvRequest[] = [
        { type: 'put', key: new Uint8Array([7]), value: new Uint8Array([1, 2, 3]), context: new Map() },
        { type: 'write', key: new Uint8Array([8]), object: { vv: new Map([['a', 1]]), siblings: [{ dot: { actor: 'a', counter: 1 }, value: new Uint8Array([4, 5]), timestamp: 1 }] } }
      ]
      for (const request of requests) {
        for (const bytes of [encodeKvRequest(request), Buffer.from(encodeKvRequest(request))]) {
          const decoded = decodeKvRequest(bytes)
          bytes.fill(0)
          assert.deepStrictEqual(decoded, request)
        }
      }
    })

    it('refuses what is not bytes', () => {
      for (const c of codecs) assertMalformed(() => c.decode('hello' as unknown as Uint8Array))
    })
  })
})
