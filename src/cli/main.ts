import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { ParseArgsConfig } from 'node:util'
import { multiaddr } from '@multiformats/multiaddr'
import { createClient } from '../client.ts'
import type { ShoalClient } from '../client.ts'
import { generatePsk, parsePsk } from '../net/psk.ts'
import { createNode } from '../node.ts'
import type { GetResult, NodeStatus, ShoalNode } from '../node.ts'

/** Exit codes, part of the command's contract with scripts. */
export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3 } as const

const DEFAULT_DATA = './shoal-data'
/** The longest interval or grace period a flag takes: about 24 days, the most a timer holds. */
const MAX_INTERVAL_MS = 2 ** 31 - 1

/** A usage error: one line and the usage, exit 2, nothing sent. */
class UsageError extends Error {
  override name = 'UsageError'
}

/** A private-network key file that cannot be read or is malformed: one line, exit 2, nothing sent. */
class KeyFileError extends Error {
  override name = 'KeyFileError'
}

/** The largest key file read: a real one is 95 bytes; anything far larger is the wrong file. */
const MAX_KEY_FILE_BYTES = 4096

type Options = NonNullable<ParseArgsConfig['options']>

const COMMON: Options = {
  peer: { type: 'string' },
  data: { type: 'string' },
  json: { type: 'boolean', default: false },
  timeout: { type: 'string' },
  cluster: { type: 'string' },
  psk: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false }
}

interface Command {
  readonly synopsis: string
  readonly summary: string
  readonly options: Options
  readonly positionals: [min: number, max: number]
  readonly run: (args: Args) => Promise<number>
}

interface Args {
  readonly values: Record<string, string | boolean | Array<string | boolean> | undefined>
  readonly positionals: string[]
}

const COMMANDS: Record<string, Command> = {
  start: {
    synopsis: 'start [--data DIR] [--listen MULTIADDR]... [--announce MULTIADDR]... [--bootstrap MULTIADDR]... [--cluster NAME] [--psk FILE] [--mdns | --no-mdns] [--n 3] [--r 2] [--w 2] [--weight 1] [--anti-entropy-interval MS] [--handoff-interval MS] [--tombstone-grace MS] [--json]',
    summary: 'run a node until SIGINT or SIGTERM, or until it has left the cluster',
    options: {
      'anti-entropy-interval': { type: 'string' },
      'handoff-interval': { type: 'string' },
      'tombstone-grace': { type: 'string' },
      listen: { type: 'string', multiple: true },
      announce: { type: 'string', multiple: true },
      bootstrap: { type: 'string', multiple: true },
      mdns: { type: 'boolean' },
      'no-mdns': { type: 'boolean' },
      n: { type: 'string' },
      r: { type: 'string' },
      w: { type: 'string' },
      weight: { type: 'string' }
    },
    positionals: [0, 0],
    run: start
  },
  put: {
    synopsis: 'put KEY [VALUE] [--context CTX] [--w W]',
    summary: 'write a value (read from stdin when VALUE is omitted)',
    options: { context: { type: 'string' }, w: { type: 'string' } },
    positionals: [1, 2],
    run: put
  },
  get: {
    synopsis: 'get KEY [--r R] [--local]',
    summary: 'read every sibling of a key and its context (exit 3 when missing)',
    options: { r: { type: 'string' }, local: { type: 'boolean', default: false } },
    positionals: [1, 1],
    run: get
  },
  delete: {
    synopsis: 'delete KEY [--context CTX] [--w W]',
    summary: 'delete a key (a tombstone under a context)',
    options: { context: { type: 'string' }, w: { type: 'string' } },
    positionals: [1, 1],
    run: del
  },
  status: {
    synopsis: 'status',
    summary: 'members, their state and partitions, hints pending',
    options: {},
    positionals: [0, 0],
    run: status
  },
  leave: {
    synopsis: 'leave [--wait MS]',
    summary: 'hand this node\'s data to the others and take it out of the ring (waits until done)',
    options: { wait: { type: 'string' } },
    positionals: [0, 0],
    run: leave
  },
  remove: {
    synopsis: 'remove PEER_ID',
    summary: 'take a member that is gone for good out of the ring',
    options: {},
    positionals: [1, 1],
    run: remove
  },
  dev: {
    synopsis: 'dev [--nodes 3] [--data DIR]',
    summary: 'a local cluster on loopback to try Shoal',
    options: { nodes: { type: 'string' } },
    positionals: [0, 0],
    run: dev
  },
  psk: {
    synopsis: 'psk FILE',
    summary: 'write a new private-network key to FILE (mode 0600; never overwrites); give it to every node and client with --psk FILE',
    options: {},
    positionals: [1, 1],
    run: psk
  }
}

export function usage (): string {
  const width = Math.max(...Object.keys(COMMANDS).map(c => c.length))
  return [
    'usage: shoal <command> [options]',
    '',
    'Shoal is a peer-to-peer, leaderless key-value store after Amazon\'s Dynamo.',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}\n  ${' '.repeat(width)}  shoal ${c.synopsis}`),
    '',
    `common options: --peer MULTIADDR (else $SHOAL_PEER, else DIR/node.json of --data, default ${DEFAULT_DATA}), --json, --timeout MS, --cluster NAME,`,
    '  --psk FILE (else $SHOAL_PSK): the private-network key of a cluster started with one (shoal psk FILE makes one)',
    '  -h, --help  this text',
    '',
    'exit codes: 0 success, 1 the operation failed, 2 usage error, 3 not found'
  ].join('\n')
}

/** Runs the command line `argv` (without `node` and the script); returns the exit code. */
export async function main (argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    console.log(usage())
    return name === undefined ? EXIT.usage : EXIT.ok
  }
  const command = COMMANDS[name]
  if (command === undefined) {
    console.error(`shoal: unknown command ${JSON.stringify(name)}\nusage: shoal <command> [options] (shoal --help lists the commands)`)
    return EXIT.usage
  }
  let args: Args
  try {
    const parsed = parseArgs({ args: [...rest], options: { ...COMMON, ...command.options }, allowPositionals: true, strict: true })
    if (parsed.values.help === true) {
      console.log(`usage: shoal ${command.synopsis}\n\n${command.summary}`)
      return EXIT.ok
    }
    const [min, max] = command.positionals
    if (parsed.positionals.length < min || parsed.positionals.length > max) {
      throw new UsageError(min === max ? `takes ${min} argument${min === 1 ? '' : 's'}, got ${parsed.positionals.length}` : `takes ${min} to ${max} arguments, got ${parsed.positionals.length}`)
    }
    args = { values: parsed.values, positionals: parsed.positionals }
  } catch (err) {
    // parseArgs adds tips on further lines; the first says what is wrong.
    console.error(`shoal ${name}: ${(err as Error).message.split('\n')[0]}\nusage: shoal ${command.synopsis}`)
    return EXIT.usage
  }
  try {
    return await command.run(args)
  } catch (err) {
    const e = err as Error
    // One line whatever the message: scripts read the first line of stderr.
    const message = e.message.replace(/\s*\n\s*/g, ' ')
    if (e instanceof KeyFileError) {
      console.error(`shoal ${name}: ${message}`)
      return EXIT.usage
    }
    // A node's verdict on an argument (W above its N, a malformed context) is a usage error too.
    if (e instanceof UsageError || e.name === 'InvalidArgumentError' || e.name === 'InvalidContextError') {
      console.error(`shoal ${name}: ${message}\nusage: shoal ${command.synopsis}`)
      return EXIT.usage
    }
    console.error(`shoal ${name}: ${e.name === 'Error' ? '' : `${e.name}: `}${message}`)
    return EXIT.failed
  }
}

async function start (args: Args): Promise<number> {
  const dataDir = text(args, 'data') ?? DEFAULT_DATA
  const bootstrap = list(args, 'bootstrap')
  for (const addr of [...bootstrap, ...list(args, 'listen')]) checkMultiaddr(addr)
  if (flag(args, 'mdns') && flag(args, 'no-mdns')) throw new UsageError('--mdns and --no-mdns contradict each other')
  // With nobody to bootstrap from, a node looks for its cluster on the LAN.
  const mdns = flag(args, 'mdns') || (!flag(args, 'no-mdns') && bootstrap.length === 0)
  for (const addr of list(args, 'announce')) checkMultiaddr(addr)
  const n = int(args, 'n', 1, 16)
  const key = await readPsk(args)
  let left!: () => void
  const hasLeft = new Promise<void>(resolve => { left = resolve })
  const node = await createNode({
    dataDir,
    listen: list(args, 'listen').length > 0 ? list(args, 'listen') : ['/ip4/0.0.0.0/tcp/0'],
    bootstrap,
    mdns,
    ...optional('cluster', text(args, 'cluster')),
    ...optional('psk', key),
    ...(list(args, 'announce').length > 0 ? { announce: list(args, 'announce') } : {}),
    ...optional('n', n),
    ...optional('r', int(args, 'r', 1, n ?? 3)),
    ...optional('w', int(args, 'w', 1, n ?? 3)),
    ...optional('weight', number(args, 'weight')),
    ...optional('timeoutMs', int(args, 'timeout', 1, 600_000)),
    ...optional('antiEntropyIntervalMs', int(args, 'anti-entropy-interval', 0, MAX_INTERVAL_MS)),
    ...optional('handoffIntervalMs', int(args, 'handoff-interval', 0, MAX_INTERVAL_MS)),
    ...optional('tombstoneGraceMs', int(args, 'tombstone-grace', 0, MAX_INTERVAL_MS)),
    onLeft: () => { left() }
  })
  const info = { peerId: node.peerId, addrs: node.addrs }
  await writeNodeJson(dataDir, info)
  if (flag(args, 'json')) console.log(JSON.stringify(info))
  else console.log(`shoal node ${node.peerId}\n${node.addrs.map(a => `  listening on ${a}`).join('\n')}\n  data in ${dataDir}, cluster ${node.cluster}${mdns ? ', mDNS on' : ''}`)
  const why = await Promise.race([untilSignal().then(() => 'signal'), hasLeft.then(() => 'left')])
  // A node that left lingers a moment so its last heartbeat carries the news.
  if (why === 'left') await new Promise(resolve => setTimeout(resolve, 2000))
  await node.stop()
  if (why === 'left') console.error(`shoal node ${node.peerId} left the cluster`)
  return EXIT.ok
}

async function put (args: Args): Promise<number> {
  const [key, given] = args.positionals as [string, string | undefined]
  const value = given ?? await readStdin()
  const w = int(args, 'w', 1, 16)
  return await withClient(args, async client => {
    const { context } = await client.put(key, value, { ...optional('context', text(args, 'context')), ...optional('w', w) })
    console.log(flag(args, 'json') ? JSON.stringify({ ok: true, context }) : context)
    return EXIT.ok
  })
}

async function get (args: Args): Promise<number> {
  const [key] = args.positionals as [string]
  const r = int(args, 'r', 1, 16)
  return await withClient(args, async client => {
    const result = flag(args, 'local') ? await client.getLocal(key) : await client.get(key, optional('r', r))
    if (result === undefined) {
      if (flag(args, 'json')) console.log(JSON.stringify({ key, siblings: [] }))
      console.error(`shoal get: ${JSON.stringify(key)} not found`)
      return EXIT.notFound
    }
    printRead(key, result, flag(args, 'json'))
    return EXIT.ok
  })
}

async function del (args: Args): Promise<number> {
  const [key] = args.positionals as [string]
  const w = int(args, 'w', 1, 16)
  return await withClient(args, async client => {
    await client.delete(key, { ...optional('context', text(args, 'context')), ...optional('w', w) })
    if (flag(args, 'json')) console.log(JSON.stringify({ ok: true }))
    return EXIT.ok
  })
}

async function status (args: Args): Promise<number> {
  return await withClient(args, async client => {
    const result = await client.admin({ op: 'status' }) as NodeStatus
    console.log(flag(args, 'json') ? JSON.stringify(result) : statusTable(result))
    return EXIT.ok
  })
}

/**
 * Starts the node's leave, then follows it by status until the node reports it left: by then it
 * has handed every partition and hint to their owners.
 */
async function leave (args: Args): Promise<number> {
  const wait = int(args, 'wait', 1, 24 * 3_600_000) ?? 600_000
  return await withClient(args, async client => {
    let result = await client.admin({ op: 'leave' }) as NodeStatus
    const deadline = Date.now() + wait
    while (result.state !== 'left') {
      if (Date.now() > deadline) {
        console.error(`shoal leave: still leaving after ${wait} ms (${result.handoff.pending} partitions and ${result.hintsPending} hints to hand off); it goes on in the background`)
        return EXIT.failed
      }
      await new Promise(resolve => setTimeout(resolve, 250))
      try {
        result = await client.admin({ op: 'status' }) as NodeStatus
      } catch (err) {
        // The node exits once it has left: a node gone after saying 'leaving' is done.
        if ((err as Error).name === 'UnreachableError' || (err as Error).name === 'NoReplyError') break
        throw err
      }
    }
    console.log(flag(args, 'json') ? JSON.stringify({ ok: true, peerId: result.peerId }) : `${result.peerId} handed off its data and left the cluster`)
    return EXIT.ok
  })
}

async function remove (args: Args): Promise<number> {
  const [member] = args.positionals as [string]
  return await withClient(args, async client => {
    await client.admin({ op: 'remove', member })
    console.log(flag(args, 'json') ? JSON.stringify({ ok: true, removed: member }) : `${member} removed from the ring`)
    return EXIT.ok
  })
}

async function dev (args: Args): Promise<number> {
  const count = int(args, 'nodes', 1, 32) ?? 3
  const root = join(text(args, 'data') ?? DEFAULT_DATA, 'dev')
  const key = await readPsk(args)
  const nodes: ShoalNode[] = []
  try {
    for (let i = 0; i < count; i++) {
      const first = nodes[0]
      nodes.push(await createNode({
        dataDir: join(root, `node-${i + 1}`),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        bootstrap: first === undefined ? [] : [p2pAddr(first)],
        ...optional('cluster', text(args, 'cluster')),
        ...optional('psk', key)
      }))
      process.stderr.write(`started node ${i + 1} of ${count}\n`)
    }
  } catch (err) {
    for (const node of nodes) await node.stop()
    throw err
  }
  const peer = p2pAddr(nodes[0] as ShoalNode)
  for (const [i, node] of nodes.entries()) await writeNodeJson(join(root, `node-${i + 1}`), { peerId: node.peerId, addrs: node.addrs })
  console.log([
    `a ${count}-node Shoal cluster is running on loopback (data in ${root}); Ctrl-C stops it.`,
    '',
    'try, in another terminal:',
    `  export SHOAL_PEER=${peer}`,
    ...(key === undefined ? [] : [`  export SHOAL_PSK=${pskFile(args) ?? ''}`]),
    '  npx shoal put greeting hello',
    '  npx shoal get greeting',
    '  npx shoal status'
  ].join('\n'))
  await untilSignal()
  for (const node of nodes) await node.stop()
  return EXIT.ok
}

/** Where a client command goes: --peer, else $SHOAL_PEER, else the node.json of --data. */
async function resolvePeer (args: Args): Promise<string> {
  const explicit = text(args, 'peer') ?? (process.env.SHOAL_PEER === '' ? undefined : process.env.SHOAL_PEER)
  if (explicit !== undefined) return checkMultiaddr(explicit)
  const dataDir = text(args, 'data') ?? DEFAULT_DATA
  const file = join(dataDir, 'node.json')
  let info: unknown
  try {
    info = JSON.parse(await readFile(file, 'utf8'))
  } catch {
    throw new UsageError(`no node to talk to: give --peer MULTIADDR, set SHOAL_PEER, or point --data at a node's data directory (${file} not readable)`)
  }
  const { peerId, addrs } = info as { peerId?: unknown, addrs?: unknown }
  const first = Array.isArray(addrs) ? addrs.find((a): a is string => typeof a === 'string') : undefined
  if (typeof peerId !== 'string' || first === undefined) throw new UsageError(`${file} does not name a node`)
  return first.includes('/p2p/') ? first : `${first}/p2p/${peerId}`
}

/** Writes a new private-network key file; an existing file is never replaced (it may be a cluster's key). */
async function psk (args: Args): Promise<number> {
  const [file] = args.positionals as [string]
  try {
    await writeFile(file, generatePsk(), { flag: 'wx', mode: 0o600 })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new Error(code === 'EEXIST' ? `${file} exists; not overwritten` : `cannot write ${file}: ${(err as Error).message}`)
  }
  console.log(flag(args, 'json') ? JSON.stringify({ ok: true, file }) : `wrote a private-network key to ${file}; start every node and run every command with --psk ${file}`)
  return EXIT.ok
}

/** The private-network key file: --psk FILE, else $SHOAL_PSK. */
function pskFile (args: Args): string | undefined {
  return text(args, 'psk') ?? (process.env.SHOAL_PSK === '' ? undefined : process.env.SHOAL_PSK)
}

/** The private-network key's bytes, checked; undefined when no key file is given. */
async function readPsk (args: Args): Promise<Uint8Array | undefined> {
  const file = pskFile(args)
  if (file === undefined) return undefined
  let bytes: Uint8Array
  try {
    if ((await stat(file)).size > MAX_KEY_FILE_BYTES) throw new KeyFileError(`key file ${file} is not a private-network key (larger than ${MAX_KEY_FILE_BYTES} bytes)`)
    bytes = await readFile(file)
  } catch (err) {
    if (err instanceof KeyFileError) throw err
    throw new KeyFileError(`cannot read key file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  try {
    return parsePsk(bytes)
  } catch (err) {
    throw new KeyFileError(`key file ${file} is malformed: ${(err as Error).message}`)
  }
}

async function withClient (args: Args, fn: (client: ShoalClient) => Promise<number>): Promise<number> {
  const peer = await resolvePeer(args)
  const key = await readPsk(args)
  // One request per command: a member coordinates it, so the command needs one connection, not the whole table.
  const client = await createClient({ bootstrap: [peer], routing: 'server', ...optional('timeoutMs', timeout(args)), ...optional('cluster', text(args, 'cluster')), ...optional('psk', key) })
  try {
    return await fn(client)
  } finally {
    await client.stop()
  }
}

function printRead (key: string, result: GetResult, json: boolean): void {
  const strict = new TextDecoder('utf-8', { fatal: true })
  const asText = (v: Uint8Array): string | undefined => {
    try { return strict.decode(v) } catch { return undefined }
  }
  if (json) {
    const siblings = result.siblings.map(v => {
      const t = asText(v)
      return t === undefined ? { base64: Buffer.from(v).toString('base64') } : { value: t }
    })
    console.log(JSON.stringify({ key, context: result.context, siblings }))
    return
  }
  for (const v of result.siblings) console.log(asText(v) ?? `base64:${Buffer.from(v).toString('base64')}`)
}

function statusTable (s: NodeStatus): string {
  const rows = s.members.map(m => [m.state, m.peerId, String(m.partitions), m.addrs[0] ?? ''])
  const header = ['STATE', 'PEER', 'PARTITIONS', 'ADDRESS']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()
  const ae = s.antiEntropy
  return [
    `cluster ${s.cluster}, seen from ${s.peerId} (${s.state})`,
    line(header),
    ...rows.map(line),
    `hints: ${s.hintsPending} pending, ${s.hintsDelivered} delivered`,
    `anti-entropy: ${ae.exchanges} exchanges, ${ae.keysRepaired} keys repaired, ${ae.bytesSent} bytes sent`,
    `handoff: ${s.handoff.pending} partitions pending, ${s.handoff.partitions} handed off`,
    `tombstones purged: ${s.tombstones.purged}`
  ].join('\n')
}

async function writeNodeJson (dataDir: string, info: { peerId: string, addrs: string[] }): Promise<void> {
  await mkdir(dataDir, { recursive: true })
  const file = join(dataDir, 'node.json')
  await writeFile(`${file}.tmp`, JSON.stringify(info, null, 2) + '\n')
  await rename(`${file}.tmp`, file)
}

function p2pAddr (node: ShoalNode): string {
  const addr = node.addrs[0] ?? ''
  return addr.includes('/p2p/') ? addr : `${addr}/p2p/${node.peerId}`
}

function untilSignal (): Promise<void> {
  return new Promise(resolve => {
    const done = (): void => {
      process.off('SIGINT', done)
      process.off('SIGTERM', done)
      resolve()
    }
    process.on('SIGINT', done)
    process.on('SIGTERM', done)
  })
}

async function readStdin (): Promise<Buffer> {
  if (process.stdin.isTTY === true) throw new UsageError('give VALUE, or pipe it on stdin')
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function checkMultiaddr (addr: string): string {
  try {
    multiaddr(addr)
  } catch {
    throw new UsageError(`${JSON.stringify(addr)} is not a multiaddr (e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...)`)
  }
  return addr
}

function text (args: Args, name: string): string | undefined {
  const v = args.values[name]
  return typeof v === 'string' ? v : undefined
}

function flag (args: Args, name: string): boolean {
  return args.values[name] === true
}

function list (args: Args, name: string): string[] {
  const v = args.values[name]
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
}

function int (args: Args, name: string, min: number, max: number): number | undefined {
  const v = text(args, name)
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name} takes an integer from ${min} to ${max}, got ${JSON.stringify(v)}`)
  return Number(v)
}

function number (args: Args, name: string): number | undefined {
  const v = text(args, name)
  if (v === undefined) return undefined
  const n = Number(v)
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} takes a positive number, got ${JSON.stringify(v)}`)
  return n
}

function timeout (args: Args): number | undefined {
  return int(args, 'timeout', 1, 600_000)
}

function optional<K extends string, V> (name: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [name]: value }) as { [P in K]?: V }
}
