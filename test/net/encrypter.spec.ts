import assert from 'node:assert/strict'
import net from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { toBytes } from '../../src/core/bytes.ts'
import { createShoalLibp2p } from '../../src/net/libp2p.ts'
import type { ShoalLibp2p } from '../../src/net/libp2p.ts'
import { RpcServer, rpcCall } from '../../src/net/rpc.ts'

const PROTOCOL = '/shoal-test/echo/1.0.0'
const codec = { encode: (b: Uint8Array) => b, decode: (b: { subarray: () => Uint8Array }) => new Uint8Array(b.subarray()) }

describe('connection encryption (noise, one write per frame)', function () {
  this.timeout(60_000)
  const nodes: ShoalLibp2p[] = []
  const originalWrite = net.Socket.prototype.write
  let writes: number[] = []

  before(async () => {
    for (let i = 0; i < 2; i++) {
      nodes.push(await createShoalLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], cluster: 'enc', mdns: false }))
    }
    await new RpcServer(nodes[0]!, { protocol: PROTOCOL, decode: b => codec.decode(b), encode: codec.encode, handle: async (req: Uint8Array) => req }).start()
    // Every socket write in this process, by size, from here on.
    net.Socket.prototype.write = function (this: net.Socket, ...args: Parameters<net.Socket['write']>) {
      const chunk = args[0] as { byteLength?: number }
      writes.push(chunk.byteLength ?? -1)
      return originalWrite.apply(this, args)
    } as net.Socket['write']
  })

  after(async () => {
    net.Socket.prototype.write = originalWrite
    for (const node of nodes) await node.stop()
  })

  it('writes each encrypted frame to the socket once, and the bytes arrive intact', async () => {
    const [server, client] = [nodes[0]!, nodes[1]!]
    await client.dial(server.getMultiaddrs()[0]!)
    // The connection is up (handshakes done): what is written now is encrypted frames.
    await new Promise(resolve => setTimeout(resolve, 200))
    writes = []
    for (let i = 0; i < 20; i++) {
      const payload = toBytes(`request ${i} `.repeat(50 + i * 30))
      const reply = await rpcCall(client, server.peerId, PROTOCOL, payload, codec, { timeoutMs: 10_000, maxBytes: 1 << 20 })
      assert.deepEqual(reply, payload)
    }
    assert.ok(writes.length >= 40, `the requests and replies were written (${writes.length} writes)`)
    // Noise's 2-byte length prefix alone was a write of its own before: one per frame.
    assert.deepEqual(writes.filter(bytes => bytes <= 2), [], 'no write carries a bare length prefix')
  })
})
