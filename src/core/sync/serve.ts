import { bytesEqual, bytesId } from '../bytes.ts'
import { encodeObject, objectDigest } from '../causality.ts'
import { InvalidArgumentError } from '../errors.ts'
import { sha256 } from '../hash.ts'
import type { MemberStatus } from '../membership.ts'
import type { CopyState, KeyObject, SyncRequest, SyncResponse } from './messages.ts'
import { SYNC_LIMITS } from './messages.ts'
import type { SyncReplica } from './replica.ts'

/**
 * The answering side of anti-entropy and handoff: reads trees and keys, merges what is pushed,
 * reports and purges tombstone copies. Never throws: failures become typed error responses.
 */
/** What the answering member knows of the membership, for {@link serveMember}. */
export interface MemberView {
  /** This member's own status. */
  readonly own: () => MemberStatus | undefined
  /** This member's record of another. */
  readonly status: (member: string) => MemberStatus | undefined
  /** This member's member-table digest. */
  readonly digest: () => string
}

/**
 * serveSync as one member answers another. A member that left takes no pushes (what it is sent
 * must go elsewhere). Objects are fetched from here only by members this one knows as not left: a
 * member that rejoined unseen by the others could otherwise take an old copy that a tombstone
 * purge then never asks about. (Anyone may push here: a copy that arrives is one this member
 * holds, and answers for when a purge asks.) A purge check's answer carries this member's view
 * of the members, so the purger goes ahead only while everyone it asked sees the members it sees.
 */
export async function serveMember (replica: SyncReplica, request: SyncRequest, from: string, view: MemberView): Promise<SyncResponse> {
  const self = view.own()
  if (request.type === 'push' && self === 'left') return { type: 'error', name: 'UnavailableError', message: 'this member has left the cluster' }
  const status = view.status(from)
  if (request.type === 'fetch' && (status === undefined || status === 'left')) return { type: 'error', name: 'UnavailableError', message: `${from} is not a member here` }
  const response = await serveSync(replica, request)
  return response.type === 'copies' ? { ...response, members: view.digest() } : response
}

export async function serveSync (replica: SyncReplica, request: SyncRequest): Promise<SyncResponse> {
  try {
    switch (request.type) {
      case 'roots': {
        for (const p of request.partitions) checkPartition(replica, p)
        const roots = await rootsOf(replica, request.partitions)
        if (bytesEqual(summarize(roots), request.summary)) return { type: 'roots', same: true, roots: [] }
        return { type: 'roots', same: false, roots }
      }
      case 'children': {
        checkPartition(replica, request.partition)
        const tree = await replica.tree(request.partition)
        const hashes: Uint8Array[] = []
        // tree.children checks the level and index and throws InvalidArgumentError.
        for (const index of request.indexes) hashes.push(...tree.children(request.level, index))
        return { type: 'children', hashes }
      }
      case 'keys': {
        checkPartition(replica, request.partition)
        const entries = await replica.segmentKeys(request.partition, request.segments)
        if (entries.length > SYNC_LIMITS.maxEntries) {
          throw new InvalidArgumentError(`those segments hold ${entries.length} keys, more than one listing carries (${SYNC_LIMITS.maxEntries}): ask for fewer segments`)
        }
        return { type: 'keys', entries }
      }
      case 'fetch': {
        const entries: KeyObject[] = []
        let bytes = 0
        for (const key of request.keys) {
          const object = await replica.get(key)
          if (object === undefined) continue
          const size = encodeObject(object).length + key.length
          if (entries.length > 0 && bytes + size > SYNC_LIMITS.batchBytes) break
          entries.push({ key, object })
          bytes += size
        }
        return { type: 'objects', entries }
      }
      case 'push': {
        let changed = 0
        for (const { key, object } of request.entries) {
          if ((await replica.merge(key, object)).changed) changed++
        }
        return { type: 'pushed', changed }
      }
      case 'purge-check': {
        const hints = await replica.hintDigests(request.entries.map(e => e.key))
        const states: CopyState[] = []
        for (const { key, digest } of request.entries) {
          // A hint still waiting may carry an older write: the tombstone must outlive it.
          if ((hints.get(bytesId(key))?.length ?? 0) > 0) {
            states.push('different')
            continue
          }
          const object = await replica.get(key)
          states.push(object === undefined ? 'absent' : bytesEqual(objectDigest(object), digest) ? 'same' : 'different')
        }
        return { type: 'copies', states }
      }
      case 'purge': {
        let count = 0
        for (const { key, digest } of request.entries) {
          if (await replica.removeIfUnchanged(key, digest)) count++
        }
        return { type: 'purged', count }
      }
    }
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err))
    return { type: 'error', name: e.name, message: e.message }
  }
}

/** The roots of these partitions' trees, in order. */
export async function rootsOf (replica: SyncReplica, partitions: readonly number[]): Promise<Uint8Array[]> {
  const roots: Uint8Array[] = []
  for (const p of partitions) roots.push((await replica.tree(p)).root())
  return roots
}

/** sha256 over a list of roots: equal lists, equal summaries. */
export function summarize (roots: readonly Uint8Array[]): Uint8Array {
  const all = new Uint8Array(roots.reduce((n, r) => n + r.length, 0))
  let offset = 0
  for (const root of roots) {
    all.set(root, offset)
    offset += root.length
  }
  return sha256(all)
}

function checkPartition (replica: SyncReplica, partition: number): void {
  if (!Number.isInteger(partition) || partition < 0 || partition >= replica.partitions) {
    throw new InvalidArgumentError(`partition must be 0..${replica.partitions - 1}, got ${partition}`)
  }
}
