/**
 * `npm run bench -- load`: one `shoal start` process (N=R=W=1, so every request is served by
 * that process alone) under a burst of concurrent client requests, then under hostile peers that
 * pin streams: readers that never read a large reply, readers that take one flow-control window
 * every few seconds, peers that open streams and send nothing, and peers that send a frame one
 * byte at a time. Prints the node's RSS (VmRSS, and its peak VmHWM) idle, under the burst and
 * after, what the burst got (answered, refused as busy, failed), and whether a normal client kept
 * being served during the abuse. test/system/load.spec.ts runs the same pieces and asserts on
 * outcomes; this prints the figures.
 */
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { toBytes } from '../src/core/bytes.ts'
import { createClient } from '../src/client.ts'
import type { ShoalClient } from '../src/client.ts'
import { encodeKvRequest } from '../src/net/codec.ts'
import { KV_PROTOCOL } from '../src/net/constants.ts'
import { createFloorLibp2p } from './floor.ts'
import { Processes, stderrTail } from './processes.ts'

const bin = fileURLToPath(new URL('../bin/shoal.js', import.meta.url))

/** A `shoal start` child process. */
export interface LoadNode {
  readonly child: ChildProcess
  readonly pid: number
  readonly peerId: string
  readonly addrs: readonly string[]
}

/** `shoal start --json` on loopback as a single-member cluster; resolves once it printed its addresses. */
export async function startNode (processes: Processes, dataDir: string, extra: readonly string[] = []): Promise<LoadNode> {
  const child = processes.spawn('node', [bin, 'start', '--data', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0',
    '--no-mdns', '--json', '--n', '1', '--r', '1', '--w', '1', ...extra])
  const tail = stderrTail(child)
  const line = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! })
    lines.once('line', resolve)
    child.once('exit', code => { reject(new Error(`shoal start exited with ${code}: ${tail()}`)) })
  })
  const info = JSON.parse(line) as { peerId: string, addrs: string[] }
  if (child.pid === undefined) throw new Error('shoal start has no pid')
  return { child, pid: child.pid, ...info }
}

/** A process's resident set now and at its peak so far, in MiB (from /proc/PID/status). */
export function memoryOf (pid: number): { rssMiB: number, peakMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 }
}

/** What a burst of requests got. */
export interface BurstResult {
  answered: number
  /** Refused by the node as overloaded (OverloadedError): the request was not served. */
  busy: number
  failed: number
  /** The keys of the puts that were acknowledged. */
  acknowledged: string[]
  /** Count per error name, for the report. */
  errors: Record<string, number>
}

/**
 * `total` requests at once, spread round-robin over `clients`: even ones put `prefix-i`, odd ones
 * get `readKey`. Waits for every one to settle.
 */
export async function burst (clients: readonly ShoalClient[], total: number, prefix: string, readKey: string, value: Uint8Array): Promise<BurstResult> {
  const result: BurstResult = { answered: 0, busy: 0, failed: 0, acknowledged: [], errors: {} }
  await Promise.all(Array.from({ length: total }, async (_, i) => {
    const client = clients[i % clients.length] as ShoalClient
    try {
      if (i % 2 === 0) {
        await client.put(`${prefix}-${i}`, value)
        result.acknowledged.push(`${prefix}-${i}`)
      } else {
        await client.get(readKey)
      }
      result.answered++
    } catch (err) {
      const name = (err as Error).name
      result.errors[name] = (result.errors[name] ?? 0) + 1
      if (name === 'OverloadedError') result.busy++
      else result.failed++
    }
  }))
  return result
}

export type AbuseKind =
  /** Asks for a large value and never reads the reply (its flow-control window stays shut). */
  | 'unread'
  /** Asks for a large value and takes one flow-control window (256 KiB) of the reply every 5 s. */
  | 'trickle'
  /** Opens a stream and sends nothing. */
  | 'silent'
  /** Sends a put frame one byte every 250 ms. */
  | 'dribble'

/** One kind of abuse: how many peers (each its own libp2p node and connection) open how many streams each. */
export interface AbusePlan {
  readonly kind: AbuseKind
  readonly peers: number
  readonly streams: number
}

/**
 * Hostile peers on bare libp2p (tcp, noise, yamux) that pin the node's kv streams. Counts the
 * streams they opened, and those the node closed or reset on them.
 */
export class Abusers {
  opened = 0
  /** Streams the libp2p of the abuser could not even open (the node's per-connection limit refused them). */
  refused = 0
  closed = 0
  private readonly nodes: Libp2p[] = []
  private readonly timers = new Set<NodeJS.Timeout>()
  private stopped = false

  /**
   * Dials `target` from fresh peers and opens every abusive stream; resolves once all are opened.
   * `bigKey` names a large value, for the readers.
   */
  async start (target: Pick<LoadNode, 'peerId' | 'addrs'>, plan: readonly AbusePlan[], bigKey: string): Promise<void> {
    const addr = multiaddr(target.addrs[0] as string)
    const peer = peerIdFromString(target.peerId)
    const jobs: Array<Promise<void>> = []
    for (const { kind, peers, streams } of plan) {
      for (let p = 0; p < peers; p++) {
        const node = await createFloorLibp2p([])
        this.nodes.push(node)
        await dialWithRetries(node, addr)
        for (let s = 0; s < streams; s++) jobs.push(this.open(node, peer, kind, bigKey))
      }
    }
    await Promise.all(jobs)
  }

  /** Streams opened that the node has not closed yet. */
  get pending (): number {
    return this.opened - this.closed
  }

  async stop (): Promise<void> {
    this.stopped = true
    for (const timer of this.timers) clearInterval(timer)
    this.timers.clear()
    // Abort first: a graceful close would wait on streams that were never meant to finish.
    for (const node of this.nodes) for (const connection of node.getConnections()) connection.abort(new Error('abuse over'))
    await Promise.allSettled(this.nodes.splice(0).map(async n => { await n.stop() }))
  }

  private async openStream (node: Libp2p, peer: ReturnType<typeof peerIdFromString>): Promise<Stream | undefined> {
    try {
      // The abuser allows itself far more streams than the node will accept.
      return await node.dialProtocol(peer, KV_PROTOCOL, { maxOutboundStreams: 100_000, signal: AbortSignal.timeout(30_000) })
    } catch {
      this.refused++
      return undefined
    }
  }

  private async open (node: Libp2p, peer: ReturnType<typeof peerIdFromString>, kind: AbuseKind, bigKey: string): Promise<void> {
    const stream = await this.openStream(node, peer)
    if (stream === undefined) return
    this.opened++
    stream.addEventListener('close', () => { this.closed++ }, { once: true })
    try {
      if (kind === 'unread' || kind === 'trickle') {
        stream.pause()
        const lp = lpStream(stream)
        await lp.write(encodeKvRequest({ type: 'get', key: toBytes(bigKey) }))
        await stream.close()
        if (kind === 'trickle') this.trickle(stream)
      } else if (kind === 'dribble') {
        this.dribble(stream)
      }
      // silent: nothing at all.
    } catch {
      // The node may already have reset it.
    }
  }

  /** Resumes reading for one message every 5 s: the node can send one window, then waits again. */
  private trickle (stream: Stream): void {
    stream.addEventListener('message', () => { if (stream.readStatus === 'readable') stream.pause() })
    const timer = setInterval(() => {
      if (this.stopped || stream.status !== 'open') {
        clearInterval(timer)
        this.timers.delete(timer)
        return
      }
      try { stream.resume() } catch {}
    }, 5_000)
    this.timers.add(timer)
  }

  /** A length prefix announcing a small put, then its bytes one at a time. */
  private dribble (stream: Stream): void {
    const body = encodeKvRequest({ type: 'put', key: toBytes('dribble'), value: new Uint8Array(256), context: new Map() })
    const frame = new Uint8Array([...varint(body.length), ...body])
    let at = 0
    const timer = setInterval(() => {
      if (this.stopped || stream.status !== 'open' || at >= frame.length) {
        clearInterval(timer)
        this.timers.delete(timer)
        return
      }
      try { stream.send(frame.subarray(at, at + 1)) } catch {}
      at++
    }, 250)
    this.timers.add(timer)
  }
}

/** A loaded machine can stall a handshake past libp2p's own timeout: try a few times. */
async function dialWithRetries (node: Libp2p, addr: ReturnType<typeof multiaddr>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await node.dial(addr, { signal: AbortSignal.timeout(30_000) })
      return
    } catch (err) {
      if (attempt >= 5) throw err
    }
  }
}

function varint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return out
}

/** Puts and gets in a loop from `client` until `until` resolves; counts what succeeded and failed. */
export async function normalTraffic (client: ShoalClient, until: Promise<unknown>): Promise<{ ok: number, failed: number, errors: string[] }> {
  let done = false
  void until.finally(() => { done = true })
  const result = { ok: 0, failed: 0, errors: [] as string[] }
  for (let i = 0; !done; i++) {
    try {
      await client.put(`normal-${i}`, `value-${i}`)
      const read = await client.get(`normal-${i}`)
      if (read?.siblings.length !== 1) throw new Error(`normal-${i} read back ${read?.siblings.length ?? 0} siblings`)
      result.ok++
    } catch (err) {
      result.failed++
      if (result.errors.length < 5) result.errors.push(`${(err as Error).name}: ${(err as Error).message}`)
    }
  }
  return result
}

/** Samples a process's memory every `everyMs` until stopped; keeps the highest RSS seen. */
export class MemorySampler {
  maxRssMiB = 0
  private readonly timer: NodeJS.Timeout

  constructor (pid: number, everyMs = 100) {
    this.timer = setInterval(() => {
      try { this.maxRssMiB = Math.max(this.maxRssMiB, memoryOf(pid).rssMiB) } catch {}
    }, everyMs)
  }

  stop (): number {
    clearInterval(this.timer)
    return this.maxRssMiB
  }
}

/** Sleeps without holding the process open. */
export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms).unref())
}

function parseArgs (args: string[]): { requests: number, clients: number, peers: number, streams: number, kinds: AbuseKind[], skipBurst: boolean } {
  const get = (name: string, fallback: number): number => {
    const at = args.indexOf(`--${name}`)
    return at === -1 ? fallback : Number(args[at + 1])
  }
  const kinds = args.indexOf('--kinds') === -1 ? ['unread', 'trickle', 'silent', 'dribble'] : String(args[args.indexOf('--kinds') + 1]).split(',')
  return { requests: get('requests', 1000), clients: get('clients', 10), peers: get('peers', 2), streams: get('streams', 128), kinds: kinds as AbuseKind[], skipBurst: args.includes('--no-burst') }
}

/**
 * `npm run bench -- load [--requests 1000] [--clients 10] [--peers 2] [--streams 128]
 * [--kinds unread,trickle,silent,dribble] [--no-burst]`: peers and streams are per kind of abuse.
 */
export async function run (args: string[]): Promise<void> {
  const opts = parseArgs(args)
  const processes = new Processes()
  process.once('exit', processes.lastResort)
  const clients: ShoalClient[] = []
  const abusers = new Abusers()
  try {
    const dir = await processes.tempDir('shoal-load-')
    const node = await startNode(processes, join(dir, 'node'))
    for (let i = 0; i < opts.clients; i++) clients.push(await createClient({ bootstrap: [node.addrs[0] as string] }))
    const normal = clients[0] as ShoalClient
    const big = new Uint8Array(1024 * 1024 - 1024).fill(7)
    await normal.put('big', big)
    await normal.put('medium', new Uint8Array(64 * 1024).fill(5))
    await burst(clients, 100, 'warm', 'big', new Uint8Array(1024))
    await sleep(2_000)
    const idle = memoryOf(node.pid)
    console.log(`idle: RSS ${idle.rssMiB.toFixed(0)} MiB`)

    if (!opts.skipBurst) {
      for (const [label, prefix, readKey, value] of [
        ['1 KiB', 'small', 'warm-0', new Uint8Array(1024)],
        ['64 KiB', 'medium', 'medium', new Uint8Array(64 * 1024).fill(5)]
      ] as const) {
        const sampler = new MemorySampler(node.pid)
        const t0 = Date.now()
        const result = await burst(clients, opts.requests, prefix, readKey, value)
        console.log(`${opts.requests} concurrent requests (puts and gets, ${label} values, ${opts.clients} clients): ${result.answered} answered, ${result.busy} refused as busy, ${result.failed} failed ${JSON.stringify(result.errors)} in ${Date.now() - t0} ms; peak RSS ${sampler.stop().toFixed(0)} MiB`)
      }
      await sleep(3_000)
      console.log(`after the bursts: RSS ${memoryOf(node.pid).rssMiB.toFixed(0)} MiB`)
    }
    const sampler = new MemorySampler(node.pid)
    const t0 = Date.now()
    const opening = abusers.start(node, opts.kinds.map(kind => ({ kind, peers: opts.peers, streams: opts.streams })), 'big')
    const traffic = normalTraffic(normal, opening.then(async () => { await sleep(5_000) }))
    await opening
    console.log(`abuse: ${abusers.opened} streams opened, ${abusers.refused} refused at opening, ${abusers.closed} closed by the node so far (${Date.now() - t0} ms)`)
    const served = await traffic
    const t1 = Date.now()
    while (abusers.pending > 0 && Date.now() - t1 < 60_000) await sleep(200)
    console.log(`abuse: ${abusers.closed}/${abusers.opened} closed by the node ${Date.now() - t0} ms after the start; normal client during abuse: ${served.ok} ok, ${served.failed} failed ${served.errors.join('; ')}`)
    console.log(`abuse: peak RSS ${sampler.stop().toFixed(0)} MiB`)
    await abusers.stop()
    await sleep(3_000)
    const after = memoryOf(node.pid)
    console.log(`after: RSS ${after.rssMiB.toFixed(0)} MiB, peak over the run ${after.peakMiB.toFixed(0)} MiB`)
  } finally {
    await abusers.stop()
    await Promise.allSettled(clients.map(async c => { await c.stop() }))
    await processes.cleanup()
  }
}
