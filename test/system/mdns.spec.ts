import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const bin = fileURLToPath(new URL('../../bin/shoal.js', import.meta.url))

/**
 * mDNS multicasts on every interface it finds, so this test gives it a network of its own: a
 * network namespace whose only interface is a loopback with multicast on. Nothing leaves it.
 */
describe('LAN discovery by mDNS, in a network namespace of its own', function () {
  this.timeout(120_000)
  const ns = `shoal-mdns-${randomBytes(3).toString('hex')}`
  let root: string
  const running: ChildProcess[] = []

  const inNs = (...args: string[]): string[] => ['netns', 'exec', ns, ...args]
  const ip = (...args: string[]): void => {
    const out = spawnSync('ip', args, { encoding: 'utf8' })
    if (out.status !== 0) throw new Error(`ip ${args.join(' ')}: ${out.stderr || out.error?.message}`)
  }

  before(async function () {
    if (process.getuid?.() !== 0 || spawnSync('ip', ['netns', 'list']).status !== 0) {
      // Not a silent pass: mocha reports the test as pending, with this reason.
      this.skip()
    }
    ip('netns', 'add', ns)
    ip(...inNs('ip', 'link', 'set', 'lo', 'up'))
    ip(...inNs('ip', 'link', 'set', 'lo', 'multicast', 'on'))
    ip(...inNs('ip', 'route', 'add', '224.0.0.0/4', 'dev', 'lo'))
    root = await mkdtemp(join(tmpdir(), 'shoal-mdns-'))
  })

  after(async () => {
    for (const child of running) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise(resolve => child.once('exit', resolve))
        child.kill('SIGKILL')
        await exited
      }
    }
    spawnSync('ip', ['netns', 'del', ns])
    if (root !== undefined) await rm(root, { recursive: true, force: true })
  })

  async function start (name: string, cluster: string): Promise<string> {
    const child = spawn('ip', inNs(process.execPath, bin, 'start', '--data', join(root, name), '--listen', '/ip4/127.0.0.1/tcp/0', '--mdns', '--cluster', cluster, '--json'), { stdio: ['ignore', 'pipe', 'pipe'] })
    running.push(child)
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve)
      child.once('exit', code => { reject(new Error(`shoal start exited with ${code}: ${stderr}`)) })
    })
    return (JSON.parse(line) as { addrs: string[] }).addrs[0]!
  }

  function shoal (...args: string[]): { status: number | null, stdout: string, stderr: string } {
    const out = spawnSync('ip', inNs(process.execPath, bin, ...args), { encoding: 'utf8', timeout: 30_000, input: '' })
    return { status: out.status, stdout: out.stdout, stderr: out.stderr }
  }

  function members (peer: string, cluster: string): string[] {
    const out = shoal('status', '--json', '--peer', peer, '--cluster', cluster)
    if (out.status !== 0) return []
    return (JSON.parse(out.stdout) as { members: Array<{ peerId: string, state: string }> }).members.filter(m => m.state === 'up').map(m => m.peerId)
  }

  it('two nodes with --mdns and no bootstrap address form one cluster; a node of another cluster stays out', async () => {
    const a = await start('a', 'lan-a')
    const b = await start('b', 'lan-a')
    const c = await start('c', 'lan-b')
    const peer = (addr: string): string => addr.split('/p2p/')[1]!

    const end = Date.now() + 30_000
    while (members(a, 'lan-a').length < 2 || members(b, 'lan-a').length < 2) {
      if (Date.now() > end) throw new Error(`no cluster formed: a sees ${members(a, 'lan-a').length}, b sees ${members(b, 'lan-a').length}`)
      await new Promise(resolve => setTimeout(resolve, 250))
    }
    assert.deepEqual(members(a, 'lan-a').sort(), [peer(a), peer(b)].sort())
    assert.deepEqual(members(c, 'lan-b'), [peer(c)], 'the other cluster sees only itself')
    assert.ok(!members(a, 'lan-a').includes(peer(c)))

    assert.equal(shoal('put', 'lan', 'found', '--peer', a, '--cluster', 'lan-a').status, 0)
    assert.equal(shoal('get', 'lan', '--peer', b, '--cluster', 'lan-a').stdout, 'found\n')
  })
})
