/**
 * One kad-dht server peer of the ycsb benchmark's kad-dht target: a libp2p node on loopback in
 * DHT server mode (bench/ycsb/kad.ts). Started with an IPC channel and the bootstrap multiaddrs in
 * argv; it dials them, sends `{ type: 'ready', addrs }`, and stops on SIGTERM, SIGINT or when its
 * parent goes away.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { createKadLibp2p } from './kad.ts'

const libp2p = await createKadLibp2p(['/ip4/127.0.0.1/tcp/0'], 'server')
for (const addr of process.argv.slice(2)) await libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(30_000) })

let stopping = false
async function stop (): Promise<void> {
  if (stopping) return
  stopping = true
  await libp2p.stop()
  if (process.connected) process.disconnect()
  process.exit(0)
}
process.on('SIGTERM', () => { void stop() })
process.on('SIGINT', () => { void stop() })
process.on('disconnect', () => { void stop() })

process.send?.({ type: 'ready', addrs: libp2p.getMultiaddrs().map(a => a.toString()) })
