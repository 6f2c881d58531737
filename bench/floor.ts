/**
 * The floor of the kv benchmark: a bare libp2p node on the transport stack Shoal uses (TCP, noise
 * with one write per frame, yamux with Shoal's own muxer limits) and one request/response protocol served
 * with our own RpcServer and called with rpcCall, one request per stream as Shoal's kv protocol.
 * No identify, ping or gossipsub: what Shoal costs above this is Shoal's.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import type { Libp2p } from '@libp2p/interface'
import { shoalEncrypter } from '../src/net/encrypter.ts'
import { shoalMuxer } from '../src/net/libp2p.ts'
import type { RpcCodec } from '../src/net/rpc.ts'

export const FLOOR_PROTOCOL = '/shoal-bench/floor/1.0.0'
/** What the floor server answers every request with. */
export const FLOOR_REPLY_BYTES = 1024
/** Requests and replies are small: a bound well above both. */
export const FLOOR_MAX_BYTES = 64 * 1024

/** Frames are opaque bytes; a copy, because frames read from a socket may be pooled Buffers. */
export const bytesCodec: RpcCodec<Uint8Array, Uint8Array> = { encode: b => b, decode: b => new Uint8Array(b) }

/** A started libp2p node with Shoal's transport, encryption and muxer, and nothing else. */
export async function createFloorLibp2p (listen: string[]): Promise<Libp2p> {
  return await createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [shoalEncrypter()],
    streamMuxers: [shoalMuxer()]
  })
}
