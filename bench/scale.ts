/**
 * `npm run bench -- scale [--nodes 20] [--seeds 3] [--rounds 3] [--poll 100] [--quiet-wait 300] [--no-ring]`: how fast real
 * `shoal start` processes on 127.0.0.1 agree on membership and see a killed member go, and the
 * ring's balance up to 1000 members (bench/ring.ts). Prints numbers beside the goals (issue 6:
 * 20 processes agree within 5 s; a killed node is seen down within 5 s) and asserts nothing.
 *
 * Each round starts a fresh cluster: `--seeds` members one by one, then the others at once, each
 * bootstrapping from the seeds only (so the mesh forms by gossip and discovery, not by the bench's
 * list). Before each round the bench waits (up to --quiet-wait s) for the machine's load average
 * to fall to its CPU count, and records the load average.
 * - converged: from the moment the last process printed its addresses until every process's
 *   `status` (admin protocol, polled from one bench peer) lists all of them `up`.
 * - kill: one member (not a seed) gets SIGKILL; from the kill until every other member
 *   sees it `suspect` or `down` (not up), and until every other sees it `down` (phi over threshold).
 *
 * Rows go to bench/results/scale-latest.json. Every process and temp dir goes at the end, on
 * error and on Ctrl-C. This file also holds the helpers bench/memory.ts uses to start `shoal start`
 * processes and read their status.
 */
import { execFileSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Libp2p } from '@libp2p/interface'
import { adminCall } from '../src/net/admin.ts'
import { renderTable } from '../src/cli/table.ts'
import type { NodeStatus } from '../src/node.ts'
import { createFloorLibp2p } from './floor.ts'
import { memoryOf, sleep } from './load.ts'
import { Processes, stderrTail } from './processes.ts'
import { run as ringBench } from './ring.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(root, 'bin', 'shoal.js')
const RESULTS = join(root, 'bench', 'results', 'scale-latest.json')
const CLUSTER = 'bench-scale'
/** Issue 6's goals, in ms. */
const GOALS = { convergeMs: 5000, detectMs: 5000 }
/** A process that has not printed its addresses by then is stuck. */
const START_TIMEOUT_MS = 120_000
/** Beyond this the figure is "not reached" rather than a wait for ever. */
const CONVERGE_TIMEOUT_MS = 120_000
const STATUS_TIMEOUT_MS = 5_000

/** A `shoal start` child process that printed its peer id and addresses. */
export interface ShoalProcess {
  readonly child: ChildProcess
  readonly pid: number
  readonly peerId: string
  readonly addrs: readonly string[]
  readonly dataDir: string
}

/**
 * `shoal start --json` on 127.0.0.1 (an ephemeral port, no mDNS) with `args` added, under Node
 * `flags`; resolves once it printed its first line (peer id and addresses), i.e. once its
 * start-up returned.
 */
export async function startShoal (processes: Processes, dataDir: string, args: readonly string[], role = 'node', flags: readonly string[] = []): Promise<ShoalProcess> {
  const child = processes.spawn(role, [...flags, BIN, 'start', '--data', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--json', ...args])
  const tail = stderrTail(child)
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`shoal start in ${dataDir} printed nothing in ${START_TIMEOUT_MS} ms: ${tail()}`)) }, START_TIMEOUT_MS)
    createInterface({ input: child.stdout! }).once('line', line => {
      clearTimeout(timer)
      resolve(line)
    })
    child.once('exit', code => {
      clearTimeout(timer)
      reject(new Error(`shoal start in ${dataDir} exited with ${code}: ${tail()}`))
    })
  })
  const info = JSON.parse(line) as { peerId: string, addrs: string[] }
  if (child.pid === undefined) throw new Error('shoal start has no pid')
  return { child, pid: child.pid, peerId: info.peerId, addrs: info.addrs, dataDir }
}

/** The address to reach a process at, with its peer id. */
export function dialAddress (node: Pick<ShoalProcess, 'peerId' | 'addrs'>): string {
  const addr = node.addrs[0]
  if (addr === undefined) throw new Error(`${node.peerId} has no address`)
  return addr.includes('/p2p/') ? addr : `${addr}/p2p/${node.peerId}`
}

/** One bare libp2p peer (tcp, noise, yamux: no gossip, no member) that asks nodes for their status. */
export class StatusProbe {
  private readonly libp2p: Libp2p

  private constructor (libp2p: Libp2p) {
    this.libp2p = libp2p
  }

  static async create (): Promise<StatusProbe> {
    return new StatusProbe(await createFloorLibp2p([]))
  }

  /** The node's `status` answer, as `shoal status --json` prints it. */
  async status (node: Pick<ShoalProcess, 'peerId' | 'addrs'>, timeoutMs = STATUS_TIMEOUT_MS): Promise<NodeStatus> {
    return await adminCall(this.libp2p, dialAddress(node), { op: 'status' }, timeoutMs) as NodeStatus
  }

  async stop (): Promise<void> {
    await this.libp2p.stop()
  }
}

/** The commit measured, and whether src/ differs from it. */
export function codeVersion (): { commit?: string, srcModified?: boolean } {
  try {
    const git = (...args: string[]): string => execFileSync('git', ['--no-optional-locks', ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    return { commit: git('rev-parse', 'HEAD'), srcModified: git('status', '--porcelain', '--', 'src') !== '' }
  } catch {
    return {}
  }
}

/** Writes a results file under bench/results. */
export async function saveResults (path: string, results: unknown): Promise<void> {
  await mkdir(join(root, 'bench', 'results'), { recursive: true })
  await writeFile(path, JSON.stringify(results, null, 2) + '\n')
}

/**
 * Runs `body` with a Processes whose children and dirs all go at the end, also on Ctrl-C (exit
 * 130) and at an exit the finally cannot see.
 */
export async function withProcesses<T> (name: string, body: (processes: Processes) => Promise<T>): Promise<T> {
  const processes = new Processes()
  let interrupted = false
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = true
    console.error(`\n${name}: ${signal}: stopping every process the bench started`)
    void processes.cleanup().finally(() => { process.exit(130) })
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.on('exit', processes.lastResort)
  try {
    return await body(processes)
  } catch (err) {
    // Cut short by a signal: its handler cleans up and exits.
    if (interrupted) await new Promise(() => {})
    throw err
  } finally {
    await processes.cleanup()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.off('exit', processes.lastResort)
  }
}

/**
 * Polls every node's status (all at once, then `pollMs` apart) until `done` holds for each;
 * returns the ms from `from` to the poll round that first found it, or undefined past `timeoutMs`.
 * A node that does not answer a round counts as not done in it.
 */
async function pollUntil (probe: StatusProbe, nodes: readonly ShoalProcess[], done: (status: NodeStatus) => boolean, from: number, pollMs: number, timeoutMs: number): Promise<number | undefined> {
  const finished = new Set<string>()
  while (performance.now() - from < timeoutMs) {
    const round = nodes.filter(n => !finished.has(n.peerId))
    await Promise.all(round.map(async node => {
      try {
        if (done(await probe.status(node))) finished.add(node.peerId)
      } catch {}
    }))
    if (finished.size === nodes.length) return performance.now() - from
    await sleep(pollMs)
  }
  return undefined
}

interface Options {
  readonly nodes: number
  readonly rounds: number
  readonly pollMs: number
  readonly ring: boolean
  /** Members started first, one by one; the others start at once and bootstrap from all of them. */
  readonly seeds: number
  /** The longest wait for a quiet machine before a round, in ms. */
  readonly quietWaitMs: number
}

function parseOptions (args: readonly string[]): Options {
  const value = (name: string, fallback: number): number => {
    const at = args.indexOf(`--${name}`)
    if (at === -1) return fallback
    const n = Number(args[at + 1])
    if (!Number.isInteger(n) || n < 1) throw new Error(`scale: --${name} needs a positive integer, got ${String(args[at + 1])}`)
    return n
  }
  const nodes = value('nodes', 20)
  const seeds = value('seeds', 3)
  if (nodes < seeds + 2) throw new Error('scale: --nodes must exceed --seeds by 2 (a member to kill and one to see it)')
  return { nodes, rounds: value('rounds', 3), pollMs: value('poll', 100), ring: !args.includes('--no-ring'), seeds, quietWaitMs: value('quiet-wait', 300) * 1000 }
}

export interface ScaleRound {
  readonly round: number
  /** From spawning the first process until the last printed its addresses. */
  readonly startMs: number
  /** From the last process started until every status lists every member up; null if never. */
  readonly convergeMs: number | null
  /** From the kill until every other member sees the killed one not up (suspect or down). */
  readonly notUpMs: number | null
  /** From the kill until every other member sees it down. */
  readonly downMs: number | null
  /** The highest RSS of a member once converged, in MB. */
  readonly maxRssMB: number
  /** The machine's 1-minute load average before and after the round (other processes included). */
  readonly loadBefore: number
  readonly loadAfter: number
}

async function measureRound (processes: Processes, options: Options, round: number): Promise<ScaleRound> {
  const dir = await processes.tempDir('shoal-bench-scale-')
  const probe = await StatusProbe.create()
  const nodes: ShoalProcess[] = []
  try {
    const loadBefore = loadavg()[0] ?? 0
    const began = performance.now()
    const args = ['--cluster', CLUSTER]
    // A few seed members first, as an operator lists a few seeds; each bootstraps from those before it.
    for (let i = 0; i < options.seeds; i++) {
      nodes.push(await startShoal(processes, join(dir, `n${i}`), [...args, ...nodes.flatMap(n => ['--bootstrap', dialAddress(n)])]))
    }
    const seedArgs = nodes.flatMap(n => ['--bootstrap', dialAddress(n)])
    const rest = await Promise.all(Array.from({ length: options.nodes - options.seeds }, async (_, i) =>
      await startShoal(processes, join(dir, `n${i + options.seeds}`), [...args, ...seedArgs])))
    nodes.push(...rest)
    const started = performance.now()
    const ids = nodes.map(n => n.peerId)
    const converged = await pollUntil(probe, nodes, status => ids.every(id => status.members.some(m => m.peerId === id && m.state === 'up')), started, options.pollMs, CONVERGE_TIMEOUT_MS)
    if (converged === undefined) console.log(`round ${round}: not converged after ${CONVERGE_TIMEOUT_MS / 1000} s; members each sees up/known: ${await views(probe, nodes)}`)
    const maxRssMB = Math.max(...nodes.map(n => memoryOf(n.pid).rssMiB * 1.048576))
    let notUpMs: number | undefined
    let downMs: number | undefined
    if (converged !== undefined) {
      // Not a seed: the others found each other through them.
      const victim = nodes[options.seeds + Math.floor(Math.random() * (nodes.length - options.seeds))] as ShoalProcess
      const others = nodes.filter(n => n !== victim)
      const gone = new Promise<void>(resolve => victim.child.once('exit', () => { resolve() }))
      const killed = performance.now()
      victim.child.kill('SIGKILL')
      await gone
      const stateOf = (status: NodeStatus): string | undefined => status.members.find(m => m.peerId === victim.peerId)?.state
      // Both watched from the same kill: the suspect/down poll and the down poll run side by side.
      ;[notUpMs, downMs] = await Promise.all([
        pollUntil(probe, others, s => stateOf(s) !== 'up', killed, options.pollMs, CONVERGE_TIMEOUT_MS),
        pollUntil(probe, others, s => stateOf(s) === 'down', killed, options.pollMs, CONVERGE_TIMEOUT_MS)
      ])
    }
    return { round, startMs: started - began, convergeMs: converged ?? null, notUpMs: notUpMs ?? null, downMs: downMs ?? null, maxRssMB, loadBefore, loadAfter: loadavg()[0] ?? 0 }
  } finally {
    await probe.stop()
    await Promise.allSettled(nodes.map(async n => { await processes.stop(n.child) }))
    await processes.removeDir(dir)
  }
}

/**
 * Waits (up to `maxWaitMs`) until the machine's 1-minute load average is at most its CPU count:
 * 20 processes on a machine others already saturate measure the machine, not Shoal.
 */
async function quietMachine (maxWaitMs: number): Promise<void> {
  const end = performance.now() + maxWaitMs
  let said = false
  while ((loadavg()[0] ?? 0) > availableParallelism() && performance.now() < end) {
    if (!said) console.log(`waiting up to ${maxWaitMs / 1000} s for a quiet machine (load average ${(loadavg()[0] ?? 0).toFixed(1)}, ${availableParallelism()} CPUs)`)
    said = true
    // A timer that holds the process open: nothing else does while the bench waits.
    await new Promise(resolve => setTimeout(resolve, 5000))
  }
}

/** What each node sees, for a round that did not converge: `up/known` per node, or `?` if it did not answer. */
async function views (probe: StatusProbe, nodes: readonly ShoalProcess[]): Promise<string> {
  const seen = await Promise.all(nodes.map(async node => {
    try {
      const status = await probe.status(node)
      return `${status.members.filter(m => m.state === 'up').length}/${status.members.length}`
    } catch (err) {
      return `? (${(err as Error).name})`
    }
  }))
  return seen.join(' ')
}

/** min, median and max of the figures that were reached; null when none was. */
export function spread (values: ReadonlyArray<number | null>): { min: number, median: number, max: number, missing: number } | null {
  const reached = values.filter((v): v is number => v !== null).sort((a, b) => a - b)
  if (reached.length === 0) return null
  const median = reached.length % 2 === 1
    ? reached[reached.length >> 1] as number
    : ((reached[reached.length / 2 - 1] as number) + (reached[reached.length / 2] as number)) / 2
  return { min: reached[0] as number, median, max: reached[reached.length - 1] as number, missing: values.length - reached.length }
}

function seconds (ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '-' : (ms / 1000).toFixed(2)
}

export async function run (args: string[]): Promise<void> {
  const options = parseOptions(args)
  const version = codeVersion()
  console.log(`scale: ${options.nodes} shoal start processes on 127.0.0.1, ${options.rounds} rounds, status polled every ${options.pollMs} ms; ` +
    `${availableParallelism()} CPUs, Node ${process.version}, commit ${version.commit?.slice(0, 7) ?? '?'}${version.srcModified === true ? ' with src/ modified' : ''}`)
  const rounds = await withProcesses('scale', async processes => {
    const done: ScaleRound[] = []
    for (let round = 1; round <= options.rounds; round++) {
      await quietMachine(options.quietWaitMs)
      const row = await measureRound(processes, options, round)
      done.push(row)
      console.log(`round ${round}: started in ${seconds(row.startMs)} s, all up everywhere ${seconds(row.convergeMs)} s after the last start, ` +
        `killed member not up everywhere after ${seconds(row.notUpMs)} s, down everywhere after ${seconds(row.downMs)} s; max member RSS ${row.maxRssMB.toFixed(0)} MB; ` +
        `load average ${row.loadBefore.toFixed(1)} before, ${row.loadAfter.toFixed(1)} after`)
    }
    return done
  })
  const figures = [
    { name: `${options.nodes} processes agree on membership`, spread: spread(rounds.map(r => r.convergeMs)), goalMs: GOALS.convergeMs },
    { name: 'a killed member seen suspect or down by all', spread: spread(rounds.map(r => r.notUpMs)), goalMs: GOALS.detectMs },
    { name: 'a killed member seen down by all', spread: spread(rounds.map(r => r.downMs)), goalMs: GOALS.detectMs }
  ]
  console.log('')
  const header = ['figure', 'min s', 'median s', 'max s', 'goal', 'verdict']
  const rows = figures.map(f => {
    const met = f.spread !== null && f.spread.missing === 0 && f.spread.max <= f.goalMs
    return [f.name, seconds(f.spread?.min), seconds(f.spread?.median), seconds(f.spread?.max), `<= ${f.goalMs / 1000} s`,
      f.spread === null ? 'never reached' : met ? 'met' : f.spread.missing > 0 ? `missed (${f.spread.missing} rounds never)` : 'missed']
  })
  for (const line of renderTable(header, rows, { right: [1, 2, 3, 4, 5] })) console.log(line)
  console.log('Times are to the first poll round that found it (so up to one poll interval plus a status round trip late).')
  await saveResults(RESULTS, {
    date: new Date().toISOString(),
    ...version,
    node: process.version,
    cpus: availableParallelism(),
    options,
    goals: GOALS,
    rounds,
    summary: Object.fromEntries(figures.map(f => [f.name, f.spread === null ? null : { ...f.spread, met: f.spread.missing === 0 && f.spread.max <= f.goalMs }]))
  })
  console.log(`figures written to ${RESULTS}`)
  if (options.ring) {
    console.log('')
    await ringBench([])
  }
}
