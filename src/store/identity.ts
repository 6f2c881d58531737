import { randomBytes } from 'node:crypto'
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { InvalidIdentityError } from './errors.ts'

/** The node's private key, as libp2p's protobuf bytes, inside the data directory. */
export const IDENTITY_FILE = 'peer.key'

export interface Identity {
  privateKey: PrivateKey
  peerId: PeerId
  /** True when this call generated the key (a new node), false when it was loaded. */
  created: boolean
}

/**
 * The node's identity, kept in `<dataDir>/peer.key` so a restarted node keeps its peer id.
 * A missing file is created with a new Ed25519 key (mode 0600, complete before it appears).
 * A file that does not decode fails with InvalidIdentityError and is never overwritten: losing
 * the key would make this node a new member and orphan its partitions.
 *
 * @example
 * ```ts
 * const { privateKey, peerId } = await loadOrCreateIdentity('./shoal-data')
 * const node = await createLibp2p({ privateKey, ... })
 * ```
 */
export async function loadOrCreateIdentity (dataDir: string): Promise<Identity> {
  const path = join(dataDir, IDENTITY_FILE)
  const existing = await load(path)
  if (existing !== undefined) return { ...existing, created: false }

  await mkdir(dataDir, { recursive: true })
  const privateKey = await generateKeyPair('Ed25519')
  if (await publish(path, privateKeyToProtobuf(privateKey))) {
    return { privateKey, peerId: peerIdFromPrivateKey(privateKey), created: true }
  }
  // Another process created the file between our read and our write: its key wins.
  const theirs = await load(path)
  if (theirs === undefined) throw new InvalidIdentityError(path, 'vanished while being created')
  return { ...theirs, created: false }
}

async function load (path: string): Promise<{ privateKey: PrivateKey, peerId: PeerId } | undefined> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  let privateKey: PrivateKey
  try {
    privateKey = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new InvalidIdentityError(path, err instanceof Error ? err.message : String(err), { cause: err })
  }
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey) }
}

/**
 * Write `bytes` to a temporary file, flush it, then give it its final name only if that name is
 * free. link() fails rather than replace an existing file, which rename() would do silently.
 * Returns false if the file already existed.
 */
async function publish (path: string, bytes: Uint8Array): Promise<boolean> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  const file = await open(tmp, 'wx', 0o600)
  try {
    await file.writeFile(bytes)
    await file.sync()
  } finally {
    await file.close()
  }
  try {
    await link(tmp, path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') {
      await unlink(tmp)
      return false
    }
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') {
      await unlink(tmp).catch(() => {})
      throw err
    }
    // A file system without hard links: rename is atomic too, only not exclusive.
    await rename(tmp, path)
    await syncDirectory(path)
    return true
  }
  await unlink(tmp)
  await syncDirectory(path)
  return true
}

/** Make the new name durable. Not every platform can open a directory (Windows): best effort. */
async function syncDirectory (path: string): Promise<void> {
  try {
    const dir = await open(dirname(path), 'r')
    try {
      await dir.sync()
    } finally {
      await dir.close()
    }
  } catch {}
}
