/**
 * Shoal's connection encryption: noise, with each encrypted frame handed to the transport as one
 * buffer. Noise gives the transport a frame as two chunks, its 2-byte length and the ciphertext,
 * and `@libp2p/tcp` writes each chunk with its own `socket.write`: two syscalls per frame, and with
 * TCP_NODELAY often two packets, the first carrying 2 bytes. Joining them costs a copy of a frame
 * (at most 64 KiB, mostly under 2 KiB) and halves the writes; the bytes on the wire are the same.
 */
import { noise } from '@chainsafe/libp2p-noise'
import type { ConnectionEncrypter, MessageStream } from '@libp2p/interface'
import { isUint8ArrayList } from 'uint8arraylist'

type NoiseFactory = ReturnType<typeof noise>

/** noise() whose frames reach the transport in one write each. */
export function shoalEncrypter (): NoiseFactory {
  const factory = noise()
  return (components) => {
    const encrypter: ConnectionEncrypter = factory(components)
    const inbound = encrypter.secureInbound.bind(encrypter)
    const outbound = encrypter.secureOutbound.bind(encrypter)
    encrypter.secureInbound = async (connection, options) => await inbound(oneWritePerSend(connection), options)
    encrypter.secureOutbound = async (connection, options) => await outbound(oneWritePerSend(connection), options)
    return encrypter as ReturnType<NoiseFactory>
  }
}

/**
 * The same connection, whose sends of several chunks become sends of one buffer. Its own `send`
 * is shadowed on the instance: everything else (state, events, the upgrader's hold on it) stays
 * the connection's.
 */
export function oneWritePerSend (connection: MessageStream): MessageStream {
  const send = connection.send.bind(connection)
  // Not instanceof: noise brings its own copy of uint8arraylist (2.x); the check is by marker.
  connection.send = (data) => send(isUint8ArrayList(data) ? data.subarray() : data)
  return connection
}
