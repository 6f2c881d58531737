/**
 * The ycsb benchmark's targets: each started on loopback by the bench and stopped by it, with what
 * each guarantees of an acknowledged write, so the comparison says what it compares.
 */
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { freePort } from '../../test/support/ports.ts'
import { Processes, stderrTail } from '../processes.ts'
import type { TargetSpec } from './driver.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const SHOAL_BIN = join(root, 'bin', 'shoal.js')
const FLOOR_SERVER = join(root, 'bench', 'floor-server.ts')
const KAD_SERVER = join(root, 'bench', 'ycsb', 'kad-server.ts')
export const ETCD_BIN = '/usr/bin/etcd'
const START_TIMEOUT_MS = 30_000

export const TARGETS = ['shoal-3', 'shoal-5', 'shoal-3-client-driven', 'floor', 'kad-dht', 'etcd'] as const
export type TargetName = typeof TARGETS[number]

/** What an acknowledged write means on each target, printed beside its figures. */
export const DURABILITY: Record<TargetName, string> = {
  'shoal-3': 'W=2 of N=3 replicas wrote it to LevelDB (OS page cache, no fsync)',
  'shoal-5': 'W=2 of N=3 replicas wrote it to LevelDB (OS page cache, no fsync)',
  'shoal-3-client-driven': 'W=2 of N=3 replicas wrote it to LevelDB (OS page cache, no fsync)',
  floor: 'nothing stored: one request/response, the network stack alone',
  'kad-dht': 'held in memory by the closest peers that answered (up to k=20; all 3 here)',
  etcd: 'a majority (2 of 3) fsynced it to their Raft log; reads are linearizable'
}

export interface Started {
  readonly spec: TargetSpec
  /** The target's server processes, for their CPU use. */
  readonly servers: readonly ChildProcess[]
  readonly stop: () => Promise<void>
}

/** Processes, plus programs other than node (etcd). */
export class BenchProcesses extends Processes {
  spawnProgram (role: string, command: string, args: string[]): ChildProcess {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.children.add(child)
    if (child.pid !== undefined) this.roles.set(child.pid, role)
    child.once('exit', () => { this.children.delete(child) })
    return child
  }
}

export async function startTarget (procs: BenchProcesses, target: TargetName, log: (line: string) => void): Promise<Started> {
  switch (target) {
    case 'shoal-3': return await startShoal(procs, 3, 'server')
    case 'shoal-5': return await startShoal(procs, 5, 'server')
    case 'shoal-3-client-driven': return await startShoal(procs, 3, 'client')
    case 'floor': return await startFloor(procs, 3)
    case 'kad-dht': return await startKad(procs, 3)
    case 'etcd': return await startEtcd(procs, 3, log)
  }
}

/** Resolves with the first line `child` prints on stdout, or rejects when it exits or takes too long. */
async function firstLine (child: ChildProcess, role: string): Promise<string> {
  const tail = stderrTail(child)
  return await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${role} did not start within ${START_TIMEOUT_MS} ms: ${tail()}`)) }, START_TIMEOUT_MS)
    createInterface({ input: child.stdout! }).once('line', line => { clearTimeout(timer); resolve(line) })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`${role} exited with ${code}: ${tail()}`)) })
  })
}

/** Resolves with the addresses an IPC child (floor or kad server) announces once ready. */
async function ready (child: ChildProcess, role: string): Promise<string> {
  const tail = stderrTail(child)
  const addrs = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${role} did not start within ${START_TIMEOUT_MS} ms: ${tail()}`)) }, START_TIMEOUT_MS)
    child.once('message', (message: { type: string, addrs: string[] }) => { clearTimeout(timer); resolve(message.addrs) })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`${role} exited with ${code}: ${tail()}`)) })
  })
  const addr = addrs[0]
  if (addr === undefined) throw new Error(`${role} listens on no address`)
  return addr
}

/** Starts `count` servers with `start(i, first)`, the first alone (the others bootstrap to it); stops all of them if one fails. */
async function startGroup (procs: Processes, count: number, start: (i: number, first?: string) => Promise<{ child: ChildProcess, addr: string }>): Promise<{ children: ChildProcess[], addrs: string[] }> {
  const children: ChildProcess[] = []
  const addrs: string[] = []
  try {
    const first = await start(0)
    children.push(first.child)
    addrs.push(first.addr)
    const rest = await Promise.allSettled(Array.from({ length: count - 1 }, async (_, i) => await start(i + 1, first.addr)))
    for (const started of rest) if (started.status === 'fulfilled') { children.push(started.value.child); addrs.push(started.value.addr) }
    for (const started of rest) if (started.status === 'rejected') throw started.reason
  } catch (err) {
    await Promise.all(children.map(async c => { await procs.stop(c) }))
    throw err
  }
  return { children, addrs }
}

async function startShoal (procs: Processes, size: number, routing: 'server' | 'client'): Promise<Started> {
  const dir = await procs.tempDir(`shoal-ycsb-${size}-`)
  try {
    const { children, addrs } = await startGroup(procs, size, async (i, first) => {
      const role = `shoal node-${i + 1}`
      const child = procs.spawn(role, [
        SHOAL_BIN, 'start', '--data', join(dir, `node-${i + 1}`), '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--json',
        '--n', '3', '--r', '2', '--w', '2', ...(first === undefined ? [] : ['--bootstrap', first])
      ])
      const info = JSON.parse(await firstLine(child, role)) as { peerId: string, addrs: string[] }
      const addr = info.addrs[0]
      if (addr === undefined) throw new Error(`${role} listens on no address`)
      return { child, addr: addr.includes('/p2p/') ? addr : `${addr}/p2p/${info.peerId}` }
    })
    return {
      spec: { kind: 'shoal', addrs, routing },
      servers: children,
      stop: async () => {
        await Promise.all(children.map(async c => { await procs.stop(c) }))
        await procs.removeDir(dir)
      }
    }
  } catch (err) {
    await procs.removeDir(dir)
    throw err
  }
}

async function startFloor (procs: Processes, size: number): Promise<Started> {
  const { children, addrs } = await startGroup(procs, size, async (i) => {
    const child = procs.spawn(`floor server-${i + 1}`, [FLOOR_SERVER], { ipc: true })
    return { child, addr: await ready(child, `floor server-${i + 1}`) }
  })
  return { spec: { kind: 'floor', addrs }, servers: children, stop: async () => { await Promise.all(children.map(async c => { await procs.stop(c) })) } }
}

async function startKad (procs: Processes, size: number): Promise<Started> {
  const { children, addrs } = await startGroup(procs, size, async (i, first) => {
    const child = procs.spawn(`kad-dht peer-${i + 1}`, [KAD_SERVER, ...(first === undefined ? [] : [first])], { ipc: true })
    return { child, addr: await ready(child, `kad-dht peer-${i + 1}`) }
  })
  return { spec: { kind: 'kad-dht', addrs }, servers: children, stop: async () => { await Promise.all(children.map(async c => { await procs.stop(c) })) } }
}

/**
 * Installs Debian's etcd-server when /usr/bin/etcd is missing and we are root; returns why etcd
 * cannot run otherwise (the bench then skips it and says so).
 */
export function ensureEtcd (log: (line: string) => void): string | undefined {
  if (existsSync(ETCD_BIN)) return undefined
  if (process.getuid?.() !== 0) return `${ETCD_BIN} is missing and installing it needs root (apt-get install etcd-server)`
  log('etcd: installing the Debian package etcd-server')
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    try {
      execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'etcd-server'], { stdio: 'ignore', env })
    } catch {
      execFileSync('apt-get', ['update'], { stdio: 'ignore', env })
      execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'etcd-server'], { stdio: 'ignore', env })
    }
  } catch (err) {
    return `apt-get install etcd-server failed: ${(err as Error).message}`
  }
  return existsSync(ETCD_BIN) ? undefined : `etcd-server installed, but ${ETCD_BIN} is not there`
}

/** Three etcd members on loopback ports, each in its own temp data dir, with etcd's defaults (fsync on). */
async function startEtcd (procs: BenchProcesses, size: number, log: (line: string) => void): Promise<Started> {
  const why = ensureEtcd(log)
  if (why !== undefined) throw new Error(why)
  const dir = await procs.tempDir('shoal-ycsb-etcd-')
  const ports = new Set<number>()
  while (ports.size < 2 * size) ports.add(await freePort())
  const [...free] = ports
  const members = Array.from({ length: size }, (_, i) => ({ name: `m${i + 1}`, client: free[2 * i] as number, peer: free[2 * i + 1] as number }))
  const cluster = members.map(m => `${m.name}=http://127.0.0.1:${m.peer}`).join(',')
  const children: ChildProcess[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(async c => { await procs.stop(c) }))
    await procs.removeDir(dir)
  }
  try {
    for (const m of members) {
      const child = procs.spawnProgram(`etcd ${m.name}`, ETCD_BIN, [
        '--name', m.name, '--data-dir', join(dir, m.name),
        '--listen-client-urls', `http://127.0.0.1:${m.client}`, '--advertise-client-urls', `http://127.0.0.1:${m.client}`,
        '--listen-peer-urls', `http://127.0.0.1:${m.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
        '--initial-cluster', cluster, '--initial-cluster-token', 'shoal-ycsb', '--initial-cluster-state', 'new',
        '--logger', 'zap', '--log-level', 'error'
      ])
      child.stdout?.resume()
      const tail = stderrTail(child)
      child.once('exit', (code, signal) => { if (code !== 0 && signal === null) log(`etcd ${m.name} exited with ${code}: ${tail()}`) })
      children.push(child)
    }
  } catch (err) {
    await stop()
    throw err
  }
  // The driver waits until every member takes a write.
  return { spec: { kind: 'etcd', urls: members.map(m => `http://127.0.0.1:${m.client}`) }, servers: children, stop }
}
