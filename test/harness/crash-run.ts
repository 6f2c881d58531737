/**
 * Crash safety under load: a cluster of real `shoal start` processes on 127.0.0.1 (N=3, R=2, W=2),
 * many concurrent writers through client peers, and each round one node (in turn) killed with
 * SIGKILL at a seeded moment while writes are in flight, then restarted on the same data
 * directory. Each round checks:
 *
 * - the node starts again (its LevelDB opens): a start that fails is a start failure;
 * - every key written with W=3 before the kill is on the killed node's own disk right after the
 *   restart (with N equal to the cluster size, so the node is one of every key's replicas);
 * - every acknowledged write is read back with R=2 (lost), and nothing else is (unexpected);
 * - the killed node's own copy of every acknowledged write converges (read repair);
 * - its start-up tree check ran to the end (status antiEntropy.treesChecked), and how many trees
 *   it had to rebuild, and how many hint records it dropped.
 *
 * At the end every acknowledged write of every round is read again, the nodes stop cleanly, and
 * each data directory is opened offline: every stored Merkle tree must match its objects and
 * every hint must decode. The seed fixes the schedule (victims, kill and restart moments); how the
 * writers' requests interleave is up to the machine.
 */
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Processes, exited, stderrTail } from '../../bench/processes.ts'
import { createClient } from '../../src/client.ts'
import type { ShoalClient } from '../../src/client.ts'
import { toBytes } from '../../src/core/bytes.ts'
import { Ring } from '../../src/core/ring.ts'
import type { NodeStatus } from '../../src/node.ts'
import { SimRandom } from '../../src/sim/random.ts'
import { Store } from '../../src/store/store.ts'
import { acknowledged, holdsFrom, judge } from './crash-history.ts'
import type { KeyHistory, Verdict, Write } from './crash-history.ts'

const BIN = fileURLToPath(new URL('../../bin/shoal.js', import.meta.url))
const N = 3
const START_TIMEOUT_MS = 60_000
const FORM_TIMEOUT_MS = 60_000
const CONVERGE_TIMEOUT_MS = 60_000
const TREE_CHECK_TIMEOUT_MS = 180_000
const HINTS_TIMEOUT_MS = 60_000
const START_ATTEMPTS = 3
/** Requests at once when the harness reads back. */
const READ_CONCURRENCY = 16

export interface CrashOptions {
  readonly rounds: number
  readonly seed: number
  /** `shoal start` processes (default 3). */
  readonly nodes?: number
  /** Concurrent writers (default 16). */
  readonly writers?: number
  /** The kill comes this long after the writers start: uniform in [min, max] ms. */
  readonly killAfterMs?: readonly [number, number]
  /** The killed node stays down this long before its restart begins. */
  readonly downMs?: readonly [number, number]
  /** Writers go on this long after the restarted node printed its address. */
  readonly afterRestartMs?: readonly [number, number]
  /** Progress lines. */
  readonly log?: (line: string) => void
}

export interface RoundResult {
  readonly round: number
  readonly victim: number
  readonly killAtMs: number
  /** Writes outstanding when SIGKILL was sent. */
  readonly inFlightAtKill: number
  /** Of those, acknowledged after the kill (by the two nodes left). */
  readonly ackedAcrossKill: number
  /** Every write acknowledged after the kill was sent. */
  readonly ackedAfterKill: number
  readonly attempted: number
  readonly acknowledged: number
  readonly unknown: number
  /** Keys with an acknowledged write missing, in the R=2 read after the restart. */
  readonly lost: number
  readonly unexpected: number
  /** Keys that could not be read at all (every retry failed). */
  readonly unreadable: number
  /** W=3 writes acknowledged before the kill, checked on the victim's own disk at restart. */
  readonly durableChecked: number
  readonly durableMissing: number
  /** Acknowledged keys the victim's own copy still lacked when the wait for repair ended. */
  readonly victimMissing: number
  readonly repairMs: number
  readonly startMs: number
  readonly startFailures: number
  readonly treesVerified: number
  readonly treesRebuilt: number
  readonly hintsDropped: number
  /** A member holding hints for the victim, killed while it delivered them (more nodes than N only). */
  readonly holderKilled?: number
  /** The hints it held just before. */
  readonly holderHints?: number
  /** Hints held anywhere when the wait for their delivery ended. */
  readonly hintsLeft: number
  /** Hints delivered by the members that were not killed this round (a 3-node cluster has no fallbacks, so none). */
  readonly hintsDelivered: number
  readonly errors: Readonly<Record<string, number>>
  readonly examples: readonly string[]
}

export interface CrashReport {
  readonly seed: number
  readonly nodes: number
  readonly rounds: readonly RoundResult[]
  /** Acknowledged keys of every round, read again at the end. */
  readonly finalChecked: number
  readonly finalLost: number
  readonly finalUnexpected: number
  readonly finalUnreadable: number
  /** Offline, after a clean stop: trees that did not match their objects, hints that did not decode. */
  readonly offlineTrees: number
  readonly offlineTreesInconsistent: number
  readonly offlineHints: number
  readonly offlineHintsBad: number
  readonly examples: readonly string[]
  readonly seconds: number
}

interface RunningNode {
  readonly index: number
  readonly dataDir: string
  child: ChildProcess
  peerId: string
  addr: string
  /** A client peer that talks to this node first: status and its own copies. */
  probe: ShoalClient
}

/** Runs the rounds and returns what they found; stops and removes everything it started. */
export async function runCrash (options: CrashOptions): Promise<CrashReport> {
  const run = new CrashRun(options)
  // On an abrupt exit (Ctrl-C) only synchronous work runs: kill the nodes, remove the dirs.
  process.on('exit', run.lastResort)
  try {
    return await run.run()
  } finally {
    await run.cleanup()
    process.off('exit', run.lastResort)
  }
}

class CrashRun {
  private readonly options: CrashOptions
  private readonly procs = new Processes()
  private readonly schedule: SimRandom
  private readonly values: SimRandom
  private readonly log: (line: string) => void
  private readonly nodes: RunningNode[] = []
  private readonly histories: KeyHistory[] = []
  private readonly started = Date.now()
  private ring: Ring | undefined
  private root = ''

  constructor (options: CrashOptions) {
    this.options = options
    this.schedule = new SimRandom(options.seed)
    this.values = new SimRandom(options.seed ^ 0x5eed)
    this.log = options.log ?? (() => {})
  }

  get lastResort (): () => void {
    return this.procs.lastResort
  }

  async run (): Promise<CrashReport> {
    const count = this.options.nodes ?? 3
    this.root = await this.procs.tempDir('shoal-crash-')
    for (let i = 0; i < count; i++) {
      const node = await this.startNode(i, join(this.root, `node-${i}`), this.nodes.map(n => n.addr))
      this.nodes.push(node)
    }
    this.ring = new Ring(this.nodes.map(n => ({ id: n.peerId, weight: 1 })), { n: N })
    await this.untilFormed()
    this.log(`${count} nodes up and formed in ${((Date.now() - this.started) / 1000).toFixed(1)} s; seed ${this.options.seed}`)

    const rounds: RoundResult[] = []
    for (let round = 1; round <= this.options.rounds; round++) {
      const result = await this.round(round)
      rounds.push(result)
      this.log(roundLine(result, this.options.rounds))
    }
    return { seed: this.options.seed, nodes: count, rounds, ...await this.finalCheck(), seconds: (Date.now() - this.started) / 1000 }
  }

  async cleanup (): Promise<void> {
    await Promise.allSettled(this.nodes.map(async n => { await n.probe.stop() }))
    await this.procs.cleanup()
  }

  private async round (round: number): Promise<RoundResult> {
    const victim = this.nodes[(round - 1) % this.nodes.length]!
    const [killMin, killMax] = this.options.killAfterMs ?? [800, 3000]
    const [downMin, downMax] = this.options.downMs ?? [200, 1500]
    const [afterMin, afterMax] = this.options.afterRestartMs ?? [300, 1500]
    const killAtMs = this.schedule.int(killMin, killMax)
    const downMs = this.schedule.int(downMin, downMax)
    const afterMs = this.schedule.int(afterMin, afterMax)
    // Drawn whether used or not, so the schedule depends on the seed alone.
    const holderDelayMs = this.schedule.int(0, 1500)
    const holderDownMs = this.schedule.int(100, 500)

    const clients = await Promise.all(this.nodes.map(async (_, i) => await createClient({ bootstrap: rotated(this.nodes.map(n => n.addr), i) })))
    const load = new Load(round, clients, this.values, this.options.writers ?? 16)
    let startFailures = 0
    let startMs = 0
    // A restarted node's count starts again: count those of the nodes not killed this round.
    const deliveredBefore = new Map(await Promise.all(this.nodes.map(async n => [n, (await status(n)).hintsDelivered] as const)))
    try {
      const writing = load.run()
      await sleep(killAtMs)
      // A kill with nothing outstanding would test nothing: wait for a request in flight.
      for (let waited = 0; load.inFlight === 0 && waited < 2000; waited += 5) await sleep(5)
      const inFlightAtKill = load.kill()
      await kill(victim)
      await sleep(downMs)
      const restartStarted = Date.now()
      startFailures += await this.restart(victim, round)
      startMs = Date.now() - restartStarted

      // With fallbacks (more nodes than N), members now hold hints for the victim and deliver
      // them once they see it up: kill the one holding most, at a seeded moment of that delivery.
      let holder: { index: number, hints: number } | undefined
      if (this.nodes.length > N) {
        const held = await Promise.all(this.nodes.filter(n => n !== victim).map(async n => ({ node: n, hints: (await status(n).catch(() => undefined))?.hintsPending ?? 0 })))
        const most = held.reduce((a, b) => b.hints > a.hints ? b : a)
        if (most.hints > 0) {
          await sleep(holderDelayMs)
          await kill(most.node)
          holder = { index: most.node.index, hints: most.hints }
          await sleep(holderDownMs)
          startFailures += await this.restart(most.node, round)
        }
      }
      await sleep(afterMs)
      load.stop()
      await writing
      const stats = load.stats()

      // Before any read can repair it: the victim's own disk must hold every W=3 write acknowledged before the kill.
      // With every member up before the kill, a W=3 write was acknowledged by its three owners.
      const durable = load.histories.filter(h => h.writes.some(w => w.outcome === 'ok' && w.w === 3 && w.beforeKill) && this.owners(h.key).includes(victim.peerId))
      let durableMissing = 0
      const examples: string[] = []
      await forEach(durable, READ_CONCURRENCY, async (h) => {
        const index = h.writes.findLastIndex(w => w.outcome === 'ok' && w.w === 3 && w.beforeKill)
        const local = await readLocal(victim.probe, h.key).catch((err: Error) => [`(${err.name}: ${err.message})`])
        if (!holdsFrom(h, index, local)) {
          durableMissing++
          if (examples.length < 5) examples.push(`round ${round}: node-${victim.index}'s disk lacks ${h.key}'s W=3 write after the restart (holds ${local?.map(v => v.slice(0, 40)).join(', ') ?? 'nothing'})`)
        }
      })

      await this.untilFormed()
      const written = load.histories.filter(h => h.writes.length > 0)
      const quorum = await this.readAll(clients[0]!, written, examples, `round ${round}`)

      const repairStarted = Date.now()
      const owned = written.filter(h => acknowledged(h) && this.owners(h.key).includes(victim.peerId))
      let victimMissing = owned
      for (;;) {
        const still: KeyHistory[] = []
        await forEach(victimMissing, READ_CONCURRENCY, async (h) => {
          const local = await readLocal(victim.probe, h.key).catch(() => null)
          if (local === null || judge(h, local).kind !== 'ok') still.push(h)
        })
        victimMissing = still
        if (still.length === 0 || Date.now() - repairStarted > CONVERGE_TIMEOUT_MS) break
        // A quorum read repairs the replica that lacks the write.
        await forEach(still, READ_CONCURRENCY, async (h) => { await clients[0]!.get(h.key).catch(() => {}) })
        await sleep(200)
      }
      const repairMs = Date.now() - repairStarted
      for (const h of victimMissing.slice(0, 3)) examples.push(`round ${round}: node-${victim.index}'s own copy of ${h.key} never converged`)

      const checked = await this.untilTreesChecked(victim)
      const hintsLeft = await this.untilHintsDelivered()
      if (hintsLeft > 0) examples.push(`round ${round}: ${hintsLeft} hints still held ${HINTS_TIMEOUT_MS / 1000} s after the restart`)
      const steady = this.nodes.filter(n => n !== victim && n.index !== holder?.index)
      const delivered = (await Promise.all(steady.map(async n => (await status(n)).hintsDelivered - (deliveredBefore.get(n) ?? 0)))).reduce((a, b) => a + b, 0)
      return {
        round,
        victim: victim.index,
        killAtMs,
        inFlightAtKill,
        ...stats,
        ...quorum,
        durableChecked: durable.length,
        durableMissing,
        victimMissing: victimMissing.length,
        repairMs,
        startMs,
        startFailures,
        treesVerified: checked.antiEntropy.treesVerified,
        treesRebuilt: checked.antiEntropy.treesRebuilt,
        hintsDropped: checked.hintsDropped,
        hintsLeft,
        ...(holder === undefined ? {} : { holderKilled: holder.index, holderHints: holder.hints }),
        hintsDelivered: delivered,
        examples
      }
    } finally {
      load.stop()
      this.histories.push(...load.histories)
      await Promise.allSettled(clients.map(async c => { await c.stop() }))
    }
  }

  /** Starts a killed node again on its data directory; returns the failed attempts (throws after the last). */
  private async restart (node: RunningNode, round: number): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        const others = this.nodes.filter(n => n !== node).map(n => n.addr)
        const again = await this.startNode(node.index, node.dataDir, others)
        if (again.peerId !== node.peerId) throw new Error(`node-${node.index} came back as ${again.peerId}, not ${node.peerId}`)
        Object.assign(node, { child: again.child, addr: again.addr, probe: again.probe })
        return attempt - 1
      } catch (err) {
        this.log(`round ${round}: restart ${attempt} of node-${node.index} failed: ${(err as Error).message}`)
        if (attempt >= START_ATTEMPTS) throw err
        await sleep(1000)
      }
    }
  }

  /** R=2 reads of `histories` through `client`, judged; a read that fails is tried again a few times. */
  private async readAll (client: ShoalClient, histories: readonly KeyHistory[], examples: string[], where: string): Promise<{ lost: number, unexpected: number, unreadable: number }> {
    let lost = 0
    let unexpected = 0
    let unreadable = 0
    await forEach(histories, READ_CONCURRENCY, async (h) => {
      let verdict: Verdict | undefined
      let error = ''
      for (let attempt = 0; attempt < 5 && verdict === undefined; attempt++) {
        try {
          const read = await client.get(h.key, { r: 2 })
          verdict = judge(h, read?.siblings.map(v => new TextDecoder().decode(v)))
        } catch (err) {
          error = `${(err as Error).name}: ${(err as Error).message}`
          await sleep(500)
        }
      }
      if (verdict === undefined) {
        unreadable++
        if (examples.length < 10) examples.push(`${where}: ${h.key} unreadable: ${error}`)
        return
      }
      if (verdict.kind === 'lost') lost++
      if (verdict.kind === 'unexpected') unexpected++
      if (verdict.kind !== 'ok' && examples.length < 10) examples.push(`${where}: ${h.key} ${describe(verdict)}`)
    })
    return { lost, unexpected, unreadable }
  }

  private async finalCheck (): Promise<Omit<CrashReport, 'seed' | 'nodes' | 'rounds' | 'seconds'>> {
    const examples: string[] = []
    const acked = this.histories.filter(acknowledged)
    const client = await createClient({ bootstrap: this.nodes.map(n => n.addr) })
    let final
    try {
      final = await this.readAll(client, acked, examples, 'final')
    } finally {
      await client.stop()
    }
    this.log(`final read of ${acked.length} acknowledged keys: ${final.lost} lost, ${final.unexpected} unexpected, ${final.unreadable} unreadable`)

    // Offline: stop every node cleanly, then open each store and check it against itself.
    await Promise.allSettled(this.nodes.map(async n => { await n.probe.stop() }))
    for (const node of this.nodes) await this.procs.stop(node.child)
    let trees = 0
    let inconsistent = 0
    let hints = 0
    let badHints = 0
    for (const node of this.nodes) {
      const store = await Store.open(node.dataDir)
      try {
        const partitions = new Set([...await store.heldPartitions(), ...await store.treePartitions()])
        for (const p of partitions) {
          trees++
          if (await store.verifyTree(p)) {
            inconsistent++
            if (examples.length < 10) examples.push(`node-${node.index}: stored tree of partition ${p} did not match its objects`)
          }
        }
        const checked = await store.verifyHints()
        hints += checked.checked
        badHints += checked.dropped
      } finally {
        await store.close()
      }
    }
    this.log(`offline: ${trees} trees checked, ${inconsistent} inconsistent; ${hints} hints checked, ${badHints} did not decode`)
    return {
      finalChecked: acked.length,
      finalLost: final.lost,
      finalUnexpected: final.unexpected,
      finalUnreadable: final.unreadable,
      offlineTrees: trees,
      offlineTreesInconsistent: inconsistent,
      offlineHints: hints,
      offlineHintsBad: badHints,
      examples
    }
  }

  private owners (key: string): readonly string[] {
    const ring = this.ring!
    return ring.owners(ring.partitionOf(toBytes(key)))
  }

  /** `shoal start --json`: resolves once it printed its address, i.e. once its store opened. */
  private async startNode (index: number, dataDir: string, bootstrap: readonly string[]): Promise<RunningNode> {
    const role = `node-${index}`
    const child = this.procs.spawn(role, [
      BIN, 'start', '--data', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--json',
      '--n', String(N), '--r', '2', '--w', '2', ...bootstrap.flatMap(b => ['--bootstrap', b])
    ])
    const tail = stderrTail(child)
    let line: string
    try {
      line = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`${role} did not start within ${START_TIMEOUT_MS} ms: ${tail()}`)) }, START_TIMEOUT_MS)
        createInterface({ input: child.stdout! }).once('line', line => { clearTimeout(timer); resolve(line) })
        child.once('exit', code => { clearTimeout(timer); reject(new Error(`${role} exited with ${code}: ${tail()}`)) })
      })
    } catch (err) {
      child.kill('SIGKILL')
      throw err
    }
    // Keep reading, or a full pipe would stall the node.
    child.stdout?.resume()
    const info = JSON.parse(line) as { peerId: string, addrs: string[] }
    const first = info.addrs[0]
    if (first === undefined) throw new Error(`${role} listens on no address`)
    const addr = first.includes('/p2p/') ? first : `${first}/p2p/${info.peerId}`
    const probe = await createClient({ bootstrap: [addr] })
    return { index, dataDir, child, peerId: info.peerId, addr, probe }
  }

  /** Until every node sees every node up. */
  private async untilFormed (): Promise<void> {
    const end = Date.now() + FORM_TIMEOUT_MS
    let last = ''
    for (;;) {
      const up = await Promise.all(this.nodes.map(async n => {
        try {
          return (await status(n)).members.filter(m => m.state === 'up').length
        } catch (err) {
          last = (err as Error).message
          return 0
        }
      }))
      if (up.every(u => u === this.nodes.length)) return
      if (Date.now() > end) throw new Error(`the cluster did not form within ${FORM_TIMEOUT_MS} ms: members up per view ${up.join(', ')} ${last}`)
      await sleep(250)
    }
  }

  /** Until no member holds a hint; returns how many are left when the wait ends. */
  private async untilHintsDelivered (): Promise<number> {
    const end = Date.now() + HINTS_TIMEOUT_MS
    for (;;) {
      const pending = (await Promise.all(this.nodes.map(async n => (await status(n)).hintsPending))).reduce((a, b) => a + b, 0)
      if (pending === 0 || Date.now() > end) return pending
      await sleep(250)
    }
  }

  /** Until the node's start-up tree check is over; its status then. */
  private async untilTreesChecked (node: RunningNode): Promise<NodeStatus> {
    const end = Date.now() + TREE_CHECK_TIMEOUT_MS
    for (;;) {
      const s = await status(node).catch(() => undefined)
      if (s?.antiEntropy.treesChecked === true) return s
      if (Date.now() > end) throw new Error(`node-${node.index}'s start-up tree check did not end within ${TREE_CHECK_TIMEOUT_MS} ms (${s?.antiEntropy.treesVerified ?? '?'} trees checked)`)
      await sleep(250)
    }
  }
}

/** Closed-loop writers of one round: fresh keys, some overwrites with contexts, some W=3. */
class Load {
  readonly histories: KeyHistory[] = []
  inFlight = 0
  private readonly round: number
  private readonly clients: readonly ShoalClient[]
  private readonly random: SimRandom
  private readonly writers: number
  private stopped = false
  private killed = false
  private ackedAcrossKill = 0
  private ackedAfterKill = 0
  private readonly errors: Record<string, number> = {}

  constructor (round: number, clients: readonly ShoalClient[], random: SimRandom, writers: number) {
    this.round = round
    this.clients = clients
    this.random = random
    this.writers = writers
  }

  async run (): Promise<void> {
    await Promise.all(Array.from({ length: this.writers }, async (_, w) => { await this.writer(w) }))
  }

  /** The kill is being sent now: returns the writes outstanding. */
  kill (): number {
    this.killed = true
    return this.inFlight
  }

  stop (): void {
    this.stopped = true
  }

  stats (): { attempted: number, acknowledged: number, unknown: number, ackedAcrossKill: number, ackedAfterKill: number, errors: Record<string, number> } {
    let attempted = 0
    let acked = 0
    let unknown = 0
    for (const h of this.histories) {
      for (const w of h.writes) {
        attempted++
        if (w.outcome === 'ok') acked++
        if (w.outcome === 'unknown') unknown++
      }
    }
    return { attempted, acknowledged: acked, unknown, ackedAcrossKill: this.ackedAcrossKill, ackedAfterKill: this.ackedAfterKill, errors: { ...this.errors } }
  }

  private async writer (index: number): Promise<void> {
    const client = this.clients[index % this.clients.length]!
    const mine: KeyHistory[] = []
    for (let seq = 0; !this.stopped; seq++) {
      let history: KeyHistory
      if (mine.length > 0 && this.random.chance(0.2)) {
        history = mine[this.random.int(0, mine.length - 1)]!
      } else {
        history = { key: `r${this.round}-w${index}-${seq}`, round: this.round, writes: [] }
        this.histories.push(history)
      }
      const write: Write = {
        value: `${history.key}=${history.writes.length}:${'x'.repeat(this.random.int(16, 1024))}`,
        w: !this.killed && this.random.chance(0.25) ? 3 : 2,
        beforeKill: !this.killed,
        outcome: 'pending'
      }
      history.writes.push(write)
      this.inFlight++
      try {
        const result = await client.put(history.key, write.value, { w: write.w, ...(history.context === undefined ? {} : { context: history.context }) })
        write.outcome = 'ok'
        history.context = result.context
        if (!mine.includes(history)) mine.push(history)
        if (this.killed) {
          this.ackedAfterKill++
          if (write.beforeKill) this.ackedAcrossKill++
        }
      } catch (err) {
        write.outcome = 'unknown'
        const name = (err as Error).name
        this.errors[name] = (this.errors[name] ?? 0) + 1
        // Whether it landed is unknown: the key's chain ends here.
        const at = mine.indexOf(history)
        if (at >= 0) mine.splice(at, 1)
        await sleep(20)
      } finally {
        this.inFlight--
      }
    }
  }
}

/** SIGKILL, and wait until it is gone. */
async function kill (node: RunningNode): Promise<void> {
  const gone = new Promise<void>(resolve => { if (exited(node.child)) resolve(); else node.child.once('exit', () => { resolve() }) })
  node.child.kill('SIGKILL')
  await gone
  await node.probe.stop()
}

async function status (node: RunningNode): Promise<NodeStatus> {
  return await node.probe.admin({ op: 'status' }) as NodeStatus
}

async function readLocal (client: ShoalClient, key: string): Promise<string[] | undefined> {
  const read = await client.getLocal(key)
  return read?.siblings.map(v => new TextDecoder().decode(v))
}

function describe (verdict: Verdict): string {
  if (verdict.kind === 'lost') return `lost (expected ${verdict.expected.slice(0, 40)}...)`
  if (verdict.kind === 'unexpected') return `unexpected ${verdict.values.map(v => v.slice(0, 40)).join(', ')}`
  return 'ok'
}

function roundLine (r: RoundResult, rounds: number): string {
  const errors = Object.entries(r.errors).map(([name, n]) => `${name} ${n}`).join(', ')
  return [
    `round ${r.round}/${rounds}: node-${r.victim} killed at ${(r.killAtMs / 1000).toFixed(2)} s with ${r.inFlightAtKill} writes in flight (${r.ackedAcrossKill} of them acknowledged after, ${r.ackedAfterKill} acks after the kill)`,
    `restarted in ${(r.startMs / 1000).toFixed(1)} s${r.startFailures > 0 ? ` after ${r.startFailures} failed starts` : ''}${r.holderKilled === undefined ? '' : `, then node-${r.holderKilled} killed while delivering ${r.holderHints} hints`}`,
    `${r.acknowledged}/${r.attempted} acknowledged, ${r.unknown} unknown${errors === '' ? '' : ` (${errors})`}`,
    `lost ${r.lost}, unexpected ${r.unexpected}, unreadable ${r.unreadable}`,
    `W=3 on its disk ${r.durableChecked - r.durableMissing}/${r.durableChecked}`,
    `own copy converged in ${(r.repairMs / 1000).toFixed(1)} s${r.victimMissing > 0 ? ` (${r.victimMissing} missing)` : ''}`,
    `trees ${r.treesVerified} checked, ${r.treesRebuilt} rebuilt; hints ${r.hintsDelivered} delivered, ${r.hintsLeft} left, ${r.hintsDropped} dropped`
  ].join('; ') + (r.examples.length > 0 ? `\n  ${r.examples.join('\n  ')}` : '')
}

/** Totals over rounds, for the summary table. */
export function summarize (report: CrashReport): Record<string, number | string> {
  const sum = (f: (r: RoundResult) => number): number => report.rounds.reduce((n, r) => n + f(r), 0)
  const inFlight = report.rounds.map(r => r.inFlightAtKill)
  return {
    rounds: report.rounds.length,
    'writes attempted': sum(r => r.attempted),
    'writes acknowledged': sum(r => r.acknowledged),
    'unknown outcome': sum(r => r.unknown),
    'in flight at kill (min/mean/max)': inFlight.length === 0 ? '-' : `${Math.min(...inFlight)}/${(sum(r => r.inFlightAtKill) / inFlight.length).toFixed(1)}/${Math.max(...inFlight)}`,
    'acknowledged across the kill': sum(r => r.ackedAcrossKill),
    lost: sum(r => r.lost),
    unexpected: sum(r => r.unexpected),
    unreadable: sum(r => r.unreadable),
    'W=3 writes missing on the killed disk': `${sum(r => r.durableMissing)} of ${sum(r => r.durableChecked)}`,
    'own copies not converged': sum(r => r.victimMissing),
    'trees checked at restart': sum(r => r.treesVerified),
    'trees rebuilt': sum(r => r.treesRebuilt),
    'hints delivered / left / dropped at restart': `${sum(r => r.hintsDelivered)} / ${sum(r => r.hintsLeft)} / ${sum(r => r.hintsDropped)}`,
    'hint holders killed during delivery': report.rounds.filter(r => r.holderKilled !== undefined).length,
    'start failures': sum(r => r.startFailures),
    'final read: lost / unexpected / unreadable': `${report.finalLost} / ${report.finalUnexpected} / ${report.finalUnreadable} of ${report.finalChecked}`,
    'offline trees inconsistent': `${report.offlineTreesInconsistent} of ${report.offlineTrees}`,
    'offline hints bad': `${report.offlineHintsBad} of ${report.offlineHints}`,
    seconds: Math.round(report.seconds)
  }
}

/** Whether the run found nothing wrong. */
export function passed (report: CrashReport): boolean {
  const bad = report.rounds.some(r => r.lost + r.unexpected + r.unreadable + r.durableMissing + r.victimMissing + r.startFailures + r.hintsLeft > 0)
  return !bad && report.finalLost + report.finalUnexpected + report.finalUnreadable + report.offlineTreesInconsistent + report.offlineHintsBad === 0
}

function rotated<T> (items: readonly T[], by: number): T[] {
  return [...items.slice(by), ...items.slice(0, by)]
}

async function forEach<T> (items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!)
  }))
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}
