/**
 * `/shoal/members/1.0.0`: membership anti-entropy. When a heartbeat's digest differs from its own
 * table's, a member pulls the sender's whole table and merges it, so a lost heartbeat never leaves
 * a split view (DESIGN.md "Membership").
 *
 * @example
 * ```ts
 * await new MembersServer(libp2p, { records: () => agent.records() }).start()
 * const records = await pullMembers(libp2p, '12D3KooW...', 2000)
 * ```
 */
import type { DialTarget } from '@libp2p/interface'
import type { MemberRecord } from '../core/membership.ts'
import { decodeMemberList, decodeMembersRequest, encodeMemberList, encodeMembersRequest } from './codec.ts'
import type { MembersRequest } from './codec.ts'
import {
  MAX_MEMBERS_MESSAGE_BYTES, MAX_STRING_BYTES, MEMBERS_MAX_INBOUND_STREAMS, MEMBERS_MAX_OUTBOUND_STREAMS, MEMBERS_PROTOCOL, MEMBERS_TIMEOUT_MS
} from './constants.ts'
import { RpcServer, dialTarget, rpcCall } from './rpc.ts'
import type { RpcCodec, RpcDialer, RpcHost } from './rpc.ts'

export interface MembersServerInit {
  /** This member's table, as the membership agent's `records()` gives it. */
  records: () => readonly MemberRecord[] | Promise<readonly MemberRecord[]>
  /** Default MEMBERS_TIMEOUT_MS. */
  timeoutMs?: number
  /** Default MEMBERS_MAX_INBOUND_STREAMS (32). */
  maxInboundStreams?: number
  /** Default MEMBERS_MAX_OUTBOUND_STREAMS (64). */
  maxOutboundStreams?: number
}

const codec: RpcCodec<MembersRequest, MemberRecord[]> = { encode: encodeMembersRequest, decode: decodeMemberList }

/** Serves `/shoal/members/1.0.0`: answers every pull with the whole member table. */
export class MembersServer extends RpcServer<MembersRequest, readonly MemberRecord[]> {
  constructor (components: RpcHost, init: MembersServerInit) {
    const records = init.records
    super(components, {
      protocol: MEMBERS_PROTOCOL,
      decode: decodeMembersRequest,
      encode: encodeMemberList,
      handle: async () => await records(),
      timeoutMs: init.timeoutMs ?? MEMBERS_TIMEOUT_MS,
      // A pull request is tiny (decodeMembersRequest's bound): a longer frame is refused at its
      // length prefix, before the node buffers any of it.
      maxBytes: MAX_STRING_BYTES,
      maxInboundStreams: init.maxInboundStreams ?? MEMBERS_MAX_INBOUND_STREAMS,
      maxOutboundStreams: init.maxOutboundStreams ?? MEMBERS_MAX_OUTBOUND_STREAMS,
      logName: 'shoal:members'
    })
  }
}

/** The libp2p service factory for {@link MembersServer}. */
export function membersServer (init: MembersServerInit): (components: RpcHost) => MembersServer {
  return (components) => new MembersServer(components, init)
}

/**
 * Pulls another member's whole table, every record validated.
 * @param peer a PeerId, a multiaddr, or a peer id or multiaddr string (a member id is a peer id string)
 * @throws InvalidArgumentError for a string that is neither; else as rpcCall: UnreachableError,
 *   TimeoutError, NoReplyError, MalformedDataError
 */
export async function pullMembers (dialer: RpcDialer, peer: DialTarget | string, timeoutMs: number, options: { signal?: AbortSignal } = {}): Promise<MemberRecord[]> {
  return await rpcCall(dialer, dialTarget(peer), MEMBERS_PROTOCOL, {}, codec, {
    timeoutMs,
    maxBytes: MAX_MEMBERS_MESSAGE_BYTES,
    maxOutboundStreams: MEMBERS_MAX_OUTBOUND_STREAMS,
    ...(options.signal === undefined ? {} : { signal: options.signal })
  })
}
