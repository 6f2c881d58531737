/**
 * Request/response over libp2p streams, one request per stream (DESIGN.md "Requests"): the client
 * opens a stream for the protocol, writes one length-prefixed message, half-closes, reads one
 * length-prefixed reply; the server reads one message, handles it, writes the reply and closes.
 * Every call has a deadline and every inbound stream a timeout, which covers writing the reply: a
 * reader that never reads pins its stream only until then. A server may also be given an
 * Admission (admission.ts): requests past its bounds are answered with OverloadedError, unserved.
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
import type { Uint8ArrayList } from 'uint8arraylist'
import { InvalidArgumentError, MalformedDataError, OverloadedError, ShoalError, TimeoutError, UnreachableError } from '../core/errors.ts'
import type { Admission, Ticket } from './admission.ts'

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
  /**
   * From the stream's arrival to the reply written and the caller's end closed; then the stream
   * is aborted. Default 5000.
   */
  timeoutMs?: number
  /** Largest request accepted, in bytes. Default 1 MiB. */
  maxBytes?: number
  /** Streams of this protocol open at once per connection. Default 32 (libp2p's). */
  maxInboundStreams?: number
  maxOutboundStreams?: number
  /** The logger's component name, e.g. 'shoal:kv'. Default 'shoal:rpc'. */
  logName?: string
  /**
   * Bounds on the requests served at once and the bytes they hold, in all and per peer (one
   * Admission may be shared by several servers). Without it only libp2p's per-connection stream
   * limit bounds them.
   */
  admission?: Admission
  /**
   * The reply that refuses a request beyond the admission bounds, saying it was not served. It is
   * asked again with the request once handled, when the reply does not fit the byte budget:
   * undefined then means the reply must go out anyway (e.g. a write's acknowledgement), while a
   * read's reply can be refused. Without it, a refused stream is reset (the caller sees NoReplyError).
   */
  overloaded?: (error: OverloadedError, request?: Req) => Res | undefined
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
  private readonly admission: Admission | undefined
  /** Slots for requests being handled, per peer (Admission's maxHandlingPerPeer). */
  private readonly handling: StreamLimiter | undefined
  private readonly overloaded: ((error: OverloadedError, request?: Req) => Res | undefined) | undefined
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
    this.admission = init.admission
    this.handling = init.admission === undefined ? undefined : new StreamLimiter(init.admission.limits.maxHandlingPerPeer)
    this.overloaded = init.overloaded
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
    const ticket = this.admission?.enter(from.toString())
    const deadline = new AbortController()
    const timer = setTimeout(() => {
      deadline.abort(new TimeoutError(`${this.protocol}: no request and reply within ${this.timeoutMs} ms`))
    }, this.timeoutMs)
    const signal = deadline.signal
    // A reset by the caller (its deadline, its abort) ends the wait for the handler too.
    const onClose = (): void => { deadline.abort(new NoReplyError(`${this.protocol} stream closed before the reply`)) }
    stream.addEventListener('close', onClose, { once: true })
    const lp = lpStream(stream, {
      maxDataLength: this.maxBytes,
      maxBufferSize: this.maxBytes + LENGTH_PREFIX_BYTES,
      // The frame's announced length is held against the byte budget before its bytes are awaited.
      lengthDecoder: (buf) => this.admitFrame(decodeLength(buf), ticket)
    })
    const reply = async (bytes: Uint8Array): Promise<void> => {
      await lp.write(bytes, { signal })
      // Our own close ends the stream: not a reset to react to.
      stream.removeEventListener('close', onClose)
      await stream.close({ signal })
      // A caller half-closes once its request is out; one that never does (a refused request it
      // is still sending, a silent stream) would keep the stream open forever: the deadline aborts it.
      await remoteWriteClosed(stream, signal)
    }
    try {
      try {
        if (this.admission !== undefined && ticket === undefined) throw this.busy(from)
        const frame = await lp.read({ signal })
        // One frame per stream: whatever else a peer sends would only be buffered.
        await discardInput(stream)
        await reply(await this.answer(frame.subarray(), from, signal, ticket))
      } catch (err) {
        // Refused before it was served: say so, so the caller knows it may send it again.
        const refusal = err instanceof OverloadedError ? this.overloaded?.(err) : undefined
        if (refusal === undefined) throw err
        this.log('%s request from %p refused - %s', this.protocol, from, (err as Error).message)
        // The unread rest of a refused request is dropped as it comes, not buffered.
        await discardInput(stream)
        await reply(this.encode(refusal))
      }
    } catch (err) {
      this.log.error('%s stream from %p aborted - %e', this.protocol, from, err)
      stream.abort(err instanceof Error ? err : new ShoalError(String(err)))
    } finally {
      clearTimeout(timer)
      stream.removeEventListener('close', onClose)
      this.streams.delete(stream)
      ticket?.release()
    }
  }

  /**
   * The encoded reply to one request frame. Apart from serve() so that the request and the decoded
   * response are garbage once it returns: a slow reader then pins only the encoded reply.
   */
  private async answer (frame: Uint8Array, from: PeerId, signal: AbortSignal, ticket: Ticket | undefined): Promise<Uint8Array> {
    const request = this.decode(frame)
    const release = await this.handling?.acquire(from.toString(), signal)
    try {
      // While it waited, the budget may have run out: refusing now costs nothing, serving would.
      if (ticket?.blocked() === true) throw this.busy(from)
      const response = await abortable(this.handle(request, from, { signal }), signal)
      return this.fitReply(this.encode(response), request, ticket, from)
    } finally {
      release?.()
    }
  }

  private busy (from: PeerId): OverloadedError {
    const total = this.admission?.usage()
    const peer = this.admission?.usage(from.toString())
    return new OverloadedError(`${this.protocol}: node busy (${total?.requests ?? 0} requests and ${total?.bytes ?? 0} bytes in flight, ${peer?.requests ?? 0} and ${peer?.bytes ?? 0} for this peer)`)
  }

  /** The announced frame length, if the byte budget can hold it; else the request is refused. */
  private admitFrame (length: number, ticket: Ticket | undefined): number {
    // An oversized frame is lpStream's to refuse (InvalidDataLengthError), not a busy node's.
    if (ticket === undefined || length > this.maxBytes || ticket.reserve(length)) return length
    throw new OverloadedError(`${this.protocol}: no room for a request of ${length} bytes`)
  }

  /**
   * The reply is held against the byte budget while it is written: a reader that does not read
   * pins it until the deadline. One that does not fit is refused if the service allows (a read
   * can be asked again; a write's acknowledgement must go out).
   */
  private fitReply (encoded: Uint8Array, request: Req, ticket: Ticket | undefined, from: PeerId): Uint8Array {
    if (ticket === undefined || ticket.reserve(encoded.byteLength)) return encoded
    const bytes = encoded.byteLength
    const refusal = this.overloaded?.(new OverloadedError(`${this.protocol}: node busy, no room for a reply of ${bytes} bytes`), request)
    if (refusal !== undefined) {
      this.log('%s reply of %d bytes to %p refused', this.protocol, bytes, from)
      return this.encode(refusal)
    }
    ticket.force(bytes)
    return encoded
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

/**
 * lpStream's length decoder: an unsigned varint, at most 8 bytes (frames stay far below 2^53).
 * Throws RangeError while the prefix is incomplete, as lpStream expects.
 */
function decodeLength (buf: Uint8ArrayList | Uint8Array): number {
  let value = 0
  for (let i = 0; i < Math.min(buf.byteLength, 8); i++) {
    const byte = buf instanceof Uint8Array ? buf[i] as number : buf.get(i)
    value += (byte & 0x7f) * 2 ** (7 * i)
    if (byte < 0x80) return value
  }
  if (buf.byteLength >= 8) throw new MalformedDataError('frame length prefix longer than 8 bytes')
  throw new RangeError('incomplete length prefix')
}

/** Resolves once the remote end has closed its writable end (or the stream is gone); rejects when `signal` aborts first. */
async function remoteWriteClosed (stream: Stream, signal: AbortSignal): Promise<void> {
  const done = (): boolean => stream.remoteWriteStatus === 'closed' || (stream.status !== 'open' && stream.status !== 'closing')
  if (done()) return
  await new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (!done()) return
      cleanup()
      resolve()
    }
    const onAbort = (): void => {
      cleanup()
      reject(signal.reason)
    }
    const cleanup = (): void => {
      stream.removeEventListener('remoteCloseWrite', check)
      stream.removeEventListener('close', check)
      signal.removeEventListener('abort', onAbort)
    }
    stream.addEventListener('remoteCloseWrite', check)
    stream.addEventListener('close', check)
    signal.addEventListener('abort', onAbort, { once: true })
    if (signal.aborted) onAbort()
  })
}

/** Closes the stream's readable end: data still arriving is dropped (yamux cannot tell the sender). */
async function discardInput (stream: Stream): Promise<void> {
  try {
    await stream.closeRead()
  } catch {}
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
