import { bytesEqual, bytesId, fromBytesId } from '../bytes.ts'
import { objectDigest } from '../causality.ts'
import type { DvvSet } from '../causality.ts'
import { MalformedDataError, ShoalError, remoteError } from '../errors.ts'
import { HASH_BYTES, differingChildren, diffSegmentKeys } from '../merkle.ts'
import type { MerkleTree } from '../merkle.ts'
import type { KeyDigest, KeyObject, SyncRequest, SyncResponse } from './messages.ts'
import { SYNC_LIMITS } from './messages.ts'
import type { SyncReplica } from './replica.ts'
import { rootsOf, summarize } from './serve.ts'

/** One request to the other replica; an error response must already be a rejection. */
export type SyncCall = (request: SyncRequest) => Promise<SyncResponse>

export interface ExchangeOptions {
  /**
   * 'both': anti-entropy, each side ends with the merge of both copies. 'push': ownership
   * handoff, only the other side is brought up to date with this one.
   */
  readonly mode: 'both' | 'push'
  /** Stop after repairing this many keys (the rest waits for the next exchange). */
  readonly maxKeys?: number
  /** Differing partitions worked on at once. */
  readonly concurrency?: number
  /** Called after each differing partition with the time it took: the caller may wait here (pacing). */
  readonly pace?: (elapsedMs: number) => Promise<void>
  /** The caller's clock, for `pace`. */
  readonly now?: () => number
}

export interface ExchangeResult {
  /** Partitions whose roots were compared. */
  compared: number
  /** Partitions whose roots differed. */
  differing: number
  /** Keys found to differ. */
  keysDiffering: number
  /** Keys whose copy here changed by the merge. */
  repairedHere: number
  /** Keys whose copy on the other side changed. */
  repairedThere: number
  /** True when maxKeys cut the exchange short. */
  truncated: boolean
}

export function emptyResult (): ExchangeResult {
  return { compared: 0, differing: 0, keysDiffering: 0, repairedHere: 0, repairedThere: 0, truncated: false }
}

/**
 * One Merkle exchange with another replica over some partitions both hold (Dynamo §4.7): compare
 * every root in one request (a single summary hash when all agree), descend only into differing
 * nodes, list only the keys of differing segments, and move only the objects that differ.
 * `result` is updated as the exchange goes, so a caller still counts the repairs of one that fails
 * halfway.
 */
export async function exchange (replica: SyncReplica, call: SyncCall, partitions: readonly number[], options: ExchangeOptions, result: ExchangeResult = emptyResult()): Promise<ExchangeResult> {
  result.compared += partitions.length
  if (partitions.length === 0) return result
  const mine = await rootsOf(replica, partitions)
  const answer = expect(await call({ type: 'roots', partitions, summary: summarize(mine) }), 'roots')
  if (answer.same) return result
  if (answer.roots.length !== partitions.length) throw new MalformedDataError(`asked ${partitions.length} roots, got ${answer.roots.length}`)
  const differing = partitions.filter((_, i) => differingChildren([mine[i]!], [answer.roots[i]!]).length > 0)
  result.differing += differing.length

  const maxKeys = options.maxKeys ?? Infinity
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < differing.length) {
      if (result.repairedHere + result.repairedThere >= maxKeys) {
        result.truncated = true
        return
      }
      const partition = differing[next++]!
      const started = options.now?.() ?? 0
      await exchangePartition(replica, call, partition, options.mode, result)
      if (options.pace !== undefined) await options.pace((options.now?.() ?? 0) - started)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker))
  return result
}

async function exchangePartition (replica: SyncReplica, call: SyncCall, partition: number, mode: 'both' | 'push', result: ExchangeResult): Promise<void> {
  const tree = await replica.tree(partition)
  const segments = await differingSegments(tree, call, partition)
  if (segments.length === 0) return

  const theirs = expect(await call({ type: 'keys', partition, segments }), 'keys').entries
  const mine = await replica.segmentKeys(partition, segments)
  const differing = diffSegmentKeys(digestMap(mine), digestMap(theirs))
  result.keysDiffering += differing.length
  if (differing.length === 0) return
  const have = new Set(mine.map(e => bytesId(e.key)))
  const theyHave = new Set(theirs.map(e => bytesId(e.key)))

  if (mode === 'both') {
    // Pull theirs first, so what goes back is the merge of both.
    let wanted = differing.filter(id => theyHave.has(id)).map(fromBytesId)
    while (wanted.length > 0) {
      const asked = wanted.slice(0, SYNC_LIMITS.keysPerRequest)
      const fetched = expect(await call({ type: 'fetch', keys: asked }), 'objects').entries
      // Check the whole reply before applying any of it: keys asked for, in the order asked.
      const position = new Map(asked.map((k, i) => [bytesId(k), i]))
      let previous = -1
      for (const { key } of fetched) {
        const at = position.get(bytesId(key))
        if (at === undefined || at <= previous) throw new MalformedDataError('fetched a key that was not asked for, or out of order')
        previous = at
      }
      for (const { key, object } of fetched) {
        if ((await replica.merge(key, object)).changed) result.repairedHere++
      }
      // The reply may stop at its byte budget: ask again from just after the last key it carried.
      wanted = wanted.slice(fetched.length === 0 ? asked.length : previous + 1)
    }
  }

  const theirDigests = digestMap(theirs)
  const outgoing: KeyObject[] = []
  for (const id of differing) {
    if (mode === 'push' && !have.has(id)) continue
    const key = fromBytesId(id)
    const object = await replica.get(key)
    if (object === undefined) continue
    // A key whose merge here came out equal to their copy (they had it all) needs no trip back.
    const their = theirDigests.get(id)
    if (their !== undefined && bytesEqual(objectDigest(object), their)) continue
    outgoing.push({ key, object })
  }
  for (const batch of objectBatches(outgoing)) {
    // Not `+= await`: that reads the total before the wait, and concurrent workers' counts would be lost.
    const { changed } = expect(await call({ type: 'push', entries: batch }), 'pushed')
    result.repairedThere += changed
  }
}

/** Descend from the root, level by level, into the nodes whose hashes differ. */
async function differingSegments (tree: MerkleTree, call: SyncCall, partition: number): Promise<number[]> {
  let indexes = [0]
  for (let level = 0; level < tree.depth && indexes.length > 0; level++) {
    const hashes = expect(await call({ type: 'children', partition, level, indexes }), 'children').hashes
    if (hashes.length !== indexes.length * tree.fanout || hashes.some(h => h.length !== HASH_BYTES)) {
      throw new MalformedDataError(`asked the children of ${indexes.length} nodes, got ${hashes.length} hashes`)
    }
    const next: number[] = []
    indexes.forEach((index, i) => {
      const theirs = hashes.slice(i * tree.fanout, (i + 1) * tree.fanout)
      for (const child of differingChildren(tree.children(level, index), theirs)) next.push(index * tree.fanout + child)
    })
    indexes = next
  }
  return indexes
}

function digestMap (entries: readonly KeyDigest[]): Map<string, Uint8Array> {
  return new Map(entries.map(e => [bytesId(e.key), e.digest]))
}

/** Pushes of at most SYNC_LIMITS.batchBytes (one object bigger than that goes alone). */
export function * objectBatches (entries: readonly KeyObject[]): Iterable<KeyObject[]> {
  let batch: KeyObject[] = []
  let bytes = 0
  for (const entry of entries) {
    const size = objectSize(entry.object) + entry.key.length
    if (batch.length > 0 && (bytes + size > SYNC_LIMITS.batchBytes || batch.length >= SYNC_LIMITS.maxEntries)) {
      yield batch
      batch = []
      bytes = 0
    }
    batch.push(entry)
    bytes += size
  }
  if (batch.length > 0) yield batch
}

function objectSize (object: DvvSet): number {
  let size = 64 + object.vv.size * 32
  for (const s of object.siblings) size += 48 + (s.value?.length ?? 0)
  return size
}


/** The response of the expected type, or the error it carries. */
export function expect<T extends SyncResponse['type']> (response: SyncResponse, type: T): Extract<SyncResponse, { type: T }> {
  if (response.type === 'error') throw remoteError(response.name, response.message)
  if (response.type !== type) throw new ShoalError(`expected a ${type} response, got ${response.type}`)
  return response as Extract<SyncResponse, { type: T }>
}
