/**
 * The floor server process of `npm run bench -- kv`: serves FLOOR_PROTOCOL on loopback, answering
 * each request with the same 1 KiB payload, with the stream limits and server deadline of Shoal's
 * kv protocol. Started by bench/kv.ts with an IPC channel: it sends `{ type: 'ready', addrs }` and
 * stops on SIGTERM, SIGINT or when its parent goes away.
 */
import { KV_MAX_INBOUND_STREAMS, KV_MAX_OUTBOUND_STREAMS, KV_TIMEOUT_MS } from '../src/net/constants.ts'
import { RpcServer } from '../src/net/rpc.ts'
import { FLOOR_MAX_BYTES, FLOOR_PROTOCOL, FLOOR_REPLY_BYTES, createFloorLibp2p } from './floor.ts'

const reply = crypto.getRandomValues(new Uint8Array(FLOOR_REPLY_BYTES))
const libp2p = await createFloorLibp2p(['/ip4/127.0.0.1/tcp/0'])
const server = new RpcServer<Uint8Array, Uint8Array>(libp2p, {
  protocol: FLOOR_PROTOCOL,
  decode: bytes => bytes,
  encode: bytes => bytes,
  handle: async () => reply,
  timeoutMs: KV_TIMEOUT_MS,
  maxBytes: FLOOR_MAX_BYTES,
  maxInboundStreams: KV_MAX_INBOUND_STREAMS,
  maxOutboundStreams: KV_MAX_OUTBOUND_STREAMS,
  logName: 'shoal:bench-floor'
})
await server.start()

let stopping = false
async function stop (): Promise<void> {
  if (stopping) return
  stopping = true
  await server.stop()
  await libp2p.stop()
  if (process.connected) process.disconnect()
  process.exit(0)
}
process.on('SIGTERM', () => { void stop() })
process.on('SIGINT', () => { void stop() })
process.on('disconnect', () => { void stop() })

process.send?.({ type: 'ready', addrs: libp2p.getMultiaddrs().map(a => a.toString()) })
