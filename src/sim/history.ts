import { covers, equals, merge } from '../core/causality.ts'
import type { Dot, DvvSet, VersionVector } from '../core/causality.ts'
import { bytesEqual } from '../core/bytes.ts'

/** One write a client attempted, and what became of it. */
export interface WriteRecord {
  readonly key: string
  /** Unique per write; null for a delete. */
  readonly value: string | null
  readonly context: VersionVector
  outcome: 'pending' | 'ok' | 'failed' | 'unknown'
  /** The dot the coordinator gave it, known once acknowledged. */
  dot?: Dot
}

export interface Violation {
  readonly property: 'lost' | 'phantom' | 'divergent' | 'membership' | 'corrupt'
  readonly key?: string
  readonly detail: string
}

/**
 * Everything clients did, for the checker: Jepsen's idea of recording every attempt and outcome
 * and judging the final state against it.
 */
export class History {
  readonly writes: WriteRecord[] = []
  readonly violations: Violation[] = []
  reads = 0
  private readonly attempted = new Map<string, Set<string>>()

  attempt (key: string, value: string | null, context: VersionVector): WriteRecord {
    const record: WriteRecord = { key, value, context, outcome: 'pending' }
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
   * The final state of one key, merged from its replicas. Every acknowledged write must be there
   * as a sibling with its value, or be covered by the version vector and superseded by a write
   * whose context saw it. Anything else is a lost write.
   */
  checkFinal (key: string, final: DvvSet | undefined): void {
    if (final !== undefined) this.checkPhantoms(key, final, 'the final state')
    for (const write of this.writes) {
      if (write.key !== key || write.outcome !== 'ok' || write.dot === undefined) continue
      const dot = write.dot
      const sibling = final?.siblings.find(s => s.dot.actor === dot.actor && s.dot.counter === dot.counter)
      if (sibling !== undefined) {
        const expected = write.value === null ? null : new TextEncoder().encode(write.value)
        const same = expected === null ? sibling.value === null : sibling.value !== null && bytesEqual(sibling.value, expected)
        if (!same) this.violations.push({ property: 'corrupt', key, detail: `dot ${dot.actor}:${dot.counter} holds another value than the write acknowledged with it` })
        continue
      }
      const superseded = final !== undefined && covers(final.vv, dot) &&
        this.writes.some(w => w.key === key && w !== write && covers(w.context, dot))
      if (!superseded) {
        this.violations.push({ property: 'lost', key, detail: `acknowledged write ${JSON.stringify(write.value)} (dot ${dot.actor}:${dot.counter}) is gone and no later write saw it` })
      }
    }
  }

  /** All replicas of a key hold the same object once repair has run. */
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

function sameCopy (a: DvvSet | undefined, b: DvvSet | undefined): boolean {
  if (a === undefined || b === undefined) return a === b
  return equals(a, b)
}
