import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { createClient } from '../../src/client.ts'
import type { ShoalClient } from '../../src/client.ts'
import { recordPayload } from '../../src/core/membership.ts'
import type { MemberRecord } from '../../src/core/membership.ts'
import { encodeHeartbeat } from '../../src/net/codec.ts'
import { ClusterGossip } from '../../src/net/gossip.ts'
import { createShoalLibp2p } from '../../src/net/libp2p.ts'
import type { ShoalLibp2p } from '../../src/net/libp2p.ts'
import { MembersServer } from '../../src/net/members.ts'
import { recordSigner } from '../../src/net/record-signer.ts'
import { createNode } from '../../src/node.ts'
import type { ShoalNode } from '../../src/node.ts'
import { eventually } from '../support/eventually.ts'

const CLUSTER = 'hostile'

function p2p (node: ShoalNode): string {
  return `${node.addrs[0] ?? ''}/p2p/${node.peerId}`.replace(/\/p2p\/[^/]+\/p2p\//, '/p2p/')
}

/** A record with `subject`'s fields, signed by `key` as if it were the signer it names. */
function signedBy (key: PrivateKey, fields: MemberRecord, signer = peerIdFromPrivateKey(key).toString()): MemberRecord {
  return { ...fields, signer, signature: recordSigner(key).sign(recordPayload(fields, signer)) }
}

/**
 * A peer that joins the gossip topic and answers member-table pulls, but is not a member: it
 * announces itself as 'left' (so it owns nothing) and tries to rewrite everyone else's records.
 */
describe('membership against a hostile peer (real libp2p on 127.0.0.1)', function () {
  this.timeout(120_000)
  let root: string
  const nodes: ShoalNode[] = []
  let hostile: ShoalLibp2p | undefined
  let gossip: ClusterGossip | undefined
  let client: ShoalClient | undefined
  let beating: NodeJS.Timeout | undefined

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-hostile-'))
    for (let i = 0; i < 3; i++) {
      nodes.push(await createNode({
        dataDir: join(root, `node-${i}`),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        bootstrap: i === 0 ? [] : [p2p(nodes[0]!)],
        cluster: CLUSTER,
        timeoutMs: 2000
      }))
    }
    await eventually('3 members up everywhere', () => nodes.every(n => n.status().members.filter(m => m.state === 'up').length === 3))
  })

  after(async () => {
    clearInterval(beating)
    gossip?.stop()
    await hostile?.stop()
    await client?.stop()
    for (const node of nodes) await node.stop()
    await rm(root, { recursive: true, force: true })
  })

  it('forged heartbeats and forged member tables change no record and no ring', async () => {
    const key = await generateKeyPair('Ed25519')
    const ghostKey = await generateKeyPair('Ed25519')
    const self = peerIdFromPrivateKey(key).toString()
    const ghost = peerIdFromPrivateKey(ghostKey).toString()
    const [a, b, c] = nodes.map(n => n.peerId) as [string, string, string]
    const ringBefore = nodes.map(n => n.status().members.map(m => `${m.peerId}:${m.partitions}`).join(','))
    const record = (id: string, fields: Partial<MemberRecord> = {}): MemberRecord =>
      ({ id, incarnation: Date.now(), seq: 1_000, status: 'up', addrs: ['/ip4/127.0.0.1/tcp/9'], weight: 1, ...fields })

    // What it serves when pulled: b removed and c re-addressed, signed by itself (not a member) or
    // by nobody; a ghost member signed by the hostile peer in the ghost's name.
    const forged: MemberRecord[] = [
      signedBy(key, record(self, { status: 'left' })),
      signedBy(key, record(b, { status: 'left' })),
      record(c, { status: 'left' }),
      signedBy(key, record(c, { weight: 50 })),
      signedBy(key, record(ghost), ghost),
      signedBy(key, record(a, { status: 'leaving' }), a)
    ]
    let pulls = 0
    hostile = await createShoalLibp2p({ privateKey: key, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [p2p(nodes[0]!)], cluster: CLUSTER })
    const server = new MembersServer(hostile, { records: () => { pulls++; return forged } })
    await server.start()
    gossip = new ClusterGossip(hostile, CLUSTER, () => {})
    gossip.start()
    // Its own record (left, validly signed) with a digest nobody has: every member pulls its table.
    // And heartbeats from it that speak for b and c.
    const heartbeats = [
      { record: forged[0]!, digest: 'not-your-digest' },
      { record: forged[1]!, digest: 'x' },
      { record: signedBy(key, record(c, { status: 'left' }), c), digest: 'x' }
    ].map(encodeHeartbeat)
    beating = setInterval(() => { for (const hb of heartbeats) gossip?.publish(hb).catch(() => {}) }, 300)

    await eventually('every member pulled the forged table', () => pulls >= 3, 30_000)
    // Let whatever those pulls and heartbeats did settle in.
    await eventually('the hostile peer is known as left everywhere', () => nodes.every(n => n.status().members.some(m => m.peerId === self && m.state === 'left')), 30_000)

    for (const node of nodes) {
      const members = node.status().members
      const state = (id: string): string | undefined => members.find(m => m.peerId === id)?.state
      assert.equal(state(a), 'up')
      assert.equal(state(b), 'up')
      assert.equal(state(c), 'up')
      assert.equal(state(ghost), undefined, 'no ghost member')
      assert.deepEqual(members.find(m => m.peerId === c)?.addrs.includes('/ip4/127.0.0.1/tcp/9'), false)
    }
    const ringAfter = nodes.map(n => n.status().members.filter(m => m.peerId !== self).map(m => `${m.peerId}:${m.partitions}`).join(','))
    assert.deepEqual(ringAfter, ringBefore)
    await nodes[1]!.put('still', 'works')
    assert.deepEqual((await nodes[2]!.get('still'))?.siblings.map(v => new TextDecoder().decode(v)), ['works'])
  })

  it('a client peer is never a member', async () => {
    client = await createClient({ bootstrap: [p2p(nodes[0]!)], cluster: CLUSTER, timeoutMs: 5000 })
    await client.put('from-client', 'hello')
    assert.deepEqual((await nodes[1]!.get('from-client'))?.siblings.map(v => new TextDecoder().decode(v)), ['hello'])
    const ids = new Set(nodes.flatMap(n => n.status().members.map(m => m.peerId)))
    const expected = new Set([...nodes.map(n => n.peerId), hostile!.peerId.toString()])
    assert.deepEqual([...ids].filter(id => !expected.has(id)), [], 'nobody but the nodes (and the hostile peer, left)')
  })
})
