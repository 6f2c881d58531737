import { yamux } from '@chainsafe/libp2p-yamux'
import { shoalEncrypter } from './encrypter.ts'
import { libp2pLogger } from './logger.ts'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub, StrictSign } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { mdns } from '@libp2p/mdns'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { toBytes, toHex } from '../core/bytes.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import { sha256 } from '../core/hash.ts'
import { parsePsk } from './psk.ts'
import type { GossipSub } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { Libp2p, PeerDiscovery, PeerId, PrivateKey } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * The services every Shoal libp2p node runs. `mdns` is present only when LAN discovery is on;
 * it is a service (not a plain peerDiscovery entry) so Discovery can hear every mDNS answer,
 * since mDNS itself never dials.
 */
export type ShoalServices = {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
  mdns?: PeerDiscovery
}

/** A started libp2p node assembled by createShoalLibp2p. */
export type ShoalLibp2p = Libp2p<ShoalServices>

export interface ShoalLibp2pOptions {
  /** From loadOrCreateIdentity (src/store/identity.ts): a stable peer id across restarts. */
  privateKey: PrivateKey
  /** TCP multiaddrs to listen on, e.g. `['/ip4/127.0.0.1/tcp/0']`; `[]` for a client that only dials. */
  listen: string[]
  /** Multiaddrs of bootstrap peers, each ending in `/p2p/<peerId>`. */
  bootstrap?: string[]
  /** LAN discovery by mDNS. Default false here; the CLI chooses its own default. */
  mdns?: boolean
  /** Cluster name: the gossip topic and the mDNS service tag are derived from it. */
  cluster: string
  /**
   * A private-network key file's bytes (src/net/psk.ts): only peers with the same key can connect,
   * and the whole connection, the noise handshake included, is encrypted under it.
   */
  psk?: Uint8Array
  /**
   * Addresses to tell other peers instead of the listen addresses (e.g. behind a port forward or
   * a proxy). Default: the listen addresses.
   */
  announce?: string[]
}

/**
 * Connections accepted per second from one IP. libp2p's default of 5 rejects most of a cluster
 * whose members share a host (or a NAT) and all dial at once after a restart.
 */
const INBOUND_CONNECTION_THRESHOLD = 1_000
/** Shoal meshes every member with every other: room for a few hundred members plus clients. */
const MAX_CONNECTIONS = 1_024
/** Inbound connections still upgrading (noise, yamux) at once; the default 10 drops a join burst. */
const MAX_INCOMING_PENDING_CONNECTIONS = 128
/** Streams per connection at the muxer: one stream per request, many requests in flight. */
const MAX_MUXED_STREAMS = 4_096
/** Streams opened before the stream listener is attached; a request burst on a fresh connection. */
const MAX_EARLY_STREAMS = 512

/** yamux with room for one stream per request: Shoal's muxer, also the benchmark floor's. */
export function shoalMuxer (): ReturnType<typeof yamux> {
  return yamux({
    maxInboundStreams: MAX_MUXED_STREAMS,
    maxOutboundStreams: MAX_MUXED_STREAMS,
    maxEarlyStreams: MAX_EARLY_STREAMS
  })
}

/**
 * Create and start Shoal's libp2p node: TCP (inside a pre-shared-key private network when `psk`
 * is given), noise (one write per frame: encrypter.ts), yamux, identify, ping, gossipsub (signed
 * messages only), and bootstrap and mDNS discovery when asked for. Tuned for dense clusters:
 * gossipsub's IP-colocation penalty is off and the inbound connection limits are raised, or 20
 * members on one host fall apart.
 *
 * Bad addresses and a malformed private-network key fail with InvalidArgumentError saying what
 * is wrong; nothing is started then.
 *
 * @example
 * ```ts
 * const { privateKey } = await loadOrCreateIdentity('./shoal-data')
 * const libp2p = await createShoalLibp2p({ privateKey, listen: ['/ip4/0.0.0.0/tcp/4001'], cluster: 'prod' })
 * ```
 */
export async function createShoalLibp2p (options: ShoalLibp2pOptions): Promise<ShoalLibp2p> {
  const { listen, bootstrap: bootstrapList, announce } = checkAddresses(options)
  const psk = options.psk === undefined ? undefined : parsePsk(options.psk)

  const logger = libp2pLogger()
  const libp2p = await createLibp2p<ShoalServices>({
    start: false,
    privateKey: options.privateKey,
    ...(logger === undefined ? {} : { logger }),
    addresses: { listen, ...(announce.length > 0 ? { announce } : {}) },
    transports: [tcp()],
    ...(psk === undefined ? {} : { connectionProtector: preSharedKey({ psk }) }),
    connectionEncrypters: [shoalEncrypter()],
    streamMuxers: [shoalMuxer()],
    connectionManager: {
      maxConnections: MAX_CONNECTIONS,
      inboundConnectionThreshold: INBOUND_CONNECTION_THRESHOLD,
      maxIncomingPendingConnections: MAX_INCOMING_PENDING_CONNECTIONS
    },
    peerDiscovery: bootstrapList.length > 0 ? [bootstrap({ list: bootstrapList })] : [],
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        globalSignaturePolicy: StrictSign,
        emitSelf: false,
        floodPublish: true,
        // A lone member's heartbeat has nobody to go to; that is not an error.
        allowPublishToZeroTopicPeers: true,
        scoreParams: { IPColocationFactorWeight: 0 }
      }),
      ...(options.mdns === true ? { mdns: mdns({ serviceTag: mdnsServiceTag(options.cluster) }) } : {})
    }
  })
  try {
    await libp2p.start()
  } catch (err) {
    // Whatever did start (a listener, a timer) must not outlive the failure.
    try { await libp2p.stop() } catch {}
    throw err
  }
  return libp2p
}

/**
 * The mDNS service name for a cluster. Hashed so any cluster name fits a DNS label; members of
 * other clusters ask for another name, so they never even hear of each other.
 */
export function mdnsServiceTag (cluster: string): string {
  return `_shoal-${toHex(sha256(toBytes(cluster))).slice(0, 16)}._udp.local`
}

/**
 * Parses every address a node is given, so a caller can refuse bad ones before it touches
 * anything (the data directory, a port). Returns them in canonical form.
 * @throws InvalidArgumentError naming the first bad address
 */
export function checkAddresses (options: { listen?: readonly string[], bootstrap?: readonly string[], announce?: readonly string[] }): { listen: string[], bootstrap: string[], announce: string[] } {
  for (const role of ['listen', 'bootstrap', 'announce'] as const) {
    const list: unknown = options[role]
    if (list !== undefined && !Array.isArray(list)) throw new InvalidArgumentError(`${role} must be an array of multiaddr strings`)
  }
  return {
    listen: (options.listen ?? []).map(addr => parseListenAddress(addr).toString()),
    bootstrap: (options.bootstrap ?? []).map(addr => parseBootstrapAddress(addr).toString()),
    announce: (options.announce ?? []).map(addr => parseMultiaddr(addr, 'announce').toString())
  }
}

function parseListenAddress (addr: string): Multiaddr {
  const ma = parseMultiaddr(addr, 'listen')
  if (!ma.getComponents().some(c => c.name === 'tcp')) {
    throw new InvalidArgumentError(`listen address ${JSON.stringify(addr)} is not a TCP address`)
  }
  return ma
}

/** Parse a bootstrap address; it must name its peer (`/p2p/<peerId>`). Throws InvalidArgumentError. */
export function parseBootstrapAddress (addr: string): Multiaddr {
  const ma = parseMultiaddr(addr, 'bootstrap')
  if (multiaddrPeerId(ma) === undefined) {
    throw new InvalidArgumentError(`bootstrap address ${JSON.stringify(addr)} does not end in a valid /p2p/<peerId>`)
  }
  return ma
}

function parseMultiaddr (addr: string, role: string): Multiaddr {
  if (typeof addr !== 'string') throw new InvalidArgumentError(`${role} address ${String(addr)} is not a multiaddr string`)
  try {
    return multiaddr(addr)
  } catch (err) {
    throw new InvalidArgumentError(`${role} address ${JSON.stringify(addr)} is not a valid multiaddr`, { cause: err })
  }
}

/** The peer id a multiaddr names in its last /p2p/ component, if any and valid. */
export function multiaddrPeerId (ma: Multiaddr): PeerId | undefined {
  const value = ma.getComponents().findLast(c => c.name === 'p2p')?.value
  if (value === undefined) return undefined
  try {
    return peerIdFromString(value)
  } catch {
    return undefined
  }
}
