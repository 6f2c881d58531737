import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { eventually } from '../support/eventually.ts'

const bin = fileURLToPath(new URL('../../bin/shoal.js', import.meta.url))

interface Started { process: ChildProcess, peerId: string, addrs: string[] }

/** `shoal start ... --json`, as the README shows it; resolves with the first stdout line. */
async function start (dataDir: string, extra: string[] = []): Promise<Started> {
  const child = spawn(process.execPath, [bin, 'start', '--data', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--json', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const line = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! })
    lines.once('line', resolve)
    child.once('exit', code => { reject(new Error(`shoal start exited with ${code}: ${stderr}`)) })
  })
  const info = JSON.parse(line) as { peerId: string, addrs: string[] }
  return { process: child, ...info }
}

/** Runs one CLI command to completion. */
function shoal (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000, input: '' })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

async function stopProcess (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
  child.kill(signal)
  return await exited
}

describe('shoal processes driven by the CLI', function () {
  this.timeout(120_000)
  let root: string
  const running: ChildProcess[] = []

  before(async () => { root = await mkdtemp(join(tmpdir(), 'shoal-system-')) })
  after(async () => {
    for (const child of running) await stopProcess(child, 'SIGKILL')
    await rm(root, { recursive: true, force: true })
  })

  it('three nodes: a put through one is read through another; one killed with SIGKILL, the cluster goes on; restarted, it keeps its peer ID and data', async () => {
    const a = await start(join(root, 'a'))
    running.push(a.process)
    const bootstrap = a.addrs[0]!
    const b = await start(join(root, 'b'), ['--bootstrap', bootstrap])
    running.push(b.process)
    const c = await start(join(root, 'c'), ['--bootstrap', bootstrap])
    running.push(c.process)

    await eventually('a sees three members up', () => {
      const out = shoal('status', '--json', '--peer', bootstrap)
      return out.status === 0 && (JSON.parse(out.stdout) as { members: Array<{ state: string }> }).members.filter(m => m.state === 'up').length === 3
    }, 20_000, 200)

    const put = shoal('put', 'greeting', 'hello', '--json', '--peer', bootstrap)
    assert.equal(put.status, 0, put.stderr)
    assert.equal((JSON.parse(put.stdout) as { ok: boolean }).ok, true)
    const got = shoal('get', 'greeting', '--json', '--data', join(root, 'b'))
    assert.equal(got.status, 0, got.stderr)
    assert.deepEqual((JSON.parse(got.stdout) as { siblings: unknown[] }).siblings, [{ value: 'hello' }])
    assert.equal(shoal('get', 'greeting', '--local', '--data', join(root, 'c')).stdout, 'hello\n', 'c holds its replica')
    assert.equal(shoal('get', 'never-written', '--peer', bootstrap).status, 3, 'a missing key exits 3')

    await stopProcess(c.process, 'SIGKILL')
    const during = shoal('put', 'while-down', 'still-works', '--peer', bootstrap)
    assert.equal(during.status, 0, during.stderr)
    assert.equal(shoal('get', 'greeting', '--data', join(root, 'b')).stdout, 'hello\n')

    const again = await start(join(root, 'c'), ['--bootstrap', bootstrap])
    running.push(again.process)
    assert.equal(again.peerId, c.peerId, 'same data directory, same peer ID')
    assert.equal(shoal('get', 'greeting', '--local', '--data', join(root, 'c')).stdout, 'hello\n', 'its data survived the kill')
    const all = shoal('get', 'while-down', '--r', '3', '--data', join(root, 'c'))
    assert.equal(all.stdout, 'still-works\n', all.stderr)

    assert.equal(await stopProcess(a.process), 0, 'SIGTERM stops a node cleanly')
  })

  it('shoal leave hands a node\'s data to the others, waits until it is done, and the node exits', async () => {
    const nodes: Started[] = []
    const first = await start(join(root, 'leave-a'), ['--handoff-interval', '300'])
    running.push(first.process)
    nodes.push(first)
    for (const name of ['leave-b', 'leave-c', 'leave-d']) {
      const node = await start(join(root, name), ['--bootstrap', first.addrs[0]!, '--handoff-interval', '300'])
      running.push(node.process)
      nodes.push(node)
    }
    const peer = first.addrs[0]!
    await eventually('four members up', () => {
      const out = shoal('status', '--json', '--peer', peer)
      return out.status === 0 && (JSON.parse(out.stdout) as { members: Array<{ state: string }> }).members.filter(m => m.state === 'up').length === 4
    }, 20_000, 200)
    for (let i = 0; i < 10; i++) assert.equal(shoal('put', `before-leave-${i}`, `v${i}`, '--peer', peer).status, 0)

    const leaver = nodes[3]!
    const exited = new Promise<number | null>(resolve => leaver.process.once('exit', code => { resolve(code) }))
    const out = shoal('leave', '--json', '--data', join(root, 'leave-d'))
    assert.equal(out.status, 0, out.stderr)
    assert.equal((JSON.parse(out.stdout) as { ok: boolean }).ok, true)
    assert.equal(await exited, 0, 'the node exits once it has left')

    // Three members and N = 3: every one of them must now hold every key.
    for (const name of ['leave-a', 'leave-b', 'leave-c']) {
      for (let i = 0; i < 10; i++) {
        const local = shoal('get', `before-leave-${i}`, '--local', '--data', join(root, name))
        assert.equal(local.stdout, `v${i}\n`, `${name} holds before-leave-${i}: ${local.stderr}`)
      }
    }
    const status = JSON.parse(shoal('status', '--json', '--peer', peer).stdout) as { members: Array<{ peerId: string, state: string }> }
    assert.equal(status.members.find(m => m.peerId === leaver.peerId)?.state, 'left')
    for (const node of nodes.slice(0, 3)) await stopProcess(node.process)
  })

  it('bad arguments are usage errors: one line and the usage, exit 2', () => {
    for (const args of [['put'], ['get', 'a', 'b'], ['put', 'k', 'v', '--bogus'], ['get', 'k', '--r', 'x'], ['start', '--bootstrap', 'not-a-multiaddr'], ['get', 'k', '--peer', 'nonsense']]) {
      const out = shoal(...args)
      assert.equal(out.status, 2, `${args.join(' ')}: ${out.stderr}`)
      assert.equal(out.stderr.trim().split('\n').length, 2, 'one line and the usage')
    }
  })
})
