import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { toBytes } from './core/bytes.ts'
import { SERVE_DEADLINES } from './core/coordinator/coordinator.ts'
import { decodeContext, encodeContext } from './core/causality.ts'
import type { KvRequest, KvResponse } from './core/coordinator/messages.ts'
import { InvalidArgumentError, ShoalError, UnavailableError, UnreachableError, remoteError } from './core/errors.ts'
import { MemberTable } from './core/membership.ts'
import { adminCall } from './net/admin.ts'
import { decodeHeartbeat } from './net/codec.ts'
import type { AdminRequest } from './net/codec.ts'
import { Discovery } from './net/discovery.ts'
import { ClusterGossip } from './net/gossip.ts'
import { kvTransport } from './net/kv.ts'
import { createShoalLibp2p } from './net/libp2p.ts'
import type { ShoalLibp2p } from './net/libp2p.ts'
import { DEFAULT_CLUSTER, DEFAULT_TIMEOUT_MS, readResult } from './node.ts'
import type { GetResult, KeyValue, PutResult, ReadOptions, WriteOptions } from './node.ts'

export interface ClientOptions {
  /** Multiaddrs (with `/p2p/<peer id>`) of one or more members. */
  readonly bootstrap: readonly string[]
  readonly cluster?: string
  /** Deadline of one request, forwarding inside the cluster included. Default 15 000 ms. */
  readonly timeoutMs?: number
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
  private readonly send: (to: string, request: KvRequest, timeoutMs: number) => Promise<KvResponse>

  private constructor (libp2p: ShoalLibp2p, options: ClientOptions) {
    this.libp2p = libp2p
    this.timeoutMs = options.timeoutMs ?? SERVE_DEADLINES * DEFAULT_TIMEOUT_MS
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
    const libp2p = await createShoalLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      listen: [],
      bootstrap: [...options.bootstrap],
      mdns: false,
      cluster: options.cluster ?? DEFAULT_CLUSTER
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
    const response = await this.request(putRequest(toBytes(key), toBytes(value), options))
    if (response.type !== 'put') throw new ShoalError(`unexpected ${response.type} response to a put`)
    return { context: encodeContext(response.object.vv) }
  }

  async get (key: string | Uint8Array, options: ReadOptions = {}): Promise<GetResult | undefined> {
    const response = await this.request({ type: 'get', key: toBytes(key), ...(options.r === undefined ? {} : { r: options.r }) })
    if (response.type !== 'get') throw new ShoalError(`unexpected ${response.type} response to a get`)
    return readResult(response.object)
  }

  async delete (key: string | Uint8Array, options: WriteOptions = {}): Promise<void> {
    const response = await this.request(putRequest(toBytes(key), null, options))
    if (response.type !== 'put') throw new ShoalError(`unexpected ${response.type} response to a delete`)
  }

  /** The copy held by the first bootstrap member itself: no quorum, no repair (for operators and tests). */
  async getLocal (key: string | Uint8Array): Promise<GetResult | undefined> {
    const response = await this.send(this.bootstrapPeers[0] as string, { type: 'read', key: toBytes(key) }, this.timeoutMs)
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
    for (const addr of addrs) {
      try {
        await this.libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(this.timeoutMs) })
        return
      } catch (err) {
        failures.push(`${addr}: ${(err as Error).message}`)
      }
    }
    throw new UnreachableError(`no bootstrap member could be reached (${failures.join('; ')})`)
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
  return {
    type: 'put',
    key,
    value,
    context: options.context === undefined ? new Map() : decodeContext(options.context),
    ...(options.w === undefined ? {} : { w: options.w })
  }
}

/** The peer id a bootstrap multiaddr names (`.../p2p/<id>`). */
function peerOf (addr: string): string {
  const match = typeof addr === 'string' ? /\/p2p\/([^/]+)$/.exec(addr) : null
  if (match?.[1] === undefined) throw new InvalidArgumentError(`bootstrap address ${JSON.stringify(addr)} must end with /p2p/<peer id>`)
  return match[1]
}
