/**
 * The ring: which members own which partitions (DESIGN.md "Partitioning").
 *
 * The key space is cut into Q equal partitions (a power of two); a key lives in partition
 * `topBits(keyHash(key), log2 Q)`. Ownership is a pure function of the member list (ids and
 * weights): every node that knows the same members computes the same preference lists,
 * whatever order it learnt them in.
 *
 * How owners are chosen:
 * 1. Scores. Every (partition, member) pair gets a weighted rendezvous score `v^(1/rate)`. A
 *    member's values v are a keyed permutation of the partitions, jittered within each rank
 *    (every member holds each rank 0..Q-1 exactly once) rather than independent draws: that
 *    cuts the spread of how many partitions a member wins by about 1.8x against plain
 *    rendezvous hashing and keeps it monotone. A member's rate is its weight times a multiplier
 *    solved from the weights alone, so that its chance of ranking among a partition's N best
 *    is proportional to its weight (plain weighted rendezvous shortchanges heavy members when
 *    N/S is large).
 * 2. Owners. All pairs are taken greedily, best score first; a pair is assigned while its
 *    partition has fewer than N owners and its member holds fewer replicas than its capacity,
 *    `max(ceil(f), floor(1.1 f))` for its fair share f. With symmetric preferences this is the
 *    unique stable matching, so it depends on the member set alone. A partition still short
 *    of N owners then takes its best remaining members over capacity, so N distinct owners
 *    always hold when S >= N. Members outside the most common weight class are then raised to
 *    a floor (see `limits`), so a heavy member holds its proportional share.
 * 3. Preference list: the owners by score, then every other member by score (the fallbacks).
 *
 * Capacities bind for few members at Q = 4096 (see DEFAULT_PARTITIONS), so a join or leave
 * moves about 1.0/S of the replicas up to S = 100. `npm run bench -- ring` prints the numbers.
 */
import { keyHash, sha256, topBits } from './hash.ts'
import { toBytes } from './bytes.ts'
import { InvalidArgumentError } from './errors.ts'

/** A member of the ring: its peer id and its relative capacity (weight > 0, finite). */
export interface RingMember {
  id: string
  weight: number
}

export interface RingOptions {
  /** Number of partitions Q, a power of two in 1..2^16. Default 4096. */
  partitions?: number
  /** Replicas per partition N (>= 1). Default 3. */
  n?: number
}

/**
 * 4096, not 1024: with 1.10x balance, capacities at Q=1024 allow 33 replicas against a mean of
 * 30.7 at 100 members, a quarter of the members are capped, and a join or leave cascades (measured
 * 1.6/S moved). At 4096 the caps rarely bind and one join or leave moves about 1.0/S.
 */
export const DEFAULT_PARTITIONS = 4096
export const DEFAULT_N = 3
/** A member holds at most `1 + BALANCE_SLACK` times its fair share (never less than the share rounded up). */
export const BALANCE_SLACK = 0.1
/** Scores are packed with the member index in the low bits; this leaves 33 bits of score. */
export const MAX_MEMBERS = 2 ** 20

const MAX_PARTITIONS = 2 ** 16
/** Domain separation for the per-member digest: changing it reassigns every partition. */
const MEMBER_DOMAIN = 'shoal/ring/v1\u0000'

/** Which partitions change owners between two rings, and how. */
export interface OwnershipChange {
  partition: number
  /** Owners in `after` that were not owners in `before`, in `after`'s preference order. */
  gained: string[]
  /** Owners in `before` that are not owners in `after`, in `before`'s preference order. */
  lost: string[]
}

/**
 * The owners and preference lists of every partition for one member list.
 *
 * @example
 * ```ts
 * const ring = new Ring([{ id: peerA, weight: 1 }, { id: peerB, weight: 1 }, { id: peerC, weight: 2 }])
 * const p = ring.partitionOf(toBytes('user:42'))
 * ring.owners(p)     // the N primaries, best first
 * ring.fallbacks(p)  // where a write goes, in order, when a primary is down
 * ```
 */
export class Ring {
  readonly partitions: number
  readonly n: number
  /** The members, sorted by id (UTF-16 code unit order). */
  readonly members: readonly RingMember[]

  readonly #bits: number
  readonly #scores: Scores | undefined
  readonly #owners: ReadonlyArray<readonly string[]>
  /** Built on first read of a partition's fallbacks: most partitions never need them. */
  readonly #preflists: Array<readonly string[] | undefined>
  readonly #fallbacks: Array<readonly string[] | undefined>
  readonly #primaryOf: ReadonlyMap<string, readonly number[]>

  /**
   * @throws InvalidArgumentError on a duplicate or empty id, a weight that is not a finite
   * number > 0, a partition count that is not a power of two in 1..2^16, or n < 1.
   */
  constructor (members: readonly RingMember[], options: RingOptions = {}) {
    const partitions = options.partitions ?? DEFAULT_PARTITIONS
    const n = options.n ?? DEFAULT_N
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS || (partitions & (partitions - 1)) !== 0) {
      throw new InvalidArgumentError(`partitions must be a power of two in 1..${MAX_PARTITIONS}, got ${partitions}`)
    }
    if (!Number.isInteger(n) || n < 1) {
      throw new InvalidArgumentError(`n must be an integer >= 1, got ${n}`)
    }
    this.partitions = partitions
    this.n = n
    this.#bits = Math.log2(partitions)
    this.members = Object.freeze(validMembers(members))
    this.#preflists = new Array<readonly string[] | undefined>(partitions)
    this.#fallbacks = new Array<readonly string[] | undefined>(partitions)

    const ids = this.members.map(m => m.id)
    const primaryOf = new Map<string, number[]>(ids.map(id => [id, []]))
    const owners: Array<readonly string[]> = []
    if (ids.length === 0) {
      const none = Object.freeze([])
      for (let p = 0; p < partitions; p++) owners.push(none)
    } else {
      const { rate, share, reference } = weighting(this.members, Math.min(n, ids.length))
      this.#scores = new Scores(this.members, rate, partitions)
      const assigned = assignOwners(this.#scores, limits(share, reference, partitions), Math.min(n, ids.length))
      for (let p = 0; p < partitions; p++) {
        const own: string[] = []
        for (const i of assigned[p] ?? []) {
          const id = ids[i] ?? ''
          own.push(id)
          primaryOf.get(id)?.push(p)
        }
        owners.push(Object.freeze(own))
      }
    }
    this.#owners = owners
    this.#primaryOf = primaryOf
  }

  /** The partition a key lives in: the top log2(Q) bits of its hash. */
  partitionOf (key: Uint8Array): number {
    return topBits(keyHash(key), this.#bits)
  }

  /** The partition's primaries, best first: min(N, S) distinct members. */
  owners (partition: number): readonly string[] {
    return this.#owners[this.#check(partition)] ?? []
  }

  /** Every member: the owners first, then the fallbacks in the order writes should try them. */
  preflist (partition: number): readonly string[] {
    const p = this.#check(partition)
    return this.#preflists[p] ?? this.#buildPreflist(p)
  }

  /** The preference list without its owners. */
  fallbacks (partition: number): readonly string[] {
    const p = this.#check(partition)
    let list = this.#fallbacks[p]
    if (list === undefined) {
      list = Object.freeze(this.preflist(p).slice(this.#owners[p]?.length ?? 0))
      this.#fallbacks[p] = list
    }
    return list
  }

  /** The partitions this member is a primary of, ascending; empty for a non-member. */
  partitionsOf (memberId: string): number[] {
    return [...(this.#primaryOf.get(memberId) ?? [])]
  }

  /** How many partition replicas this member holds as a primary. */
  replicaCount (memberId: string): number {
    return this.#primaryOf.get(memberId)?.length ?? 0
  }

  #buildPreflist (p: number): readonly string[] {
    const owners = this.#owners[p] ?? []
    const list = [...owners]
    const scores = this.#scores
    if (scores !== undefined) {
      const keys = new Float64Array(scores.size)
      scores.fill(p, keys, 0)
      keys.sort()
      for (const key of keys) {
        const id = this.members[scores.member(key)]?.id ?? ''
        if (!owners.includes(id)) list.push(id)
      }
    }
    const frozen = Object.freeze(list)
    this.#preflists[p] = frozen
    return frozen
  }

  #check (partition: number): number {
    if (!Number.isInteger(partition) || partition < 0 || partition >= this.partitions) {
      throw new InvalidArgumentError(`partition must be an integer in 0..${this.partitions - 1}, got ${partition}`)
    }
    return partition
  }
}

/** Which partitions change owners between two rings (for ownership handoff). */
export function ownershipChanges (before: Ring, after: Ring): OwnershipChange[] {
  if (before.partitions !== after.partitions) {
    throw new InvalidArgumentError(`rings differ in partition count: ${before.partitions} and ${after.partitions}`)
  }
  const changes: OwnershipChange[] = []
  for (let p = 0; p < before.partitions; p++) {
    const was = before.owners(p)
    const now = after.owners(p)
    const gained = now.filter(id => !was.includes(id))
    const lost = was.filter(id => !now.includes(id))
    if (gained.length > 0 || lost.length > 0) changes.push({ partition: p, gained, lost })
  }
  return changes
}

/** The share of the Q*N replica slots that change member between two rings: the data a change moves. */
export function movedShare (before: Ring, after: Ring): number {
  let moved = 0
  for (const change of ownershipChanges(before, after)) moved += change.gained.length
  return moved / (before.partitions * before.n)
}

function validMembers (members: readonly RingMember[]): RingMember[] {
  if (!Array.isArray(members)) throw new InvalidArgumentError('members must be an array')
  if (members.length > MAX_MEMBERS) throw new InvalidArgumentError(`at most ${MAX_MEMBERS} members, got ${members.length}`)
  const seen = new Set<string>()
  const out: RingMember[] = []
  for (const m of members) {
    const id: unknown = m?.id
    const weight: unknown = m?.weight
    if (typeof id !== 'string' || id === '') throw new InvalidArgumentError('a member id must be a non-empty string')
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
      throw new InvalidArgumentError(`member ${id}: weight must be a finite number > 0, got ${String(weight)}`)
    }
    if (seen.has(id)) throw new InvalidArgumentError(`duplicate member id ${id}`)
    seen.add(id)
    out.push(Object.freeze({ id, weight }))
  }
  // Code-unit order, not localeCompare: it must not depend on the host's locale.
  return out.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

/** murmur3's 32-bit finaliser: a cheap bijective mixer. */
function fmix32 (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Words per member: five for its permutation of the partitions, one for the jitter. */
const WORDS = 6

/**
 * Scores of (partition, member) pairs, packed as `floor(badness * 2^k) * 2^idxBits + index`
 * so that a plain numeric sort orders members best first, ties broken by index (id order).
 * Only SHA-256 per member (of a fixed encoding of its id) feeds them: per pair, a few integer
 * mixing steps instead of a hash of (partition, id), which would cost ~1.7 µs x Q x S.
 */
class Scores {
  readonly size: number
  readonly partitions: number
  readonly #q: number
  readonly #mask: number
  readonly #shift: number
  readonly #idxScale: number
  readonly #scoreScale: number
  readonly #words: Uint32Array
  /** 1 / rate per member; undefined when every rate is the same and v orders alone. */
  readonly #inverse: Float64Array | undefined

  constructor (members: readonly RingMember[], rate: Float64Array, q: number) {
    const s = members.length
    this.size = s
    this.partitions = q
    this.#q = q
    this.#mask = q - 1
    this.#shift = Math.max(1, (Math.log2(q) + 1) >> 1)
    const idxBits = Math.max(1, Math.ceil(Math.log2(s)))
    this.#idxScale = 2 ** idxBits
    this.#scoreScale = 2 ** (53 - idxBits)
    this.#words = new Uint32Array(s * WORDS)
    members.forEach((m, i) => {
      const digest = sha256(toBytes(MEMBER_DOMAIN + m.id))
      const view = new DataView(digest.buffer, digest.byteOffset, digest.byteLength)
      for (let w = 0; w < WORDS; w++) this.#words[i * WORDS + w] = view.getUint32(w * 4)
    })
    const first = rate[0] ?? 1
    this.#inverse = rate.every(r => r === first) ? undefined : rate.map(r => 1 / r)
  }

  /** The member index a packed score belongs to. */
  member (key: number): number {
    return key % this.#idxScale
  }

  /** Write partition p's packed score of every member into out[at .. at + size). */
  fill (p: number, out: Float64Array, at: number): void {
    const salt = fmix32((p + 0x9e3779b9) >>> 0)
    for (let i = 0; i < this.size; i++) out[at + i] = this.#pack(p, salt, i)
  }

  /** The packed score of member i in partition p. */
  key (p: number, i: number): number {
    return this.#pack(p, fmix32((p + 0x9e3779b9) >>> 0), i)
  }

  #pack (p: number, salt: number, i: number): number {
    const words = this.#words
    const w = i * WORDS
    const mask = this.#mask
    const shift = this.#shift
    // A keyed permutation of 0..q-1: xor, odd multiply, add and xorshift are bijections mod 2^bits.
    let x = (p ^ (words[w] ?? 0)) & mask
    x = Math.imul(x, (words[w + 1] ?? 0) | 1) & mask
    x ^= x >>> shift
    x = (Math.imul(x, (words[w + 2] ?? 0) | 1) + (words[w + 3] ?? 0)) & mask
    x ^= x >>> shift
    x = Math.imul(x, (words[w + 4] ?? 0) | 1) & mask
    x ^= x >>> shift
    // Every step here is exact in binary floating point, so equal-weight rings are bit-identical everywhere.
    const v = (x + (fmix32(((words[w + 5] ?? 0) ^ salt) >>> 0) + 0.5) / 4294967296) / this.#q
    // Best first means ascending 1 - v^(1/rate); with equal rates, 1 - v orders the same.
    const inverse = this.#inverse
    const bad = inverse === undefined ? 1 - v : -Math.expm1(Math.log(v) * (inverse[i] ?? 1))
    return Math.floor(bad * this.#scoreScale) * this.#idxScale + i
  }
}

/** How many of a partition's best members are kept sorted up front; the greedy rarely needs more. */
const CANDIDATES_PER_OWNER = 3

/** Per partition, its owners' member indexes, best first. */
function assignOwners (scores: Scores, { cap, floor }: Limits, need: number): Int32Array[] {
  const s = scores.size
  const partitions = scores.partitions
  // Each partition's best `width` scores, sorted; the full sort is done only if the greedy
  // runs past them. Nothing of size Q * S is kept: a score is cheap to compute again.
  const width = Math.min(s, CANDIDATES_PER_OWNER * need + 2)
  const best = new Float64Array(partitions * width)
  const scratch = new Float64Array(s)
  for (let p = 0; p < partitions; p++) {
    scores.fill(p, scratch, 0)
    selectBest(scratch, 0, s, best, p * width, width)
  }
  const full = new Map<number, Float64Array>()
  const sorted = (p: number): Float64Array => {
    let list = full.get(p)
    if (list === undefined) {
      list = new Float64Array(s)
      scores.fill(p, list, 0)
      list.sort()
      full.set(p, list)
    }
    return list
  }
  const at = (p: number, k: number): number => k < width ? best[p * width + k] ?? 0 : sorted(p)[k] ?? 0

  const load = new Int32Array(s)
  const count = new Int32Array(partitions)
  const owners = new Int32Array(partitions * need)
  const next = new Int32Array(partitions)
  const head = new Float64Array(partitions)

  // Global greedy in score order, as a k-way merge of the partitions' sorted lists: the heap
  // holds partitions keyed by their best pair not yet considered.
  const heap = new Int32Array(partitions)
  let size = 0
  const before = (a: number, b: number): boolean => {
    const ka = head[a] ?? 0
    const kb = head[b] ?? 0
    return ka < kb || (ka === kb && a < b)
  }
  const siftDown = (from: number): void => {
    const top = heap[from] ?? 0
    let i = from
    for (;;) {
      let c = 2 * i + 1
      if (c >= size) break
      if (c + 1 < size && before(heap[c + 1] ?? 0, heap[c] ?? 0)) c++
      if (!before(heap[c] ?? 0, top)) break
      heap[i] = heap[c] ?? 0
      i = c
    }
    heap[i] = top
  }
  for (let p = 0; p < partitions; p++) {
    head[p] = at(p, 0)
    heap[size++] = p
  }
  for (let i = (size >> 1) - 1; i >= 0; i--) siftDown(i)
  while (size > 0) {
    const p = heap[0] ?? 0
    const i = scores.member(head[p] ?? 0)
    const k = next[p] ?? 0
    let done = false
    if ((load[i] ?? 0) < (cap[i] ?? 0)) {
      owners[p * need + (count[p] ?? 0)] = i
      load[i] = (load[i] ?? 0) + 1
      count[p] = (count[p] ?? 0) + 1
      done = count[p] === need
    }
    next[p] = k + 1
    if (!done && k + 1 < s) head[p] = at(p, k + 1)
    else done = true
    if (done) heap[0] = heap[--size] ?? 0
    if (size > 0) siftDown(0)
  }

  // Capacity left a partition short: it takes its best remaining members regardless.
  for (let p = 0; p < partitions; p++) {
    for (let k = 0; (count[p] ?? 0) < need; k++) {
      const i = scores.member(at(p, k))
      if (!owners.subarray(p * need, p * need + (count[p] ?? 0)).includes(i)) {
        owners[p * need + (count[p] ?? 0)] = i
        load[i] = (load[i] ?? 0) + 1
        count[p] = (count[p] ?? 0) + 1
      }
    }
  }
  raiseToFloors(scores, owners, need, load, floor)

  const out: Int32Array[] = []
  for (let p = 0; p < partitions; p++) {
    const own = owners.slice(p * need, (p + 1) * need)
    if (need > 1) own.sort((a, b) => scores.key(p, a) - scores.key(p, b))
    out.push(own)
  }
  return out
}

/** Copy the `width` smallest of src[from .. from + count) into dst[at ..), ascending. */
function selectBest (src: Float64Array, from: number, count: number, dst: Float64Array, at: number, width: number): void {
  let filled = 0
  let worst = Infinity
  for (let k = 0; k < count; k++) {
    const v = src[from + k] ?? 0
    if (v >= worst) continue
    let j = filled < width ? filled++ : width - 1
    while (j > 0 && (dst[at + j - 1] ?? 0) > v) {
      dst[at + j] = dst[at + j - 1] ?? 0
      j--
    }
    dst[at + j] = v
    if (filled === width) worst = dst[at + width - 1] ?? 0
  }
}

/**
 * A member below its floor takes partitions in its own score order, each from that
 * partition's worst-scored owner that can spare one (holds more than its own floor).
 */
function raiseToFloors (scores: Scores, owners: Int32Array, need: number, load: Int32Array, floor: Int32Array): void {
  const q = scores.partitions
  for (let i = 0; i < scores.size; i++) {
    if ((load[i] ?? 0) >= (floor[i] ?? 0)) continue
    // This member's partitions, best first (its score, coarsened to leave room for p, then p).
    const mine = new Float64Array(q)
    for (let p = 0; p < q; p++) mine[p] = Math.floor(scores.key(p, i) / q) * q + p
    mine.sort()
    for (let k = 0; k < q && (load[i] ?? 0) < (floor[i] ?? 0); k++) {
      const p = (mine[k] ?? 0) % q
      const own = owners.subarray(p * need, (p + 1) * need)
      if (own.includes(i)) continue
      let spare = -1
      let spareKey = -Infinity
      for (let r = 0; r < need; r++) {
        const j = own[r] ?? 0
        const key = scores.key(p, j)
        if ((load[j] ?? 0) > (floor[j] ?? 0) && key > spareKey) {
          spare = r
          spareKey = key
        }
      }
      if (spare < 0) continue
      const j = own[spare] ?? 0
      own[spare] = i
      load[j] = (load[j] ?? 0) - 1
      load[i] = (load[i] ?? 0) + 1
    }
  }
}

/**
 * Per member: the share of partitions it should own (its chance to be among a partition's
 * `need` owners), its rendezvous rate, and whether it is in the reference weight class.
 * Shares are proportional to weight, water-filled so none exceeds 1 and they sum to `need`.
 * With one weight class the rate is the weight; otherwise a multiplier per class is solved,
 * from the weights alone, so that the chance of ranking among a partition's `need` best
 * matches the share (clamped just below 1).
 */
function weighting (members: readonly RingMember[], need: number): { share: Float64Array, rate: Float64Array, reference: Uint8Array } {
  const s = members.length
  const count = new Map<number, number>()
  for (const m of members) count.set(m.weight, (count.get(m.weight) ?? 0) + 1)
  const weights = [...count.keys()].sort((a, b) => b - a)
  const sizes = weights.map(w => count.get(w) ?? 0)
  const classShare = waterFill(weights, sizes, need)
  let classRate = weights
  if (weights.length > 1 && need < s) {
    const multiplier = classMultipliers(weights, sizes, need)
    classRate = weights.map((w, c) => w * (multiplier[c] ?? 1))
  }
  // The most populous class (the lightest among equals) is the reference the others are
  // measured against: it absorbs rounding, the others are held to their share from below too.
  let reference = 0
  sizes.forEach((n, c) => { if (n >= (sizes[reference] ?? 0)) reference = c })
  const index = new Map<number, number>(weights.map((w, c) => [w, c]))
  const share = new Float64Array(s)
  const rate = new Float64Array(s)
  const inReference = new Uint8Array(s)
  members.forEach((m, i) => {
    const c = index.get(m.weight) ?? 0
    share[i] = classShare[c] ?? 0
    rate[i] = classRate[c] ?? m.weight
    inReference[i] = c === reference ? 1 : 0
  })
  return { share, rate, reference: inReference }
}

/** Beyond this many distinct weights, multipliers are solved on log-spaced bins and interpolated. */
const MAX_CLASSES = 24

/** Rate multipliers per weight class (weights descending). */
function classMultipliers (weights: number[], sizes: number[], need: number): number[] {
  const solve = (w: number[], n: number[]): Float64Array =>
    inclusionMultipliers(w, n, waterFill(w, n, need).map(t => Math.min(1 - 1e-3, t)), need)
  if (weights.length <= MAX_CLASSES) return [...solve(weights, sizes)]
  // Many distinct weights (say, each member's free disk): the multiplier is a smooth function
  // of the weight, so solving it for a binned population and interpolating is close enough.
  const logs = weights.map(w => Math.log(w))
  const top = logs[0] ?? 0
  const span = top - (logs[logs.length - 1] ?? 0)
  const binSize = new Float64Array(MAX_CLASSES)
  const binLog = new Float64Array(MAX_CLASSES)
  logs.forEach((l, c) => {
    const b = Math.min(MAX_CLASSES - 1, Math.floor((top - l) / span * MAX_CLASSES))
    binSize[b] = (binSize[b] ?? 0) + (sizes[c] ?? 0)
    binLog[b] = (binLog[b] ?? 0) + (sizes[c] ?? 0) * l
  })
  const atLog: number[] = []
  const size: number[] = []
  binSize.forEach((n, b) => {
    if (n > 0) {
      atLog.push((binLog[b] ?? 0) / n)
      size.push(n)
    }
  })
  const multiplier = [...solve(atLog.map(l => Math.exp(l)), size)].map(x => Math.log(x))
  return logs.map(l => {
    let j = 0
    while (j < atLog.length - 1 && (atLog[j + 1] ?? 0) >= l) j++
    const hi = atLog[j] ?? 0
    const lo = atLog[j + 1]
    if (lo === undefined || l >= hi) return Math.exp(multiplier[j] ?? 0)
    const f = Math.max(0, Math.min(1, (hi - l) / (hi - lo)))
    return Math.exp((multiplier[j] ?? 0) * (1 - f) + (multiplier[j + 1] ?? 0) * f)
  })
}

/** Shares proportional to weight with none above 1, summing to `need` (weights descending). */
function waterFill (weights: number[], sizes: number[], need: number): number[] {
  const share = weights.map(() => 1)
  let left = need
  let rest = 0
  for (let c = 0; c < weights.length; c++) rest += (weights[c] ?? 0) * (sizes[c] ?? 0)
  for (let c = 0; c < weights.length; c++) {
    const w = weights[c] ?? 0
    const n = sizes[c] ?? 0
    if (left * w / rest < 1) {
      for (let d = c; d < weights.length; d++) share[d] = left * (weights[d] ?? 0) / rest
      break
    }
    left -= n
    rest -= w * n
  }
  return share
}

interface Limits {
  cap: Int32Array
  floor: Int32Array
}

/**
 * Per member, the most replicas it may hold, max(ceil(f), floor((1 + slack) f)) for its fair
 * share f, never above Q, and the fewest. Members of the reference weight class have no floor
 * (no bar asks for one, and a floor that binds costs movement on every join and leave).
 * Members outside it are held to half the slack on both sides, so that a heavy member's share
 * stays proportional to the reference class's mean whichever way rounding moves that mean.
 */
function limits (share: Float64Array, reference: Uint8Array, q: number): Limits {
  const cap = new Int32Array(share.length)
  const floor = new Int32Array(share.length)
  share.forEach((t, i) => {
    const fair = q * t
    const slack = reference[i] === 1 ? BALANCE_SLACK : BALANCE_SLACK / 2
    // The 1e-9 keeps a share that is an integer up to rounding from being rounded up.
    cap[i] = Math.min(q, Math.max(Math.ceil(fair - 1e-9), Math.floor(fair * (1 + slack))))
    // Never above the share rounded down, so that the floors together always fit.
    floor[i] = reference[i] === 1 ? 0 : Math.min(Math.floor(fair + 1e-9), Math.ceil(fair * (1 - slack) - 1e-9))
  })
  return { cap, floor }
}

/**
 * Solve per-class multipliers x_c so that P(a class-c member is among the `need` smallest of
 * independent exponential clocks with rates w_d * x_d) = target_c.
 */
function inclusionMultipliers (weights: number[], sizes: number[], target: number[], need: number): Float64Array {
  const k = weights.length
  let total = 0
  for (let c = 0; c < k; c++) total += (weights[c] ?? 0) * (sizes[c] ?? 0)
  const x = new Float64Array(k).fill(1)
  let damping = 1
  let previous = Infinity
  for (let round = 0; round < 100; round++) {
    const got = inclusionProbabilities(weights.map((w, c) => w * (x[c] ?? 1)), sizes, need)
    let worst = 0
    for (let c = 0; c < k; c++) {
      const t = target[c] ?? 0
      const g = Math.min(1 - 1e-12, Math.max(1e-12, got[c] ?? 0))
      worst = Math.max(worst, Math.abs(g - t) / Math.min(t, 1 - t))
    }
    if (worst < 1e-3) break
    // Classes pull against each other, so plain steps can oscillate: damp when error grows.
    if (worst >= previous) damping = Math.max(1 / 16, damping / 2)
    previous = worst
    let scale = 0
    for (let c = 0; c < k; c++) {
      const t = target[c] ?? 0
      const g = Math.min(1 - 1e-12, Math.max(1e-12, got[c] ?? 0))
      // A step on the odds, which move about linearly with the multiplier both for small and
      // for nearly saturated targets.
      const step = ((t / (1 - t)) / (g / (1 - g))) ** damping
      x[c] = (x[c] ?? 1) * Math.min(4, Math.max(0.25, step))
      scale += (sizes[c] ?? 0) * (weights[c] ?? 0) * (x[c] ?? 1)
    }
    // Only ratios matter; keep the weighted mean multiplier at 1 so nothing drifts away.
    for (let c = 0; c < k; c++) x[c] = (x[c] ?? 1) * total / scale
  }
  return x
}

/**
 * P(class-c member among the `need` smallest clocks), by numerical integration over its own
 * clock s of P(fewer than `need` others are below s). Time is scaled so the rates sum to 1.
 */
function inclusionProbabilities (rate: number[], sizes: number[], need: number): Float64Array {
  const k = rate.length
  let sum = 0
  for (let c = 0; c < k; c++) sum += (rate[c] ?? 0) * (sizes[c] ?? 0)
  const a = rate.map(r => r / sum)
  const smallest = Math.min(...a)
  const out = new Float64Array(k)
  // Integrate in z = ln s: the integrand changes on the scale of s itself.
  const s0 = 1e-4
  const z0 = Math.log(s0)
  const z1 = Math.log(40 / smallest)
  const steps = 2 * Math.ceil((z1 - z0) * 8)
  const h = (z1 - z0) / steps
  for (let c = 0; c < k; c++) out[c] = 1 - Math.exp(-(a[c] ?? 0) * s0)

  const below = new Float64Array(k)
  const prefix: Float64Array[] = Array.from({ length: k + 1 }, () => new Float64Array(need))
  const suffix: Float64Array[] = Array.from({ length: k + 1 }, () => new Float64Array(need))
  const term = new Float64Array(need)
  for (let step = 0; step <= steps; step++) {
    const sAt = Math.exp(z0 + step * h)
    const simpson = step === 0 || step === steps ? 1 : step % 2 === 1 ? 4 : 2
    for (let c = 0; c < k; c++) below[c] = -Math.expm1(-(a[c] ?? 0) * sAt)
    // Count distribution of "others below s", truncated to need - 1, as prefix and suffix
    // products over the classes, so each class can leave one of its own members out.
    prefix[0]?.fill(0)
    const first = prefix[0]
    if (first !== undefined) first[0] = 1
    suffix[k]?.fill(0)
    const last = suffix[k]
    if (last !== undefined) last[0] = 1
    for (let c = 0; c < k; c++) {
      binomialTerms(sizes[c] ?? 0, below[c] ?? 0, term)
      multiplyTruncated(prefix[c], term, prefix[c + 1])
    }
    for (let c = k - 1; c >= 0; c--) {
      binomialTerms(sizes[c] ?? 0, below[c] ?? 0, term)
      multiplyTruncated(suffix[c + 1], term, suffix[c])
    }
    const rest = new Float64Array(need)
    for (let c = 0; c < k; c++) {
      binomialTerms((sizes[c] ?? 1) - 1, below[c] ?? 0, term)
      multiplyTruncated(prefix[c], suffix[c + 1], rest)
      let fewer = 0
      for (let j = 0; j < need; j++) {
        let v = 0
        for (let i = 0; i <= j; i++) v += (rest[i] ?? 0) * (term[j - i] ?? 0)
        fewer += v
      }
      const ac = a[c] ?? 0
      out[c] = (out[c] ?? 0) + simpson * h / 3 * ac * Math.exp(-ac * sAt) * fewer * sAt
    }
  }
  return out
}

/** P(j of `count` independent events of probability p happen), j < out.length. */
function binomialTerms (count: number, p: number, out: Float64Array): void {
  const q = 1 - p
  let coefficient = 1
  for (let j = 0; j < out.length; j++) {
    if (j > count) { out[j] = 0; continue }
    if (j > 0) coefficient = coefficient * (count - j + 1) / j
    out[j] = coefficient * p ** j * q ** (count - j)
  }
}

function multiplyTruncated (x: Float64Array | undefined, y: Float64Array | undefined, out: Float64Array | undefined): void {
  if (x === undefined || y === undefined || out === undefined) return
  for (let j = 0; j < out.length; j++) {
    let v = 0
    for (let i = 0; i <= j; i++) v += (x[i] ?? 0) * (y[j - i] ?? 0)
    out[j] = v
  }
}
