import type { DvvSet } from '../causality.ts'

/**
 * The anti-entropy and handoff protocol between members, as plain data. The network layer encodes
 * these as protobuf (`/shoal/sync/1.0.0` for Merkle exchanges and tombstone purges,
 * `/shoal/handoff/1.0.0` for hinted and ownership handoff, same messages); the simulator passes
 * them as they are.
 */

/** A key and the objectDigest of the copy a replica holds. */
export interface KeyDigest {
  readonly key: Uint8Array
  readonly digest: Uint8Array
}

/** A key and a replica's copy of it. */
export interface KeyObject {
  readonly key: Uint8Array
  readonly object: DvvSet
}

/** What a member holds of a key, asked before a tombstone is purged. */
export type CopyState = 'absent' | 'same' | 'different'

export type SyncRequest =
  /**
   * The Merkle roots of these partitions. `summary` is sha256 over the sender's roots of the same
   * partitions in the same order: when the receiver's summary matches it answers `same` and no roots.
   */
  | { readonly type: 'roots', readonly partitions: readonly number[], readonly summary: Uint8Array }
  /** The child hashes of these inner nodes of one partition's tree (level 0 is the root). */
  | { readonly type: 'children', readonly partition: number, readonly level: number, readonly indexes: readonly number[] }
  /** Every key the receiver holds in these segments of one partition, with digests. */
  | { readonly type: 'keys', readonly partition: number, readonly segments: readonly number[] }
  /** The receiver's copies of these keys. */
  | { readonly type: 'fetch', readonly keys: readonly Uint8Array[] }
  /** Merge these objects into the receiver's copies (anti-entropy repair, ownership handoff). */
  | { readonly type: 'push', readonly entries: readonly KeyObject[] }
  /** For each key: does the receiver hold a copy (object or hint) other than one with this digest? */
  | { readonly type: 'purge-check', readonly entries: readonly KeyDigest[] }
  /** Delete these keys' objects where they still have exactly this digest (a purged tombstone). */
  | { readonly type: 'purge', readonly entries: readonly KeyDigest[] }

export type SyncResponse =
  /** `same`: the summaries matched and `roots` is empty; else one root per requested partition. */
  | { readonly type: 'roots', readonly same: boolean, readonly roots: readonly Uint8Array[] }
  /** `fanout` hashes per requested index, in request order. */
  | { readonly type: 'children', readonly hashes: readonly Uint8Array[] }
  | { readonly type: 'keys', readonly entries: readonly KeyDigest[] }
  /**
   * The keys the receiver holds, in request order. It stops adding objects past
   * SYNC_LIMITS.batchBytes (always sending at least one), so keys after the last one sent may
   * have been cut: the asker asks for those again.
   */
  | { readonly type: 'objects', readonly entries: readonly KeyObject[] }
  /** How many pushed objects changed the receiver's copy. */
  | { readonly type: 'pushed', readonly changed: number }
  /**
   * One state per entry, in request order; `members` is the answerer's member-table digest, so the
   * asker purges only while every member it asked sees the same members it does.
   */
  | { readonly type: 'copies', readonly states: readonly CopyState[], readonly members?: string }
  /** How many objects were deleted. */
  | { readonly type: 'purged', readonly count: number }
  /** A typed failure: `name` is the error class's name. */
  | { readonly type: 'error', readonly name: string, readonly message: string }

/** Which protocol a request travels on: their stream limits and deadlines are separate. */
export type SyncChannel = 'sync' | 'handoff'

/**
 * Sends one sync request and waits for its response; rejects as the kv Transport does
 * (UnreachableError: not delivered; TimeoutError: maybe delivered).
 */
export type SyncTransport = (to: string, request: SyncRequest, timeoutMs: number, channel: SyncChannel) => Promise<SyncResponse>

/** Bounds both sides keep to (the codec enforces them on the wire). */
export const SYNC_LIMITS = {
  /** Partitions in one roots request (every partition of a 65536-partition ring). */
  maxPartitions: 65536,
  /** Node indexes in one children request. */
  maxIndexes: 4096,
  /** Keys or entries in one keys, fetch, push, purge-check or purge message. */
  maxEntries: 100_000,
  /** A push or objects message's objects stop being added past this many bytes (encoded). */
  batchBytes: 4 * 1024 * 1024,
  /** Keys asked for in one fetch, purge-check or purge: 4 MiB of keys at most. */
  keysPerRequest: 4096
} as const
