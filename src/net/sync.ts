/**
 * `/shoal/sync/1.0.0` and `/shoal/handoff/1.0.0`: the anti-entropy and handoff messages between
 * members (src/core/sync/messages.ts), one request per stream. Both protocols carry the same
 * messages; they are apart so each has its own stream limits and a burst of handoff pushes never
 * starves a Merkle exchange. The server answers with what one `handle` returns; the client side is
 * the sync core's SyncTransport.
 *
 * @example
 * ```ts
 * const server = new SyncServer(libp2p, { handle: async (request, from) => await sync.handle(request, from) })
 * await server.start()
 * const transport = syncTransport(libp2p, { onBytes: (sent, received) => { metrics.add(sent + received) } })
 * const response = await transport(peerIdString, { type: 'fetch', keys: [key] }, 5000, 'sync')
 * ```
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId, Startable, Stream } from '@libp2p/interface'
import { InvalidArgumentError, UnreachableError } from '../core/errors.ts'
import type { SyncChannel, SyncRequest, SyncResponse, SyncTransport } from '../core/sync/messages.ts'
import { Admission } from './admission.ts'
import {
  HANDOFF_MAX_INBOUND_STREAMS, HANDOFF_MAX_OUTBOUND_STREAMS, HANDOFF_PROTOCOL, HANDOFF_TIMEOUT_MS,
  MAX_SYNC_MESSAGE_BYTES, SYNC_MAX_BYTES, SYNC_MAX_BYTES_PER_PEER, SYNC_MAX_HANDLING_PER_PEER, SYNC_MAX_INBOUND_STREAMS,
  SYNC_MAX_OUTBOUND_STREAMS, SYNC_MAX_REQUESTS, SYNC_MAX_REQUESTS_PER_PEER, SYNC_PROTOCOL, SYNC_TIMEOUT_MS
} from './constants.ts'
import { RpcServer, StreamLimiter, rpcCall } from './rpc.ts'
import type { RpcCodec, RpcDialer, RpcHost } from './rpc.ts'
import { decodeSyncRequest, decodeSyncResponse, encodeSyncRequest, encodeSyncResponse } from './sync-codec.ts'

export interface SyncServerInit {
  /**
   * Answers one request, from either protocol. A throw is answered as a typed error. The third
   * argument says which protocol it came on, and its signal aborts at the stream's timeout or
   * when the caller gives up (a long push may stop merging then).
   */
  handle: (request: SyncRequest, from: PeerId, context: { channel: SyncChannel, signal: AbortSignal }) => Promise<SyncResponse>
  /** From a stream's arrival to its reply written. Default SYNC_TIMEOUT_MS and HANDOFF_TIMEOUT_MS. */
  timeoutMs?: number
  /** Largest request accepted. Default MAX_SYNC_MESSAGE_BYTES. */
  maxBytes?: number
  /** Per protocol. Default SYNC_MAX_INBOUND_STREAMS and HANDOFF_MAX_INBOUND_STREAMS (32). */
  maxInboundStreams?: number
  /** Per protocol. Default SYNC_MAX_OUTBOUND_STREAMS and HANDOFF_MAX_OUTBOUND_STREAMS (32). */
  maxOutboundStreams?: number
}

export interface SyncTransportOptions {
  /** Aborts every call in flight (e.g. at shutdown): they reject with its reason. */
  signal?: AbortSignal
  /**
   * Told the bytes of each call that reached the wire: the encoded request and the reply frame
   * (0 when none came). Not called for a request that was not sent (UnreachableError).
   */
  onBytes?: (sent: number, received: number) => void
  /**
   * Requests in flight per peer and protocol; more wait for a slot within their deadline. Also
   * the outbound stream limit asked of libp2p. Default SYNC_MAX_OUTBOUND_STREAMS (32).
   */
  maxOutboundStreams?: number
  /** Largest reply accepted. Default MAX_SYNC_MESSAGE_BYTES. */
  maxBytes?: number
}

interface Channel {
  readonly protocol: string
  readonly timeoutMs: number
  readonly maxInboundStreams: number
  readonly maxOutboundStreams: number
}

const CHANNELS: Readonly<Record<SyncChannel, Channel>> = {
  sync: {
    protocol: SYNC_PROTOCOL,
    timeoutMs: SYNC_TIMEOUT_MS,
    maxInboundStreams: SYNC_MAX_INBOUND_STREAMS,
    maxOutboundStreams: SYNC_MAX_OUTBOUND_STREAMS
  },
  handoff: {
    protocol: HANDOFF_PROTOCOL,
    timeoutMs: HANDOFF_TIMEOUT_MS,
    maxInboundStreams: HANDOFF_MAX_INBOUND_STREAMS,
    maxOutboundStreams: HANDOFF_MAX_OUTBOUND_STREAMS
  }
}

const CHANNEL_NAMES: readonly SyncChannel[] = ['sync', 'handoff']

/**
 * Serves `/shoal/sync/1.0.0` and `/shoal/handoff/1.0.0` with one handler. A libp2p service:
 * `services: { sync: syncServer({ handle }) }`.
 */
export class SyncServer implements Startable {
  private readonly servers: ReadonlyMap<SyncChannel, RpcServer<SyncRequest, SyncResponse>>
  private started = false

  constructor (components: RpcHost, init: SyncServerInit) {
    const handle = init.handle
    const servers = new Map<SyncChannel, RpcServer<SyncRequest, SyncResponse>>()
    // One budget for both protocols: together they are what a peer can make this node hold.
    const admission = new Admission({
      maxRequests: SYNC_MAX_REQUESTS,
      maxRequestsPerPeer: SYNC_MAX_REQUESTS_PER_PEER,
      maxBytes: SYNC_MAX_BYTES,
      maxBytesPerPeer: SYNC_MAX_BYTES_PER_PEER,
      maxHandlingPerPeer: SYNC_MAX_HANDLING_PER_PEER
    })
    for (const channel of CHANNEL_NAMES) {
      const defaults = CHANNELS[channel]
      servers.set(channel, new RpcServer<SyncRequest, SyncResponse>(components, {
        protocol: defaults.protocol,
        decode: decodeSyncRequest,
        encode: encodeSyncResponse,
        handle: async (request, from, { signal }) => {
          try {
            return await handle(request, from, { channel, signal })
          } catch (err) {
            const e = err instanceof Error ? err : new Error(String(err))
            return { type: 'error', name: e.name, message: e.message }
          }
        },
        timeoutMs: init.timeoutMs ?? defaults.timeoutMs,
        maxBytes: init.maxBytes ?? MAX_SYNC_MESSAGE_BYTES,
        maxInboundStreams: init.maxInboundStreams ?? defaults.maxInboundStreams,
        maxOutboundStreams: init.maxOutboundStreams ?? defaults.maxOutboundStreams,
        logName: `shoal:${channel}`,
        admission,
        // Refused only before it is served (the exchange or push is retried next round); a reply,
        // once computed, always goes out.
        overloaded: (err, request) => request === undefined ? { type: 'error', name: err.name, message: err.message } : undefined
      }))
    }
    this.servers = servers
  }

  readonly [Symbol.toStringTag] = 'shoal:sync-server'

  /** Registers both protocols; if the second fails, the first is unregistered again. Calling it again while started does nothing. */
  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    try {
      for (const server of this.servers.values()) await server.start()
    } catch (err) {
      await Promise.allSettled([...this.servers.values()].map(async server => { await server.stop() }))
      this.started = false
      throw err
    }
  }

  /** Unregisters both protocols and aborts the streams still being served. Safe to call twice. */
  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    await Promise.all([...this.servers.values()].map(async server => { await server.stop() }))
  }

  isStarted (): boolean {
    return this.started
  }

  /** Serves one inbound stream of `channel`'s protocol; never rejects. For tests over an in-memory stream pair. */
  async serve (stream: Stream, from: PeerId, channel: SyncChannel): Promise<void> {
    await this.servers.get(channel)?.serve(stream, from)
  }
}

/** The libp2p service factory for {@link SyncServer}. */
export function syncServer (init: SyncServerInit): (components: RpcHost) => SyncServer {
  return (components) => new SyncServer(components, init)
}

/**
 * The sync core's SyncTransport: `to` is a peer id string, `channel` picks the protocol. Rejects
 * as kvTransport does: UnreachableError (not sent: also for a `to` that is not a peer id),
 * TimeoutError (sent, no reply by the deadline), NoReplyError (sent, the stream ended without a
 * reply) or MalformedDataError (a bad reply). An error response resolves: the caller turns it
 * into a rejection.
 */
export function syncTransport (dialer: RpcDialer, options: SyncTransportOptions = {}): SyncTransport {
  const maxBytes = options.maxBytes ?? MAX_SYNC_MESSAGE_BYTES
  const maxOutboundStreams = options.maxOutboundStreams ?? SYNC_MAX_OUTBOUND_STREAMS
  // One limiter per protocol: libp2p counts each protocol's streams on a connection apart.
  const limiters: Readonly<Record<SyncChannel, StreamLimiter>> = {
    sync: new StreamLimiter(maxOutboundStreams),
    handoff: new StreamLimiter(maxOutboundStreams)
  }
  const onBytes = options.onBytes
  return async (to, request, timeoutMs, channel) => {
    const limiter = limiters[channel]
    if (limiter === undefined) throw new InvalidArgumentError(`unknown sync channel ${JSON.stringify(channel)}`)
    let peer: PeerId
    try {
      peer = peerIdFromString(to)
    } catch (err) {
      throw new UnreachableError(`${JSON.stringify(to)} is not a peer id`, { cause: err })
    }
    // The codec sees both frames whole, so it is where they are measured.
    let sent = 0
    let received = 0
    const codec: RpcCodec<SyncRequest, SyncResponse> = {
      encode: (message) => {
        const bytes = encodeSyncRequest(message)
        sent = bytes.length
        return bytes
      },
      decode: (bytes) => {
        received = bytes.length
        return decodeSyncResponse(bytes)
      }
    }
    let response: SyncResponse
    try {
      response = await rpcCall(dialer, peer, CHANNELS[channel].protocol, request, codec, {
        timeoutMs,
        maxBytes,
        maxOutboundStreams,
        limiter,
        ...(options.signal === undefined ? {} : { signal: options.signal })
      })
    } catch (err) {
      if (!(err instanceof UnreachableError)) onBytes?.(sent, received)
      throw err
    }
    onBytes?.(sent, received)
    return response
  }
}
