/**
 * The workload process of a chaos run, after Jepsen's set test. It runs inside the client
 * namespace (`ip netns exec <client-ns> node test/harness/set-workload.ts`), where no DROP rule
 * ever applies, and speaks JSON lines: commands on stdin, events and replies on stdout.
 *
 * Each client loops: pick a key, read it (the union of every sibling's elements), add a unique
 * element, write the set back with the read's context. Every add is reported with its outcome:
 * ok (acknowledged), failed (definitely not applied: nothing was sent) or unknown.
 */
import { createInterface } from 'node:readline'
import { createClient } from '../../src/client.ts'
import type { ShoalClient } from '../../src/client.ts'
import { InvalidArgumentError, UnavailableError, UnreachableError } from '../../src/core/errors.ts'
import { toBytes } from '../../src/core/bytes.ts'
import { Ring } from '../../src/core/ring.ts'
import type { GetResult } from '../../src/node.ts'
import { SimRandom } from '../../src/sim/random.ts'
import type { AddOutcome, WorkloadCommand, WorkloadEvent, LocalCopy, FinalRead, NodeReport } from './protocol.ts'

const decoder = new TextDecoder()

/** The elements of one stored set: each sibling is a JSON array of strings. */
export function elementsOf (result: GetResult | undefined): string[] {
  if (result === undefined) return []
  const out = new Set<string>()
  for (const sibling of result.siblings) {
    const text = decoder.decode(sibling)
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      parsed = undefined
    }
    // Anything that is not a list of strings no client wrote: it shows up as an unexpected element.
    if (Array.isArray(parsed) && parsed.every(e => typeof e === 'string')) for (const e of parsed) out.add(e)
    else out.add(`<not a set: ${JSON.stringify(text.slice(0, 60))}>`)
  }
  return [...out]
}

/** Only these errors, raised here before anything left, prove an add was not applied. */
export function definite (err: unknown): boolean {
  return err instanceof UnavailableError || err instanceof UnreachableError || err instanceof InvalidArgumentError
}

export function emit (event: WorkloadEvent): void {
  process.stdout.write(JSON.stringify(event) + '\n')
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** What one kind of workload (this set test, the counter test) plugs into the shared process. */
export interface WorkloadKind {
  /** Keys are `<prefix>-<k>`. */
  readonly prefix: string
  /** What the checker compares of a read: a set's elements, a counter's value as one string. */
  readonly elementsOf: (result: GetResult | undefined) => string[]
  /** One operation, its `n`-th, by client `id` on `key`, reported by an event; 'read-failed' when nothing was tried. */
  readonly step: (client: ShoalClient, id: number, key: string, n: number, random: SimRandom) => Promise<AddOutcome | 'read-failed'>
}

/** The set test's operation: read the union of the siblings, add a unique element, write back with the read's context. */
export const setKind: WorkloadKind = {
  prefix: 'set',
  elementsOf,
  step: async (client, id, key, n) => {
    let read: GetResult | undefined
    try {
      read = await client.get(key)
    } catch {
      return 'read-failed'
    }
    const element = `c${id}-${n}`
    const started = Date.now()
    let outcome: AddOutcome = 'ok'
    let error: string | undefined
    try {
      const value = JSON.stringify([...elementsOf(read), element])
      await client.put(key, value, read === undefined ? {} : { context: read.context })
    } catch (err) {
      outcome = definite(err) ? 'failed' : 'unknown'
      error = (err as Error).name
    }
    emit({ event: 'add', client: id, key, element, outcome, ...(error === undefined ? {} : { error }), ms: Date.now() - started })
    return outcome
  }
}

class Workload {
  private readonly addrs: readonly string[]
  private readonly cluster: string
  private readonly timeoutMs: number
  private running = false
  private loops: Array<Promise<void>> = []
  private readonly clients: ShoalClient[] = []
  /** One client per node, bootstrapped to that node only: its local copy and the reads it coordinates. */
  private perNode: Array<ShoalClient | undefined> = []
  private readsFailed = 0

  private readonly keys: number
  private readonly n: number
  private readonly kind: WorkloadKind

  constructor (kind: WorkloadKind, addrs: readonly string[], cluster: string, timeoutMs: number, keys: number, n: number) {
    this.kind = kind
    this.n = n
    this.addrs = addrs
    this.cluster = cluster
    this.timeoutMs = timeoutMs
    this.keys = keys
  }

  async start (clients: number, seed: number): Promise<void> {
    const keys = this.keys
    for (let i = 0; i < clients; i++) {
      // Each client starts from a different node and falls back to the others.
      const order = this.addrs.map((_, j) => this.addrs[(i + j) % this.addrs.length]!)
      this.clients.push(await createClient({ bootstrap: order, cluster: this.cluster, timeoutMs: this.timeoutMs }))
    }
    this.running = true
    this.loops = this.clients.map(async (client, i) => { await this.loop(client, i, keys, new SimRandom(seed * 1000 + i)) })
  }

  async stop (): Promise<number> {
    this.running = false
    await Promise.all(this.loops)
    return this.readsFailed
  }

  private async loop (client: ShoalClient, id: number, keys: number, random: SimRandom): Promise<void> {
    let n = 0
    while (this.running) {
      const key = `${this.kind.prefix}-${random.int(0, keys - 1)}`
      const outcome = await this.kind.step(client, id, key, n++, random)
      if (outcome === 'read-failed') this.readsFailed++
      if (outcome !== 'ok') await sleep(100)
    }
  }

  private async nodeClient (i: number): Promise<ShoalClient | undefined> {
    const existing = this.perNode[i]
    if (existing !== undefined) return existing
    try {
      const client = await createClient({ bootstrap: [this.addrs[i]!], cluster: this.cluster, timeoutMs: this.timeoutMs })
      this.perNode[i] = client
      return client
    } catch {
      return undefined
    }
  }

  /** Each node's own copy of each key (no quorum, no repair) and its pending hints. */
  async inspect (): Promise<NodeReport[]> {
    const keys = this.keys
    return await Promise.all(this.addrs.map(async (_, i) => {
      const client = await this.nodeClient(i)
      if (client === undefined) return { node: i, error: 'unreachable' }
      try {
        const status = await client.admin({ op: 'status' }) as { hintsPending: number, members: Array<{ peerId: string, state: string, partitions: number }>, antiEntropy: Record<string, number> }
        const copies: Record<string, LocalCopy | null> = {}
        for (let k = 0; k < keys; k++) {
          const key = `${this.kind.prefix}-${k}`
          const local = await client.getLocal(key)
          copies[key] = local === undefined ? null : { context: local.context, elements: this.kind.elementsOf(local).sort(), siblings: local.siblings.length }
        }
        // The ring this node routes by: its members (left ones aside), weight 1 as the harness starts them.
        const ring = new Ring(status.members.filter(m => m.state !== 'left').map(m => ({ id: m.peerId, weight: 1 })), { n: this.n })
        const owners: Record<string, number[]> = {}
        for (let k = 0; k < keys; k++) {
          const key = `${this.kind.prefix}-${k}`
          owners[key] = ring.owners(ring.partitionOf(toBytes(key))).map(id => this.addrs.findIndex(a => a.endsWith(`/p2p/${id}`))).sort((a, b) => a - b)
        }
        const ae = status.antiEntropy
        const detail = `members ${status.members.map(m => `${m.peerId.slice(-4)}:${m.state}:${m.partitions}`).join(' ')}; anti-entropy ${ae.exchanges} exchanges, ${ae.failed} failed, ${ae.deferred} deferred, ${ae.treesVerified} trees verified, every ${ae.intervalMs} ms`
        return { node: i, hintsPending: status.hintsPending, membersUp: status.members.filter(m => m.state === 'up').length, copies, owners, detail }
      } catch (err) {
        return { node: i, error: `${(err as Error).name}: ${(err as Error).message}` }
      }
    }))
  }

  /** Every key read through every node with R = `r`, retried a few times: the checker's final reads. */
  async finalReads (r: number): Promise<Record<string, FinalRead[]>> {
    const keys = this.keys
    const out: Record<string, FinalRead[]> = {}
    for (let k = 0; k < keys; k++) {
      const key = `${this.kind.prefix}-${k}`
      out[key] = await Promise.all(this.addrs.map(async (_, i): Promise<FinalRead> => {
        let last = 'unreachable'
        for (let attempt = 0; attempt < 5; attempt++) {
          const client = await this.nodeClient(i)
          if (client !== undefined) {
            try {
              return { node: i, elements: this.kind.elementsOf(await client.get(key, { r })) }
            } catch (err) {
              last = `${(err as Error).name}: ${(err as Error).message}`
            }
          }
          await sleep(1000)
        }
        return { node: i, error: last }
      }))
    }
    return out
  }

  async close (): Promise<void> {
    this.running = false
    await Promise.allSettled([...this.clients, ...this.perNode].map(async c => { await c?.stop() }))
  }
}

/** The workload process: JSON-line commands on stdin, events on stdout (protocol.ts). */
export async function runWorkloadProcess (kind: WorkloadKind): Promise<void> {
  let workload: Workload | undefined
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === '') continue
    const command = JSON.parse(line) as WorkloadCommand
    switch (command.cmd) {
      case 'init':
        workload = new Workload(kind, command.addrs, command.cluster, command.timeoutMs, command.keys, command.n)
        emit({ event: 'ready' })
        break
      case 'start':
        await workload!.start(command.clients, command.seed)
        emit({ event: 'started' })
        break
      case 'stop':
        emit({ event: 'stopped', readsFailed: await workload!.stop() })
        break
      case 'inspect':
        emit({ event: 'inspected', nodes: await workload!.inspect() })
        break
      case 'final':
        emit({ event: 'final', reads: await workload!.finalReads(command.r) })
        break
      case 'quit':
        await workload?.close()
        process.exit(0)
    }
  }
  await workload?.close()
}

if (import.meta.main) await runWorkloadProcess(setKind)
