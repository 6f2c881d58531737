/**
 * `/shoal/admin/1.0.0`: an operator's commands to one node (`shoal status`, `shoal leave`). The
 * answer is JSON; a failure comes back as a typed error with the same name as on the node.
 *
 * Any peer that can open a connection can send these unless `allow` says otherwise: pass an
 * `allow` that admits only the operator's peers, or rely on the cluster's pre-shared key.
 *
 * @example
 * ```ts
 * await new AdminServer(libp2p, { handle: async (op) => op === 'leave' ? await node.leave() : node.status() }).start()
 * const status = await adminCall(cliLibp2p, '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...', { op: 'status' }, 5000)
 * ```
 */
import type { DialTarget, PeerId } from '@libp2p/interface'
import { MalformedDataError, ShoalError, remoteError } from '../core/errors.ts'
import { decodeAdminRequest, decodeAdminResponse, encodeAdminRequest, encodeAdminResponse } from './codec.ts'
import type { AdminOp, AdminRequest, AdminResponse } from './codec.ts'
import {
  ADMIN_MAX_INBOUND_STREAMS, ADMIN_MAX_OUTBOUND_STREAMS, ADMIN_PROTOCOL, ADMIN_TIMEOUT_MS, MAX_ADMIN_JSON_BYTES,
  MAX_ADMIN_MESSAGE_BYTES, MAX_STRING_BYTES
} from './constants.ts'
import { RpcServer, dialTarget, rpcCall } from './rpc.ts'
import type { RpcCodec, RpcDialer, RpcHost } from './rpc.ts'

export type { AdminOp } from './codec.ts'

/** The node refused an admin command from this peer. */
export class AccessDeniedError extends ShoalError {
  override name = 'AccessDeniedError'
}

export interface AdminServerInit {
  /** Runs a command; the result must be JSON-serialisable. A throw is answered as a typed error. */
  handle: (request: AdminRequest, from: PeerId) => Promise<unknown>
  /** Whether `from` may send commands. Default: every peer that could connect. */
  allow?: (from: PeerId) => boolean
  /** Default ADMIN_TIMEOUT_MS. */
  timeoutMs?: number
  maxInboundStreams?: number
  maxOutboundStreams?: number
}

const codec: RpcCodec<AdminRequest, AdminResponse> = { encode: encodeAdminRequest, decode: decodeAdminResponse }

/** Serves `/shoal/admin/1.0.0`. */
export class AdminServer extends RpcServer<AdminRequest, AdminResponse> {
  constructor (components: RpcHost, init: AdminServerInit) {
    const { handle, allow } = init
    super(components, {
      protocol: ADMIN_PROTOCOL,
      decode: decodeAdminRequest,
      encode: encodeAdminResponse,
      handle: async (request, from) => {
        const { op } = request
        try {
          if (allow !== undefined && !allow(from)) throw new AccessDeniedError(`${from.toString()} may not send admin commands`)
          const json = JSON.stringify(await handle(request, from)) ?? 'null'
          if (json.length > MAX_ADMIN_JSON_BYTES) throw new ShoalError(`the ${op} answer is larger than ${MAX_ADMIN_JSON_BYTES} bytes`)
          return { type: 'ok', json }
        } catch (err) {
          const e = err instanceof Error ? err : new Error(String(err))
          return { type: 'error', name: e.name, message: e.message }
        }
      },
      timeoutMs: init.timeoutMs ?? ADMIN_TIMEOUT_MS,
      // A command is tiny (decodeAdminRequest's bound); the 4 MiB bound is for answers. A longer
      // frame is refused at its length prefix, before the node buffers any of it.
      maxBytes: MAX_STRING_BYTES,
      maxInboundStreams: init.maxInboundStreams ?? ADMIN_MAX_INBOUND_STREAMS,
      maxOutboundStreams: init.maxOutboundStreams ?? ADMIN_MAX_OUTBOUND_STREAMS,
      logName: 'shoal:admin'
    })
  }
}

/** The libp2p service factory for {@link AdminServer}. */
export function adminServer (init: AdminServerInit): (components: RpcHost) => AdminServer {
  return (components) => new AdminServer(components, init)
}

/**
 * Sends one command and returns its parsed JSON answer.
 * @param peer a PeerId, a multiaddr, or a peer id or multiaddr string
 * @throws the node's error, rebuilt with its name (remoteError); InvalidArgumentError for a string
 *   that is neither a peer id nor a multiaddr; MalformedDataError for an answer that is not JSON;
 *   else as rpcCall: UnreachableError, TimeoutError, NoReplyError
 */
export async function adminCall (dialer: RpcDialer, peer: DialTarget | string, request: AdminRequest, timeoutMs: number, options: { signal?: AbortSignal } = {}): Promise<unknown> {
  const { op } = request
  const response = await rpcCall(dialer, dialTarget(peer), ADMIN_PROTOCOL, request, codec, {
    timeoutMs,
    maxBytes: MAX_ADMIN_MESSAGE_BYTES,
    maxOutboundStreams: ADMIN_MAX_OUTBOUND_STREAMS,
    ...(options.signal === undefined ? {} : { signal: options.signal })
  })
  if (response.type === 'error') throw remoteError(response.name, response.message)
  try {
    return JSON.parse(response.json)
  } catch (err) {
    throw new MalformedDataError(`the ${op} answer is not JSON`, { cause: err })
  }
}
