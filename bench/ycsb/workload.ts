/**
 * YCSB's core workloads and the operation stream each closed-loop client draws from them. Every
 * choice (read or update, which key) comes from a PRNG seeded by the run's seed, the workload and
 * the client's index, so every target sees the same sequence of operations.
 */
import { seeded } from '../../src/sim/random.ts'
import { ScrambledZipfianGenerator } from './zipfian.ts'

export type WorkloadName = 'A' | 'B' | 'C'
export const WORKLOADS: readonly WorkloadName[] = ['A', 'B', 'C']

/** The two operations every target offers: YCSB's read and update (an insert in the load phase is a put too). */
export type OpName = 'get' | 'put'

export interface Workload {
  readonly name: WorkloadName
  /** Fraction of operations that are reads; the rest are updates. */
  readonly readProportion: number
  readonly description: string
}

export const WORKLOAD: Record<WorkloadName, Workload> = {
  A: { name: 'A', readProportion: 0.5, description: 'update heavy: 50 % read, 50 % update' },
  B: { name: 'B', readProportion: 0.95, description: 'read mostly: 95 % read, 5 % update' },
  C: { name: 'C', readProportion: 1, description: 'read only: 100 % read' }
}

/** YCSB's key names ("user" and the item number), the same on every target. */
export function keyOf (item: number): string {
  return `user${String(item).padStart(10, '0')}`
}

export interface Operation {
  readonly op: OpName
  readonly item: number
}

/** Seeds per workload, so that workload B's stream does not depend on how far A's went. */
const WORKLOAD_SALT: Record<WorkloadName, number> = { A: 0x0a, B: 0x0b, C: 0x0c }

/**
 * One client's endless operation stream for a workload: seeded by (seed, workload, client), with
 * keys from a scrambled zipfian over `records` whose permutation depends on `seed` alone (every
 * client and workload agree on which keys are hot).
 */
export function operationStream (workload: Workload, records: number, seed: number, client: number): () => Operation {
  const random = seeded(mix(seed, WORKLOAD_SALT[workload.name], client))
  const keys = new ScrambledZipfianGenerator(records, seed, random)
  return () => {
    const op: OpName = random() < workload.readProportion ? 'get' : 'put'
    return { op, item: keys.next() }
  }
}

/** A 32-bit seed from three integers (splitmix-style), so nearby inputs give unrelated streams. */
export function mix (a: number, b: number, c: number): number {
  let h = (a ^ 0x9e3779b9) >>> 0
  for (const x of [b, c]) {
    h = Math.imul(h ^ (x >>> 0), 0x85ebca6b) >>> 0
    h = (h ^ (h >>> 13)) >>> 0
    h = Math.imul(h, 0xc2b2ae35) >>> 0
    h = (h ^ (h >>> 16)) >>> 0
  }
  return h
}

/** A value of `bytes` seeded bytes: compressible by nobody, the same for every target. */
export function valueOf (bytes: number, seed: number): Uint8Array {
  const random = seeded(mix(seed, 0x76, bytes))
  const out = new Uint8Array(bytes)
  for (let i = 0; i < bytes; i++) out[i] = Math.floor(random() * 256)
  return out
}
