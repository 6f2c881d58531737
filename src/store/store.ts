import { randomBytes } from 'node:crypto'
import { mkdir, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import type { BatchOperation } from 'level'
import { bytesEqual, bytesId, toHex } from '../core/bytes.ts'
import { equals, decodeObject, encodeObject, merge as mergeObjects, objectDigest, EMPTY } from '../core/causality.ts'
import type { DvvSet } from '../core/causality.ts'
import { collapseSiblings } from '../core/crdt/collapse.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import { keyHash, sha256, topBits } from '../core/hash.ts'
import { plainBytes } from '../core/protobuf.ts'
import { DEFAULT_PARTITIONS } from '../core/ring.ts'
import { HASH_BYTES, MerkleTree, SEGMENTS, segmentOf } from '../core/merkle.ts'
import type { KeyDigest } from '../core/sync/messages.ts'
import {
  CorruptRecordError,
  DataDirectoryInUseError,
  NotADataDirectoryError,
  PartitionCountMismatchError,
  StoreClosedError,
  UnsupportedFormatError
} from './errors.ts'

/**
 * Storage of one Shoal node: a single LevelDB at `<dataDir>/db` with four sublevels.
 *
 * - `objects`  partition (u16 BE) ++ key        -> encodeObject(obj); a partition is one range scan
 * - `trees`    partition (u16 BE) ++ segment (u16 BE) -> 16-byte segment hash (absent = zero)
 * - `hints`    target length (u16 BE) ++ target (UTF-8) ++ key -> encodeObject(obj)
 * - `meta`     name (UTF-8) -> small records: `format`, `actor`, `partitions`, and callers' own
 *
 * An object and its Merkle segment are written in one atomic batch, under a per-partition lock,
 * so the stored tree always matches the stored objects (DESIGN.md "Storage", "Anti-entropy").
 */

/** The storage format this code writes and reads, stored in meta `format`. */
export const FORMAT = 1
/** The stored format allows u16 partition indexes. */
export const MAX_PARTITIONS = 65536

/** Meta records the store itself owns; putMeta refuses them (and every `epoch/<partition>`). */
const RESERVED_META = new Set(['format', 'actor', 'partitions'])
const EPOCH_META = 'epoch/'

export interface StoreOptions {
  /**
   * Number of partitions, a power of two (default the ring's, 4096). Stored with a new database; opening an
   * existing one with a different count fails with PartitionCountMismatchError. Omit it to use
   * the stored count.
   */
  partitions?: number
  /** Where scans and hint listings report records that do not decode (default: drop them). */
  onCorrupt?: (err: CorruptRecordError) => void
  /**
   * fsync every write before it resolves (default false, LevelDB's own default). Without it a
   * process crash loses nothing, but a power loss or kernel crash may lose the last writes.
   */
  sync?: boolean
}

export interface ScanOptions {
  /**
   * Called for each record that does not decode; the scan goes on with the next record.
   * Defaults to the store's `onCorrupt`.
   */
  onCorrupt?: (err: CorruptRecordError) => void
}

export interface StoredObject { key: Uint8Array, object: DvvSet }
export interface StoredHint { target: string, key: Uint8Array, object: DvvSet }

type Db = Level<Uint8Array, Uint8Array>
type Sublevel = ReturnType<typeof openSublevel>

function openSublevel (db: Db, name: string) {
  return db.sublevel<Uint8Array, Uint8Array>(name, { keyEncoding: 'view', valueEncoding: 'view' })
}

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * The objects, Merkle trees, hints and metadata of one node.
 *
 * @example
 * ```ts
 * const store = await Store.open('./shoal-data')
 * const key = toBytes('user:42')
 * await store.modify(key, current => update(current, new Map(), store.actorId, toBytes('Ada'), Date.now()))
 * const object = await store.get(key)
 * await store.close()
 * ```
 */
export class Store {
  /** The actor of this replica's dots; a wiped data dir gets a new one, so dots are never reused. */
  readonly actorId: string
  readonly partitions: number
  readonly path: string

  private readonly db: Db
  private readonly objects: Sublevel
  private readonly treeSegments: Sublevel
  private readonly hintRecords: Sublevel
  private readonly meta: Sublevel
  private readonly partitionBits: number
  private readonly onCorrupt: (err: CorruptRecordError) => void
  private readonly writeOptions: { sync: boolean }
  /** Loaded trees; changed only under the partition's lock and only after the batch commits. */
  private readonly treeCache = new Map<number, MerkleTree>()
  /**
   * Each partition's actor epoch, loaded on first use: bumped (durably, in the removal's batch)
   * whenever an object carrying this replica's own dots is removed, so dots minted afterwards
   * come from a fresh actor and can never repeat one the removed copy held.
   */
  private readonly epochs = new Map<number, number>()
  /** Tail of each partition's chain of writes. */
  private readonly locks = new Map<number, Promise<void>>()
  private readonly inFlight = new Set<Promise<unknown>>()
  private closing: Promise<void> | undefined

  private constructor (init: { path: string, db: Db, actorId: string, partitions: number, options: StoreOptions }) {
    this.path = init.path
    this.db = init.db
    this.actorId = init.actorId
    this.partitions = init.partitions
    this.partitionBits = Math.log2(init.partitions)
    this.objects = openSublevel(init.db, 'objects')
    this.treeSegments = openSublevel(init.db, 'trees')
    this.hintRecords = openSublevel(init.db, 'hints')
    this.meta = openSublevel(init.db, 'meta')
    this.onCorrupt = init.options.onCorrupt ?? (() => {})
    this.writeOptions = { sync: init.options.sync ?? false }
  }

  /**
   * Open the store in `dataDir`, creating the directory and a new database if there is none.
   * A new database gets `format` = 1, a fresh random actor id and the partition count, in one
   * batch. A database with foreign data, or an unknown format, is refused before anything is
   * written (NotADataDirectoryError, UnsupportedFormatError).
   */
  static async open (dataDir: string, options: StoreOptions = {}): Promise<Store> {
    if (options.partitions !== undefined) checkPartitionCount(options.partitions)
    const dbPath = join(dataDir, 'db')
    await refuseForeignDirectory(dataDir, dbPath)
    await mkdir(dataDir, { recursive: true })

    const db: Db = new Level<Uint8Array, Uint8Array>(dbPath, { keyEncoding: 'view', valueEncoding: 'view' })
    try {
      await db.open()
    } catch (err) {
      if (isLevelLocked(err)) throw new DataDirectoryInUseError(dataDir, { cause: err })
      throw err
    }

    try {
      const meta = openSublevel(db, 'meta')
      const format = await meta.get(utf8Encoder.encode('format'))
      let actorId: string
      let partitions: number
      if (format === undefined) {
        for await (const _ of db.keys({ limit: 1 })) {
          throw new NotADataDirectoryError(dataDir, `${dbPath} holds a LevelDB with data that Shoal did not write (no format record)`)
        }
        actorId = toHex(randomBytes(8))
        partitions = options.partitions ?? DEFAULT_PARTITIONS
        await db.batch([
          { type: 'put', sublevel: meta, key: utf8Encoder.encode('format'), value: utf8Encoder.encode(String(FORMAT)) },
          { type: 'put', sublevel: meta, key: utf8Encoder.encode('actor'), value: utf8Encoder.encode(actorId) },
          { type: 'put', sublevel: meta, key: utf8Encoder.encode('partitions'), value: utf8Encoder.encode(String(partitions)) }
        ], { sync: true })
      } else {
        const text = decodeText(format)
        if (text !== String(FORMAT)) throw new UnsupportedFormatError(dataDir, text ?? `0x${toHex(format)}`)
        actorId = await readMetaRecord(meta, 'actor', value => /^[0-9a-f]{16}$/.test(value))
        const stored = Number(await readMetaRecord(meta, 'partitions', value => isPartitionCount(Number(value))))
        if (options.partitions !== undefined && options.partitions !== stored) {
          throw new PartitionCountMismatchError(dataDir, stored, options.partitions)
        }
        partitions = stored
      }
      return new Store({ path: dataDir, db, actorId, partitions, options })
    } catch (err) {
      await db.close()
      throw err
    }
  }

  /** The partition a key belongs to: the top bits of its hash, as the ring computes it. */
  partitionOf (key: Uint8Array): number {
    return topBits(keyHash(key), this.partitionBits)
  }

  /** The stored object, or undefined. CorruptRecordError if its bytes do not decode. */
  async get (key: Uint8Array): Promise<DvvSet | undefined> {
    return this.track(async () => {
      const partition = this.partitionOf(key)
      return this.readObject(partition, key)
    })
  }

  /**
   * Read-modify-write under this partition's lock: `fn` sees the current object (undefined if
   * none) and the actor new dots of this key must use (see actorOf), and returns the new object,
   * or undefined for no change. The object and its Merkle segment
   * are written in ONE atomic batch. Returns the stored object.
   *
   * `fn` runs synchronously while the partition is locked; it must not call back into the store.
   * If the stored record is corrupt this throws CorruptRecordError and writes nothing.
   */
  async modify (key: Uint8Array, fn: (current: DvvSet | undefined, actor: string) => DvvSet | undefined): Promise<DvvSet | undefined> {
    const partition = this.partitionOf(key)
    return this.track(async () => this.withLock(partition, async () => {
      const current = await this.readObject(partition, key)
      const next = fn(current, this.actorOf(partition, await this.epochOf(partition)))
      if (next === undefined || (current !== undefined && equals(current, next))) return current
      await this.writeObject(partition, key, current, next)
      return next
    }))
  }

  /**
   * Merge a replica's object into the stored one (sync, read repair, replica write).
   * `changed` is false when the stored object already covered `incoming`; then nothing is written.
   * Siblings that are unequal states of one CRDT are replaced by their join, a write of this
   * replica's own, in the same atomic step (see collapseSiblings for why that terminates).
   */
  async merge (key: Uint8Array, incoming: DvvSet): Promise<{ object: DvvSet, changed: boolean }> {
    let changed = false
    const object = await this.modify(key, (current, actor) => {
      const merged = current === undefined ? incoming : mergeObjects(current, incoming)
      const next = collapseSiblings(merged, actor) ?? merged
      changed = current === undefined ? !equals(next, EMPTY) : !equals(current, next)
      return changed ? next : undefined
    })
    return { object: object ?? EMPTY, changed }
  }

  /**
   * A partition's objects in key order, from a LevelDB snapshot taken when iteration starts.
   * Records that do not decode go to `onCorrupt` and the scan goes on. Closing the store ends
   * a scan in progress with an error.
   */
  async * scan (partition: number, options: ScanOptions = {}): AsyncIterable<StoredObject> {
    this.checkPartition(partition)
    this.checkOpen()
    yield * this.scanObjects(partition, options.onCorrupt ?? this.onCorrupt)
  }

  /**
   * The partition's Merkle tree as of the last committed write: loaded from `trees` on first use
   * and cached. The result is a copy; later writes do not change it.
   */
  async tree (partition: number): Promise<MerkleTree> {
    this.checkPartition(partition)
    return this.track(async () => this.withLock(partition, async () => copyTree(await this.loadTree(partition))))
  }

  /**
   * Recompute the partition's tree from a scan of its objects and rewrite its stored segments in
   * one batch. Corrupt objects contribute nothing (and are reported to `onCorrupt`).
   */
  async rebuildTree (partition: number): Promise<MerkleTree> {
    this.checkPartition(partition)
    return this.track(async () => this.withLock(partition, async () => copyTree(await this.rebuildLocked(partition))))
  }

  /**
   * Store a hint: an object held for `target` until it can be handed off. Merges into an existing
   * hint. Returns true when the (target, key) hint is new, false when one was there already.
   */
  async putHint (target: string, key: Uint8Array, obj: DvvSet): Promise<boolean> {
    const stored = hintKey(target, key)
    const partition = this.partitionOf(key)
    return this.track(async () => this.withLock(partition, async () => {
      const raw = await this.hintRecords.get(stored)
      let next = obj
      if (raw !== undefined) {
        const current = decode(raw)
        // A corrupt hint is replaced: the copy that just arrived is the best there is.
        if (!(current instanceof Error)) {
          next = mergeObjects(current, obj)
          if (equals(current, next)) return false
        }
      }
      await this.db.batch([{ type: 'put', sublevel: this.hintRecords, key: stored, value: encodeObject(next) }], this.writeOptions)
      return raw === undefined
    }))
  }

  /** The targets that have hints waiting, in order (one seek per target, not a scan of every hint). */
  async hintTargets (): Promise<string[]> {
    return this.track(async () => {
      const targets: string[] = []
      const iterator = this.hintRecords.keys()
      try {
        let stored = await iterator.next()
        while (stored !== undefined) {
          const parsed = parseHintKey(stored)
          if (parsed === undefined) {
            // A malformed record: step past it.
            const after = new Uint8Array(stored.length + 1)
            after.set(stored)
            iterator.seek(after)
          } else {
            targets.push(parsed.target)
            const range = prefixRange(hintPrefix(parsed.target))
            if (range.lt === undefined) break
            iterator.seek(range.lt)
          }
          stored = await iterator.next()
        }
      } finally {
        await iterator.close()
      }
      return targets
    })
  }

  /**
   * For each of `keys` (by bytesId), the digests of every hint held for it, whatever its target.
   * Scans all hints: meant for batches of keys, not one key at a time.
   */
  async hintDigests (keys: readonly Uint8Array[]): Promise<Map<string, Uint8Array[]>> {
    const wanted = new Set(keys.map(k => bytesId(k)))
    const found = new Map<string, Uint8Array[]>()
    for await (const hint of this.hints()) {
      const id = bytesId(hint.key)
      if (!wanted.has(id)) continue
      let list = found.get(id)
      if (list === undefined) found.set(id, list = [])
      list.push(objectDigest(hint.object))
    }
    return found
  }

  /** The partitions that hold at least one object, ascending (one seek per partition held). */
  async heldPartitions (): Promise<number[]> {
    return this.track(async () => await this.firstOfEachPartition(this.objects))
  }

  /** The partitions with stored Merkle segments, ascending: with heldPartitions, every tree worth checking. */
  async treePartitions (): Promise<number[]> {
    return this.track(async () => await this.firstOfEachPartition(this.treeSegments))
  }

  /**
   * The keys of one partition that fall in `segments` (Merkle leaves), with the digests of their
   * objects: what an anti-entropy exchange compares. Corrupt records go to `onCorrupt`.
   */
  async segmentKeys (partition: number, segments: readonly number[]): Promise<KeyDigest[]> {
    this.checkPartition(partition)
    const wanted = new Set(segments)
    return this.track(async () => {
      const out: KeyDigest[] = []
      for await (const [stored, value] of this.objects.iterator(partitionRange(partition))) {
        const key = plainBytes(stored.subarray(2))
        // The segment first: decoding every object of the partition is what made large ones slow.
        if (!wanted.has(segmentOf(key))) continue
        const object = decode(value)
        if (object instanceof Error) {
          this.onCorrupt(corruptObject(key, partition, object))
          continue
        }
        // Stored bytes are encodeObject's canonical encoding: their hash is the object's digest.
        out.push({ key, digest: digestOfEncoded(value) })
      }
      return out
    })
  }

  /**
   * Delete a key's object, with its Merkle segment in the same batch, if its digest is still
   * `digest`: a handed-off copy or a purged tombstone, unless a write changed it meanwhile.
   * Returns whether it was deleted.
   */
  async removeIfUnchanged (key: Uint8Array, digest: Uint8Array): Promise<boolean> {
    const partition = this.partitionOf(key)
    return this.track(async () => this.withLock(partition, async () => {
      const current = await this.readObject(partition, key)
      if (current === undefined) return false
      const currentDigest = objectDigest(current)
      if (!bytesEqual(currentDigest, digest)) return false
      const tree = await this.loadTree(partition)
      const segment = tree.update(key, currentDigest, undefined)
      const hash = tree.segment(segment)
      const epoch = await this.epochOf(partition)
      // Our own dots go with the copy: the next ones must come from a new actor, or a later write
      // of this key here could mint a dot the removed copy (still held elsewhere) already has.
      const bump = [...current.vv.keys()].some(actor => actor === this.actorId || actor.startsWith(`${this.actorId}.`))
      try {
        await this.db.batch([
          { type: 'del', sublevel: this.objects, key: objectKey(partition, key) },
          isZero(hash)
            ? { type: 'del', sublevel: this.treeSegments, key: segmentKey(partition, segment) }
            : { type: 'put', sublevel: this.treeSegments, key: segmentKey(partition, segment), value: hash },
          ...(bump ? [{ type: 'put' as const, sublevel: this.meta, key: utf8Encoder.encode(`${EPOCH_META}${partition}`), value: utf8Encoder.encode(String(epoch + 1)) }] : [])
        ], this.writeOptions)
      } catch (err) {
        tree.update(key, undefined, currentDigest)
        throw err
      }
      if (bump) this.epochs.set(partition, epoch + 1)
      return true
    }))
  }

  /**
   * Rebuild the partition's tree from its objects if the stored one does not match them (missing
   * segments, a crash of an older version, a disk fault). Returns whether it had to.
   */
  async verifyTree (partition: number): Promise<boolean> {
    this.checkPartition(partition)
    return this.track(async () => this.withLock(partition, async () => {
      // Read from disk, not the cache: the check is of what is stored.
      const stored = await this.readStoredTree(partition)
      const fresh = new MerkleTree()
      for await (const { key, object } of this.scanObjects(partition, this.onCorrupt)) {
        fresh.update(key, undefined, objectDigest(object))
      }
      if (stored !== undefined && stored.equals(fresh)) {
        this.treeCache.set(partition, stored)
        return false
      }
      await this.rebuildLocked(partition)
      return true
    }))
  }

  /**
   * Hints, for one target or all, ordered by target then key, from a snapshot taken when
   * iteration starts. Records that do not decode go to `onCorrupt`.
   */
  async * hints (target?: string, options: ScanOptions = {}): AsyncIterable<StoredHint> {
    this.checkOpen()
    const onCorrupt = options.onCorrupt ?? this.onCorrupt
    const range = target === undefined ? {} : prefixRange(hintPrefix(target))
    for await (const [stored, value] of this.hintRecords.iterator(range)) {
      const parsed = parseHintKey(stored)
      if (parsed === undefined) {
        onCorrupt(new CorruptRecordError({ kind: 'hint', key: plainBytes(stored), detail: 'malformed hint key' }))
        continue
      }
      const object = decode(value)
      if (object instanceof Error) {
        onCorrupt(corruptHint(parsed.target, parsed.key, this.partitionOf(parsed.key), object))
        continue
      }
      yield { target: parsed.target, key: parsed.key, object }
    }
  }

  /**
   * Delete the hint for (target, key). With `ifDigest`, only if the hint still has that
   * objectDigest, i.e. nothing merged into it since it was read. Returns whether it was deleted.
   */
  async deleteHint (target: string, key: Uint8Array, ifDigest?: Uint8Array): Promise<boolean> {
    const stored = hintKey(target, key)
    const partition = this.partitionOf(key)
    return this.track(async () => this.withLock(partition, async () => {
      const raw = await this.hintRecords.get(stored)
      if (raw === undefined) return false
      if (ifDigest !== undefined) {
        const current = decode(raw)
        if (current instanceof Error) throw corruptHint(target, key, partition, current)
        if (!bytesEqual(objectDigest(current), ifDigest)) return false
      }
      await this.db.batch([{ type: 'del', sublevel: this.hintRecords, key: stored }], this.writeOptions)
      return true
    }))
  }

  /** How many hints are stored (counts by a key scan: O(hints)). */
  async hintCount (): Promise<number> {
    return this.track(async () => {
      let count = 0
      for await (const _ of this.hintRecords.keys()) count++
      return count
    })
  }

  /**
   * The start-up check of the hints: drops every hint record that can never be delivered (a key
   * that does not parse, a value that does not decode), reporting each to `onCorrupt`. Left in
   * place, one would count as pending forever and keep a leaving node waiting. A crash cannot
   * make one: each hint is one record written by one atomic batch, and no index refers to it;
   * only a disk fault can. Returns how many hints were checked and how many were dropped.
   */
  async verifyHints (): Promise<{ checked: number, dropped: number }> {
    return this.track(async () => {
      let checked = 0
      const bad: Array<{ stored: Uint8Array, partition?: number }> = []
      for await (const [stored, value] of this.hintRecords.iterator()) {
        checked++
        const parsed = parseHintKey(stored)
        if (parsed === undefined) {
          this.onCorrupt(new CorruptRecordError({ kind: 'hint', key: plainBytes(stored), detail: 'malformed hint key' }))
          bad.push({ stored: plainBytes(stored) })
          continue
        }
        const object = decode(value)
        if (object instanceof Error) {
          const partition = this.partitionOf(parsed.key)
          this.onCorrupt(corruptHint(parsed.target, parsed.key, partition, object))
          bad.push({ stored: plainBytes(stored), partition })
        }
      }
      let dropped = 0
      for (const { stored, partition } of bad) {
        const drop = async (): Promise<void> => {
          // Under the key's lock, a hint a write has replaced since the scan is good and stays.
          const raw = await this.hintRecords.get(stored)
          if (raw === undefined || (partition !== undefined && !(decode(raw) instanceof Error))) return
          await this.db.batch([{ type: 'del', sublevel: this.hintRecords, key: stored }], this.writeOptions)
          dropped++
        }
        await (partition === undefined ? drop() : this.withLock(partition, drop))
      }
      return { checked, dropped }
    })
  }

  async getMeta (name: string): Promise<Uint8Array | undefined> {
    checkMetaName(name)
    return this.track(async () => {
      const value = await this.meta.get(utf8Encoder.encode(name))
      return value === undefined ? undefined : plainBytes(value)
    })
  }

  /** Store a small named record. `format`, `actor` and `partitions` belong to the store. */
  async putMeta (name: string, value: Uint8Array): Promise<void> {
    checkMetaName(name)
    if (RESERVED_META.has(name) || name.startsWith(EPOCH_META)) throw new InvalidArgumentError(`meta record ${JSON.stringify(name)} is reserved by the store`)
    await this.track(async () => this.db.batch([{ type: 'put', sublevel: this.meta, key: utf8Encoder.encode(name), value }], this.writeOptions))
  }

  /** Close the database after the operations in flight finish. Safe to call twice. */
  async close (): Promise<void> {
    this.closing ??= (async () => {
      while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight])
      await this.db.close()
    })()
    return this.closing
  }

  private async readObject (partition: number, key: Uint8Array): Promise<DvvSet | undefined> {
    const raw = await this.objects.get(objectKey(partition, key))
    if (raw === undefined) return undefined
    const object = decode(raw)
    if (object instanceof Error) throw corruptObject(key, partition, object)
    return object
  }

  /**
   * The actor this replica mints dots with in a partition: its actor id, then `<id>.<epoch>` once
   * a removal has bumped the partition's epoch.
   */
  private actorOf (partition: number, epoch: number): string {
    return epoch === 0 ? this.actorId : `${this.actorId}.${epoch}`
  }

  /** Call under the partition's lock. */
  private async epochOf (partition: number): Promise<number> {
    const cached = this.epochs.get(partition)
    if (cached !== undefined) return cached
    const raw = await this.meta.get(utf8Encoder.encode(`${EPOCH_META}${partition}`))
    const text = raw === undefined ? '0' : decodeText(raw)
    const epoch = Number(text)
    if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(epoch)) {
      throw new CorruptRecordError({ kind: 'meta', key: utf8Encoder.encode(`${EPOCH_META}${partition}`), detail: 'malformed epoch' })
    }
    this.epochs.set(partition, epoch)
    return epoch
  }

  /** Call under the partition's lock. */
  private async writeObject (partition: number, key: Uint8Array, current: DvvSet | undefined, next: DvvSet): Promise<void> {
    const tree = await this.loadTree(partition)
    const oldDigest = current === undefined ? undefined : objectDigest(current)
    const newDigest = objectDigest(next)
    // Apply to the cached tree to learn the new segment hash; undo it if the batch fails, so
    // the cache never runs ahead of disk. Nobody else sees the cache while we hold the lock.
    const segment = tree.update(key, oldDigest, newDigest)
    const hash = tree.segment(segment)
    try {
      await this.db.batch([
        { type: 'put', sublevel: this.objects, key: objectKey(partition, key), value: encodeObject(next) },
        isZero(hash)
          ? { type: 'del', sublevel: this.treeSegments, key: segmentKey(partition, segment) }
          : { type: 'put', sublevel: this.treeSegments, key: segmentKey(partition, segment), value: hash }
      ], this.writeOptions)
    } catch (err) {
      tree.update(key, newDigest, oldDigest)
      throw err
    }
  }

  /** Call under the partition's lock. A tree with malformed stored segments is rebuilt. */
  private async loadTree (partition: number): Promise<MerkleTree> {
    const cached = this.treeCache.get(partition)
    if (cached !== undefined) return cached
    const tree = await this.readStoredTree(partition)
    if (tree === undefined) return this.rebuildLocked(partition)
    this.treeCache.set(partition, tree)
    return tree
  }

  /** The partition's tree as stored, or undefined if a stored segment record is malformed. */
  private async readStoredTree (partition: number): Promise<MerkleTree | undefined> {
    // One getMany of the 64 known segment keys, not a range iterator: each LevelDB iterator costs
    // native memory that glibc keeps after it closes, and a pass over 4096 trees made 4096 of them.
    const keys = Array.from({ length: SEGMENTS }, (_, segment) => segmentKey(partition, segment))
    const values = await this.treeSegments.getMany(keys)
    const hashes: Uint8Array[] = []
    for (const value of values) {
      if (value !== undefined && value.length !== HASH_BYTES) return undefined
      hashes.push(value === undefined ? new Uint8Array(HASH_BYTES) : plainBytes(value))
    }
    return MerkleTree.fromSegments(hashes)
  }

  /** The partitions a sublevel keyed by partition first has records in: one seek per partition. */
  private async firstOfEachPartition (sublevel: Sublevel): Promise<number[]> {
    const found: number[] = []
    const iterator = sublevel.keys()
    try {
      let stored = await iterator.next()
      while (stored !== undefined) {
        const partition = stored.length >= 2 ? (stored[0]! << 8) | stored[1]! : 0
        if (stored.length >= 2 && partition < this.partitions) found.push(partition)
        if (partition + 1 >= MAX_PARTITIONS) break
        iterator.seek(u16(partition + 1))
        stored = await iterator.next()
      }
    } finally {
      await iterator.close()
    }
    return found
  }

  private async * scanObjects (partition: number, onCorrupt: (err: CorruptRecordError) => void): AsyncGenerator<StoredObject> {
    for await (const [stored, value] of this.objects.iterator(partitionRange(partition))) {
      const key = plainBytes(stored.subarray(2))
      const object = decode(value)
      if (object instanceof Error) {
        onCorrupt(corruptObject(key, partition, object))
        continue
      }
      yield { key, object }
    }
  }

  /** Call under the partition's lock. */
  private async rebuildLocked (partition: number): Promise<MerkleTree> {
    const tree = new MerkleTree()
    for await (const { key, object } of this.scanObjects(partition, this.onCorrupt)) {
      tree.update(key, undefined, objectDigest(object))
    }
    const segments = this.treeSegments
    const ops: Array<BatchOperation<Db, Uint8Array, Uint8Array>> = []
    for await (const stored of segments.keys(partitionRange(partition))) ops.push({ type: 'del', sublevel: segments, key: plainBytes(stored) })
    for (let segment = 0; segment < SEGMENTS; segment++) {
      const hash = tree.segment(segment)
      if (!isZero(hash)) ops.push({ type: 'put', sublevel: segments, key: segmentKey(partition, segment), value: hash })
    }
    await this.db.batch(ops, this.writeOptions)
    this.treeCache.set(partition, tree)
    return tree
  }

  /** Run `fn` after every earlier write of this partition; partitions proceed in parallel. */
  private async withLock<T> (partition: number, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(partition) ?? Promise.resolve()
    const run = previous.then(fn)
    const tail = run.then(() => {}, () => {})
    this.locks.set(partition, tail)
    void tail.then(() => {
      if (this.locks.get(partition) === tail) this.locks.delete(partition)
    })
    return run
  }

  /** Refuse new work once closing; let close() wait for work already started. */
  private async track<T> (fn: () => Promise<T>): Promise<T> {
    this.checkOpen()
    const promise = fn()
    this.inFlight.add(promise)
    try {
      return await promise
    } finally {
      this.inFlight.delete(promise)
    }
  }

  private checkOpen (): void {
    if (this.closing !== undefined) throw new StoreClosedError()
  }

  private checkPartition (partition: number): void {
    if (!Number.isInteger(partition) || partition < 0 || partition >= this.partitions) {
      throw new InvalidArgumentError(`partition must be an integer from 0 to ${this.partitions - 1}, got ${partition}`)
    }
  }
}

function isPartitionCount (n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= MAX_PARTITIONS && (n & (n - 1)) === 0
}

function checkPartitionCount (n: number): void {
  if (!isPartitionCount(n)) throw new InvalidArgumentError(`partitions must be a power of two from 1 to ${MAX_PARTITIONS}, got ${n}`)
}

function checkMetaName (name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidArgumentError('a meta record needs a non-empty name')
}

/**
 * Before creating anything: a data directory that is itself a LevelDB, or whose `db` is a
 * non-empty directory that is not a LevelDB, is someone else's.
 */
async function refuseForeignDirectory (dataDir: string, dbPath: string): Promise<void> {
  if (!await exists(dbPath) && await exists(join(dataDir, 'CURRENT'))) {
    throw new NotADataDirectoryError(dataDir, `${dataDir} is itself a LevelDB, not a Shoal data directory (which keeps its database in db/)`)
  }
  if (await exists(dbPath) && !await exists(join(dbPath, 'CURRENT'))) {
    const entries = await readdir(dbPath).catch(() => undefined)
    // LevelDB writes LOG, LOCK and the first MANIFEST before CURRENT: only those is a creation a
    // kill interrupted (during a node's first start), which LevelDB completes; anything else is foreign.
    if (entries === undefined || !entries.every(name => LEVELDB_CREATION_FILES.test(name))) {
      throw new NotADataDirectoryError(dataDir, `${dbPath} exists but is not a LevelDB`)
    }
  }
}

/** The files of a LevelDB whose creation stopped before CURRENT was written. */
const LEVELDB_CREATION_FILES = /^(LOCK|LOG|LOG\.old|MANIFEST-\d+|\d+\.dbtmp)$/

async function exists (path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

function isLevelLocked (err: unknown): boolean {
  const cause = err instanceof Error ? err.cause : undefined
  return typeof cause === 'object' && cause !== null && (cause as { code?: unknown }).code === 'LEVEL_LOCKED'
}

async function readMetaRecord (meta: Sublevel, name: string, valid: (value: string) => boolean): Promise<string> {
  const raw = await meta.get(utf8Encoder.encode(name))
  const text = raw === undefined ? undefined : decodeText(raw)
  if (text === undefined || !valid(text)) {
    throw new CorruptRecordError({ kind: 'meta', key: utf8Encoder.encode(name), detail: raw === undefined ? 'missing' : 'malformed value' })
  }
  return text
}

function decodeText (bytes: Uint8Array): string | undefined {
  try {
    return utf8Decoder.decode(bytes)
  } catch {
    return undefined
  }
}

/** The decoded object, or the decoder's error: corrupt records are data here, not exceptions. */
function decode (bytes: Uint8Array): DvvSet | Error {
  try {
    // From a plain view, so sibling values come back as Uint8Arrays, not LevelDB's Buffers.
    return decodeObject(bytes)
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err))
  }
}

function corruptObject (key: Uint8Array, partition: number, cause: Error): CorruptRecordError {
  return new CorruptRecordError({ kind: 'object', key, partition, detail: cause.message }, { cause })
}

function corruptHint (target: string, key: Uint8Array, partition: number, cause: Error): CorruptRecordError {
  return new CorruptRecordError({ kind: 'hint', key, partition, target, detail: cause.message }, { cause })
}

/** objectDigest of the object these canonical bytes encode, without decoding them again. */
function digestOfEncoded (bytes: Uint8Array): Uint8Array {
  return sha256(bytes).slice(0, HASH_BYTES)
}

function isZero (bytes: Uint8Array): boolean {
  return bytes.every(b => b === 0)
}

function u16 (n: number): Uint8Array {
  return new Uint8Array([n >>> 8, n & 0xff])
}

function concat (...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

function objectKey (partition: number, key: Uint8Array): Uint8Array {
  return concat(u16(partition), key)
}

function segmentKey (partition: number, segment: number): Uint8Array {
  return concat(u16(partition), u16(segment))
}

function partitionRange (partition: number): { gte: Uint8Array, lt?: Uint8Array } {
  return prefixRange(u16(partition))
}

/** Every key that starts with `prefix`. */
function prefixRange (prefix: Uint8Array): { gte: Uint8Array, lt?: Uint8Array } {
  // The least key above all keys with this prefix: drop trailing 0xff bytes, increment the last.
  let end = prefix.length
  while (end > 0 && prefix[end - 1] === 0xff) end--
  if (end === 0) return { gte: prefix }
  const lt = prefix.slice(0, end)
  lt[end - 1]!++
  return { gte: prefix, lt }
}

function hintPrefix (target: string): Uint8Array {
  const bytes = utf8Encoder.encode(target)
  if (bytes.length === 0 || bytes.length > 0xffff) {
    throw new InvalidArgumentError(`a hint target must be 1 to 65535 bytes of UTF-8, got ${bytes.length}`)
  }
  return concat(u16(bytes.length), bytes)
}

function hintKey (target: string, key: Uint8Array): Uint8Array {
  return concat(hintPrefix(target), key)
}

function parseHintKey (stored: Uint8Array): { target: string, key: Uint8Array } | undefined {
  if (stored.length < 2) return undefined
  const length = (stored[0]! << 8) | stored[1]!
  if (length === 0 || stored.length < 2 + length) return undefined
  const target = decodeText(stored.subarray(2, 2 + length))
  if (target === undefined) return undefined
  return { target, key: plainBytes(stored.subarray(2 + length)) }
}

function copyTree (tree: MerkleTree): MerkleTree {
  return tree.clone()
}
