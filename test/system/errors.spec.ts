import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Level } from 'level'
import { Processes } from '../../bench/processes.ts'
import { createClient } from '../../src/client.ts'
import type { ShoalClient } from '../../src/client.ts'
import { DEFAULT_PARTITIONS } from '../../src/core/ring.ts'
import { createNode } from '../../src/node.ts'
import type { ShoalNode } from '../../src/node.ts'
import { Store } from '../../src/store/store.ts'
import { eventually } from '../support/eventually.ts'
import { freePort } from '../support/ports.ts'

const bin = fileURLToPath(new URL('../../bin/shoal.js', import.meta.url))
const MAX_VALUE = 1024 * 1024

/** What the rows run against: a 3-node cluster (N = 3) in this process, a client, spare paths. */
interface Context {
  nodes: ShoalNode[]
  client: ShoalClient
  /** A member's multiaddr, for the CLI. */
  peer: string
  /** A multiaddr with a valid peer id where nothing listens. */
  deadPeer: string
  /** A regular file, a directory that is itself a LevelDB, one whose db/ holds another LevelDB. */
  file: string
  foreignLevel: string
  foreignDb: string
  /** A path that does not exist: a refused node must not create it. */
  fresh: () => string
  /** A malformed private-network key file and its bytes. */
  badKeyFile: string
  badKey: Uint8Array
}

/** An API call that must fail with `error` (the class name). */
interface ApiRow { readonly what: string, readonly api: (c: Context) => Promise<unknown>, readonly error: string, readonly absent?: string, readonly check?: (c: Context) => Promise<void> }
/** A CLI command that must exit with `exit` and say `stderr` in one line. */
interface CliRow { readonly what: string, readonly cli: (c: Context) => string[], readonly stdin?: string, readonly exit: 1 | 2 | 3, readonly stderr: RegExp, readonly absent?: string, readonly check?: (c: Context) => Promise<void> }
type Row = ApiRow | CliRow

const longKey = 'k'.repeat(1025)
let freshCount = 0
/** The last path c.fresh() handed out. */
let lastFresh = ''

/** Every path a refused node was given must still not exist: nothing was created. */
const notCreated = (path: () => string) => async (): Promise<void> => {
  await assert.rejects(stat(path()), { code: 'ENOENT' }, `${path()} was not created`)
}
/** The foreign directories hold what they held before: no peer.key, no node.json, no db/. */
const untouched = async (c: Context): Promise<void> => {
  assert.deepEqual((await readdir(c.foreignLevel)).filter(f => !/^(\d+\.log|CURRENT|LOCK|LOG|LOG\.old|MANIFEST-\d+)$/.test(f)), [], 'nothing added to the foreign LevelDB directory')
  assert.deepEqual((await readdir(c.foreignDb)).sort(), ['db'], 'nothing added beside the foreign db/')
}

const ROWS: readonly Row[] = [
  // Keys
  { what: 'node.put with an empty key', api: async c => await c.nodes[0]!.put('', 'v'), error: 'InvalidArgumentError' },
  { what: 'client.put with an empty key', api: async c => await c.client.put(new Uint8Array(0), 'v'), error: 'InvalidArgumentError' },
  { what: 'node.put with a 1025-byte key', api: async c => await c.nodes[0]!.put(longKey, 'v'), error: 'InvalidArgumentError' },
  { what: 'client.put with a 1025-byte key', api: async c => await c.client.put(longKey, 'v'), error: 'InvalidArgumentError' },
  { what: 'client.get with a 1025-byte key', api: async c => await c.client.get(longKey), error: 'InvalidArgumentError' },
  { what: 'shoal put with an empty key', cli: c => ['put', '', 'v', '--peer', c.peer], exit: 2, stderr: /key must be 1 to 1024 bytes/ },
  { what: 'shoal put with a 1025-byte key', cli: c => ['put', longKey, 'v', '--peer', c.peer], exit: 2, stderr: /key must be 1 to 1024 bytes/ },
  // Values
  { what: 'node.put of maxValueBytes + 1', api: async c => await c.nodes[0]!.put('big', new Uint8Array(MAX_VALUE + 1)), error: 'InvalidArgumentError', absent: 'big' },
  { what: 'client.put of maxValueBytes + 1 (the member refuses it)', api: async c => await c.client.put('big', new Uint8Array(MAX_VALUE + 1)), error: 'InvalidArgumentError', absent: 'big' },
  { what: 'client.put of more than any member takes (16 MiB + 1)', api: async c => await c.client.put('big', new Uint8Array(16 * 1024 * 1024 + 1)), error: 'InvalidArgumentError', absent: 'big' },
  { what: 'shoal put of maxValueBytes + 1 on stdin', cli: c => ['put', 'big', '--peer', c.peer], stdin: 'x'.repeat(MAX_VALUE + 1), exit: 2, stderr: /value is 1048577 bytes, the limit is 1048576/, absent: 'big' },
  // Contexts
  { what: 'node.put with a malformed context', api: async c => await c.nodes[0]!.put('ctx', 'v', { context: 'not a context!' }), error: 'InvalidContextError', absent: 'ctx' },
  { what: 'client.put with a malformed context', api: async c => await c.client.put('ctx', 'v', { context: 'AAAA' }), error: 'InvalidContextError', absent: 'ctx' },
  { what: 'client.delete with a malformed context', api: async c => await c.client.delete('ctx', { context: '%%%' }), error: 'InvalidContextError', absent: 'ctx' },
  { what: 'shoal put with a malformed context', cli: c => ['put', 'ctx', 'v', '--context', 'garbage!', '--peer', c.peer], exit: 2, stderr: /context/, absent: 'ctx' },
  // Quorums
  { what: 'node.put with W = 0', api: async c => await c.nodes[0]!.put('quorum', 'v', { w: 0 }), error: 'InvalidArgumentError', absent: 'quorum' },
  { what: 'node.put with W = N + 1', api: async c => await c.nodes[0]!.put('quorum', 'v', { w: 4 }), error: 'InvalidArgumentError', absent: 'quorum' },
  { what: 'node.get with R = 0', api: async c => await c.nodes[0]!.get('quorum', { r: 0 }), error: 'InvalidArgumentError' },
  { what: 'client.put with W = N + 1', api: async c => await c.client.put('quorum', 'v', { w: 4 }), error: 'InvalidArgumentError', absent: 'quorum' },
  { what: 'client.put with W = 0 (0 on the wire would mean the default)', api: async c => await c.client.put('quorum', 'v', { w: 0 }), error: 'InvalidArgumentError', absent: 'quorum' },
  { what: 'client.get with R = 0', api: async c => await c.client.get('quorum', { r: 0 }), error: 'InvalidArgumentError' },
  { what: 'client.delete with W = 0', api: async c => await c.client.delete('quorum', { w: 0 }), error: 'InvalidArgumentError', absent: 'quorum' },
  { what: 'client.get with R = N + 1', api: async c => await c.client.get('quorum', { r: 4 }), error: 'InvalidArgumentError' },
  { what: 'createNode with R = 0', api: async c => await createNode({ dataDir: c.fresh(), r: 0 }), error: 'InvalidArgumentError', check: notCreated(() => lastFresh) },
  { what: 'createNode with W above N', api: async c => await createNode({ dataDir: c.fresh(), n: 2, w: 3 }), error: 'InvalidArgumentError', check: notCreated(() => lastFresh) },
  { what: 'shoal put --w 0', cli: c => ['put', 'quorum', 'v', '--w', '0', '--peer', c.peer], exit: 2, stderr: /--w takes an integer/, absent: 'quorum' },
  { what: 'shoal put --w 4 (N is 3)', cli: c => ['put', 'quorum', 'v', '--w', '4', '--peer', c.peer], exit: 2, stderr: /w must be an integer from 1 to 3 \(N\), got 4/, absent: 'quorum' },
  { what: 'shoal get --r 4 (N is 3)', cli: c => ['get', 'quorum', '--r', '4', '--peer', c.peer], exit: 2, stderr: /r must be an integer from 1 to 3 \(N\), got 4/ },
  { what: 'shoal start --r 3 --n 2', cli: c => ['start', '--data', c.fresh(), '--n', '2', '--r', '3'], exit: 2, stderr: /--r takes an integer from 1 to 2/, check: notCreated(() => lastFresh) },
  // Flags
  { what: 'shoal put with an unknown flag', cli: c => ['put', 'flags', 'v', '--bogus', '--peer', c.peer], exit: 2, stderr: /Unknown option '--bogus'/, absent: 'flags' },
  { what: 'shoal start with an unknown flag', cli: c => ['start', '--data', c.fresh(), '--replicas', '3'], exit: 2, stderr: /Unknown option '--replicas'/, check: notCreated(() => lastFresh) },
  { what: 'shoal put with a flag missing its value', cli: () => ['put', 'flags', 'v', '--peer'], exit: 2, stderr: /--peer/, absent: 'flags' },
  { what: 'an unknown command', cli: () => ['frobnicate'], exit: 2, stderr: /unknown command "frobnicate"/ },
  // Addresses
  { what: 'createNode with a bootstrap address that is not a multiaddr', api: async c => await createNode({ dataDir: c.fresh(), bootstrap: ['tcp://127.0.0.1:4001'] }), error: 'InvalidArgumentError', check: notCreated(() => lastFresh) },
  { what: 'createNode with a UDP listen address', api: async c => await createNode({ dataDir: c.fresh(), listen: ['/ip4/127.0.0.1/udp/4001'] }), error: 'InvalidArgumentError', check: notCreated(() => lastFresh) },
  { what: 'createClient with a bad multiaddr', api: async () => await createClient({ bootstrap: ['/ip4/1.2.3/tcp/1/p2p/12D3KooWJzDEfAi69C5V3Xqwt9keiVUrz7cv8fFYTREjcaQRLUgw'] }), error: 'InvalidArgumentError' },
  { what: 'shoal get --peer with a bad multiaddr', cli: () => ['get', 'k', '--peer', '/ip4/1.2.3/tcp/1'], exit: 2, stderr: /is not a multiaddr/ },
  { what: 'shoal start --bootstrap with a bad multiaddr', cli: c => ['start', '--data', c.fresh(), '--bootstrap', 'nonsense'], exit: 2, stderr: /is not a multiaddr/, check: notCreated(() => lastFresh) },
  { what: 'shoal start --listen on UDP', cli: c => ['start', '--data', c.fresh(), '--listen', '/ip4/127.0.0.1/udp/4001'], exit: 2, stderr: /is not a TCP address/, check: notCreated(() => lastFresh) },
  // Unreachable peers
  { what: 'createClient with an unreachable member', api: async c => await createClient({ bootstrap: [c.deadPeer], timeoutMs: 5000 }), error: 'UnreachableError' },
  { what: 'shoal put to an unreachable peer', cli: c => ['put', 'unreachable', 'v', '--peer', c.deadPeer, '--timeout', '5000'], exit: 1, stderr: /UnreachableError: no bootstrap member could be reached/, absent: 'unreachable' },
  { what: 'shoal status of an unreachable peer', cli: c => ['status', '--peer', c.deadPeer, '--timeout', '5000'], exit: 1, stderr: /UnreachableError/ },
  // Data directories
  { what: 'createNode on a regular file', api: async c => await createNode({ dataDir: c.file }), error: 'NotADataDirectoryError' },
  { what: 'createNode on a directory that is itself a LevelDB', api: async c => await createNode({ dataDir: c.foreignLevel, listen: ['/ip4/127.0.0.1/tcp/0'] }), error: 'NotADataDirectoryError', check: untouched },
  { what: 'createNode on a directory whose db/ holds another program\'s LevelDB', api: async c => await createNode({ dataDir: c.foreignDb, listen: ['/ip4/127.0.0.1/tcp/0'] }), error: 'NotADataDirectoryError', check: untouched },
  { what: 'shoal start --data on a regular file', cli: c => ['start', '--data', c.file, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'], exit: 1, stderr: /NotADataDirectoryError: .* is a file/ },
  { what: 'shoal start --data on another program\'s LevelDB', cli: c => ['start', '--data', c.foreignDb, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'], exit: 1, stderr: /NotADataDirectoryError: .*did not write/, check: untouched },
  { what: 'shoal get --data on a regular file (no node to talk to)', cli: c => ['get', 'k', '--data', c.file], exit: 2, stderr: /no node to talk to/ },
  // Private-network keys
  { what: 'createNode with a malformed key', api: async c => await createNode({ dataDir: c.fresh(), psk: c.badKey }), error: 'InvalidArgumentError', check: notCreated(() => lastFresh) },
  { what: 'createClient with a malformed key', api: async c => await createClient({ bootstrap: [c.peer], psk: c.badKey }), error: 'InvalidArgumentError' },
  { what: 'shoal put --psk with a malformed key file', cli: c => ['put', 'psk', 'v', '--peer', c.peer, '--psk', c.badKeyFile], exit: 2, stderr: /key file .* is malformed/, absent: 'psk' },
  // Not found is its own exit code, not a failure
  { what: 'shoal get of a key never written', cli: c => ['get', 'never-written', '--peer', c.peer], exit: 3, stderr: /"never-written" not found/ }
]

describe('bad input to the API and the CLI: a typed error or exit code, one line, nothing written', function () {
  this.timeout(120_000)
  const processes = new Processes()
  const context = {} as Context
  let root: string

  before(async () => {
    root = await processes.tempDir('shoal-errors-')
    const nodes: ShoalNode[] = []
    context.nodes = nodes
    for (const name of ['a', 'b', 'c']) {
      const first = nodes[0]
      nodes.push(await createNode({ dataDir: join(root, name), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: first === undefined ? [] : [first.addrs[0]!] }))
    }
    await eventually('three members up everywhere', () => nodes.every(n => n.status().members.filter(m => m.state === 'up').length === 3), 30_000)
    context.peer = nodes[0]!.addrs[0]!
    context.client = await createClient({ bootstrap: [context.peer] })
    context.deadPeer = `/ip4/127.0.0.1/tcp/${await freePort()}/p2p/${nodes[0]!.peerId}`
    context.file = join(root, 'a-file')
    await writeFile(context.file, 'not a data directory\n')
    context.foreignLevel = join(root, 'foreign-level')
    await foreignLevelDb(context.foreignLevel)
    context.foreignDb = join(root, 'foreign-db')
    await mkdir(context.foreignDb)
    await foreignLevelDb(join(context.foreignDb, 'db'))
    context.fresh = () => {
      lastFresh = join(root, `fresh-${++freshCount}`)
      return lastFresh
    }
    context.badKeyFile = join(root, 'bad.key')
    context.badKey = new TextEncoder().encode('/key/swarm/psk/1.0.0/\n/base16/\n1234')
    await writeFile(context.badKeyFile, context.badKey)
  })

  after(async () => {
    await context.client?.stop()
    for (const node of context.nodes ?? []) await node.stop()
    await processes.cleanup()
  })

  for (const row of ROWS) {
    it('api' in row ? `${row.what}: ${row.error}` : `${row.what}: exit ${row.exit}, one line`, async () => {
      if ('api' in row) {
        await assert.rejects(row.api(context), (err: Error) => {
          assert.equal(err.name, row.error, `${err.name}: ${err.message}`)
          assert.ok(err.message.length > 0 && !err.message.includes('\n'), `a clear one-line message: ${err.message}`)
          return true
        })
      } else {
        const out = await shoal(row.cli(context), row.stdin)
        assert.equal(out.status, row.exit, `exit code; stderr: ${out.stderr}`)
        // Exactly one line says what is wrong; a usage error (exit 2) may add the usage line.
        const lines = out.stderr.trim().split('\n').filter(line => !(row.exit === 2 && line.startsWith('usage: shoal')))
        assert.equal(lines.length, 1, `one line on stderr: ${JSON.stringify(out.stderr)}`)
        assert.match(lines[0]!, /^shoal( [a-z]+)?: /)
        assert.match(lines[0]!, row.stderr)
      }
      if (row.absent !== undefined) assert.equal(await context.nodes[1]!.get(row.absent, { r: 3 }), undefined, `${row.absent} was not written`)
      await row.check?.(context)
    })
  }

  it('nothing the table sent was stored or hinted on any member (and the check sees a write that did happen)', async () => {
    const control = 'control-write'
    await context.nodes[0]!.put(control, 'written on purpose', { w: 3 })
    await context.client.stop()
    for (const node of context.nodes) await node.stop()
    for (const name of ['a', 'b', 'c']) {
      const store = await Store.open(join(root, name), { partitions: DEFAULT_PARTITIONS })
      try {
        assert.deepEqual(await store.heldPartitions(), [store.partitionOf(new TextEncoder().encode(control))], `${name} holds the control write and nothing else`)
        assert.equal(await store.hintCount(), 0, `${name} holds no hints`)
      } finally {
        await store.close()
      }
    }
    context.nodes = []
  })
})

/** One CLI command, asynchronously: the nodes run in this process and must keep answering. */
async function shoal (args: string[], stdin = ''): Promise<{ status: number | null, stdout: string, stderr: string }> {
  return await new Promise(resolve => {
    const child = execFile(process.execPath, [bin, ...args], { timeout: 60_000, maxBuffer: 4 * 1024 * 1024, env: { ...process.env, SHOAL_PEER: '', SHOAL_PSK: '' } }, (err, stdout, stderr) => {
      resolve({ status: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr })
    })
    child.stdin?.end(stdin)
  })
}

/** A LevelDB some other program wrote. */
async function foreignLevelDb (path: string): Promise<void> {
  const db = new Level<string, string>(path)
  await db.open()
  await db.put('their-key', 'their value')
  await db.close()
}

