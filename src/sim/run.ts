import { sha256 } from '@noble/hashes/sha2.js'
import { bytesId, toHex } from '../core/bytes.ts'
import { EMPTY, values } from '../core/causality.ts'
import type { DvvSet, VersionVector } from '../core/causality.ts'
import type { MemberRecord } from '../core/membership.ts'
import { SimNode } from './cluster.ts'
import type { SimNodeOptions } from './cluster.ts'
import { History } from './history.ts'
import type { Violation } from './history.ts'
import { CALM, SimNetwork } from './network.ts'
import { SimRandom } from './random.ts'
import { Scheduler } from './scheduler.ts'

export interface SimOptions {
  readonly nodes: number
  readonly clients: number
  readonly keys: number
  /** Virtual ms of client load and faults, before the heal. */
  readonly durationMs: number
  readonly faults: boolean
  readonly node: SimNodeOptions
}

export const DEFAULT_SIM: SimOptions = {
  nodes: 5,
  clients: 3,
  keys: 4,
  durationMs: 20_000,
  faults: true,
  node: { n: 3, r: 2, w: 2, partitions: 64, timeoutMs: 1000, heartbeatMs: 1000 }
}

export interface SimResult {
  readonly seed: number
  readonly ok: boolean
  readonly violations: readonly Violation[]
  /** sha256 of the trace: equal seeds must give equal hashes. */
  readonly traceHash: string
  readonly trace: readonly string[]
  readonly writes: Record<'pending' | 'ok' | 'failed' | 'unknown', number>
  readonly reads: number
  readonly events: number
  readonly messages: { sent: number, dropped: number }
}

const encoder = new TextEncoder()

/**
 * One simulated run: a cluster under client load and a seeded fault schedule (crashes and
 * restarts, partitions, loss, duplication, reordering), then heal, repair, and check the
 * properties of DESIGN.md: no acknowledged write lost, no phantom, replicas converged, membership
 * agreed.
 */
export async function simulate (seed: number, options: SimOptions = DEFAULT_SIM): Promise<SimResult> {
  const random = new SimRandom(seed)
  const scheduler = new Scheduler()
  const network = new SimNetwork(scheduler, random)
  const history = new History()
  const trace: string[] = []
  const log = (line: string): void => { trace.push(`${scheduler.now} ${line}`) }

  // Peer-id-like names, so ring placement varies with the seed as it does with real ids.
  const ids = Array.from({ length: options.nodes }, (_, i) => `sim${i}-${random.int(0, 2 ** 30).toString(36)}`)
  const members: MemberRecord[] = ids.map(id => ({ id, incarnation: 0, seq: 0, status: 'up', addrs: [], weight: 1 }))
  const nodes = new Map<string, SimNode>()
  for (const id of ids) {
    const node = new SimNode(id, `a${random.int(0, 2 ** 30).toString(36)}`, {
      scheduler, network, random, options: options.node, members, peers: () => nodes
    })
    nodes.set(id, node)
    network.add(node)
  }
  for (const node of nodes.values()) node.start()
  const keys = Array.from({ length: options.keys }, (_, i) => `k${i}`)
  const workEnd = options.durationMs

  for (let c = 0; c < options.clients; c++) void client(c)
  if (options.faults) nemesis()
  await scheduler.run(workEnd + options.node.timeoutMs * 3)

  // Heal: every node up, the network whole, and time for the failure detectors to agree.
  network.heal()
  network.faults = { ...CALM }
  for (const node of nodes.values()) {
    if (!node.alive) { node.start(); log(`restart ${node.id} (heal)`) }
  }
  log('heal')
  await scheduler.run(scheduler.now + options.node.heartbeatMs * 8)

  // Repair: a read of every key at R=N, twice: the first repairs stale replicas, the second
  // shows the repair held.
  const entry = [...nodes.values()]
  for (let pass = 0; pass < 2; pass++) {
    for (const [i, key] of keys.entries()) {
      const via = entry[i % entry.length] as SimNode
      const done = via.coordinator.get(encoder.encode(key), { r: options.node.n }).then(
        object => { history.observeRead(key, object) },
        (err: Error) => { log(`repair read ${key} failed: ${err.name}`) }
      )
      await scheduler.run(scheduler.now + options.node.timeoutMs * 2)
      await done
    }
  }

  for (const key of keys) {
    const bytes = encoder.encode(key)
    const ring = entry[0]?.agent.ring()
    const owners = ring === undefined ? [] : ring.owners(ring.partitionOf(bytes))
    const copies = new Map<string, DvvSet | undefined>()
    for (const owner of owners) copies.set(owner, nodes.get(owner)?.storage.objects.get(bytesId(bytes)))
    const final = history.checkConverged(key, copies)
    history.checkFinal(key, final)
    log(`final ${key} ${describe(final)}`)
  }
  const digests = new Set(entry.map(n => n.agent.digest()))
  if (digests.size !== 1) history.violations.push({ property: 'membership', detail: `${digests.size} different member tables after heal` })

  const writes = history.counts()
  log(`writes ${JSON.stringify(writes)} reads ${history.reads}`)
  return {
    seed,
    ok: history.violations.length === 0,
    violations: history.violations,
    traceHash: toHex(sha256(encoder.encode(trace.join('\n')))),
    trace,
    writes,
    reads: history.reads,
    events: scheduler.processed,
    messages: { sent: network.sent, dropped: network.dropped }
  }

  /** A client: read-modify-write mostly, some blind writes and deletes, against random nodes. */
  async function client (c: number): Promise<void> {
    let n = 0
    // The context of this client's last read of each key, as a Dynamo client keeps it.
    const contexts = new Map<string, VersionVector>()
    while (scheduler.now < workEnd) {
      await sleep(random.int(10, 300))
      const node = random.pick([...nodes.values()])
      if (!node.alive) continue
      const key = random.pick(keys)
      const roll = random.next()
      if (roll < 0.3) {
        const object = await outcome(node.coordinator.get(encoder.encode(key)), node)
        if (object.ok) {
          history.observeRead(key, object.value)
          contexts.set(key, object.value?.vv ?? EMPTY.vv)
          log(`c${c} get ${key} via ${node.id} -> ${describe(object.value)}`)
        } else log(`c${c} get ${key} via ${node.id} -> ${object.why}`)
        continue
      }
      const value = roll < 0.9 ? `c${c}-${n++}` : null
      const context = roll < 0.8 ? (contexts.get(key) ?? EMPTY.vv) : EMPTY.vv
      const write = history.attempt(key, value, context)
      const result = await outcome(node.coordinator.put(encoder.encode(key), value === null ? null : encoder.encode(value), { context }), node)
      if (result.ok) {
        write.outcome = 'ok'
        // The acknowledged write is the sibling carrying this write's value with the newest dot.
        const mine = result.value.siblings.filter(s => value === null ? s.value === null : s.value !== null && new TextDecoder().decode(s.value) === value)
        write.dot = mine.reduce<typeof mine[number] | undefined>((a, s) => a === undefined || s.dot.counter > a.dot.counter ? s : a, undefined)?.dot
        contexts.set(key, result.value.vv)
      } else {
        write.outcome = result.why === 'TimeoutError' || result.why === 'crashed' ? 'unknown' : 'failed'
      }
      log(`c${c} ${value === null ? 'delete' : `put ${value}`} ${key} via ${node.id} -> ${result.ok ? 'ok' : result.why}`)
    }
  }

  /** Waits for a request, or for the node serving it to crash (then the outcome is unknown). */
  async function outcome<T> (request: Promise<T>, node: SimNode): Promise<{ ok: true, value: T } | { ok: false, why: string }> {
    const generation = node.generation
    return await new Promise(resolve => {
      let done = false
      const watch = (): void => {
        if (done) return
        if (node.generation !== generation) { done = true; resolve({ ok: false, why: 'crashed' }); return }
        scheduler.after(100, watch)
      }
      watch()
      request.then(
        value => { if (!done) { done = true; resolve({ ok: true, value }) } },
        (err: Error) => { if (!done) { done = true; resolve({ ok: false, why: err.name }) } }
      )
    })
  }

  /** The fault schedule: one fault or repair every 0.5 to 3 s until the work ends. */
  function nemesis (): void {
    const step = (): void => {
      if (scheduler.now >= workEnd) return
      const all = [...nodes.values()]
      const down = all.filter(n => !n.alive)
      const roll = random.next()
      if (roll < 0.25 && down.length < 2) {
        const victim = random.pick(all.filter(n => n.alive))
        victim.crash()
        log(`crash ${victim.id}`)
      } else if (roll < 0.45 && down.length > 0) {
        const back = random.pick(down)
        back.start()
        log(`restart ${back.id}`)
      } else if (roll < 0.6) {
        const shuffled = random.shuffle(ids)
        const cut = random.int(1, ids.length - 1)
        network.partition(shuffled.slice(0, cut), shuffled.slice(cut))
        log(`partition ${shuffled.slice(0, cut).join(',')} | ${shuffled.slice(cut).join(',')}`)
      } else if (roll < 0.75) {
        network.heal()
        log('heal partitions')
      } else if (roll < 0.9) {
        network.faults = { dropRate: random.next() * 0.3, duplicateRate: random.next() * 0.1, minDelayMs: 1, maxDelayMs: random.int(5, 400) }
        log(`network ${JSON.stringify(network.faults)}`)
      } else {
        network.faults = { ...CALM }
        log('network calm')
      }
      scheduler.after(random.int(500, 3000), step)
    }
    scheduler.after(random.int(500, 3000), step)
  }

  function sleep (ms: number): Promise<void> {
    return new Promise(resolve => { scheduler.after(ms, resolve) })
  }
}

function describe (object: DvvSet | undefined): string {
  if (object === undefined) return 'none'
  const live = values(object).map(v => new TextDecoder().decode(v))
  const vv = [...object.vv].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([a, c]) => `${a}:${c}`).join(',')
  return `[${live.join(',')}]${object.siblings.length - live.length > 0 ? '+tombstone' : ''} {${vv}}`
}
