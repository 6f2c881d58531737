/**
 * Conflict resolution users don't have to write, written once for a node and a client peer:
 * `update()` (read, resolve, modify, write back with the read's context, retry on conflict),
 * resolvers, and the convergent types stored in Shoal (a PN-counter and an add-wins OR-set).
 */
import { randomBytes } from 'node:crypto'
import { bytesId, compareBytes, toBytes } from './core/bytes.ts'
import { EMPTY_COUNTER, bump, counterValue, maxEntry } from './core/crdt/counter.ts'
import type { CounterEntry, CounterState } from './core/crdt/counter.ts'
import { ConflictError, SiblingsError, WrongTypeError } from './core/crdt/errors.ts'
import { EMPTY_SET, TAG_BYTES, add, has, members, remove } from './core/crdt/orset.ts'
import type { OrSetState } from './core/crdt/orset.ts'
import { decodeCrdt, encodeCrdt, isReserved, refuseReserved } from './core/crdt/typed-value.ts'
import type { CrdtType } from './core/crdt/typed-value.ts'
import { InvalidArgumentError } from './core/errors.ts'
import type { GetResult, PutResult, ReadOptions, WriteOptions } from './node.ts'

/** What a resolver knows of each sibling besides its value, in the same order. */
export interface SiblingInfo {
  /** The coordinator's clock when the sibling was written, in ms. */
  readonly timestamp: number
}

/**
 * Merges concurrent siblings into one value. Gets at least two values; must return the value the
 * key should hold (deterministic resolvers make every reader agree). The second argument may be
 * ignored.
 */
export type Resolver = (siblings: Uint8Array[], info: readonly SiblingInfo[]) => Uint8Array

/**
 * Keeps the sibling written last by its coordinator's clock (ties: the greatest bytes, so every
 * reader picks the same). Clocks of different members drift: a write can lose to an older one.
 * Only for data where that is acceptable; Shoal never applies it unless asked.
 */
export const lastWriterWins: Resolver = (siblings, info) => {
  let best = 0
  for (let i = 1; i < siblings.length; i++) {
    const t = info[i]?.timestamp ?? 0
    const bestT = info[best]?.timestamp ?? 0
    if (t > bestT || (t === bestT && compareBytes(siblings[i] as Uint8Array, siblings[best] as Uint8Array) > 0)) best = i
  }
  return siblings[best] as Uint8Array
}

/** Return this from an update function to delete the key. */
export const DELETE: unique symbol = Symbol('shoal.delete')

export type UpdateFunction = (current: Uint8Array | undefined) =>
string | Uint8Array | typeof DELETE | Promise<string | Uint8Array | typeof DELETE>

export interface UpdateOptions extends ReadOptions {
  readonly w?: number
  /** Merges siblings the read finds; overrides the node's or client's own. */
  readonly resolver?: Resolver
  /** Writes tried in all (the first and the resolving retries). Default 5. */
  readonly attempts?: number
}

export interface UpdateResult {
  /** What the key now holds as far as this update knows; undefined when it deleted the key. */
  readonly value: Uint8Array | undefined
  /** Write back with this context to replace this update's value. */
  readonly context: string
}

export type CrdtOptions = ReadOptions & Pick<WriteOptions, 'w'>

/**
 * A PN-counter stored at a key: increments and decrements from any number of clients and nodes,
 * concurrent or partitioned, all count once the replicas merge.
 *
 * @example
 * ```ts
 * const views = client.counter('page:home:views')
 * await views.increment()          // 1
 * await views.increment(5)         // 6
 * await views.decrement(2)         // 4
 * await views.value()              // 4, with every other writer's increments merged in
 * ```
 */
export interface ShoalCounter {
  /** Adds `by` (default 1; a safe integer, negative decrements). Resolves with the value this write made. */
  increment: (by?: number, options?: CrdtOptions) => Promise<number>
  /** Subtracts `by` (default 1). */
  decrement: (by?: number, options?: CrdtOptions) => Promise<number>
  /** The counter's value: 0 when the key was never written. */
  value: (options?: ReadOptions) => Promise<number>
}

/**
 * An add-wins observed-remove set stored at a key: adds and removes from anywhere merge, and an
 * add concurrent with a remove of the same member wins.
 *
 * @example
 * ```ts
 * const cart = client.set('cart:42')
 * await cart.add('apples')
 * await cart.add('pears')
 * await cart.remove('apples')
 * const items = (await cart.members()).map(m => new TextDecoder().decode(m))   // ['pears']
 * ```
 */
export interface ShoalSet {
  add: (member: string | Uint8Array, options?: CrdtOptions) => Promise<void>
  /** Removes every add of `member` this read observed; false when it was not there. */
  remove: (member: string | Uint8Array, options?: CrdtOptions) => Promise<boolean>
  /** The members, in byte order (UTF-8 for text). */
  members: (options?: ReadOptions) => Promise<Uint8Array[]>
  has: (member: string | Uint8Array, options?: ReadOptions) => Promise<boolean>
}

/** What the operations need of a node or a client: a quorum read, and a write that may carry a CRDT value. */
export interface KvBackend {
  get: (key: string | Uint8Array, options?: ReadOptions) => Promise<GetResult | undefined>
  /** A put (null: a delete) without the reserved-prefix check. */
  write: (key: string | Uint8Array, value: Uint8Array | null, options: WriteOptions) => Promise<PutResult>
}

const DEFAULT_ATTEMPTS = 5
const MAX_ATTEMPTS = 100
const BACKOFF_BASE_MS = 20
const BACKOFF_CAP_MS = 1000

/** The operations of one node process or client instance (each has its own CRDT actor). */
export class KvOps {
  private readonly backend: KvBackend
  private readonly resolver: Resolver | undefined
  /**
   * This instance's PN-counter actor: random, so no other writer ever shares it, and new with
   * every instance, so a restarted process that forgot its totals starts an entry of its own
   * rather than lowering the old one.
   */
  private readonly actor: string = bytesId(randomBytes(8))
  /**
   * Our own last entry per counter key. An entry must only grow from our own latest: a read may
   * be stale (a sloppy quorum, a replica that missed our last write), and building on a stale
   * entry would write totals below ones we already wrote, losing increments once the join takes
   * the larger. Remembered before each write is sent, since a write whose outcome is unknown may
   * have landed: the next increment then counts on top of it rather than beneath it.
   */
  private readonly ownEntries = new Map<string, CounterEntry>()

  constructor (backend: KvBackend, resolver?: Resolver) {
    checkResolver(resolver)
    this.backend = backend
    this.resolver = resolver
  }

  /**
   * Read-modify-write with the causal context handled: reads with R, resolves siblings (the
   * call's resolver, else this instance's), calls `fn` once with the value (undefined when the key
   * is absent), and writes its result (or {@link DELETE}) with the read's context, replacing
   * exactly what was read. If a concurrent write slipped in between the read and the write (the
   * written object still has a sibling beside ours), reads again, resolves the siblings, ours
   * among them, and writes that back, with jittered backoff, up to `attempts` writes in all.
   *
   * Throws SiblingsError (nothing written) on siblings with no resolver; ConflictError when
   * siblings remain after the last attempt (our value is stored, nothing is lost); WrongTypeError
   * on a counter or set; InvalidArgumentError when `fn` returns anything but a string, bytes or
   * DELETE, or bytes in the reserved CRDT space.
   *
   * @example
   * ```ts
   * const merge: Resolver = siblings => siblings.reduce((a, b) => a.byteLength >= b.byteLength ? a : b)
   * const { value } = await client.update('notes:7', current => `${decode(current)}\n- buy pears`, { resolver: merge })
   * ```
   */
  async update (key: string | Uint8Array, fn: UpdateFunction, options: UpdateOptions = {}): Promise<UpdateResult> {
    if (typeof fn !== 'function') throw new InvalidArgumentError('update needs a function (current) => new value')
    const resolver = options.resolver ?? this.resolver
    checkResolver(resolver)
    const attempts = options.attempts ?? DEFAULT_ATTEMPTS
    if (!Number.isInteger(attempts) || attempts < 1 || attempts > MAX_ATTEMPTS) throw new InvalidArgumentError(`attempts must be an integer from 1 to ${MAX_ATTEMPTS}, got ${attempts}`)
    const readOptions = options.r === undefined ? {} : { r: options.r }
    const writeOptions = options.w === undefined ? {} : { w: options.w }

    const read = await this.backend.get(key, readOptions)
    let current: Uint8Array | undefined
    if (read !== undefined) {
      if (read.siblings.length > 1 && resolver === undefined) {
        throw new SiblingsError(`the key has ${read.siblings.length} siblings (concurrent writes) and no resolver was given: pass { resolver } to update, or to createNode/createClient (lastWriterWins only if losing a write is acceptable)`)
      }
      current = read.siblings.length === 1 ? read.siblings[0] : resolve(resolver as Resolver, read)
      if (current !== undefined && isReserved(current)) {
        throw new WrongTypeError('the key holds a Shoal counter or set: change it with counter() or set(), not update()')
      }
    }
    const returned = await fn(current)
    const value = returned === DELETE ? null : plainValue(returned, 'the update function must return a string, a Uint8Array or DELETE')
    let result = await this.backend.write(key, value, { ...writeOptions, ...(read === undefined ? {} : { context: read.context }) })

    // Our write is stored; a live sibling beside it (beside our tombstone, for a delete) means a
    // concurrent write slipped in between our read and write. Re-running fn would apply it twice
    // (its result is one of the siblings), so a retry resolves the siblings, ours included, and
    // writes the resolution back.
    for (let attempt = 1; result.siblings > (attempt === 1 && value === null ? 0 : 1); attempt++) {
      if (resolver === undefined) {
        throw new ConflictError('the update was written, but a concurrent write kept another value beside it: pass a resolver to merge them')
      }
      if (attempt >= attempts) {
        throw new ConflictError(`the update was written, but concurrent writes still left siblings after ${attempts} attempts`)
      }
      await sleep(backoff(attempt))
      const again = await this.backend.get(key, readOptions)
      if (again === undefined || again.siblings.length <= 1) {
        return { value: again?.siblings[0], context: again?.context ?? result.context }
      }
      const resolved = resolve(resolver, again)
      result = await this.backend.write(key, resolved, { ...writeOptions, context: again.context })
      if (result.siblings <= 1) return { value: resolved, context: result.context }
    }
    return { value: value ?? undefined, context: result.context }
  }

  counter (key: string | Uint8Array): ShoalCounter {
    checkKeyArg(key)
    return {
      increment: async (by = 1, options = {}) => await this.increment(key, by, options),
      decrement: async (by = 1, options = {}) => {
        checkAmount(by)
        return await this.increment(key, -by, options)
      },
      value: async (options = {}) => counterValue(await this.readCounter(key, options))
    }
  }

  set (key: string | Uint8Array): ShoalSet {
    checkKeyArg(key)
    return {
      add: async (member, options = {}) => {
        const bytes = memberBytes(member)
        const { state, context } = await this.readSet(key, options)
        await this.writeCrdt(key, { type: 'set', state: add(state, bytes, randomBytes(TAG_BYTES)) }, context, options)
      },
      remove: async (member, options = {}) => {
        const bytes = memberBytes(member)
        const { state, context } = await this.readSet(key, options)
        // Nothing observed, nothing to tombstone: a write would change nothing.
        if (!has(state, bytes)) return false
        await this.writeCrdt(key, { type: 'set', state: remove(state, bytes) }, context, options)
        return true
      },
      members: async (options = {}) => members((await this.readSet(key, options)).state),
      has: async (member, options = {}) => has((await this.readSet(key, options)).state, memberBytes(member))
    }
  }

  private async increment (key: string | Uint8Array, by: number, options: CrdtOptions): Promise<number> {
    checkAmount(by)
    const { state, context } = await this.readTyped(key, 'counter', options)
    const id = bytesId(toBytes(key))
    const from = maxEntry(this.ownEntries.get(id), (state as CounterState).get(this.actor))
    const next = bump(state as CounterState, this.actor, from, by)
    // Before the write is sent: see ownEntries.
    this.ownEntries.set(id, next.get(this.actor) as CounterEntry)
    await this.writeCrdt(key, { type: 'counter', state: next }, context, options)
    return counterValue(next)
  }

  private async readCounter (key: string | Uint8Array, options: ReadOptions): Promise<CounterState> {
    return (await this.readTyped(key, 'counter', options)).state as CounterState
  }

  private async readSet (key: string | Uint8Array, options: ReadOptions): Promise<{ state: OrSetState, context: string | undefined }> {
    const { state, context } = await this.readTyped(key, 'set', options)
    return { state: state as OrSetState, context }
  }

  /**
   * The key's state as a CRDT of `type` (the empty state when absent). Reads join siblings that
   * are all states of one type (readResult), so more than one sibling here means something else
   * is there too: a plain value, another type, a malformed state.
   */
  private async readTyped (key: string | Uint8Array, type: CrdtType, options: ReadOptions): Promise<{ state: CounterState | OrSetState, context: string | undefined }> {
    const read = await this.backend.get(key, options.r === undefined ? {} : { r: options.r })
    if (read === undefined) return { state: type === 'counter' ? EMPTY_COUNTER : EMPTY_SET, context: undefined }
    const decoded = read.siblings.length === 1 ? decodeCrdt(read.siblings[0] as Uint8Array) : undefined
    if (decoded?.type !== type) {
      const held = read.siblings.length > 1 ? `${read.siblings.length} siblings that are not all ${type} states` : decoded === undefined ? 'a plain value (or a state this version of Shoal cannot read)' : `a ${decoded.type}`
      throw new WrongTypeError(`the key holds ${held}, not a ${type}: nothing was written`)
    }
    return { state: decoded.state, context: read.context }
  }

  private async writeCrdt (key: string | Uint8Array, value: Parameters<typeof encodeCrdt>[0], context: string | undefined, options: CrdtOptions): Promise<void> {
    await this.backend.write(key, encodeCrdt(value), { ...(options.w === undefined ? {} : { w: options.w }), ...(context === undefined ? {} : { context }) })
  }
}

/**
 * A read with its siblings merged into one by `resolver` (for `get(key, { resolver })`): the
 * context still covers every sibling, so a write with it replaces them all.
 */
export function resolveRead (read: GetResult | undefined, resolver: Resolver | undefined): GetResult | undefined {
  if (resolver === undefined || read === undefined || read.siblings.length < 2) return read
  const timestamps = read.timestamps ?? []
  return { siblings: [resolve(resolver, read)], context: read.context, timestamps: timestamps.length === 0 ? [] : [Math.max(...timestamps)] }
}

/** Bad input is refused before anything is sent. */
export function checkResolver (resolver: unknown): void {
  if (resolver !== undefined && typeof resolver !== 'function') throw new InvalidArgumentError('resolver must be a function (siblings) => value')
}

function resolve (resolver: Resolver, read: GetResult): Uint8Array {
  const info = read.siblings.map((_, i) => ({ timestamp: read.timestamps?.[i] ?? 0 }))
  const resolved = resolver([...read.siblings], info)
  if (!(resolved instanceof Uint8Array)) throw new InvalidArgumentError('a resolver must return a Uint8Array')
  if (isReserved(resolved)) throw new WrongTypeError('a resolver may not return a value in the reserved CRDT space')
  return resolved
}

function plainValue (value: unknown, what: string): Uint8Array {
  if (typeof value === 'string') return toBytes(value)
  if (!(value instanceof Uint8Array)) throw new InvalidArgumentError(what)
  refuseReserved(value)
  return value
}

function memberBytes (member: string | Uint8Array): Uint8Array {
  if (typeof member !== 'string' && !(member instanceof Uint8Array)) throw new InvalidArgumentError('a set member is a string or a Uint8Array')
  return toBytes(member)
}

function checkKeyArg (key: string | Uint8Array): void {
  if (typeof key !== 'string' && !(key instanceof Uint8Array)) throw new InvalidArgumentError('a key is a string or a Uint8Array')
}

function checkAmount (by: number): void {
  if (!Number.isSafeInteger(by)) throw new InvalidArgumentError(`a counter moves by a safe integer, got ${String(by)}`)
}

/** Exponential with full jitter: retries of concurrent updaters spread out instead of colliding again. */
function backoff (attempt: number): number {
  return Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt)
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}
