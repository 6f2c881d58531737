import type { DvvSet } from '../causality.ts'
import type { LocalReplica } from '../coordinator/coordinator.ts'
import type { MerkleTree } from '../merkle.ts'
import type { KeyDigest, KeyObject } from './messages.ts'

/** A hint: a copy held for `target`, a primary that was down when it was written. */
export interface HeldHint {
  readonly target: string
  readonly key: Uint8Array
  readonly object: DvvSet
}

/**
 * What anti-entropy, handoff and the tombstone reaper need of the local copy: the LevelDB store
 * in a node, a map with trees in the simulator. Every object change keeps its partition's Merkle
 * tree in step (same batch on disk).
 */
export interface SyncReplica extends LocalReplica {
  readonly partitions: number
  partitionOf: (key: Uint8Array) => number
  /** A copy of the partition's tree as of the last committed write. */
  tree: (partition: number) => Promise<MerkleTree>
  /** Rebuild the partition's tree from its objects if it does not match them; true if it had to. */
  verifyTree: (partition: number) => Promise<boolean>
  /** Keys of the partition in these segments, with their objects' digests. */
  segmentKeys: (partition: number, segments: readonly number[]) => Promise<KeyDigest[]>
  /** The partition's objects in key order. */
  scan: (partition: number) => AsyncIterable<KeyObject>
  /** Delete the key's object if its digest is still `digest`; true if deleted. */
  removeIfUnchanged: (key: Uint8Array, digest: Uint8Array) => Promise<boolean>
  /** Partitions holding at least one object, ascending. */
  heldPartitions: () => Promise<number[]>
  /**
   * Partitions with a stored tree, if trees are stored apart from the objects: a tree left with
   * no objects under it must be checked too.
   */
  treePartitions?: () => Promise<number[]>
  /** Hints for one target, or all. */
  hints: (target?: string) => AsyncIterable<HeldHint>
  /** Delete a hint if its digest is still `ifDigest`; true if deleted. */
  deleteHint: (target: string, key: Uint8Array, ifDigest: Uint8Array) => Promise<boolean>
  /** Targets with hints waiting. */
  hintTargets: () => Promise<string[]>
  /** How many hints are held. */
  hintCount: () => Promise<number>
  /** Digests of every hint held for each key (by bytesId), whatever its target. */
  hintDigests: (keys: readonly Uint8Array[]) => Promise<Map<string, Uint8Array[]>>
}
