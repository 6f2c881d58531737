/**
 * The nemesis schedule of a chaos run: a pure function of the seed, the node count and the run's
 * length, so one seed replays the same faults at the same offsets. Faults come one at a time:
 * a quiet gap, a fault held for a while, then its undoing (restart, resume, heal).
 */
import { SimRandom } from '../../src/sim/random.ts'
import type { Cut } from './network.ts'

export type PartitionShape = 'halves' | 'isolate' | 'ring'

export type Fault =
  | { readonly kind: 'kill', readonly nodes: readonly number[] }
  | { readonly kind: 'pause', readonly nodes: readonly number[] }
  | { readonly kind: 'partition', readonly shape: PartitionShape, readonly cuts: readonly Cut[] }

export interface NemesisStep {
  /** Offset from the start of the nemesis, ms. */
  readonly at: number
  /** How long the faults last before they are undone, ms. */
  readonly holdMs: number
  /** Applied in order, undone in reverse: usually one, sometimes a partition with a kill or pause inside it. */
  readonly faults: readonly Fault[]
}

export interface ScheduleOptions {
  readonly gapMs?: readonly [number, number]
  readonly holdMs?: readonly [number, number]
}

const GAP_MS: readonly [number, number] = [2_000, 5_000]
const HOLD_MS: readonly [number, number] = [4_000, 10_000]

/**
 * Faults for `durationMs`. The first two are a kill -9 and a partition (in seeded order), so even a
 * short run has both; the next ones cover the kinds not seen yet, then they are drawn at random.
 * The last one lasts until the end, so it is undone by the final heal, after the workload stopped.
 * Once every kind has been seen, a third of the partitions also kill or pause a node inside them.
 */
export function nemesisSchedule (seed: number, nodes: number, durationMs: number, options: ScheduleOptions = {}): NemesisStep[] {
  if (nodes < 3) throw new Error('the nemesis needs at least 3 nodes')
  const random = new SimRandom(seed)
  const [gapMin, gapMax] = options.gapMs ?? GAP_MS
  const [holdMin, holdMax] = options.holdMs ?? HOLD_MS
  // A ring of 3 is everyone connected: no cut at all.
  const partitions: PartitionShape[] = random.shuffle(nodes >= 4 ? ['halves', 'isolate', 'ring'] as const : ['halves', 'isolate'] as const)
  const kinds: Array<'kill' | 'pause' | PartitionShape> = [...random.shuffle(['kill', partitions[0]!] as const), ...random.shuffle(['pause', ...partitions.slice(1)] as const)]
  const steps: NemesisStep[] = []
  let t = 0
  for (;;) {
    const at = t + random.int(gapMin, gapMax)
    // The last fault may be cut short, but it lasts until the end: the final heal then has real work to do.
    const holdMs = Math.min(random.int(holdMin, holdMax), durationMs - at)
    if (holdMs < holdMin) break
    const first = kinds.shift()
    const kind = first ?? random.pick(['kill', 'pause', ...partitions])
    const faults = [fault(kind, nodes, random)]
    if (first === undefined && faults[0]!.kind === 'partition' && random.chance(1 / 3)) faults.push(fault(random.pick(['kill', 'pause'] as const), nodes, random))
    steps.push({ at, holdMs, faults })
    t = at + holdMs
  }
  return steps
}

function fault (kind: 'kill' | 'pause' | PartitionShape, nodes: number, random: SimRandom): Fault {
  const all = Array.from({ length: nodes }, (_, i) => i)
  // At most a minority at once, so the survivors can still form quorums for most keys.
  const few = (): number[] => random.shuffle(all).slice(0, random.int(1, Math.floor((nodes - 1) / 2))).sort((a, b) => a - b)
  switch (kind) {
    case 'kill': return { kind, nodes: few() }
    case 'pause': return { kind, nodes: few() }
    case 'halves': {
      const order = random.shuffle(all)
      const half = Math.floor(nodes / 2)
      return { kind: 'partition', shape: kind, cuts: across(order.slice(0, half), order.slice(half)) }
    }
    case 'isolate': {
      const alone = random.pick(all)
      return { kind: 'partition', shape: kind, cuts: across([alone], all.filter(i => i !== alone)) }
    }
    case 'ring': return { kind: 'partition', shape: kind, cuts: majoritiesRing(random.shuffle(all)) }
  }
}

/** Every pair with one side in `a` and the other in `b`. */
function across (a: readonly number[], b: readonly number[]): Cut[] {
  return a.flatMap(x => b.map(y => ordered(x, y)))
}

/**
 * Jepsen's majorities ring: nodes placed on a ring each keep links only to their nearest
 * neighbours, enough that every node sees a majority (itself included), yet no two adjacent
 * nodes see the same majority.
 */
export function majoritiesRing (ring: readonly number[]): Cut[] {
  const k = ring.length
  const majority = Math.floor(k / 2) + 1
  const reach = Math.ceil((majority - 1) / 2)
  const cuts: Cut[] = []
  for (let i = 0; i < k; i++) {
    for (let j = i + 1; j < k; j++) {
      const distance = Math.min(j - i, k - (j - i))
      if (distance > reach) cuts.push(ordered(ring[i]!, ring[j]!))
    }
  }
  return cuts
}

/** Which nodes each node can still reach (itself included) under a set of cuts. */
export function visibility (nodes: number, cuts: readonly Cut[]): number[][] {
  const cut = new Set(cuts.map(([a, b]) => `${a}:${b}`))
  return Array.from({ length: nodes }, (_, i) => Array.from({ length: nodes }, (_, j) => j).filter(j => i === j || !cut.has(`${Math.min(i, j)}:${Math.max(i, j)}`)))
}

function ordered (a: number, b: number): Cut {
  return a < b ? [a, b] : [b, a]
}

/** One line for the progress log and the event list. */
export function describeFault (f: Fault): string {
  const names = (nodes: readonly number[]): string => nodes.map(i => `n${i + 1}`).join(',')
  if (f.kind !== 'partition') return `${f.kind} ${names(f.nodes)}`
  return `partition ${f.shape} (${f.cuts.map(([a, b]) => `n${a + 1}-n${b + 1}`).join(' ')})`
}
