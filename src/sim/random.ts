import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64'
import { uniformInt } from 'pure-rand/distribution/uniformInt'
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus'
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator'

/** The simulator's only source of randomness: one seed, one sequence, one run. */
export class SimRandom {
  private readonly rng: RandomGenerator

  constructor (seed: number) {
    this.rng = xoroshiro128plus(seed)
  }

  /** Uniform in [0, 1). */
  next (): number {
    return uniformFloat64(this.rng)
  }

  /** Uniform integer in [from, to]. */
  int (from: number, to: number): number {
    return uniformInt(this.rng, from, to)
  }

  chance (p: number): boolean {
    return this.next() < p
  }

  pick<T> (items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list')
    return items[this.int(0, items.length - 1)] as T
  }

  shuffle<T> (items: readonly T[]): T[] {
    const out = [...items]
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i)
      const tmp = out[i] as T
      out[i] = out[j] as T
      out[j] = tmp
    }
    return out
  }
}

/** A seeded source of numbers in [0, 1), for tests and benches that need reproducible inputs. */
export function seeded (seed: number): () => number {
  const random = new SimRandom(seed)
  return () => random.next()
}

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

/** A string shaped like an Ed25519 libp2p peer id ('12D3KooW' and 44 base58 characters). */
export function fakePeerId (random: () => number): string {
  let id = '12D3KooW'
  for (let i = 0; i < 44; i++) id += BASE58[Math.floor(random() * 58)]
  return id
}
