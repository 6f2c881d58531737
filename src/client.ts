import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { toBytes } from './core/bytes.ts'
import { Coordinator, DEFAULT_QUORUM, NOT_SERVED, SERVE_DEADLINES } from './core/coordinator/coordinator.ts'
import type { LocalReplica } from './core/coordinator/coordinator.ts'
import { decodeContext, encodeContext, values } from './core/causality.ts'
import { refuseReserved } from './core/crdt/typed-value.ts'
import { KvOps, checkResolver, resolveRead } from './kv-ops.ts'
import type { Resolver, ShoalCounter, ShoalSet, UpdateFunction, UpdateOptions, UpdateResult } from './kv-ops.ts'
import type { DvvSet } from './core/causality.ts'
import type { KvRequest, KvResponse } from './core/coordinator/messages.ts'
import { InvalidArgumentError, OverloadedError, ShoalError, UnavailableError, UnreachableError, remoteError } from './core/errors.ts'
import { MembershipView } from './core/membership-agent.ts'
import { DEFAULT_N, DEFAULT_PARTITIONS } from './core/ring.ts'
import { adminCall } from './net/admin.ts'
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from './net/constants.ts'
import { decodeHeartbeat } from './net/codec.ts'
import type { AdminRequest } from './net/codec.ts'
import { Discovery } from './net/discovery.ts'
import { ClusterGossip } from './net/gossip.ts'
import { kvTransport } from './net/kv.ts'
import { pullMembers } from './net/members.ts'
import { recordSigner } from './net/record-signer.ts'
import { checkAddresses, createShoalLibp2p } from './net/libp2p.ts'
import { parsePsk } from './net/psk.ts'
import type { ShoalLibp2p } from './net/libp2p.ts'
import { DEFAULT_CLUSTER, DEFAULT_TIMEOUT_MS, readResult, realEnv } from './node.ts'
import type { GetResult, KeyValue, MemberState, NodeStatus, PutResult, ReadOptions, WriteOptions } from './node.ts'

export interface ClientOptions {
  /** Multiaddrs (with `/p2p/<peer id>`) of one or more members. */
  readonly bootstrap: readonly string[]
  readonly cluster?: string
  /** Deadline of one request, forwarding inside the cluster included. Default 15 000 ms. */
  readonly timeoutMs?: number
  /**
   * The cluster's private-network key file's bytes, when its nodes run with one: without it a
   * client cannot even connect. A malformed key is an InvalidArgumentError before anything starts.
   */
  readonly psk?: Uint8Array
  /**
   * Who coordinates requests. 'client' (the default): the client keeps the member table it learns
   * from gossip, reads the key's replicas itself and sends writes straight to a member of the
   * key's preference list, one hop fewer than 'server', where a member coordinates every request.
   */
  readonly routing?: Routing
  /** Merges siblings for this client's update() calls (a call's own resolver wins). None by default. */
  readonly resolver?: Resolver
}

export type Routing = 'client' | 'server'

/** A member as a client peer sees it. */
export interface ClientMember {
  readonly peerId: string
  readonly state: MemberState
  readonly addrs: readonly string[]
  /** Partitions this member is a primary of. */
  readonly partitions: number
}

/**
 * A client peer: joins the cluster's network and gossip to learn the members, stores nothing,
 * and is no member. With client routing (the default) it computes each key's preference list
 * itself, reads the replicas and merges their copies (Dynamo §6.4), and hands writes to a live
 * member of the preference list; with server routing each request goes to a member, which
 * coordinates it. Either way, when a member cannot be reached the next one is tried.
 *
 * @example
 * ```ts
 * const client = await createClient({ bootstrap: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...'] })
 * await client.put('greeting', 'hello')
 * const read = await client.get('greeting')
 * await client.stop()
 * ```
 */
export class ShoalClient implements KeyValue {
  /** How requests are coordinated: see {@link ClientOptions.routing}. */
  readonly routing: Routing
  private readonly libp2p: ShoalLibp2p
  private readonly gossip: ClusterGossip
  private readonly discovery: Discovery
  private readonly view: MembershipView
  private readonly coordinator: Coordinator
  private readonly bootstrap: readonly string[]
  private readonly bootstrapPeers: string[]
  private readonly timeoutMs: number
  private readonly send: (to: string, request: KvRequest, timeoutMs: number) => Promise<KvResponse>
  private readonly abort = new AbortController()
  private readonly counts = { routed: 0, forwarded: 0 }
  /** update(), counters and sets (src/kv-ops.ts), with this client instance's own CRDT actor. */
  private readonly ops: KvOps

  private constructor (libp2p: ShoalLibp2p, options: ClientOptions, joined: Joined) {
    this.libp2p = libp2p
    this.routing = options.routing ?? 'client'
    this.timeoutMs = options.timeoutMs ?? SERVE_DEADLINES * DEFAULT_TIMEOUT_MS
    this.bootstrap = options.bootstrap
    this.bootstrapPeers = options.bootstrap.map(peerOf)
    this.send = kvTransport(libp2p, { signal: this.abort.signal })
    this.ops = new KvOps({
      get: async (key, o) => await this.get(key, o),
      write: async (key, value, o) => putResult(await this.write(keyBytes(key), value === null ? null : valueBytes(value), o))
    }, options.resolver)
    this.discovery = new Discovery(libp2p, { bootstrap: [...options.bootstrap] })
    const { n, r, w } = joined.replication
    this.view = new MembershipView({
      env: realEnv,
      ring: { n, partitions: DEFAULT_PARTITIONS },
      pull: async (member) => await pullMembers(libp2p, member, this.timeoutMs, { signal: this.abort.signal }),
      // Records are checked as members check them: a peer cannot speak for another.
      signer: recordSigner(joined.privateKey),
      onChange: (ids) => { this.membersChanged(ids) }
    })
    this.gossip = new ClusterGossip(libp2p, options.cluster ?? DEFAULT_CLUSTER, (from, data) => {
      try {
        this.view.receive(from, decodeHeartbeat(data))
      } catch {}
    })
    // The client's requests to replicas each get one member's deadline; a write handed to an
    // owner waits for that owner's own (FORWARD_DEADLINES): together one request's deadline.
    this.coordinator = new Coordinator({
      self: libp2p.peerId.toString(),
      env: realEnv,
      replica: NO_REPLICA,
      transport: this.send,
      ring: () => this.view.ring(),
      isUp: (member) => this.view.isUp(member),
      observe: (member, ok) => { this.view.observe(member, ok) },
      r,
      w,
      timeoutMs: Math.max(1, Math.floor(this.timeoutMs / SERVE_DEADLINES))
    })
  }

  static async create (options: ClientOptions): Promise<ShoalClient> {
    if (!Array.isArray(options?.bootstrap) || options.bootstrap.length === 0) {
      throw new InvalidArgumentError('a client needs at least one bootstrap address of a member')
    }
    for (const addr of options.bootstrap) peerOf(addr)
    checkAddresses({ bootstrap: options.bootstrap })
    if (options.psk !== undefined) parsePsk(options.psk)
    if (options.timeoutMs !== undefined && (!Number.isFinite(options.timeoutMs) || options.timeoutMs <= 0)) {
      throw new InvalidArgumentError(`timeoutMs must be a positive number, got ${options.timeoutMs}`)
    }
    checkResolver(options.resolver)
    if (options.routing !== undefined && options.routing !== 'client' && options.routing !== 'server') {
      throw new InvalidArgumentError(`routing must be 'client' or 'server', got ${JSON.stringify(options.routing)}`)
    }
    const privateKey = await generateKeyPair('Ed25519')
    const libp2p = await createShoalLibp2p({
      privateKey,
      listen: [],
      bootstrap: [...options.bootstrap],
      mdns: false,
      cluster: options.cluster ?? DEFAULT_CLUSTER,
      ...(options.psk === undefined ? {} : { psk: options.psk })
    })
    let client: ShoalClient
    try {
      const timeoutMs = options.timeoutMs ?? SERVE_DEADLINES * DEFAULT_TIMEOUT_MS
      const member = await connect(libp2p, options.bootstrap, timeoutMs, options.psk !== undefined)
      if (options.routing === 'server') {
        // Members coordinate: the client needs neither the cluster's N, R and W nor its table now.
        client = new ShoalClient(libp2p, options, { privateKey, replication: replicationOf(undefined) })
      } else {
        const status = await adminCall(libp2p, member, { op: 'status' }, timeoutMs) as Partial<NodeStatus>
        client = new ShoalClient(libp2p, options, { privateKey, replication: replicationOf(status) })
        // The member table before the first request, so that it can already be routed here.
        await client.view.refresh(peerOf(member))
      }
    } catch (err) {
      await libp2p.stop()
      throw err
    }
    client.gossip.start()
    client.discovery.start()
    return client
  }

  async put (key: string | Uint8Array, value: string | Uint8Array, options: WriteOptions = {}): Promise<PutResult> {
    const bytes = valueBytes(value)
    refuseReserved(bytes)
    return putResult(await this.write(keyBytes(key), bytes, options))
  }

  /**
   * Reads, resolves siblings, applies `fn` and writes back with the read's context; see
   * {@link KvOps.update}.
   *
   * @example
   * ```ts
   * const client = await createClient({ bootstrap, resolver: lastWriterWins })
   * await client.update('greeting', current => `${current === undefined ? '' : new TextDecoder().decode(current)}!`)
   * ```
   */
  async update (key: string | Uint8Array, fn: UpdateFunction, options: UpdateOptions = {}): Promise<UpdateResult> {
    return await this.ops.update(key, fn, options)
  }

  /** The PN-counter at `key` (see {@link ShoalCounter}): `await client.counter('hits').increment()`. */
  counter (key: string | Uint8Array): ShoalCounter {
    return this.ops.counter(key)
  }

  /** The add-wins set at `key` (see {@link ShoalSet}): `await client.set('tags').add('red')`. */
  set (key: string | Uint8Array): ShoalSet {
    return this.ops.set(key)
  }

  async get (key: string | Uint8Array, options: ReadOptions = {}): Promise<GetResult | undefined> {
    const r = checkQuorum('r', options.r)
    const bytes = keyBytes(key)
    checkResolver(options.resolver)
    if (this.routed()) {
      this.counts.routed++
      return resolveRead(readResult(await this.coordinator.get(bytes, r === undefined ? {} : { r })), options.resolver)
    }
    const response = await this.request({ type: 'get', key: bytes, ...(r === undefined ? {} : { r }) })
    if (response.type !== 'get') throw new ShoalError(`unexpected ${response.type} response to a get`)
    return resolveRead(readResult(response.object), options.resolver)
  }

  async delete (key: string | Uint8Array, options: WriteOptions = {}): Promise<void> {
    await this.write(keyBytes(key), null, options)
  }

  /** The members this client knows, with their state as it sees them (empty with server routing until gossip arrives). */
  members (): ClientMember[] {
    const ring = this.view.ring()
    return this.view.records().map(record => ({
      peerId: record.id,
      state: record.status === 'leaving' || record.status === 'left' ? record.status : memberState(this.view.liveness(record.id)),
      addrs: record.addrs,
      partitions: ring.replicaCount(record.id)
    }))
  }

  /** The key's preference list as this client sees it: the members holding its N replicas. */
  owners (key: string | Uint8Array): string[] {
    const ring = this.view.ring()
    return [...ring.owners(ring.partitionOf(keyBytes(key)))]
  }

  /** The copy held by the first bootstrap member itself: no quorum, no repair (for operators and tests). */
  async getLocal (key: string | Uint8Array): Promise<GetResult | undefined> {
    const response = await this.send(this.bootstrapPeers[0] as string, { type: 'read', key: keyBytes(key) }, this.timeoutMs)
    if (response.type === 'error') throw remoteError(response.name, response.message)
    if (response.type !== 'read') throw new ShoalError(`unexpected ${response.type} response to a read`)
    return readResult(response.object)
  }

  /** An operator command (status, leave, remove) to the first bootstrap member; returns its JSON answer. */
  async admin (request: AdminRequest): Promise<unknown> {
    return await adminCall(this.libp2p, this.bootstrap[0] as string, request, this.timeoutMs)
  }

  async stop (): Promise<void> {
    this.abort.abort()
    this.discovery.stop()
    this.gossip.stop()
    await this.libp2p.stop()
  }

  /**
   * Requests this client routed itself (reads it coordinated, writes it handed to a preflist
   * member) and requests it sent to a member to coordinate (server routing, or a fallback when
   * no owner could take a write).
   */
  get stats (): { readonly routed: number, readonly forwarded: number } {
    return { ...this.counts }
  }

  /** Whether this request is routed here: client routing, and a ring to route with. */
  private routed (): boolean {
    return this.routing === 'client' && this.view.ring().members.length > 0
  }

  private async write (key: Uint8Array, value: Uint8Array | null, options: WriteOptions): Promise<DvvSet> {
    const request = putRequest(key, value, options)
    if (this.routed()) {
      this.counts.routed++
      try {
        return await this.coordinator.put(key, value, { context: request.context, ...(request.w === undefined ? {} : { w: request.w }) })
      } catch (err) {
        // Handed to no owner (each unreachable or, with a newer ring than ours, no owner at all):
        // nothing was written, so a member may coordinate it with its own view of the ring.
        if ((err as Error).name !== 'UnavailableError') throw err
      }
    }
    const response = await this.request(request)
    if (response.type !== 'put') throw new ShoalError(`unexpected ${response.type} response to a ${value === null ? 'delete' : 'put'}`)
    return response.object
  }

  /**
   * Members new or changed in the table: their addresses go to the peer store, so requests can
   * reach them, and a connection opens ahead of the first request. Unlike members, a client
   * dials at once: no member ever dials a client.
   */
  private membersChanged (ids: readonly string[]): void {
    for (const id of ids) {
      const record = this.view.member(id)
      if (record === undefined || record.status === 'left') continue
      let peer: PeerId
      const addrs: Multiaddr[] = []
      try {
        peer = peerIdFromString(id)
        for (const addr of record.addrs) addrs.push(multiaddr(addr.replace(/\/p2p\/[^/]+$/, '')))
      } catch {
        continue
      }
      this.libp2p.peerStore.merge(peer, { multiaddrs: addrs })
        .then(async () => {
          if (this.abort.signal.aborted || this.libp2p.getConnections(peer).length > 0) return
          await this.libp2p.dial(peer, { signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.timeoutMs)]) })
        })
        // Not reachable now: the request that needs it dials again, and fails over if it must.
        .catch(() => {})
    }
  }

  /** Sends to the members in turn, connected ones first; moves on only when one did not serve it (unreachable, or busy). */
  private async request (request: KvRequest): Promise<KvResponse> {
    this.counts.forwarded++
    const connected = new Set(this.libp2p.getConnections().map(c => c.remotePeer.toString()))
    const known = [...new Set([...this.bootstrapPeers, ...this.view.records().filter(m => m.status !== 'left').map(m => m.id)])]
    const order = [...known.filter(id => connected.has(id)), ...known.filter(id => !connected.has(id))]
    const failures: string[] = []
    let busy = false
    for (const member of order) {
      let response: KvResponse
      try {
        response = await this.send(member, request, this.timeoutMs)
      } catch (err) {
        const e = err as Error
        if (!NOT_SERVED.has(e.name)) throw e
        failures.push(`${member}: ${e.message}`)
        busy ||= e.name === 'OverloadedError'
        continue
      }
      if (response.type !== 'error') return response
      if (!NOT_SERVED.has(response.name)) throw remoteError(response.name, response.message)
      failures.push(`${member}: ${response.name}: ${response.message}`)
      busy ||= response.name === 'OverloadedError'
    }
    const why = `(${failures.join('; ')})`
    throw busy ? new OverloadedError(`every member that could be reached is busy: the request was not served ${why}`) : new UnavailableError(`no member could be reached ${why}`)
  }
}

/** What a client learns from the member it joins through. */
interface Joined {
  readonly privateKey: PrivateKey
  readonly replication: { readonly n: number, readonly r: number, readonly w: number }
}

/** A client holds no data: the coordinator never reads or writes locally, since the client owns no key. */
const NO_REPLICA: LocalReplica = {
  actorId: '',
  get: async () => { throw new ShoalError('a client peer holds no replica') },
  modify: async () => { throw new ShoalError('a client peer holds no replica') },
  merge: async () => { throw new ShoalError('a client peer holds no replica') },
  putHint: async () => { throw new ShoalError('a client peer holds no replica') }
}

/**
 * Connects to the first bootstrap member that answers, so requests have somewhere to go; returns
 * its address.
 */
async function connect (libp2p: ShoalLibp2p, addrs: readonly string[], timeoutMs: number, privateNetwork: boolean): Promise<string> {
  const failures: string[] = []
  let refused = 0
  let otherPeer = 0
  for (const addr of addrs) {
    try {
      await libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(timeoutMs) })
      return addr
    } catch (err) {
      const message = (err as Error).message
      failures.push(`${addr}: ${message}`)
      if (message.includes('ECONNREFUSED')) refused++
      // The noise handshake completed with another peer than the address names.
      else if (message.includes('does not match expected remote identity key')) otherPeer++
    }
  }
  // A private network's handshake fails without saying why (a reset or a timeout): say it here,
  // unless nothing even listened there, or the peer there proved to be another one.
  const hint = refused + otherPeer === addrs.length
    ? (otherPeer > 0 ? '; another peer listens there: take the address with its /p2p/ id from `shoal status` or the node\'s output' : '')
    : privateNetwork ? '; is this the cluster\'s private-network key?' : '; if the cluster runs with a private-network key, give it (--psk FILE, or the psk option)'
  throw new UnreachableError(`no bootstrap member could be reached (${failures.join('; ')}${hint})`)
}

/** N, R and W as the member reports them; a member too old to say gets Dynamo's 3, 2, 2. */
function replicationOf (status: Partial<NodeStatus> | undefined): Joined['replication'] {
  const given = status?.replication
  const valid = (value: unknown, max: number): value is number => Number.isInteger(value) && (value as number) >= 1 && (value as number) <= max
  if (given !== undefined && valid(given.n, MAX_QUORUM) && valid(given.r, given.n) && valid(given.w, given.n)) return given
  return { n: DEFAULT_N, r: DEFAULT_QUORUM, w: DEFAULT_QUORUM }
}

function memberState (liveness: 'alive' | 'suspect' | 'down'): MemberState {
  return liveness === 'alive' ? 'up' : liveness
}

/** Starts a client peer. See {@link ShoalClient}. */
export async function createClient (options: ClientOptions): Promise<ShoalClient> {
  return await ShoalClient.create(options)
}

/** What a put tells its caller: the context, and how many live siblings the written object has. */
function putResult (object: DvvSet): PutResult {
  return { context: encodeContext(object.vv), siblings: values(object).length }
}

function putRequest (key: Uint8Array, value: Uint8Array | null, options: WriteOptions): Extract<KvRequest, { type: 'put' }> {
  checkQuorum('w', options.w)
  return {
    type: 'put',
    key,
    value,
    context: options.context === undefined ? new Map() : decodeContext(options.context),
    ...(options.w === undefined ? {} : { w: options.w })
  }
}

/**
 * A key as bytes, checked here so a bad one fails as InvalidArgumentError before it is sent:
 * a member's decoder drops an oversized frame without a word.
 */
function keyBytes (key: string | Uint8Array): Uint8Array {
  if (typeof key !== 'string' && !(key instanceof Uint8Array)) throw new InvalidArgumentError('a key is a string or a Uint8Array')
  const bytes = toBytes(key)
  if (bytes.byteLength === 0 || bytes.byteLength > MAX_KEY_BYTES) throw new InvalidArgumentError(`a key must be 1 to ${MAX_KEY_BYTES} bytes, got ${bytes.byteLength}`)
  return bytes
}

/** A value as bytes; members apply their own, possibly lower, limit (maxValueBytes). */
function valueBytes (value: string | Uint8Array): Uint8Array {
  if (typeof value !== 'string' && !(value instanceof Uint8Array)) throw new InvalidArgumentError('a value is a string or a Uint8Array')
  const bytes = toBytes(value)
  if (bytes.byteLength > MAX_VALUE_BYTES) throw new InvalidArgumentError(`value is ${bytes.byteLength} bytes, no member accepts more than ${MAX_VALUE_BYTES}`)
  return bytes
}

/** No member runs with N above 16 (createNode refuses it), so no R or W above it can be met. */
const MAX_QUORUM = 16

/**
 * R or W must be a positive integer; the member checks it against its N. Checked here because
 * 0 on the wire means "the member's default": a W of 0 would be sent as no W at all.
 */
function checkQuorum (name: 'r' | 'w', value: number | undefined): number | undefined {
  if (value !== undefined && (!Number.isInteger(value) || value < 1 || value > MAX_QUORUM)) {
    throw new InvalidArgumentError(`${name} must be an integer from 1 to N, got ${value}`)
  }
  return value
}

/** The peer id a bootstrap multiaddr names (`.../p2p/<id>`). */
function peerOf (addr: string): string {
  const match = typeof addr === 'string' ? /\/p2p\/([^/]+)$/.exec(addr) : null
  if (match?.[1] === undefined) throw new InvalidArgumentError(`bootstrap address ${JSON.stringify(addr)} must end with /p2p/<peer id>`)
  return match[1]
}
