import type { DvvSet, VersionVector } from '../causality.ts'

/**
 * The key-value protocol between members, as plain data. The network layer encodes these as
 * protobuf (`/shoal/kv/1.0.0`); the simulator passes them as they are.
 */
export type KvRequest =
  /** Replica read: this member's stored copy. */
  | { readonly type: 'read', readonly key: Uint8Array }
  /** Replica write: merge this object into the stored copy (replication, read repair, hinted copies). */
  | { readonly type: 'write', readonly key: Uint8Array, readonly object: DvvSet, readonly hintFor?: string }
  /**
   * Coordinate a put or delete (value null) here. From a client, a member outside the preflist
   * forwards it; `forwarded` marks one a member already forwarded, which only an owner may take.
   */
  | { readonly type: 'put', readonly key: Uint8Array, readonly value: Uint8Array | null, readonly context: VersionVector, readonly w?: number, readonly forwarded?: boolean }
  /** Coordinate a quorum read here: sent by a client. */
  | { readonly type: 'get', readonly key: Uint8Array, readonly r?: number }

export type KvResponse =
  | { readonly type: 'read', readonly object?: DvvSet }
  | { readonly type: 'written' }
  | { readonly type: 'put', readonly object: DvvSet }
  | { readonly type: 'get', readonly object?: DvvSet }
  /** A typed failure: `name` is the error class's name (QuorumError, InvalidArgumentError, ...). */
  | { readonly type: 'error', readonly name: string, readonly message: string }

/**
 * Sends one request and waits for its response. Rejects with an error named UnreachableError
 * when the member cannot be reached (nothing was delivered), TimeoutError when the deadline
 * passed (it may or may not have been delivered).
 */
export type Transport = (to: string, request: KvRequest, timeoutMs: number) => Promise<KvResponse>
