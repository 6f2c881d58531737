import { describeKey } from '../bytes.ts'
import { update } from '../causality.ts'
import { decodeCrdt, isReserved } from '../crdt/typed-value.ts'
import type { DvvSet, VersionVector } from '../causality.ts'
import type { Env } from '../env.ts'
import {
  InvalidArgumentError, NotOwnerError, OverloadedError, ShoalError, TooManySiblingsError, UnavailableError, remoteError
} from '../errors.ts'
import type { Ring } from '../ring.ts'
import { GetCore } from './get.ts'
import type { KvRequest, KvResponse, Transport } from './messages.ts'
import { PutCore, planWrite } from './put.ts'
import type { WriteTarget } from './put.ts'

/** The local copy of this member's data: the LevelDB store in a node, a map in the simulator. */
export interface LocalReplica {
  /** The actor of the dots this replica creates; never reused for another history. */
  readonly actorId: string
  get: (key: Uint8Array) => Promise<DvvSet | undefined>
  /**
   * Read-modify-write of one key, atomic with respect to other writes of that key. `actor` is the
   * actor a new dot of this key must use: actorId, or a fresh one after this replica removed a
   * copy carrying its dots (handoff, tombstone purge), so that no dot is ever minted twice.
   */
  modify: (key: Uint8Array, fn: (current: DvvSet | undefined, actor: string) => DvvSet | undefined) => Promise<DvvSet | undefined>
  merge: (key: Uint8Array, incoming: DvvSet) => Promise<{ object: DvvSet, changed: boolean }>
  /**
   * Keep a copy for `target`, a primary that was down (hinted handoff). True when the hint is
   * new, false when it merged into one held already.
   */
  putHint: (target: string, key: Uint8Array, object: DvvSet) => Promise<boolean>
}

export interface Limits {
  readonly maxKeyBytes: number
  readonly maxValueBytes: number
  readonly maxSiblings: number
}

export const DEFAULT_LIMITS: Limits = { maxKeyBytes: 1024, maxValueBytes: 1024 * 1024, maxSiblings: 100 }
export const DEFAULT_TIMEOUT_MS = 5000
/** Replies a get waits for and acknowledgements a put waits for, unless told otherwise. */
export const DEFAULT_QUORUM = 2
/**
 * A forwarded put waits this many request deadlines: the owner spends up to one on its replicas,
 * so the forwarder must outwait it to hear its QuorumError rather than time out first.
 */
export const FORWARD_DEADLINES = 2
/** Errors that say a request was not served, so another member may take it without doubling it. */
export const NOT_SERVED: ReadonlySet<string> = new Set(['UnreachableError', 'NotOwnerError', 'OverloadedError'])

/** What serving one request may take, forwarding included: the server's and clients' deadline. */
export const SERVE_DEADLINES = FORWARD_DEADLINES + 1

export interface CoordinatorInit {
  readonly self: string
  readonly env: Env
  readonly replica: LocalReplica
  readonly transport: Transport
  /** The current ring; membership replaces it as members join and leave. */
  readonly ring: () => Ring
  /** The failure detector's view: routing only. */
  readonly isUp: (member: string) => boolean
  /** Told the outcome of every request to another member: feeds the failure detector. */
  readonly observe?: (member: string, ok: boolean) => void
  readonly r?: number
  readonly w?: number
  readonly timeoutMs?: number
  /** Sloppy quorum: a down primary's copy goes to the next live fallback with a hint. Default true. */
  readonly sloppy?: boolean
  /** Write the merged object back to replicas a read found stale. Default true. */
  readonly readRepair?: boolean
  readonly limits?: Partial<Limits>
  /** Told each hint stored here for another member, to hand it off later. */
  readonly onHint?: (target: string, created: boolean) => void
  /** Told how long each put and get coordinated here took, in ms (admission control). */
  readonly onLatency?: (ms: number) => void
  /** Told each get, put and delete coordinated or forwarded here: how long it took and its error, if it failed (metrics). */
  readonly onRequest?: (op: 'get' | 'put' | 'delete', ms: number, error: Error | undefined) => void
  /** Told each stale replica a read writes the merged object back to (metrics). */
  readonly onReadRepair?: (member: string) => void
  /** A finer clock for onRequest's durations (performance.now in a node); default env.now. */
  readonly metricsClock?: () => number
}

export interface PutOptions {
  readonly context?: VersionVector
  readonly w?: number
}

export interface GetOptions {
  readonly r?: number
}

const EMPTY_CONTEXT: VersionVector = new Map()

/** What the deadline needs of a get or put core. */
interface RequestCore {
  outcome: () => { readonly done: boolean }
  settled: () => boolean
  pending: () => string[]
  expire: (member: string, reason: string) => void
}

/**
 * Coordinates gets and puts for one member (Dynamo §4.5): the decisions are the pure cores'
 * (get.ts, put.ts); this class sends, waits and applies them. The same code runs in a node over
 * libp2p and in the simulator over a virtual network.
 */
export class Coordinator {
  private readonly self: string
  private readonly env: Env
  private readonly replica: LocalReplica
  private readonly transport: Transport
  private readonly ring: () => Ring
  private readonly isUp: (member: string) => boolean
  private readonly observe: (member: string, ok: boolean) => void
  private readonly r: number
  private readonly w: number
  private readonly timeoutMs: number
  private readonly sloppy: boolean
  private readonly readRepair: boolean
  private readonly onHint: (target: string, created: boolean) => void
  private readonly onLatency: (ms: number) => void
  private readonly onRequest: (op: 'get' | 'put' | 'delete', ms: number, error: Error | undefined) => void
  private readonly onReadRepair: (member: string) => void
  private readonly metricsClock: () => number
  readonly limits: Limits

  constructor (init: CoordinatorInit) {
    this.self = init.self
    this.env = init.env
    this.replica = init.replica
    this.transport = init.transport
    this.ring = init.ring
    this.isUp = (member) => member === this.self || init.isUp(member)
    this.observe = init.observe ?? (() => {})
    this.r = init.r ?? DEFAULT_QUORUM
    this.w = init.w ?? DEFAULT_QUORUM
    this.timeoutMs = init.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.sloppy = init.sloppy ?? true
    this.readRepair = init.readRepair ?? true
    this.onHint = init.onHint ?? (() => {})
    this.onLatency = init.onLatency ?? (() => {})
    this.onRequest = init.onRequest ?? (() => {})
    this.onReadRepair = init.onReadRepair ?? (() => {})
    this.metricsClock = init.metricsClock ?? (() => this.env.now())
    this.limits = { ...DEFAULT_LIMITS, ...init.limits }
  }

  /** Writes `value` (null: a delete's tombstone) replacing what `context` covers. Returns the new object. */
  async put (key: Uint8Array, value: Uint8Array | null, options: PutOptions = {}): Promise<DvvSet> {
    return await this.timed(value === null ? 'delete' : 'put', this.write(key, value, options, false))
  }

  /** A quorum read: every replica's copy merged, or undefined when none has the key. */
  async get (key: Uint8Array, options: GetOptions = {}): Promise<DvvSet | undefined> {
    return await this.timed('get', this.read(key, options))
  }

  private async read (key: Uint8Array, options: GetOptions): Promise<DvvSet | undefined> {
    this.checkKey(key)
    const ring = this.ring()
    const replicas = ring.owners(ring.partitionOf(key))
    const r = this.quorum('r', options.r ?? this.r, ring)
    const core = new GetCore({ r, replicas })
    const done = this.deadline(core)

    for (const member of replicas) {
      this.readReplica(member, key).then(
        object => { core.reply(member, object) },
        (err: Error) => { core.fail(member, describe(err)) }
      ).finally(done.check)
    }
    await done.answered
    // Read repair once every replica has answered (or the deadline passed), off the request path.
    if (this.readRepair) void done.settled.then(() => { this.repair(key, core) })

    const outcome = core.outcome()
    if (!outcome.done || !outcome.ok) throw undecided(outcome)
    return outcome.object
  }

  /** This member's own copy of a key: no quorum, no repair (for operators and tests). */
  async readLocal (key: Uint8Array): Promise<DvvSet | undefined> {
    this.checkKey(key)
    return await this.replica.get(key)
  }

  /** Serves a request from another member or a client. Never throws: failures become typed error responses. */
  async handle (request: KvRequest): Promise<KvResponse> {
    try {
      switch (request.type) {
        case 'read':
          return { type: 'read', object: await this.replica.get(request.key) }
        case 'write':
          await this.storeCopy(request.key, request.object, request.hintFor)
          return { type: 'written' }
        case 'put': {
          const options = { context: request.context, ...(request.w === undefined ? {} : { w: request.w }) }
          return { type: 'put', object: await this.timed(request.value === null ? 'delete' : 'put', this.write(request.key, request.value, options, request.forwarded === true)) }
        }
        case 'get':
          return { type: 'get', object: await this.get(request.key, request.r === undefined ? {} : { r: request.r }) }
      }
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err))
      return { type: 'error', name: e.name, message: e.message }
    }
  }

  /**
   * A replica write. A hinted copy is kept as a hint for its primary, not as this member's own
   * data (it owns none of the key), unless the ring has made this member an owner meanwhile.
   */
  private async storeCopy (key: Uint8Array, object: DvvSet, hintFor: string | undefined): Promise<void> {
    if (hintFor === undefined || hintFor === this.self) {
      await this.replica.merge(key, object)
      return
    }
    const ring = this.ring()
    if (ring.owners(ring.partitionOf(key)).includes(this.self)) {
      await this.replica.merge(key, object)
      return
    }
    this.onHint(hintFor, await this.replica.putHint(hintFor, key, object))
  }

  /**
   * A put, coordinated here when this member owns the key, else forwarded once to an owner. A
   * forwarded put is refused by a non-owner, so two members with different views of the ring
   * cannot bounce it between them.
   */
  private async write (key: Uint8Array, value: Uint8Array | null, options: PutOptions, forwarded: boolean): Promise<DvvSet> {
    this.checkKey(key)
    if (value !== null && value.byteLength > this.limits.maxValueBytes) {
      throw new InvalidArgumentError(`value is ${value.byteLength} bytes, the limit is ${this.limits.maxValueBytes}`)
    }
    // Counters and sets are written here like any value; what starts with their prefix must be
    // one, so that no plain value stored can ever be read, joined or collapsed as a CRDT.
    if (value !== null && isReserved(value) && decodeCrdt(value) === undefined) {
      throw new InvalidArgumentError('a value may not start with the bytes ff 53 48 4c unless it is a well-formed Shoal counter or set')
    }
    const context = options.context ?? EMPTY_CONTEXT
    const ring = this.ring()
    const partition = ring.partitionOf(key)
    const owners = ring.owners(partition)
    const w = this.quorum('w', options.w ?? this.w, ring)
    if (owners.includes(this.self)) return await this.coordinatePut(key, value, context, w, ring, partition)
    if (forwarded) throw new NotOwnerError(`${this.self} is not in the preflist of this key`)
    return await this.forwardPut(owners, { type: 'put', key, value, context, w, forwarded: true })
  }

  private async coordinatePut (key: Uint8Array, value: Uint8Array | null, context: VersionVector, w: number, ring: Ring, partition: number): Promise<DvvSet> {
    const now = this.env.now()
    const object = await this.replica.modify(key, (current, actor) => {
      const next = update(current, context, actor, value, now)
      if (next.siblings.length > this.limits.maxSiblings) {
        throw new TooManySiblingsError(`key ${describeKey(key)} would have ${next.siblings.length} siblings, the limit is ${this.limits.maxSiblings}: write with a context to resolve them`)
      }
      return next
    })
    if (object === undefined) throw new ShoalError('local write returned no object')

    const plan = planWrite({ owners: ring.owners(partition), fallbacks: ring.fallbacks(partition), isUp: this.isUp, sloppy: this.sloppy })
    const core = new PutCore({ op: value === null ? 'delete' : 'put', w, plan })
    const done = this.deadline(core)

    const send = (target: WriteTarget): void => {
      if (target.member === this.self) {
        core.ack(this.self)
        return
      }
      const request: KvRequest = target.hintFor === undefined
        ? { type: 'write', key, object }
        : { type: 'write', key, object, hintFor: target.hintFor }
      this.call(target.member, request).then(
        () => { core.ack(target.member) },
        (err: Error) => {
          const replacement = core.fail(target.member, describe(err))
          if (replacement !== undefined) send(replacement)
        }
      ).finally(done.check)
    }
    for (const target of plan.targets) send(target)
    done.check()
    await done.answered

    const outcome = core.outcome()
    if (!outcome.done || !outcome.ok) throw undecided(outcome)
    return object
  }

  /** Hands a put to a preflist member, live ones first; moves on only when one did not take it. */
  private async forwardPut (owners: readonly string[], request: KvRequest): Promise<DvvSet> {
    const order = [...owners.filter(m => this.isUp(m)), ...owners.filter(m => !this.isUp(m))]
    const failures: string[] = []
    let busy = false
    for (const owner of order) {
      try {
        // The owner needs its own deadline for the replicas, and the way there and back.
        const response = await this.call(owner, request, FORWARD_DEADLINES * this.timeoutMs)
        if (response.type === 'put') return response.object
        throw new ShoalError(`unexpected ${response.type} response to a put`)
      } catch (err) {
        const e = err as Error
        // Only a request that surely was not served may go to the next owner (unreachable, not an
        // owner, or refused unserved by a busy owner): a retried put after a timeout could write
        // the value twice.
        if (!NOT_SERVED.has(e.name)) throw e
        failures.push(`${owner}: ${describe(e)}`)
        busy ||= e.name === 'OverloadedError'
      }
    }
    // Busy is what to say when an owner was: the write may be retried, and sending it to a
    // member that is not an owner would only add to the load.
    const why = `(${failures.join('; ')})`
    throw busy ? new OverloadedError(`every owner of the key that could be reached is busy: nothing was written ${why}`) : new UnavailableError(`no member of the key's preflist could coordinate the write ${why}`)
  }

  /** Reports how long a foreground request took, failed or not. */
  private async timed<T> (op: 'get' | 'put' | 'delete', request: Promise<T>): Promise<T> {
    const started = this.env.now()
    const clock = this.metricsClock()
    let error: Error | undefined
    try {
      return await request
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err))
      throw err
    } finally {
      this.onLatency(this.env.now() - started)
      this.onRequest(op, this.metricsClock() - clock, error)
    }
  }

  private async readReplica (member: string, key: Uint8Array): Promise<DvvSet | undefined> {
    if (member === this.self) return await this.replica.get(key)
    const response = await this.call(member, { type: 'read', key })
    if (response.type !== 'read') throw new ShoalError(`unexpected ${response.type} response to a read`)
    return response.object
  }

  private repair (key: Uint8Array, core: GetCore): void {
    for (const { member, object } of core.repairs()) {
      this.onReadRepair(member)
      const write = member === this.self
        ? this.replica.merge(key, object)
        : this.call(member, { type: 'write', key, object })
      // A failed repair is retried by the next read or by anti-entropy.
      write.catch(() => {})
    }
  }

  /** One request to another member; an error response becomes a rejection with the same name. */
  private async call (member: string, request: KvRequest, timeoutMs: number = this.timeoutMs): Promise<KvResponse> {
    let response: KvResponse
    try {
      response = await this.transport(member, request, timeoutMs)
    } catch (err) {
      this.observe(member, false)
      throw err
    }
    this.observe(member, true)
    if (response.type === 'error') throw remoteError(response.name, response.message)
    return response
  }

  /**
   * Waits for a request's core: `answered` resolves once the core has decided, `settled` once
   * every replica has answered. At the deadline every replica still silent counts as failed, so
   * the core decides and the caller gets its typed error (how many answered of how many needed).
   */
  private deadline (core: RequestCore): { answered: Promise<void>, settled: Promise<void>, check: () => void } {
    let answer!: () => void
    let settle!: () => void
    const answered = new Promise<void>(resolve => { answer = resolve })
    const settled = new Promise<void>(resolve => { settle = resolve })
    const check = (): void => {
      if (core.outcome().done) answer()
      if (core.settled()) {
        answer()
        settle()
        timer.cancel()
      }
    }
    const timer = this.env.setTimer(this.timeoutMs, () => {
      for (const member of core.pending()) core.expire(member, `no answer within ${this.timeoutMs} ms`)
      answer()
      settle()
    })
    return { answered, settled, check }
  }

  private checkKey (key: Uint8Array): void {
    if (!(key instanceof Uint8Array) || key.byteLength === 0 || key.byteLength > this.limits.maxKeyBytes) {
      throw new InvalidArgumentError(`a key must be 1 to ${this.limits.maxKeyBytes} bytes`)
    }
  }

  /** R and W are checked against N, not against the members of the moment. */
  private quorum (name: 'r' | 'w', value: number, ring: Ring): number {
    if (!Number.isInteger(value) || value < 1 || value > ring.n) {
      throw new InvalidArgumentError(`${name} must be an integer from 1 to ${ring.n} (N), got ${value}`)
    }
    return value
  }
}

/** The error of a failed outcome; after its deadline a core has always decided. */
function undecided (outcome: { readonly done: false } | { readonly done: true, readonly ok: false, readonly error: Error }): Error {
  return outcome.done ? outcome.error : new ShoalError('request undecided after its deadline')
}

function describe (err: Error): string {
  return `${err.name}: ${err.message}`
}

