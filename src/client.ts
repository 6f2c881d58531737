import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { toBytes } from './core/bytes.ts'
import { SERVE_DEADLINES } from './core/coordinator/coordinator.ts'
import { decodeContext, encodeContext } from './core/causality.ts'
import type { KvRequest, KvResponse } from './core/coordinator/messages.ts'
import { InvalidArgumentError, ShoalError, UnavailableError, UnreachableError, remoteError } from './core/errors.ts'
import { MemberTable } from './core/membership.ts'
import { adminCall } from './net/admin.ts'
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from './net/constants.ts'
import { decodeHeartbeat } from './net/codec.ts'
import type { AdminRequest } from './net/codec.ts'
import { Discovery } from './net/discovery.ts'
import { ClusterGossip } from './net/gossip.ts'
import { kvTransport } from './net/kv.ts'
import { checkAddresses, createShoalLibp2p } from './net/libp2p.ts'
import { parsePsk } from './net/psk.ts'
import type { ShoalLibp2p } from './net/libp2p.ts'
import { DEFAULT_CLUSTER, DEFAULT_TIMEOUT_MS, readResult } from './node.ts'
import type { GetResult, KeyValue, PutResult, ReadOptions, WriteOptions } from './node.ts'

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
}

/**
 * A client peer: joins the cluster's network and gossip to learn the members, stores nothing,
 * and is no member. Each request goes to a member, which coordinates it (or forwards it to the
 * key's preflist); when a member cannot be reached the next one is tried.
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
  private readonly libp2p: ShoalLibp2p
  private readonly gossip: ClusterGossip
  private readonly discovery: Discovery
  private readonly members = new MemberTable()
  private readonly bootstrap: readonly string[]
  private readonly bootstrapPeers: string[]
  private readonly timeoutMs: number
  private readonly privateNetwork: boolean
  private readonly send: (to: string, request: KvRequest, timeoutMs: number) => Promise<KvResponse>

  private constructor (libp2p: ShoalLibp2p, options: ClientOptions) {
    this.libp2p = libp2p
    this.timeoutMs = options.timeoutMs ?? SERVE_DEADLINES * DEFAULT_TIMEOUT_MS
    this.privateNetwork = options.psk !== undefined
    this.bootstrap = options.bootstrap
    this.bootstrapPeers = options.bootstrap.map(peerOf)
    this.send = kvTransport(libp2p)
    this.discovery = new Discovery(libp2p, { bootstrap: [...options.bootstrap] })
    this.gossip = new ClusterGossip(libp2p, options.cluster ?? DEFAULT_CLUSTER, (from, data) => {
      try {
        const { record } = decodeHeartbeat(data)
        // A member speaks only for itself.
        if (record.id === from) this.members.merge(record)
      } catch {}
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
    const libp2p = await createShoalLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      listen: [],
      bootstrap: [...options.bootstrap],
      mdns: false,
      cluster: options.cluster ?? DEFAULT_CLUSTER,
      ...(options.psk === undefined ? {} : { psk: options.psk })
    })
    const client = new ShoalClient(libp2p, options)
    try {
      await client.connect(options.bootstrap)
    } catch (err) {
      await libp2p.stop()
      throw err
    }
    client.gossip.start()
    client.discovery.start()
    return client
  }

  async put (key: string | Uint8Array, value: string | Uint8Array, options: WriteOptions = {}): Promise<PutResult> {
    const response = await this.request(putRequest(keyBytes(key), valueBytes(value), options))
    if (response.type !== 'put') throw new ShoalError(`unexpected ${response.type} response to a put`)
    return { context: encodeContext(response.object.vv) }
  }

  async get (key: string | Uint8Array, options: ReadOptions = {}): Promise<GetResult | undefined> {
    const r = checkQuorum('r', options.r)
    const response = await this.request({ type: 'get', key: keyBytes(key), ...(r === undefined ? {} : { r }) })
    if (response.type !== 'get') throw new ShoalError(`unexpected ${response.type} response to a get`)
    return readResult(response.object)
  }

  async delete (key: string | Uint8Array, options: WriteOptions = {}): Promise<void> {
    const response = await this.request(putRequest(keyBytes(key), null, options))
    if (response.type !== 'put') throw new ShoalError(`unexpected ${response.type} response to a delete`)
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
    this.discovery.stop()
    this.gossip.stop()
    await this.libp2p.stop()
  }

  /** Connects to the first bootstrap member that answers, so requests have somewhere to go. */
  private async connect (addrs: readonly string[]): Promise<void> {
    const failures: string[] = []
    let refused = 0
    for (const addr of addrs) {
      try {
        await this.libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(this.timeoutMs) })
        return
      } catch (err) {
        failures.push(`${addr}: ${(err as Error).message}`)
        if ((err as Error).message.includes('ECONNREFUSED')) refused++
      }
    }
    // A private network's handshake fails without saying why (a reset or a timeout): say it here,
    // unless nothing even listened there.
    const hint = refused === addrs.length ? '' : this.privateNetwork ? '; is this the cluster\'s private-network key?' : '; if the cluster runs with a private-network key, give it (--psk FILE, or the psk option)'
    throw new UnreachableError(`no bootstrap member could be reached (${failures.join('; ')}${hint})`)
  }

  /** Sends to the members in turn, connected ones first; moves on only when one is unreachable. */
  private async request (request: KvRequest): Promise<KvResponse> {
    const connected = new Set(this.libp2p.getConnections().map(c => c.remotePeer.toString()))
    const known = [...new Set([...this.bootstrapPeers, ...this.members.all().filter(m => m.status !== 'left').map(m => m.id)])]
    const order = [...known.filter(id => connected.has(id)), ...known.filter(id => !connected.has(id))]
    const failures: string[] = []
    for (const member of order) {
      let response: KvResponse
      try {
        response = await this.send(member, request, this.timeoutMs)
      } catch (err) {
        const e = err as Error
        if (e.name !== 'UnreachableError') throw e
        failures.push(`${member}: ${e.message}`)
        continue
      }
      if (response.type === 'error') throw remoteError(response.name, response.message)
      return response
    }
    throw new UnavailableError(`no member could be reached (${failures.join('; ')})`)
  }
}

/** Starts a client peer. See {@link ShoalClient}. */
export async function createClient (options: ClientOptions): Promise<ShoalClient> {
  return await ShoalClient.create(options)
}

function putRequest (key: Uint8Array, value: Uint8Array | null, options: WriteOptions): KvRequest {
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
