/**
 * The load-generator process of `npm run bench -- kv`: one process, apart from the nodes and the
 * bench's own process, runs closed-loop callers against one target and reports each phase over
 * its IPC channel. The job comes as JSON in argv[2] (a {@link LoadJob}).
 *
 * - floor: a bare libp2p peer calling the floor server with rpcCall (1 KiB each way).
 * - shoal: one createClient per member, each with every member as bootstrap, rotated so that
 *   client i sends to member i first; op k goes to client k mod members (round-robin over the
 *   members). Puts write fresh keys (a blind put on an existing key would add a sibling); gets
 *   read the keys the puts wrote.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createClient } from '../src/client.ts'
import type { ShoalClient } from '../src/client.ts'
import { KV_MAX_OUTBOUND_STREAMS } from '../src/net/constants.ts'
import { StreamLimiter, rpcCall } from '../src/net/rpc.ts'
import { untilFormed } from './ycsb/shoal-driver.ts'
import { FLOOR_MAX_BYTES, FLOOR_PROTOCOL, bytesCodec, createFloorLibp2p } from './floor.ts'

/**
 * rpc: the floor's request. put, get: Shoal's, with the cluster's N=3 R=2 W=2. The diagnostic
 * ops take Shoal's request apart: read is one member's own copy (client.getLocal: one hop, one
 * LevelDB read, no quorum); put-w1 and get-r1 answer on the coordinator's own replica alone.
 */
export type Op = 'rpc' | 'put' | 'get' | 'read' | 'put-w1' | 'get-r1'

export interface Phase {
  readonly op: Op
  readonly clients: number
}

export type LoadJob = {
  readonly target: string
  readonly phases: readonly Phase[]
  /** Load before the first phase, so every process is JIT-warm and the new cluster has settled. */
  readonly settleMs: number
  readonly warmupMs: number
  readonly measureMs: number
  readonly valueBytes: number
  /** Longest wait for every member to see every other up. */
  readonly formTimeoutMs: number
} & ({ readonly kind: 'floor', readonly addr: string } | { readonly kind: 'shoal', readonly addrs: readonly string[] })

/** One measured phase, as bench/results/kv-latest.json holds it. */
export interface Row {
  readonly target: string
  readonly op: Op
  readonly clients: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
}

export type LoadMessage =
  | { readonly type: 'formed', readonly ms: number }
  /** The warm-up of the current phase is over: the measuring window opens (the row closes it). */
  | { readonly type: 'window' }
  | { readonly type: 'row', readonly row: Row, readonly ops: number, readonly errors: number, readonly firstError?: string }
  | { readonly type: 'failed', readonly message: string }
  | { readonly type: 'done' }

interface Measured {
  readonly ops: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly errors: number
  readonly firstError?: string
}

type Call = (caller: number, seq: number) => Promise<void>

/** Nearest-rank percentile of sorted samples. */
function percentile (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN
}

/**
 * `callers` closed loops, each one call at a time: calls started in the warm-up are not
 * recorded; calls started in the measuring window are, up to their end.
 */
async function measure (call: Call, callers: number, warmupMs: number, measureMs: number): Promise<Measured> {
  const samples: number[] = []
  let errors = 0
  let firstError: string | undefined
  const from = performance.now() + warmupMs
  const until = from + measureMs
  if (measureMs > 0) setTimeout(() => { send({ type: 'window' }) }, warmupMs)
  let seq = 0
  let last = from
  const loop = async (caller: number): Promise<void> => {
    for (;;) {
      const start = performance.now()
      if (start >= until) return
      try {
        await call(caller, seq++)
      } catch (err) {
        errors++
        firstError ??= err instanceof Error ? `${err.name}: ${err.message}` : String(err)
        continue
      }
      const end = performance.now()
      if (start >= from) {
        samples.push(end - start)
        if (end > last) last = end
      }
    }
  }
  await Promise.all(Array.from({ length: callers }, async (_, caller) => { await loop(caller) }))
  const sorted = Float64Array.from(samples).sort()
  return {
    ops: sorted.length,
    opsPerSec: sorted.length / ((last - from) / 1000),
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    errors,
    ...(firstError === undefined ? {} : { firstError })
  }
}

function send (message: LoadMessage): void {
  process.send?.(message)
}

/** Sends and resolves once the message is handed to the channel, so exiting cannot drop it. */
async function sendLast (message: LoadMessage): Promise<void> {
  await new Promise<void>(resolve => {
    if (process.send === undefined || !process.connected) resolve()
    else process.send(message, undefined, {}, () => { resolve() })
  })
}

/** Settles with `settle` (each for an equal share of job.settleMs, nothing recorded), then measures the job's phases. */
async function runPhases (job: LoadJob, settle: readonly Phase[], callFor: (phase: Phase) => Call): Promise<void> {
  for (const phase of settle) {
    const result = await measure(callFor(phase), phase.clients, job.settleMs / settle.length, 0)
    if (result.errors > 0) throw new Error(`${result.errors} errors while settling with ${phase.op} x${phase.clients}: ${result.firstError ?? ''}`)
  }
  for (const phase of job.phases) {
    const result = await measure(callFor(phase), phase.clients, job.warmupMs, job.measureMs)
    const row: Row = {
      target: job.target,
      op: phase.op,
      clients: phase.clients,
      opsPerSec: round(result.opsPerSec, 1),
      p50Ms: round(result.p50Ms, 3),
      p99Ms: round(result.p99Ms, 3)
    }
    send({ type: 'row', row, ops: result.ops, errors: result.errors, ...(result.firstError === undefined ? {} : { firstError: result.firstError }) })
  }
}

function round (x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

async function floor (job: LoadJob & { kind: 'floor' }): Promise<void> {
  const libp2p = await createFloorLibp2p([])
  try {
    const target = multiaddr(job.addr)
    await libp2p.dial(target, { signal: AbortSignal.timeout(job.formTimeoutMs) })
    const peer = peerIdFromString(target.getComponents().findLast(c => c.name === 'p2p')?.value ?? '')
    send({ type: 'formed', ms: 0 })
    // As kvTransport: a limiter per peer, and the same outbound stream limit.
    const limiter = new StreamLimiter(KV_MAX_OUTBOUND_STREAMS)
    const request = crypto.getRandomValues(new Uint8Array(job.valueBytes))
    await runPhases(job, [{ op: 'rpc', clients: 32 }], () => async () => {
      await rpcCall(libp2p, peer, FLOOR_PROTOCOL, request, bytesCodec, {
        timeoutMs: 15_000, maxBytes: FLOOR_MAX_BYTES, limiter, maxOutboundStreams: KV_MAX_OUTBOUND_STREAMS
      })
    })
  } finally {
    await libp2p.stop()
  }
}

/** Client i lists member i first: its requests go there while it is connected. */
function rotated<T> (items: readonly T[], by: number): T[] {
  return [...items.slice(by), ...items.slice(0, by)]
}

async function shoal (job: LoadJob & { kind: 'shoal' }): Promise<void> {
  const clients: ShoalClient[] = []
  try {
    for (let i = 0; i < job.addrs.length; i++) clients.push(await createClient({ bootstrap: rotated(job.addrs, i) }))
    const start = performance.now()
    await untilFormed(clients, job.addrs.length, job.formTimeoutMs)
    send({ type: 'formed', ms: performance.now() - start })

    const value = crypto.getRandomValues(new Uint8Array(job.valueBytes))
    const written: string[] = []
    let next = 0
    const clientFor = (): ShoalClient => clients[next++ % clients.length] as ShoalClient
    let run = 0
    await runPhases(job, [{ op: 'put', clients: 32 }, { op: 'get', clients: 32 }], (phase) => {
      const tag = `kv-${run++}-${phase.op}-${phase.clients}`
      if (phase.op === 'put' || phase.op === 'put-w1') {
        const options = phase.op === 'put' ? {} : { w: 1 }
        return async (caller, seq) => {
          const key = `${tag}-${caller}-${seq}`
          await clientFor().put(key, value, options)
          written.push(key)
        }
      }
      if (phase.op === 'rpc') throw new Error('shoal does not serve the rpc op')
      if (written.length === 0) throw new Error(`a ${phase.op} phase needs a put phase before it`)
      let reads = 0
      const op = phase.op
      return async () => {
        const key = written[reads++ % written.length] as string
        const client = clientFor()
        // getLocal asks the client's first member, which need not hold the key: absent is an answer.
        const result = op === 'read' ? await client.getLocal(key) : await client.get(key, op === 'get' ? {} : { r: 1 })
        if (op === 'read' && result === undefined) return
        if (result?.siblings.length !== 1 || result.siblings[0]?.byteLength !== job.valueBytes) {
          throw new Error(`${op} of ${key} returned ${result === undefined ? 'nothing' : `${result.siblings.length} siblings`}`)
        }
      }
    })
  } finally {
    await Promise.allSettled(clients.map(async c => { await c.stop() }))
  }
}

async function main (): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as LoadJob
  // The bench went away: nobody to report to, stop generating load.
  process.on('disconnect', () => { process.exit(1) })
  let last: LoadMessage = { type: 'done' }
  try {
    if (job.kind === 'floor') await floor(job)
    else await shoal(job)
  } catch (err) {
    last = { type: 'failed', message: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }
  }
  await sendLast(last)
  // Exit without waiting for libp2p's last timers; everything it started is stopped.
  process.exit(last.type === 'done' ? 0 : 1)
}

await main()
