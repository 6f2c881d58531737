import { describeKey } from '../core/bytes.ts'
import { ShoalError } from '../core/errors.ts'

/**
 * The directory holds data that Shoal did not write (a LevelDB with foreign keys, or a LevelDB
 * at the data directory itself). Nothing was written to it.
 */
export class NotADataDirectoryError extends ShoalError {
  override name = 'NotADataDirectoryError'
  readonly path: string

  constructor (path: string, message: string) {
    super(message)
    this.path = path
  }
}

/** The data directory was written by a format this version cannot read. Nothing was written. */
export class UnsupportedFormatError extends ShoalError {
  override name = 'UnsupportedFormatError'
  readonly path: string
  readonly format: string

  constructor (path: string, format: string) {
    super(`data directory ${path} has storage format ${JSON.stringify(format)}; this version reads format 1`)
    this.path = path
    this.format = format
  }
}

/** Another process (or another Store in this one) has the data directory's database open. */
export class DataDirectoryInUseError extends ShoalError {
  override name = 'DataDirectoryInUseError'
  readonly path: string

  constructor (path: string, options?: ErrorOptions) {
    super(`data directory ${path} is in use by another process (LevelDB lock held)`, options)
    this.path = path
  }
}

/** The data directory was created with a different partition count; keys would land elsewhere. */
export class PartitionCountMismatchError extends ShoalError {
  override name = 'PartitionCountMismatchError'

  constructor (path: string, stored: number, requested: number) {
    super(`data directory ${path} was created with ${stored} partitions, not ${requested}`)
  }
}

/** `<dataDir>/peer.key` exists but does not hold a libp2p private key. The file was left as it is. */
export class InvalidIdentityError extends ShoalError {
  override name = 'InvalidIdentityError'
  readonly path: string

  constructor (path: string, detail: string, options?: ErrorOptions) {
    super(`identity file ${path} is not a valid libp2p private key (${detail}); it was left untouched`, options)
    this.path = path
  }
}

/** The store was closed; the operation did not run. */
export class StoreClosedError extends ShoalError {
  override name = 'StoreClosedError'

  constructor () {
    super('the store is closed')
  }
}

/**
 * Stored bytes for a key do not decode. Reads of that key fail with this error and writes to it
 * write nothing; every other key keeps working. The message names the key and its partition.
 */
export class CorruptRecordError extends ShoalError {
  override name = 'CorruptRecordError'
  /** Which record: an object, a hint (for `target`), or a meta record (`key` is its name). */
  readonly kind: 'object' | 'hint' | 'meta'
  readonly key: Uint8Array
  readonly partition: number | undefined
  readonly target: string | undefined

  constructor (init: { kind: 'object' | 'hint' | 'meta', key: Uint8Array, partition?: number, target?: string, detail: string }, options?: ErrorOptions) {
    const where = init.partition === undefined ? '' : ` (partition ${init.partition})`
    const hint = init.target === undefined ? '' : ` for target ${init.target}`
    super(`stored ${init.kind} record${hint} for key ${describeKey(init.key)}${where} does not decode: ${init.detail}`, options)
    this.kind = init.kind
    this.key = init.key
    this.partition = init.partition
    this.target = init.target
  }
}
