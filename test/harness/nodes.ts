/**
 * The `shoal start` processes of a chaos run, each inside its node's namespace. `ip netns exec`
 * execs node in place, so a child's pid is the shoal node's own: kill -9, SIGSTOP and SIGCONT
 * reach it directly (checked at every start through /proc/PID/exe).
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { readlinkSync, realpathSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { exited, stderrTail } from '../../bench/processes.ts'
import type { ChaosNetwork } from './network.ts'

const bin = fileURLToPath(new URL('../../bin/shoal.js', import.meta.url))

/** Every node listens on this port inside its own namespace. */
export const NODE_PORT = 7000

export interface NodeSettings {
  readonly cluster: string
  readonly n: number
  readonly r: number
  readonly w: number
  readonly antiEntropyIntervalMs: number
  readonly handoffIntervalMs: number
}

interface Running {
  readonly child: ChildProcess
  readonly stderr: () => string
  paused: boolean
}

/** A node that exited without the harness asking: a crash, reported as a failure of the run. */
export interface Crash {
  readonly node: number
  readonly code: number | null
  readonly signal: string | null
  readonly stderr: string
}

export class ChaosNodes {
  /** The multiaddr (with /p2p/) of each node, once it has started. */
  readonly addrs: Array<string | undefined>
  readonly crashes: Crash[] = []
  private readonly network: ChaosNetwork
  private readonly root: string
  private readonly settings: NodeSettings
  private readonly running = new Map<number, Running>()
  private readonly expectedExit = new Set<ChildProcess>()

  constructor (network: ChaosNetwork, root: string, settings: NodeSettings) {
    this.network = network
    this.root = root
    this.settings = settings
    this.addrs = network.nodes.map(() => undefined)
  }

  get size (): number {
    return this.network.nodes.length
  }

  dataDir (index: number): string {
    return join(this.root, `n${index + 1}`)
  }

  isUp (index: number): boolean {
    return this.running.has(index)
  }

  isPaused (index: number): boolean {
    return this.running.get(index)?.paused === true
  }

  /** The pid of a running node (the shoal process itself, not an `ip` wrapper). */
  pid (index: number): number | undefined {
    return this.running.get(index)?.child.pid
  }

  /** Starts node `index` on its data directory, bootstrapping from every other node known so far. */
  async start (index: number): Promise<string> {
    if (this.running.has(index)) throw new Error(`node ${index + 1} is already running`)
    const slot = this.network.nodes[index]
    if (slot === undefined) throw new Error(`no node ${index}`)
    const s = this.settings
    const bootstrap = this.addrs.filter((a, i): a is string => a !== undefined && i !== index).flatMap(a => ['--bootstrap', a])
    const argv = [process.execPath, bin, 'start', '--data', this.dataDir(index), '--listen', `/ip4/${slot.ip}/tcp/${NODE_PORT}`,
      ...bootstrap, '--no-mdns', '--cluster', s.cluster, '--n', String(s.n), '--r', String(s.r), '--w', String(s.w),
      '--anti-entropy-interval', String(s.antiEntropyIntervalMs), '--handoff-interval', String(s.handoffIntervalMs), '--json']
    const child = spawn('ip', this.network.exec(slot.ns, ...argv), { stdio: ['ignore', 'pipe', 'pipe'] })
    const stderr = stderrTail(child)
    const entry: Running = { child, stderr, paused: false }
    this.running.set(index, entry)
    child.once('exit', (code, signal) => {
      if (this.running.get(index) === entry) this.running.delete(index)
      if (!this.expectedExit.delete(child)) this.crashes.push({ node: index, code, signal, stderr: stderr() })
    })
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve)
      child.once('exit', code => { reject(new Error(`node ${index + 1} exited with ${code} before it started: ${stderr()}`)) })
    })
    child.stdout?.resume()
    const info = JSON.parse(line) as { addrs: string[] }
    const addr = info.addrs.find(a => a.startsWith(`/ip4/${slot.ip}/`))
    if (addr === undefined) throw new Error(`node ${index + 1} listens on ${info.addrs.join(', ')}, not on ${slot.ip}`)
    assertIsNode(child.pid, index)
    this.addrs[index] = addr
    return addr
  }

  /** kill -9: the process gets no chance to flush or close anything. */
  async kill (index: number): Promise<void> {
    const entry = this.running.get(index)
    if (entry === undefined) return
    this.expectedExit.add(entry.child)
    const gone = new Promise<void>(resolve => entry.child.once('exit', () => { resolve() }))
    entry.child.kill('SIGKILL')
    await gone
  }

  pause (index: number): void {
    const entry = this.running.get(index)
    if (entry === undefined || entry.paused) return
    entry.child.kill('SIGSTOP')
    entry.paused = true
  }

  resume (index: number): void {
    const entry = this.running.get(index)
    if (entry === undefined || !entry.paused) return
    entry.child.kill('SIGCONT')
    entry.paused = false
  }

  /** Kills every node (a paused one too: SIGKILL needs no SIGCONT). */
  async stopAll (): Promise<void> {
    await Promise.all([...this.running.keys()].map(async i => { await this.kill(i) }))
  }

  /** At process exit only synchronous work runs. */
  killAllNow (): void {
    for (const { child } of this.running.values()) {
      this.expectedExit.add(child)
      if (!exited(child)) child.kill('SIGKILL')
    }
  }
}

/** `ip netns exec` must have exec'd node in place, or our signals would hit `ip` instead. */
function assertIsNode (pid: number | undefined, index: number): void {
  if (pid === undefined) throw new Error(`node ${index + 1} has no pid`)
  const exe = readlinkSync(`/proc/${pid}/exe`)
  if (exe !== realpathSync(process.execPath)) throw new Error(`pid ${pid} of node ${index + 1} runs ${exe}, not node: signals would miss the shoal process`)
}
