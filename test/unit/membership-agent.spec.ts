import assert from 'node:assert/strict'
import type { Env, Timer } from '../../src/core/env.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { MembershipAgent, MembershipView } from '../../src/core/membership-agent.ts'
import type { Heartbeat, RecordSigner } from '../../src/core/membership-agent.ts'
import { recordPayload } from '../../src/core/membership.ts'
import type { MemberRecord } from '../../src/core/membership.ts'
import { recordSigner } from '../../src/net/record-signer.ts'

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

describe('membership agent with signed records', () => {
  interface Member { id: string, signer: RecordSigner }
  const members: Member[] = []

  before(async () => {
    for (let i = 0; i < 4; i++) {
      const key = await generateKeyPair('Ed25519')
      members.push({ id: peerIdFromPrivateKey(key).toString(), signer: recordSigner(key) })
    }
  })

  /** A record signed by `by` (default: the member it describes). */
  const signed = (subject: Member, fields: Partial<MemberRecord> = {}, by: Member = subject): MemberRecord => {
    const fieldsOnly = record(subject.id, fields)
    return { ...fieldsOnly, signer: by.id, signature: by.signer.sign(recordPayload(fieldsOnly, by.id)) }
  }

  function signingAgent (env: ManualEnv, self: Member, published: Heartbeat[], pull: (member: string) => Promise<readonly MemberRecord[]> = async () => []): MembershipAgent {
    return new MembershipAgent({ self: record(self.id), env, publish: hb => { published.push(hb) }, pull, ring: { partitions: 64 }, signer: self.signer })
  }

  it('signs its own heartbeats, and a peer accepts them', () => {
    const env = new ManualEnv()
    const [a, b] = [members[0]!, members[1]!]
    const published: Heartbeat[] = []
    signingAgent(env, a, published).start()
    const hb = published[0]!
    assert.equal(hb.record.signer, a.id)
    const other = signingAgent(env, b, [])
    assert.equal(other.receive(a.id, hb), true)
    assert.equal(other.member(a.id)?.status, 'up')
  })

  it('ignores heartbeats whose record is unsigned, signed by someone else, or altered after signing', () => {
    const env = new ManualEnv()
    const [a, b, c] = [members[0]!, members[1]!, members[2]!]
    const agentA = signingAgent(env, a, [])
    const unsigned = record(b.id)
    const byOther = signed(b, {}, c)
    const altered = { ...signed(b), seq: 5 }
    for (const r of [unsigned, byOther, altered]) assert.equal(agentA.receive(b.id, { record: r, digest: '' }), false)
    assert.equal(agentA.member(b.id), undefined)
    assert.deepEqual(agentA.ring().members.map(m => m.id), [a.id])
  })

  it('verifies a record once: its repeats in later heartbeats skip the signature check, altered copies still fail it', () => {
    const env = new ManualEnv()
    const [a, b] = [members[0]!, members[1]!]
    let verified = 0
    const counting: RecordSigner = { sign: a.signer.sign, verify: (...args) => { verified++; return a.signer.verify(...args) } }
    const agentA = new MembershipAgent({ self: record(a.id), env, publish: () => {}, pull: async () => [], ring: { partitions: 64 }, signer: counting })
    const held = signed(b)
    for (let i = 0; i < 5; i++) assert.equal(agentA.receive(b.id, { record: held, digest: '' }), true)
    assert.equal(verified, 1, 'the same signed record is verified once')
    // The held record's signature on other fields, or other signature bytes on its fields: checked, refused.
    const tampered = [{ ...held, addrs: ['/ip4/10.0.0.1/tcp/1'] }, { ...held, signature: held.signature!.map((x, i) => i === 0 ? x ^ 1 : x) }]
    for (const r of tampered) assert.equal(agentA.receive(b.id, { record: r, digest: '' }), false)
    assert.equal(verified, 3)
    assert.deepEqual(agentA.member(b.id)?.addrs, held.addrs)
    const next = signed(b, { seq: 1 })
    assert.equal(agentA.receive(b.id, { record: next, digest: '' }), true)
    assert.equal(verified, 4, 'a new record is verified')
  })

  it('a pulled table cannot forge others\' records: only their own signatures, or a remove by a member that is up', async () => {
    const env = new ManualEnv()
    const [a, b, c, outsider] = [members[0]!, members[1]!, members[2]!, members[3]!]
    let table: MemberRecord[] = []
    const pulled: string[] = []
    const agentA = signingAgent(env, a, [], async (member) => { pulled.push(member); return table })
    agentA.receive(b.id, { record: signed(b), digest: '' })
    // An outsider's own record 'left' (so it owns nothing) and a table claiming b left and c joined.
    table = [
      signed(outsider, { status: 'left' }),
      signed(b, { status: 'left', seq: 9 }, outsider),
      { ...record(c.id), signer: c.id, signature: outsider.signer.sign(recordPayload(record(c.id), c.id)) },
      record(b.id, { status: 'left', seq: 10 })
    ]
    assert.equal(agentA.receive(outsider.id, { record: table[0]!, digest: 'differs' }), true)
    await new Promise(resolve => setImmediate(resolve))
    assert.ok(pulled.includes(outsider.id), 'the forged table was pulled')
    assert.equal(agentA.member(b.id)?.status, 'up', 'b stays up')
    assert.equal(agentA.member(c.id), undefined, 'c was never heard of')
    assert.deepEqual(agentA.ring().members.map(m => m.id).sort(), [a.id, b.id].sort())

    // b's own signed change, and a remove of c signed by b (up here), both travel through a pull.
    table = [signed(b, { seq: 3, addrs: ['/ip4/127.0.0.1/tcp/1'] }), signed(c), signed(c, { status: 'left', seq: 1 }, b)]
    agentA.receive(b.id, { record: signed(b, { seq: 2 }), digest: 'differs again' })
    await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(agentA.member(b.id)?.addrs, ['/ip4/127.0.0.1/tcp/1'])
    assert.equal(agentA.member(c.id)?.status, 'left')
  })

  it('signs the removes it makes, and they pass to other members', () => {
    const env = new ManualEnv()
    const [a, b, c] = [members[0]!, members[1]!, members[2]!]
    const agentA = signingAgent(env, a, [])
    const agentC = signingAgent(env, c, [])
    for (const agent of [agentA, agentC]) agent.receive(b.id, { record: signed(b), digest: '' })
    agentC.receive(a.id, { record: agentA.member(a.id)!, digest: '' })
    const removed = agentA.remove(b.id)
    assert.equal(removed.signer, a.id)
    assert.equal(agentC.receive(b.id, { record: removed, digest: '' }), true)
    assert.equal(agentC.member(b.id)?.status, 'left')
  })

  it('a client\'s view takes members\' signed heartbeats and pulled tables, and is no member itself', async () => {
    const env = new ManualEnv()
    const [a, b, c] = [members[0]!, members[1]!, members[2]!]
    const changed: string[] = []
    const view = new MembershipView({
      env,
      pull: async () => [signed(a), signed(b), { ...record(c.id), signer: c.id, signature: b.signer.sign(recordPayload(record(c.id), c.id)) }],
      ring: { partitions: 64 },
      signer: a.signer,
      onChange: ids => { changed.push(...ids) }
    })
    assert.deepEqual(view.ring().members, [], 'an empty view owns nothing: a client is no member')
    await view.refresh(a.id)
    assert.deepEqual(view.records().map(r => r.id).sort(), [a.id, b.id].sort(), 'c\'s forged record stayed out')
    assert.deepEqual(changed.sort(), [a.id, b.id].sort())
    assert.equal(view.isUp(a.id), true, 'the member pulled from answered')
    assert.equal(view.receive(c.id, { record: { ...signed(c), seq: 4 }, digest: '' }), false, 'altered after signing')
    assert.equal(view.receive(c.id, { record: signed(c), digest: '' }), true)
    assert.deepEqual(view.ring().members.map(m => m.id).sort(), [a.id, b.id, c.id].sort())
    env.advance(10_000)
    assert.equal(view.isUp(c.id), false, 'silent members are seen down')
  })
})
