import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { commandNames } from '../../src/cli/main.ts'
import { eventually } from '../support/eventually.ts'
import { freePort } from '../support/ports.ts'

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

/** The environment of every command: no peer, key or colour settings inherited from whoever runs the tests. */
function cleanEnv (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SHOAL_PEER: '', SHOAL_PSK: '' }
  delete env.FORCE_COLOR
  delete env.NO_COLOR
  return { ...env, ...extra }
}

interface Run { status: number | null, stdout: string, stderr: string }

/** Runs one CLI command to completion. */
function shoal (...args: string[]): Run {
  return shoalWith({}, ...args)
}

function shoalWith (options: { env?: NodeJS.ProcessEnv, uid?: number, gid?: number }, ...args: string[]): Run {
  const result = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8', timeout: 60_000, input: '', env: cleanEnv(options.env), ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.gid })
  })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

/** A failure's stderr: exactly one line, `shoal: ` first. */
function oneLine (out: Run, what: string): string {
  const lines = out.stderr.split('\n').filter(l => l !== '')
  assert.equal(lines.length, 1, `${what}: one line on stderr, got ${JSON.stringify(out.stderr)}`)
  assert.match(lines[0]!, /^shoal: /, what)
  return lines[0]!
}

/** A peer ID as `shoal status` shows it: 12D3… and its tail. */
function short (peerId: string): string {
  return `12D3…${peerId.slice(-6)}`
}

/** The table rows of `shoal status` output, by the member's short ID. */
function statusRows (stdout: string): Map<string, string> {
  const lines = stdout.split('\n')
  const header = lines.findIndex(l => l.startsWith('MEMBER'))
  assert.ok(header >= 0, `a table: ${stdout}`)
  const rows = new Map<string, string>()
  for (const line of lines.slice(header + 1)) {
    if (line === '') break
    rows.set(line.split(/\s+/)[0]!, line)
  }
  return rows
}

async function stopProcess (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
  child.kill(signal)
  return await exited
}

describe('shoal processes driven by the CLI', function () {
  // Generous: a 2-core machine running other suites takes over 100 s for the leave test alone.
  this.timeout(300_000)
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

  it('bad arguments are usage errors: one line that says what is wrong, exit 2, nothing started', () => {
    const cases: Array<[string[], RegExp]> = [
      [['put'], /put takes 1 to 2 arguments, got 0; usage: shoal put KEY/],
      [['get', 'a', 'b'], /get takes 1 argument, got 2 \("b" too many\)/],
      [['put', 'k', 'v', '--bogus'], /Unknown option '--bogus' for shoal put; shoal help put lists its options/],
      [['get', 'k', '--r', 'x'], /--r takes an integer from 1 to 16, got "x"/],
      [['start', '--bootstrap', 'not-a-multiaddr', '--data', join(root, 'never')], /"not-a-multiaddr" is not a multiaddr/],
      [['get', 'k', '--peer', 'nonsense'], /is not a multiaddr/],
      [['put', 'k', '-5'], /Unknown option '-5' for shoal put; to pass an argument that starts with -, put it after --/]
    ]
    for (const [args, message] of cases) {
      const out = shoal(...args)
      assert.equal(out.status, 2, `${args.join(' ')}: ${out.stderr}`)
      assert.match(oneLine(out, args.join(' ')), message)
      assert.equal(out.stdout, '', 'nothing on stdout')
    }
    assert.equal(shoal('put', 'k', '--', '-5', '--peer', '/ip4/127.0.0.1/tcp/1').status, 2, 'after --, -5 is a value (and --peer one too many arguments)')
  })

  it('a mistyped command or option: exit 2 and the closest valid one; an option of another command says which', () => {
    const cases: Array<[string[], RegExp]> = [
      [['stauts'], /^shoal: unknown command "stauts"; did you mean shoal status\?$/],
      [['dleete', 'k'], /did you mean shoal delete\?/],
      [['frobnicate'], /^shoal: unknown command "frobnicate"; shoal help lists the commands$/],
      [['help', 'sttaus'], /unknown command "sttaus"; did you mean shoal status\?/],
      [['get', 'k', '--lcoal'], /^shoal: Unknown option '--lcoal' for shoal get; did you mean --local\?$/],
      [['status', '--jsno'], /did you mean --json\?/],
      [['start', '--bootstrp', '/ip4/127.0.0.1/tcp/1', '--data', join(root, 'never')], /did you mean --bootstrap\?/],
      [['get', 'k', '--w', '2'], /Unknown option '--w' for shoal get: --w is an option of shoal [a-z, ]*\bput\b/],
      [['--peer', '/ip4/127.0.0.1/tcp/1', 'status'], /the command comes first: shoal <command> \[options\]/]
    ]
    for (const [args, message] of cases) {
      const out = shoal(...args)
      assert.equal(out.status, 2, `${args.join(' ')}: ${out.stderr}`)
      assert.match(oneLine(out, args.join(' ')), message)
    }
    const bare = shoal()
    assert.equal(bare.status, 2, 'no command is a usage error')
    assert.match(bare.stderr, /^usage: shoal <command>/, 'with the overview, on stderr')
  })

  it('--help for every command: usage, options and examples, exit 0, also as shoal help COMMAND and whatever else is on the line', () => {
    const names = commandNames()
    for (const name of ['start', 'put', 'get', 'delete', 'status', 'leave', 'remove', 'dev', 'psk']) assert.ok(names.includes(name), name)
    for (const name of names) {
      for (const args of [[name, name === 'get' ? '-h' : '--help'], ['help', name]]) {
        const out = shoal(...args)
        assert.equal(out.status, 0, `${args.join(' ')}: ${out.stderr}`)
        assert.equal(out.stderr, '')
        assert.match(out.stdout, new RegExp(`^usage: shoal ${name}\\b`), args.join(' '))
        const examples = out.stdout.split('\nexamples:\n')[1] ?? ''
        assert.match(examples, new RegExp(`^  .*shoal ${name}\\b`, 'm'), `${args.join(' ')} shows an example of ${name}`)
        assert.match(out.stdout, /\nexit codes: 0 success, 1 the operation failed, 2 usage error, 3 not found\n$/)
      }
    }
    const mixed = shoal('put', '--bogus', '--help')
    assert.equal(mixed.status, 0, 'whoever asks for help gets it, a wrong option beside it included')
    assert.match(mixed.stdout, /^usage: shoal put KEY/)
    for (const args of [['--help'], ['-h'], ['help']]) {
      const out = shoal(...args)
      assert.equal(out.status, 0)
      for (const name of names) assert.match(out.stdout, new RegExp(`^\\s+shoal ${name}\\b`, 'm'), `${args.join(' ')} lists ${name}`)
    }
    assert.match(shoal('--version').stdout, /^shoal \d+\.\d+\.\d+\n$/)
  })

  it('shoal status is a table with every member and its state (coloured only when asked), --wide has full IDs, --json is unchanged', async () => {
    const nodes: Started[] = []
    for (const name of ['st-a', 'st-b', 'st-c']) {
      const node = await start(join(root, name), nodes[0] === undefined ? [] : ['--bootstrap', nodes[0].addrs[0]!])
      running.push(node.process)
      nodes.push(node)
    }
    const peer = nodes[0]!.addrs[0]!
    await eventually('three members up', () => {
      const out = shoal('status', '--json', '--peer', peer)
      return out.status === 0 && (JSON.parse(out.stdout) as { members: Array<{ state: string }> }).members.filter(m => m.state === 'up').length === 3
    }, 30_000, 300)

    const table = shoal('status', '--peer', peer)
    assert.equal(table.status, 0, table.stderr)
    assert.doesNotMatch(table.stdout, /\u001b\[/, 'no colour into a pipe')
    assert.match(table.stdout, /^cluster shoal, N=3 R=2 W=2: 3 members \(3 up\)$/m)
    assert.match(table.stdout, /^MEMBER\s+STATE\s+PARTITIONS\s+ADDRESS$/m)
    const rows = statusRows(table.stdout)
    assert.equal(rows.size, 3, table.stdout)
    for (const node of nodes) {
      const row = rows.get(short(node.peerId))
      assert.ok(row !== undefined, `${node.peerId} has a row: ${table.stdout}`)
      const port = /\/tcp\/(\d+)/.exec(node.addrs[0]!)![1]!
      assert.match(row, new RegExp(`\\sup\\s+\\d+ \\(100%\\)\\s+/ip4/127\\.0\\.0\\.1/tcp/${port}$`), row)
    }
    assert.match(rows.get(short(nodes[0]!.peerId))!, /^\S+ \*/, 'the member answering is marked')

    const wide = shoal('status', '--wide', '--peer', peer)
    for (const node of nodes) assert.ok(wide.stdout.includes(node.addrs[0]!), `--wide shows ${node.addrs[0]} whole, dialable`)
    const colored = shoalWith({ env: { FORCE_COLOR: '1' } }, 'status', '--peer', peer)
    assert.equal((colored.stdout.match(/\u001b\[32mup\u001b\[39m/g) ?? []).length, 5, 'each up state green: 3 rows, the tally and the answering node')
    assert.doesNotMatch(shoalWith({ env: { FORCE_COLOR: '1', NO_COLOR: '1' } }, 'status', '--peer', peer).stdout, /\u001b\[/, 'NO_COLOR wins')
    const json = JSON.parse(shoal('status', '--json', '--peer', peer).stdout) as { peerId: string, members: Array<{ peerId: string, state: string, addrs: string[], partitions: number }>, hintsPending: number }
    assert.equal(json.peerId, nodes[0]!.peerId)
    assert.deepEqual(json.members.map(m => m.peerId).sort(), nodes.map(n => n.peerId).sort())

    const killed = nodes[2]!
    await stopProcess(killed.process, 'SIGKILL')
    await eventually('the killed member shows as down in the table', () => {
      const out = shoal('status', '--peer', peer)
      return out.status === 0 && /\sdown\s/.test(statusRows(out.stdout).get(short(killed.peerId)) ?? '')
    }, 60_000, 500)
    const after = shoal('status', '--peer', peer)
    assert.match(after.stdout, /3 members \(2 up, 1 down\)/)
    for (const node of nodes.slice(0, 2)) assert.match(statusRows(after.stdout).get(short(node.peerId)) ?? '', /\sup\s/)
    for (const node of nodes.slice(0, 2)) await stopProcess(node.process)
  })

  it('shoal dev shows each node as it starts and what to try next on stderr; stdout keeps the JSON; Ctrl-C stops it', async () => {
    const data = join(root, 'dev')
    const child = spawn(process.execPath, [bin, 'dev', '--nodes', '2', '--data', data, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() })
    running.push(child)
    let stderr = ''
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    await eventually('the summary is printed', () => stderr.includes('Ctrl-C stops it') || child.exitCode !== null, 60_000)
    assert.equal(child.exitCode, null, stderr)
    const info = JSON.parse(stdout.trim()) as { peer: string, nodes: Array<{ peerId: string, addrs: string[], dataDir: string }> }
    assert.equal(info.nodes.length, 2)
    for (const [i, node] of info.nodes.entries()) {
      const port = /\/tcp\/(\d+)/.exec(node.addrs[0]!)![1]!
      assert.match(stderr, new RegExp(`^starting node ${i + 1}/2 \\.\\.\\. up \\(${short(node.peerId)}, /ip4/127\\.0\\.0\\.1/tcp/${port}, \\d+\\.\\d s\\)$`, 'm'))
      assert.equal(node.dataDir, join(data, 'dev', `node-${i + 1}`))
    }
    assert.match(stderr, /^waiting for the members to see each other \.\.\. 2 of 2 up on every node/m)
    assert.ok(stderr.includes(`  export SHOAL_PEER=${info.peer}\n`), stderr)
    for (const next of ['npx shoal put greeting hello', 'npx shoal get greeting', 'npx shoal status', 'npx shoal help']) assert.ok(stderr.includes(next), next)

    // The commands it suggests work, with SHOAL_PEER as it says.
    const env = { SHOAL_PEER: info.peer }
    assert.equal(shoalWith({ env }, 'put', 'greeting', 'hello').status, 0)
    assert.equal(shoalWith({ env }, 'get', 'greeting').stdout, 'hello\n')
    assert.equal(statusRows(shoalWith({ env }, 'status').stdout).size, 2)

    const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
    child.kill('SIGINT')
    assert.equal(await exited, 0)
    assert.match(stderr, /\nstopping 2 nodes \.\.\. done\n$/)
  })

  describe('errors that say what to do next: one line, exit 1', () => {
    it('an unreachable node: is it running, and where its address came from', async () => {
      const peerId = '12D3KooWJzDEfAi69C5V3Xqwt9keiVUrz7cv8fFYTREjcaQRLUgw'
      const dead = `/ip4/127.0.0.1/tcp/${await freePort()}/p2p/${peerId}`
      const viaFlag = shoal('status', '--peer', dead, '--timeout', '3000')
      assert.equal(viaFlag.status, 1, viaFlag.stderr)
      assert.match(oneLine(viaFlag, '--peer'), /^shoal: UnreachableError: no bootstrap member could be reached .*ECONNREFUSED.*; nothing is listening at that address \(from --peer\): is the node running\? `shoal status` on a running member lists every member's address$/)
      const viaEnv = shoalWith({ env: { SHOAL_PEER: dead } }, 'get', 'k', '--timeout', '3000')
      assert.equal(viaEnv.status, 1)
      assert.match(oneLine(viaEnv, '$SHOAL_PEER'), /from \$SHOAL_PEER: it may name a node or a `shoal dev` cluster that has stopped/)
    })

    it('a port in use: which address, and to choose another --listen; nothing keeps running', async () => {
      const server = createServer()
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
      try {
        const port = (server.address() as { port: number }).port
        const out = shoal('start', '--data', join(root, 'port'), '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--no-mdns')
        assert.equal(out.status, 1, out.stderr)
        assert.equal(oneLine(out, 'port in use'), `shoal: cannot listen on /ip4/127.0.0.1/tcp/${port}: the port is in use (another shoal node?); choose another --listen, e.g. /ip4/127.0.0.1/tcp/0 for any free port`)
      } finally {
        await new Promise(resolve => server.close(resolve))
      }
    })

    it('a quorum that cannot be met: how many answered, and that a lower --w would do', async () => {
      const node = await start(join(root, 'quorum'))
      running.push(node.process)
      const peer = node.addrs[0]!
      const out = shoal('put', 'k', 'v', '--w', '2', '--peer', peer)
      assert.equal(out.status, 1, out.stderr)
      assert.match(oneLine(out, 'quorum'), /^shoal: QuorumError: put needed 2 of 1 replicas, 0 acknowledged; only 1 replica is in the cluster for this key: start more nodes, or lower --w to 1$/)
      assert.equal(shoal('put', 'k', 'v', '--w', '1', '--peer', peer).status, 0, 'the advice works')
      const read = shoal('get', 'k', '--r', '2', '--peer', peer)
      assert.equal(read.status, 1)
      assert.match(oneLine(read, 'read quorum'), /lower --r to 1$/)
      await stopProcess(node.process)
    })

    it('the wrong private-network key: check --psk', async () => {
      const key = join(root, 'right.key')
      const other = join(root, 'other.key')
      assert.equal(shoal('psk', key).status, 0)
      assert.equal(shoal('psk', other).status, 0)
      const node = await start(join(root, 'pnet'), ['--psk', key])
      running.push(node.process)
      const out = shoal('status', '--peer', node.addrs[0]!, '--psk', other, '--timeout', '3000')
      assert.equal(out.status, 1, out.stderr)
      assert.match(oneLine(out, 'wrong key'), /; check that --psk FILE \(or \$SHOAL_PSK\) is the key file the cluster's nodes were started with/)
      assert.equal(shoal('status', '--peer', node.addrs[0]!, '--psk', key).status, 0, 'the right key works')
      await stopProcess(node.process)
    })

    it('a data directory it may not write: which, and what to do; nothing is left running or written', async function () {
      // Root writes anywhere: run the command as nobody (uid 65534) in a directory only root may write.
      const asRoot = process.getuid?.() === 0
      const parent = join(root, 'perm')
      await mkdir(parent, { recursive: true })
      await chmod(root, 0o755)
      const locked = join(parent, 'locked')
      await mkdir(locked)
      await chmod(parent, 0o755)
      await chmod(locked, 0o555)
      try {
        const out = shoalWith(asRoot ? { uid: 65534, gid: 65534 } : {}, 'start', '--data', locked, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns')
        assert.equal(out.status, 1, out.stderr)
        assert.match(oneLine(out, 'permission'), new RegExp(`^shoal: cannot write the data directory ${locked.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: permission denied on \\S+; run shoal as a user who may write there, fix its owner or mode \\(chown, chmod\\), or choose another --data DIR$`))
        assert.deepEqual(await readdir(locked), [], 'nothing written')
      } finally {
        await chmod(locked, 0o755)
      }
    })
  })
})
