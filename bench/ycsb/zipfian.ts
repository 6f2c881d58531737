/**
 * YCSB's key choosers: a zipfian generator after Gray et al., "Quickly generating billion-record
 * synthetic databases" (SIGMOD 1994), as YCSB's ZipfianGenerator implements it, and a scrambled
 * variant that spreads the popular items over the key space, as YCSB's ScrambledZipfianGenerator
 * does, so the hot keys do not all sit together (in one partition, say).
 */
import { seeded } from '../../src/sim/random.ts'

/** YCSB's default zipfian constant. */
export const ZIPFIAN_CONSTANT = 0.99

/** The generalized harmonic number: sum over i in 1..n of 1 / i^theta. */
export function zeta (n: number, theta: number): number {
  let sum = 0
  for (let i = 1; i <= n; i++) sum += 1 / Math.pow(i, theta)
  return sum
}

/**
 * Ranks 0..items-1, rank 0 the most popular: P(rank k) is about 1/(k+1)^theta / zeta(items, theta).
 * Draws are exact for ranks 0 and 1 and follow Gray's closed-form approximation beyond.
 */
export class ZipfianGenerator {
  readonly items: number
  readonly theta: number
  private readonly random: () => number
  private readonly zetaN: number
  private readonly alpha: number
  private readonly eta: number
  private readonly half: number

  constructor (items: number, random: () => number, theta = ZIPFIAN_CONSTANT) {
    if (!Number.isInteger(items) || items < 2) throw new RangeError(`a zipfian generator needs at least 2 items, got ${items}`)
    if (!(theta > 0 && theta < 1)) throw new RangeError(`the zipfian constant must be in (0, 1), got ${theta}`)
    this.items = items
    this.theta = theta
    this.random = random
    this.zetaN = zeta(items, theta)
    const zeta2 = zeta(2, theta)
    this.alpha = 1 / (1 - theta)
    this.eta = (1 - Math.pow(2 / items, 1 - theta)) / (1 - zeta2 / this.zetaN)
    this.half = 1 + Math.pow(0.5, theta)
  }

  /** The exact probability of a rank under the zipfian law this approximates. */
  probability (rank: number): number {
    return 1 / Math.pow(rank + 1, this.theta) / this.zetaN
  }

  next (): number {
    const u = this.random()
    const uz = u * this.zetaN
    if (uz < 1) return 0
    if (uz < this.half) return 1
    return Math.min(this.items - 1, Math.floor(this.items * Math.pow(this.eta * u - this.eta + 1, this.alpha)))
  }
}

/**
 * Zipfian over item indexes, with ranks mapped to items by a permutation drawn from `seed`. YCSB
 * scrambles with an FNV hash modulo the item count, which maps some ranks onto the same item and
 * leaves others never chosen; a permutation keeps the law exact and still spreads the hot items.
 */
export class ScrambledZipfianGenerator {
  private readonly zipfian: ZipfianGenerator
  private readonly itemOfRank: Uint32Array

  /**
   * @param items - the size of the key space
   * @param seed - the permutation's seed: the same for every client and target, so item 0's rank is fixed
   * @param random - the source each draw uses (a client's own seeded stream)
   */
  constructor (items: number, seed: number, random: () => number, theta = ZIPFIAN_CONSTANT) {
    this.zipfian = new ZipfianGenerator(items, random, theta)
    this.itemOfRank = permutation(items, seeded(seed))
  }

  /** The item drawn: an index in 0..items-1. */
  next (): number {
    return this.itemOfRank[this.zipfian.next()] as number
  }

  /** The item at a popularity rank (0 the hottest). */
  itemAt (rank: number): number {
    return this.itemOfRank[rank] as number
  }
}

/** A Fisher-Yates shuffle of 0..n-1. */
function permutation (n: number, random: () => number): Uint32Array {
  const out = new Uint32Array(n)
  for (let i = 0; i < n; i++) out[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const tmp = out[i] as number
    out[i] = out[j] as number
    out[j] = tmp
  }
  return out
}
