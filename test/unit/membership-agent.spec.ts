import assert from 'node:assert/strict'
import type { Env, Timer } from '../../src/core/env.ts'
import { MembershipAgent } from '../../src/core/membership-agent.ts'
import type { Heartbeat } from '../../src/core/membership-agent.ts'
import type { MemberRecord } from '../../src/core/membership.ts'

/** A hand-driven clock: timers fire only when the test advances time. */
class ManualEnv implements Env {
  time = 0
  private timers: Array<{ at: number, fn: () => void, live: boolean }> = []
  now = (): number => this.time
  random = (): number => 0.5
  setTimer = (ms: number, fn: () => void): Timer => {
    const timer = { at: this.time + ms, fn, live: true }
    this.timers.push(timer)
    return { cancel: () => { timer.live = false } }
  }

  advance (ms: number): void {
    const end = this.time + ms
    for (;;) {
      const due = this.timers.filter(t => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0]
      if (due === undefined) break
      due.live = false
      this.time = due.at
      due.fn()
    }
    this.time = end
  }
}

const record = (id: string, fields: Partial<MemberRecord> = {}): MemberRecord =>
  ({ id, incarnation: 1, seq: 0, status: 'up', addrs: [], weight: 1, ...fields })

function agent (env: ManualEnv, id: string, published: Heartbeat[], pull: (member: string) => Promise<readonly MemberRecord[]> = async () => []): MembershipAgent {
  return new MembershipAgent({ self: record(id), env, publish: hb => { published.push(hb) }, pull, ring: { partitions: 64 } })
}

describe('membership agent', () => {
  it('publishes a heartbeat at start and every interval, until stopped', () => {
    const env = new ManualEnv()
    const published: Heartbeat[] = []
    const a = agent(env, 'alpha', published)
    a.start()
    env.advance(3000)
    assert.equal(published.length, 4)
    assert.equal(published[0]?.record.id, 'alpha')
    a.stop()
    env.advance(3000)
    assert.equal(published.length, 4)
  })

  it('learns a member from its heartbeat, sees it alive, and sees it down after it falls silent', () => {
    const env = new ManualEnv()
    const a = agent(env, 'alpha', [])
    for (let t = 0; t < 10; t++) {
      assert.equal(a.receive('beta', { record: record('beta'), digest: a.digest() }), true)
      env.advance(1000)
    }
    assert.equal(a.member('beta')?.status, 'up')
    assert.deepEqual(a.ring().members.map(m => m.id), ['alpha', 'beta'])
    assert.equal(a.liveness('beta'), 'alive')
    env.advance(30_000)
    assert.equal(a.liveness('beta'), 'down')
    assert.equal(a.liveness('alpha'), 'alive', 'a member always sees itself alive')
  })

  it('ignores a heartbeat that speaks for another member than its sender, and malformed ones', () => {
    const env = new ManualEnv()
    const a = agent(env, 'alpha', [])
    assert.equal(a.receive('mallory', { record: record('beta'), digest: a.digest() }), false)
    assert.equal(a.receive('mallory', { record: { id: 'mallory' }, digest: 'x' }), false)
    assert.equal(a.receive('mallory', 'not a heartbeat'), false)
    assert.equal(a.member('beta'), undefined)
    assert.equal(a.member('mallory'), undefined)
  })

  it('pulls the whole table from a member whose digest differs, and keeps its own record', async () => {
    const env = new ManualEnv()
    const pulled: string[] = []
    const stale = record('alpha', { incarnation: 0, status: 'left' })
    const a = agent(env, 'alpha', [], async (member) => {
      pulled.push(member)
      return [record('beta'), record('gamma'), stale, { id: '' } as unknown as MemberRecord]
    })
    a.receive('beta', { record: record('beta'), digest: 'something else' })
    await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(pulled, ['beta'])
    assert.deepEqual(a.records().map(r => r.id), ['alpha', 'beta', 'gamma'])
    assert.equal(a.member('alpha')?.status, 'up', 'a peer\'s stale copy of our record must not replace it')
  })

  it('a failed request makes a member suspect until its next heartbeat', () => {
    const env = new ManualEnv()
    const a = agent(env, 'alpha', [])
    a.receive('beta', { record: record('beta'), digest: a.digest() })
    a.observe('beta', false)
    assert.equal(a.isUp('beta'), false)
    env.advance(500)
    a.receive('beta', { record: record('beta'), digest: a.digest() })
    assert.equal(a.isUp('beta'), true)
  })

  it('an operator\'s remove outranks the removed member\'s own heartbeats of the same life', () => {
    const env = new ManualEnv()
    const a = agent(env, 'alpha', [])
    a.receive('beta', { record: record('beta', { seq: 4 }), digest: a.digest() })
    const removed = a.remove('beta')
    assert.deepEqual([removed.status, removed.seq], ['left', 5])
    a.receive('beta', { record: record('beta', { seq: 4 }), digest: a.digest() })
    assert.equal(a.member('beta')?.status, 'left')
    assert.deepEqual(a.ring().members.map(m => m.id), ['alpha'])
    a.receive('beta', { record: record('beta', { incarnation: 2 }), digest: a.digest() })
    assert.equal(a.member('beta')?.status, 'up', 'a restart is a new incarnation and joins again')
    assert.throws(() => a.remove('alpha'), { name: 'InvalidArgumentError' })
    assert.throws(() => a.remove('nobody'), { name: 'InvalidArgumentError' })
  })

  it('announces its own changes with a higher seq; a leaving member owns nothing', () => {
    const env = new ManualEnv()
    const published: Heartbeat[] = []
    const a = agent(env, 'alpha', published)
    const before = a.ring()
    const leaving = a.announce({ status: 'leaving', addrs: ['/ip4/127.0.0.1/tcp/2', '/ip4/127.0.0.1/tcp/1', '/ip4/127.0.0.1/tcp/1'] })
    assert.equal(leaving.seq, 1)
    assert.deepEqual(leaving.addrs, ['/ip4/127.0.0.1/tcp/1', '/ip4/127.0.0.1/tcp/2'])
    assert.equal(published.at(-1)?.record.status, 'leaving')
    assert.deepEqual(a.ring().members, [])
    assert.notEqual(a.ring(), before)
    const ring = a.ring()
    a.announce({ status: 'left' })
    assert.equal(a.ring(), ring, 'the ring is rebuilt only when its members change')
  })
})
