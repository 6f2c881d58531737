/**
 * What anti-entropy, hinted handoff and the Merkle trees cost and how fast they repair, on real
 * nodes. Prints numbers and asserts nothing. `npm run bench -- sync [--only ae|throughput|recovery]
 * [--big | --sizes=100000,1000000] [--differing=100] [--value-bytes=1024] [--seconds=10]
 * [--rounds=2] [--ae-interval=200] [--recovery-nodes=3,5] [--writes=10000] [--quiet-wait=300]
 * [--profile[=DIR]]`.
 *
 * - ae: two replicas (two in-process createNode nodes, N=2, so both own every partition) of the
 *   same keys, 100 of them differing (half missing on one side, half newer on the other), loaded
 *   straight into each data directory through Store before the nodes start (loading a million
 *   keys through puts would take hours). Nothing runs on its own; the bench times each node's
 *   start-up tree verification, then one syncNow() (wall time, bytes on the initiator) and a
 *   second one, which should find nothing.
 * - throughput: a 3-node cluster (N=3, separate processes) pre-loaded with 50k keys of which node 3
 *   lacks 20 %, under the put load of bench/kv-load.ts (32 callers, 1 KiB values), with
 *   anti-entropy every --ae-interval ms against off, in two pairs: while it checks its trees and
 *   repairs node 3 (the load starts at once), and with the replicas in sync and every tree cached
 *   (the load starts after the repair; with it off, after one syncNow per node). Each run starts
 *   from a fresh copy of the same pre-loaded directories.
 * - recovery: 3 and 5 nodes (separate processes, N=3, W=2, hints every 1 s, anti-entropy every
 *   2 s); one stops, 10k writes land, it restarts on its data directory and port; the bench times
 *   until no node holds hints and until its copy of every key it owns equals the others'.
 *
 * `--profile[=DIR]` profiles the node processes (V8 CPU profiler) over each measuring window of
 * throughput and recovery and prints where their CPU time went by role (bench/profile.ts);
 * profiled figures are slower than the benchmark's.
 *
 * The machine may be shared: before each measurement the bench waits (up to --quiet-wait s) until
 * other processes use at most 10 % of it, and each measurement reports their share meanwhile.
 *
 * Figures go to bench/results/sync-latest.json (with --only, the other sections are kept from
 * the last run). Every node, process and temp directory is stopped and removed at the end, on
 * error and on Ctrl-C.
 *
 * This file is also the child process the bench starts (`node bench/sync.ts '<job json>'`): a
 * loader that fills one data directory, or one node answering the bench over its IPC channel.
 */
import { execFileSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync, realpathSync } from 'node:fs'
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { Session } from 'node:inspector/promises'
import { fileURLToPath } from 'node:url'
import { update } from '../src/core/causality.ts'
import type { DvvSet } from '../src/core/causality.ts'
import { keyHash, topBits } from '../src/core/hash.ts'
import { DEFAULT_PARTITIONS } from '../src/core/ring.ts'
import type { ExchangeResult } from '../src/core/sync/exchange.ts'
import { createNode } from '../src/node.ts'
import type { GetResult, NodeOptions, NodeStatus, ShoalNode } from '../src/node.ts'
import { Store } from '../src/store/store.ts'
import type { LoadJob, LoadMessage, Row } from './kv-load.ts'
import { Processes, stderrTail } from './processes.ts'
import { summarizeProfiles } from './profile.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const SELF = fileURLToPath(import.meta.url)
const LOAD = join(root, 'bench', 'kv-load.ts')
const RESULTS = join(root, 'bench', 'results', 'sync-latest.json')

const SECTIONS = ['ae', 'throughput', 'recovery'] as const
type Section = typeof SECTIONS[number]
const USAGE = 'npm run bench -- sync [--only ae|throughput|recovery] [--big | --sizes=N,...] [--differing=N,...] [--value-bytes=B] [--seconds=S] [--rounds=R] [--ae-interval=MS] [--recovery-nodes=3,5] [--writes=N] [--quiet-wait=S] [--profile[=DIR]]'

const CLUSTER = 'bench-sync'
/** The writer of the pre-loaded objects: as if a coordinator had written them before. */
const LOADER_ACTOR = 'bench-loader'
const LOADED_AT = 1_700_000_000_000
/**
 * Anti-entropy "on" with its first exchange ~8 days away: the start-up tree verification runs
 * (it only does when anti-entropy is on) and no exchange happens unless the bench asks.
 */
const NEVER_MS = 700_000_000
const AIMS = { aeBytes: 1024 * 1024, aeMs: 10_000, throughputLoss: 0.10 }
const THROUGHPUT = { keys: 50_000, missingShare: 0.2, callers: 32, settleMs: 3_000, warmupMs: 1_000 }
const RECOVERY = { hintIntervalMs: 1000, antiEntropyIntervalMs: 2000, writers: 16, pollMs: 200, timeoutMs: 300_000 }
/** Before a measurement: wait while other processes use more than this share of the machine. */
const QUIET = { maxOtherPct: 10, sampleMs: 1000 }
const START_TIMEOUT_MS = 60_000
const FORM_TIMEOUT_MS = 60_000
/** SIGTERM, then this long before SIGKILL. */
const STOP_GRACE_MS = 10_000

interface Options {
  readonly only: readonly Section[]
  readonly sizes: readonly number[]
  /** Keys differing between the two replicas of the ae bench: half missing on one, half newer on the other. */
  readonly differing: readonly number[]
  readonly valueBytes: number
  readonly measureMs: number
  readonly rounds: number
  readonly aeIntervalMs: number
  readonly recoveryNodes: readonly number[]
  readonly writes: number
  /** The longest wait for a quiet machine before each measurement, in ms. */
  readonly quietWaitMs: number
  /** Profile the node processes into this directory; '' for a temp dir removed at the end. */
  readonly profileDir?: string
}

function parseOptions (args: string[]): Options {
  const values = new Map<string, string>()
  const flags = new Set<string>()
  for (let i = 0; i < args.length; i++) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(args[i] ?? '')
    if (match === null) throw new Error(`sync: unexpected argument ${JSON.stringify(args[i])}; usage: ${USAGE}`)
    const [, name = '', value] = match
    if (name === 'big' || (name === 'profile' && value === undefined)) flags.add(name)
    else if (name === 'profile') values.set(name, value ?? '')
    else if (['only', 'sizes', 'differing', 'value-bytes', 'seconds', 'rounds', 'ae-interval', 'recovery-nodes', 'writes', 'quiet-wait'].includes(name)) {
      const v = value ?? args[++i]
      if (v === undefined) throw new Error(`sync: --${name} takes a value; usage: ${USAGE}`)
      values.set(name, v)
    } else {
      throw new Error(`sync: unknown option --${name}; usage: ${USAGE}`)
    }
  }
  const numbers = (name: string, fallback: readonly number[]): number[] => {
    const list = values.get(name)?.split(',').map(Number) ?? [...fallback]
    if (list.length === 0 || list.some(n => !Number.isFinite(n) || n <= 0)) throw new Error(`sync: --${name} takes positive numbers`)
    return list
  }
  const one = (name: string, fallback: number): number => numbers(name, [fallback])[0] ?? fallback
  const only = values.get('only')?.split(',') ?? [...SECTIONS]
  const sections = SECTIONS.filter(s => only.includes(s))
  if (sections.length !== only.length) throw new Error(`sync: --only takes some of ${SECTIONS.join(',')}`)
  const sizes = numbers('sizes', flags.has('big') ? [100_000, 1_000_000] : [100_000])
  const differing = numbers('differing', [100])
  if (differing.some(n => !Number.isInteger(n) || n < 2)) throw new Error('sync: --differing takes integers of at least 2')
  if (sizes.some(n => !Number.isInteger(n) || n < 2 * Math.max(...differing))) throw new Error('sync: each of --sizes must be at least twice the largest --differing')
  const recoveryNodes = numbers('recovery-nodes', [3, 5])
  if (recoveryNodes.some(n => !Number.isInteger(n) || n < 3)) throw new Error('sync: --recovery-nodes takes integers of at least 3 (N=3)')
  return {
    only: sections,
    sizes,
    differing,
    valueBytes: Math.round(one('value-bytes', 1024)),
    measureMs: one('seconds', 10) * 1000,
    rounds: Math.round(one('rounds', 2)),
    aeIntervalMs: Math.round(one('ae-interval', 200)),
    recoveryNodes,
    writes: Math.round(one('writes', 10_000)),
    quietWaitMs: (values.get('quiet-wait') === '0' ? 0 : one('quiet-wait', 300)) * 1000,
    ...(flags.has('profile') ? { profileDir: '' } : values.has('profile') ? { profileDir: values.get('profile') ?? '' } : {})
  }
}

// ---------------------------------------------------------------------------------------------
// The data the bench loads: deterministic, so two loader processes write identical objects.

/** A closed range [from, to) of key indexes. */
type Range = readonly [number, number]

interface FillSpec {
  readonly dir: string
  /** Keys 0 .. keys-1, except `missing`; those in `newer` carry a second version over the first. */
  readonly keys: number
  readonly valueBytes: number
  readonly missing?: Range
  readonly newer?: Range
}

const inRange = (i: number, range: Range | undefined): boolean => range !== undefined && i >= range[0] && i < range[1]

function keyName (i: number): string {
  return `sync:${String(i).padStart(8, '0')}`
}

/** Pseudo-random bytes from (index, version): incompressible, like real values, and reproducible. */
function valueOf (i: number, version: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes)
  let x = (Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(version, 0x85ebca6b)) >>> 0 || 1
  for (let b = 0; b < bytes; b += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[b] = x & 0xff
    if (b + 1 < bytes) out[b + 1] = (x >>> 8) & 0xff
    if (b + 2 < bytes) out[b + 2] = (x >>> 16) & 0xff
    if (b + 3 < bytes) out[b + 3] = x >>> 24
  }
  return out
}

function objectOf (i: number, newer: boolean, bytes: number): DvvSet {
  const first = update(undefined, new Map(), LOADER_ACTOR, valueOf(i, 1, bytes), LOADED_AT)
  // A write that saw the first version: it replaces it, so the merge of both is this one.
  return newer ? update(first, first.vv, LOADER_ACTOR, valueOf(i, 2, bytes), LOADED_AT + 1) : first
}

/** Fills one data directory through Store.merge, 64 keys at a time (the loader child's job). */
async function fill (spec: FillSpec): Promise<{ written: number }> {
  const store = await Store.open(spec.dir, { partitions: DEFAULT_PARTITIONS })
  const encoder = new TextEncoder()
  let next = 0
  let written = 0
  try {
    const worker = async (): Promise<void> => {
      while (next < spec.keys) {
        const i = next++
        if (inRange(i, spec.missing)) continue
        await store.merge(encoder.encode(keyName(i)), objectOf(i, inRange(i, spec.newer), spec.valueBytes))
        written++
      }
    }
    await Promise.all(Array.from({ length: 64 }, worker))
  } finally {
    await store.close()
  }
  return { written }
}

/** How many partitions hold at least one of the keys a spec loads: the trees a node verifies at start. */
function heldPartitions (spec: Pick<FillSpec, 'keys' | 'missing'>): number {
  const encoder = new TextEncoder()
  const bits = Math.log2(DEFAULT_PARTITIONS)
  const held = new Set<number>()
  for (let i = 0; i < spec.keys; i++) if (!inRange(i, spec.missing)) held.add(topBits(keyHash(encoder.encode(keyName(i))), bits))
  return held.size
}

/** What a copy holds, as one comparable string: its context and a hash of its siblings. */
function fingerprint (copy: GetResult | undefined): string {
  if (copy === undefined) return 'absent'
  const hash = createHash('sha256')
  for (const value of [...copy.siblings].map(v => Buffer.from(v)).sort(Buffer.compare)) hash.update(value)
  return `${copy.context}:${copy.siblings.length}:${hash.digest('hex').slice(0, 16)}`
}

// ---------------------------------------------------------------------------------------------
// Child processes: a loader, or a node answering requests over IPC.

type ChildJob = { readonly role: 'fill', readonly spec: FillSpec } | { readonly role: 'node', readonly options: NodeOptions }

type NodeRequest =
  | { readonly type: 'status' }
  /** This node's own copy of each key, as a fingerprint. */
  | { readonly type: 'copies', readonly keys: readonly string[] }
  | { readonly type: 'owners', readonly keys: readonly string[] }
  /** Puts of these keys through this node as coordinator, `concurrency` at a time. */
  | { readonly type: 'write', readonly keys: readonly string[], readonly concurrency: number, readonly valueBytes: number }
  | { readonly type: 'sync' }
  /** Start the V8 CPU profiler, or stop it and write the profile into `dir` (named for bench/profile.ts). */
  | { readonly type: 'profile', readonly dir?: string }
  | { readonly type: 'stop' }

type NodeReply =
  | { readonly type: 'status', readonly status: NodeStatus }
  | { readonly type: 'copies', readonly copies: string[] }
  | { readonly type: 'owners', readonly owners: string[][] }
  | { readonly type: 'written', readonly ok: number, readonly failed: number, readonly firstError?: string }
  | { readonly type: 'synced', readonly result: ExchangeResult }
  | { readonly type: 'profiled' }
  | { readonly type: 'stopped' }
  | { readonly type: 'error', readonly message: string }

type ChildMessage =
  | { readonly type: 'started', readonly peerId: string, readonly addrs: string[] }
  | { readonly type: 'filled', readonly written: number }
  | { readonly type: 'failed', readonly message: string }
  | { readonly id: number, readonly reply: NodeReply }

function describe (err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

/** Sends and resolves once the message is handed to the channel, so exiting cannot drop it. */
async function sendToParent (message: ChildMessage): Promise<void> {
  await new Promise<void>(resolve => {
    if (process.send === undefined || !process.connected) resolve()
    else process.send(message, undefined, {}, () => { resolve() })
  })
}

let profiler: Session | undefined
let profiles = 0

async function answer (node: ShoalNode, request: NodeRequest): Promise<NodeReply> {
  switch (request.type) {
    case 'profile':
      if (request.dir === undefined) {
        profiler = new Session()
        profiler.connect()
        await profiler.post('Profiler.enable')
        await profiler.post('Profiler.start')
      } else if (profiler !== undefined) {
        const { profile } = await profiler.post('Profiler.stop')
        profiler.disconnect()
        profiler = undefined
        await writeFile(join(request.dir, `CPU.0.0.${process.pid}.${profiles++}.cpuprofile`), JSON.stringify(profile))
      }
      return { type: 'profiled' }
    case 'status':
      return { type: 'status', status: node.status() }
    case 'copies': {
      const copies: string[] = []
      for (const key of request.keys) copies.push(fingerprint(await node.getLocal(key)))
      return { type: 'copies', copies }
    }
    case 'owners':
      return { type: 'owners', owners: request.keys.map(key => node.owners(key)) }
    case 'write': {
      let next = 0
      let ok = 0
      let failed = 0
      let firstError: string | undefined
      const worker = async (): Promise<void> => {
        while (next < request.keys.length) {
          const key = request.keys[next++] as string
          try {
            await node.put(key, crypto.getRandomValues(new Uint8Array(request.valueBytes)))
            ok++
          } catch (err) {
            failed++
            firstError ??= describe(err)
          }
        }
      }
      await Promise.all(Array.from({ length: request.concurrency }, worker))
      return { type: 'written', ok, failed, ...(firstError === undefined ? {} : { firstError }) }
    }
    case 'sync':
      return { type: 'synced', result: await node.syncNow() }
    case 'stop':
      await node.stop()
      return { type: 'stopped' }
  }
}

async function runChild (job: ChildJob): Promise<void> {
  // The bench went away: nobody to answer, stop (a node closes its store first).
  let stopping: (() => Promise<void>) | undefined
  const quit = (): void => { void (stopping?.() ?? Promise.resolve()).finally(() => { process.exit(1) }) }
  process.on('disconnect', quit)
  process.on('SIGTERM', quit)
  if (job.role === 'fill') {
    try {
      const { written } = await fill(job.spec)
      await sendToParent({ type: 'filled', written })
      process.exit(0)
    } catch (err) {
      await sendToParent({ type: 'failed', message: describe(err) })
      process.exit(1)
    }
  }
  let node: ShoalNode
  try {
    node = await createNode(job.options)
  } catch (err) {
    await sendToParent({ type: 'failed', message: describe(err) })
    process.exit(1)
  }
  stopping = async () => { await node.stop() }
  process.on('message', (message: { id: number, request: NodeRequest }) => {
    void (async () => {
      let reply: NodeReply
      try {
        reply = await answer(node, message.request)
      } catch (err) {
        reply = { type: 'error', message: describe(err) }
      }
      await sendToParent({ id: message.id, reply })
      if (reply.type === 'stopped') process.exit(0)
    })()
  })
  await sendToParent({ type: 'started', peerId: node.peerId, addrs: node.addrs })
}

// ---------------------------------------------------------------------------------------------
// The bench's side: every child, in-process node and temp dir it makes, so all of them go at the end.

/** Processes (children, temp dirs) plus the in-process nodes the bench creates. */
class Harness extends Processes {
  private readonly nodes = new Set<ShoalNode>()

  /** `node bench/sync.ts <job>` with an IPC channel. */
  spawnChild (job: ChildJob, role: string): ChildProcess {
    return this.spawn(role, [SELF, JSON.stringify(job)], { ipc: true, stdout: 'ignore' })
  }

  /** bench/kv-load.ts: it reports over IPC; stderr is kept for the error message. */
  spawnLoad (job: LoadJob): ChildProcess {
    return this.spawn('load', [LOAD, JSON.stringify(job)], { ipc: true, stdout: 'ignore' })
  }

  async createNode (options: NodeOptions): Promise<ShoalNode> {
    const node = await createNode(options)
    this.nodes.add(node)
    return node
  }

  async stopNode (node: ShoalNode): Promise<void> {
    await node.stop()
    this.nodes.delete(node)
  }

  override async cleanup (): Promise<void> {
    await Promise.allSettled([...this.nodes].map(async n => { await this.stopNode(n) }))
    await super.cleanup()
  }
}

/** Fills data directories in loader processes, all at once (one core each). */
async function fillAll (h: Harness, specs: readonly FillSpec[]): Promise<number> {
  const began = performance.now()
  await Promise.all(specs.map(async spec => {
    const child = h.spawnChild({ role: 'fill', spec }, 'loader')
    const tail = stderrTail(child)
    await new Promise<void>((resolve, reject) => {
      child.on('message', (message: ChildMessage) => {
        if ('type' in message && message.type === 'filled') resolve()
        if ('type' in message && message.type === 'failed') reject(new Error(`filling ${spec.dir}: ${message.message}`))
      })
      child.once('exit', code => { reject(new Error(`the loader of ${spec.dir} exited with ${code}: ${tail()}`)) })
    })
  }))
  return performance.now() - began
}

/** A node in a child process, driven over IPC. */
class RemoteNode {
  readonly child: ChildProcess
  readonly peerId: string
  readonly addr: string
  readonly port: number
  readonly dataDir: string
  private readonly h: Harness
  private readonly pending = new Map<number, { resolve: (reply: NodeReply) => void, reject: (err: Error) => void }>()
  private next = 0

  private constructor (h: Harness, child: ChildProcess, started: { peerId: string, addrs: string[] }, dataDir: string, tail: () => string) {
    this.h = h
    this.child = child
    this.peerId = started.peerId
    const first = started.addrs[0] ?? ''
    this.addr = first.includes('/p2p/') ? first : `${first}/p2p/${started.peerId}`
    this.port = Number(/\/tcp\/(\d+)/.exec(first)?.[1] ?? 0)
    this.dataDir = dataDir
    child.on('message', (message: ChildMessage) => {
      if (!('id' in message)) return
      const waiting = this.pending.get(message.id)
      this.pending.delete(message.id)
      if (message.reply.type === 'error') waiting?.reject(new Error(`${this.peerId.slice(-6)}: ${message.reply.message}`))
      else waiting?.resolve(message.reply)
    })
    child.once('exit', code => {
      for (const waiting of this.pending.values()) waiting.reject(new Error(`node ${this.peerId.slice(-6)} exited with ${code}: ${tail()}`))
      this.pending.clear()
    })
  }

  static async start (h: Harness, options: NodeOptions, role: string): Promise<RemoteNode> {
    const child = h.spawnChild({ role: 'node', options }, role)
    const tail = stderrTail(child)
    const started = await new Promise<{ peerId: string, addrs: string[] }>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`a node did not start within ${START_TIMEOUT_MS} ms: ${tail()}`)) }, START_TIMEOUT_MS)
      child.on('message', (message: ChildMessage) => {
        if (!('type' in message)) return
        if (message.type === 'started') { clearTimeout(timer); resolve(message) }
        if (message.type === 'failed') { clearTimeout(timer); reject(new Error(`a node failed to start: ${message.message}`)) }
      })
      child.once('exit', code => { clearTimeout(timer); reject(new Error(`a node exited with ${code}: ${tail()}`)) })
    })
    return new RemoteNode(h, child, started, options.dataDir, tail)
  }

  async call<T extends NodeReply['type']> (request: NodeRequest, type: T): Promise<Extract<NodeReply, { type: T }>> {
    const id = this.next++
    const reply = await new Promise<NodeReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.child.send({ id, request }, err => {
        if (err !== null) {
          this.pending.delete(id)
          reject(err)
        }
      })
    })
    if (reply.type !== type) throw new Error(`asked ${request.type}, got a ${reply.type} reply`)
    return reply as Extract<NodeReply, { type: T }>
  }

  async status (): Promise<NodeStatus> {
    return (await this.call({ type: 'status' }, 'status')).status
  }

  /** Starts the profiler, or with `dir` stops it and writes the profile there. */
  async profile (dir?: string): Promise<void> {
    await this.call(dir === undefined ? { type: 'profile' } : { type: 'profile', dir }, 'profiled')
  }

  async copies (keys: readonly string[]): Promise<string[]> {
    return (await this.call({ type: 'copies', keys }, 'copies')).copies
  }

  /** Stops the node cleanly (its store closed), then the process. */
  async stop (): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const gone = new Promise<void>(resolve => this.child.once('exit', () => { resolve() }))
      await this.call({ type: 'stop' }, 'stopped').catch(() => {})
      await Promise.race([gone, sleep(STOP_GRACE_MS)])
    }
    await this.h.stop(this.child)
  }
}

function nodeOptions (dataDir: string, options: Partial<NodeOptions>): NodeOptions {
  return { dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], cluster: CLUSTER, mdns: false, ...options }
}

/** Node 1 first, then the others bootstrapped to it, all at once; `role` names them in profiles ('<role> node-<i>'). */
async function startCluster (h: Harness, dirs: readonly string[], options: Partial<NodeOptions>, role: string): Promise<RemoteNode[]> {
  const first = await RemoteNode.start(h, nodeOptions(dirs[0] as string, options), `${role} node-1`)
  const nodes = [first]
  const rest = await Promise.allSettled(dirs.slice(1).map(async (dir, i) =>
    await RemoteNode.start(h, nodeOptions(dir, { ...options, bootstrap: [first.addr] }), `${role} node-${i + 2}`)))
  for (const started of rest) {
    if (started.status === 'rejected') throw started.reason
    nodes.push(started.value)
  }
  return nodes
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** Polls `check` until it holds; throws naming `what` after `timeoutMs`. */
async function until (what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<void> {
  const end = performance.now() + timeoutMs
  while (!await check()) {
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`)
    await sleep(everyMs)
  }
}

function upCount (status: NodeStatus): number {
  return status.members.filter(m => m.state === 'up').length
}

function log (line: string): void {
  console.error(line)
}

/** Clock ticks per second of /proc/<pid>/stat's CPU times. */
const CLOCK_TICKS = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()) || 100
  } catch {
    return 100
  }
})()

/** CPU time (user + system, ms) the processes have used so far; undefined where /proc is not there. */
function cpuMs (children: readonly ChildProcess[]): number | undefined {
  let sum = 0
  for (const child of children) {
    try {
      const stat = readFileSync(`/proc/${child.pid ?? 0}/stat`, 'utf8')
      // Fields after the command name, which is in parentheses and may hold spaces.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      sum += (Number(fields[11]) + Number(fields[12])) * 1000 / CLOCK_TICKS
    } catch {
      return undefined
    }
  }
  return sum
}

/** Busy CPU time of the whole machine (all cores, ms) so far, from /proc/stat; undefined elsewhere. */
function machineBusyMs (): number | undefined {
  try {
    // cpu  user nice system idle iowait irq softirq steal ...
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]?.trim().split(/\s+/).slice(1).map(Number) ?? []
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields
    return (user + nice + system + irq + softirq + steal) * 1000 / CLOCK_TICKS
  } catch {
    return undefined
  }
}

/**
 * CPU over a window: the bench's own (this process and `children`) and the rest of the machine's.
 * The machine may be shared, and the rest says whether something else ran meanwhile.
 */
class CpuMeter {
  private readonly children: readonly ChildProcess[]
  private readonly began = performance.now()
  private readonly mine0: number | undefined
  private readonly machine0: number | undefined

  constructor (children: readonly ChildProcess[]) {
    this.children = children
    this.mine0 = this.mine()
    this.machine0 = machineBusyMs()
  }

  /** % of the machine's CPU (all cores) that other processes used since the meter was made. */
  otherPct (): number | undefined {
    const mine = this.mine()
    const machine = machineBusyMs()
    if (mine === undefined || machine === undefined || this.mine0 === undefined || this.machine0 === undefined) return undefined
    const capacity = (performance.now() - this.began) * availableParallelism()
    return round(Math.max(0, 100 * ((machine - this.machine0) - (mine - this.mine0)) / capacity), 1)
  }

  private mine (): number | undefined {
    const children = cpuMs(this.children)
    if (children === undefined) return undefined
    const own = process.cpuUsage()
    return children + (own.user + own.system) / 1000
  }
}

/**
 * Waits until processes other than the bench's use at most QUIET.maxOtherPct of the machine (over
 * one-second samples), for at most `maxWaitMs`; returns their share in the last sample.
 */
async function quietMachine (what: string, children: readonly ChildProcess[], maxWaitMs: number): Promise<number | undefined> {
  const began = performance.now()
  let warned = false
  for (;;) {
    const meter = new CpuMeter(children)
    await sleep(QUIET.sampleMs)
    const other = meter.otherPct()
    if (other === undefined || other <= QUIET.maxOtherPct) {
      if (warned) log(`${what}: quiet after ${((performance.now() - began) / 1000).toFixed(0)} s`)
      return other
    }
    if (performance.now() - began >= maxWaitMs) {
      log(`${what}: other processes still use ${other} % of the machine; measuring anyway`)
      return other
    }
    if (!warned) log(`${what}: other processes use ${other} % of the machine; waiting up to ${(maxWaitMs / 1000).toFixed(0)} s for them to finish`)
    warned = true
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Anti-entropy cost: two replicas, 100 keys differing.

interface AeRow {
  readonly keys: number
  readonly valueBytes: number
  readonly differing: number
  /** Both data directories, filled in parallel loader processes. */
  readonly loadMs: number
  /** From createNode resolved until treesVerified = the partitions it holds, per node (the other node idle). */
  readonly verifyMs: readonly [number, number]
  /** Partitions holding data on A and B: the trees each verifies at start. */
  readonly partitions: readonly [number, number]
  readonly syncMs: number
  readonly syncBytes: number
  readonly sync: ExchangeResult
  readonly againMs: number
  readonly againBytes: number
  readonly again: ExchangeResult
  /** Of the differing keys, how many are equal on both nodes afterwards. */
  readonly equalAfter: number
  /** CPU used by processes other than the bench's during the first sync, in % of the machine. */
  readonly otherCpuPct?: number
}

function syncBytes (node: ShoalNode): number {
  const ae = node.status().antiEntropy
  return ae.bytesSent + ae.bytesReceived
}

async function untilVerified (node: ShoalNode, partitions: number, timeoutMs: number): Promise<number> {
  const began = performance.now()
  await until(`node ${node.peerId.slice(-6)} verified its ${partitions} trees`, () => node.status().antiEntropy.treesVerified >= partitions, timeoutMs, 10)
  return performance.now() - began
}

async function measureAntiEntropy (h: Harness, options: Options, keys: number, differing: number): Promise<AeRow> {
  const dir = await h.tempDir(`shoal-bench-sync-ae-${keys}-`)
  try {
    const a = join(dir, 'a')
    const b = join(dir, 'b')
    const half = Math.floor(differing / 2)
    const missing: Range = [0, half]
    const newer: Range = [half, differing]
    log(`ae ${keys}: loading ${keys} keys of ${options.valueBytes} B into two data directories`)
    const specs: FillSpec[] = [
      { dir: a, keys, valueBytes: options.valueBytes },
      { dir: b, keys, valueBytes: options.valueBytes, missing, newer }
    ]
    const loadMs = await fillAll(h, specs)
    const [heldA = 0, heldB = 0] = specs.map(heldPartitions)
    log(`ae ${keys}: loaded in ${(loadMs / 1000).toFixed(1)} s; starting two nodes, one at a time`)
    await quietMachine(`ae ${keys}`, [], options.quietWaitMs)
    const quiet: Partial<NodeOptions> = { n: 2, antiEntropyIntervalMs: NEVER_MS, hintIntervalMs: 0, handoffIntervalMs: 0, reaperIntervalMs: 0 }
    const verifyTimeout = Math.max(120_000, keys / 10)
    const nodeA = await h.createNode(nodeOptions(a, quiet))
    const verifyA = await untilVerified(nodeA, heldA, verifyTimeout)
    const nodeB = await h.createNode(nodeOptions(b, { ...quiet, bootstrap: [`${nodeA.addrs[0] ?? ''}/p2p/${nodeA.peerId}`] }))
    const verifyB = await untilVerified(nodeB, heldB, verifyTimeout)
    await until('both nodes see each other up', () => upCount(nodeA.status()) === 2 && upCount(nodeB.status()) === 2, FORM_TIMEOUT_MS)
    log(`ae ${keys}: trees verified in ${(verifyA / 1000).toFixed(1)} s and ${(verifyB / 1000).toFixed(1)} s; exchanging`)

    await quietMachine(`ae ${keys}`, [], options.quietWaitMs)
    const bytes0 = syncBytes(nodeA)
    const cpu = new CpuMeter([])
    const t0 = performance.now()
    const sync = await nodeA.syncNow()
    const syncMs = performance.now() - t0
    const otherCpuPct = cpu.otherPct()
    const bytes1 = syncBytes(nodeA)
    const again = await nodeA.syncNow()
    const againMs = performance.now() - t0 - syncMs
    const againBytes = syncBytes(nodeA) - bytes1
    let equalAfter = 0
    for (let i = 0; i < differing; i++) {
      const [x, y] = await Promise.all([nodeA.getLocal(keyName(i)), nodeB.getLocal(keyName(i))])
      if (x !== undefined && fingerprint(x) === fingerprint(y)) equalAfter++
    }
    await h.stopNode(nodeB)
    await h.stopNode(nodeA)
    return {
      keys,
      valueBytes: options.valueBytes,
      differing,
      loadMs: round(loadMs),
      verifyMs: [round(verifyA), round(verifyB)],
      partitions: [heldA, heldB],
      syncMs: round(syncMs),
      syncBytes: bytes1 - bytes0,
      sync,
      againMs: round(againMs),
      againBytes,
      again,
      equalAfter,
      ...(otherCpuPct === undefined ? {} : { otherCpuPct })
    }
  } finally {
    await h.removeDir(dir)
  }
}

function aeTable (rows: readonly AeRow[]): string {
  const header = ['keys', 'differing', 'verify s (A, B)', 'sync s', 'sync KiB', 'parts differing', 'keys differing', 'repaired here/there', 'equal after', '2nd sync: differing', '2nd s', '2nd KiB', 'other cpu %', 'aim < 1 MB, < 10 s']
  const body = rows.map(r => [
    String(r.keys), String(r.differing),
    `${(r.verifyMs[0] / 1000).toFixed(1)}, ${(r.verifyMs[1] / 1000).toFixed(1)}`,
    (r.syncMs / 1000).toFixed(2), (r.syncBytes / 1024).toFixed(1),
    `${r.sync.differing}/${r.sync.compared}`, String(r.sync.keysDiffering), `${r.sync.repairedHere}/${r.sync.repairedThere}`,
    `${r.equalAfter}/${r.differing}`,
    String(r.again.differing), (r.againMs / 1000).toFixed(2), (r.againBytes / 1024).toFixed(1),
    r.otherCpuPct === undefined ? '-' : r.otherCpuPct.toFixed(0),
    `${r.syncBytes < AIMS.aeBytes ? 'met' : 'missed'}, ${r.syncMs < AIMS.aeMs ? 'met' : 'missed'}`
  ])
  return table(header, body)
}

// ---------------------------------------------------------------------------------------------
// 2. Foreground put throughput with anti-entropy running and off.

/**
 * Two pairs, each compared within itself:
 * - off / repairing: the load starts as soon as the cluster has formed; with anti-entropy on, the
 *   start-up tree check and the repair of node 3 run under it.
 * - off-synced / in-sync: the load starts once every tree is checked (and so cached) and node 3
 *   is repaired: by one syncNow() per node with anti-entropy off, by anti-entropy itself when on.
 *   The window holds steady-state exchanges. (A node with anti-entropy off loads a partition's
 *   tree from disk at its first write: comparing in-sync with a cold `off` would credit
 *   anti-entropy with that warm-up.)
 */
const MODES = ['off', 'repairing', 'off-synced', 'in-sync'] as const
type Mode = typeof MODES[number]
const BASELINE: Partial<Record<Mode, Mode>> = { repairing: 'off', 'in-sync': 'off-synced' }

interface ThroughputRun {
  readonly mode: Mode
  readonly intervalMs: number
  readonly row: Row
  readonly errors: number
  /** Summed over the nodes, within the measuring window. */
  readonly window: AeActivity
  /** Summed over the nodes, from their start to the window's end. */
  readonly total: AeActivity
  /** off-synced and in-sync: from starting the nodes until every tree was checked and node 3 repaired (the load starts after). */
  readonly readyMs?: number
  /** CPU time (user + system) of all nodes in the window, per put. */
  readonly nodeCpuMsPerOp?: number
  /** CPU used by processes other than the bench's in the window, in % of the machine. */
  readonly otherCpuPct?: number
}

interface AeActivity {
  readonly exchanges: number
  readonly failed: number
  readonly deferred: number
  readonly keysRepaired: number
  readonly bytes: number
  readonly treesVerified: number
}

function activity (statuses: readonly NodeStatus[]): AeActivity {
  const sum = (f: (s: NodeStatus) => number): number => statuses.reduce((n, s) => n + f(s), 0)
  return {
    exchanges: sum(s => s.antiEntropy.exchanges),
    failed: sum(s => s.antiEntropy.failed),
    deferred: sum(s => s.antiEntropy.deferred),
    keysRepaired: sum(s => s.antiEntropy.keysRepaired),
    bytes: sum(s => s.antiEntropy.bytesSent + s.antiEntropy.bytesReceived),
    treesVerified: sum(s => s.antiEntropy.treesVerified)
  }
}

function minus (a: AeActivity, b: AeActivity): AeActivity {
  return {
    exchanges: a.exchanges - b.exchanges,
    failed: a.failed - b.failed,
    deferred: a.deferred - b.deferred,
    keysRepaired: a.keysRepaired - b.keysRepaired,
    bytes: a.bytes - b.bytes,
    treesVerified: a.treesVerified - b.treesVerified
  }
}

interface Preloaded {
  readonly templates: readonly string[]
  /** Partitions holding data per node: the trees each checks at start. */
  readonly held: readonly number[]
  /** Keys node 3 lacks: what the exchanges repair in all. */
  readonly missing: number
}

async function throughputRun (h: Harness, options: Options, data: Preloaded, mode: Mode, label: string): Promise<ThroughputRun> {
  const dir = await h.tempDir('shoal-bench-sync-tp-')
  let nodes: RemoteNode[] = []
  try {
    const dirs = data.templates.map((_, i) => join(dir, `node-${i + 1}`))
    await Promise.all(data.templates.map(async (template, i) => { await cp(template, dirs[i] as string, { recursive: true }) }))
    const intervalMs = mode === 'off' || mode === 'off-synced' ? 0 : options.aeIntervalMs
    await quietMachine(label, [], options.quietWaitMs)
    const started = performance.now()
    // Only anti-entropy differs between runs; handoff and the reaper have nothing to do here.
    nodes = await startCluster(h, dirs, { n: 3, r: 2, w: 2, antiEntropyIntervalMs: intervalMs, handoffIntervalMs: 0, reaperIntervalMs: 0 }, `throughput, ${mode},`)
    const statuses = async (): Promise<NodeStatus[]> => await Promise.all(nodes.map(async n => await n.status()))
    let readyMs: number | undefined
    if (mode === 'off-synced' || mode === 'in-sync') {
      await until(`every node sees ${nodes.length} up`, async () => (await statuses()).every(s => upCount(s) === nodes.length), FORM_TIMEOUT_MS, 100)
      // One at a time, as a background exchange would be: each checks its own trees first.
      if (mode === 'off-synced') for (const node of nodes) await node.call({ type: 'sync' }, 'synced')
      await until('every tree checked and node 3 repaired', async () => {
        const now = await statuses()
        return now.every((s, i) => s.antiEntropy.treesVerified >= (data.held[i] ?? 0)) && activity(now).keysRepaired >= data.missing
      }, RECOVERY.timeoutMs, 250)
      readyMs = round(performance.now() - started)
      log(`${label}: trees checked and node 3 repaired ${(readyMs / 1000).toFixed(1)} s after start`)
    }
    const job: LoadJob = {
      kind: 'shoal',
      target: label,
      addrs: nodes.map(n => n.addr),
      phases: [{ op: 'put', clients: THROUGHPUT.callers }],
      settleMs: THROUGHPUT.settleMs,
      warmupMs: THROUGHPUT.warmupMs,
      measureMs: options.measureMs,
      valueBytes: 1024,
      formTimeoutMs: FORM_TIMEOUT_MS
    }
    const children = nodes.map(n => n.child)
    const load = h.spawnLoad(job)
    const tail = stderrTail(load)
    let opened: { ae: AeActivity, cpu?: number, meter: CpuMeter } | undefined
    let closed: { ae: AeActivity, cpu?: number, otherCpuPct?: number, row: Row, ops: number, errors: number } | undefined
    let failure: string | undefined
    let done = false
    // Snapshots are taken in message order: the window's before the row's.
    let snapshots = Promise.resolve()
    load.on('message', (message: LoadMessage) => {
      switch (message.type) {
        case 'formed':
          log(`${label}: formed (${(message.ms / 1000).toFixed(1)} s), settling under load for ${THROUGHPUT.settleMs / 1000} s`)
          break
        case 'window': {
          const cpu = cpuMs(children)
          const meter = new CpuMeter([...children, load])
          snapshots = snapshots.then(async () => {
            opened = { ae: activity(await statuses()), meter, ...(cpu === undefined ? {} : { cpu }) }
            if (options.profileDir !== undefined) await Promise.all(nodes.map(async n => { await n.profile() }))
          })
          break
        }
        case 'row': {
          const cpu = cpuMs(children)
          const otherCpuPct = opened?.meter.otherPct()
          const { row, ops, errors } = message
          snapshots = snapshots.then(async () => {
            closed = { ae: activity(await statuses()), ...(cpu === undefined ? {} : { cpu }), ...(otherCpuPct === undefined ? {} : { otherCpuPct }), row, ops, errors }
            const dir = options.profileDir
            if (dir !== undefined) await Promise.all(nodes.map(async n => { await n.profile(dir) }))
          })
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
    const how = await new Promise<string>(resolve => load.once('exit', (code, signal) => { resolve(signal ?? `code ${code}`) }))
    await snapshots
    if (failure !== undefined) throw new Error(`${label} load: ${failure}`)
    if (!done || opened === undefined || closed === undefined) throw new Error(`${label} load exited (${how}) before it was done: ${tail()}`)
    const cpu = opened.cpu === undefined || closed.cpu === undefined || closed.ops === 0 ? undefined : (closed.cpu - opened.cpu) / closed.ops
    const run: ThroughputRun = {
      mode,
      intervalMs,
      row: closed.row,
      errors: closed.errors,
      window: minus(closed.ae, opened.ae),
      total: closed.ae,
      ...(readyMs === undefined ? {} : { readyMs }),
      ...(cpu === undefined ? {} : { nodeCpuMsPerOp: round(cpu, 3) }),
      ...(closed.otherCpuPct === undefined ? {} : { otherCpuPct: closed.otherCpuPct })
    }
    log(`${label}: ${run.row.opsPerSec.toFixed(0)} puts/s, p50 ${run.row.p50Ms.toFixed(1)} ms, p99 ${run.row.p99Ms.toFixed(1)} ms; ` +
      `anti-entropy in the window: ${run.window.treesVerified} trees checked, ${run.window.exchanges} exchanges ended (${run.window.failed} failed, ${run.window.deferred} deferred), ` +
      `${run.window.keysRepaired} keys repaired, ${(run.window.bytes / 2 ** 20).toFixed(1)} MiB; other processes used ${run.otherCpuPct ?? '?'} % of the machine`)
    return run
  } finally {
    await Promise.allSettled(nodes.map(async n => { await n.stop() }))
    await h.removeDir(dir)
  }
}

interface Side {
  readonly runs: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly nodeCpuMsPerOp: number
  /** Against off: puts/s lost and node CPU per put added, in %. */
  readonly lossPct?: number
  readonly cpuPerPutPct?: number
}

interface ThroughputResult {
  readonly keys: number
  readonly missing: number
  readonly runs: readonly ThroughputRun[]
  /** Means over the runs of each mode. */
  readonly modes: Readonly<Record<Mode, Side>>
}

async function measureThroughput (h: Harness, options: Options): Promise<ThroughputResult> {
  const dir = await h.tempDir('shoal-bench-sync-templates-')
  try {
    const keys = THROUGHPUT.keys
    const missing = Math.round(keys * THROUGHPUT.missingShare)
    const templates = [1, 2, 3].map(i => join(dir, `node-${i}`))
    log(`throughput: loading ${keys} keys into three data directories, node 3 without ${missing} of them`)
    const specs: FillSpec[] = templates.map((t, i) => ({ dir: t, keys, valueBytes: 1024, ...(i === 2 ? { missing: [0, missing] as Range } : {}) }))
    const loadMs = await fillAll(h, specs)
    const data: Preloaded = { templates, held: specs.map(heldPartitions), missing }
    log(`throughput: loaded in ${(loadMs / 1000).toFixed(1)} s`)
    // Forward, then backward, ...: a drift over the runs weighs on every mode alike.
    const order: Mode[] = []
    for (let r = 0; r < options.rounds; r++) order.push(...(r % 2 === 0 ? MODES : [...MODES].reverse()))
    const runs: ThroughputRun[] = []
    for (const [i, mode] of order.entries()) {
      runs.push(await throughputRun(h, options, data, mode, `throughput run ${i + 1}/${order.length} (${describeMode(mode, options.aeIntervalMs)})`))
    }
    const mean = (mode: Mode): Side => {
      const of = runs.filter(r => r.mode === mode)
      const avg = (f: (r: ThroughputRun) => number | undefined): number => round(of.reduce((n, r) => n + (f(r) ?? Number.NaN), 0) / of.length, 2)
      return { runs: of.length, opsPerSec: avg(r => r.row.opsPerSec), p50Ms: avg(r => r.row.p50Ms), p99Ms: avg(r => r.row.p99Ms), nodeCpuMsPerOp: avg(r => r.nodeCpuMsPerOp) }
    }
    const against = (side: Side, base: Side): Side => ({
      ...side,
      lossPct: round(100 * (1 - side.opsPerSec / base.opsPerSec), 1),
      cpuPerPutPct: round(100 * (side.nodeCpuMsPerOp / base.nodeCpuMsPerOp - 1), 1)
    })
    const off = mean('off')
    const offSynced = mean('off-synced')
    return {
      keys,
      missing,
      runs,
      modes: { off, repairing: against(mean('repairing'), off), 'off-synced': offSynced, 'in-sync': against(mean('in-sync'), offSynced) }
    }
  } finally {
    await h.removeDir(dir)
  }
}

function describeMode (mode: Mode, intervalMs: number): string {
  switch (mode) {
    case 'off': return 'anti-entropy off'
    case 'repairing': return `anti-entropy every ${intervalMs} ms, repairing node 3`
    case 'off-synced': return 'anti-entropy off, after one syncNow per node'
    case 'in-sync': return `anti-entropy every ${intervalMs} ms, replicas in sync`
  }
}

function throughputTable (result: ThroughputResult): string {
  const header = ['run', 'anti-entropy', 'puts/s', 'p50 ms', 'p99 ms', 'errors', 'node cpu ms/put', 'other cpu %', 'trees checked', 'exchanges', 'failed', 'deferred', 'keys repaired', 'AE MiB', 'ready s']
  const body = result.runs.map((r, i) => [
    String(i + 1), r.mode,
    r.row.opsPerSec.toFixed(0), r.row.p50Ms.toFixed(2), r.row.p99Ms.toFixed(2), String(r.errors),
    r.nodeCpuMsPerOp === undefined ? '-' : r.nodeCpuMsPerOp.toFixed(2),
    r.otherCpuPct === undefined ? '-' : r.otherCpuPct.toFixed(0),
    String(r.window.treesVerified), String(r.window.exchanges), String(r.window.failed), String(r.window.deferred),
    String(r.window.keysRepaired), (r.window.bytes / 2 ** 20).toFixed(1),
    r.readyMs === undefined ? '-' : (r.readyMs / 1000).toFixed(1)
  ])
  const mean = MODES.map(mode => {
    const m = result.modes[mode]
    return [`mean of ${m.runs}`, mode, m.opsPerSec.toFixed(0), m.p50Ms.toFixed(2), m.p99Ms.toFixed(2), '', m.nodeCpuMsPerOp.toFixed(2)]
  })
  return table(header, [...body, ...mean])
}

// ---------------------------------------------------------------------------------------------
// 3. Recovery: a node stops, writes land, it comes back.

interface RecoveryRow {
  readonly nodes: number
  readonly writes: number
  readonly acknowledged: number
  readonly failed: number
  /** Keys the stopped node is an owner of. */
  readonly owned: number
  /** Keys whose live owners' copies differed before the restart (expected 0). */
  readonly liveOwnersDiffering: number
  readonly hintsHeldAtRestart: number
  readonly hintsDelivered: number
  /** From the restart (process spawned) until the node answered, until every node saw it up, until no node held hints, until its copies matched. */
  readonly startedMs: number
  readonly seenUpMs?: number
  readonly hintsZeroMs?: number
  readonly matchedMs?: number
  /** Its copies still differing when the bench stopped waiting (0 when matched). */
  readonly stillDiffering: number
  readonly aeKeysRepaired: number
  /** After matching: keys whose owners' copies are not all equal, and a syncNow from the returned node. */
  readonly finalMismatches: number
  readonly finalSync?: ExchangeResult
  /** [s since the restart, hints held on all nodes, its copies still differing] at each poll. */
  readonly trace: Array<[number, number, number]>
  /** CPU used by processes other than the bench's from the restart until matched, in % of the machine. */
  readonly otherCpuPct?: number
}

async function measureRecovery (h: Harness, options: Options, size: number): Promise<RecoveryRow> {
  const dir = await h.tempDir(`shoal-bench-sync-recovery-${size}-`)
  let nodes: RemoteNode[] = []
  try {
    const dirs = Array.from({ length: size }, (_, i) => join(dir, `node-${i + 1}`))
    const settings: Partial<NodeOptions> = {
      n: 3, r: 2, w: 2, hintIntervalMs: RECOVERY.hintIntervalMs, antiEntropyIntervalMs: RECOVERY.antiEntropyIntervalMs
    }
    log(`recovery ${size}: starting ${size} nodes`)
    nodes = await startCluster(h, dirs, settings, `recovery ${size},`)
    const statuses = async (): Promise<NodeStatus[]> => await Promise.all(nodes.map(async n => await n.status()))
    await until(`every node sees ${size} up`, async () => (await statuses()).every(s => upCount(s) === size), FORM_TIMEOUT_MS, 200)

    await quietMachine(`recovery ${size}`, nodes.map(n => n.child), options.quietWaitMs)
    const victimIndex = size - 1
    const victim = nodes[victimIndex] as RemoteNode
    const live = nodes.filter(n => n !== victim)
    await victim.stop()
    nodes = live
    // Let the others notice first, so writes go to fallbacks at once instead of after a timeout.
    await until('the others see the stopped node down', async () => (await statuses()).every(s => s.members.find(m => m.peerId === victim.peerId)?.state !== 'up'), FORM_TIMEOUT_MS, 200)

    const keys = Array.from({ length: options.writes }, (_, i) => `recovery:${String(i).padStart(6, '0')}`)
    log(`recovery ${size}: node ${victimIndex + 1} stopped and seen down; writing ${keys.length} keys through the ${live.length} others`)
    const written = await Promise.all(live.map(async (node, i) => await node.call({
      type: 'write', keys: keys.filter((_, k) => k % live.length === i), concurrency: RECOVERY.writers, valueBytes: 1024
    }, 'written')))
    const acknowledged = written.reduce((n, w) => n + w.ok, 0)
    const failed = written.reduce((n, w) => n + w.failed, 0)
    if (failed > 0) log(`recovery ${size}: ${failed} writes failed, e.g. ${written.find(w => w.firstError !== undefined)?.firstError ?? ''}`)

    const owners = (await live[0]!.call({ type: 'owners', keys }, 'owners')).owners
    const owned = keys.flatMap((_, k) => owners[k]?.includes(victim.peerId) === true ? [k] : [])
    const ownedKeys = owned.map(k => keys[k] as string)
    const liveCopies = new Map(await Promise.all(live.map(async n => [n.peerId, await n.copies(ownedKeys)] as const)))
    const expected = new Map<string, string>()
    let liveOwnersDiffering = 0
    owned.forEach((k, i) => {
      const copies = (owners[k] ?? []).filter(o => o !== victim.peerId).map(o => liveCopies.get(o)?.[i] ?? 'absent')
      if (new Set(copies).size !== 1) liveOwnersDiffering++
      expected.set(keys[k] as string, copies[0] ?? 'absent')
    })
    const before = await statuses()
    const hintsHeldAtRestart = before.reduce((n, s) => n + s.hintsPending, 0)
    const deliveredBefore = before.reduce((n, s) => n + s.hintsDelivered, 0)

    log(`recovery ${size}: ${acknowledged} writes acknowledged, ${ownedKeys.length} of them owned by the stopped node, ${hintsHeldAtRestart} hints held; restarting it`)
    // The returned node's process joins the list once started; its CPU before that is none.
    const mine = live.map(n => n.child)
    const meter = new CpuMeter(mine)
    const t0 = performance.now()
    const back = await RemoteNode.start(h, nodeOptions(victim.dataDir, {
      ...settings, listen: [`/ip4/127.0.0.1/tcp/${victim.port}`], bootstrap: live.map(n => n.addr)
    }), `recovery ${size}, returned node`)
    const startedMs = performance.now() - t0
    mine.push(back.child)
    nodes = [...live, back]
    if (options.profileDir !== undefined) await Promise.all(nodes.map(async n => { await n.profile() }))
    let seenUpMs: number | undefined
    let hintsZeroMs: number | undefined = hintsHeldAtRestart === 0 ? 0 : undefined
    let matchedMs: number | undefined
    let pending = ownedKeys
    const trace: Array<[number, number, number]> = []
    const deadline = t0 + RECOVERY.timeoutMs
    while ((hintsZeroMs === undefined || matchedMs === undefined) && performance.now() < deadline) {
      const now = await statuses()
      const at = performance.now() - t0
      if (seenUpMs === undefined && now.every(s => s.members.find(m => m.peerId === back.peerId)?.state === 'up')) seenUpMs = at
      if (hintsZeroMs === undefined && now.every(s => s.hintsPending === 0)) hintsZeroMs = at
      if (matchedMs === undefined) {
        const copies = await back.copies(pending)
        pending = pending.filter((key, k) => copies[k] !== expected.get(key))
        if (pending.length === 0) matchedMs = performance.now() - t0
      }
      trace.push([round(at / 1000, 1), now.reduce((n, s) => n + s.hintsPending, 0), pending.length])
      await sleep(RECOVERY.pollMs)
    }
    const after = await statuses()
    const otherCpuPct = meter.otherPct()
    const profileDir = options.profileDir
    if (profileDir !== undefined) await Promise.all(nodes.map(async n => { await n.profile(profileDir) }))
    log(`recovery ${size}: [s, hints held, copies differing] every ~second: ${JSON.stringify(thin(trace))}`)
    log(`recovery ${size}: ${matchedMs === undefined ? `${pending.length} copies still differ after ${RECOVERY.timeoutMs / 1000} s` : `matched after ${(matchedMs / 1000).toFixed(1)} s`}; checking every owner of every key`)

    // Every owner of every key holds the same copy, and an exchange finds nothing more.
    const all = new Map(await Promise.all(nodes.map(async n => [n.peerId, await n.copies(keys)] as const)))
    let finalMismatches = 0
    keys.forEach((_, k) => {
      if (new Set((owners[k] ?? []).map(o => all.get(o)?.[k] ?? 'absent')).size !== 1) finalMismatches++
    })
    const finalSync = (await back.call({ type: 'sync' }, 'synced')).result
    return {
      nodes: size,
      writes: keys.length,
      acknowledged,
      failed,
      owned: ownedKeys.length,
      liveOwnersDiffering,
      hintsHeldAtRestart,
      hintsDelivered: after.reduce((n, s) => n + s.hintsDelivered, 0) - deliveredBefore,
      startedMs: round(startedMs),
      ...(seenUpMs === undefined ? {} : { seenUpMs: round(seenUpMs) }),
      ...(hintsZeroMs === undefined ? {} : { hintsZeroMs: round(hintsZeroMs) }),
      ...(matchedMs === undefined ? {} : { matchedMs: round(matchedMs) }),
      stillDiffering: pending.length,
      // `before` has the live nodes only; the returned node counts from 0.
      aeKeysRepaired: after.reduce((n, s) => n + s.antiEntropy.keysRepaired, 0) - before.reduce((n, s) => n + s.antiEntropy.keysRepaired, 0),
      finalMismatches,
      finalSync,
      trace,
      ...(otherCpuPct === undefined ? {} : { otherCpuPct })
    }
  } finally {
    await Promise.allSettled(nodes.map(async n => { await n.stop() }))
    await h.removeDir(dir)
  }
}

/** About one sample a second, and the last. */
function thin (trace: ReadonlyArray<[number, number, number]>): Array<[number, number, number]> {
  return trace.filter((sample, i) => i === trace.length - 1 || Math.floor(sample[0]) !== Math.floor(trace[i - 1]?.[0] ?? -1))
}

function recoveryTable (rows: readonly RecoveryRow[]): string {
  const s = (ms: number | undefined): string => ms === undefined ? 'not yet' : (ms / 1000).toFixed(1)
  const header = ['nodes', 'writes acked', 'owned by it', 'hints held', 'hints delivered', 'node up s', 'seen up s', 'hints 0 s', 'replicas match s', 'AE keys repaired', 'final: owners differing', 'syncNow differing', 'other cpu %']
  const body = rows.map(r => [
    String(r.nodes), `${r.acknowledged}/${r.writes}`, String(r.owned), String(r.hintsHeldAtRestart), String(r.hintsDelivered),
    s(r.startedMs), s(r.seenUpMs), r.hintsHeldAtRestart === 0 ? 'none held' : s(r.hintsZeroMs),
    r.matchedMs === undefined ? `not (${r.stillDiffering} differ)` : s(r.matchedMs),
    String(r.aeKeysRepaired), String(r.finalMismatches), r.finalSync === undefined ? '-' : `${r.finalSync.keysDiffering} keys`,
    r.otherCpuPct === undefined ? '-' : r.otherCpuPct.toFixed(0)
  ])
  return table(header, body)
}

// ---------------------------------------------------------------------------------------------

function round (x: number, digits = 0): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

function table (header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map(r => (r[c] ?? '').length)))
  return [header, ...rows].map(r => r.map((cell, c) => cell.padStart(widths[c] ?? 0)).join('  ')).join('\n')
}

/** The commit measured, and whether src/ had uncommitted changes (read-only git; no index refresh). */
function codeVersion (): { commit?: string, srcModified?: boolean } {
  try {
    const git = (...args: string[]): string => execFileSync('git', ['--no-optional-locks', ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    return { commit: git('rev-parse', 'HEAD'), srcModified: git('status', '--porcelain', '--', 'src') !== '' }
  } catch {
    return {}
  }
}

interface Results {
  antiEntropy?: { date: string, rows: AeRow[] }
  throughput?: { date: string, result: ThroughputResult }
  recovery?: { date: string, rows: RecoveryRow[] }
  meta?: Record<string, unknown>
}

export async function run (args: string[]): Promise<void> {
  const options = parseOptions(args)
  const h = new Harness()
  let interrupted = false
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = true
    log(`\nsync: ${signal}: stopping every node and process the bench started`)
    void h.cleanup().finally(() => { process.exit(130) })
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.on('exit', h.lastResort)
  const began = performance.now()
  const date = new Date().toISOString()
  const results: Results = await readFile(RESULTS, 'utf8').then(text => JSON.parse(text) as Results, () => ({}))
  results.meta = { date, ...codeVersion(), node: process.version, cpus: availableParallelism(), partitions: DEFAULT_PARTITIONS, options, aims: AIMS }
  // After each section, so a failure later keeps what was measured.
  const save = async (): Promise<void> => {
    await mkdir(join(root, 'bench', 'results'), { recursive: true })
    await writeFile(RESULTS, JSON.stringify(results, null, 2) + '\n')
  }
  let profileDir: string | undefined
  let profile: string | undefined
  try {
    profileDir = options.profileDir === '' ? await h.tempDir('shoal-bench-sync-profile-') : options.profileDir
    if (profileDir !== undefined) await mkdir(profileDir, { recursive: true })
    const profiling = { ...options, ...(profileDir === undefined ? {} : { profileDir }) }
    const version = codeVersion()
    console.log(`sync: ${options.only.join(', ')}; ${availableParallelism()} CPUs, Node ${process.version}, ${DEFAULT_PARTITIONS} partitions; ` +
      `commit ${version.commit?.slice(0, 7) ?? '?'}${version.srcModified === true ? ' with src/ modified' : ''}`)
    if (options.only.includes('ae')) {
      const rows: AeRow[] = []
      for (const size of options.sizes) for (const differing of options.differing) rows.push(await measureAntiEntropy(h, options, size, differing))
      results.antiEntropy = { date, rows }
      await save()
      console.log(`\nanti-entropy cost: two in-process nodes (N=2), ${options.valueBytes} B values; of the differing keys half are missing on node B, half newer on B; node A runs syncNow()`)
      console.log(aeTable(rows))
      console.log(`verify: start-up tree check of every partition holding data (${[...new Set(rows.map(r => r.partitions.join(' and ')))].join(', ')} of ${DEFAULT_PARTITIONS}), from createNode resolved, the other node idle. ` +
        'sync KiB: requests sent + replies received by the initiator. ' +
        `load: ${rows.map(r => `${r.keys} keys ${(r.loadMs / 1000).toFixed(0)} s`).join(', ')} (two loader processes, Store.merge).`)
    }
    if (options.only.includes('throughput')) {
      const result = await measureThroughput(h, profiling)
      results.throughput = { date, result }
      await save()
      console.log(`\nput throughput, anti-entropy off vs every ${options.aeIntervalMs} ms: 3 node processes (N=3 R=2 W=2), ${result.keys} keys pre-loaded, node 3 without ${result.missing}; ` +
        `${THROUGHPUT.callers} callers of 1 KiB puts (bench/kv-load.ts), ${options.measureMs / 1000} s measured per run`)
      console.log(throughputTable(result))
      for (const mode of ['repairing', 'in-sync'] as const) {
        const m = result.modes[mode]
        const base = BASELINE[mode] as Mode
        const b = result.modes[base]
        const loss = m.lossPct ?? Number.NaN
        console.log(`${describeMode(mode, options.aeIntervalMs)}: ${loss.toFixed(1)} % fewer puts/s than ${base} (aim <= ${AIMS.throughputLoss * 100} %: ${loss <= AIMS.throughputLoss * 100 ? 'met' : 'missed'}), ` +
          `p50 ${m.p50Ms.toFixed(1)} vs ${b.p50Ms.toFixed(1)} ms, p99 ${m.p99Ms.toFixed(1)} vs ${b.p99Ms.toFixed(1)} ms, ${(m.cpuPerPutPct ?? Number.NaN).toFixed(1)} % more node CPU per put`)
      }
      const disturbed = result.runs.filter(r => (r.otherCpuPct ?? 0) > QUIET.maxOtherPct).length
      if (disturbed > 0) console.log(`${disturbed} of ${result.runs.length} runs shared the machine with other processes (other cpu % > ${QUIET.maxOtherPct}): their figures are not comparable.`)
      console.log('off, repairing: the load starts once the cluster has formed (with anti-entropy on, the start-up tree check and the repair of node 3 run under it); ' +
        'off-synced, in-sync: the load starts once every tree is checked and node 3 repaired (ready s after start), by one syncNow per node or by anti-entropy. ' +
        'Anti-entropy columns: summed over the nodes within the measuring window; keys repaired counts exchanges that ended in it, MiB counts requests and replies as they go. Runs vary ±25 % on this machine (see README).')
    }
    if (options.only.includes('recovery')) {
      const rows: RecoveryRow[] = []
      for (const size of options.recoveryNodes) rows.push(await measureRecovery(h, profiling, size))
      results.recovery = { date, rows }
      await save()
      console.log(`\nrecovery: node processes (N=3 R=2 W=2, hints every ${RECOVERY.hintIntervalMs} ms, anti-entropy every ${RECOVERY.antiEntropyIntervalMs} ms); one stops, ${options.writes} puts of 1 KiB land, it restarts on its data dir and port`)
      console.log(recoveryTable(rows))
      console.log(`times from the restart (process spawned): node up = it answers; seen up = every node sees it up; hints 0 = no node holds hints; replicas match = its copy of every key it owns equals the others' (polled every ${RECOVERY.pollMs} ms plus a read of the keys still differing).`)
    }
    // A temp profile dir goes in the cleanup below.
    if (profileDir !== undefined) profile = await summarizeProfiles(profileDir, h.roles)
  } catch (err) {
    // Cut short by Ctrl-C: the signal handler cleans up and exits, no error to show.
    if (interrupted) await new Promise(() => {})
    throw err
  } finally {
    await h.cleanup()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.off('exit', h.lastResort)
  }
  console.log(`\n${((performance.now() - began) / 1000).toFixed(0)} s in all; figures written to ${RESULTS}`)
  if (profile !== undefined) console.log('\n' + profile)
}

function isEntry (): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(SELF)
  } catch {
    return false
  }
}

if (isEntry()) await runChild(JSON.parse(process.argv[2] ?? '{}') as ChildJob)
