/**
 * `npm run bench -- memory [--keys 1000000] [--value-bytes 100] [--differing 1000] [--settle 10]
 * [--node-flags "--max-semi-space-size=8"]...`: the resident memory (RSS, and its private part) of
 * real `shoal start` processes, idle and holding a million keys, beside issue 6's goals (idle <= 150
 * MB; 1M keys <= 400 MB). Each `--node-flags` adds a configuration measured the same way, with
 * those Node flags on the `shoal start` processes. Prints numbers, asserts nothing.
 *
 * - idle: two `shoal start` processes forming a 2-member cluster (N=2) on empty data directories;
 *   RSS once both see each other, have run an anti-entropy exchange, and `--settle` s more passed.
 * - 1M keys: two data directories are filled first, each by a loader process through the node's
 *   own storage code (Store.open + Store.merge: object and Merkle segment in one batch, as a
 *   replica write), since a million puts through the network take hours here. B lacks half of
 *   `--differing` keys and holds a newer version of the other half. Then both start as ordinary
 *   `shoal start` processes (N=2 R=1 W=1, so both own every partition; anti-entropy at its
 *   default 10 s) and go through their whole start-up: hint check, then the background check of
 *   every partition's stored tree against its objects. RSS is read when the process is up, once
 *   the tree check is over, and once anti-entropy has repaired every differing key (an exchange
 *   over all 4096 partitions); the peak (VmHWM) covers the whole run.
 *
 * Rows go to bench/results/memory-latest.json. Every process and temp dir goes at the end, on
 * error and on Ctrl-C. This file is also the loader child (`node bench/memory.ts '<fill json>'`).
 */
import { availableParallelism } from 'node:os'
import { readFileSync, realpathSync } from 'node:fs'
import { cp } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { update } from '../src/core/causality.ts'
import type { DvvSet } from '../src/core/causality.ts'
import { renderTable } from '../src/cli/table.ts'
import type { NodeStatus } from '../src/node.ts'
import { DEFAULT_PARTITIONS } from '../src/core/ring.ts'
import { Store } from '../src/store/store.ts'
import { memoryOf, sleep } from './load.ts'
import type { Processes } from './processes.ts'
import { stderrTail } from './processes.ts'
import { StatusProbe, codeVersion, dialAddress, saveResults, startShoal, withProcesses } from './scale.ts'
import type { ShoalProcess } from './scale.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const SELF = fileURLToPath(import.meta.url)
const RESULTS = join(root, 'bench', 'results', 'memory-latest.json')
const CLUSTER = 'bench-memory'
/** Issue 6's goals, in MB (10^6 bytes). */
const GOALS = { idleMB: 150, loadedMB: 400 }
/** The writer of the pre-loaded objects: as if a coordinator had written them before. */
const LOADER_ACTOR = 'bench-loader'
const LOADED_AT = 1_700_000_000_000
/** Start-up tree check and anti-entropy at a million keys take minutes on a shared 2-core machine. */
const WAIT_MS = 20 * 60_000
const POLL_MS = 1000
const MB_PER_MIB = 1.048576

interface Options {
  readonly keys: number
  readonly valueBytes: number
  readonly differing: number
  readonly settleMs: number
  /** Node flags for the `shoal start` processes, one list per configuration measured ([] = as shipped). */
  readonly configs: ReadonlyArray<readonly string[]>
}

function parseOptions (args: readonly string[]): Options {
  const value = (name: string, fallback: number, min: number): number => {
    const at = args.indexOf(`--${name}`)
    if (at === -1) return fallback
    const n = Number(args[at + 1])
    if (!Number.isInteger(n) || n < min) throw new Error(`memory: --${name} needs an integer >= ${min}, got ${String(args[at + 1])}`)
    return n
  }
  const keys = value('keys', 1_000_000, 1)
  const differing = value('differing', 1000, 0)
  if (differing > keys) throw new Error('memory: --differing cannot exceed --keys')
  // `--node-flags "--max-semi-space-size=4"` adds a configuration: the same runs with those Node flags.
  const configs: string[][] = [[]]
  args.forEach((arg, i) => { if (arg === '--node-flags') configs.push(String(args[i + 1] ?? '').split(' ').filter(f => f !== '')) })
  return { keys, valueBytes: value('value-bytes', 100, 0), differing, settleMs: value('settle', 10, 0) * 1000, configs }
}

// ---------------------------------------------------------------------------------------------
// The loader child: fills one data directory through the node's own storage code.

interface FillJob {
  readonly dir: string
  readonly keys: number
  readonly valueBytes: number
  /** Keys [0, missing) are left out. */
  readonly missing: number
  /** Keys [missing, newerEnd) get a second version that replaces the first. */
  readonly newerEnd: number
}

function keyName (i: number): string {
  return `memory:${String(i).padStart(8, '0')}`
}

/** Reproducible, incompressible bytes for key `i`, version `version`. */
function valueOf (i: number, version: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes)
  let x = (Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(version, 0x85ebca6b)) >>> 0 || 1
  for (let b = 0; b < bytes; b++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[b] = x & 0xff
  }
  return out
}

function objectOf (i: number, newer: boolean, bytes: number): DvvSet {
  const first = update(undefined, new Map(), LOADER_ACTOR, valueOf(i, 1, bytes), LOADED_AT)
  return newer ? update(first, first.vv, LOADER_ACTOR, valueOf(i, 2, bytes), LOADED_AT + 1) : first
}

async function fill (job: FillJob): Promise<number> {
  const store = await Store.open(job.dir, { partitions: DEFAULT_PARTITIONS })
  const encoder = new TextEncoder()
  let next = job.missing
  let written = 0
  try {
    // Many writes in flight: partitions are locked one by one, so they proceed in parallel.
    const worker = async (): Promise<void> => {
      while (next < job.keys) {
        const i = next++
        await store.merge(encoder.encode(keyName(i)), objectOf(i, i < job.newerEnd, job.valueBytes))
        written++
      }
    }
    await Promise.all(Array.from({ length: 64 }, worker))
  } finally {
    await store.close()
  }
  return written
}

async function fillInChild (processes: Processes, job: FillJob): Promise<void> {
  const child = processes.spawn('loader', [SELF, JSON.stringify(job)], { stdout: 'ignore' })
  const tail = stderrTail(child)
  await new Promise<void>((resolve, reject) => {
    child.once('exit', code => { code === 0 ? resolve() : reject(new Error(`the loader of ${job.dir} exited with ${code}: ${tail()}`)) })
  })
}

// ---------------------------------------------------------------------------------------------
// The bench.

function rssMB (node: ShoalProcess): number {
  return memoryOf(node.pid).rssMiB * MB_PER_MIB
}

/**
 * The RSS split into private memory (RssAnon: V8's heap, LevelDB's and libp2p's native memory)
 * and file pages (RssFile: the node binary, and LevelDB's table files, which it maps into memory;
 * the kernel drops those pages whenever it needs the room), in MB.
 */
function splitMB (node: ShoalProcess): { anon: number, file: number } {
  const status = readFileSync(`/proc/${node.pid}/status`, 'utf8')
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { anon: kib('RssAnon') * 1.024 / 1000, file: kib('RssFile') * 1.024 / 1000 }
}

function peakMB (node: ShoalProcess): number {
  return memoryOf(node.pid).peakMiB * MB_PER_MIB
}

/** Polls both nodes' status until `done` holds for both; throws past WAIT_MS. */
async function until (what: string, probe: StatusProbe, nodes: readonly ShoalProcess[], done: (statuses: NodeStatus[]) => boolean): Promise<NodeStatus[]> {
  const end = Date.now() + WAIT_MS
  for (;;) {
    try {
      const statuses = await Promise.all(nodes.map(async n => await probe.status(n, 30_000)))
      if (done(statuses)) return statuses
    } catch {}
    if (Date.now() > end) throw new Error(`memory: timed out waiting until ${what}`)
    await sleep(POLL_MS)
  }
}

interface Stage {
  readonly stage: string
  /** RSS of node A and node B, in MB. */
  readonly rssMB: [number, number]
  /** Of which private (RssAnon) and file-backed (RssFile), for A and B. */
  readonly anonMB: [number, number]
  readonly fileMB: [number, number]
  /** Seconds since the processes were spawned. */
  readonly atS: number
}

function stageOf (stage: string, nodes: readonly [ShoalProcess, ShoalProcess], began: number): Stage {
  const [a, b] = [splitMB(nodes[0]), splitMB(nodes[1])]
  const row: Stage = { stage, rssMB: [rssMB(nodes[0]), rssMB(nodes[1])], anonMB: [a.anon, b.anon], fileMB: [a.file, b.file], atS: (performance.now() - began) / 1000 }
  console.log(`  ${stage.padEnd(44)} A ${row.rssMB[0].toFixed(0)} MB (private ${a.anon.toFixed(0)}, files ${a.file.toFixed(0)}), ` +
    `B ${row.rssMB[1].toFixed(0)} MB (private ${b.anon.toFixed(0)}, files ${b.file.toFixed(0)}) at ${row.atS.toFixed(0)} s`)
  return row
}

/** Starts A, then B bootstrapping from A: a 2-member cluster where both own every partition. */
async function startPair (processes: Processes, dirs: readonly [string, string], flags: readonly string[]): Promise<[ShoalProcess, ShoalProcess]> {
  const args = ['--cluster', CLUSTER, '--n', '2', '--r', '1', '--w', '1']
  const a = await startShoal(processes, dirs[0], args, 'node-a', flags)
  const b = await startShoal(processes, dirs[1], [...args, '--bootstrap', dialAddress(a)], 'node-b', flags)
  return [a, b]
}

interface LoadedResult {
  readonly stages: Stage[]
  readonly peakMB: [number, number]
  readonly treeCheckS: number
  readonly antiEntropyS: number
  readonly keysRepaired: number
  readonly exchanges: number
  readonly treesVerified: [number, number]
  readonly treesRebuilt: number
}

async function measureIdle (processes: Processes, options: Options, flags: readonly string[]): Promise<Stage[]> {
  const dir = await processes.tempDir('shoal-bench-memory-idle-')
  const probe = await StatusProbe.create()
  const began = performance.now()
  const nodes = await startPair(processes, [join(dir, 'a'), join(dir, 'b')], flags)
  try {
    const stages = [stageOf('idle: started', nodes, began)]
    await until('both members see each other and their start-up checks are over', probe, nodes, statuses =>
      statuses.every(s => s.antiEntropy.treesChecked && s.members.filter(m => m.state === 'up').length === 2))
    // Anti-entropy runs every 10 s even with nothing to repair: wait for one exchange each.
    await until('each member has run an anti-entropy exchange', probe, nodes, statuses => statuses.every(s => s.antiEntropy.exchanges > 0))
    await sleep(options.settleMs)
    stages.push(stageOf(`idle: ${options.settleMs / 1000} s after an exchange`, nodes, began))
    return stages
  } finally {
    await probe.stop()
    await Promise.allSettled(nodes.map(async n => { await processes.stop(n.child) }))
    await processes.removeDir(dir)
  }
}

/** Fills the two data directories (A with every key, B differing), in two loader processes; returns seconds. */
async function load (processes: Processes, options: Options, dirs: readonly [string, string]): Promise<number> {
  const half = Math.floor(options.differing / 2)
  const began = performance.now()
  await Promise.all([
    fillInChild(processes, { dir: dirs[0], keys: options.keys, valueBytes: options.valueBytes, missing: 0, newerEnd: 0 }),
    fillInChild(processes, { dir: dirs[1], keys: options.keys, valueBytes: options.valueBytes, missing: half, newerEnd: options.differing })
  ])
  const loadS = (performance.now() - began) / 1000
  console.log(`loaded ${options.keys} keys of ${options.valueBytes} B into two data directories in ${loadS.toFixed(0)} s`)
  return loadS
}

async function measureLoaded (processes: Processes, options: Options, flags: readonly string[], loaded: readonly [string, string]): Promise<LoadedResult> {
  // A fresh copy of the loaded directories for each configuration: anti-entropy repairs B.
  const dir = await processes.tempDir('shoal-bench-memory-loaded-')
  const dirs = [join(dir, 'a'), join(dir, 'b')] as const
  await Promise.all(loaded.map(async (from, i) => { await cp(from, dirs[i] as string, { recursive: true }) }))
  const probe = await StatusProbe.create()
  const began = performance.now()
  const nodes = await startPair(processes, dirs, flags)
  const since = (): number => (performance.now() - began) / 1000
  const label = `${options.keys} keys`
  try {
    const stages = [stageOf(`${label}: started`, nodes, began)]
    const checked = await until('both start-up tree checks are over', probe, nodes, statuses => statuses.every(s => s.antiEntropy.treesChecked))
    const treeCheckS = since()
    stages.push(stageOf(`${label}: start-up tree check over`, nodes, began))
    const exchangesBefore = checked.map(s => s.antiEntropy.exchanges)
    // Every differing key repaired, and each node has run an exchange of its own since its trees
    // were all checked: a pass over every partition.
    const repaired = await until('anti-entropy has repaired every differing key', probe, nodes, statuses =>
      statuses.reduce((n, s) => n + s.antiEntropy.keysRepaired, 0) >= options.differing &&
      statuses.every((s, i) => s.antiEntropy.exchanges > (exchangesBefore[i] ?? 0)))
    const antiEntropyS = since()
    stages.push(stageOf(`${label}: after anti-entropy`, nodes, began))
    await sleep(options.settleMs)
    stages.push(stageOf(`${label}: ${options.settleMs / 1000} s later`, nodes, began))
    return {
      stages,
      peakMB: [peakMB(nodes[0]), peakMB(nodes[1])],
      treeCheckS,
      antiEntropyS,
      keysRepaired: repaired.reduce((n, s) => n + s.antiEntropy.keysRepaired, 0),
      exchanges: repaired.reduce((n, s) => n + s.antiEntropy.exchanges, 0),
      treesVerified: [repaired[0]?.antiEntropy.treesVerified ?? 0, repaired[1]?.antiEntropy.treesVerified ?? 0],
      treesRebuilt: repaired.reduce((n, s) => n + s.antiEntropy.treesRebuilt, 0)
    }
  } finally {
    await probe.stop()
    await Promise.allSettled(nodes.map(async n => { await processes.stop(n.child) }))
    await processes.removeDir(dir)
  }
}

interface ConfigResult {
  /** Node flags of the shoal start processes; [] as shipped. */
  readonly flags: readonly string[]
  readonly idle: Stage[]
  readonly loaded: LoadedResult
  readonly idleMB: number
  readonly idlePrivateMB: number
  readonly loadedMB: number
  readonly loadedPrivateMB: number
  readonly loadedPeakMB: number
}

function summarize (flags: readonly string[], idle: Stage[], loaded: LoadedResult): ConfigResult {
  const settled = idle[idle.length - 1] as Stage
  // After the start-up check: the figure for a node holding the keys, whatever it does at start.
  const after = loaded.stages.slice(1)
  return {
    flags,
    idle,
    loaded,
    idleMB: Math.max(...settled.rssMB),
    idlePrivateMB: Math.max(...settled.anonMB),
    loadedMB: Math.max(...after.flatMap(s => s.rssMB)),
    loadedPrivateMB: Math.max(...after.flatMap(s => s.anonMB)),
    loadedPeakMB: Math.max(...loaded.peakMB)
  }
}

export async function run (args: string[]): Promise<void> {
  const options = parseOptions(args)
  const version = codeVersion()
  console.log(`memory: RSS of shoal start processes (2 members, N=2), idle and with ${options.keys} keys of ${options.valueBytes} B; ` +
    `${availableParallelism()} CPUs, Node ${process.version}, commit ${version.commit?.slice(0, 7) ?? '?'}${version.srcModified === true ? ' with src/ modified' : ''}`)
  const { loadS, results } = await withProcesses('memory', async processes => {
    const dir = await processes.tempDir('shoal-bench-memory-data-')
    const loaded = [join(dir, 'a'), join(dir, 'b')] as const
    const loadS = await load(processes, options, loaded)
    const results: ConfigResult[] = []
    for (const flags of options.configs) {
      console.log(`\nshoal start ${flags.length === 0 ? 'as shipped' : `under node ${flags.join(' ')}`}:`)
      const idle = await measureIdle(processes, options, flags)
      results.push(summarize(flags, idle, await measureLoaded(processes, options, flags, loaded)))
    }
    return { loadS, results }
  })
  const verdict = (mb: number, goal: number): string => mb <= goal ? 'met' : 'missed'
  console.log('')
  const header = ['node flags', 'figure', 'RSS MB', 'private MB', 'goal', 'verdict']
  const rows: string[][] = []
  for (const r of results) {
    const flags = r.flags.length === 0 ? '(as shipped)' : r.flags.join(' ')
    rows.push([flags, 'idle member, after start-up and an exchange', r.idleMB.toFixed(0), r.idlePrivateMB.toFixed(0), `<= ${GOALS.idleMB}`, verdict(r.idleMB, GOALS.idleMB)])
    rows.push([flags, `${options.keys} keys, after tree check / anti-entropy`, r.loadedMB.toFixed(0), r.loadedPrivateMB.toFixed(0), `<= ${GOALS.loadedMB}`, verdict(r.loadedMB, GOALS.loadedMB)])
    rows.push([flags, `${options.keys} keys, peak over the run (VmHWM)`, r.loadedPeakMB.toFixed(0), '', `<= ${GOALS.loadedMB}`, verdict(r.loadedPeakMB, GOALS.loadedMB)])
  }
  for (const line of renderTable(header, rows, { right: [2, 3, 4, 5] })) console.log(line)
  const first = results[0] as ConfigResult
  console.log(`MB = 10^6 bytes; the max over the two members. Private = RssAnon (V8 heap, native memory); the rest is file pages: the node binary and ` +
    `LevelDB's memory-mapped table files (the kernel's page cache, dropped under pressure). Start-up tree check over ${first.loaded.treeCheckS.toFixed(0)} s after spawn ` +
    `(${first.loaded.treesVerified.join(' and ')} trees checked, ${first.loaded.treesRebuilt} rebuilt); anti-entropy repaired ${first.loaded.keysRepaired} keys by ` +
    `${first.loaded.antiEntropyS.toFixed(0)} s. Load: two loader processes through Store.merge, ${loadS.toFixed(0)} s.`)
  await saveResults(RESULTS, {
    date: new Date().toISOString(),
    ...version,
    node: process.version,
    cpus: availableParallelism(),
    options,
    goals: GOALS,
    loadS,
    results,
    summary: results.map(r => ({
      flags: r.flags,
      idleMB: { value: r.idleMB, met: r.idleMB <= GOALS.idleMB },
      loadedMB: { value: r.loadedMB, met: r.loadedMB <= GOALS.loadedMB },
      loadedPeakMB: { value: r.loadedPeakMB, met: r.loadedPeakMB <= GOALS.loadedMB }
    }))
  })
  console.log(`figures written to ${RESULTS}`)
}

function isEntry (): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(SELF)
  } catch {
    return false
  }
}

if (isEntry()) {
  try {
    await fill(JSON.parse(process.argv[2] ?? '{}') as FillJob)
  } catch (err) {
    console.error(err instanceof Error ? `${err.name}: ${err.message}` : String(err))
    process.exit(1)
  }
}
