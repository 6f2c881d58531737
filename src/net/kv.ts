/**
 * `/shoal/kv/1.0.0`: the key-value requests between members (replica reads and writes, forwarded
 * puts) and from clients, one request per stream. The server answers with what the coordinator's
 * `handle` returns; the client side is the coordinator's Transport.
 *
 * @example
 * ```ts
 * const server = new KvServer(libp2p, { handle: async (request) => await coordinator.handle(request) })
 * await server.start()
 * const transport = kvTransport(libp2p)   // for new Coordinator({ transport, ... })
 * const response = await transport(peerIdString, { type: 'read', key }, 1000)
 * ```
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import type { KvRequest, KvResponse, Transport } from '../core/coordinator/messages.ts'
import { UnreachableError } from '../core/errors.ts'
import { decodeKvRequest, decodeKvResponse, encodeKvRequest, encodeKvResponse } from './codec.ts'
import { Admission } from './admission.ts'
import type { AdmissionLimits } from './admission.ts'
import {
  KV_MAX_BYTES, KV_MAX_BYTES_PER_PEER, KV_MAX_HANDLING_PER_PEER, KV_MAX_INBOUND_STREAMS, KV_MAX_OUTBOUND_STREAMS, KV_MAX_REQUESTS,
  KV_MAX_REQUESTS_PER_PEER, KV_PROTOCOL, KV_TIMEOUT_MS, MAX_KV_MESSAGE_BYTES
} from './constants.ts'
import { RpcServer, StreamLimiter, rpcCall } from './rpc.ts'
import type { RpcCodec, RpcDialer, RpcHost } from './rpc.ts'

export interface KvServerInit {
  /** Answers one request (the node passes its coordinator's `handle`). A throw is answered as a typed error. */
  handle: (request: KvRequest, from: PeerId) => Promise<KvResponse>
  /** From a stream's arrival to its reply written. Default KV_TIMEOUT_MS. */
  timeoutMs?: number
  /** Largest request accepted. Default MAX_KV_MESSAGE_BYTES. */
  maxBytes?: number
  /** Default KV_MAX_INBOUND_STREAMS (256). */
  maxInboundStreams?: number
  /** Default KV_MAX_OUTBOUND_STREAMS (256). */
  maxOutboundStreams?: number
  /**
   * Requests served at once and bytes held, in all and per peer; beyond them a request is answered
   * with an OverloadedError (not served). Default KV_MAX_REQUESTS, KV_MAX_REQUESTS_PER_PEER,
   * KV_MAX_BYTES, KV_MAX_BYTES_PER_PEER, KV_MAX_HANDLING_PER_PEER.
   */
  admission?: Partial<AdmissionLimits>
}

export interface KvTransportOptions {
  /** Largest reply accepted. Default MAX_KV_MESSAGE_BYTES. */
  maxBytes?: number
  /**
   * Requests in flight per peer; more wait for a slot within their deadline. Also the outbound
   * stream limit asked of libp2p on peers that do not serve kv themselves (clients).
   * Default KV_MAX_OUTBOUND_STREAMS (256).
   */
  maxOutboundStreams?: number
  /** Aborts every call in flight (e.g. at shutdown): they reject with its reason. */
  signal?: AbortSignal
}

const codec: RpcCodec<KvRequest, KvResponse> = { encode: encodeKvRequest, decode: decodeKvResponse }

/** Serves `/shoal/kv/1.0.0`. A libp2p service: `services: { kv: kvServer({ handle }) }`. */
export class KvServer extends RpcServer<KvRequest, KvResponse> {
  constructor (components: RpcHost, init: KvServerInit) {
    const handle = init.handle
    super(components, {
      protocol: KV_PROTOCOL,
      decode: decodeKvRequest,
      encode: encodeKvResponse,
      handle: async (request, from) => {
        try {
          return await handle(request, from)
        } catch (err) {
          const e = err instanceof Error ? err : new Error(String(err))
          return { type: 'error', name: e.name, message: e.message }
        }
      },
      timeoutMs: init.timeoutMs ?? KV_TIMEOUT_MS,
      maxBytes: init.maxBytes ?? MAX_KV_MESSAGE_BYTES,
      maxInboundStreams: init.maxInboundStreams ?? KV_MAX_INBOUND_STREAMS,
      maxOutboundStreams: init.maxOutboundStreams ?? KV_MAX_OUTBOUND_STREAMS,
      logName: 'shoal:kv',
      admission: new Admission({
        maxRequests: init.admission?.maxRequests ?? KV_MAX_REQUESTS,
        maxRequestsPerPeer: init.admission?.maxRequestsPerPeer ?? KV_MAX_REQUESTS_PER_PEER,
        maxBytes: init.admission?.maxBytes ?? KV_MAX_BYTES,
        maxBytesPerPeer: init.admission?.maxBytesPerPeer ?? KV_MAX_BYTES_PER_PEER,
        maxHandlingPerPeer: init.admission?.maxHandlingPerPeer ?? KV_MAX_HANDLING_PER_PEER
      }),
      // Anything not yet served, and a read's reply, can be refused; a write's acknowledgement not.
      overloaded: (err, request) => request === undefined || request.type === 'get' || request.type === 'read'
        ? { type: 'error', name: err.name, message: err.message }
        : undefined
    })
  }
}

/** The libp2p service factory for {@link KvServer}. */
export function kvServer (init: KvServerInit): (components: RpcHost) => KvServer {
  return (components) => new KvServer(components, init)
}

/**
 * The coordinator's Transport over `/shoal/kv/1.0.0`: `to` is a peer id string. Rejects with
 * UnreachableError (not sent: also for a `to` that is not a peer id), TimeoutError (sent, no reply
 * by the deadline), NoReplyError (sent, the stream ended without a reply) or MalformedDataError
 * (a bad reply). An error response resolves: the coordinator turns it into a rejection.
 */
export function kvTransport (dialer: RpcDialer, options: KvTransportOptions = {}): Transport {
  const maxBytes = options.maxBytes ?? MAX_KV_MESSAGE_BYTES
  const maxOutboundStreams = options.maxOutboundStreams ?? KV_MAX_OUTBOUND_STREAMS
  const limiter = new StreamLimiter(maxOutboundStreams)
  return async (to, request, timeoutMs) => {
    let peer: PeerId
    try {
      peer = peerIdFromString(to)
    } catch (err) {
      throw new UnreachableError(`${JSON.stringify(to)} is not a peer id`, { cause: err })
    }
    return await rpcCall(dialer, peer, KV_PROTOCOL, request, codec, {
      timeoutMs,
      maxBytes,
      maxOutboundStreams,
      limiter,
      ...(options.signal === undefined ? {} : { signal: options.signal })
    })
  }
}
