import assert from 'node:assert/strict'
import { EMPTY, merge, update, values } from '../../src/core/causality.ts'
import type { DvvSet } from '../../src/core/causality.ts'
import { GetCore } from '../../src/core/coordinator/get.ts'
import { PutCore, planWrite } from '../../src/core/coordinator/put.ts'

const text = (s: string): Uint8Array => new TextEncoder().encode(s)
const read = (o: DvvSet | undefined): string[] => o === undefined ? [] : values(o).map(v => new TextDecoder().decode(v)).sort()
const owners = ['m1', 'm2', 'm3']
const fallbacks = ['m4', 'm5']
const allUp = (): boolean => true

describe('put core', () => {
  it('a write with W=2 succeeds on the second acknowledgement, before the third replica answers', () => {
    const core = new PutCore({ w: 2, plan: planWrite({ owners, fallbacks, isUp: allUp, sloppy: false }) })
    core.ack('m1')
    assert.equal(core.outcome().done, false)
    core.ack('m3')
    assert.deepEqual(core.outcome(), { done: true, ok: true, acks: 2 })
    assert.equal(core.settled(), false)
  })

  it('a write with W=2 fails once two of three replicas failed, saying how many acknowledged', () => {
    const core = new PutCore({ w: 2, plan: planWrite({ owners, fallbacks, isUp: allUp, sloppy: false }) })
    core.ack('m1')
    core.fail('m2', 'timeout')
    assert.equal(core.outcome().done, false)
    core.fail('m3', 'refused')
    const outcome = core.outcome()
    assert.ok(outcome.done && !outcome.ok)
    assert.equal(outcome.error.name, 'QuorumError')
    assert.equal(outcome.error.needed, 2)
    assert.equal(outcome.error.answered, 1)
    assert.match(outcome.error.message, /needed 2 of 3 replicas, 1 acknowledged/)
  })

  it('acknowledgements from unknown members and repeated acknowledgements do not count', () => {
    const core = new PutCore({ w: 2, plan: planWrite({ owners, fallbacks, isUp: allUp, sloppy: false }) })
    core.ack('m1')
    core.ack('m1')
    core.ack('stranger')
    assert.equal(core.outcome().done, false)
  })

  it('a sloppy plan sends a down primary\'s copy to the first live fallback with a hint naming it', () => {
    const plan = planWrite({ owners, fallbacks, isUp: m => m !== 'm2' && m !== 'm4', sloppy: true })
    assert.deepEqual(plan.targets, [{ member: 'm1' }, { member: 'm5', hintFor: 'm2' }, { member: 'm3' }])
    assert.deepEqual(plan.spare, [])
  })

  it('a strict plan keeps the primaries even when they look down', () => {
    const plan = planWrite({ owners, fallbacks, isUp: m => m !== 'm2', sloppy: false })
    assert.deepEqual(plan.targets.map(t => t.member), owners)
  })

  it('with a sloppy quorum a failed primary is replaced by the next fallback and the write still reaches W', () => {
    const core = new PutCore({ w: 3, plan: planWrite({ owners, fallbacks, isUp: allUp, sloppy: true }) })
    core.ack('m1')
    core.ack('m2')
    const replacement = core.fail('m3', 'timeout')
    assert.deepEqual(replacement, { member: 'm4', hintFor: 'm3' })
    const again = core.fail('m4', 'timeout')
    assert.deepEqual(again, { member: 'm5', hintFor: 'm3' }, 'a failed fallback passes on the hint for the same primary')
    core.ack('m5')
    assert.deepEqual(core.outcome(), { done: true, ok: true, acks: 3 })
  })

  it('a replica that misses the deadline fails without a replacement', () => {
    const core = new PutCore({ w: 2, plan: planWrite({ owners, fallbacks, isUp: allUp, sloppy: true }) })
    core.ack('m1')
    for (const m of core.pending()) core.expire(m, 'deadline')
    const outcome = core.outcome()
    assert.ok(outcome.done && !outcome.ok)
    assert.equal(outcome.error.answered, 1)
  })

  it('rejects a W that is not a positive integer', () => {
    const plan = planWrite({ owners, fallbacks, isUp: allUp, sloppy: false })
    for (const w of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new PutCore({ w, plan }), { name: 'InvalidArgumentError' })
    }
  })

  it('fails at once, with a QuorumError, when W exceeds the replicas there are (fewer members than N)', () => {
    const plan = planWrite({ owners: ['m1'], fallbacks: [], isUp: allUp, sloppy: false })
    const outcome = new PutCore({ w: 2, plan }).outcome()
    assert.ok(outcome.done && !outcome.ok)
    assert.match(outcome.error.message, /put needed 2 of 1 replicas, 0 acknowledged/)
  })
})

describe('get core', () => {
  const a = update(undefined, EMPTY.vv, 'x', text('one'), 1)
  const b = update(a, a.vv, 'y', text('two'), 2)
  const concurrent = update(a, a.vv, 'z', text('three'), 3)

  it('answers after R replies with the merge of what they hold, siblings included', () => {
    const core = new GetCore({ r: 2, replicas: owners })
    core.reply('m1', b)
    assert.equal(core.outcome().done, false)
    core.reply('m2', concurrent)
    const outcome = core.outcome()
    assert.ok(outcome.done && outcome.ok)
    assert.deepEqual(read(outcome.object), ['three', 'two'])
  })

  it('counts a replica without the key as a reply, and answers not found when none has it', () => {
    const core = new GetCore({ r: 2, replicas: owners })
    core.reply('m1', undefined)
    core.reply('m2', undefined)
    assert.deepEqual(core.outcome(), { done: true, ok: true, object: undefined })
  })

  it('fails with how many replied of how many were needed', () => {
    const core = new GetCore({ r: 2, replicas: owners })
    core.reply('m1', a)
    core.fail('m2', 'timeout')
    core.fail('m3', 'refused')
    const outcome = core.outcome()
    assert.ok(outcome.done && !outcome.ok)
    assert.equal(outcome.error.name, 'QuorumError')
    assert.match(outcome.error.message, /get needed 2 of 3 replicas, 1 replied/)
  })

  it('repairs exactly the replicas that replied with less than the merged object', () => {
    const core = new GetCore({ r: 2, replicas: owners })
    core.reply('m1', b)
    core.reply('m2', a)
    core.reply('m3', undefined)
    assert.ok(core.settled())
    const repairs = core.repairs()
    assert.deepEqual(repairs.map(r => r.member).sort(), ['m2', 'm3'])
    for (const r of repairs) assert.deepEqual(read(r.object), ['two'])
  })

  it('does not repair replicas that failed, nor anything when all agree', () => {
    const agree = new GetCore({ r: 2, replicas: owners })
    agree.reply('m1', b)
    agree.reply('m2', b)
    agree.fail('m3', 'timeout')
    assert.deepEqual(agree.repairs(), [])
  })

  it('repairs a replica that missed a delete with the tombstone', () => {
    const deleted = update(b, b.vv, 'x', null, 4)
    const core = new GetCore({ r: 3, replicas: owners })
    core.reply('m1', deleted)
    core.reply('m2', deleted)
    core.reply('m3', b)
    const outcome = core.outcome()
    assert.ok(outcome.done && outcome.ok)
    assert.deepEqual(read(outcome.object), [], 'a deleted key reads as no values')
    assert.deepEqual(core.repairs().map(r => r.member), ['m3'])
    assert.deepEqual(core.repairs()[0]?.object, merge(deleted, b))
  })

  it('rejects an R that is not a positive integer, and duplicate replicas', () => {
    assert.throws(() => new GetCore({ r: 0, replicas: owners }), { name: 'InvalidArgumentError' })
    assert.throws(() => new GetCore({ r: 0.5, replicas: owners }), { name: 'InvalidArgumentError' })
    assert.throws(() => new GetCore({ r: 1, replicas: ['m1', 'm1'] }), { name: 'InvalidArgumentError' })
  })

  it('fails at once when R exceeds the replicas there are', () => {
    const outcome = new GetCore({ r: 3, replicas: ['m1', 'm2'] }).outcome()
    assert.ok(outcome.done && !outcome.ok)
    assert.equal(outcome.error.name, 'QuorumError')
  })
})
