import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { createServer, connect } from 'node:net'
import type { Server, Socket } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Processes, stderrTail } from '../../bench/processes.ts'
import { eventually } from '../support/eventually.ts'
import { freePort } from '../support/ports.ts'

const bin = fileURLToPath(new URL('../../bin/shoal.js', import.meta.url))

interface Started { process: ChildProcess, peerId: string, addrs: string[] }
interface Run { status: number | null, stdout: string, stderr: string }
interface Status { members: Array<{ peerId: string, state: string, addrs: string[] }> }

/**
 * A TCP relay on 127.0.0.1 that forwards every connection to `target` and records every byte
 * both ways, one buffer per connection and direction, so a search never misses a value split
 * across chunks.
 */
class RecordingRelay {
  readonly streams: Array<{ chunks: Buffer[] }> = []
  target = 0
  private readonly server: Server = createServer(socket => { this.forward(socket) })
  private readonly sockets = new Set<Socket>()

  async listen (): Promise<number> {
    await new Promise<void>(resolve => this.server.listen(0, '127.0.0.1', resolve))
    return (this.server.address() as { port: number }).port
  }

  get port (): number {
    return (this.server.address() as { port: number }).port
  }

  get bytes (): number {
    return this.streams.reduce((sum, s) => sum + s.chunks.reduce((n, c) => n + c.length, 0), 0)
  }

  /** True if any connection carried `needle` in either direction. */
  contains (needle: Buffer): boolean {
    return this.streams.some(s => Buffer.concat(s.chunks).includes(needle))
  }

  async close (): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>(resolve => this.server.close(() => { resolve() }))
  }

  private forward (inbound: Socket): void {
    const outbound = connect(this.target, '127.0.0.1')
    for (const [from, to] of [[inbound, outbound], [outbound, inbound]] as const) {
      this.sockets.add(from)
      const stream = { chunks: [] as Buffer[] }
      this.streams.push(stream)
      from.on('data', (chunk: Buffer) => {
        stream.chunks.push(chunk)
        to.write(chunk)
      })
      from.on('error', () => { to.destroy() })
      from.on('close', () => {
        this.sockets.delete(from)
        to.destroy()
      })
    }
  }
}

describe('private networks: shoal start --psk', function () {
  this.timeout(240_000)
  const processes = new Processes()
  let root: string
  let key: string

  /** `shoal start ... --json`: resolves with its first stdout line. */
  async function start (dataDir: string, extra: string[] = []): Promise<Started> {
    const child = processes.spawn('node', [bin, 'start', '--data', dataDir, '--no-mdns', '--json', ...extra])
    const tail = stderrTail(child)
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve)
      child.once('exit', code => { reject(new Error(`shoal start exited with ${code}: ${tail()}`)) })
    })
    return { process: child, ...(JSON.parse(line) as { peerId: string, addrs: string[] }) }
  }

  /** One CLI command, asynchronously: the relays run in this process and must keep forwarding. */
  async function shoal (args: string[], env: Record<string, string> = {}): Promise<Run> {
    return await new Promise(resolve => {
      const child = execFile(process.execPath, [bin, ...args], { timeout: 60_000, env: { ...process.env, SHOAL_PSK: '', SHOAL_PEER: '', ...env } }, (err, stdout, stderr) => {
        resolve({ status: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr })
      })
      child.stdin?.end()
    })
  }

  async function status (peer: string, psk: string): Promise<Status | undefined> {
    const out = await shoal(['status', '--json', '--peer', peer, '--psk', psk])
    return out.status === 0 ? JSON.parse(out.stdout) as Status : undefined
  }

  async function upCount (peer: string, psk: string): Promise<number> {
    return (await status(peer, psk))?.members.filter(m => m.state === 'up').length ?? 0
  }

  /** One line on stderr: the command's name and what went wrong. */
  function oneLine (out: Run, what: string): string {
    const lines = out.stderr.trim().split('\n')
    assert.equal(lines.length, 1, `${what}: one line on stderr, got ${JSON.stringify(out.stderr)}`)
    return lines[0] as string
  }

  before(async () => {
    root = await processes.tempDir('shoal-pnet-')
    key = join(root, 'swarm.key')
    const out = await shoal(['psk', key])
    assert.equal(out.status, 0, out.stderr)
  })
  after(async () => { await processes.cleanup() })

  it('shoal psk writes a key file readable only by its owner and never overwrites one; a malformed or unreadable key file is exit 2 with one line, nothing started', async () => {
    assert.equal((await stat(key)).mode & 0o777, 0o600)
    const written = await readFile(key, 'utf8')
    assert.match(written, /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n?$/)
    const again = await shoal(['psk', key])
    assert.equal(again.status, 1)
    assert.match(oneLine(again, 'psk over an existing file'), /exists; not overwritten/)
    assert.equal(await readFile(key, 'utf8'), written, 'the existing key is untouched')
    const other = join(root, 'other.key')
    assert.equal((await shoal(['psk', other])).status, 0)
    assert.notEqual(await readFile(other, 'utf8'), written, 'each key is new')

    const bad = join(root, 'bad.key')
    await writeFile(bad, written.replace(/[0-9a-f]{64}/, 'zz'.repeat(32)))
    const peer = '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWJzDEfAi69C5V3Xqwt9keiVUrz7cv8fFYTREjcaQRLUgw'
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['get', 'k', '--peer', peer, '--psk', bad], {}, /key file .* is malformed: .*hex digits/],
      [['put', 'k', 'v', '--peer', peer], { SHOAL_PSK: bad }, /key file .* is malformed/],
      [['status', '--peer', peer, '--psk', join(root, 'missing.key')], {}, /cannot read key file .*ENOENT/],
      [['start', '--data', join(root, 'never'), '--psk', bad], {}, /key file .* is malformed/],
      [['start', '--data', join(root, 'never'), '--psk', root], {}, /cannot read key file/]
    ]
    for (const [args, env, message] of cases) {
      const out = await shoal(args, env)
      assert.equal(out.status, 2, `${args.join(' ')}: ${out.stderr}`)
      assert.match(oneLine(out, args.join(' ')), message)
    }
    await assert.rejects(stat(join(root, 'never')), { code: 'ENOENT' }, 'a node refused for its key creates no data directory')
  })

  it('nodes with the key form a cluster and replicate; without the key, or with another, a client can neither read nor write and a node cannot join', async () => {
    const other = join(root, 'other.key')
    const a = await start(join(root, 'a'), ['--listen', '/ip4/127.0.0.1/tcp/0', '--psk', key])
    const peer = a.addrs[0]!
    await start(join(root, 'b'), ['--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', peer, '--psk', key])
    // Started before f and bootstrapping from a like f: one without a key, one with another key.
    const c = await start(join(root, 'c'), ['--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', peer])
    const d = await start(join(root, 'd'), ['--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', peer, '--psk', other])
    const f = await start(join(root, 'f'), ['--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', peer, '--psk', key])
    await eventually('a, b and f see each other up', async () => await upCount(peer, key) === 3, 60_000, 500)

    const put = await shoal(['put', 'secret', 'kept', '--w', '3', '--json', '--peer', peer, '--psk', key])
    assert.equal(put.status, 0, put.stderr)
    const local = await shoal(['get', 'secret', '--local', '--data', join(root, 'f'), '--psk', key])
    assert.equal(local.stdout, 'kept\n', `f holds its replica: ${local.stderr}`)
    const viaEnv = await shoal(['get', 'secret', '--peer', peer], { SHOAL_PSK: key })
    assert.equal(viaEnv.stdout, 'kept\n', `$SHOAL_PSK is the default key: ${viaEnv.stderr}`)

    for (const [what, extra] of [['no key', []], ['another key', ['--psk', other]]] as const) {
      for (const args of [['put', 'intruder', 'x', '--w', '1'], ['get', 'secret'], ['delete', 'secret'], ['status']]) {
        const out = await shoal([...args, '--peer', peer, '--timeout', '3000', ...extra])
        assert.equal(out.status, 1, `${what}: ${args.join(' ')} fails: ${out.stderr}`)
        assert.match(oneLine(out, `${what}: ${args[0]}`), /UnreachableError: no bootstrap member could be reached .*private-network key/)
      }
    }
    const absent = await shoal(['get', 'intruder', '--r', '3', '--peer', peer, '--psk', key])
    assert.equal(absent.status, 3, `nothing was written by the clients without the key: ${absent.stdout}${absent.stderr}`)
    const still = await shoal(['get', 'secret', '--r', '3', '--peer', peer, '--psk', key])
    assert.equal(still.stdout, 'kept\n', 'the delete without the key deleted nothing')

    // f joined; c (no key) and d (another key), started before it, never did: each is alone.
    const members = (await status(peer, key))!.members.map(m => m.peerId)
    assert.equal(members.length, 3, `a knows a, b and f only: ${members.join(', ')}`)
    assert.ok(members.includes(f.peerId))
    for (const outsider of [c, d]) assert.ok(!members.includes(outsider.peerId), `${outsider.peerId} stayed out`)
    const alone = await shoal(['status', '--json', '--peer', c.addrs[0]!])
    assert.equal(alone.status, 0, alone.stderr)
    assert.deepEqual((JSON.parse(alone.stdout) as Status).members.map(m => m.peerId), [c.peerId], 'the node without the key is alone')
    assert.deepEqual((await status(d.addrs[0]!, other))?.members.map(m => m.peerId), [d.peerId], 'the node with another key is alone')
  })

  for (const withPsk of [false, true]) {
    it(`a value replicated between two nodes never crosses the loopback in plaintext (${withPsk ? 'pre-shared key: the handshake is hidden too' : 'noise alone'})`, async () => {
      const dir = await processes.tempDir('shoal-plaintext-')
      const psk = withPsk ? ['--psk', key] : []
      // Each node is reachable by the other only through its relay: it announces the relay's
      // address instead of its own, and its real port is known to nobody but the test.
      const relayA = new RecordingRelay()
      const relayB = new RecordingRelay()
      try {
        const [relayPortA, relayPortB] = [await relayA.listen(), await relayB.listen()]
        const [portA, portB] = [await freePort(), await freePort()]
        relayA.target = portA
        relayB.target = portB
        const common = ['--n', '2', '--r', '2', '--w', '2', ...psk]
        const a = await start(join(dir, 'a'), ['--listen', `/ip4/127.0.0.1/tcp/${portA}`, '--announce', `/ip4/127.0.0.1/tcp/${relayPortA}`, ...common])
        const b = await start(join(dir, 'b'), ['--listen', `/ip4/127.0.0.1/tcp/${portB}`, '--announce', `/ip4/127.0.0.1/tcp/${relayPortB}`,
          '--bootstrap', `/ip4/127.0.0.1/tcp/${relayPortA}/p2p/${a.peerId}`, ...common])
        const directA = `/ip4/127.0.0.1/tcp/${portA}/p2p/${a.peerId}`
        const directB = `/ip4/127.0.0.1/tcp/${portB}/p2p/${b.peerId}`
        const statusOf = async (peer: string): Promise<Status | undefined> => {
          const out = await shoal(['status', '--json', '--peer', peer, ...psk])
          return out.status === 0 ? JSON.parse(out.stdout) as Status : undefined
        }
        await eventually('a and b see each other up', async () => (await statusOf(directA))?.members.filter(m => m.state === 'up').length === 2, 60_000, 500)

        // 16 KiB of random hex: whatever crosses after the write must at least carry it, and any
        // 64-byte run of it in the recording would be a leak.
        const value = randomBytes(8192).toString('hex')
        const probe = `plaintext-probe-${randomBytes(8).toString('hex')}`
        const before = relayA.bytes + relayB.bytes
        // N = W = 2 with two members: the put is acknowledged only once b stored it.
        const put = await shoal(['put', probe, value, '--w', '2', '--peer', directA, ...psk])
        assert.equal(put.status, 0, put.stderr)
        const onB = await shoal(['get', probe, '--local', '--peer', directB, ...psk])
        assert.equal(onB.stdout, `${value}\n`, `b holds the value: ${onB.stderr}`)

        // The value went a -> b through a relay: a and b know each other only by relay addresses,
        // and neither process holds a TCP connection to the other's real port.
        const seen = await statusOf(directA)
        assert.deepEqual(seen?.members.find(m => m.peerId === b.peerId)?.addrs, [`/ip4/127.0.0.1/tcp/${relayPortB}/p2p/${b.peerId}`])
        const sockets = tcpConnections()
        const pidA = a.process.pid!
        const pidB = b.process.pid!
        assert.ok(!sockets.some(s => (s.pid === pidA && s.peerPort === portB) || (s.pid === pidB && s.peerPort === portA)), 'no direct connection between a and b')
        assert.ok(sockets.some(s => (s.pid === pidA && s.peerPort === relayPortB) || (s.pid === pidB && s.peerPort === relayPortA)), 'a and b are connected through a relay')

        const total = relayA.bytes + relayB.bytes
        assert.ok(total - before >= value.length, `the value crossed the relays after the write, in some form: ${total - before} bytes`)
        for (const relay of [relayA, relayB]) {
          for (let at = 0; at < value.length; at += 64) {
            assert.ok(!relay.contains(Buffer.from(value.slice(at, at + 64))), `no part of the value crosses in plaintext (bytes ${at}..${at + 63})`)
          }
          assert.ok(!relay.contains(Buffer.from(probe)), 'nor does its key')
        }
        // The recording does show what is in plaintext: without a key, the multistream-select and
        // noise protocol names before the handshake; with one, not even those.
        const handshake = relayA.contains(Buffer.from('/multistream/1.0.0')) || relayB.contains(Buffer.from('/multistream/1.0.0'))
        assert.equal(handshake, !withPsk, withPsk ? 'the pre-shared key hides the handshake' : 'the recording sees the plaintext handshake')
        console.log(`      relays carried ${total} bytes (${total - before} after the write)`)
        await processes.stop(a.process)
        await processes.stop(b.process)
      } finally {
        await relayA.close()
        await relayB.close()
      }
    })
  }
})


/** Established TCP connections on this host with their owning process (`ss -tnpH`). */
function tcpConnections (): Array<{ pid: number, peerPort: number }> {
  const out = spawnSync('ss', ['-tnpH', 'state', 'established'], { encoding: 'utf8' })
  if (out.status !== 0) throw new Error(`ss failed: ${out.stderr}`)
  const rows: Array<{ pid: number, peerPort: number }> = []
  for (const line of out.stdout.split('\n')) {
    const fields = line.trim().split(/\s+/)
    const peer = fields[3]
    if (peer === undefined) continue
    const peerPort = Number(peer.slice(peer.lastIndexOf(':') + 1))
    for (const match of line.matchAll(/pid=(\d+)/g)) rows.push({ pid: Number(match[1]), peerPort })
  }
  return rows
}
