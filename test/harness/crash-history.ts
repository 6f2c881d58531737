/**
 * What the crash harness's writers did, and the judgement of a read against it. Each key belongs
 * to one writer, which writes it as a chain: a blind first write, then overwrites with the context
 * the previous acknowledged write returned. After an outcome it cannot know (an error: the write
 * may or may not have landed) the writer leaves the key alone, so a chain ends in at most one
 * unknown write.
 */

export type Outcome = 'pending' | 'ok' | 'unknown'

export interface Write {
  readonly value: string
  /** The write quorum asked for: 3 means every replica acknowledged it. */
  readonly w: number
  /** Started before the kill of its round. */
  readonly beforeKill: boolean
  outcome: Outcome
}

export interface KeyHistory {
  readonly key: string
  readonly round: number
  readonly writes: Write[]
  /** The context of the last acknowledged write: the next overwrite replaces exactly it. */
  context?: string
}

export type Verdict =
  | { readonly kind: 'ok' }
  /** An acknowledged write, and every later write of the key, are all missing. */
  | { readonly kind: 'lost', readonly expected: string }
  /** Values that are neither the last acknowledged write nor a later unknown one. */
  | { readonly kind: 'unexpected', readonly values: readonly string[] }

/**
 * Judges the siblings read for a key (undefined: not found). Allowed are the last acknowledged
 * write and the unknown write after it (which replaced it if it landed); with no acknowledged
 * write, the unknown one, or nothing.
 */
export function judge (history: KeyHistory, siblings: readonly string[] | undefined): Verdict {
  const writes = history.writes.filter(w => w.outcome !== 'pending')
  let acked = -1
  for (let i = 0; i < writes.length; i++) if (writes[i]!.outcome === 'ok') acked = i
  const allowed = new Set(writes.slice(Math.max(acked, 0)).map(w => w.value))
  const present = siblings ?? []
  const unexpected = present.filter(v => !allowed.has(v))
  if (unexpected.length > 0) return { kind: 'unexpected', values: unexpected }
  if (acked >= 0 && !present.some(v => allowed.has(v))) return { kind: 'lost', expected: writes[acked]!.value }
  return { kind: 'ok' }
}

/**
 * Whether a replica's copy (its siblings) holds the write at `index`, or a later write of the key
 * (which replaced it): what a replica that acknowledged the write must show.
 */
export function holdsFrom (history: KeyHistory, index: number, siblings: readonly string[] | undefined): boolean {
  const later = new Set(history.writes.slice(index).map(w => w.value))
  return (siblings ?? []).some(v => later.has(v))
}

/** Whether any write of the key was acknowledged. */
export function acknowledged (history: KeyHistory): boolean {
  return history.writes.some(w => w.outcome === 'ok')
}
