/**
 * Protocol ids, deadlines, stream limits and message bounds of Shoal's request/response protocols
 * (one request per stream, length-prefixed protobuf, see rpc.ts and codec.ts).
 */
import { SYNC_LIMITS } from '../core/sync/messages.ts'

export const KV_PROTOCOL = '/shoal/kv/1.0.0'
export const MEMBERS_PROTOCOL = '/shoal/members/1.0.0'
export const ADMIN_PROTOCOL = '/shoal/admin/1.0.0'

/**
 * Key-value streams open at once per connection and direction. One stream per request: libp2p's
 * defaults (32 in, 64 out) would reject a busy coordinator's requests, not queue them.
 */
export const KV_MAX_INBOUND_STREAMS = 256
export const KV_MAX_OUTBOUND_STREAMS = 256
/**
 * Key-value requests served at once by a node, over all peers and connections (per connection,
 * KV_MAX_INBOUND_STREAMS): 1,000 clients' requests at once fit; beyond, OverloadedError.
 */
export const KV_MAX_REQUESTS = 1_024
/** Key-value requests served at once for one peer, over all its connections. */
export const KV_MAX_REQUESTS_PER_PEER = KV_MAX_INBOUND_STREAMS
/**
 * Bytes of kv request frames and replies a node holds at once. A reader that never reads pins its
 * reply until the stream's deadline: this, not the request count, is what bounds memory (256
 * requests for a 1 MiB value would otherwise hold 256 MiB per connection).
 */
export const KV_MAX_BYTES = 128 * 1024 * 1024
/** A quarter of KV_MAX_BYTES: a few greedy peers cannot take the whole budget from the others. */
export const KV_MAX_BYTES_PER_PEER = 32 * 1024 * 1024
/**
 * Kv requests of one peer handled at once (the rest wait within their deadline): a reply's size
 * is known only once it is read and encoded, so this bounds what replies not yet counted weigh.
 */
export const KV_MAX_HANDLING_PER_PEER = 32
/** A member pulls another's table only on a digest mismatch, one pull at a time. */
export const MEMBERS_MAX_INBOUND_STREAMS = 32
export const MEMBERS_MAX_OUTBOUND_STREAMS = 64
/** Operators' commands: a handful at once is plenty. */
export const ADMIN_MAX_INBOUND_STREAMS = 8
export const ADMIN_MAX_OUTBOUND_STREAMS = 8

/** How long a server gives one stream, from its first byte to its reply. */
export const KV_TIMEOUT_MS = 5_000
export const MEMBERS_TIMEOUT_MS = 5_000
/** A leave may wait for its record to spread: longer than a data request. */
export const ADMIN_TIMEOUT_MS = 60_000

/** Longest key in bytes (the coordinator's default limit too). */
export const MAX_KEY_BYTES = 1024
/** Longest value in a put, and longest sibling value in an object (as decodeObject's default). */
export const MAX_VALUE_BYTES = 16 * 1024 * 1024
/** Longest encoded object: one full-size value plus room for the vv and other siblings' dots. */
export const MAX_OBJECT_BYTES = MAX_VALUE_BYTES + 1024 * 1024
/** Longest context string in a put (decodeContext bounds it again, by its own rules). */
export const MAX_CONTEXT_CHARS = 4 * 1024 * 1024
/** Longest string field that is not a context or JSON: names, messages, ids, addresses. */
export const MAX_STRING_BYTES = 4096
/** Most member records in one MemberList. */
export const MAX_RECORDS = 10_000
/** Longest admin answer: a status document of a few hundred members. */
export const MAX_ADMIN_JSON_BYTES = 4 * 1024 * 1024
/** Longest heartbeat: one record of at most 32 addresses, a digest, and slack for new fields. */
export const MAX_HEARTBEAT_BYTES = 64 * 1024

/** Largest kv frame either way: an object (or a put's value and context) plus the other fields. */
export const MAX_KV_MESSAGE_BYTES = MAX_OBJECT_BYTES + 64 * 1024
/** Largest member-table frame. */
export const MAX_MEMBERS_MESSAGE_BYTES = 16 * 1024 * 1024
/** Largest admin frame. */
export const MAX_ADMIN_MESSAGE_BYTES = MAX_ADMIN_JSON_BYTES + 64 * 1024

// Anti-entropy and handoff (sync.ts, sync-codec.ts): the same messages on two protocols, so a
// burst of handoff pushes never takes the stream slots a Merkle exchange needs, and back.

export const SYNC_PROTOCOL = '/shoal/sync/1.0.0'
export const HANDOFF_PROTOCOL = '/shoal/handoff/1.0.0'

/** A member runs a few exchanges at a time with each peer: libp2p's default inbound 32 is plenty. */
export const SYNC_MAX_INBOUND_STREAMS = 32
export const SYNC_MAX_OUTBOUND_STREAMS = 32
export const HANDOFF_MAX_INBOUND_STREAMS = 32
export const HANDOFF_MAX_OUTBOUND_STREAMS = 32

/**
 * Sync and handoff requests served at once, and bytes held, over both protocols: a member runs one
 * exchange at a time, so a few per peer is all that is legitimate; a frame may be ~22 MiB, so
 * without a budget 32 streams of one connection could hold 700 MiB.
 */
export const SYNC_MAX_REQUESTS = 128
export const SYNC_MAX_REQUESTS_PER_PEER = SYNC_MAX_INBOUND_STREAMS + HANDOFF_MAX_INBOUND_STREAMS
export const SYNC_MAX_BYTES = 256 * 1024 * 1024
export const SYNC_MAX_BYTES_PER_PEER = 96 * 1024 * 1024
export const SYNC_MAX_HANDLING_PER_PEER = 8

/** Long enough to receive, merge and write a push of a full 4 MiB batch on a busy disk. */
export const SYNC_TIMEOUT_MS = 30_000
export const HANDOFF_TIMEOUT_MS = 30_000

/**
 * Largest sync or handoff frame either way: a batch of objects stops growing past
 * SYNC_LIMITS.batchBytes, so the one object that crossed it may add up to MAX_OBJECT_BYTES; the
 * slack covers keys and field overhead.
 */
export const MAX_SYNC_MESSAGE_BYTES = SYNC_LIMITS.batchBytes + MAX_OBJECT_BYTES + 1024 * 1024
