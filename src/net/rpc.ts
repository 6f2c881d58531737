/**
 * Request/response over libp2p streams, one request per stream (DESIGN.md "Requests"): the client
 * opens a stream for the protocol, writes one length-prefixed message, half-closes, reads one
 * length-prefixed reply; the server reads one message, handles it, writes the reply and closes.
 * Every call has a deadline and every inbound stream a timeout.
 *
 * The client's errors say whether the request can have been handled:
 * - UnreachableError: it was not sent (no connection, no stream, the protocol refused, or the
 *   deadline passed before it was written out). Safe to send elsewhere.
 * - TimeoutError: the deadline passed after it was sent. It may or may not have been handled.
 * - NoReplyError: the stream ended or was reset after it was sent, without a reply. It may or
 *   may not have been handled (the server's own timeout, a frame the server refused, a crash).
 * - MalformedDataError: a reply came but does not decode or is too big.
 *
 * @example
 * ```ts
 * const server = new RpcServer(libp2p, {   // or a service's components
 *   protocol: '/echo/1.0.0', decode: b => b, encode: b => b, handle: async (req) => req
 * })
 * await server.start()
 * const reply = await rpcCall(other, libp2p.peerId, '/echo/1.0.0',   // or a connection manager
 *   toBytes('hi'), { encode: b => b, decode: b => b }, { timeoutMs: 1000, maxBytes: 1024 })
 * ```
 */
import { AbortError, isPeerId } from '@libp2p/interface'
import type {
  AbortOptions, ComponentLogger, DialTarget, Libp2p, Logger, PeerId, Startable, Stream,
  StreamHandler, StreamHandlerOptions
} from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { LengthPrefixedStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { InvalidArgumentError, MalformedDataError, ShoalError, TimeoutError, UnreachableError } from '../core/errors.ts'

/** The stream closed or was reset after the request was sent, with no reply: it may or may not have been handled. */
export class NoReplyError extends ShoalError {
  override name = 'NoReplyError'
}

/** The part of libp2p's Registrar a server uses; libp2p's own satisfies it. */
export interface RpcRegistrar {
  handle: (protocol: string, handler: StreamHandler, options?: StreamHandlerOptions) => Promise<void>
  unhandle: (protocol: string, options?: AbortOptions) => Promise<void>
}

/** The part of libp2p's ConnectionManager a client uses; libp2p's own satisfies it. */
export interface RpcConnectionManager {
  openStream: (peer: DialTarget, protocol: string, options?: AbortOptions & { maxOutboundStreams?: number }) => Promise<Stream>
}

/** What the protocol services ask of libp2p: its components, as a libp2p service gets them. */
export interface RpcComponents {
  registrar: RpcRegistrar
  connectionManager: RpcConnectionManager
  logger: ComponentLogger
}

/**
 * Where a server registers: a libp2p service's components, or the running node itself (whose
 * `handle`/`unhandle` are the registrar's behind its API).
 */
export type RpcHost = Pick<RpcComponents, 'registrar' | 'logger'> | Pick<Libp2p, 'handle' | 'unhandle' | 'logger'>

/**
 * What a client opens streams with: libp2p's connection manager, or the running node itself
 * (whose `dialProtocol` is the connection manager's `openStream`).
 */
export type RpcDialer = RpcConnectionManager | Pick<Libp2p, 'dialProtocol'>

// `in`, not a property read: libp2p's components object throws on reading a component it lacks.
function registrarOf (host: RpcHost): RpcRegistrar {
  if (!('handle' in host)) return host.registrar
  return {
    handle: async (protocol, handler, options) => { await host.handle(protocol, handler, options) },
    unhandle: async (protocol, options) => { await host.unhandle(protocol, options) }
  }
}

async function openStream (dialer: RpcDialer, peer: DialTarget, protocol: string, options: AbortOptions & { maxOutboundStreams?: number }): Promise<Stream> {
  if ('dialProtocol' in dialer) return await dialer.dialProtocol(peer, protocol, options)
  return await dialer.openStream(peer, protocol, options)
}

export interface RpcCodec<Req, Res> {
  encode: (request: Req) => Uint8Array
  /** Untrusted bytes: throws MalformedDataError on anything wrong. */
  decode: (bytes: Uint8Array) => Res
}

export interface RpcServerInit<Req, Res> {
  protocol: string
  /** Untrusted bytes: a throw aborts the stream. */
  decode: (bytes: Uint8Array) => Req
  encode: (response: Res) => Uint8Array
  /**
   * Answers one request. A throw aborts the stream (the caller sees NoReplyError), so services
   * that can answer with a typed error should. `signal` aborts at the stream's timeout, or
   * when the caller resets the stream (its own deadline passed, or it gave up).
   */
  handle: (request: Req, from: PeerId, options: { signal: AbortSignal }) => Promise<Res>
  /** From the stream's arrival to the reply written; then the stream is aborted. Default 5000. */
  timeoutMs?: number
  /** Largest request accepted, in bytes. Default 1 MiB. */
  maxBytes?: number
  /** Streams of this protocol open at once per connection. Default 32 (libp2p's). */
  maxInboundStreams?: number
  maxOutboundStreams?: number
  /** The logger's component name, e.g. 'shoal:kv'. Default 'shoal:rpc'. */
  logName?: string
}

export interface RpcCallOptions {
  /** The whole call: stream opening, request, reply. */
  timeoutMs: number
  /** Largest reply accepted, in bytes. */
  maxBytes: number
  /** The caller's own abort: the call rejects with the signal's reason. */
  signal?: AbortSignal
  /** Outbound streams of this protocol per connection, for a peer that does not serve it. */
  maxOutboundStreams?: number
  /** Queues the call while the peer already has as many calls in flight as the limiter allows. */
  limiter?: StreamLimiter
}

const DEFAULT_TIMEOUT_MS = 5_000
const DEFAULT_MAX_BYTES = 1024 * 1024
const DEFAULT_MAX_INBOUND_STREAMS = 32
const DEFAULT_MAX_OUTBOUND_STREAMS = 64
/** The longest varint length prefix. */
const LENGTH_PREFIX_BYTES = 10

/**
 * Serves one protocol: each inbound stream carries one request. A frame that does not decode, is
 * too big, or does not arrive and get its reply within `timeoutMs` aborts that stream with the
 * error; nothing a peer sends can throw out of the handler or leave a rejection unhandled.
 */
export class RpcServer<Req, Res> implements Startable {
  readonly protocol: string
  private readonly registrar: RpcRegistrar
  private readonly log: Logger
  private readonly decode: (bytes: Uint8Array) => Req
  private readonly encode: (response: Res) => Uint8Array
  private readonly handle: (request: Req, from: PeerId, options: { signal: AbortSignal }) => Promise<Res>
  private readonly timeoutMs: number
  private readonly maxBytes: number
  private readonly maxInboundStreams: number
  private readonly maxOutboundStreams: number
  private readonly streams = new Set<Stream>()
  private started = false

  constructor (host: RpcHost, init: RpcServerInit<Req, Res>) {
    this.protocol = init.protocol
    this.registrar = registrarOf(host)
    this.log = host.logger.forComponent(init.logName ?? 'shoal:rpc')
    this.decode = init.decode
    this.encode = init.encode
    this.handle = init.handle
    this.timeoutMs = init.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.maxBytes = init.maxBytes ?? DEFAULT_MAX_BYTES
    this.maxInboundStreams = init.maxInboundStreams ?? DEFAULT_MAX_INBOUND_STREAMS
    this.maxOutboundStreams = init.maxOutboundStreams ?? DEFAULT_MAX_OUTBOUND_STREAMS
  }

  readonly [Symbol.toStringTag] = 'shoal:rpc-server'

  /** Registers the protocol's handler. Calling it again while started does nothing. */
  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    try {
      await this.registrar.handle(this.protocol, this.onStream, {
        maxInboundStreams: this.maxInboundStreams,
        maxOutboundStreams: this.maxOutboundStreams
      })
    } catch (err) {
      this.started = false
      throw err
    }
  }

  /** Unregisters the handler and aborts the streams still being served. Safe to call twice. */
  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    await this.registrar.unhandle(this.protocol)
    for (const stream of this.streams) stream.abort(new ShoalError(`${this.protocol} server stopped`))
    this.streams.clear()
  }

  isStarted (): boolean {
    return this.started
  }

  private readonly onStream: StreamHandler = async (stream, connection) => {
    await this.serve(stream, connection.remotePeer)
  }

  /**
   * Serves one inbound stream from `from`; never rejects. Public so tests can drive it over an
   * in-memory stream pair.
   */
  async serve (stream: Stream, from: PeerId): Promise<void> {
    this.streams.add(stream)
    const deadline = new AbortController()
    const timer = setTimeout(() => {
      deadline.abort(new TimeoutError(`${this.protocol}: no request and reply within ${this.timeoutMs} ms`))
    }, this.timeoutMs)
    const signal = deadline.signal
    // A reset by the caller (its deadline, its abort) ends the wait for the handler too.
    const onClose = (): void => { deadline.abort(new NoReplyError(`${this.protocol} stream closed before the reply`)) }
    stream.addEventListener('close', onClose, { once: true })
    try {
      const lp = lpStream(stream, { maxDataLength: this.maxBytes, maxBufferSize: this.maxBytes + LENGTH_PREFIX_BYTES })
      const frame = await lp.read({ signal })
      const request = this.decode(frame.subarray())
      const response = await abortable(this.handle(request, from, { signal }), signal)
      await lp.write(this.encode(response), { signal })
      // Our own close ends the stream: not a reset to react to.
      stream.removeEventListener('close', onClose)
      await stream.close({ signal })
    } catch (err) {
      this.log.error('%s stream from %p aborted - %e', this.protocol, from, err)
      stream.abort(err instanceof Error ? err : new ShoalError(String(err)))
    } finally {
      clearTimeout(timer)
      stream.removeEventListener('close', onClose)
      this.streams.delete(stream)
    }
  }
}

/**
 * Sends one request on a new stream and reads its reply (see the module's comment for what each
 * error means). The deadline covers everything, stream opening included.
 */
export async function rpcCall<Req, Res> (
  dialer: RpcDialer,
  peer: DialTarget,
  protocol: string,
  request: Req,
  codec: RpcCodec<Req, Res>,
  options: RpcCallOptions
): Promise<Res> {
  const bytes = codec.encode(request)
  const who = describeTarget(peer)
  const deadline = new AbortController()
  const timer = setTimeout(() => {
    deadline.abort(new TimeoutError(`${protocol} call to ${who} passed its ${options.timeoutMs} ms deadline`))
  }, options.timeoutMs)
  const signal = options.signal === undefined ? deadline.signal : AbortSignal.any([deadline.signal, options.signal])
  let release: (() => void) | undefined
  let stream: Stream | undefined
  const finish = (): void => {
    clearTimeout(timer)
    release?.()
  }
  try {
    let lp: LengthPrefixedStream<Stream>
    try {
      release = await options.limiter?.acquire(targetKey(peer), signal)
      stream = await openStream(dialer, peer, protocol, {
        signal,
        ...(options.maxOutboundStreams === undefined ? {} : { maxOutboundStreams: options.maxOutboundStreams })
      })
      lp = lpStream(stream, { maxDataLength: options.maxBytes, maxBufferSize: options.maxBytes + LENGTH_PREFIX_BYTES })
      await lp.write(bytes, { signal })
    } catch (err) {
      throw callerAbort(options.signal) ?? new UnreachableError(`${protocol} request to ${who} not sent: ${messageOf(err)}`, { cause: err })
    }
    let response: Res
    try {
      await stream.close({ signal })
      const frame = await lp.read({ signal })
      response = codec.decode(frame.subarray())
    } catch (err) {
      throw callerAbort(options.signal) ?? afterSend(err, deadline.signal, protocol, who)
    }
    releaseWhenClosed(stream, deadline.signal, finish)
    return response
  } catch (err) {
    stream?.abort(err as Error)
    finish()
    throw err
  }
}

/**
 * The reply is in; the stream ends when the server's close arrives. The limiter's slot is held
 * until then, so libp2p's per-connection count never sees more streams than the limiter allows,
 * and the deadline still aborts a stream the server never closes.
 */
function releaseWhenClosed (stream: Stream, deadline: AbortSignal, finish: () => void): void {
  if (stream.status !== 'open' && stream.status !== 'closing') {
    finish()
    return
  }
  const onDeadline = (): void => { stream.abort(new TimeoutError('the server did not close the stream after its reply')) }
  deadline.addEventListener('abort', onDeadline, { once: true })
  stream.addEventListener('close', () => {
    deadline.removeEventListener('abort', onDeadline)
    finish()
  }, { once: true })
}

function afterSend (err: unknown, deadline: AbortSignal, protocol: string, who: string): Error {
  if (deadline.aborted) return deadline.reason instanceof Error ? deadline.reason : new TimeoutError(`no ${protocol} reply from ${who}`)
  if (err instanceof MalformedDataError) return err
  const name = (err as Error)?.name
  if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError' ||
      name === 'InvalidMessageLengthError' || name === 'StreamBufferError') {
    return new MalformedDataError(`${protocol} reply from ${who}: ${messageOf(err)}`, { cause: err })
  }
  return new NoReplyError(`${who} ended the ${protocol} stream without a reply: ${messageOf(err)}`, { cause: err })
}

function callerAbort (signal: AbortSignal | undefined): Error | undefined {
  if (signal?.aborted !== true) return undefined
  return signal.reason instanceof Error ? signal.reason : new AbortError()
}

function messageOf (err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

/** Resolves with `promise`, or rejects with the signal's reason as soon as it aborts. */
async function abortable<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
  })
}

/**
 * Caps the calls in flight per peer: a burst beyond the cap waits for a slot (within its
 * deadline) instead of tripping libp2p's per-connection stream limit, which would fail it.
 */
export class StreamLimiter {
  readonly limit: number
  private readonly peers = new Map<string, { active: number, waiting: Array<() => void> }>()

  constructor (limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new InvalidArgumentError('a stream limit must be a positive integer')
    this.limit = limit
  }

  /** Calls in flight to `key`, and calls waiting for a slot. */
  load (key: string): { active: number, waiting: number } {
    const peer = this.peers.get(key)
    return { active: peer?.active ?? 0, waiting: peer?.waiting.length ?? 0 }
  }

  /**
   * Resolves with the slot's release function once `key` has fewer than `limit` calls in flight;
   * rejects with the signal's reason if it aborts first.
   */
  async acquire (key: string, signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted()
    let peer = this.peers.get(key)
    if (peer === undefined) {
      peer = { active: 0, waiting: [] }
      this.peers.set(key, peer)
    }
    const slots = peer
    if (slots.active < this.limit) {
      slots.active++
      return this.releaser(key, slots)
    }
    return await new Promise((resolve, reject) => {
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort)
        resolve(this.releaser(key, slots))
      }
      const onAbort = (): void => {
        const at = slots.waiting.indexOf(grant)
        if (at !== -1) slots.waiting.splice(at, 1)
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      slots.waiting.push(grant)
    })
  }

  private releaser (key: string, slots: { active: number, waiting: Array<() => void> }): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      // The slot passes straight to the next waiter; active only drops when nobody waits.
      const next = slots.waiting.shift()
      if (next !== undefined) {
        next()
        return
      }
      slots.active--
      if (slots.active === 0) this.peers.delete(key)
    }
  }
}

/**
 * A peer id string ("12D3KooW...") or a multiaddr string ("/ip4/.../p2p/...") as a dial target.
 * @throws InvalidArgumentError if it is neither
 */
export function dialTarget (target: DialTarget | string): DialTarget {
  if (typeof target !== 'string') return target
  try {
    return target.startsWith('/') ? multiaddr(target) : peerIdFromString(target)
  } catch (err) {
    throw new InvalidArgumentError(`${JSON.stringify(target)} is neither a peer id nor a multiaddr`, { cause: err })
  }
}

/** The peer a target names, for the limiter: its peer id when known, else its address. */
function targetKey (peer: DialTarget): string {
  if (isPeerId(peer)) return peer.toString()
  const addrs = Array.isArray(peer) ? peer : [peer]
  const first = addrs[0]
  if (first === undefined) return ''
  return first.getComponents().findLast(c => c.name === 'p2p')?.value ?? first.toString()
}

function describeTarget (peer: DialTarget): string {
  if (isPeerId(peer)) return peer.toString()
  return Array.isArray(peer) ? peer.map(a => a.toString()).join(', ') : peer.toString()
}
