import assert from 'node:assert/strict'
import { toBytes } from '../../src/core/bytes.ts'
import { decodeContext, encodeContext, update, values } from '../../src/core/causality.ts'
import type { DvvSet } from '../../src/core/causality.ts'
import { Coordinator } from '../../src/core/coordinator/coordinator.ts'
import type { LocalReplica } from '../../src/core/coordinator/coordinator.ts'
import { EMPTY_COUNTER } from '../../src/core/crdt/counter.ts'
import { CRDT_MAGIC, encodeCrdt } from '../../src/core/crdt/typed-value.ts'
import { Ring } from '../../src/core/ring.ts'
import { DELETE, KvOps, lastWriterWins } from '../../src/kv-ops.ts'
import type { KvBackend, Resolver } from '../../src/kv-ops.ts'
import { readResult } from '../../src/node.ts'

const text = (v: Uint8Array | undefined): string | undefined => v === undefined ? undefined : new TextDecoder().decode(v)

/**
 * One key's replica in memory (every key maps to it) behind the operations' backend, with hooks to make the world hostile:
 * a write slipped in between an operation's read and its write, a stale read, a write that
 * lands but whose acknowledgement is lost.
 */
class Replica {
  object: DvvSet | undefined
  clock = 1000
  writes = 0
  /** Runs before each write of an operation (a concurrent writer's turn). */
  beforeWrite: (() => void) | undefined
  /** The next read sees this instead (a sloppy quorum's stale copy). */
  staleRead: { object: DvvSet | undefined } | undefined
  /** The next write is stored but reported as failed (a lost acknowledgement). */
  loseAck = false

  backend (): KvBackend {
    return {
      get: async () => {
        const stale = this.staleRead
        this.staleRead = undefined
        return readResult(stale === undefined ? this.object : stale.object)
      },
      write: async (_key, value, options) => {
        this.beforeWrite?.()
        const next = this.apply(value, options.context)
        if (this.loseAck) {
          this.loseAck = false
          throw Object.assign(new Error('no answer within 2000 ms'), { name: 'TimeoutError' })
        }
        return { context: encodeContext(next.vv), siblings: values(next).length }
      }
    }
  }

  /** A coordinator's put: replaces what the context covers. */
  apply (value: Uint8Array | null, context?: string): DvvSet {
    this.writes++
    this.object = update(this.object, context === undefined ? new Map() : decodeContext(context), 'r1', value, this.clock++)
    return this.object
  }

  values (): string[] {
    return this.object === undefined ? [] : values(this.object).map(v => text(v) as string).sort()
  }
}

describe('update()', () => {
  it('reads, applies the function and writes back with the read\'s context', async () => {
    const replica = new Replica()
    const ops = new KvOps(replica.backend())
    const seen: Array<string | undefined> = []
    await ops.update('k', current => { seen.push(text(current)); return 'one' })
    const result = await ops.update('k', current => { seen.push(text(current)); return `${text(current) ?? ''}+two` })
    assert.deepEqual(seen, [undefined, 'one'])
    assert.equal(text(result.value), 'one+two')
    assert.deepEqual(replica.values(), ['one+two'], 'the write replaced what it read: no sibling')
    await ops.update('k', () => DELETE)
    assert.deepEqual(replica.values(), [])
  })

  it('on siblings without a resolver throws SiblingsError and writes nothing', async () => {
    const replica = new Replica()
    replica.apply(toBytes('a'))
    replica.apply(toBytes('b'))
    const ops = new KvOps(replica.backend())
    await assert.rejects(ops.update('k', () => 'c'), { name: 'SiblingsError' })
    assert.equal(replica.writes, 2)
    assert.deepEqual(replica.values(), ['a', 'b'])
  })

  it('resolves siblings with the call\'s resolver, else the instance\'s, and replaces them all', async () => {
    const replica = new Replica()
    replica.apply(toBytes('a'))
    replica.apply(toBytes('b'))
    const join: Resolver = siblings => toBytes(siblings.map(s => text(s)).sort().join('|'))
    const ops = new KvOps(replica.backend(), () => toBytes('instance'))
    const result = await ops.update('k', current => `${text(current) ?? ''}!`, { resolver: join })
    assert.equal(text(result.value), 'a|b!')
    assert.deepEqual(replica.values(), ['a|b!'])
    replica.apply(toBytes('c'))
    await ops.update('k', current => `${text(current) ?? ''}?`)
    assert.deepEqual(replica.values(), ['instance?'])
  })

  it('when a concurrent write slips in, resolves the siblings (its own write included) without running the function again', async () => {
    const replica = new Replica()
    replica.apply(toBytes('base'))
    let slipped = false
    replica.beforeWrite = () => { if (!slipped) { slipped = true; replica.apply(toBytes('theirs')) } }
    const resolved: string[][] = []
    const union: Resolver = siblings => { resolved.push(siblings.map(s => text(s) as string).sort()); return toBytes(siblings.map(s => text(s)).sort().join('|')) }
    let calls = 0
    const result = await new KvOps(replica.backend()).update('k', current => { calls++; return `${text(current) ?? ''}+mine` }, { resolver: union })
    assert.equal(calls, 1, 'the function ran once: its value is already stored')
    assert.deepEqual(resolved, [['base+mine', 'theirs']])
    assert.equal(text(result.value), 'base+mine|theirs')
    assert.deepEqual(replica.values(), ['base+mine|theirs'])
  })

  it('a slipped-in write with no resolver, or on every attempt, is a ConflictError; the value is stored anyway', async () => {
    const replica = new Replica()
    replica.beforeWrite = () => { replica.apply(toBytes(`theirs-${replica.writes}`)) }
    await assert.rejects(new KvOps(replica.backend()).update('k', () => 'mine'), { name: 'ConflictError' })
    assert.ok(replica.values().includes('mine'), 'nothing lost: the update is a sibling')
    const writesBefore = replica.writes
    await assert.rejects(new KvOps(replica.backend()).update('k', () => 'again', { resolver: lastWriterWins, attempts: 3 }), { name: 'ConflictError' })
    // 3 attempts, each with one concurrent write before it.
    assert.equal(replica.writes - writesBefore, 6)
  })

  it('a delete that a concurrent write survives says so: the surviving value with a resolver, else ConflictError', async () => {
    const replica = new Replica()
    replica.apply(toBytes('base'))
    replica.beforeWrite = () => { replica.beforeWrite = undefined; replica.apply(toBytes('theirs')) }
    const result = await new KvOps(replica.backend(), lastWriterWins).update('k', () => DELETE)
    assert.equal(text(result.value), 'theirs')
    const single = new Replica()
    single.apply(toBytes('base'))
    single.beforeWrite = () => { single.beforeWrite = undefined; single.apply(toBytes('theirs')) }
    await assert.rejects(new KvOps(single.backend()).update('k', () => DELETE), { name: 'ConflictError' })
    assert.deepEqual(single.values(), ['theirs'])
  })

  it('lastWriterWins keeps the sibling with the latest timestamp, ties to the greatest bytes', () => {
    const siblings = ['a', 'b', 'c'].map(toBytes)
    assert.equal(text(lastWriterWins(siblings, [{ timestamp: 5 }, { timestamp: 9 }, { timestamp: 7 }])), 'b')
    assert.equal(text(lastWriterWins(siblings, [{ timestamp: 9 }, { timestamp: 9 }, { timestamp: 7 }])), 'b')
  })

  it('refuses bad input with typed errors and writes nothing', async () => {
    const replica = new Replica()
    const ops = new KvOps(replica.backend())
    await assert.rejects(ops.update('k', () => Uint8Array.of(...CRDT_MAGIC, 1, 1)), { name: 'InvalidArgumentError' })
    await assert.rejects(ops.update('k', () => 42 as unknown as string), { name: 'InvalidArgumentError' })
    await assert.rejects(ops.update('k', 'nope' as unknown as () => string), { name: 'InvalidArgumentError' })
    await assert.rejects(ops.update('k', () => 'x', { attempts: 0 }), { name: 'InvalidArgumentError' })
    assert.throws(() => new KvOps(replica.backend(), 'lww' as unknown as Resolver), { name: 'InvalidArgumentError' })
    assert.equal(replica.writes, 0)
    await ops.counter('k').increment()
    await assert.rejects(ops.update('k', () => 'x'), { name: 'WrongTypeError' })
    assert.equal(replica.writes, 1)
  })
})

describe('counter()', () => {
  it('counts increments and decrements', async () => {
    const replica = new Replica()
    const hits = new KvOps(replica.backend()).counter('hits')
    assert.equal(await hits.value(), 0)
    assert.equal(await hits.increment(), 1)
    assert.equal(await hits.increment(5), 6)
    assert.equal(await hits.decrement(2), 4)
    assert.equal(await hits.value(), 4)
    await assert.rejects(hits.increment(1.5), { name: 'InvalidArgumentError' })
    await assert.rejects(hits.decrement(Number.NaN), { name: 'InvalidArgumentError' })
  })

  it('a stale read never lowers this writer\'s own entry (no increment lost)', async () => {
    const replica = new Replica()
    const hits = new KvOps(replica.backend()).counter('hits')
    for (let i = 0; i < 3; i++) await hits.increment()
    // A sloppy quorum's read finds nothing: the writer's memory, not the read, sets its entry.
    replica.staleRead = { object: undefined }
    await hits.increment()
    assert.equal(replica.object?.siblings.length, 2, 'a write without context is a sibling of the old state')
    assert.equal(await hits.value(), 4, 'the join keeps every increment')
  })

  it('an increment whose acknowledgement was lost is counted under the next one, never beneath it', async () => {
    const replica = new Replica()
    const hits = new KvOps(replica.backend()).counter('hits')
    replica.loseAck = true
    await assert.rejects(hits.increment(), { name: 'TimeoutError' })
    assert.equal(await hits.increment(), 2)
    assert.equal(await hits.value(), 2)
  })

  it('two writers\' concurrent states are joined on read', async () => {
    const replica = new Replica()
    const a = new KvOps(replica.backend()).counter('hits')
    const b = new KvOps(replica.backend()).counter('hits')
    await a.increment(3)
    replica.beforeWrite = () => { replica.beforeWrite = undefined; replica.apply(encodeCrdt({ type: 'counter', state: new Map([['zz', { p: 10, n: 0 }]]) })) }
    await b.increment(4)
    assert.equal(replica.object?.siblings.length, 2)
    assert.equal(await a.value(), 17)
  })

  it('on a key holding a plain value is a WrongTypeError and writes nothing', async () => {
    const replica = new Replica()
    replica.apply(toBytes('plain'))
    const ops = new KvOps(replica.backend())
    await assert.rejects(ops.counter('k').increment(), { name: 'WrongTypeError' })
    await assert.rejects(ops.set('k').add('x'), { name: 'WrongTypeError' })
    assert.equal(replica.writes, 1)
    const other = new Replica()
    const counters = new KvOps(other.backend())
    await counters.counter('c').increment()
    await assert.rejects(counters.set('c').members(), { name: 'WrongTypeError' })
    await assert.rejects(counters.set('c').add('x'), { name: 'WrongTypeError' })
    assert.equal(other.writes, 1)
  })
})

describe('set()', () => {
  it('adds, removes and lists members in byte order', async () => {
    const replica = new Replica()
    const cart = new KvOps(replica.backend()).set('cart')
    await cart.add('pears')
    await cart.add('apples')
    await cart.add(Uint8Array.of(0xff))
    assert.deepEqual((await cart.members()).map(m => Buffer.from(m).toString('hex')), ['6170706c6573', '7065617273', 'ff'])
    assert.equal(await cart.remove('apples'), true)
    const writes = replica.writes
    assert.equal(await cart.remove('apples'), false)
    assert.equal(replica.writes, writes, 'removing an absent member writes nothing')
    assert.equal(await cart.has('pears'), true)
    assert.equal(await cart.has('apples'), false)
    await assert.rejects(cart.add(''), { name: 'InvalidArgumentError' })
  })

  it('an add concurrent with a remove of the same member wins', async () => {
    const replica = new Replica()
    const alice = new KvOps(replica.backend()).set('s')
    const bob = new KvOps(replica.backend()).set('s')
    await alice.add('x')
    // Bob's remove read x; before it writes, Alice adds x again (a new tag Bob never saw).
    let added: Promise<void> | undefined
    replica.beforeWrite = () => { replica.beforeWrite = undefined; added = alice.add('x') }
    await bob.remove('x')
    await added
    assert.deepEqual((await alice.members()).map(m => text(m)), ['x'])
  })
})

describe('the coordinator keeps the reserved prefix for well-formed CRDTs', () => {
  it('refuses a prefixed value that does not decode, accepts a counter', async () => {
    // The check comes before the replica is touched; only an accepted put reaches modify.
    const written: DvvSet[] = []
    const unused = async (): Promise<never> => { throw new Error('not used by a put') }
    const replica: LocalReplica = {
      actorId: 'a1',
      get: unused,
      modify: async (_key, fn) => { const next = fn(undefined, 'a1'); if (next !== undefined) written.push(next); return next },
      merge: unused,
      putHint: unused
    }
    const ring = new Ring([{ id: 'solo', weight: 1 }], { partitions: 16, n: 1 })
    const coordinator = new Coordinator({
      self: 'solo', env: { now: () => 1000, random: () => 0.5, setTimer: () => ({ cancel: () => {} }) }, replica, ring: () => ring, isUp: () => true, r: 1, w: 1,
      transport: async () => { throw new Error('no network in this test') }
    })
    const response = await coordinator.handle({ type: 'put', key: toBytes('k'), value: Uint8Array.of(...CRDT_MAGIC, 1, 1, 0x0a, 0x05), context: new Map() })
    assert.equal(response.type, 'error')
    assert.equal(response.type === 'error' && response.name, 'InvalidArgumentError')
    assert.equal(written.length, 0)
    await coordinator.put(toBytes('k'), encodeCrdt({ type: 'counter', state: EMPTY_COUNTER }))
    assert.equal(written.length, 1)
  })
})
