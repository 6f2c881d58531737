import assert from 'node:assert/strict'
import { join } from 'node:path'
import { Abusers, burst, memoryOf, normalTraffic, sleep, startNode } from '../../bench/load.ts'
import type { LoadNode } from '../../bench/load.ts'
import { Processes, exited } from '../../bench/processes.ts'
import { createClient } from '../../src/client.ts'
import type { ShoalClient } from '../../src/client.ts'
import { SERVE_DEADLINES } from '../../src/core/coordinator/coordinator.ts'
import { DEFAULT_TIMEOUT_MS } from '../../src/node.ts'
import { eventually } from '../support/eventually.ts'

/** Generous: the node's idle RSS is ~250-300 MiB; unbounded buffering under this load reaches gigabytes. */
const MAX_GROWTH_MIB = 300
/** The kv server's own deadline per stream (shoal start's default), plus slack for a loaded machine. */
const KV_STREAM_DEADLINE_MS = SERVE_DEADLINES * DEFAULT_TIMEOUT_MS

describe('a shoal process under 1,000 concurrent requests and hostile peers', function () {
  this.timeout(180_000)
  const processes = new Processes()
  const clients: ShoalClient[] = []
  const abusers = new Abusers()
  let node: LoadNode
  let idleMiB: number

  before(async () => {
    const dir = await processes.tempDir('shoal-load-')
    node = await startNode(processes, join(dir, 'node'))
    for (let i = 0; i < 5; i++) clients.push(await createClient({ bootstrap: [node.addrs[0] as string] }))
    await (clients[0] as ShoalClient).put('big', new Uint8Array(1024 * 1024 - 4096).fill(7))
    await burst(clients, 50, 'warm', 'big', new Uint8Array(16))
    idleMiB = memoryOf(node.pid).rssMiB
  })

  after(async () => {
    await abusers.stop()
    await Promise.allSettled(clients.map(async c => { await c.stop() }))
    await processes.cleanup()
  })

  it('1,000 concurrent puts and gets from client peers are each answered or refused as busy, every acknowledged put reads back, memory stays bounded', async () => {
    const value = new Uint8Array(1024).fill(3)
    const result = await burst(clients, 1000, 'burst', 'warm-0', value)
    assert.equal(result.failed, 0, `no request fails other than by a busy refusal: ${JSON.stringify(result.errors)}`)
    assert.equal(result.answered + result.busy, 1000)
    assert.ok(result.answered >= 500, `most are answered (${result.answered})`)

    // No acknowledged write lost: every put of the burst the node acknowledged reads back.
    const reader = clients[0] as ShoalClient
    const expected = Buffer.from(value).toString('hex')
    for (const key of result.acknowledged) {
      const read = await reader.get(key)
      assert.deepEqual(read?.siblings.map(v => Buffer.from(v).toString('hex')), [expected], `${key} reads back`)
    }

    const { peakMiB } = memoryOf(node.pid)
    assert.ok(peakMiB - idleMiB < MAX_GROWTH_MIB, `RSS grew from ${idleMiB.toFixed(0)} to a peak of ${peakMiB.toFixed(0)} MiB`)
    assert.equal(exited(node.child), false, 'the node is alive')
  })

  it('readers that never read, readers that trickle, silent streams and byte-by-byte senders: the node keeps serving others, stays within its memory bound, and closes every abusive stream', async () => {
    const before = memoryOf(node.pid).rssMiB
    const opening = abusers.start(node, [
      // Each asks for a 1 MiB value: unbounded, these 480 would pin about 500 MiB of replies for
      // the streams' deadline. Three such peers stay within the node's byte budget (four peers' worth).
      { kind: 'unread', peers: 2, streams: 160 },
      { kind: 'trickle', peers: 1, streams: 160 },
      { kind: 'silent', peers: 1, streams: 128 },
      { kind: 'dribble', peers: 1, streams: 32 }
    ], 'big')
    // A normal client keeps writing and reading while the abusers open and hold their streams.
    const served = await normalTraffic(clients[1] as ShoalClient, opening.then(async () => { await sleep(3_000) }))
    await opening
    assert.ok(abusers.opened > 0)
    assert.ok(served.ok >= 1, `the normal client was served during the abuse (${served.ok} ok, ${served.failed} failed: ${served.errors.join('; ')})`)
    assert.equal(served.failed, 0, `the normal client's requests all succeeded: ${served.errors.join('; ')}`)

    // Every abusive stream is closed by the node: refused at once, or at the stream's deadline.
    await eventually(`the node closed every abusive stream (${abusers.closed}/${abusers.opened})`,
      () => abusers.pending === 0, abusers.opened > 0 ? KV_STREAM_DEADLINE_MS * 4 : 0, 250)

    const { peakMiB } = memoryOf(node.pid)
    // From just before the abuse: the heap the 1,000 requests before it left behind is not its doing.
    assert.ok(peakMiB - before < MAX_GROWTH_MIB, `RSS grew from ${before.toFixed(0)} MiB before the abuse (${idleMiB.toFixed(0)} MiB idle) to a peak of ${peakMiB.toFixed(0)} MiB`)
    assert.equal(exited(node.child), false, 'the node is alive')
    const client = clients[2] as ShoalClient
    await client.put('after-abuse', 'still here')
    assert.deepEqual((await client.get('after-abuse'))?.siblings.map(v => Buffer.from(v).toString()), ['still here'])
  })
})
