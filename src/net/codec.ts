/**
 * Shoal's wire messages as protobuf, written by hand over protons-runtime's reader and writer
 * (generated protons code uses TypeScript namespaces, which Node's type stripping cannot run):
 * ```
 * message KvRequest  { uint32 type = 1;                  // 0 read, 1 write, 2 put, 3 get
 *                      bytes key = 2;
 *                      bytes object = 3;                 // encodeObject, for write
 *                      string hint_for = 4;              // write: the owner a hinted copy is for
 *                      bytes value = 5; bool tombstone = 6;  // put: a value or a tombstone
 *                      string context = 7;               // encodeContext, for put; absent = empty
 *                      uint32 quorum = 8;                // w for put, r for get; 0 = default
 *                      bool forwarded = 9; }             // put: a member forwarded it; only an owner may take it
 * message KvResponse { uint32 type = 1;                  // 0 read, 1 written, 2 put, 3 get, 4 error
 *                      bytes object = 2;                 // absent = no object
 *                      string error_name = 3; string error_message = 4; }
 * message MemberRecord { string id = 1; uint64 incarnation = 2; uint64 seq = 3;
 *                        uint32 status = 4;              // 0 joining, 1 up, 2 leaving, 3 left
 *                        repeated string addrs = 5; double weight = 6;
 *                        string signer = 7;              // who signed: the member, or its remover
 *                        bytes signature = 8; }          // signer's signature of recordPayload()
 * message Heartbeat  { MemberRecord record = 1; string digest = 2; }
 * message MembersRequest { }                             // a pull: the whole table, please
 * message MemberList { repeated MemberRecord records = 1; }
 * message AdminRequest  { uint32 op = 1;                 // 0 status, 1 leave, 2 remove
 *                         string member = 2; }            // remove: the member's peer id
 * message AdminResponse { string json = 1; string error_name = 2; string error_message = 3; }
 * ```
 * Encoders omit proto3 defaults, except an object, which is written whenever there is one (an
 * empty object encodes to zero bytes, and "no object" must stay distinguishable from it).
 *
 * Decoders take untrusted bytes. They bound every size and count (constants.ts), accept fields in
 * any order (the last of a repeated scalar wins), skip unknown fields, copy what they keep (a
 * result never pins the frame it came from), validate member records with validateRecord and
 * objects with decodeObject, and throw MalformedDataError and nothing else: a bad context in a
 * put is a MalformedDataError too, wrapping decodeContext's InvalidContextError as its cause.
 */
import { reader, writer } from 'protons-runtime'
import type { Reader, Writer } from 'protons-runtime'
import { decodeContext, decodeObject, encodeContext, encodeObject } from '../core/causality.ts'
import type { DvvSet } from '../core/causality.ts'
import type { KvRequest, KvResponse } from '../core/coordinator/messages.ts'
import { MalformedDataError } from '../core/errors.ts'
import { FIXED64, LENGTH_DELIMITED, VARINT, plainBytes, readBytes, readDouble, readString, readUint32, readVarint, skipField } from '../core/protobuf.ts'
import type { Heartbeat } from '../core/membership-agent.ts'
import { MAX_ADDRS, MAX_ID_LENGTH, MAX_SIGNATURE_BYTES, validateRecord } from '../core/membership.ts'
import type { MemberRecord, MemberStatus } from '../core/membership.ts'
import {
  MAX_ADMIN_JSON_BYTES, MAX_ADMIN_MESSAGE_BYTES, MAX_CONTEXT_CHARS, MAX_HEARTBEAT_BYTES, MAX_KEY_BYTES,
  MAX_KV_MESSAGE_BYTES, MAX_MEMBERS_MESSAGE_BYTES, MAX_OBJECT_BYTES, MAX_RECORDS, MAX_STRING_BYTES,
  MAX_VALUE_BYTES
} from './constants.ts'

/** An operator's command to one node. */
export type AdminOp = 'status' | 'leave' | 'remove'

export interface AdminRequest {
  readonly op: AdminOp
  /** For remove: the member to take out of the ring. */
  readonly member?: string
}

export type AdminResponse =
  /** The command's result, as JSON text. */
  | { readonly type: 'ok', readonly json: string }
  /** A typed failure: `name` is the error class's name. */
  | { readonly type: 'error', readonly name: string, readonly message: string }

/** A pull of another member's whole table: no fields (yet). */
export type MembersRequest = Readonly<Record<string, never>>

/** Longest heartbeat digest (the membership agent refuses longer ones too). */
const MAX_DIGEST_BYTES = 128

const KV_REQUEST_TYPES = ['read', 'write', 'put', 'get'] as const
const KV_RESPONSE_TYPES = ['read', 'written', 'put', 'get', 'error'] as const
const STATUSES: readonly MemberStatus[] = ['joining', 'up', 'leaving', 'left']
const ADMIN_OPS: readonly AdminOp[] = ['status', 'leave', 'remove']

// Wire types, and tags as field << 3 | wire type.

const REQ_TYPE = 1 << 3 | VARINT
const REQ_KEY = 2 << 3 | LENGTH_DELIMITED
const REQ_OBJECT = 3 << 3 | LENGTH_DELIMITED
const REQ_HINT_FOR = 4 << 3 | LENGTH_DELIMITED
const REQ_VALUE = 5 << 3 | LENGTH_DELIMITED
const REQ_TOMBSTONE = 6 << 3 | VARINT
const REQ_CONTEXT = 7 << 3 | LENGTH_DELIMITED
const REQ_QUORUM = 8 << 3 | VARINT
const REQ_FORWARDED = 9 << 3 | VARINT

const RES_TYPE = 1 << 3 | VARINT
const RES_OBJECT = 2 << 3 | LENGTH_DELIMITED
const RES_ERROR_NAME = 3 << 3 | LENGTH_DELIMITED
const RES_ERROR_MESSAGE = 4 << 3 | LENGTH_DELIMITED

const REC_ID = 1 << 3 | LENGTH_DELIMITED
const REC_INCARNATION = 2 << 3 | VARINT
const REC_SEQ = 3 << 3 | VARINT
const REC_STATUS = 4 << 3 | VARINT
const REC_ADDR = 5 << 3 | LENGTH_DELIMITED
const REC_WEIGHT = 6 << 3 | FIXED64
const REC_SIGNER = 7 << 3 | LENGTH_DELIMITED
const REC_SIGNATURE = 8 << 3 | LENGTH_DELIMITED

const HB_RECORD = 1 << 3 | LENGTH_DELIMITED
const HB_DIGEST = 2 << 3 | LENGTH_DELIMITED

const LIST_RECORD = 1 << 3 | LENGTH_DELIMITED

const ADMIN_OP = 1 << 3 | VARINT
const ADMIN_MEMBER = 2 << 3 | LENGTH_DELIMITED
const ADMIN_JSON = 1 << 3 | LENGTH_DELIMITED
const ADMIN_ERROR_NAME = 2 << 3 | LENGTH_DELIMITED
const ADMIN_ERROR_MESSAGE = 3 << 3 | LENGTH_DELIMITED

const NO_BYTES = new Uint8Array(0)

const utf8Encoder = new TextEncoder()

// ---------------------------------------------------------------------------------------------
// Key-value requests and responses

/** Protobuf bytes of a request on `/shoal/kv/1.0.0`. */
export function encodeKvRequest (request: KvRequest): Uint8Array {
  const w = writer()
  const type = KV_REQUEST_TYPES.indexOf(request.type)
  if (type !== 0) w.uint32(REQ_TYPE).uint32(type)
  if (request.key.length > 0) w.uint32(REQ_KEY).bytes(request.key)
  switch (request.type) {
    case 'read':
      break
    case 'write':
      w.uint32(REQ_OBJECT).bytes(encodeObject(request.object))
      if (request.hintFor !== undefined && request.hintFor !== '') w.uint32(REQ_HINT_FOR).string(request.hintFor)
      break
    case 'put':
      if (request.value === null) w.uint32(REQ_TOMBSTONE).bool(true)
      else if (request.value.length > 0) w.uint32(REQ_VALUE).bytes(request.value)
      if (request.context.size > 0) w.uint32(REQ_CONTEXT).string(encodeContext(request.context))
      writeQuorum(w, request.w)
      if (request.forwarded === true) w.uint32(REQ_FORWARDED).bool(true)
      break
    case 'get':
      writeQuorum(w, request.r)
      break
  }
  return w.finish()
}

/**
 * A kv request from untrusted bytes.
 * @throws MalformedDataError on anything malformed or out of bounds: an unknown type, a key over
 *   1024 bytes, a bad object, a put with both a value and a tombstone, a bad context, a hint_for
 *   over 128 characters, a quorum over 2^32 - 1, a frame over MAX_KV_MESSAGE_BYTES
 */
export function decodeKvRequest (bytes: Uint8Array): KvRequest {
  return decoding('kv request', () => {
    const r = reader(bounded(bytes, MAX_KV_MESSAGE_BYTES))
    let type = 0
    let key: Uint8Array = NO_BYTES
    let object: Uint8Array | undefined
    let hintFor = ''
    let value: Uint8Array | undefined
    let tombstone = false
    let context = ''
    let quorum = 0
    let forwarded = false
    while (r.pos < r.len) {
      const tag = readVarint(r)
      switch (tag) {
        case REQ_TYPE: type = readUint32(r); break
        case REQ_KEY: key = readBytes(r, MAX_KEY_BYTES, 'key'); break
        case REQ_OBJECT: object = readBytes(r, MAX_OBJECT_BYTES, 'object'); break
        case REQ_HINT_FOR: hintFor = readString(r, MAX_STRING_BYTES, 'hint_for'); break
        case REQ_VALUE: value = readBytes(r, MAX_VALUE_BYTES, 'value'); break
        case REQ_TOMBSTONE: tombstone = readVarint(r) !== 0; break
        case REQ_CONTEXT: context = readString(r, MAX_CONTEXT_CHARS, 'context'); break
        case REQ_QUORUM: quorum = readUint32(r); break
        case REQ_FORWARDED: forwarded = readVarint(r) !== 0; break
        default: skipField(r, tag)
      }
    }
    key = key.slice()
    switch (KV_REQUEST_TYPES[type]) {
      case 'read':
        return { type: 'read', key }
      case 'write': {
        const decoded = decodeObject(object ?? NO_BYTES)
        if (hintFor === '') return { type: 'write', key, object: decoded }
        if (hintFor.length > MAX_ID_LENGTH) throw new MalformedDataError(`hint_for is longer than ${MAX_ID_LENGTH} characters`)
        return { type: 'write', key, object: decoded, hintFor }
      }
      case 'put': {
        if (tombstone && value !== undefined) throw new MalformedDataError('a put carries both a value and a tombstone')
        const put = {
          type: 'put' as const,
          key,
          value: tombstone ? null : (value?.slice() ?? new Uint8Array(0)),
          context: context === '' ? new Map<string, number>() : decodeContext(context),
          ...(forwarded ? { forwarded } : {})
        }
        return quorum === 0 ? put : { ...put, w: quorum }
      }
      case 'get':
        return quorum === 0 ? { type: 'get', key } : { type: 'get', key, r: quorum }
      default:
        throw new MalformedDataError(`unknown kv request type ${type}`)
    }
  })
}

/**
 * Protobuf bytes of a response on `/shoal/kv/1.0.0`. An error's name and message are cut to
 * MAX_STRING_BYTES of UTF-8, so every response the coordinator makes can be decoded.
 */
export function encodeKvResponse (response: KvResponse): Uint8Array {
  const w = writer()
  const type = KV_RESPONSE_TYPES.indexOf(response.type)
  if (type !== 0) w.uint32(RES_TYPE).uint32(type)
  switch (response.type) {
    case 'read':
    case 'get':
    case 'put':
      if (response.object !== undefined) writeObject(w, RES_OBJECT, response.object)
      break
    case 'written':
      break
    case 'error':
      w.uint32(RES_ERROR_NAME).string(truncateUtf8(response.name, MAX_STRING_BYTES))
      if (response.message !== '') w.uint32(RES_ERROR_MESSAGE).string(truncateUtf8(response.message, MAX_STRING_BYTES))
      break
  }
  return w.finish()
}

/**
 * A kv response from untrusted bytes.
 * @throws MalformedDataError on anything malformed or out of bounds: an unknown type, a put
 *   without its object, a bad object, an error without a name, a name or message over 4 KiB
 */
export function decodeKvResponse (bytes: Uint8Array): KvResponse {
  return decoding('kv response', () => {
    const r = reader(bounded(bytes, MAX_KV_MESSAGE_BYTES))
    let type = 0
    let object: Uint8Array | undefined
    let name = ''
    let message = ''
    while (r.pos < r.len) {
      const tag = readVarint(r)
      switch (tag) {
        case RES_TYPE: type = readUint32(r); break
        case RES_OBJECT: object = readBytes(r, MAX_OBJECT_BYTES, 'object'); break
        case RES_ERROR_NAME: name = readString(r, MAX_STRING_BYTES, 'error_name'); break
        case RES_ERROR_MESSAGE: message = readString(r, MAX_STRING_BYTES, 'error_message'); break
        default: skipField(r, tag)
      }
    }
    const kind = KV_RESPONSE_TYPES[type]
    switch (kind) {
      case 'read':
      case 'get':
        return object === undefined ? { type: kind } : { type: kind, object: decodeObject(object) }
      case 'put':
        if (object === undefined) throw new MalformedDataError('a put response without its object')
        return { type: 'put', object: decodeObject(object) }
      case 'written':
        return { type: 'written' }
      case 'error':
        if (name === '') throw new MalformedDataError('an error response without a name')
        return { type: 'error', name, message }
      default:
        throw new MalformedDataError(`unknown kv response type ${type}`)
    }
  })
}

function writeObject (w: Writer, tag: number, object: DvvSet): void {
  w.uint32(tag).bytes(encodeObject(object))
}

function writeQuorum (w: Writer, quorum: number | undefined): void {
  if (quorum !== undefined && quorum !== 0) w.uint32(REQ_QUORUM).uint32(quorum)
}

// ---------------------------------------------------------------------------------------------
// Membership

/** Protobuf bytes of a heartbeat, as published on the cluster's gossip topic. */
export function encodeHeartbeat (heartbeat: Heartbeat): Uint8Array {
  const w = writer()
  w.uint32(HB_RECORD).fork()
  writeRecord(w, heartbeat.record)
  w.ldelim()
  if (heartbeat.digest !== '') w.uint32(HB_DIGEST).string(heartbeat.digest)
  return w.finish()
}

/**
 * A heartbeat from untrusted bytes; its record is validated (validateRecord).
 * @throws MalformedDataError on a missing or invalid record, a digest over 128 bytes, or more
 *   than MAX_HEARTBEAT_BYTES in all
 */
export function decodeHeartbeat (bytes: Uint8Array): Heartbeat {
  return decoding('heartbeat', () => {
    const r = reader(bounded(bytes, MAX_HEARTBEAT_BYTES))
    let record: MemberRecord | undefined
    let digest = ''
    while (r.pos < r.len) {
      const tag = readVarint(r)
      switch (tag) {
        case HB_RECORD: record = decodeRecord(readBytes(r, MAX_HEARTBEAT_BYTES, 'record')); break
        case HB_DIGEST: digest = readString(r, MAX_DIGEST_BYTES, 'digest'); break
        default: skipField(r, tag)
      }
    }
    if (record === undefined) throw new MalformedDataError('a heartbeat without a record')
    return { record, digest }
  })
}

/** The request of a member-table pull: no fields, zero bytes. */
export function encodeMembersRequest (_request: MembersRequest = {}): Uint8Array {
  return new Uint8Array(0)
}

/**
 * A pull request from untrusted bytes: any well-formed message of at most 4 KiB (fields a
 * newer member may add are skipped).
 * @throws MalformedDataError otherwise
 */
export function decodeMembersRequest (bytes: Uint8Array): MembersRequest {
  return decoding('members request', () => {
    const r = reader(bounded(bytes, MAX_STRING_BYTES))
    while (r.pos < r.len) skipField(r, readVarint(r))
    return {}
  })
}

/** Protobuf bytes of a member table (a pull's answer, or the table a node keeps on disk). */
export function encodeMemberList (records: readonly MemberRecord[]): Uint8Array {
  const w = writer()
  for (const record of records) {
    w.uint32(LIST_RECORD).fork()
    writeRecord(w, record)
    w.ldelim()
  }
  return w.finish()
}

/**
 * A member table from untrusted bytes, every record validated (validateRecord), in the order
 * sent. Records about the same member may repeat: MemberTable.mergeAll keeps the winner.
 * @throws MalformedDataError on an invalid record, more than 10 000 records, or more than
 *   MAX_MEMBERS_MESSAGE_BYTES in all
 */
export function decodeMemberList (bytes: Uint8Array): MemberRecord[] {
  return decoding('member list', () => {
    const r = reader(bounded(bytes, MAX_MEMBERS_MESSAGE_BYTES))
    const records: MemberRecord[] = []
    while (r.pos < r.len) {
      const tag = readVarint(r)
      if (tag === LIST_RECORD) {
        if (records.length === MAX_RECORDS) throw new MalformedDataError(`more than ${MAX_RECORDS} member records`)
        records.push(decodeRecord(readBytes(r, MAX_MEMBERS_MESSAGE_BYTES, 'record')))
      } else {
        skipField(r, tag)
      }
    }
    return records
  })
}

function writeRecord (w: Writer, record: MemberRecord): void {
  w.uint32(REC_ID).string(record.id)
  if (record.incarnation !== 0) w.uint32(REC_INCARNATION).uint64Number(record.incarnation)
  if (record.seq !== 0) w.uint32(REC_SEQ).uint64Number(record.seq)
  const status = STATUSES.indexOf(record.status)
  if (status !== 0) w.uint32(REC_STATUS).uint32(status)
  for (const addr of record.addrs) w.uint32(REC_ADDR).string(addr)
  w.uint32(REC_WEIGHT).double(record.weight)
  if (record.signer !== undefined && record.signature !== undefined) {
    w.uint32(REC_SIGNER).string(record.signer)
    w.uint32(REC_SIGNATURE).bytes(record.signature)
  }
}

function decodeRecord (bytes: Uint8Array): MemberRecord {
  const r = reader(bytes)
  let id = ''
  let incarnation = 0
  let seq = 0
  let status = 0
  const addrs: string[] = []
  let weight = 0
  let signer: string | undefined
  let signature: Uint8Array | undefined
  while (r.pos < r.len) {
    const tag = readVarint(r)
    switch (tag) {
      case REC_SIGNER: signer = readString(r, MAX_STRING_BYTES, 'signer'); break
      case REC_SIGNATURE: signature = readBytes(r, MAX_SIGNATURE_BYTES, 'signature'); break
      case REC_ID: id = readString(r, MAX_STRING_BYTES, 'member id'); break
      case REC_INCARNATION: incarnation = readVarint(r); break
      case REC_SEQ: seq = readVarint(r); break
      case REC_STATUS: status = readUint32(r); break
      case REC_ADDR:
        if (addrs.length === MAX_ADDRS) throw new MalformedDataError(`a member record with more than ${MAX_ADDRS} addrs`)
        addrs.push(readString(r, MAX_STRING_BYTES, 'addr'))
        break
      case REC_WEIGHT: weight = readDouble(r); break
      default: skipField(r, tag)
    }
  }
  const known = STATUSES[status]
  if (known === undefined) throw new MalformedDataError(`unknown member status ${status}`)
  return validateRecord({ id, incarnation, seq, status: known, addrs, weight, signer, signature })
}

// ---------------------------------------------------------------------------------------------
// Admin

/** Protobuf bytes of an operator's command on `/shoal/admin/1.0.0`. */
export function encodeAdminRequest (request: AdminRequest): Uint8Array {
  const w = writer()
  const op = ADMIN_OPS.indexOf(request.op)
  if (op !== 0) w.uint32(ADMIN_OP).uint32(op)
  if (request.member !== undefined && request.member !== '') w.uint32(ADMIN_MEMBER).string(request.member)
  return w.finish()
}

/**
 * An admin request from untrusted bytes.
 * @throws MalformedDataError on an unknown op or more than 4 KiB
 */
export function decodeAdminRequest (bytes: Uint8Array): AdminRequest {
  return decoding('admin request', () => {
    const r = reader(bounded(bytes, MAX_STRING_BYTES))
    let op = 0
    let member = ''
    while (r.pos < r.len) {
      const tag = readVarint(r)
      if (tag === ADMIN_OP) op = readUint32(r)
      else if (tag === ADMIN_MEMBER) member = readString(r, MAX_ID_LENGTH, 'member')
      else skipField(r, tag)
    }
    const known = ADMIN_OPS[op]
    if (known === undefined) throw new MalformedDataError(`unknown admin op ${op}`)
    return member === '' ? { op: known } : { op: known, member }
  })
}

/** Protobuf bytes of an admin answer. An error's name and message are cut to 4 KiB of UTF-8. */
export function encodeAdminResponse (response: AdminResponse): Uint8Array {
  const w = writer()
  if (response.type === 'ok') {
    w.uint32(ADMIN_JSON).string(response.json)
  } else {
    w.uint32(ADMIN_ERROR_NAME).string(truncateUtf8(response.name, MAX_STRING_BYTES))
    if (response.message !== '') w.uint32(ADMIN_ERROR_MESSAGE).string(truncateUtf8(response.message, MAX_STRING_BYTES))
  }
  return w.finish()
}

/**
 * An admin answer from untrusted bytes: an error when error_name is set, else the JSON text
 * (not parsed here).
 * @throws MalformedDataError on JSON over 4 MiB, a name or message over 4 KiB, bad UTF-8
 */
export function decodeAdminResponse (bytes: Uint8Array): AdminResponse {
  return decoding('admin response', () => {
    const r = reader(bounded(bytes, MAX_ADMIN_MESSAGE_BYTES))
    let json = ''
    let name = ''
    let message = ''
    while (r.pos < r.len) {
      const tag = readVarint(r)
      switch (tag) {
        case ADMIN_JSON: json = readString(r, MAX_ADMIN_JSON_BYTES, 'json'); break
        case ADMIN_ERROR_NAME: name = readString(r, MAX_STRING_BYTES, 'error_name'); break
        case ADMIN_ERROR_MESSAGE: message = readString(r, MAX_STRING_BYTES, 'error_message'); break
        default: skipField(r, tag)
      }
    }
    return name === '' ? { type: 'ok', json } : { type: 'error', name, message }
  })
}

// ---------------------------------------------------------------------------------------------
// Strict reading. protons-runtime's Reader is lenient (a varint cut off by the end of the buffer
// reads as zero-padded, a length >= 2^32 wraps), so untrusted input goes through these instead,
// over the same cursor. They mirror the private helpers of src/core/object-codec.ts.

/** Runs a decoder; anything it throws that is not a MalformedDataError becomes one. */
export function decoding<T> (what: string, decode: () => T): T {
  try {
    return decode()
  } catch (err) {
    if (err instanceof MalformedDataError) throw err
    throw new MalformedDataError(`malformed ${what}: ${(err as Error)?.message}`, { cause: err })
  }
}

/**
 * The input, size-checked, as a plain Uint8Array view. Frames from a socket are often Node
 * Buffers, whose slice() is a view, not a copy: through a plain view, every slice() made while
 * decoding (here and in decodeObject) copies, so results never alias the frame.
 */
export function bounded (bytes: Uint8Array, max: number): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new MalformedDataError('message is not bytes')
  if (bytes.length > max) throw new MalformedDataError(`message of ${bytes.length} bytes exceeds ${max}`)
  return plainBytes(bytes)
}


/** At most `maxBytes` of UTF-8, cut at a character boundary. */
export function truncateUtf8 (text: string, maxBytes: number): string {
  const bytes = utf8Encoder.encode(text)
  if (bytes.length <= maxBytes) return text
  let end = maxBytes
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--
  return new TextDecoder().decode(bytes.subarray(0, end))
}
