import { covers, equals, merge } from '../core/causality.ts'
import type { Dot, DvvSet, Sibling, VersionVector } from '../core/causality.ts'
import { bytesEqual } from '../core/bytes.ts'

/** One write a client attempted, and what became of it. */
export interface WriteRecord {
  readonly key: string
  /** Unique per write; null for a delete. */
  readonly value: string | null
  readonly context: VersionVector
  /** Virtual time the client got `context` (from a read, or the answer to its last write). */
  readonly contextAt: number
  /** Virtual time the write was sent: its dot cannot be older. */
  readonly startedAt: number
  outcome: 'pending' | 'ok' | 'failed' | 'unknown'
  /** The dot the coordinator gave it, known once acknowledged. */
  dot?: Dot
  /** Virtual time of the acknowledgement: its dot is at least this old. */
  ackedAt?: number
}

export interface Violation {
  readonly property: 'lost' | 'phantom' | 'resurrected' | 'divergent' | 'leftover' | 'quiescence' | 'unavailable' | 'membership'
  readonly key?: string
  readonly detail: string
}

/**
 * Everything clients did, for the checker: Jepsen's idea of recording every attempt and outcome
 * and judging the final state against it.
 *
 * Writes are told apart by value (each unique), not by dot alone: once a tombstone is purged the
 * key starts afresh and its next write may get a dot an older, deleted write had. A context is
 * taken to have seen a write only if its dot covers the write's and the client got it after the
 * write was sent, so a dot reused after a purge is not mistaken for the older write's.
 */
export class History {
  readonly writes: WriteRecord[] = []
  readonly violations: Violation[] = []
  reads = 0
  private readonly attempted = new Map<string, Set<string>>()

  attempt (key: string, value: string | null, context: VersionVector, contextAt: number, startedAt: number): WriteRecord {
    const record: WriteRecord = { key, value, context, contextAt, startedAt, outcome: 'pending' }
    this.writes.push(record)
    if (value !== null) {
      let set = this.attempted.get(key)
      if (set === undefined) this.attempted.set(key, set = new Set())
      set.add(value)
    }
    return record
  }

  /** Every value a read returns must have been written by some client. */
  observeRead (key: string, object: DvvSet | undefined): void {
    this.reads++
    if (object !== undefined) this.checkPhantoms(key, object, 'read')
  }

  checkPhantoms (key: string, object: DvvSet, where: string): void {
    const attempted = this.attempted.get(key)
    for (const sibling of object.siblings) {
      if (sibling.value === null) continue
      const text = new TextDecoder().decode(sibling.value)
      if (attempted?.has(text) !== true) {
        this.violations.push({ property: 'phantom', key, detail: `${where} returned ${JSON.stringify(text)}, which no client wrote` })
      }
    }
  }

  /**
   * The final state of one key (undefined: no replica holds it, e.g. its tombstone was purged).
   * Every acknowledged write must be there as a sibling with its value, or have been superseded:
   * another write's context saw it (a later write or a delete replaced it). Anything else is a
   * lost write. A value still there must not have been seen and replaced by an acknowledged write
   * (a delete that came undone): that is a resurrection. A delete's own tombstone may vanish, as
   * the reaper purges it.
   */
  checkFinal (key: string, final: DvvSet | undefined): void {
    if (final !== undefined) this.checkPhantoms(key, final, 'the final state')
    const writes = this.writes.filter(w => w.key === key)
    for (const write of writes) {
      if (write.outcome !== 'ok' || write.dot === undefined) continue
      const dot = write.dot
      const sibling = final?.siblings.find(s => s.dot.actor === dot.actor && s.dot.counter === dot.counter)
      if (sibling !== undefined && holds(sibling, write.value)) {
        if (write.value === null) continue
        // Seen by an acknowledged write that came after it was acknowledged, and still here.
        const ackedAt = write.ackedAt ?? Infinity
        const replacer = writes.find(w => w !== write && w.outcome === 'ok' && covers(w.context, dot) && w.contextAt >= ackedAt)
        if (replacer !== undefined) {
          this.violations.push({
            property: 'resurrected',
            key,
            detail: `${JSON.stringify(write.value)} (dot ${dot.actor}:${dot.counter}) is back, though the acknowledged ${replacer.value === null ? 'delete' : `write ${JSON.stringify(replacer.value)}`} at ${replacer.startedAt} ms had seen and replaced it`
          })
        }
        continue
      }
      // A delete's tombstone is purged in time: what it must do, hide what it saw, is checked above.
      if (write.value === null) continue
      const superseded = writes.some(w => w !== write && covers(w.context, dot) && w.contextAt >= write.startedAt)
      if (!superseded) {
        const reused = sibling === undefined ? '' : `; its dot now holds ${sibling.value === null ? 'a tombstone' : JSON.stringify(new TextDecoder().decode(sibling.value))}`
        this.violations.push({ property: 'lost', key, detail: `acknowledged write ${JSON.stringify(write.value)} (dot ${dot.actor}:${dot.counter}, at ${write.startedAt} ms) is gone and no later write saw it${reused}` })
      }
    }
  }

  /** All replicas of a key hold the same object once repair has run; returns their merge. */
  checkConverged (key: string, copies: ReadonlyMap<string, DvvSet | undefined>): DvvSet | undefined {
    let merged: DvvSet | undefined
    let first: DvvSet | undefined
    let firstSet = false
    let diverged = false
    for (const copy of copies.values()) {
      if (!firstSet) { first = copy; firstSet = true } else if (!sameCopy(first, copy)) diverged = true
      if (copy !== undefined) merged = merged === undefined ? copy : merge(merged, copy)
    }
    if (diverged) {
      const summary = [...copies].map(([m, c]) => `${m.slice(-6)}: ${c === undefined ? 'none' : `${c.siblings.length} siblings`}`).join(', ')
      this.violations.push({ property: 'divergent', key, detail: `replicas differ after repair (${summary})` })
    }
    return merged
  }

  counts (): Record<WriteRecord['outcome'], number> {
    const counts = { pending: 0, ok: 0, failed: 0, unknown: 0 }
    for (const w of this.writes) counts[w.outcome]++
    return counts
  }
}

/** Whether the sibling is this write's: same value (values are unique), tombstones alike. */
function holds (sibling: Sibling, value: string | null): boolean {
  if (value === null || sibling.value === null) return value === sibling.value
  return bytesEqual(sibling.value, new TextEncoder().encode(value))
}

function sameCopy (a: DvvSet | undefined, b: DvvSet | undefined): boolean {
  if (a === undefined || b === undefined) return a === b
  return equals(a, b)
}
