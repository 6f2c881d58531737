/**
 * The kad-dht target's libp2p node, the same for its server peers (bench/ycsb/kad-server.ts) and
 * the load generator's client: Shoal's transport stack (tcp, noise with Shoal's one write per
 * frame, yamux with Shoal's limits, so that what differs from Shoal is the protocol alone),
 * identify and ping (kad-dht needs both), and @libp2p/kad-dht on a protocol of its own with a
 * validator and selector for the /shoal-bench/ namespace. Records live in libp2p's default
 * in-memory datastore.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import type { Identify } from '@libp2p/identify'
import { kadDHT, removePublicAddressesMapper } from '@libp2p/kad-dht'
import type { KadDHT } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import type { Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import type { Libp2p } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'
import { shoalEncrypter } from '../../src/net/encrypter.ts'
import { shoalMuxer } from '../../src/net/libp2p.ts'

export const KAD_PROTOCOL = '/shoal-bench/kad/1.0.0'
/** DHT keys are /shoal-bench/<key>: kad-dht picks the validator and selector by that namespace. */
export const KAD_NAMESPACE = 'shoal-bench'

export type KadLibp2p = Libp2p<{ identify: Identify, ping: Ping, dht: KadDHT }>

/** Each record is an 8-byte big-endian stamp (microseconds since the epoch) and then the value. */
export const STAMP_BYTES = 8

/** A value with the time of its writing in front. */
export function stamped (value: Uint8Array): Uint8Array {
  const out = new Uint8Array(STAMP_BYTES + value.byteLength)
  new DataView(out.buffer).setBigUint64(0, BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)))
  out.set(value, STAMP_BYTES)
  return out
}

/** The index of the record with the latest stamp. */
export function newest (records: readonly Uint8Array[]): number {
  let best = 0
  let bestStamp = -1n
  records.forEach((r, i) => {
    const stamp = r.byteLength >= STAMP_BYTES ? new DataView(r.buffer, r.byteOffset, r.byteLength).getBigUint64(0) : -1n
    if (stamp > bestStamp) { best = i; bestStamp = stamp }
  })
  return best
}

export function kadKey (key: string): Uint8Array {
  return new TextEncoder().encode(`/${KAD_NAMESPACE}/${key}`)
}

/** A started node: a DHT server (answers queries, stores records) or a client (only asks). */
export async function createKadLibp2p (listen: string[], mode: 'server' | 'client'): Promise<KadLibp2p> {
  return await createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [shoalEncrypter()],
    streamMuxers: [shoalMuxer()],
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: KAD_PROTOCOL,
        clientMode: mode === 'client',
        // A LAN DHT, as kad-dht's docs set one up: keep private (here loopback) addresses. The
        // default mapper drops them, and a loopback DHT would have nobody in its routing table.
        peerInfoMapper: removePublicAddressesMapper,
        validators: { [KAD_NAMESPACE]: async (_key, value) => { if (value.byteLength < STAMP_BYTES) throw new Error('a /shoal-bench/ record starts with its 8-byte stamp') } },
        // The newest record wins: several generator processes write the same keys, and each
        // also keeps its own (possibly older) copy, which kad-dht's get counts among the records.
        selectors: { [KAD_NAMESPACE]: (_key, records) => newest(records) }
      })
    }
  })
}
