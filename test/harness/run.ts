/**
 * One chaos run: build the namespaces, start the nodes, run the set workload while the nemesis
 * follows its seeded schedule, then stop the workload, heal everything, wait for the cluster to
 * settle and judge the history. Everything is torn down afterwards, also on failure; a process
 * that is interrupted calls {@link tearDownNow} (chaos.ts does, on SIGINT and SIGTERM).
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { eventually } from '../support/eventually.ts'
import { checkSets, divergentKeys, settled } from './checker.ts'
import type { CheckResult } from './checker.ts'
import { findIptables } from './iptables.ts'
import { ChaosNetwork } from './network.ts'
import { ChaosNodes } from './nodes.ts'
import type { Crash } from './nodes.ts'
import { describeFault, nemesisSchedule } from './schedule.ts'
import type { Fault, NemesisStep } from './schedule.ts'
import type { NodeReport } from './protocol.ts'
import { WorkloadProcess } from './workload.ts'
import type { WorkloadName } from './workload.ts'
import { checkCounters } from './counter-checker.ts'

export interface ChaosOptions {
  readonly seed: number
  /** How long the nemesis runs, ms. */
  readonly timeMs: number
  readonly nodes?: number
  readonly clients?: number
  readonly keys?: number
  /** How long the cluster gets to settle after the heal before divergence is reported. */
  readonly convergeTimeoutMs?: number
  /** Progress lines. */
  readonly log?: (line: string) => void
  /** The set test (default), or counters checked against acknowledged and possible sums. */
  readonly workload?: WorkloadName
}

/** A fault as it was applied, with what was observed of it. */
export interface AppliedEvent {
  readonly atMs: number
  readonly description: string
  readonly fault: Fault
  /** kill: the killed pids and the pids after the restart; partition: DROP rules found in force per node. */
  readonly evidence: Record<string, number | number[]>
}

export interface ChaosResult {
  readonly seed: number
  readonly runId: string
  readonly check: CheckResult
  readonly events: AppliedEvent[]
  readonly eventCounts: Record<string, number>
  readonly nemesisMs: number
  readonly convergeMs: number | undefined
  readonly readsFailed: number
  readonly crashes: Crash[]
  /** The root namespace had no address or route on the cluster's subnet. */
  readonly rootIsolated: boolean
  /** When the cluster did not settle: each node's hints and copies of the divergent keys. */
  readonly replicas: string[]
  readonly valid: boolean
}

/** The run cannot happen on this machine (not root, no namespaces, no iptables): a reason, not a failure. */
export class HarnessUnavailableError extends Error {
  override name = 'HarnessUnavailableError'
}

const N = 3
const R = 2
const W = 2
const CLIENT_TIMEOUT_MS = 5_000
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, Math.max(0, ms))) }

/** Synchronous teardowns of the runs in progress, for signal handlers and process exit. */
const inProgress = new Set<() => void>()

/** Kills every process, deletes every namespace and temp dir of the runs in progress. */
export function tearDownNow (): void {
  for (const teardown of inProgress) teardown()
  inProgress.clear()
}

export async function runChaos (options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? (() => {})
  const size = options.nodes ?? 5
  const keys = options.keys ?? 8
  const clients = options.clients ?? 5
  const probe = findIptables()
  if (!probe.ok) throw new HarnessUnavailableError(probe.reason)

  const runId = randomBytes(3).toString('hex')
  const network = new ChaosNetwork(runId, size, 1 + randomBytes(1)[0]! % 254, probe.binary)
  const root = mkdtempSync(join(tmpdir(), `shoal-chaos-${runId}-`))
  const nodes = new ChaosNodes(network, root, { cluster: `chaos-${runId}`, n: N, r: R, w: W, antiEntropyIntervalMs: 1_000, handoffIntervalMs: 500 })
  let workload: WorkloadProcess | undefined
  const teardown = (): void => {
    workload?.killNow()
    nodes.killAllNow()
    network.destroy()
    rmSync(root, { recursive: true, force: true, maxRetries: 5 })
  }
  inProgress.add(teardown)
  // Whoever runs us (chaos.ts, mocha) may exit mid-run: only synchronous work runs then.
  process.once('exit', teardown)
  try {
    network.create()
    const rootIsolated = !network.rootSeesSubnet()
    log(`run ${runId}: ${size} nodes in namespaces ${network.nodes[0]!.ns}..n${size}, bridge in ${network.switchNs}, clients in ${network.clientNs}`)
    for (let i = 0; i < size; i++) await nodes.start(i)
    const addrs = nodes.addrs.map(a => a!)
    const kind = options.workload ?? 'set'
    workload = new WorkloadProcess(network, kind)
    await workload.init(addrs, `chaos-${runId}`, CLIENT_TIMEOUT_MS, keys, N)
    await eventually('every node sees every member up', async () => (await workload!.inspect()).every(r => 'membersUp' in r && r.membersUp === size), 60_000, 500)
    log(`cluster formed: ${size} members; workload: ${clients} clients on ${keys} keys; nemesis for ${(options.timeMs / 1000).toFixed(0)} s, seed ${options.seed}`)

    await workload.start(clients, options.seed)
    const schedule = nemesisSchedule(options.seed, size, options.timeMs)
    const started = Date.now()
    let readsFailed = 0
    // Jepsen's order: the clients stop, then the last fault is undone and everything heals.
    const events = await runNemesis(schedule, options.timeMs, network, nodes, workload, log, async () => { readsFailed = await workload!.stop() })
    const nemesisMs = Date.now() - started
    await healAll(network, nodes)
    log(`nemesis over after ${(nemesisMs / 1000).toFixed(1)} s; workload stopped (${workload.outcomes().length} ${kind === 'set' ? 'adds' : 'increments'}); healed, waiting for the replicas to agree`)

    const healed = Date.now()
    const keyNames = Array.from({ length: keys }, (_, k) => `${kind}-${k}`)
    let reports = await workload.inspect()
    let convergeMs: number | undefined
    const limit = options.convergeTimeoutMs ?? 120_000
    while (!settled(reports, keyNames, N)) {
      if (Date.now() - healed > limit) break
      await sleep(1_000)
      reports = await workload.inspect()
    }
    if (settled(reports, keyNames, N)) convergeMs = Date.now() - healed
    const divergent = divergentKeys(reports, keyNames, N)
    const replicas = describeReplicas(reports, divergent)
    log(convergeMs === undefined ? `not converged after ${limit / 1000} s: ${divergent.length} keys divergent` : `converged ${(convergeMs / 1000).toFixed(1)} s after the heal; final reads with R=${N}`)
    for (const line of replicas) log(line)

    const finals = await workload.finalReads(N)
    const check = kind === 'counter' ? checkCounters(workload.incrs, finals, divergent) : checkSets(workload.adds, finals, divergent)
    const eventCounts: Record<string, number> = {}
    for (const e of events) {
      const name = e.fault.kind === 'partition' ? `partition-${e.fault.shape}` : e.fault.kind
      eventCounts[name] = (eventCounts[name] ?? 0) + 1
    }
    return { seed: options.seed, runId, check, events, eventCounts, nemesisMs, convergeMs, readsFailed, crashes: [...nodes.crashes], rootIsolated, replicas, valid: check.valid && nodes.crashes.length === 0 }
  } finally {
    // The synchronous teardown stays armed until the end: a signal during this cleanup still cleans up.
    await workload?.close().catch(() => {})
    await nodes.stopAll()
    teardown()
    inProgress.delete(teardown)
    process.off('exit', teardown)
  }
}

/** Applies each step at its offset, holds it, undoes it; progress every 10 s. */
async function runNemesis (schedule: readonly NemesisStep[], timeMs: number, network: ChaosNetwork, nodes: ChaosNodes, workload: WorkloadProcess,
  log: (line: string) => void, atEnd: () => Promise<void>): Promise<AppliedEvent[]> {
  const started = Date.now()
  const events: AppliedEvent[] = []
  const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s`
  const progress = setInterval(() => {
    const outcomes = workload.outcomes()
    log(`${elapsed()}  operations ${outcomes.length}: ok ${outcomes.filter(o => o === 'ok').length}, failed ${outcomes.filter(o => o === 'failed').length}, unknown ${outcomes.filter(o => o === 'unknown').length}`)
  }, 10_000)
  try {
    for (const step of schedule) {
      await sleep(step.at - (Date.now() - started))
      log(`${elapsed()}  ${step.faults.map(describeFault).join(' + ')} for ${(step.holdMs / 1000).toFixed(1)} s`)
      const applied: AppliedEvent[] = []
      for (const fault of step.faults) applied.push({ atMs: Date.now() - started, description: describeFault(fault), fault, evidence: await apply(fault, network, nodes) })
      await sleep(step.at + step.holdMs - (Date.now() - started))
      if (step.at + step.holdMs >= timeMs) await atEnd()
      for (const event of [...applied].reverse()) await undo(event.fault, network, nodes, event.evidence)
      events.push(...applied)
      if (step.at + step.holdMs >= timeMs) return events
    }
    await sleep(timeMs - (Date.now() - started))
    await atEnd()
  } finally {
    clearInterval(progress)
  }
  return events
}

async function apply (fault: Fault, network: ChaosNetwork, nodes: ChaosNodes): Promise<Record<string, number | number[]>> {
  switch (fault.kind) {
    case 'kill': {
      const pids = fault.nodes.map(i => nodes.pid(i) ?? -1)
      for (const i of fault.nodes) await nodes.kill(i)
      return { killedPids: pids, stillAlive: pids.filter(alive).length }
    }
    case 'pause': {
      for (const i of fault.nodes) nodes.pause(i)
      // The kernel marks a process stopped once the signal is delivered, a moment after kill().
      const stopped = (): number => fault.nodes.filter(i => processState(nodes.pid(i)) === 'T').length
      await eventually('the paused nodes are stopped', () => stopped() === fault.nodes.length, 2_000, 20).catch(() => {})
      return { pausedPids: fault.nodes.map(i => nodes.pid(i) ?? -1), stopped: stopped() }
    }
    case 'partition':
      network.cut(fault.cuts)
      return { dropRules: network.nodes.map(n => network.rules(n.index).length) }
  }
}

async function undo (fault: Fault, network: ChaosNetwork, nodes: ChaosNodes, evidence: Record<string, number | number[]>): Promise<void> {
  switch (fault.kind) {
    case 'kill':
      for (const i of fault.nodes) await nodes.start(i)
      evidence.restartedPids = fault.nodes.map(i => nodes.pid(i) ?? -1)
      return
    case 'pause':
      for (const i of fault.nodes) nodes.resume(i)
      return
    case 'partition':
      network.heal()
      evidence.dropRulesAfterHeal = network.nodes.reduce((sum, n) => sum + network.rules(n.index).length, 0)
  }
}

/** After the nemesis: no rule left, nothing paused, every node running. */
async function healAll (network: ChaosNetwork, nodes: ChaosNodes): Promise<void> {
  network.heal()
  for (let i = 0; i < nodes.size; i++) {
    nodes.resume(i)
    if (!nodes.isUp(i)) await nodes.start(i)
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The state letter of /proc/PID/stat: 'T' for a stopped process. */
function processState (pid: number | undefined): string | undefined {
  if (pid === undefined) return undefined
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
  } catch {
    return undefined
  }
}

/** What each node holds of the keys that did not converge, and its pending hints: the first clue. */
function describeReplicas (reports: readonly NodeReport[], keys: readonly string[]): string[] {
  const nodeName = (i: number): string => `n${i + 1}`
  if (keys.length === 0) return []
  const lines = reports.map(r => 'copies' in r ? `${nodeName(r.node)}: ${r.hintsPending} hints pending, ${r.membersUp} members up; ${r.detail ?? ''}` : `${nodeName(r.node)}: ${r.error}`)
  for (const key of keys) {
    const union = new Set(reports.flatMap(r => 'copies' in r ? r.copies[key]?.elements ?? [] : []))
    lines.push(`${key}: ${reports.map(r => {
      if (!('copies' in r)) return `${nodeName(r.node)} ?`
      const copy = r.copies[key]
      if (copy === null || copy === undefined) return `${nodeName(r.node)} none${r.owners?.[key]?.includes(r.node) === true ? ' (an OWNER)' : ''}`
      const context = createHash('sha256').update(copy.context).digest('hex').slice(0, 8)
      const owner = r.owners?.[key]?.includes(r.node) === true ? ' (owner)' : r.owners === undefined ? '' : ' (NOT an owner)'
      return `${nodeName(r.node)}${owner} ${copy.elements.length}/${union.size} elements in ${copy.siblings} siblings, context #${context}`
    }).join(' | ')}`)
  }
  return lines
}
