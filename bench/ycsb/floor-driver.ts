/**
 * The floor: a bare libp2p request/response (tcp + noise + yamux, one request per stream, as
 * Shoal's kv protocol) to floor servers, round-robin. A put sends the key and the value, a get the
 * key; each server answers every request with 1 KiB. No storage, no replication: the cost of the
 * network stack alone, in the same process layout as a Shoal cluster.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { KV_MAX_OUTBOUND_STREAMS } from '../../src/net/constants.ts'
import { StreamLimiter, rpcCall } from '../../src/net/rpc.ts'
import { FLOOR_MAX_BYTES, FLOOR_PROTOCOL, FLOOR_REPLY_BYTES, bytesCodec, createFloorLibp2p } from '../floor.ts'
import { WrongValueError } from './driver.ts'
import type { Driver, DriverOptions } from './driver.ts'

interface Server {
  readonly peer: PeerId
  /** As kvTransport: a limiter per peer. */
  readonly limiter: StreamLimiter
}

export async function floorDriver (addrs: readonly string[], options: DriverOptions): Promise<Driver> {
  const libp2p = await createFloorLibp2p([])
  const servers: Server[] = []
  try {
    for (const addr of addrs) {
      const target = multiaddr(addr)
      await libp2p.dial(target, { signal: AbortSignal.timeout(options.readyTimeoutMs) })
      servers.push({ peer: peerIdFromString(target.getComponents().findLast(c => c.name === 'p2p')?.value ?? ''), limiter: new StreamLimiter(KV_MAX_OUTBOUND_STREAMS) })
    }
  } catch (err) {
    await libp2p.stop()
    throw err
  }
  const encoder = new TextEncoder()
  let next = 0
  const call = async (request: Uint8Array): Promise<void> => {
    const server = servers[next++ % servers.length] as Server
    const reply = await rpcCall(libp2p, server.peer, FLOOR_PROTOCOL, request, bytesCodec, {
      timeoutMs: 15_000, maxBytes: FLOOR_MAX_BYTES, limiter: server.limiter, maxOutboundStreams: KV_MAX_OUTBOUND_STREAMS
    })
    if (reply.byteLength !== FLOOR_REPLY_BYTES) throw new WrongValueError(`the floor answered ${reply.byteLength} bytes`)
  }
  return {
    put: async (key, value) => {
      const k = encoder.encode(key)
      const request = new Uint8Array(k.byteLength + value.byteLength)
      request.set(k)
      request.set(value, k.byteLength)
      await call(request)
    },
    get: async (key) => { await call(encoder.encode(key)) },
    stats: () => ({}),
    stop: async () => { await libp2p.stop() }
  }
}
