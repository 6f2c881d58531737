/**
 * Anti-entropy hash trees (Dynamo §4.7, Riak's AAE): one tree per partition, of a fixed shape so
 * that two replicas' trees line up node for node whatever keys they hold.
 *
 * A key falls in one segment (a leaf) by its hash. A segment's hash is the XOR of
 * `leafHash(key, digest)` over its keys, and an inner node's hash is the XOR of its children, so a
 * write changes one path in O(depth) without reading any other key, and a node's hash is the XOR of
 * all leaves under it.
 *
 * @example
 * ```ts
 * const a = new MerkleTree()
 * const b = new MerkleTree()
 * a.update(toBytes('k'), undefined, digestOfObject)
 * const { segments } = diffTrees(a, b)   // [segmentOf(toBytes('k'))]
 * ```
 */
import { bytesEqual } from './bytes.ts'
import { InvalidArgumentError, MalformedDataError } from './errors.ts'
import { keyHash, segmentWord, sha256 } from './hash.ts'

/**
 * 64 segments of fanout 8 (levels 1, 8, 64): with 4096 partitions a million keys is ~250 keys a
 * partition, ~4 a segment, and a node's trees take ~4.8 MB even if it holds every partition.
 */
export const SEGMENTS = 64
export const FANOUT = 8
export const HASH_BYTES = 16

/** Beyond this a tree (16 bytes a segment, ~4096 trees a node) stops being a small thing. */
const MAX_SEGMENTS = 1 << 20

export interface MerkleOptions {
  /** Leaves: a power of `fanout`, and so a power of two. Default SEGMENTS (64). */
  readonly segments?: number
  /** Children per inner node: a power of two >= 2. Default FANOUT (8). */
  readonly fanout?: number
}

function isPowerOfTwo (n: number): boolean {
  return Number.isSafeInteger(n) && n >= 1 && (n & (n - 1)) === 0 && n <= 2 ** 31
}

function log2 (n: number): number {
  return 31 - Math.clz32(n)
}

/**
 * The segment a key falls in: the top log2(segments) bits of the hash's segment word (bytes 8..11,
 * independent of the ring position, so the keys of one partition spread over all segments).
 */
export function segmentOf (key: Uint8Array, segments: number = SEGMENTS): number {
  if (!isPowerOfTwo(segments) || segments > MAX_SEGMENTS) {
    throw new InvalidArgumentError(`segments must be a power of two in 1..${MAX_SEGMENTS}, got ${segments}`)
  }
  const bits = log2(segments)
  // `x >>> 32` is `x >>> 0` in JavaScript, so one segment needs its own case.
  return bits === 0 ? 0 : segmentWord(keyHash(key)) >>> (32 - bits)
}

/**
 * One key's contribution to its segment: the first 16 bytes of
 * sha256(len(key) as 4-byte big-endian || key || digest). The length prefix keeps ("ab", "c") and
 * ("a", "bc") apart.
 */
export function leafHash (key: Uint8Array, digest: Uint8Array): Uint8Array {
  const input = new Uint8Array(4 + key.length + digest.length)
  new DataView(input.buffer).setUint32(0, key.length)
  input.set(key, 4)
  input.set(digest, 4 + key.length)
  return sha256(input).slice(0, HASH_BYTES)
}

function xorInto (target: Uint8Array, offset: number, source: Uint8Array): void {
  for (let i = 0; i < HASH_BYTES; i++) target[offset + i] = (target[offset + i] ?? 0) ^ (source[i] ?? 0)
}

function isZero (bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false
  return true
}

/**
 * A partition's hash tree, held in one buffer with a view per level (16 bytes a node): 1168 bytes
 * for the default 64/8 shape. Every accessor returns a copy, so callers may keep or change what
 * they get without touching the tree.
 */
export class MerkleTree {
  readonly segments: number
  readonly fanout: number
  /** Levels below the root: the segments are at level `depth` (2 for 64/8). */
  readonly depth: number
  private readonly bitsPerLevel: number
  /** levels[0] is the root, levels[depth] the segments; each a view of one shared buffer. */
  private readonly levels: Uint8Array[]

  constructor (options: MerkleOptions = {}) {
    const segments = options.segments ?? SEGMENTS
    const fanout = options.fanout ?? FANOUT
    if (!isPowerOfTwo(fanout) || fanout < 2) {
      throw new InvalidArgumentError(`fanout must be a power of two >= 2, got ${fanout}`)
    }
    if (!isPowerOfTwo(segments) || segments > MAX_SEGMENTS || log2(segments) % log2(fanout) !== 0) {
      throw new InvalidArgumentError(`segments must be a power of the fanout ${fanout}, at most ${MAX_SEGMENTS}, got ${segments}`)
    }
    this.segments = segments
    this.fanout = fanout
    this.bitsPerLevel = log2(fanout)
    this.depth = log2(segments) / this.bitsPerLevel

    let nodes = 0
    for (let level = 0; level <= this.depth; level++) nodes += 1 << (level * this.bitsPerLevel)
    const buffer = new Uint8Array(nodes * HASH_BYTES)
    this.levels = []
    let offset = 0
    for (let level = 0; level <= this.depth; level++) {
      const size = (1 << (level * this.bitsPerLevel)) * HASH_BYTES
      this.levels.push(buffer.subarray(offset, offset + size))
      offset += size
    }
  }

  /**
   * A tree from its segment hashes, e.g. as kept in storage; inner nodes are recomputed.
   * @throws MalformedDataError if the count or a hash's length does not fit the shape
   */
  static fromSegments (hashes: readonly Uint8Array[], options: MerkleOptions = {}): MerkleTree {
    const tree = new MerkleTree(options)
    if (hashes.length !== tree.segments) {
      throw new MalformedDataError(`expected ${tree.segments} segment hashes, got ${hashes.length}`)
    }
    const leaves = tree.level(tree.depth)
    hashes.forEach((hash, i) => {
      if (hash.length !== HASH_BYTES) {
        throw new MalformedDataError(`segment ${i} hash is ${hash.length} bytes, expected ${HASH_BYTES}`)
      }
      leaves.set(hash, i * HASH_BYTES)
    })
    for (let level = tree.depth - 1; level >= 0; level--) {
      const parents = tree.level(level)
      const children = tree.level(level + 1)
      const count = parents.length / HASH_BYTES
      for (let parent = 0; parent < count; parent++) {
        for (let child = parent * tree.fanout; child < (parent + 1) * tree.fanout; child++) {
          xorInto(parents, parent * HASH_BYTES, children.subarray(child * HASH_BYTES, (child + 1) * HASH_BYTES))
        }
      }
    }
    return tree
  }

  /** An independent copy: one buffer copied, so copying a tree costs one allocation, not one per node. */
  clone (): MerkleTree {
    const copy = new MerkleTree({ segments: this.segments, fanout: this.fanout })
    for (let level = 0; level <= this.depth; level++) copy.level(level).set(this.level(level))
    return copy
  }

  /**
   * Replace one key's contribution: XOR out leafHash(key, oldDigest) if given, XOR in
   * leafHash(key, newDigest) if given. An insert has no old digest, a delete no new one. The caller
   * must pass the digest the tree last saw for this key, or the tree drifts from the data (the
   * store keeps both in one batch).
   * @returns the segment touched
   */
  update (key: Uint8Array, oldDigest: Uint8Array | undefined, newDigest: Uint8Array | undefined): number {
    const segment = segmentOf(key, this.segments)
    const delta = new Uint8Array(HASH_BYTES)
    if (oldDigest !== undefined) xorInto(delta, 0, leafHash(key, oldDigest))
    if (newDigest !== undefined) xorInto(delta, 0, leafHash(key, newDigest))
    if (isZero(delta)) return segment
    for (let level = this.depth; level >= 0; level--) {
      const index = segment >>> ((this.depth - level) * this.bitsPerLevel)
      xorInto(this.level(level), index * HASH_BYTES, delta)
    }
    return segment
  }

  /** A copy of segment `index`'s hash (16 zero bytes when empty). */
  segment (index: number): Uint8Array {
    return this.node(this.depth, index)
  }

  /** Copies of all segment hashes, in order: what `fromSegments` takes back. */
  segmentHashes (): Uint8Array[] {
    const hashes: Uint8Array[] = []
    for (let i = 0; i < this.segments; i++) hashes.push(this.segment(i))
    return hashes
  }

  /** A copy of the root hash: the XOR of every segment. */
  root (): Uint8Array {
    return this.node(0, 0)
  }

  /** A copy of a node's hash. Level 0 is the root, level `depth` the segments. */
  node (level: number, index: number): Uint8Array {
    this.checkNode(level, index)
    return this.level(level).slice(index * HASH_BYTES, (index + 1) * HASH_BYTES)
  }

  /** Copies of the `fanout` child hashes of an inner node (level < depth), in order. */
  children (level: number, index: number): Uint8Array[] {
    this.checkNode(level, index)
    if (level >= this.depth) throw new InvalidArgumentError(`level ${level} holds segments: they have no children`)
    const first = index * this.fanout
    const result: Uint8Array[] = []
    for (let child = first; child < first + this.fanout; child++) result.push(this.node(level + 1, child))
    return result
  }

  /** Same shape and the same segment hashes (and so the same inner nodes). */
  equals (other: MerkleTree): boolean {
    if (this.segments !== other.segments || this.fanout !== other.fanout) return false
    return bytesEqual(this.level(this.depth), other.level(other.depth))
  }

  /** Whether two trees line up node for node, so their hashes may be compared. */
  sameShape (other: MerkleTree): boolean {
    return this.segments === other.segments && this.fanout === other.fanout
  }

  /** A view (not a copy) of a level: for this module only. */
  private level (level: number): Uint8Array {
    const view = this.levels[level]
    if (view === undefined) throw new InvalidArgumentError(`level ${level} is outside 0..${this.depth}`)
    return view
  }

  private checkNode (level: number, index: number): void {
    if (!Number.isInteger(level) || level < 0 || level > this.depth) {
      throw new InvalidArgumentError(`level ${level} is outside 0..${this.depth}`)
    }
    const width = 1 << (level * this.bitsPerLevel)
    if (!Number.isInteger(index) || index < 0 || index >= width) {
      throw new InvalidArgumentError(`index ${index} is outside 0..${width - 1} at level ${level}`)
    }
  }
}

/**
 * One step of the exchange: given my children of a node and the other replica's, which child
 * indexes differ. `theirs` usually comes off the wire, hence the error class.
 * @throws MalformedDataError if the lists differ in length or a hash is not HASH_BYTES long
 */
export function differingChildren (mine: readonly Uint8Array[], theirs: readonly Uint8Array[]): number[] {
  if (mine.length !== theirs.length) {
    throw new MalformedDataError(`expected ${mine.length} child hashes, got ${theirs.length}`)
  }
  const differing: number[] = []
  for (let i = 0; i < mine.length; i++) {
    const a = mine[i]
    const b = theirs[i]
    if (a === undefined || b === undefined || a.length !== HASH_BYTES || b.length !== HASH_BYTES) {
      throw new MalformedDataError(`child hash ${i} is not ${HASH_BYTES} bytes`)
    }
    if (!bytesEqual(a, b)) differing.push(i)
  }
  return differing
}

/**
 * Descend from the root into differing nodes only, as two replicas do over the wire.
 * @returns the differing segment indexes (ascending) and how many node hashes were compared
 *   (1 when the trees are equal): the exchange's cost in hashes
 * @throws InvalidArgumentError if the trees differ in shape
 */
export function diffTrees (a: MerkleTree, b: MerkleTree): { segments: number[], compared: number } {
  if (!a.sameShape(b)) throw new InvalidArgumentError('trees of different shapes cannot be compared')
  let compared = 1
  if (bytesEqual(a.root(), b.root())) return { segments: [], compared }
  const segments: number[] = []
  const descend = (level: number, index: number): void => {
    const differing = differingChildren(a.children(level, index), b.children(level, index))
    compared += a.fanout
    for (const child of differing) {
      const childIndex = index * a.fanout + child
      if (level + 1 === a.depth) segments.push(childIndex)
      else descend(level + 1, childIndex)
    }
  }
  if (a.depth === 0) segments.push(0)
  else descend(0, 0)
  return { segments, compared }
}

/**
 * The keys that differ between two replicas' listings of one segment (key id -> object digest):
 * on one side only, or with different digests. Sorted, so both sides walk them in the same order.
 */
export function diffSegmentKeys (mine: ReadonlyMap<string, Uint8Array>, theirs: ReadonlyMap<string, Uint8Array>): string[] {
  const differing: string[] = []
  for (const [id, digest] of mine) {
    const other = theirs.get(id)
    if (other === undefined || !bytesEqual(digest, other)) differing.push(id)
  }
  for (const id of theirs.keys()) if (!mine.has(id)) differing.push(id)
  return differing.sort((x, y) => x < y ? -1 : x > y ? 1 : 0)
}
