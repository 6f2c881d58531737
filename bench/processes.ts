/**
 * The processes and temp dirs a benchmark starts, so that all of them go at the end, whatever
 * happens (bench/kv.ts, bench/sync.ts).
 */
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** How long a child gets to stop cleanly after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 10_000

export interface SpawnOptions {
  /** An IPC channel to the child. */
  readonly ipc?: boolean
  /** Keep the child's stdout as a pipe (default) or drop it. */
  readonly stdout?: 'pipe' | 'ignore'
}

/** Every process and temp dir the bench starts, so that all of them go at the end, whatever happens. */
export class Processes {
  protected readonly children = new Set<ChildProcess>()
  protected readonly dirs = new Set<string>()
  /** pid to a name, for the profiles. */
  readonly roles = new Map<number, string>()
  private nodeArgs: string[] = []

  /** Runs every process started from now on under the V8 CPU profiler, writing into `dir`. */
  profileInto (dir: string): void {
    this.nodeArgs = ['--cpu-prof', `--cpu-prof-dir=${dir}`]
  }

  spawn (role: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    const stdout = options.stdout ?? 'pipe'
    const child = spawn(process.execPath, [...this.nodeArgs, ...args], {
      stdio: options.ipc === true ? ['ignore', stdout, 'pipe', 'ipc'] : ['ignore', stdout, 'pipe']
    })
    this.children.add(child)
    if (child.pid !== undefined) this.roles.set(child.pid, role)
    child.once('exit', () => { this.children.delete(child) })
    return child
  }

  async tempDir (prefix: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix))
    this.dirs.add(dir)
    return dir
  }

  /** SIGTERM (a node stops cleanly and closes its store), SIGKILL if it lingers. */
  async stop (child: ChildProcess): Promise<void> {
    if (exited(child)) return
    const gone = new Promise<void>(resolve => child.once('exit', () => { resolve() }))
    child.kill('SIGTERM')
    const timer = setTimeout(() => { child.kill('SIGKILL') }, STOP_GRACE_MS)
    await gone
    clearTimeout(timer)
  }

  async removeDir (dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true })
    this.dirs.delete(dir)
  }

  async cleanup (): Promise<void> {
    await Promise.allSettled([...this.children].map(async c => { await this.stop(c) }))
    await Promise.allSettled([...this.dirs].map(async d => { await this.removeDir(d) }))
  }

  /** At process exit only synchronous work runs: kill what is left and remove the dirs. */
  readonly lastResort = (): void => {
    for (const child of this.children) child.kill('SIGKILL')
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true })
  }
}

export function exited (child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

/** The last few KiB a child wrote to stderr, for the error message when it fails. */
export function stderrTail (child: ChildProcess): () => string {
  let tail = ''
  child.stderr?.on('data', (chunk: Buffer) => { tail = (tail + chunk.toString()).slice(-4096) })
  return () => tail.trim()
}

/** Clock ticks per second of /proc/<pid>/stat's CPU times. */
const CLOCK_TICKS = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()) || 100
  } catch {
    return 100
  }
})()

/** CPU time (user + system, ms) a process has used so far; undefined once it is gone or where /proc is not there. */
export function cpuMs (pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 1000 / CLOCK_TICKS
  } catch {
    return undefined
  }
}

/** The CPU time of all of `children`, in ms; undefined if any one's cannot be read. */
export function sumCpuMs (children: readonly ChildProcess[]): number | undefined {
  let sum = 0
  for (const child of children) {
    const ms = cpuMs(child.pid)
    if (ms === undefined) return undefined
    sum += ms
  }
  return sum
}
