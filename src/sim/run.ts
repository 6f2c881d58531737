import { sha256 } from '@noble/hashes/sha2.js'
import { bytesId, toHex } from '../core/bytes.ts'
import { EMPTY, equals, isDeleted, values } from '../core/causality.ts'
import type { DvvSet, VersionVector } from '../core/causality.ts'
import type { MemberRecord } from '../core/membership.ts'
import type { Ring } from '../core/ring.ts'
import { SimNode } from './cluster.ts'
import type { SimNodeOptions, SyncTotals } from './cluster.ts'
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
  /** After the heal, the most virtual ms the background mechanisms get to converge. */
  readonly settleMs: number
  readonly node: SimNodeOptions
}

export const DEFAULT_SIM: SimOptions = {
  nodes: 5,
  clients: 3,
  keys: 4,
  durationMs: 20_000,
  faults: true,
  settleMs: 60_000,
  node: {
    n: 3,
    r: 2,
    w: 2,
    partitions: 64,
    timeoutMs: 1000,
    heartbeatMs: 1000,
    sloppy: true,
    antiEntropyMs: 2000,
    hintMs: 1000,
    handoffMs: 3000,
    reaperMs: 3000,
    graceMs: 3000
  }
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
  /** What the background mechanisms did, summed over every node and life. */
  readonly sync: SyncTotals
  /** Virtual ms from the heal until the replicas had converged; undefined if they never did. */
  readonly convergedMs: number | undefined
}

const encoder = new TextEncoder()

/**
 * One simulated run: a cluster under client load and a seeded fault schedule (crashes and
 * restarts, partitions, loss, duplication, reordering, members leaving and coming back), then
 * heal, give hinted handoff, anti-entropy, ownership handoff and the tombstone reaper time to
 * converge, and check the properties of DESIGN.md from storage and by reads: replicas converged
 * with no hint, stray copy or expired tombstone left, anti-entropy quiescent, no acknowledged
 * write lost, no phantom, no deleted value resurrected, membership agreed.
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

  // Heal: every node up, the network whole. A member that left stays out; one still leaving
  // finishes. Then no reads: hinted handoff, anti-entropy, ownership handoff and the reaper must
  // converge the replicas on their own.
  network.heal()
  network.faults = { ...CALM }
  for (const node of nodes.values()) {
    if (!node.alive) { node.start(); log(`restart ${node.id} (heal)`) }
  }
  log('heal')
  const healedAt = scheduler.now
  const entry = [...nodes.values()]
  let convergedMs: number | undefined
  while (scheduler.now < healedAt + options.settleMs) {
    await scheduler.run(scheduler.now + 250)
    if (settled()) { convergedMs = scheduler.now - healedAt; break }
  }
  log(convergedMs === undefined ? `not converged ${options.settleMs} ms after the heal` : `converged ${convergedMs} ms after the heal`)

  // The replicas, straight from storage: owners agree, nobody else holds anything.
  const ring = (entry[0] as SimNode).agent.ring()
  const stored = new Map<string, DvvSet | undefined>()
  for (const key of keys) {
    const bytes = encoder.encode(key)
    const copies = new Map<string, DvvSet | undefined>()
    for (const owner of ring.owners(ring.partitionOf(bytes))) copies.set(owner, nodes.get(owner)?.storage.object(bytes))
    stored.set(key, history.checkConverged(key, copies))
  }
  for (const violation of leftovers(ring)) history.violations.push(violation)
  const digests = new Set(entry.map(n => n.agent.digest()))
  if (digests.size !== 1) history.violations.push({ property: 'membership', detail: `${digests.size} different member tables after heal` })

  // Quiescence: with nothing written and nothing failing, one more exchange everywhere repairs nothing.
  const failedBefore = entry.reduce((n, node) => n + node.antiEntropy.stats.failed, 0)
  let repaired = 0
  let finished = 0
  for (const node of entry) {
    void node.antiEntropy.runNow().then(result => { repaired += result.repairedHere + result.repairedThere }).finally(() => { finished++ })
  }
  await scheduler.run(scheduler.now + options.node.timeoutMs * 10, () => finished === entry.length)
  const failedExchanges = entry.reduce((n, node) => n + node.antiEntropy.stats.failed, 0) - failedBefore
  if (finished < entry.length || failedExchanges > 0 || repaired > 0) {
    history.violations.push({ property: 'quiescence', detail: `a last anti-entropy round repaired ${repaired} keys (${failedExchanges} exchanges failed, ${entry.length - finished} rounds unfinished)` })
  }
  log(`quiescence: ${repaired} keys repaired`)

  // The final reads, at R=N, against the history.
  for (const [i, key] of keys.entries()) {
    const via = entry[i % entry.length] as SimNode
    let final: { ok: true, object: DvvSet | undefined } | { ok: false, why: string } | undefined
    void via.coordinator.get(encoder.encode(key), { r: options.node.n }).then(
      object => { final = { ok: true, object } },
      (err: Error) => { final = { ok: false, why: err.name } }
    )
    await scheduler.run(scheduler.now + options.node.timeoutMs * 2, () => final !== undefined)
    const result = final as typeof final | undefined
    if (result?.ok === true) {
      history.observeRead(key, result.object)
      history.checkFinal(key, result.object)
      log(`final ${key} ${describe(result.object)}`)
    } else {
      history.violations.push({ property: 'unavailable', key, detail: `the final read at R=N failed: ${result?.why ?? 'no answer'}` })
      history.checkFinal(key, stored.get(key))
      log(`final ${key} read failed: ${result?.why ?? 'no answer'}; stored ${describe(stored.get(key))}`)
    }
  }

  const writes = history.counts()
  const sync: SyncTotals = { hinted: 0, hintsDelivered: 0, aeRepaired: 0, aeExchanges: 0, handoffKeys: 0, handoffPartitions: 0, purged: 0 }
  for (const node of entry) {
    for (const [name, count] of Object.entries(node.totals()) as Array<[keyof SyncTotals, number]>) sync[name] += count
  }
  log(`writes ${JSON.stringify(writes)} reads ${history.reads}`)
  log(`sync ${JSON.stringify(sync)}`)
  return {
    seed,
    ok: history.violations.length === 0,
    violations: history.violations,
    traceHash: toHex(sha256(encoder.encode(trace.join('\n')))),
    trace,
    writes,
    reads: history.reads,
    events: scheduler.processed,
    messages: { sent: network.sent, dropped: network.dropped },
    sync,
    convergedMs
  }

  /**
   * Whether the background mechanisms are done: one member table, nobody leaving, no hint held,
   * every object on its owners only and equal there, and every tombstone past its grace purged.
   */
  function settled (): boolean {
    if (entry.some(n => !n.alive || n.status() === 'leaving')) return false
    const first = (entry[0] as SimNode).agent
    if (entry.some(n => n.agent.digest() !== first.digest())) return false
    const ring = first.ring()
    const seen = new Map<string, { object: DvvSet, holders: number, owners: number }>()
    for (const node of entry) {
      if (node.storage.allHints()[Symbol.iterator]().next().done !== true) return false
      for (const { key, object } of node.storage.objects()) {
        if (!ring.owners(ring.partitionOf(key)).includes(node.id)) return false
        if (expired(object)) return false
        const id = bytesId(key)
        const other = seen.get(id)
        if (other === undefined) seen.set(id, { object, holders: 1, owners: ring.owners(ring.partitionOf(key)).length })
        else if (!equals(other.object, object)) return false
        else other.holders++
      }
    }
    for (const { holders, owners } of seen.values()) if (holders !== owners) return false
    return true
  }

  /** Hints still held, objects on members that do not own them, tombstones never purged. */
  function leftovers (ring: Ring): Violation[] {
    const found: Violation[] = []
    for (const node of entry) {
      const hints = [...node.storage.allHints()]
      if (hints.length > 0) {
        found.push({ property: 'leftover', detail: `${node.id} still holds ${hints.length} hints (for ${[...new Set(hints.map(h => h.target))].join(', ')})` })
      }
      const held = new Set<number>()
      for (const { key, object } of node.storage.objects()) {
        const partition = ring.partitionOf(key)
        held.add(partition)
        const name = new TextDecoder().decode(key)
        if (!ring.owners(partition).includes(node.id)) {
          found.push({ property: 'leftover', key: name, detail: `${node.id} (${node.status() ?? 'unknown'}) holds ${describe(object)} but does not own it` })
        } else if (expired(object)) {
          found.push({ property: 'leftover', key: name, detail: `${node.id} still holds a tombstone ${scheduler.now - newest(object)} ms old` })
        }
      }
      for (const partition of held) {
        if (!node.storage.treeMatches(partition)) found.push({ property: 'divergent', detail: `${node.id}'s tree of partition ${partition} does not match its objects` })
      }
    }
    return found
  }

  function expired (object: DvvSet): boolean {
    return object.siblings.length > 0 && isDeleted(object) && newest(object) + options.node.graceMs <= scheduler.now
  }

  /** A client: read-modify-write mostly, some blind writes and deletes, against random nodes. */
  async function client (c: number): Promise<void> {
    let n = 0
    // The context of this client's last read or write of each key, as a Dynamo client keeps it.
    const contexts = new Map<string, { vv: VersionVector, at: number }>()
    while (scheduler.now < workEnd) {
      await sleep(random.int(10, 300))
      const node = random.pick([...nodes.values()])
      if (!node.alive) continue
      const key = random.pick(keys)
      // In the last quarter of the work, clients mostly delete what they read: keys end deleted
      // and the reaper has tombstones to purge, some on replicas that missed the delete.
      const roll = scheduler.now >= workEnd * 0.75 && random.chance(0.5) ? 0.99 : random.next()
      if (roll < 0.3 || roll >= 0.92) {
        const object = await outcome(node.coordinator.get(encoder.encode(key)), node)
        if (object.ok) {
          history.observeRead(key, object.value)
          contexts.set(key, { vv: object.value?.vv ?? EMPTY.vv, at: scheduler.now })
          log(`c${c} get ${key} via ${node.id} -> ${describe(object.value)}`)
        } else log(`c${c} get ${key} via ${node.id} -> ${object.why}`)
        // Some reads are the first half of a delete of what was read.
        if (roll < 0.3 || !object.ok || object.value === undefined || !node.alive) continue
      }
      // Puts with the context of the client's last read or write, blind puts, deletes of what
      // the client saw last, and (above) deletes right after a read.
      const value = roll < 0.85 ? `c${c}-${n++}` : null
      const known = roll < 0.75 || roll >= 0.85 ? contexts.get(key) : undefined
      const context = known?.vv ?? EMPTY.vv
      const write = history.attempt(key, value, context, known?.at ?? scheduler.now, scheduler.now)
      const result = await outcome(node.coordinator.put(encoder.encode(key), value === null ? null : encoder.encode(value), { context }), node)
      if (result.ok) {
        write.outcome = 'ok'
        write.ackedAt = scheduler.now
        // The acknowledged write is the sibling carrying this write's value with the newest dot.
        const mine = result.value.siblings.filter(s => value === null ? s.value === null : s.value !== null && new TextDecoder().decode(s.value) === value)
        write.dot = mine.reduce<typeof mine[number] | undefined>((a, s) => a === undefined || s.dot.counter > a.dot.counter ? s : a, undefined)?.dot
        contexts.set(key, { vv: result.value.vv, at: scheduler.now })
      } else {
        write.outcome = result.why === 'TimeoutError' || result.why === 'crashed' ? 'unknown' : 'failed'
      }
      log(`c${c} ${value === null ? 'delete' : `put ${value}`} ${key} via ${node.id} -> ${result.ok ? `ok ${dotOf(write.dot)}` : result.why}`)
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

  /**
   * The fault schedule: one fault or repair every 0.5 to 3 s until the work ends. Besides
   * crashes, partitions and a bad network, a member may leave the cluster (handing its data off)
   * and a member that left may come back, so partitions change owners under load.
   */
  function nemesis (): void {
    const step = (): void => {
      if (scheduler.now >= workEnd) return
      const all = [...nodes.values()]
      const down = all.filter(n => !n.alive)
      const departed = all.filter(n => n.alive && n.status() !== 'up')
      const roll = random.next()
      if (roll < 0.2 && down.length < 2) {
        const victim = random.pick(all.filter(n => n.alive))
        victim.crash()
        log(`crash ${victim.id}`)
      } else if (roll < 0.35 && down.length > 0) {
        const back = random.pick(down)
        back.start()
        log(`restart ${back.id}`)
      } else if (roll < 0.42 && departed.length === 0 && down.length === 0) {
        const leaver = random.pick(all)
        leaver.leave(() => { log(`left ${leaver.id}`) })
        log(`leave ${leaver.id}`)
      } else if (roll < 0.47 && departed.some(n => n.status() === 'left')) {
        // A member that left comes back as a new process: a new incarnation, up again.
        const back = random.pick(departed.filter(n => n.status() === 'left'))
        back.crash()
        back.start()
        log(`rejoin ${back.id}`)
      } else if (roll < 0.6) {
        const shuffled = random.shuffle(ids)
        const cut = random.int(1, ids.length - 1)
        network.partition(shuffled.slice(0, cut), shuffled.slice(cut))
        log(`partition ${shuffled.slice(0, cut).join(',')} | ${shuffled.slice(cut).join(',')}`)
      } else if (roll < 0.72) {
        network.heal()
        log('heal partitions')
      } else if (roll < 0.88) {
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

function dotOf (dot: { actor: string, counter: number } | undefined): string {
  return dot === undefined ? '' : `${dot.actor}:${dot.counter}`
}

/** The newest sibling's write time. */
function newest (object: DvvSet): number {
  let at = 0
  for (const s of object.siblings) at = Math.max(at, s.timestamp)
  return at
}
