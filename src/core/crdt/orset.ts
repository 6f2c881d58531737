/**
 * Add-wins observed-remove set (OR-set; Shapiro et al. 2011, Bieniusa et al. 2012). Every add of
 * a member carries a fresh random tag; a remove tombstones the tags of that member the remover
 * has observed. A member is in the set while it has a tag that is not tombstoned, so an add
 * concurrent with a remove wins: the remove never saw the add's tag.
 *
 * The join unions tags and tombstones; tombstoned tags are then dropped from the members (a
 * tombstone is forever, so the tag it kills need not be kept). Commutative, associative and
 * idempotent. Tombstones (8 bytes each) are the price of removes needing no causal context.
 */
import { reader, writer } from 'protons-runtime'
import { bytesId, compareBytes, fromBytesId } from '../bytes.ts'
import { InvalidArgumentError, MalformedDataError } from '../errors.ts'
import { LENGTH_DELIMITED, plainBytes, readBytes, readVarint, skipField } from '../protobuf.ts'

export const TAG_BYTES = 8
export const MAX_MEMBER_BYTES = 4096

/** Members and tags are {@link bytesId} strings of their bytes. */
export interface OrSetState {
  /** member -> its live (not tombstoned) tags; never an empty set. */
  readonly adds: ReadonlyMap<string, ReadonlySet<string>>
  /** Tags removed for good. */
  readonly removed: ReadonlySet<string>
}

export const EMPTY_SET: OrSetState = { adds: new Map(), removed: new Set() }

const TAG_MEMBER_ENTRY = (1 << 3) | LENGTH_DELIMITED
const TAG_REMOVED = (2 << 3) | LENGTH_DELIMITED
const TAG_MEMBER = (1 << 3) | LENGTH_DELIMITED
const TAG_TAGS = (2 << 3) | LENGTH_DELIMITED

/** The members, in byte order. */
export function members (state: OrSetState): Uint8Array[] {
  return [...state.adds.keys()].map(fromBytesId).sort(compareBytes)
}

export function has (state: OrSetState, member: Uint8Array): boolean {
  return state.adds.has(bytesId(member))
}

/** Adds `member` under the fresh tag `tag` (TAG_BYTES random bytes). */
export function add (state: OrSetState, member: Uint8Array, tag: Uint8Array): OrSetState {
  checkMember(member)
  if (tag.byteLength !== TAG_BYTES) throw new InvalidArgumentError(`a tag is ${TAG_BYTES} bytes`)
  const id = bytesId(member)
  const adds = new Map(state.adds)
  adds.set(id, new Set([...(state.adds.get(id) ?? []), bytesId(tag)]))
  return { adds, removed: state.removed }
}

/** Removes `member` by tombstoning the tags of it this state holds (those the remover observed). */
export function remove (state: OrSetState, member: Uint8Array): OrSetState {
  checkMember(member)
  const id = bytesId(member)
  const tags = state.adds.get(id)
  if (tags === undefined) return state
  const adds = new Map(state.adds)
  adds.delete(id)
  return { adds, removed: new Set([...state.removed, ...tags]) }
}

export function join (a: OrSetState, b: OrSetState): OrSetState {
  const removed = b.removed.size === 0 ? a.removed : a.removed.size === 0 ? b.removed : new Set([...a.removed, ...b.removed])
  const adds = new Map<string, ReadonlySet<string>>()
  for (const side of [a, b]) {
    for (const [member, tags] of side.adds) {
      const live = new Set(adds.get(member))
      for (const tag of tags) if (!removed.has(tag)) live.add(tag)
      if (live.size > 0) adds.set(member, live)
    }
  }
  return { adds, removed }
}

/** Canonical body: members in byte order, tags sorted and concatenated; tombstones sorted, concatenated. */
export function encodeBody (state: OrSetState): Uint8Array {
  const w = writer()
  for (const member of members(state)) {
    const tags = sortedTags(state.adds.get(bytesId(member)) ?? new Set())
    w.uint32(TAG_MEMBER_ENTRY).fork()
    w.uint32(TAG_MEMBER).bytes(member)
    w.uint32(TAG_TAGS).bytes(tags)
    w.ldelim()
  }
  if (state.removed.size > 0) w.uint32(TAG_REMOVED).bytes(sortedTags(state.removed))
  return w.finish()
}

/** A body from untrusted bytes: throws MalformedDataError (only) when it does not decode. */
export function decodeBody (bytes: Uint8Array): OrSetState {
  const adds = new Map<string, Set<string>>()
  const removed = new Set<string>()
  const r = reader(plainBytes(bytes))
  while (r.pos < r.len) {
    const tag = readVarint(r)
    if (tag === TAG_REMOVED) {
      for (const t of splitTags(readBytes(r, bytes.byteLength, 'tombstones'))) removed.add(t)
    } else if (tag === TAG_MEMBER_ENTRY) {
      const entry = reader(readBytes(r, bytes.byteLength, 'set member'))
      let member: Uint8Array | undefined
      const tags = new Set<string>()
      while (entry.pos < entry.len) {
        const field = readVarint(entry)
        if (field === TAG_MEMBER) member = readBytes(entry, MAX_MEMBER_BYTES, 'member')
        else if (field === TAG_TAGS) for (const t of splitTags(readBytes(entry, bytes.byteLength, 'tags'))) tags.add(t)
        else skipField(entry, field)
      }
      if (member === undefined) throw new MalformedDataError('a set entry has no member')
      const id = bytesId(member)
      if (adds.has(id)) throw new MalformedDataError('a set names a member twice')
      adds.set(id, tags)
    } else {
      skipField(r, tag)
    }
  }
  // Normal form: a tombstoned tag is dead, a member without live tags is absent.
  for (const [member, tags] of adds) {
    for (const t of tags) if (removed.has(t)) tags.delete(t)
    if (tags.size === 0) adds.delete(member)
  }
  return { adds, removed }
}

function checkMember (member: Uint8Array): void {
  if (!(member instanceof Uint8Array) || member.byteLength === 0 || member.byteLength > MAX_MEMBER_BYTES) {
    throw new InvalidArgumentError(`a set member must be 1 to ${MAX_MEMBER_BYTES} bytes`)
  }
}

function sortedTags (tags: ReadonlySet<string>): Uint8Array {
  const out = new Uint8Array(tags.size * TAG_BYTES)
  ;[...tags].sort().forEach((t, i) => { out.set(fromBytesId(t), i * TAG_BYTES) })
  return out
}

function splitTags (bytes: Uint8Array): string[] {
  if (bytes.byteLength % TAG_BYTES !== 0) throw new MalformedDataError(`tags are ${TAG_BYTES} bytes each`)
  const out: string[] = []
  for (let i = 0; i < bytes.byteLength; i += TAG_BYTES) out.push(bytesId(bytes.subarray(i, i + TAG_BYTES)))
  return out
}
