/**
 * The chaos run's side of the workload process: starts set-workload.ts (or counter-workload.ts)
 * inside the client namespace, sends it commands and collects every add (increment) it reports.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { exited, stderrTail } from '../../bench/processes.ts'
import type { ChaosNetwork } from './network.ts'
import type { AddOutcome, AddRecord, FinalRead, IncrementRecord, NodeReport, WorkloadCommand, WorkloadEvent } from './protocol.ts'

/** The workloads a chaos run can drive: Jepsen's set test, or counters (PN-counter increments). */
export type WorkloadName = 'set' | 'counter'

const scripts: Record<WorkloadName, string> = {
  set: fileURLToPath(new URL('./set-workload.ts', import.meta.url)),
  counter: fileURLToPath(new URL('./counter-workload.ts', import.meta.url))
}

type Reply<E extends WorkloadEvent['event']> = Extract<WorkloadEvent, { event: E }>

export class WorkloadProcess {
  readonly adds: AddRecord[] = []
  readonly incrs: IncrementRecord[] = []
  private readonly child: ChildProcess
  private readonly stderr: () => string
  private readonly waiting = new Map<string, (event: WorkloadEvent) => void>()
  private readonly gone: Promise<void>

  constructor (network: ChaosNetwork, workload: WorkloadName = 'set') {
    this.child = spawn('ip', network.exec(network.clientNs, process.execPath, scripts[workload]), { stdio: ['pipe', 'pipe', 'pipe'] })
    this.stderr = stderrTail(this.child)
    this.gone = new Promise(resolve => this.child.once('exit', () => { resolve() }))
    createInterface({ input: this.child.stdout! }).on('line', line => {
      const event = JSON.parse(line) as WorkloadEvent
      if (event.event === 'add') {
        const { event: _, ms: __, ...add } = event
        this.adds.push(add)
        return
      }
      if (event.event === 'incr') {
        const { event: _, ms: __, ...incr } = event
        this.incrs.push(incr)
        return
      }
      this.waiting.get(event.event)?.(event)
    })
  }

  /** Every operation's outcome so far, adds and increments alike (progress lines). */
  outcomes (): AddOutcome[] {
    return [...this.adds, ...this.incrs].map(o => o.outcome)
  }

  async init (addrs: string[], cluster: string, timeoutMs: number, keys: number, n: number): Promise<void> {
    await this.call({ cmd: 'init', addrs, cluster, timeoutMs, keys, n }, 'ready')
  }

  async start (clients: number, seed: number): Promise<void> {
    await this.call({ cmd: 'start', clients, seed }, 'started')
  }

  /** Stops the clients and waits for their last operations; returns how many reads failed. */
  async stop (): Promise<number> {
    return (await this.call({ cmd: 'stop' }, 'stopped')).readsFailed
  }

  async inspect (): Promise<NodeReport[]> {
    return (await this.call({ cmd: 'inspect' }, 'inspected')).nodes
  }

  async finalReads (r: number): Promise<Record<string, FinalRead[]>> {
    return (await this.call({ cmd: 'final', r }, 'final')).reads
  }

  async close (): Promise<void> {
    if (exited(this.child)) return
    this.child.stdin?.end(JSON.stringify({ cmd: 'quit' }) + '\n')
    const timer = setTimeout(() => { this.child.kill('SIGKILL') }, 10_000)
    await this.gone
    clearTimeout(timer)
  }

  killNow (): void {
    if (!exited(this.child)) this.child.kill('SIGKILL')
  }

  private async call<E extends WorkloadEvent['event']> (command: WorkloadCommand, reply: E): Promise<Reply<E>> {
    const answer = new Promise<Reply<E>>((resolve, reject) => {
      this.waiting.set(reply, event => { this.waiting.delete(reply); resolve(event as Reply<E>) })
      this.gone.then(() => { reject(new Error(`the workload process exited (${this.child.exitCode ?? this.child.signalCode}) before answering ${command.cmd}: ${this.stderr()}`)) }, () => {})
    })
    this.child.stdin!.write(JSON.stringify(command) + '\n')
    return await answer
  }
}
