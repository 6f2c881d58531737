/**
 * Key-value throughput and latency on real `shoal` processes, beside the floor of the libp2p stack
 * under them. Prints numbers and asserts nothing. `npm run bench -- kv [--quick] [--seconds=S]
 * [--only=floor,shoal-3,shoal-5] [--diag | --ops=put,get,...] [--profile[=DIR]]`.
 *
 * - floor: a bare libp2p request/response (TCP + noise + yamux, RpcServer and rpcCall, one request
 *   per stream, 1 KiB each way) between a server process (bench/floor-server.ts) and the load
 *   process.
 * - shoal-3, shoal-5: that many `shoal start` processes on loopback, nodes 2.. bootstrapped to node
 *   1, N=3 R=2 W=2, loaded through createClient with 1 KiB values, round-robin over the members,
 *   once the cluster has formed (every member sees every other up).
 *
 * The load comes from one separate process (bench/kv-load.ts), so the bench's own process only
 * starts, waits and prints. A new target first settles under load (every process JIT-warm, a new
 * cluster's start-up work done: the first phase measured ~30 % slower without it); then each
 * (op, callers) phase warms up and measures for a fixed time.
 * The rows also go to bench/results/kv-latest.json. Every process and temp dir started here is
 * stopped and removed at the end, on error and on Ctrl-C. `--profile` runs every process under
 * `--cpu-prof` and prints where CPU time goes (it slows everything: its numbers are not the
 * benchmark's).
 */
import type { ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { LoadJob, LoadMessage, Op, Phase, Row } from './kv-load.ts'
import { Processes, cpuMs, exited, stderrTail, sumCpuMs } from './processes.ts'
import { summarizeProfiles } from './profile.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(root, 'bin', 'shoal.js')
const LOAD = join(root, 'bench', 'kv-load.ts')
const FLOOR_SERVER = join(root, 'bench', 'floor-server.ts')
const RESULTS = join(root, 'bench', 'results', 'kv-latest.json')

const VALUE_BYTES = 1024
const CALLERS = [1, 32]
const TARGETS = ['floor', 'shoal-3', 'shoal-5'] as const
type Target = typeof TARGETS[number]
/** Writes first: the reads read what they wrote. */
const SHOAL_OPS: readonly Op[] = ['put', 'get', 'read', 'put-w1', 'get-r1']
const USAGE = `npm run bench -- kv [--quick] [--seconds=S] [--only=${TARGETS.join(',')}] [--diag | --ops=${SHOAL_OPS.join(',')}] [--profile[=DIR]]`
/** Aims for Shoal's p50 over the floor's at the same callers (printed, not asserted). */
const AIMS: Partial<Record<Op, number>> = { put: 2.5, get: 2 }
const START_TIMEOUT_MS = 30_000
const FORM_TIMEOUT_MS = 60_000
/** SIGTERM, then this long before SIGKILL. */

interface Options {
  readonly quick: boolean
  /** Shoal's ops: put and get, with --diag also read, put-w1 and get-r1; or those --ops names. */
  readonly ops: readonly Op[]
  /** Load on a new target before its first phase (JIT warm-up, a new cluster settling). */
  readonly settleMs: number
  readonly warmupMs: number
  readonly measureMs: number
  readonly targets: readonly Target[]
  /** Profile every process into this directory; '' for a temp dir removed at the end. */
  readonly profileDir?: string
}

function parseOptions (args: string[]): Options {
  const value = (name: string): string | undefined => args.find(a => a.startsWith(`--${name}=`))?.slice(name.length + 3)
  for (const arg of args) {
    if (!/^--(quick|diag|profile|seconds=.+|only=.+|ops=.+|profile=.+)$/.test(arg)) throw new Error(`kv: unknown argument ${JSON.stringify(arg)}; usage: ${USAGE}`)
  }
  const quick = args.includes('--quick')
  const seconds = Number(value('seconds') ?? (quick ? 1.5 : 5))
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error('kv: --seconds takes a positive number')
  const only = value('only')?.split(',') ?? [...TARGETS]
  const targets = TARGETS.filter(t => only.includes(t))
  if (targets.length !== only.length) throw new Error(`kv: --only takes some of ${TARGETS.join(',')}`)
  const profile = value('profile') ?? (args.includes('--profile') ? '' : undefined)
  const ops = value('ops')?.split(',') ?? (args.includes('--diag') ? [...SHOAL_OPS] : ['put', 'get'])
  const known = ops.filter((op): op is Op => (SHOAL_OPS as readonly string[]).includes(op))
  if (known.length !== ops.length) throw new Error(`kv: --ops takes some of ${SHOAL_OPS.join(',')}`)
  if (known.some(op => op !== 'put' && op !== 'put-w1') && !known.some(op => op === 'put' || op === 'put-w1')) {
    throw new Error('kv: reads need a put or put-w1 phase to write their keys')
  }
  return {
    quick,
    ops: known,
    settleMs: quick ? 1_500 : 4_000,
    warmupMs: quick ? 500 : 1_000,
    measureMs: seconds * 1000,
    targets,
    ...(profile === undefined ? {} : { profileDir: profile })
  }
}


function withP2p (addr: string, peerId: string): string {
  return addr.includes('/p2p/') ? addr : `${addr}/p2p/${peerId}`
}

interface StartedNode {
  readonly child: ChildProcess
  readonly addr: string
}

/** `shoal start --json`: resolves with its address once it prints `{"peerId","addrs"}`. */
async function startNode (procs: Processes, role: string, dataDir: string, bootstrap: string[]): Promise<StartedNode> {
  const child = procs.spawn(role, [
    BIN, 'start', '--data', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--json',
    '--n', '3', '--r', '2', '--w', '2', ...bootstrap.flatMap(b => ['--bootstrap', b])
  ])
  const tail = stderrTail(child)
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${role} did not start within ${START_TIMEOUT_MS} ms: ${tail()}`)) }, START_TIMEOUT_MS)
    createInterface({ input: child.stdout! }).once('line', line => { clearTimeout(timer); resolve(line) })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`${role} exited with ${code}: ${tail()}`)) })
  })
  const info = JSON.parse(line) as { peerId: string, addrs: string[] }
  const first = info.addrs[0]
  if (first === undefined) throw new Error(`${role} listens on no address`)
  return { child, addr: withP2p(first, info.peerId) }
}

async function startFloorServer (procs: Processes): Promise<StartedNode> {
  const child = procs.spawn('floor server', [FLOOR_SERVER], { ipc: true })
  const tail = stderrTail(child)
  const addrs = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`the floor server did not start within ${START_TIMEOUT_MS} ms: ${tail()}`)) }, START_TIMEOUT_MS)
    child.once('message', (message: { type: string, addrs: string[] }) => { clearTimeout(timer); resolve(message.addrs) })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`the floor server exited with ${code}: ${tail()}`)) })
  })
  const addr = addrs[0]
  if (addr === undefined) throw new Error('the floor server listens on no address')
  return { child, addr }
}

interface Measured {
  readonly row: Row
  readonly errors: number
  readonly firstError?: string
  /** CPU time per op in the measuring window: the servers (nodes or floor server) and the load generator. */
  readonly serverCpuMs?: number
  readonly loadCpuMs?: number
}

/**
 * Runs one load job in the load-generator process against `servers`; resolves with its rows
 * once it is done.
 */
async function runLoad (procs: Processes, job: LoadJob, servers: readonly ChildProcess[]): Promise<Measured[]> {
  const child = procs.spawn(`${job.target} load`, [LOAD, JSON.stringify(job)], { ipc: true })
  const tail = stderrTail(child)
  child.stdout?.pipe(process.stderr)
  const measured: Measured[] = []
  let failure: string | undefined
  let done = false
  let window: { servers?: number, load?: number } = {}
  child.on('message', (message: LoadMessage) => {
    switch (message.type) {
      case 'formed':
        log(`${job.target}: ${job.kind === 'shoal' ? `formed, every member sees ${job.addrs.length} up (${(message.ms / 1000).toFixed(1)} s); ` : ''}settling under load for ${(job.settleMs / 1000).toFixed(1)} s`)
        break
      case 'window': {
        const serverMs = sumCpuMs(servers)
        const loadMs = cpuMs(child.pid)
        window = { ...(serverMs === undefined ? {} : { servers: serverMs }), ...(loadMs === undefined ? {} : { load: loadMs }) }
        break
      }
      case 'row': {
        const { row, ops, errors } = message
        const serverMs = sumCpuMs(servers)
        const loadMs = cpuMs(child.pid)
        const perOp = (now: number | undefined, then: number | undefined): number | undefined =>
          now === undefined || then === undefined || ops === 0 ? undefined : (now - then) / ops
        const serverCpuMs = perOp(serverMs, window.servers)
        const loadCpuMs = perOp(loadMs, window.load)
        measured.push({
          row,
          errors,
          ...(message.firstError === undefined ? {} : { firstError: message.firstError }),
          ...(serverCpuMs === undefined ? {} : { serverCpuMs }),
          ...(loadCpuMs === undefined ? {} : { loadCpuMs })
        })
        log(`${row.target} ${row.op} x${row.clients}: ${ops} ops, ${row.opsPerSec.toFixed(0)} ops/s, p50 ${row.p50Ms.toFixed(2)} ms, p99 ${row.p99Ms.toFixed(2)} ms${errors > 0 ? `, ${errors} errors (${message.firstError ?? ''})` : ''}`)
        break
      }
      case 'failed':
        failure = message.message
        break
      case 'done':
        done = true
        break
    }
  })
  const how = await new Promise<string>(resolve => child.once('exit', (code, signal) => { resolve(signal ?? `code ${code}`) }))
  if (failure !== undefined) throw new Error(`${job.target} load: ${failure}`)
  if (!done) throw new Error(`${job.target} load exited (${how}) before it was done${tail() === '' ? '' : `: ${tail()}`}`)
  return measured
}

function phases (ops: readonly Op[]): Phase[] {
  return ops.flatMap(op => CALLERS.map(clients => ({ op, clients })))
}

async function measureFloor (procs: Processes, options: Options): Promise<Measured[]> {
  log('floor: starting the server')
  const server = await startFloorServer(procs)
  try {
    return await runLoad(procs, {
      kind: 'floor', target: 'floor', addr: server.addr, phases: phases(['rpc']),
      settleMs: options.settleMs, warmupMs: options.warmupMs, measureMs: options.measureMs, valueBytes: VALUE_BYTES, formTimeoutMs: FORM_TIMEOUT_MS
    }, [server.child])
  } finally {
    await procs.stop(server.child)
  }
}

async function measureShoal (procs: Processes, options: Options, size: number): Promise<Measured[]> {
  const target = `shoal-${size}`
  const dir = await procs.tempDir(`shoal-bench-kv-${size}-`)
  const nodes: StartedNode[] = []
  try {
    log(`${target}: starting ${size} nodes`)
    const first = await startNode(procs, `${target} node-1`, join(dir, 'node-1'), [])
    nodes.push(first)
    const rest = await Promise.allSettled(Array.from({ length: size - 1 }, async (_, i) =>
      await startNode(procs, `${target} node-${i + 2}`, join(dir, `node-${i + 2}`), [first.addr])))
    for (const started of rest) {
      if (started.status === 'rejected') throw started.reason
      nodes.push(started.value)
    }
    return await runLoad(procs, {
      kind: 'shoal', target, addrs: nodes.map(n => n.addr), phases: phases(options.ops),
      settleMs: options.settleMs, warmupMs: options.warmupMs, measureMs: options.measureMs, valueBytes: VALUE_BYTES, formTimeoutMs: FORM_TIMEOUT_MS
    }, nodes.map(n => n.child))
  } finally {
    await Promise.all(nodes.map(async n => { await procs.stop(n.child) }))
    await procs.removeDir(dir)
  }
}

function log (line: string): void {
  console.error(line)
}

function table (measured: Measured[]): string {
  const floorP50 = new Map(measured.filter(m => m.row.target === 'floor').map(m => [m.row.clients, m.row.p50Ms]))
  const header = ['target', 'op', 'callers', 'ops/s', 'p50 ms', 'p99 ms', 'errors', 'p50/floor', 'aim', 'cpu ms/op: servers', 'load']
  const ms = (x: number | undefined): string => x === undefined ? '-' : x.toFixed(2)
  const rows = measured.map(({ row, errors, serverCpuMs, loadCpuMs }) => {
    const base = floorP50.get(row.clients)
    const aim = AIMS[row.op]
    const ratio = row.target === 'floor' || base === undefined ? undefined : row.p50Ms / base
    return [
      row.target, row.op, String(row.clients), row.opsPerSec.toFixed(0), row.p50Ms.toFixed(2), row.p99Ms.toFixed(2), String(errors),
      ratio === undefined ? '' : `${ratio.toFixed(2)}x`,
      ratio === undefined || aim === undefined ? '' : `<= ${aim}x ${ratio <= aim ? 'met' : 'missed'}`,
      ms(serverCpuMs),
      ms(loadCpuMs)
    ]
  })
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map(r => (r[c] ?? '').length)))
  return [header, ...rows].map(r => r.map((cell, c) => c < 2 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0)).join('  ').trimEnd()).join('\n')
}

export async function run (args: string[]): Promise<void> {
  const options = parseOptions(args)
  const procs = new Processes()
  let interrupted = false
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = true
    log(`\nkv: ${signal}: stopping every process the bench started`)
    void procs.cleanup().finally(() => { process.exit(130) })
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.on('exit', procs.lastResort)
  const began = performance.now()
  const measured: Measured[] = []
  let profile: string | undefined
  let profileDir: string | undefined
  try {
    profileDir = options.profileDir === '' ? await procs.tempDir('shoal-bench-kv-profile-') : options.profileDir
    if (profileDir !== undefined) {
      await mkdir(profileDir, { recursive: true })
      procs.profileInto(profileDir)
    }
    console.log(`kv: ${VALUE_BYTES} B values, callers ${CALLERS.join(' and ')}; each target settles under load for ${options.settleMs} ms, then each phase warms up ${options.warmupMs} ms and measures ${options.measureMs} ms; ` +
      `${availableParallelism()} CPUs, Node ${process.version}; nodes, floor server and load generator are separate processes${profileDir === undefined ? '' : '; PROFILING: slower than unprofiled'}`)
    for (const target of options.targets) {
      if (target === 'floor') measured.push(...await measureFloor(procs, options))
      else measured.push(...await measureShoal(procs, options, target === 'shoal-3' ? 3 : 5))
    }
    // Every process has exited by now, so its profile is written; a temp profile dir goes next.
    if (profileDir !== undefined) profile = await summarizeProfiles(profileDir, procs.roles)
  } catch (err) {
    // A load cut short by Ctrl-C: the signal handler cleans up and exits, no error to show.
    if (interrupted) await new Promise(() => {})
    throw err
  } finally {
    await procs.cleanup()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.off('exit', procs.lastResort)
  }
  console.log('')
  console.log(table(measured))
  console.log([
    '',
    'aims (not asserted): put p50 <= 2.5x and get p50 <= 2x the floor\'s p50 at the same callers.',
    'cpu ms/op: CPU time (user + system) used in the measuring window per op, by the servers (floor server, or all Shoal nodes) and by the load generator.',
    `${((performance.now() - began) / 1000).toFixed(0)} s in all.`
  ].join('\n'))
  await mkdir(join(root, 'bench', 'results'), { recursive: true })
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: availableParallelism(),
    valueBytes: VALUE_BYTES,
    settleMs: options.settleMs,
    warmupMs: options.warmupMs,
    measureMs: options.measureMs,
    targets: options.targets,
    profiled: profileDir !== undefined
  }
  await writeFile(RESULTS, JSON.stringify({ results: measured.map(m => m.row), meta }, null, 2) + '\n')
  console.log(`rows written to ${RESULTS}`)
  if (profile !== undefined) console.log('\n' + profile)
}
