/**
 * Member records signed with the member's libp2p key (DESIGN.md "Membership"). Gossipsub already
 * signs each heartbeat, but a pulled member table carries records about third parties: their own
 * signatures are what let a member pass them on without being able to forge them.
 *
 * @example
 * ```ts
 * const agent = new MembershipAgent({ ...init, signer: recordSigner(identity.privateKey) })
 * ```
 */
import type { PrivateKey, PublicKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { RecordSigner } from '../core/membership-agent.ts'

/** Keys are parsed once per signer: a table of members is verified on every pull. */
const MAX_CACHED_KEYS = 4096

/**
 * A RecordSigner over a libp2p private key whose signatures are synchronous (Ed25519, what Shoal
 * creates; secp256k1 too). Verifies with the public key inlined in the signer's peer id; a peer
 * id that does not inline its key (an RSA hash) cannot sign records.
 * @throws TypeError if the key signs asynchronously (RSA in some runtimes)
 */
export function recordSigner (privateKey: PrivateKey): RecordSigner {
  const keys = new Map<string, PublicKey | undefined>()
  const publicKey = (signer: string): PublicKey | undefined => {
    if (keys.has(signer)) return keys.get(signer)
    let key: PublicKey | undefined
    try {
      key = peerIdFromString(signer).publicKey
    } catch {
      key = undefined
    }
    if (keys.size >= MAX_CACHED_KEYS) keys.clear()
    keys.set(signer, key)
    return key
  }
  return {
    sign: (payload) => {
      const signature = privateKey.sign(payload)
      if (signature instanceof Promise) throw new TypeError(`a ${privateKey.type} key signs asynchronously: member records need an Ed25519 key`)
      return signature
    },
    verify: (signer, payload, signature) => {
      const key = publicKey(signer)
      if (key === undefined) return false
      try {
        const ok = key.verify(payload, signature)
        return ok === true
      } catch {
        return false
      }
    }
  }
}
