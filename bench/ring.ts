/**
 * Ring balance, movement and construction time for S equal members (Q=4096, N=3).
 * Prints numbers and asserts nothing. `npm run bench -- ring [--seeds=K]` (default K=5);
 * movement and balance columns are the mean over K seeded member sets, with the worst in
 * brackets.
 */
import { Ring, movedShare, DEFAULT_N, DEFAULT_PARTITIONS } from '../src/core/ring.ts'
import type { RingMember } from '../src/core/ring.ts'
import { fakePeerId, seeded } from '../src/sim/random.ts'

const SIZES = [5, 10, 50, 100, 1000]
const Q = DEFAULT_PARTITIONS
const N = DEFAULT_N

/** Median construction time in ms over a few warm builds. */
function buildMs (members: RingMember[]): number {
  const times: number[] = []
  const rounds = members.length >= 1000 ? 3 : 15
  for (let i = 0; i < rounds + 2; i++) {
    const start = performance.now()
    void new Ring(members)
    if (i >= 2) times.push(performance.now() - start)
  }
  times.sort((a, b) => a - b)
  return times[times.length >> 1] ?? 0
}

interface Sample {
  max: number
  min: number
  join: number
  leave: number
  heavy: number
}

function sample (size: number, seed: number): Sample {
  const random = seeded(seed * 7919 + size)
  const members = Array.from({ length: size }, () => ({ id: fakePeerId(random), weight: 1 }))
  const ring = new Ring(members)
  const loads = ring.members.map(m => ring.replicaCount(m.id))
  const mean = Q * N / size
  const joined = new Ring([...members, { id: fakePeerId(random), weight: 1 }])
  const leaver = Math.floor(random() * size)
  const left = new Ring(members.filter((_, i) => i !== leaver))
  const heavyId = members[0]?.id ?? ''
  const weighted = new Ring([{ id: heavyId, weight: 2 }, ...members.slice(1)])
  const heavy = weighted.replicaCount(heavyId)
  return {
    max: Math.max(...loads) / mean,
    min: Math.min(...loads) / mean,
    join: movedShare(ring, joined),
    leave: movedShare(ring, left),
    heavy: heavy / ((Q * N - heavy) / (size - 1))
  }
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length

export async function run (args: string[]): Promise<void> {
  const seedsArg = args.find(a => a.startsWith('--seeds='))
  const seeds = Math.max(1, Number(seedsArg?.slice('--seeds='.length) ?? 5))
  console.log(`ring: Q=${Q} N=${N}, equal members, ${seeds} seeded member sets per row (mean [worst])`)
  console.log('bars: max/mean <= 1.10; join and leave move <= 1.25/S; weight-2 share 1.8..2.2\n')
  const header = ['S', 'mean', 'max', 'max/mean', 'min/mean', 'join moved', 'join xS', 'leave moved', 'leave xS', 'w2/mean', 'build ms']
  const rows: string[][] = [header]
  for (const size of SIZES) {
    const samples = Array.from({ length: seeds }, (_, seed) => sample(size, seed + 1))
    const replicaMean = Q * N / size
    const worst = (pick: (s: Sample) => number, high = true): number =>
      samples.map(pick).reduce((a, b) => high ? Math.max(a, b) : Math.min(a, b))
    const pair = (pick: (s: Sample) => number, digits: number, scale = 1, high = true): string =>
      `${(mean(samples.map(pick)) * scale).toFixed(digits)} [${(worst(pick, high) * scale).toFixed(digits)}]`
    const w2 = samples.map(s => s.heavy)
    rows.push([
      String(size),
      replicaMean.toFixed(2),
      (worst(s => s.max) * replicaMean).toFixed(0),
      pair(s => s.max, 3),
      pair(s => s.min, 3, 1, false),
      pair(s => s.join, 4),
      pair(s => s.join, 3, size),
      pair(s => s.leave, 4),
      pair(s => s.leave, 3, size),
      `${Math.min(...w2).toFixed(2)}..${Math.max(...w2).toFixed(2)}`,
      buildMs(Array.from({ length: size }, (_, i) => ({ id: fakePeerId(seeded(i + 1)), weight: 1 }))).toFixed(2)
    ])
  }
  const widths = header.map((_, c) => Math.max(...rows.map(r => (r[c] ?? '').length)))
  for (const row of rows) console.log(row.map((cell, c) => cell.padStart(widths[c] ?? 0)).join('  '))
}
