import assert from 'node:assert/strict'
import { bytesId, toBytes } from '../../src/core/bytes.ts'
import { equals, merge, update, values } from '../../src/core/causality.ts'
import type { DvvSet } from '../../src/core/causality.ts'
import { Coordinator } from '../../src/core/coordinator/coordinator.ts'
import { OverloadedError, UnreachableError } from '../../src/core/errors.ts'
import type { LocalReplica } from '../../src/core/coordinator/coordinator.ts'
import type { Env } from '../../src/core/env.ts'
import { Ring } from '../../src/core/ring.ts'

/** One member alone: every request is coordinated and stored locally, nothing crosses a network. */
function single (limits = {}, members = ['solo'], onHint?: (target: string, created: boolean) => void): {
  coordinator: Coordinator, objects: Map<string, DvvSet>, hints: Map<string, DvvSet>, ring: Ring
} {
  const objects = new Map<string, DvvSet>()
  const hints = new Map<string, DvvSet>()
  const replica: LocalReplica = {
    actorId: 'a1',
    get: async key => objects.get(bytesId(key)),
    modify: async (key, fn) => {
      const next = fn(objects.get(bytesId(key)), 'a1')
      if (next !== undefined) objects.set(bytesId(key), next)
      return next
    },
    merge: async (key, incoming) => {
      const current = objects.get(bytesId(key))
      const object = current === undefined ? incoming : merge(current, incoming)
      objects.set(bytesId(key), object)
      return { object, changed: current === undefined || !equals(current, object) }
    },
    putHint: async (target, key, object) => {
      const id = `${target}/${bytesId(key)}`
      const current = hints.get(id)
      hints.set(id, current === undefined ? object : merge(current, object))
      return current === undefined
    }
  }
  const env: Env = { now: () => 1000, random: () => 0.5, setTimer: () => ({ cancel: () => {} }) }
  const ring = new Ring(members.map(id => ({ id, weight: 1 })), { partitions: 16, n: 1 })
  const coordinator = new Coordinator({
    self: 'solo', env, replica, ring: () => ring, isUp: () => true, r: 1, w: 1, limits, onHint,
    transport: async () => { throw new Error('no network in this test') }
  })
  return { coordinator, objects, hints, ring }
}

const text = (o: DvvSet | undefined): string[] => o === undefined ? [] : values(o).map(v => new TextDecoder().decode(v)).sort()

describe('coordinator requests', () => {
  it('a put is read back; a write with the read\'s context replaces it; a delete hides it', async () => {
    const { coordinator } = single()
    await coordinator.put(toBytes('k'), toBytes('one'))
    await coordinator.put(toBytes('k'), toBytes('two'))
    const read = await coordinator.get(toBytes('k'))
    assert.deepEqual(text(read), ['one', 'two'], 'puts without context are siblings')
    await coordinator.put(toBytes('k'), toBytes('three'), { context: read?.vv })
    const after = await coordinator.get(toBytes('k'))
    assert.deepEqual(text(after), ['three'])
    await coordinator.put(toBytes('k'), null, { context: after?.vv })
    assert.deepEqual(text(await coordinator.get(toBytes('k'))), [])
  })

  it('rejects bad keys, values, R and W with InvalidArgumentError and writes nothing', async () => {
    const { coordinator, objects } = single({ maxValueBytes: 8 })
    const cases: Array<[string, () => Promise<unknown>]> = [
      ['empty key', async () => await coordinator.put(new Uint8Array(0), toBytes('v'))],
      ['key over 1024 bytes', async () => await coordinator.put(new Uint8Array(1025), toBytes('v'))],
      ['value over the limit', async () => await coordinator.put(toBytes('k'), new Uint8Array(9))],
      ['w of 0', async () => await coordinator.put(toBytes('k'), toBytes('v'), { w: 0 })],
      ['w above N', async () => await coordinator.put(toBytes('k'), toBytes('v'), { w: 2 })],
      ['r above N', async () => await coordinator.get(toBytes('k'), { r: 2 })],
      ['fractional r', async () => await coordinator.get(toBytes('k'), { r: 0.5 })]
    ]
    for (const [what, call] of cases) await assert.rejects(call, { name: 'InvalidArgumentError' }, what)
    assert.equal(objects.size, 0)
  })

  it('refuses a write that would exceed the sibling limit, naming the key, and keeps what was there', async () => {
    const { coordinator, objects } = single({ maxSiblings: 3 })
    for (const v of ['a', 'b', 'c']) await coordinator.put(toBytes('busy'), toBytes(v))
    await assert.rejects(coordinator.put(toBytes('busy'), toBytes('d')), (err: Error) => err.name === 'TooManySiblingsError' && err.message.includes('"busy"'))
    assert.deepEqual(text(objects.get(bytesId(toBytes('busy')))), ['a', 'b', 'c'])
  })

  it('a forwarded put is refused by a member that does not own the key, and checked like any put', async () => {
    const { coordinator, objects, ring } = single({ maxValueBytes: 8 }, ['solo', 'other'])
    const key = [...Array(64).keys()].map(i => toBytes(`k${i}`)).find(k => ring.owners(ring.partitionOf(k))[0] === 'other')!
    const mine = [...Array(64).keys()].map(i => toBytes(`k${i}`)).find(k => ring.owners(ring.partitionOf(k))[0] === 'solo')!
    const refused = await coordinator.handle({ type: 'put', key, value: toBytes('v'), context: new Map(), forwarded: true })
    assert.equal(refused.type === 'error' ? refused.name : refused.type, 'NotOwnerError')
    const tooBig = await coordinator.handle({ type: 'put', key: mine, value: new Uint8Array(9), context: new Map(), forwarded: true })
    assert.equal(tooBig.type === 'error' ? tooBig.name : tooBig.type, 'InvalidArgumentError')
    assert.equal(objects.size, 0)
  })

  it('a put for another member\'s key goes to the next owner when one refuses it unserved (busy, unreachable, not an owner), never after one that may have served it', async () => {
    const ring = new Ring(['o1', 'o2', 'o3'].map(id => ({ id, weight: 1 })), { partitions: 16, n: 3 })
    const key = toBytes('forwarded')
    const owners = ring.owners(ring.partitionOf(key))
    const written = update(undefined, new Map(), 'o', toBytes('v'), 1)
    const run = async (answers: Array<string | undefined>): Promise<{ sent: string[], outcome: DvvSet | Error }> => {
      const sent: string[] = []
      const noReplica = async (): Promise<never> => { throw new Error('the forwarder holds no replica') }
      const coordinator = new Coordinator({
        self: 'forwarder', env: { now: () => 1000, random: () => 0.5, setTimer: () => ({ cancel: () => {} }) },
        replica: { actorId: '', get: noReplica, modify: noReplica, merge: noReplica, putHint: noReplica },
        ring: () => ring, isUp: () => true, r: 2, w: 2,
        transport: async (member) => {
          const answer = answers[sent.push(member) - 1]
          if (answer === 'UnreachableError') throw new UnreachableError('connection refused')
          return answer === undefined ? { type: 'put', object: written } : { type: 'error', name: answer, message: 'no' }
        }
      })
      try {
        return { sent, outcome: await coordinator.put(key, toBytes('v')) }
      } catch (err) {
        return { sent, outcome: err as Error }
      }
    }
    const served = await run(['OverloadedError', 'UnreachableError', undefined])
    assert.deepEqual(served.sent, owners, 'each owner in turn until one takes it')
    assert.ok(!(served.outcome instanceof Error) && equals(served.outcome, written))

    const allBusy = await run(['OverloadedError', 'NotOwnerError', 'OverloadedError'])
    assert.equal(allBusy.sent.length, 3)
    assert.ok(allBusy.outcome instanceof OverloadedError, 'busy owners: busy, safe to retry, not a reason to route elsewhere')
    const allDown = await run(['UnreachableError', 'UnreachableError', 'UnreachableError'])
    assert.equal((allDown.outcome as Error).name, 'UnavailableError')

    for (const maybeServed of ['TimeoutError', 'QuorumError', 'NoReplyError']) {
      const once = await run([maybeServed, undefined])
      assert.deepEqual(once.sent, owners.slice(0, 1), `${maybeServed}: not sent again`)
      assert.equal((once.outcome as Error).name, maybeServed)
    }
  })

  it('answers every request, bad ones with a typed error response instead of throwing', async () => {
    const { coordinator } = single()
    assert.deepEqual(await coordinator.handle({ type: 'get', key: new Uint8Array(0) }), {
      type: 'error', name: 'InvalidArgumentError', message: 'a key must be 1 to 1024 bytes'
    })
    const put = await coordinator.handle({ type: 'put', key: toBytes('k'), value: toBytes('v'), context: new Map() })
    assert.equal(put.type, 'put')
    const read = await coordinator.handle({ type: 'read', key: toBytes('k') })
    assert.ok(read.type === 'read' && read.object !== undefined)
    assert.deepEqual(text(read.object), ['v'])
  })

  it('a hinted replica write to a member that does not own the key is kept as a hint and reported; to an owner it is merged', async () => {
    const told: Array<[string, boolean]> = []
    const { coordinator, objects, hints, ring } = single({}, ['solo', 'other'], (target, created) => { told.push([target, created]) })
    const keys = [...Array(64).keys()].map(i => toBytes(`k${i}`))
    const theirs = keys.find(k => ring.owners(ring.partitionOf(k))[0] === 'other')!
    const mine = keys.find(k => ring.owners(ring.partitionOf(k))[0] === 'solo')!
    const object = update(undefined, new Map(), 'a2', toBytes('v'), 1000)

    assert.deepEqual(await coordinator.handle({ type: 'write', key: theirs, object, hintFor: 'other' }), { type: 'written' })
    assert.deepEqual(await coordinator.handle({ type: 'write', key: theirs, object, hintFor: 'other' }), { type: 'written' })
    assert.deepEqual(told, [['other', true], ['other', false]], 'the first copy makes a new hint, the second merges into it')
    assert.deepEqual(text(hints.get(`other/${bytesId(theirs)}`)), ['v'])
    assert.equal(objects.size, 0, 'a hint is not the member\'s own data')

    assert.deepEqual(await coordinator.handle({ type: 'write', key: mine, object, hintFor: 'other' }), { type: 'written' })
    assert.deepEqual(text(objects.get(bytesId(mine))), ['v'], 'an owner keeps the copy as its own')
    assert.equal(hints.size, 1)
    assert.equal(told.length, 2)
  })
})
