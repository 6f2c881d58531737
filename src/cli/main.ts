import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { ParseArgsOptionDescriptor } from 'node:util'
import { multiaddr } from '@multiformats/multiaddr'
import { createClient } from '../client.ts'
import type { ShoalClient } from '../client.ts'
import { utf8Text } from '../core/bytes.ts'
import { generatePsk, parsePsk } from '../net/psk.ts'
import { parseHttpAddress } from '../http/address.ts'
import type { HttpAddress } from '../http/address.ts'
import { startGateway } from '../http/gateway.ts'
import type { HttpGateway } from '../http/gateway.ts'
import { createNode } from '../node.ts'
import { crdtCommands } from './crdt.ts'
import type { GetResult, NodeStatus, ShoalNode } from '../node.ts'
import type { Args, Command, Options } from './command.ts'
import { KeyFileError, UsageError, describeFailure } from './failure.ts'
import type { PeerSource } from './failure.ts'
import { DEFAULT_DATA, commandHelp, commonOptions, overview } from './help.ts'
import { statusView, shortPeerIds } from './status-view.ts'
import { closest } from './suggest.ts'
import { useColor } from './table.ts'

/** Exit codes, part of the command's contract with scripts. */
export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3 } as const

/** The longest interval or grace period a flag takes: about 24 days, the most a timer holds. */
const MAX_INTERVAL_MS = 2 ** 31 - 1

/** The largest key file read: a real one is 95 bytes; anything far larger is the wrong file. */
const MAX_KEY_FILE_BYTES = 4096

/**
 * The commands. Adding one is one entry: its options (with their help), its help and its run
 * function; `--help`, `shoal help`, option checking and "did you mean" follow from the entry.
 */
const COMMANDS: Record<string, Command> = {
  start: {
    synopsis: 'start [--data DIR] [--listen MULTIADDR]... [--announce MULTIADDR]... [--bootstrap MULTIADDR]... [--cluster NAME] [--psk FILE] [--mdns | --no-mdns] [--n 3] [--r 2] [--w 2] [--weight 1] [--anti-entropy-interval MS] [--handoff-interval MS] [--tombstone-grace MS] [--http HOST:PORT] [--json]',
    summary: 'run a node until SIGINT or SIGTERM, or until it has left the cluster',
    options: {
      'anti-entropy-interval': { type: 'string', value: 'MS', help: 'how often partitions are compared with other replicas (default 10000; 0 turns it off)' },
      'handoff-interval': { type: 'string', value: 'MS', help: 'how often partitions this node no longer owns are handed on (default 5000)' },
      'tombstone-grace': { type: 'string', value: 'MS', help: 'how long a delete is remembered before it may be purged (default 3600000)' },
      http: { type: 'string', value: 'HOST:PORT', help: 'serve the HTTP gateway and status page (off by default; a bare PORT listens on 127.0.0.1)' },
      listen: { type: 'string', multiple: true, value: 'MULTIADDR', help: 'an address to listen on (default /ip4/0.0.0.0/tcp/0: every interface, any free port)' },
      announce: { type: 'string', multiple: true, value: 'MULTIADDR', help: 'an address other peers should dial instead (a port forward, a proxy)' },
      bootstrap: { type: 'string', multiple: true, value: 'MULTIADDR', help: 'a member to join through (with /p2p/<peer id>); repeat for more' },
      mdns: { type: 'boolean', help: 'find nodes on the LAN by mDNS (the default when no --bootstrap is given)' },
      'no-mdns': { type: 'boolean', help: 'do not use mDNS' },
      n: { type: 'string', value: 'N', help: 'replicas of each key, the same on every node (default 3)' },
      r: { type: 'string', value: 'R', help: 'replicas that must answer a read this node coordinates (default 2)' },
      w: { type: 'string', value: 'W', help: 'replicas that must acknowledge a write this node coordinates (default 2)' },
      weight: { type: 'string', value: 'W', help: 'this node\'s share of the ring relative to the others (default 1)' }
    },
    positionals: [0, 0],
    common: 'node',
    help: {
      description: 'Runs a node: it opens (or creates) its data directory, listens, joins the cluster through --bootstrap or mDNS, and serves until SIGINT or SIGTERM, then stops cleanly. It prints its peer ID and addresses (with --json, one line {"peerId", "addrs"}) and writes them to DIR/node.json, so --data DIR is enough for the other commands to find it. A restarted node keeps its peer ID and data.',
      examples: [
        'shoal start --data ./a --listen /ip4/0.0.0.0/tcp/4001',
        'shoal start --data ./b --listen /ip4/0.0.0.0/tcp/4002 --bootstrap /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW...',
        'shoal start --data ./c --psk cluster.key --http 127.0.0.1:8080   # private network, status page on :8080'
      ]
    },
    run: start
  },
  put: {
    synopsis: 'put KEY [VALUE] [--context CTX] [--w W]',
    summary: 'write a value (read from stdin when VALUE is omitted)',
    options: {
      context: { type: 'string', value: 'CTX', help: 'the context of the read this write replaces (from shoal get --json); without it the value is added beside any siblings' },
      w: { type: 'string', value: 'W', help: 'replicas that must acknowledge (1 to N; default the node\'s W)' }
    },
    positionals: [1, 2],
    help: {
      description: 'Writes VALUE (or stdin) under KEY and prints the new causal context (with --json, {"ok": true, "context"}). Keys are 1 to 1024 bytes, values up to 1 MiB.',
      examples: [
        'shoal put greeting hello',
        'shoal put doc:1 < doc.json                      # the value from stdin',
        'shoal put cart:42 "apples, pears" --context "$(shoal get cart:42 --json | jq -r .context)"',
        'shoal put audit:7 entry --w 3                   # acknowledged by all three replicas'
      ]
    },
    run: put
  },
  get: {
    synopsis: 'get KEY [--r R] [--local]',
    summary: 'read every sibling of a key and its context (exit 3 when missing)',
    options: {
      r: { type: 'string', value: 'R', help: 'replicas that must answer (1 to N; default the node\'s R)' },
      local: { type: 'boolean', default: false, help: 'read only the contacted node\'s own replica: no quorum, no repair' }
    },
    positionals: [1, 1],
    help: {
      description: 'Prints each sibling of KEY on its own line (binary values as base64:...); with --json, {"key", "context", "siblings": [{"value"} | {"base64"}]}. Concurrent writes come back as several siblings: write the merged value with the read\'s context to resolve them. Exit 3 when the key does not exist.',
      examples: ['shoal get greeting', 'shoal get cart:42 --json', 'shoal get greeting --r 3', 'shoal get greeting --local --data ./b   # what node b holds itself']
    },
    run: get
  },
  delete: {
    synopsis: 'delete KEY [--context CTX] [--w W]',
    summary: 'delete a key (a tombstone under a context)',
    options: {
      context: { type: 'string', value: 'CTX', help: 'the context of the read (shoal get --json) whose values this removes; without one, values it has not seen stay' },
      w: { type: 'string', value: 'W', help: 'replicas that must acknowledge (1 to N; default the node\'s W)' }
    },
    positionals: [1, 1],
    help: {
      description: 'Deletes KEY by writing a tombstone under the context of a read: like a put, it replaces exactly the values that read returned. The tombstone is purged once every replica has it and the grace period is over.',
      examples: ['shoal delete greeting', 'shoal delete cart:42 --context "$(shoal get cart:42 --json | jq -r .context)"']
    },
    run: del
  },
  status: {
    synopsis: 'status [--wide]',
    summary: 'members, their state and partitions, hints pending',
    options: { wide: { type: 'boolean', default: false, help: 'full peer IDs and every member\'s dialable addresses' } },
    positionals: [0, 0],
    help: {
      description: 'Shows the cluster as the contacted node sees it: each member\'s state (up, suspect, down, leaving, left), the partitions it replicates and its address, then hints, anti-entropy, handoff and tombstones. States are coloured on a terminal (NO_COLOR=1 turns colour off). --json prints every field for scripts.',
      examples: ['shoal status', 'shoal status --wide', 'shoal status --json | jq \'.members[] | select(.state != "up")\'', 'shoal status --data ./a']
    },
    run: status
  },
  leave: {
    synopsis: 'leave [--wait MS]',
    summary: 'hand this node\'s data to the others and take it out of the ring (waits until done)',
    options: { wait: { type: 'string', value: 'MS', help: 'how long to wait for the handoff (default 600000); it goes on in the background after' } },
    positionals: [0, 0],
    help: {
      description: 'Asks the contacted node to leave: it hands every partition and hint it holds to their new owners, announces that it left, and exits. Returns once it has (exit 0), or after --wait saying what is left (exit 1). The last member cannot leave.',
      examples: ['shoal leave --data ./c', 'shoal leave --peer /ip4/10.0.0.3/tcp/4001/p2p/12D3KooW... --wait 60000']
    },
    run: leave
  },
  remove: {
    synopsis: 'remove PEER_ID',
    summary: 'take a member that is gone for good out of the ring',
    options: {},
    positionals: [1, 1],
    help: {
      description: 'Takes a member that will not come back (a dead machine) out of the ring; the others take over its partitions and repair them from the remaining replicas. For a member that is still running, use shoal leave, which hands its data off first. The full peer ID is in shoal status --wide.',
      examples: ['shoal remove 12D3KooWJzDEfAi69C5V3Xqwt9keiVUrz7cv8fFYTREjcaQRLUgw', 'shoal status --json | jq -r \'.members[] | select(.state == "down") | .peerId\'   # who is down']
    },
    run: remove
  },
  dev: {
    synopsis: 'dev [--nodes 3] [--data DIR] [--http HOST:PORT]',
    summary: 'a local cluster on loopback to try Shoal',
    options: {
      nodes: { type: 'string', value: 'N', help: 'how many nodes (default 3)' },
      http: { type: 'string', value: 'HOST:PORT', help: 'serve each node\'s HTTP gateway and status page, node i on PORT + i - 1' }
    },
    positionals: [0, 0],
    common: 'node',
    help: {
      description: 'Starts N nodes in this process on 127.0.0.1 (data in DIR/dev/node-I, kept between runs), shows each as it comes up, waits until they all see each other and prints what to try next; Ctrl-C stops them. Progress goes to stderr; with --json, stdout gets one line {"peer", "nodes": [{"peerId", "addrs", "dataDir"}]}.',
      examples: ['shoal dev', 'shoal dev --nodes 5 --data /tmp/shoal', 'shoal dev --http 8080   # status pages on :8080, :8081, :8082', 'npm start               # the same as shoal dev, from a checkout']
    },
    run: dev
  },
  psk: {
    synopsis: 'psk FILE',
    summary: 'write a new private-network key to FILE (mode 0600; never overwrites); give it to every node and client with --psk FILE',
    options: {},
    positionals: [1, 1],
    common: 'none',
    help: {
      description: 'Writes a new random private-network key to FILE, readable by its owner only; an existing file is never replaced. Every node and every command of the cluster then needs --psk FILE (or $SHOAL_PSK): without the key, nothing can even connect.',
      examples: ['shoal psk cluster.key', 'shoal start --data ./a --psk cluster.key', 'SHOAL_PSK=cluster.key shoal status --data ./a']
    },
    run: psk
  },
  ...crdtCommands({ withClient, int, flag, usageError: message => new UsageError(message), exit: EXIT })
}

/** `shoal --help`: every command with its summary and synopsis. */
export function usage (): string {
  return overview(COMMANDS)
}

/** The commands' names, in the order `shoal --help` lists them. */
export function commandNames (): string[] {
  return Object.keys(COMMANDS)
}

/** The command table, for help and its tests. */
export function commandTable (): Readonly<Record<string, Command>> {
  return COMMANDS
}

/** Where the current command's peer address came from, for the hint when it cannot be reached. */
let peerSource: PeerSource | undefined

/** Runs the command line `argv` (without `node` and the script); returns the exit code. */
export async function main (argv: readonly string[]): Promise<number> {
  peerSource = undefined
  const [name, ...rest] = argv
  if (name === undefined) {
    console.error(usage())
    return EXIT.usage
  }
  if (name === '-h' || name === '--help') {
    console.log(usage())
    return EXIT.ok
  }
  if (name === '-V' || name === '--version' || name === 'version') {
    console.log(`shoal ${await version()}`)
    return EXIT.ok
  }
  if (name === 'help') return help(rest)
  const command = COMMANDS[name]
  if (command === undefined) return report(new UsageError(unknownCommand(name)), 'shoal')
  // --help wins over anything else on the line, mistakes included: whoever asks for help gets it.
  const dashes = rest.indexOf('--')
  if ((dashes === -1 ? rest : rest.slice(0, dashes)).some(a => a === '--help' || a === '-h')) {
    console.log(commandHelp(name, command))
    return EXIT.ok
  }
  let args: Args
  try {
    args = parse(name, command, rest)
  } catch (err) {
    return report(err, name)
  }
  try {
    return await command.run(args)
  } catch (err) {
    return report(err, name, command.common === 'node' ? text(args, 'data') ?? DEFAULT_DATA : undefined)
  }
}

/** Prints the one line that says what failed and what to do; returns the exit code. */
function report (err: unknown, command: string, dataDir?: string): number {
  const failure = describeFailure(err, { command, ...optional('peer', peerSource), ...optional('dataDir', dataDir) })
  console.error(failure.line)
  return failure.exit
}

/** `shoal help [COMMAND]`. */
function help (rest: readonly string[]): number {
  const [topic] = rest
  if (topic === undefined || topic === 'help') {
    console.log(usage())
    return EXIT.ok
  }
  const command = COMMANDS[topic]
  if (command === undefined) return report(new UsageError(unknownCommand(topic)), 'help')
  console.log(commandHelp(topic, command))
  return EXIT.ok
}

function unknownCommand (name: string): string {
  if (name.startsWith('-')) return `the command comes first: shoal <command> [options], got ${JSON.stringify(name)}; shoal help lists the commands`
  const guess = closest(name, [...Object.keys(COMMANDS), 'help'])
  return `unknown command ${JSON.stringify(name)}; ${guess === undefined ? 'shoal help lists the commands' : `did you mean shoal ${guess}?`}`
}

/** parseArgs's option table: the help fields are ours. */
function parserOptions (options: Options): Record<string, ParseArgsOptionDescriptor> {
  return Object.fromEntries(Object.entries(options).map(([name, { help: _help, value: _value, ...spec }]) => [name, spec]))
}

/** Parses a command's arguments; a mistake is a UsageError that says what would be right. */
function parse (name: string, command: Command, rest: readonly string[]): Args {
  const options = { ...commonOptions(command.common), ...command.options }
  let parsed: { values: Args['values'], positionals: string[] }
  try {
    parsed = parseArgs({ args: [...rest], options: parserOptions(options), allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError(parseMistake(err, name, options))
  }
  const [min, max] = command.positionals
  const got = parsed.positionals.length
  if (got < min || got > max) {
    const wanted = max === 0 ? 'no arguments' : min === max ? `${min} argument${min === 1 ? '' : 's'}` : `${min} to ${max} arguments`
    throw new UsageError(`${name} takes ${wanted}, got ${got}${got > max ? ` (${parsed.positionals.slice(max).map(a => JSON.stringify(a)).join(' ')} too many)` : ''}; usage: shoal ${command.synopsis}`)
  }
  return { values: parsed.values, positionals: parsed.positionals }
}

/** What parseArgs refused, said with the nearest valid option. */
function parseMistake (err: unknown, name: string, options: Options): string {
  const e = err as NodeJS.ErrnoException
  const first = (e.message ?? String(err)).split('\n')[0] ?? ''
  if (e.code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return first.replace(/\. To specify .*$/, '')
  const given = /Unknown option '([^']+)'/.exec(first)?.[1] ?? first
  const bare = given.replace(/^-+/, '').split('=')[0] ?? ''
  const unknown = `Unknown option '${given}' for shoal ${name}`
  // A value that starts with a dash (a negative number, say) is taken for an option.
  if (/^-\d/.test(given) || (!given.startsWith('--') && given.length > 2)) return `${unknown}; to pass an argument that starts with -, put it after --: shoal ${name} [options] -- ARG...`
  const elsewhere = Object.entries(COMMANDS).filter(([, c]) => Object.hasOwn(c.options, bare)).map(([n]) => n)
  if (elsewhere.length > 0) return `${unknown}: --${bare} is an option of shoal ${elsewhere.join(', ')}; shoal help ${name} lists this command's options`
  const guess = closest(bare, Object.keys(options))
  if (guess !== undefined) return `${unknown}; did you mean --${guess}?`
  return `${unknown}; shoal help ${name} lists its options`
}

/** The package's version, from its package.json (the same path from src/cli and dist/cli). */
async function version (): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown }
  return typeof pkg.version === 'string' ? pkg.version : 'unknown'
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
  const http = httpOption(args)
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
  const gateway = http === undefined ? undefined : await serveHttp(node, http, true)
  const info = { peerId: node.peerId, addrs: node.addrs, ...(gateway === undefined ? {} : { http: gateway.url }) }
  await writeNodeJson(dataDir, info)
  if (flag(args, 'json')) console.log(JSON.stringify(info))
  else console.log(`shoal node ${node.peerId}\n${node.addrs.map(a => `  listening on ${a}`).join('\n')}\n  data in ${dataDir}, cluster ${node.cluster}${mdns ? ', mDNS on' : ''}${gateway === undefined ? '' : `\n  HTTP on ${gateway.url} (status page; /kv/KEY, /counters/KEY, /sets/KEY, /stats, /metrics)`}\n  shoal status --data ${dataDir} shows the cluster; Ctrl-C stops this node`)
  const why = await Promise.race([untilSignal().then(() => 'signal'), hasLeft.then(() => 'left')])
  // A node that left lingers a moment so its last heartbeat carries the news.
  if (why === 'left') await new Promise(resolve => setTimeout(resolve, 2000))
  await gateway?.stop()
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
      console.error(`shoal: ${JSON.stringify(key)} not found`)
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
    console.log(flag(args, 'json') ? JSON.stringify(result) : statusView(result, { wide: flag(args, 'wide'), color: useColor(process.stdout) }))
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
        console.error(`shoal: still leaving after ${wait} ms (${result.handoff.pending} partitions and ${result.hintsPending} hints to hand off); it goes on in the background: shoal status on it shows how far it got, and a member that stays down can be taken out with shoal remove`)
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
  const http = httpOption(args)
  const timeoutMs = timeout(args)
  const nodes: ShoalNode[] = []
  const gateways: HttpGateway[] = []
  // Progress goes to stderr: stdout stays for --json, so scripts can read the addresses.
  const progress = (line: string): void => { process.stderr.write(line) }
  const began = Date.now()
  try {
    for (let i = 0; i < count; i++) {
      const first = nodes[0]
      const since = Date.now()
      progress(`starting node ${i + 1}/${count} ... `)
      const node = await createNode({
        dataDir: join(root, `node-${i + 1}`),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        bootstrap: first === undefined ? [] : [p2pAddr(first)],
        ...optional('cluster', text(args, 'cluster')),
        ...optional('psk', key),
        ...optional('timeoutMs', timeoutMs)
      }).catch((err: unknown) => {
        progress('failed\n')
        throw err
      })
      nodes.push(node)
      progress(`up (${shortPeerIds([node.peerId]).get(node.peerId) ?? node.peerId}, ${bare(node.addrs[0] ?? '')}, ${seconds(Date.now() - since)})\n`)
      // Node i serves HTTP on PORT + i - 1 (or each on a free port, for port 0).
      if (http !== undefined) gateways.push(await serveHttp(nodes[i] as ShoalNode, { host: http.host, port: http.port === 0 ? 0 : http.port + i }, false))
    }
  } catch (err) {
    for (const gateway of gateways) await gateway.stop()
    for (const node of nodes) await node.stop()
    throw err
  }
  const peer = p2pAddr(nodes[0] as ShoalNode)
  for (const [i, node] of nodes.entries()) await writeNodeJson(join(root, `node-${i + 1}`), { peerId: node.peerId, addrs: node.addrs })
  progress('waiting for the members to see each other ... ')
  const seen = await untilAllSee(nodes, 15_000)
  progress(seen === count ? `${count} of ${count} up on every node (${seconds(Date.now() - began)} in all)\n` : `${seen} of ${count} up so far; the others are still joining (shoal status shows them)\n`)
  if (flag(args, 'json')) {
    console.log(JSON.stringify({ peer, nodes: nodes.map((node, i) => ({ peerId: node.peerId, addrs: node.addrs, dataDir: join(root, `node-${i + 1}`) })) }))
  }
  progress([
    '',
    `a ${count}-node Shoal cluster is running on loopback (data in ${root}); Ctrl-C stops it.`,
    '',
    'try, in another terminal:',
    `  export SHOAL_PEER=${peer}`,
    ...(key === undefined ? [] : [`  export SHOAL_PSK=${pskFile(args) ?? ''}`]),
    '  npx shoal put greeting hello      # prints the new causal context',
    '  npx shoal get greeting            # hello',
    '  npx shoal status                  # the members, their state and partitions',
    '  npx shoal help                    # every command, with examples',
    ...gateways.map((g, i) => `  open ${g.url} (node ${i + 1}'s status page; curl ${g.url}kv/greeting)`),
    ''
  ].join('\n'))
  await untilSignal()
  progress(`\nstopping ${count} node${count === 1 ? '' : 's'} ... `)
  for (const gateway of gateways) await gateway.stop()
  for (const node of nodes) await node.stop()
  progress('done\n')
  return EXIT.ok
}

/** Waits until every node sees every other up, or `limitMs`; returns the fewest any node sees. */
async function untilAllSee (nodes: readonly ShoalNode[], limitMs: number): Promise<number> {
  const fewest = (): number => Math.min(...nodes.map(n => n.status().members.filter(m => m.state === 'up').length))
  const deadline = Date.now() + limitMs
  while (fewest() < nodes.length && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
  return fewest()
}

function seconds (ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}

/** An address without its /p2p/<id> suffix, for a line that shows the peer ID beside it. */
function bare (addr: string): string {
  const at = addr.indexOf('/p2p/')
  return at === -1 ? addr : addr.slice(0, at)
}

/** --http HOST:PORT, :PORT or PORT, checked before anything starts. */
function httpOption (args: Args): HttpAddress | undefined {
  const value = text(args, 'http')
  if (value === undefined) return undefined
  try {
    return parseHttpAddress(value)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

/** Starts a node's HTTP gateway; a port that cannot be had stops the node and says so. */
async function serveHttp (node: ShoalNode, address: HttpAddress, processMetrics: boolean): Promise<HttpGateway> {
  try {
    return await startGateway(node, { ...address, processMetrics })
  } catch (err) {
    await node.stop()
    throw new Error(`cannot serve HTTP on ${address.host}:${address.port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/** Where a client command goes: --peer, else $SHOAL_PEER, else the node.json of --data. */
async function resolvePeer (args: Args): Promise<string> {
  const explicit = text(args, 'peer') ?? (process.env.SHOAL_PEER === '' ? undefined : process.env.SHOAL_PEER)
  if (explicit !== undefined) {
    peerSource = { from: text(args, 'peer') === undefined ? 'env' : 'flag' }
    return checkMultiaddr(explicit)
  }
  const dataDir = text(args, 'data') ?? DEFAULT_DATA
  const file = join(dataDir, 'node.json')
  peerSource = { from: 'file', file }
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
  if (json) {
    const siblings = result.siblings.map(v => {
      const t = utf8Text(v)
      return t === undefined ? { base64: Buffer.from(v).toString('base64') } : { value: t }
    })
    console.log(JSON.stringify({ key, context: result.context, siblings }))
    return
  }
  for (const v of result.siblings) console.log(utf8Text(v) ?? `base64:${Buffer.from(v).toString('base64')}`)
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
