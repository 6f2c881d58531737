/**
 * The member table: what this node believes about every member, merged from heartbeats and from
 * full-table pulls. Each member speaks only for its own record (gossipsub signs every message), so
 * merging is picking, per member, the winner of a total order: every node that has seen the same
 * records holds the same table, whatever order they came in.
 *
 * @example
 * ```ts
 * const table = new MemberTable()
 * table.merge(validateRecord(heartbeat.record))   // true if it was news
 * if (heartbeat.digest !== table.digest()) pullFullTable(heartbeat.from)
 * const ring = createRing(table.ringMembers())
 * ```
 */
import { toBytes, compareBytes, toHex } from './bytes.ts'
import { MalformedDataError } from './errors.ts'
import { sha256 } from './hash.ts'

export type MemberStatus = 'joining' | 'up' | 'leaving' | 'left'

export interface MemberRecord {
  /** Peer id string. */
  readonly id: string
  /** The member's start epoch: it sets this from its clock at each start; larger = newer life. */
  readonly incarnation: number
  /** Bumped by the member on every change of its own record within an incarnation. */
  readonly seq: number
  readonly status: MemberStatus
  /** Multiaddr strings, sorted, deduplicated. */
  readonly addrs: readonly string[]
  /** Share of the data relative to other members: > 0. */
  readonly weight: number
  /**
   * The peer id that signed this record: the member itself, or for a 'left' record made by an
   * operator's remove, the member that removed it. Absent on records not signed (the simulator).
   */
  readonly signer?: string
  /** The signer's signature of {@link recordPayload}. */
  readonly signature?: Uint8Array
}

export const MAX_ID_LENGTH = 128
export const MAX_ADDRS = 32
export const MAX_ADDR_LENGTH = 256
export const MAX_WEIGHT = 1000
/** Room for any libp2p key type's signature (Ed25519: 64 bytes; RSA-4096: 512). */
export const MAX_SIGNATURE_BYTES = 1024

/** A member's life moves forward through these; a later status wins a tie of incarnation and seq. */
const STATUS_RANK: Readonly<Record<MemberStatus, number>> = { joining: 0, up: 1, leaving: 2, left: 3 }

function compareStrings (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * The record's canonical bytes: UTF-8 JSON of its fields in a fixed order. Number and string
 * serialisation is exact in ECMAScript, so two records have equal bytes iff they are equal.
 */
function canonical (r: MemberRecord): Uint8Array {
  return toBytes(canonicalJson(r))
}

function canonicalJson (r: MemberRecord): string {
  return JSON.stringify([r.id, r.incarnation, r.seq, r.status, r.weight, r.addrs])
}

/**
 * The bytes a record's signer signs: a domain tag, the signer, and the record's canonical fields
 * (never the signature itself), so a signature cannot be moved to another record or signer.
 */
export function recordPayload (record: MemberRecord, signer: string): Uint8Array {
  return toBytes(`shoal/member-record/1\n${signer}\n${canonicalJson(record)}`)
}

/**
 * Total order deciding which of two records about the same member wins: higher incarnation, then
 * higher seq, then status rank (left > leaving > up > joining), then canonical bytes. Positive when
 * `a` wins, negative when `b` wins, 0 only for equal records. Deterministic, so every node
 * converges whatever order records arrive in.
 */
export function compareRecords (a: MemberRecord, b: MemberRecord): number {
  return Math.sign(a.incarnation - b.incarnation) ||
    Math.sign(a.seq - b.seq) ||
    Math.sign(STATUS_RANK[a.status] - STATUS_RANK[b.status]) ||
    compareBytes(canonical(a), canonical(b))
}

function isRecordObject (r: unknown): r is Record<string, unknown> {
  return typeof r === 'object' && r !== null && !Array.isArray(r)
}

function isCount (n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

function isStatus (s: unknown): s is MemberStatus {
  return typeof s === 'string' && Object.hasOwn(STATUS_RANK, s)
}

/**
 * Check a record that came from the network and return a clean, frozen copy: only the known
 * fields, addrs sorted and deduplicated, -0 made 0.
 * @throws MalformedDataError on anything wrong: id 1..128 chars, incarnation and seq safe integers
 *   >= 0, a known status, at most 32 addrs each a non-empty string of at most 256 chars, weight
 *   finite in (0, 1000]
 */
export function validateRecord (r: unknown): MemberRecord {
  if (!isRecordObject(r)) throw new MalformedDataError('member record is not an object')
  const { id, incarnation, seq, status, addrs, weight, signer, signature } = r
  if (typeof id !== 'string' || id.length < 1 || id.length > MAX_ID_LENGTH) {
    throw new MalformedDataError(`member id must be a string of 1..${MAX_ID_LENGTH} chars`)
  }
  if (!isCount(incarnation)) throw new MalformedDataError(`member ${id}: incarnation must be a safe integer >= 0`)
  if (!isCount(seq)) throw new MalformedDataError(`member ${id}: seq must be a safe integer >= 0`)
  if (!isStatus(status)) throw new MalformedDataError(`member ${id}: unknown status`)
  if (!Array.isArray(addrs) || addrs.length > MAX_ADDRS) {
    throw new MalformedDataError(`member ${id}: addrs must be a list of at most ${MAX_ADDRS}`)
  }
  for (const addr of addrs) {
    if (typeof addr !== 'string' || addr.length < 1 || addr.length > MAX_ADDR_LENGTH) {
      throw new MalformedDataError(`member ${id}: every addr must be a string of 1..${MAX_ADDR_LENGTH} chars`)
    }
  }
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0 || weight > MAX_WEIGHT) {
    throw new MalformedDataError(`member ${id}: weight must be a finite number in (0, ${MAX_WEIGHT}]`)
  }
  if ((signer === undefined) !== (signature === undefined)) {
    throw new MalformedDataError(`member ${id}: a signer needs a signature and a signature a signer`)
  }
  if (signer !== undefined && (typeof signer !== 'string' || signer.length < 1 || signer.length > MAX_ID_LENGTH)) {
    throw new MalformedDataError(`member ${id}: signer must be a string of 1..${MAX_ID_LENGTH} chars`)
  }
  if (signature !== undefined && (!(signature instanceof Uint8Array) || signature.length < 1 || signature.length > MAX_SIGNATURE_BYTES)) {
    throw new MalformedDataError(`member ${id}: signature must be 1..${MAX_SIGNATURE_BYTES} bytes`)
  }
  const sorted = [...new Set(addrs as string[])].sort(compareStrings)
  const clean: MemberRecord = {
    id,
    incarnation: incarnation + 0,
    seq: seq + 0,
    status,
    addrs: Object.freeze(sorted),
    weight
  }
  return Object.freeze(signer === undefined ? clean : { ...clean, signer, signature: Uint8Array.from(signature as Uint8Array) })
}

/** The members known to this node, one winning record each. */
export class MemberTable {
  private readonly records = new Map<string, MemberRecord>()
  private cachedDigest: string | undefined

  constructor (records: Iterable<MemberRecord> = []) {
    this.mergeAll(records)
  }

  get size (): number {
    return this.records.size
  }

  get (id: string): MemberRecord | undefined {
    return this.records.get(id)
  }

  /** Every record, sorted by id. */
  all (): MemberRecord[] {
    return [...this.records.values()].sort((a, b) => compareStrings(a.id, b.id))
  }

  /**
   * Keep the winner of the stored record and this one. The record is validated and stored as a
   * frozen copy, so a caller's later changes to its object cannot reach the table.
   * @returns true if the table changed
   * @throws MalformedDataError if the record is malformed
   */
  merge (record: MemberRecord): boolean {
    const incoming = validateRecord(record)
    const current = this.records.get(incoming.id)
    if (current !== undefined && compareRecords(incoming, current) <= 0) return false
    this.records.set(incoming.id, incoming)
    this.cachedDigest = undefined
    return true
  }

  /**
   * Merge many records, e.g. a full table pulled from another member.
   * @returns the ids whose record changed, each once, sorted
   */
  mergeAll (records: Iterable<MemberRecord>): string[] {
    const changed = new Set<string>()
    for (const record of records) if (this.merge(record)) changed.add(record.id)
    return [...changed].sort(compareStrings)
  }

  /**
   * Hash of the canonical table (records sorted by id, each as its canonical bytes): equal tables
   * have equal digests. Heartbeats carry it so a split view is seen cheaply. 32 hex chars.
   */
  digest (): string {
    this.cachedDigest ??= toHex(sha256(toBytes(`[${this.all().map(canonicalJson).join(',')}]`)).subarray(0, 16))
    return this.cachedDigest
  }

  /**
   * The members that own partitions, status 'up', shaped for the ring and sorted by id. A leaving
   * member owns nothing: the ring moves its partitions at once, and it hands their data to the
   * new owners while it still answers (Riak's "future ring").
   */
  ringMembers (): Array<{ id: string, weight: number }> {
    return this.all()
      .filter(r => r.status === 'up')
      .map(r => ({ id: r.id, weight: r.weight }))
  }
}
