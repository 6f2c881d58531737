/**
 * The anti-entropy and handoff messages (src/core/sync/messages.ts) as protobuf, written by hand
 * over protons-runtime's reader and writer like codec.ts, for `/shoal/sync/1.0.0` and
 * `/shoal/handoff/1.0.0`:
 * ```
 * message SyncRequest  { uint32 type = 1;                  // 0 roots, 1 children, 2 keys, 3 fetch,
 *                                                          // 4 push, 5 purge-check, 6 purge
 *                        repeated uint32 partitions = 2;   // roots: each < 65536
 *                        bytes summary = 3;                // roots: sha256, 32 bytes, required
 *                        uint32 partition = 4;             // children, keys: < 65536
 *                        uint32 level = 5;                 // children: < 32 (0 is the root)
 *                        repeated uint32 indexes = 6;      // children: node indexes, each < 2^20
 *                        repeated uint32 segments = 7;     // keys: each < 2^20
 *                        repeated bytes keys = 8;          // fetch: 1..1024 bytes each
 *                        repeated KeyObject objects = 9;   // push
 *                        repeated KeyDigest digests = 10; } // purge-check, purge
 * message SyncResponse { uint32 type = 1;                  // 0 roots, 1 children, 2 keys, 3 objects,
 *                                                          // 4 pushed, 5 copies, 6 purged, 7 error
 *                        bool same = 2;                    // roots: the summaries matched, no hashes
 *                        repeated bytes hashes = 3;        // roots, children: 16 bytes each
 *                        repeated KeyDigest digests = 4;   // keys
 *                        repeated KeyObject objects = 5;   // objects
 *                        uint32 count = 6;                 // pushed: changed; purged: deleted
 *                        repeated uint32 states = 7;       // copies: 0 absent, 1 same, 2 different
 *                        string error_name = 8; string error_message = 9;
 *                        string members = 10; }           // copies: the member-table digest
 * message KeyDigest    { bytes key = 1;                    // 1..1024 bytes, required
 *                        bytes digest = 2; }               // objectDigest: 16 bytes, required
 * message KeyObject    { bytes key = 1;                    // 1..1024 bytes, required
 *                        bytes object = 2; }               // encodeObject, required (empty = EMPTY)
 * ```
 * Repeated uint32 fields are written packed; decoders take them packed or not, as proto3 asks.
 * Encoders omit proto3 defaults, except a KeyObject's object, which is always written (an empty
 * object encodes to zero bytes, and "no object" is refused, not read as one).
 *
 * Decoders take untrusted bytes and keep codec.ts's rules: every size and count bounded (a frame
 * by MAX_SYNC_MESSAGE_BYTES, lists by SYNC_LIMITS, hashes and digests by their exact lengths),
 * fields in any order, unknown fields skipped, what they keep copied, objects through
 * decodeObject, and MalformedDataError and nothing else thrown. They do not check a response
 * against its request (one root per partition asked, `fanout` hashes per index): the caller
 * knows the request.
 */
import { reader, writer } from 'protons-runtime'
import type { Reader, Writer } from 'protons-runtime'
import { EMPTY, decodeObject, encodeObject, objectDigest } from '../core/causality.ts'
import { MalformedDataError } from '../core/errors.ts'
import { HASH_BYTES } from '../core/merkle.ts'
import { LENGTH_DELIMITED, VARINT, readBytes, readString, readUint32, readVarint, skipField } from '../core/protobuf.ts'
import { SYNC_LIMITS } from '../core/sync/messages.ts'
import type { CopyState, KeyDigest, KeyObject, SyncRequest, SyncResponse } from '../core/sync/messages.ts'
import { bounded, decoding, truncateUtf8 } from './codec.ts'
import { MAX_KEY_BYTES, MAX_OBJECT_BYTES, MAX_STRING_BYTES, MAX_SYNC_MESSAGE_BYTES } from './constants.ts'

/** Partitions are numbered below this (a ring has at most 65536). */
const PARTITION_LIMIT = 65536
/** Tree levels are numbered below this: far deeper than any tree of at most 2^20 segments. */
const LEVEL_LIMIT = 32
/** Node and segment indexes are numbered below this (merkle.ts allows at most 2^20 segments). */
const INDEX_LIMIT = 1 << 20
/** A roots summary is a sha256. */
const SUMMARY_BYTES = 32
/** objectDigest's length, taken from it so the two cannot drift apart. */
export const DIGEST_BYTES = objectDigest(EMPTY).length
/**
 * Hashes in one roots or children response: one per partition of the largest ring, which also
 * covers a children answer of SYNC_LIMITS.maxIndexes nodes of fanout up to 16.
 */
const MAX_HASHES = SYNC_LIMITS.maxPartitions

const REQUEST_TYPES = ['roots', 'children', 'keys', 'fetch', 'push', 'purge-check', 'purge'] as const
const RESPONSE_TYPES = ['roots', 'children', 'keys', 'objects', 'pushed', 'copies', 'purged', 'error'] as const
const COPY_STATES: readonly CopyState[] = ['absent', 'same', 'different']

// Tags as field << 3 | wire type. Repeated uint32 fields have a packed tag (what we write) and an
// unpacked one (what an older or other encoder may write).

const REQ_TYPE = 1 << 3 | VARINT
const REQ_PARTITIONS = 2 << 3 | LENGTH_DELIMITED
const REQ_PARTITIONS_UNPACKED = 2 << 3 | VARINT
const REQ_SUMMARY = 3 << 3 | LENGTH_DELIMITED
const REQ_PARTITION = 4 << 3 | VARINT
const REQ_LEVEL = 5 << 3 | VARINT
const REQ_INDEXES = 6 << 3 | LENGTH_DELIMITED
const REQ_INDEXES_UNPACKED = 6 << 3 | VARINT
const REQ_SEGMENTS = 7 << 3 | LENGTH_DELIMITED
const REQ_SEGMENTS_UNPACKED = 7 << 3 | VARINT
const REQ_KEY = 8 << 3 | LENGTH_DELIMITED
const REQ_OBJECT = 9 << 3 | LENGTH_DELIMITED
const REQ_DIGEST = 10 << 3 | LENGTH_DELIMITED

const RES_TYPE = 1 << 3 | VARINT
const RES_SAME = 2 << 3 | VARINT
const RES_HASH = 3 << 3 | LENGTH_DELIMITED
const RES_DIGEST = 4 << 3 | LENGTH_DELIMITED
const RES_OBJECT = 5 << 3 | LENGTH_DELIMITED
const RES_COUNT = 6 << 3 | VARINT
const RES_STATES = 7 << 3 | LENGTH_DELIMITED
const RES_STATES_UNPACKED = 7 << 3 | VARINT
const RES_ERROR_NAME = 8 << 3 | LENGTH_DELIMITED
const RES_ERROR_MESSAGE = 9 << 3 | LENGTH_DELIMITED
const RES_MEMBERS = 10 << 3 | LENGTH_DELIMITED
/** A member-table digest is 32 hex chars; room for a longer one later. */
const MAX_DIGEST_CHARS = 128

const ENTRY_KEY = 1 << 3 | LENGTH_DELIMITED
const ENTRY_VALUE = 2 << 3 | LENGTH_DELIMITED

// ---------------------------------------------------------------------------------------------
// Requests

/** Protobuf bytes of a request on `/shoal/sync/1.0.0` or `/shoal/handoff/1.0.0`. */
export function encodeSyncRequest (request: SyncRequest): Uint8Array {
  const w = writer()
  const type = REQUEST_TYPES.indexOf(request.type)
  if (type !== 0) w.uint32(REQ_TYPE).uint32(type)
  switch (request.type) {
    case 'roots':
      writePacked(w, REQ_PARTITIONS, request.partitions)
      w.uint32(REQ_SUMMARY).bytes(request.summary)
      break
    case 'children':
      if (request.partition !== 0) w.uint32(REQ_PARTITION).uint32(request.partition)
      if (request.level !== 0) w.uint32(REQ_LEVEL).uint32(request.level)
      writePacked(w, REQ_INDEXES, request.indexes)
      break
    case 'keys':
      if (request.partition !== 0) w.uint32(REQ_PARTITION).uint32(request.partition)
      writePacked(w, REQ_SEGMENTS, request.segments)
      break
    case 'fetch':
      for (const key of request.keys) w.uint32(REQ_KEY).bytes(key)
      break
    case 'push':
      for (const entry of request.entries) writeKeyObject(w, REQ_OBJECT, entry)
      break
    case 'purge-check':
    case 'purge':
      for (const entry of request.entries) writeKeyDigest(w, REQ_DIGEST, entry)
      break
  }
  return w.finish()
}

/**
 * A sync request from untrusted bytes.
 * @throws MalformedDataError on anything malformed or out of bounds: an unknown type, a summary
 *   that is not 32 bytes, a partition >= 65536, a level >= 32, an index or segment >= 2^20, more
 *   partitions, indexes, segments or entries than SYNC_LIMITS allows, an empty key or one over
 *   1024 bytes, a digest that is not DIGEST_BYTES long, a bad object, a frame over
 *   MAX_SYNC_MESSAGE_BYTES
 */
export function decodeSyncRequest (bytes: Uint8Array): SyncRequest {
  return decoding('sync request', () => {
    const r = reader(bounded(bytes, MAX_SYNC_MESSAGE_BYTES))
    let type = 0
    const partitions: number[] = []
    let summary: Uint8Array | undefined
    let partition = 0
    let level = 0
    const indexes: number[] = []
    const segments: number[] = []
    const keys: Uint8Array[] = []
    const objects: KeyObject[] = []
    const digests: KeyDigest[] = []
    while (r.pos < r.len) {
      const tag = readVarint(r)
      switch (tag) {
        case REQ_TYPE: type = readUint32(r); break
        case REQ_PARTITIONS:
        case REQ_PARTITIONS_UNPACKED:
          readUint32s(r, tag, partitions, SYNC_LIMITS.maxPartitions, PARTITION_LIMIT, 'partitions')
          break
        case REQ_SUMMARY: summary = readExactly(r, SUMMARY_BYTES, 'summary'); break
        case REQ_PARTITION: partition = readBelow(r, PARTITION_LIMIT, 'partition'); break
        case REQ_LEVEL: level = readBelow(r, LEVEL_LIMIT, 'level'); break
        case REQ_INDEXES:
        case REQ_INDEXES_UNPACKED:
          readUint32s(r, tag, indexes, SYNC_LIMITS.maxIndexes, INDEX_LIMIT, 'indexes')
          break
        case REQ_SEGMENTS:
        case REQ_SEGMENTS_UNPACKED:
          // A segment is a node index at the tree's lowest level: the same bounds.
          readUint32s(r, tag, segments, SYNC_LIMITS.maxIndexes, INDEX_LIMIT, 'segments')
          break
        case REQ_KEY:
          checkCount(keys.length, SYNC_LIMITS.maxEntries, 'keys')
          keys.push(readKey(r))
          break
        case REQ_OBJECT:
          checkCount(objects.length, SYNC_LIMITS.maxEntries, 'entries')
          objects.push(decodeKeyObject(readBytes(r, MAX_SYNC_MESSAGE_BYTES, 'entry')))
          break
        case REQ_DIGEST:
          checkCount(digests.length, SYNC_LIMITS.maxEntries, 'entries')
          digests.push(decodeKeyDigest(readBytes(r, MAX_SYNC_MESSAGE_BYTES, 'entry')))
          break
        default: skipField(r, tag)
      }
    }
    const kind = REQUEST_TYPES[type]
    switch (kind) {
      case 'roots':
        if (summary === undefined) throw new MalformedDataError('a roots request without its summary')
        return { type: 'roots', partitions, summary }
      case 'children':
        return { type: 'children', partition, level, indexes }
      case 'keys':
        return { type: 'keys', partition, segments }
      case 'fetch':
        return { type: 'fetch', keys }
      case 'push':
        return { type: 'push', entries: objects }
      case 'purge-check':
      case 'purge':
        return { type: kind, entries: digests }
      default:
        throw new MalformedDataError(`unknown sync request type ${type}`)
    }
  })
}

// ---------------------------------------------------------------------------------------------
// Responses

/**
 * Protobuf bytes of a response on `/shoal/sync/1.0.0` or `/shoal/handoff/1.0.0`. An error's name
 * and message are cut to MAX_STRING_BYTES of UTF-8, so every error response can be decoded.
 */
export function encodeSyncResponse (response: SyncResponse): Uint8Array {
  const w = writer()
  const type = RESPONSE_TYPES.indexOf(response.type)
  if (type !== 0) w.uint32(RES_TYPE).uint32(type)
  switch (response.type) {
    case 'roots':
      if (response.same) w.uint32(RES_SAME).bool(true)
      for (const hash of response.roots) w.uint32(RES_HASH).bytes(hash)
      break
    case 'children':
      for (const hash of response.hashes) w.uint32(RES_HASH).bytes(hash)
      break
    case 'keys':
      for (const entry of response.entries) writeKeyDigest(w, RES_DIGEST, entry)
      break
    case 'objects':
      for (const entry of response.entries) writeKeyObject(w, RES_OBJECT, entry)
      break
    case 'pushed':
      if (response.changed !== 0) w.uint32(RES_COUNT).uint32(response.changed)
      break
    case 'copies':
      writePacked(w, RES_STATES, response.states.map(state => COPY_STATES.indexOf(state)))
      if (response.members !== undefined) w.uint32(RES_MEMBERS).string(response.members)
      break
    case 'purged':
      if (response.count !== 0) w.uint32(RES_COUNT).uint32(response.count)
      break
    case 'error':
      w.uint32(RES_ERROR_NAME).string(truncateUtf8(response.name, MAX_STRING_BYTES))
      if (response.message !== '') w.uint32(RES_ERROR_MESSAGE).string(truncateUtf8(response.message, MAX_STRING_BYTES))
      break
  }
  return w.finish()
}

/**
 * A sync response from untrusted bytes.
 * @throws MalformedDataError on anything malformed or out of bounds: an unknown type or copy
 *   state, a hash that is not 16 bytes, more than 65536 hashes, `same` with roots, more entries
 *   or states than SYNC_LIMITS.maxEntries, a count above it, an empty key or one over 1024
 *   bytes, a digest that is not DIGEST_BYTES long, a bad object, an error without a name, a name
 *   or message over 4 KiB, a frame over MAX_SYNC_MESSAGE_BYTES
 */
export function decodeSyncResponse (bytes: Uint8Array): SyncResponse {
  return decoding('sync response', () => {
    const r = reader(bounded(bytes, MAX_SYNC_MESSAGE_BYTES))
    let type = 0
    let same = false
    const hashes: Uint8Array[] = []
    const digests: KeyDigest[] = []
    const objects: KeyObject[] = []
    let count = 0
    const states: number[] = []
    let name = ''
    let message = ''
    let members: string | undefined
    while (r.pos < r.len) {
      const tag = readVarint(r)
      switch (tag) {
        case RES_TYPE: type = readUint32(r); break
        case RES_SAME: same = readVarint(r) !== 0; break
        case RES_HASH:
          checkCount(hashes.length, MAX_HASHES, 'hashes')
          hashes.push(readExactly(r, HASH_BYTES, 'hash'))
          break
        case RES_DIGEST:
          checkCount(digests.length, SYNC_LIMITS.maxEntries, 'entries')
          digests.push(decodeKeyDigest(readBytes(r, MAX_SYNC_MESSAGE_BYTES, 'entry')))
          break
        case RES_OBJECT:
          checkCount(objects.length, SYNC_LIMITS.maxEntries, 'entries')
          objects.push(decodeKeyObject(readBytes(r, MAX_SYNC_MESSAGE_BYTES, 'entry')))
          break
        case RES_COUNT: count = readBelow(r, SYNC_LIMITS.maxEntries + 1, 'count'); break
        case RES_STATES:
        case RES_STATES_UNPACKED:
          readUint32s(r, tag, states, SYNC_LIMITS.maxEntries, COPY_STATES.length, 'copy states')
          break
        case RES_ERROR_NAME: name = readString(r, MAX_STRING_BYTES, 'error_name'); break
        case RES_ERROR_MESSAGE: message = readString(r, MAX_STRING_BYTES, 'error_message'); break
        case RES_MEMBERS: members = readString(r, MAX_DIGEST_CHARS, 'members'); break
        default: skipField(r, tag)
      }
    }
    const kind = RESPONSE_TYPES[type]
    switch (kind) {
      case 'roots':
        if (same && hashes.length > 0) throw new MalformedDataError('a roots response both same and with roots')
        return { type: 'roots', same, roots: hashes }
      case 'children':
        return { type: 'children', hashes }
      case 'keys':
        return { type: 'keys', entries: digests }
      case 'objects':
        return { type: 'objects', entries: objects }
      case 'pushed':
        return { type: 'pushed', changed: count }
      case 'copies':
        return { type: 'copies', states: states.map(state => COPY_STATES[state] as CopyState), ...(members === undefined ? {} : { members }) }
      case 'purged':
        return { type: 'purged', count }
      case 'error':
        if (name === '') throw new MalformedDataError('an error response without a name')
        return { type: 'error', name, message }
      default:
        throw new MalformedDataError(`unknown sync response type ${type}`)
    }
  })
}

// ---------------------------------------------------------------------------------------------
// Entries and repeated fields

function writeKeyDigest (w: Writer, tag: number, entry: KeyDigest): void {
  w.uint32(tag).fork()
  w.uint32(ENTRY_KEY).bytes(entry.key)
  w.uint32(ENTRY_VALUE).bytes(entry.digest)
  w.ldelim()
}

function writeKeyObject (w: Writer, tag: number, entry: KeyObject): void {
  w.uint32(tag).fork()
  w.uint32(ENTRY_KEY).bytes(entry.key)
  w.uint32(ENTRY_VALUE).bytes(encodeObject(entry.object))
  w.ldelim()
}

function decodeKeyDigest (bytes: Uint8Array): KeyDigest {
  const r = reader(bytes)
  let key: Uint8Array | undefined
  let digest: Uint8Array | undefined
  while (r.pos < r.len) {
    const tag = readVarint(r)
    if (tag === ENTRY_KEY) key = readKey(r)
    else if (tag === ENTRY_VALUE) digest = readExactly(r, DIGEST_BYTES, 'digest')
    else skipField(r, tag)
  }
  if (key === undefined) throw new MalformedDataError('an entry without its key')
  if (digest === undefined) throw new MalformedDataError('an entry without its digest')
  return { key, digest }
}

function decodeKeyObject (bytes: Uint8Array): KeyObject {
  const r = reader(bytes)
  let key: Uint8Array | undefined
  let object: Uint8Array | undefined
  while (r.pos < r.len) {
    const tag = readVarint(r)
    if (tag === ENTRY_KEY) key = readKey(r)
    else if (tag === ENTRY_VALUE) object = readBytes(r, MAX_OBJECT_BYTES, 'object')
    else skipField(r, tag)
  }
  if (key === undefined) throw new MalformedDataError('an entry without its key')
  if (object === undefined) throw new MalformedDataError('an entry without its object')
  return { key, object: decodeObject(object) }
}

/** A key, copied: the store holds no empty key, so none travels either. */
function readKey (r: Reader): Uint8Array {
  const key = readBytes(r, MAX_KEY_BYTES, 'key')
  if (key.length === 0) throw new MalformedDataError('an empty key')
  return key.slice()
}

/** A hash or digest of exactly `length` bytes, copied. */
function readExactly (r: Reader, length: number, what: string): Uint8Array {
  const bytes = readBytes(r, length, what)
  if (bytes.length !== length) throw new MalformedDataError(`a ${what} of ${bytes.length} bytes, expected ${length}`)
  return bytes.slice()
}

function readBelow (r: Reader, limit: number, what: string): number {
  const value = readUint32(r)
  if (value >= limit) throw new MalformedDataError(`${what} ${value} is not below ${limit}`)
  return value
}

/** Before adding one more to a list of `count`: a peer's list may not grow past `max`. */
function checkCount (count: number, max: number, what: string): void {
  if (count >= max) throw new MalformedDataError(`more than ${max} ${what}`)
}

/**
 * Appends one value of a repeated uint32 field (unpacked tag) or a packed run of them, each
 * below `limit`, to `into`, which may not grow past `max`.
 */
function readUint32s (r: Reader, tag: number, into: number[], max: number, limit: number, what: string): void {
  if (tag % 8 === VARINT) {
    checkCount(into.length, max, what)
    into.push(readBelow(r, limit, what))
    return
  }
  const run = reader(readBytes(r, MAX_SYNC_MESSAGE_BYTES, what))
  while (run.pos < run.len) {
    checkCount(into.length, max, what)
    into.push(readBelow(run, limit, what))
  }
}

function writePacked (w: Writer, tag: number, values: readonly number[]): void {
  if (values.length === 0) return
  w.uint32(tag).fork()
  for (const value of values) w.uint32(value)
  w.ldelim()
}
