import { sha256 } from '@noble/hashes/sha2.js'

/**
 * One hash serves the ring (where a key lives) and the Merkle trees (which segment holds it):
 * SHA-256, from @noble/hashes (already in libp2p's tree, pure JS, synchronous, ~1 µs per key).
 * Bytes 0..7 place a key on the ring; bytes 8..11 pick its anti-entropy segment.
 */
export function keyHash (key: Uint8Array): Uint8Array {
  return sha256(key)
}

export { sha256 }

/** The key's 64-bit position on the ring. */
export function ringPosition (hash: Uint8Array): bigint {
  return new DataView(hash.buffer, hash.byteOffset, hash.byteLength).getBigUint64(0)
}

/** The top `bits` bits (0..32) of the ring position, as a number: a partition index. */
export function topBits (hash: Uint8Array, bits: number): number {
  if (bits === 0) return 0
  const word = new DataView(hash.buffer, hash.byteOffset, hash.byteLength).getUint32(0)
  return word >>> (32 - bits)
}

/** A 32-bit word from the hash independent of the ring position: used to pick a Merkle segment. */
export function segmentWord (hash: Uint8Array): number {
  return new DataView(hash.buffer, hash.byteOffset, hash.byteLength).getUint32(8)
}
