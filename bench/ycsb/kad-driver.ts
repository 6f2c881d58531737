/**
 * kad-dht through its own API, as a libp2p user would store key-values: put is PUT_VALUE to the
 * closest peers a lookup finds, get is GET_VALUE along a lookup (the whole query, as
 * `dht.get` runs it; the value must come from a server peer, not only from this client's own
 * copy, which kad-dht's put also keeps). The client is a DHT client connected to every server.
 * Records carry an 8-byte stamp before the value, so the newest wins (bench/ycsb/kad.ts).
 */
import type { SingleKadDHT } from '@libp2p/kad-dht'
import { multiaddr } from '@multiformats/multiaddr'
import { WrongValueError } from './driver.ts'
import type { Driver, DriverOptions } from './driver.ts'
import { STAMP_BYTES, createKadLibp2p, kadKey, stamped } from './kad.ts'

export async function kadDriver (addrs: readonly string[], options: DriverOptions): Promise<Driver> {
  const libp2p = await createKadLibp2p([], 'client')
  try {
    for (const addr of addrs) await libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(options.readyTimeoutMs) })
    // identify tells the client which peers speak the DHT's protocol; until then queries have nobody to ask.
    // kadDHT() builds a single (not a dual LAN/WAN) DHT, which has a routing table.
    const table = (libp2p.services.dht as SingleKadDHT).routingTable
    const end = performance.now() + options.readyTimeoutMs
    while (table.size < addrs.length) {
      if (performance.now() > end) throw new Error(`kad-dht: ${table.size} of ${addrs.length} servers in the routing table after ${options.readyTimeoutMs} ms`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  } catch (err) {
    await libp2p.stop()
    throw err
  }
  const dht = libp2p.services.dht
  return {
    put: async (key, value) => {
      let stored = 0
      let error: string | undefined
      for await (const event of dht.put(kadKey(key), stamped(value))) {
        if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') stored++
        if (event.name === 'QUERY_ERROR') error ??= event.error.message
      }
      if (stored === 0) throw new Error(`kad-dht put ${key}: no peer stored it${error === undefined ? '' : ` (${error})`}`)
    },
    get: async (key) => {
      let remote = 0
      let value: Uint8Array | undefined
      for await (const event of dht.get(kadKey(key))) {
        if (event.name === 'PEER_RESPONSE' && event.record != null) remote++
        if (event.name === 'VALUE') value = event.value
      }
      if (remote === 0 || value === undefined) throw new WrongValueError(`kad-dht get ${key}: no server peer had it`)
      if (value.byteLength !== STAMP_BYTES + options.valueBytes) throw new WrongValueError(`kad-dht get ${key}: ${value.byteLength - STAMP_BYTES} bytes`)
    },
    stats: () => ({}),
    stop: async () => { await libp2p.stop() }
  }
}
