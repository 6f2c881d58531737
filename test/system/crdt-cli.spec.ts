import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Processes, stderrTail } from '../../bench/processes.ts'
import { eventually } from '../support/eventually.ts'

const bin = fileURLToPath(new URL('../../bin/shoal.js', import.meta.url))

interface Run { status: number, stdout: string, stderr: string }

/** One CLI command, asynchronously, so that several run at once. */
async function shoal (...args: string[]): Promise<Run> {
  return await new Promise(resolve => {
    execFile(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
      resolve({ status, stdout, stderr })
    })
  })
}

describe('shoal counter and shoal set (real shoal processes)', function () {
  this.timeout(180_000)
  const processes = new Processes()
  const peers: string[] = []

  before(async () => {
    const root = await processes.tempDir('shoal-crdt-cli-')
    for (let i = 0; i < 3; i++) {
      const child = processes.spawn(`node-${i}`, [bin, 'start', '--data', join(root, `n${i}`), '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--json',
        ...(peers[0] === undefined ? [] : ['--bootstrap', peers[0]])])
      const stderr = stderrTail(child)
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once('line', resolve)
        child.once('exit', code => { reject(new Error(`shoal start exited with ${code}: ${stderr()}`)) })
      })
      peers.push((JSON.parse(line) as { addrs: string[] }).addrs[0]!)
    }
    await eventually('three members up', async () => {
      const out = await shoal('status', '--json', '--peer', peers[2]!)
      return out.status === 0 && (JSON.parse(out.stdout) as { members: Array<{ state: string }> }).members.filter(m => m.state === 'up').length === 3
    }, 30_000, 300)
  })

  after(async () => { await processes.cleanup() })

  it('concurrent incr and decr through different nodes all count', async () => {
    const runs = await Promise.all([
      ...Array.from({ length: 4 }, (_, i) => shoal('counter', 'incr', 'visits', '2', '--peer', peers[i % 3]!)),
      ...Array.from({ length: 2 }, (_, i) => shoal('counter', 'decr', 'visits', '--peer', peers[i % 3]!))
    ])
    for (const run of runs) assert.equal(run.status, 0, run.stderr)
    for (const peer of peers) {
      const got = await shoal('counter', 'get', 'visits', '--r', '3', '--json', '--peer', peer)
      assert.equal(got.status, 0, got.stderr)
      assert.deepEqual(JSON.parse(got.stdout), { key: 'visits', value: 4 * 2 - 2 })
    }
    assert.equal((await shoal('counter', 'get', 'never-counted', '--peer', peers[0]!)).stdout, '0\n')
  })

  it('set add, remove and members; removing a non-member exits 3', async () => {
    const adds = await Promise.all(['apples', 'pears', 'plums'].map(async (m, i) => await shoal('set', 'add', 'basket', m, '--peer', peers[i]!)))
    for (const run of adds) assert.equal(run.status, 0, run.stderr)
    assert.equal((await shoal('set', 'remove', 'basket', 'apples', '--peer', peers[1]!)).status, 0)
    const again = await shoal('set', 'remove', 'basket', 'apples', '--peer', peers[2]!)
    assert.equal(again.status, 3)
    assert.match(again.stderr, /not a member/)
    assert.equal((await shoal('set', 'members', 'basket', '--r', '3', '--peer', peers[0]!)).stdout, 'pears\nplums\n')
    const json = await shoal('set', 'members', 'basket', '--json', '--peer', peers[2]!)
    assert.deepEqual(JSON.parse(json.stdout), { key: 'basket', members: [{ value: 'pears' }, { value: 'plums' }] })
  })

  it('a counter command on a plain key fails with WrongTypeError (exit 1); bad arguments are usage errors (exit 2) and send nothing', async () => {
    assert.equal((await shoal('put', 'plain', 'text', '--peer', peers[0]!)).status, 0)
    const wrong = await shoal('counter', 'incr', 'plain', '--peer', peers[0]!)
    assert.equal(wrong.status, 1)
    assert.match(wrong.stderr, /WrongTypeError/)
    assert.equal((await shoal('get', 'plain', '--peer', peers[1]!)).stdout, 'text\n', 'unchanged')
    const bad = [['counter', 'bump', 'k'], ['counter', 'incr', 'k', '0'], ['counter', 'incr', 'k', 'x'], ['counter', 'get', 'k', '5'], ['set', 'add', 'k'], ['set', 'members', 'k', 'm'], ['counter', 'incr']]
    // No --peer: a usage error must exit before it even looks for a node.
    const runs = await Promise.all(bad.map(async args => await shoal(...args)))
    runs.forEach((run, i) => {
      assert.equal(run.status, 2, `${bad[i]!.join(' ')}: ${run.stderr}`)
      // One line that names the command, so the user knows where to look.
      assert.match(run.stderr, new RegExp(`^shoal: .*(shoal help|usage: shoal) ${bad[i]![0]}`))
    })
  })
})
