import { bytesEqual } from './bytes.ts'
import type { Env, Timer } from './env.ts'
import { InvalidArgumentError, MalformedDataError } from './errors.ts'
import { FailureDetectors } from './failure-detector.ts'
import type { Liveness, PhiOptions } from './failure-detector.ts'
import { MemberTable, recordPayload, validateRecord } from './membership.ts'
import type { MemberRecord, MemberStatus } from './membership.ts'
import { Ring } from './ring.ts'
import type { RingOptions } from './ring.ts'

/** What every member publishes each interval on the cluster's gossip topic. */
export interface Heartbeat {
  /** The sender's own record: a member speaks only for itself. */
  readonly record: MemberRecord
  /** Digest of the sender's member table: a mismatch makes the receiver pull the full table. */
  readonly digest: string
}

/**
 * Signs this member's records and checks others'. A node signs with its libp2p private key and
 * verifies against the public key in the signer's peer id; without one (the simulator), records
 * go unsigned and unchecked.
 */
export interface RecordSigner {
  sign: (payload: Uint8Array) => Uint8Array
  /** False for a bad signature or a signer whose key cannot be known; never throws. */
  verify: (signer: string, payload: Uint8Array, signature: Uint8Array) => boolean
}

export interface MembershipViewInit {
  readonly env: Env
  /** Fetch a member's full table (membership anti-entropy). */
  readonly pull: (member: string) => Promise<readonly MemberRecord[]>
  /** Records known before start: the persisted table, or a static cluster's members. */
  readonly known?: Iterable<MemberRecord>
  readonly ring?: RingOptions
  readonly detector?: PhiOptions
  /** Called with the ids whose records changed. */
  readonly onChange?: (changed: readonly string[]) => void
  /**
   * Accept only records signed by the member they describe, or, for a 'left' record (an
   * operator's remove), by a member this view knows as up or leaving.
   */
  readonly signer?: RecordSigner
}

export interface MembershipAgentInit extends MembershipViewInit {
  readonly self: MemberRecord
  /** Broadcast on the cluster topic (gossipsub in a node). */
  readonly publish: (heartbeat: Heartbeat) => void
  readonly intervalMs?: number
  /** Signs this member's own records too. */
  readonly signer?: RecordSigner
}

export const HEARTBEAT_INTERVAL_MS = 1000
/**
 * One or two lost heartbeats must not mark a member down (phi alone would at ~1.5 s of silence);
 * a member silent for ~3.5 s is down, inside the 5 s the project aims for.
 */
export const ACCEPTABLE_PAUSE_MS = 2000

/**
 * What one peer knows of the cluster: merges the heartbeats members publish, pulls a member's
 * whole table when the digests disagree (so a lost heartbeat never leaves a permanent split
 * view), and keeps a phi-accrual detector per member. Liveness steers routing only; the ring is a
 * function of the member records alone. A client peer keeps one of these to route requests
 * itself (Dynamo §6.4) without ever becoming a member; a member's {@link MembershipAgent} adds
 * its own record and heartbeat.
 */
export class MembershipView {
  protected readonly env: Env
  protected readonly table: MemberTable
  protected readonly detectors: FailureDetectors
  protected readonly onChange: (changed: readonly string[]) => void
  protected readonly signer: RecordSigner | undefined
  private readonly pull: (member: string) => Promise<readonly MemberRecord[]>
  private readonly ringOptions: RingOptions
  private readonly pulling = new Map<string, Promise<void>>()
  private ringCache: { key: string, ring: Ring } | undefined

  constructor (init: MembershipViewInit) {
    this.env = init.env
    this.pull = init.pull
    this.ringOptions = init.ring ?? {}
    this.onChange = init.onChange ?? (() => {})
    this.detectors = new FailureDetectors({ acceptablePauseMs: ACCEPTABLE_PAUSE_MS, ...init.detector })
    this.signer = init.signer
    // Records from this node's own disk are trusted as they are.
    this.table = new MemberTable(init.known)
  }

  /** The peer this view belongs to when it is a member, whose own record only it may change. */
  protected get self (): string | undefined {
    return undefined
  }

  /**
   * A heartbeat from `from` (the gossip layer's verified sender). Anything malformed, or a record
   * about another member than its sender, is ignored: returns false.
   */
  receive (from: string, heartbeat: unknown): boolean {
    let record: MemberRecord
    let digest: string
    try {
      ({ record, digest } = validateHeartbeat(heartbeat))
    } catch {
      return false
    }
    if (record.id !== from || from === this.self || !this.authentic(record)) return false
    this.detectors.heartbeat(from, this.env.now())
    if (this.table.merge(record)) this.onChange([record.id])
    if (digest !== this.table.digest()) void this.pullFrom(from)
    return true
  }

  /**
   * Pulls `member`'s whole table now and merges what is authentic (a client's first view of the
   * cluster). Rejects when the member cannot be reached.
   */
  async refresh (member: string): Promise<void> {
    const records = await this.pull(member)
    this.detectors.heartbeat(member, this.env.now())
    this.mergePulled(records)
  }

  /** Serves another member's pull. */
  records (): MemberRecord[] {
    return this.table.all()
  }

  member (id: string): MemberRecord | undefined {
    return this.table.get(id)
  }

  /** The ring of the members that own partitions; rebuilt only when that set changes. */
  ring (): Ring {
    const members = this.table.ringMembers()
    const key = members.map(m => `${m.id}:${m.weight}`).join(',')
    if (this.ringCache?.key !== key) this.ringCache = { key, ring: new Ring(members, this.ringOptions) }
    return this.ringCache.ring
  }

  liveness (id: string): Liveness {
    if (id === this.self) return 'alive'
    return this.detectors.liveness(id, this.env.now())
  }

  isUp (id: string): boolean {
    return this.liveness(id) === 'alive'
  }

  /** The outcome of a request to `id`: failures make it suspect before phi notices. */
  observe (id: string, ok: boolean): void {
    if (id === this.self) return
    if (ok) this.detectors.requestSucceeded(id, this.env.now())
    else this.detectors.requestFailed(id, this.env.now())
  }

  digest (): string {
    return this.table.digest()
  }

  /**
   * Whether a record from the network may enter the table: signed by the member it describes,
   * or a 'left' record signed by a member that is up or leaving here (an operator's remove).
   * A peer outside the cluster, or a member speaking for another, changes nobody's ring.
   */
  protected authentic (record: MemberRecord): boolean {
    if (this.signer === undefined) return true
    const { signer, signature } = record
    if (signer === undefined || signature === undefined) return false
    if (signer !== record.id) {
      const status = this.table.get(signer)?.status
      if (record.status !== 'left' || (status !== 'up' && status !== 'leaving')) return false
    }
    const payload = recordPayload(record, signer)
    // Every heartbeat repeats its sender's record, and every pull the whole table: a record equal,
    // signature included, to the one held was verified when it came in. Ed25519 checks were the
    // largest share of a member's CPU in a 20-member cluster (one per record per heartbeat).
    const held = this.table.get(record.id)
    if (held?.signer === signer && held.signature !== undefined && bytesEqual(held.signature, signature) && bytesEqual(recordPayload(held, signer), payload)) return true
    return this.signer.verify(signer, payload, signature)
  }

  private async pullFrom (member: string): Promise<void> {
    const running = this.pulling.get(member)
    if (running !== undefined) return await running
    const pulled = this.pull(member).then(records => { this.mergePulled(records) }, () => {
      this.observe(member, false)
    }).finally(() => { this.pulling.delete(member) })
    this.pulling.set(member, pulled)
    await pulled
  }

  private mergePulled (records: readonly MemberRecord[]): void {
    const valid: MemberRecord[] = []
    for (const r of records) {
      try { valid.push(validateRecord(r)) } catch {}
    }
    // Our own record is ours alone to change: a stale copy from a peer must not replace it.
    const others = valid.filter(r => r.id !== this.self)
    // Members' own records first, so a remove signed by a member learnt in this same pull counts.
    const changed = new Set(this.table.mergeAll(others.filter(r => r.signer === r.id && this.authentic(r))))
    for (const id of this.table.mergeAll(others.filter(r => r.signer !== r.id && this.authentic(r)))) changed.add(id)
    if (changed.size > 0) this.onChange([...changed].sort())
  }
}

/**
 * One member's view of the cluster ({@link MembershipView}) that also publishes its own record
 * as a heartbeat every interval.
 */
export class MembershipAgent extends MembershipView {
  private readonly publish: (heartbeat: Heartbeat) => void
  private readonly intervalMs: number
  private record: MemberRecord
  private timer: Timer | undefined

  constructor (init: MembershipAgentInit) {
    super(init)
    this.publish = init.publish
    this.intervalMs = init.intervalMs ?? HEARTBEAT_INTERVAL_MS
    this.record = this.sign(init.self, init.self.id)
    this.table.merge(this.record)
  }

  get id (): string {
    return this.record.id
  }

  protected override get self (): string | undefined {
    // Read during the base constructor too, before the record exists.
    return this.record?.id
  }

  start (): void {
    if (this.timer !== undefined) return
    const beat = (): void => {
      this.publish({ record: this.record, digest: this.table.digest() })
      this.timer = this.env.setTimer(this.intervalMs, beat)
    }
    beat()
  }

  stop (): void {
    this.timer?.cancel()
    this.timer = undefined
  }

  /** Changes this member's own record (status, addresses, weight) and publishes it at once. */
  announce (change: { status?: MemberStatus, addrs?: readonly string[], weight?: number }): MemberRecord {
    this.record = this.sign({
      ...this.record,
      ...change,
      addrs: change.addrs === undefined ? this.record.addrs : [...new Set(change.addrs)].sort(),
      seq: this.record.seq + 1
    }, this.record.id)
    this.table.merge(this.record)
    this.onChange([this.record.id])
    this.publish({ record: this.record, digest: this.table.digest() })
    return this.record
  }

  /**
   * An operator's remove: this member's record of `id` becomes 'left' one step after the latest
   * it knows, so it wins everywhere the table is pulled. The member's own heartbeats of that same
   * life cannot undo it; only a restart (a new incarnation) brings it back.
   */
  remove (id: string): MemberRecord {
    if (id === this.record.id) throw new InvalidArgumentError('a member does not remove itself: it leaves')
    const record = this.table.get(id)
    if (record === undefined) throw new InvalidArgumentError(`${id} is not a member`)
    const removed = this.sign({ ...record, status: 'left', seq: record.seq + 1 }, this.record.id)
    this.table.merge(removed)
    this.onChange([id])
    return removed
  }

  private sign (record: MemberRecord, signer: string): MemberRecord {
    const { signer: _signer, signature: _signature, ...fields } = record
    if (this.signer === undefined) return fields
    return { ...fields, signer, signature: this.signer.sign(recordPayload(fields, signer)) }
  }
}

function validateHeartbeat (value: unknown): Heartbeat {
  if (typeof value !== 'object' || value === null) throw new MalformedDataError('heartbeat is not an object')
  const { record, digest } = value as { record?: unknown, digest?: unknown }
  if (typeof digest !== 'string' || digest.length > 128) throw new MalformedDataError('heartbeat digest is malformed')
  return { record: validateRecord(record), digest }
}
