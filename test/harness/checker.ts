/**
 * The set checker (Jepsen's set test): pure, from the workload's history and the final reads.
 *
 * - lost: an acknowledged add missing from a final R = N read of its key (through any node);
 * - unexpected: an element in a final read that no client ever tried to add to that key;
 * - recovered: an add that was not acknowledged (failed or unknown) but is present;
 * - revived: a definitely failed add (nothing was sent) that is present anyway: impossible if
 *   the client's errors tell the truth, so it fails the run like a loss;
 * - divergent: keys whose owners' own copies (`--local`) still differ once the cluster settled;
 * - unreadable: keys no node could read with R = N after the heal.
 */
import type { AddRecord, FinalRead, NodeReport } from './protocol.ts'

export interface Finding {
  readonly key: string
  readonly element: string
  /** For a loss: the nodes through which the final read lacked it. */
  readonly nodes?: number[]
}

export interface CheckResult {
  readonly attempted: number
  readonly acknowledged: number
  readonly failed: number
  readonly unknown: number
  readonly lost: Finding[]
  readonly unexpected: Finding[]
  readonly recovered: number
  readonly revived: Finding[]
  readonly divergent: string[]
  readonly unreadable: string[]
  /** No loss, unexpected or revived element, divergence or unreadable key. */
  readonly valid: boolean
}

/** Judges a run: `adds` as recorded, `finals` every key's R = N read through each node, `divergent` from {@link divergentKeys}. */
export function checkSets (adds: readonly AddRecord[], finals: Readonly<Record<string, readonly FinalRead[]>>, divergent: readonly string[]): CheckResult {
  const attemptedOn = new Map<string, Set<string>>()
  for (const add of adds) {
    let set = attemptedOn.get(add.key)
    if (set === undefined) attemptedOn.set(add.key, set = new Set())
    set.add(add.element)
  }
  const present = new Map<string, Set<string>>()
  const readsOf = new Map<string, Array<{ node: number, elements: Set<string> }>>()
  const unreadable: string[] = []
  const unexpected: Finding[] = []
  for (const [key, reads] of Object.entries(finals)) {
    const ok = reads.flatMap(r => 'elements' in r ? [{ node: r.node, elements: new Set(r.elements) }] : [])
    if (ok.length === 0) unreadable.push(key)
    readsOf.set(key, ok)
    const union = new Set(ok.flatMap(r => [...r.elements]))
    present.set(key, union)
    for (const element of union) {
      if (attemptedOn.get(key)?.has(element) !== true) unexpected.push({ key, element })
    }
  }
  const lost: Finding[] = []
  const revived: Finding[] = []
  let recovered = 0
  for (const add of adds) {
    if (add.outcome === 'ok') {
      const reads = readsOf.get(add.key) ?? []
      const missing = reads.filter(r => !r.elements.has(add.element)).map(r => r.node)
      // A key nobody could read is reported as unreadable, not as a loss of each of its adds.
      if (missing.length > 0) lost.push({ key: add.key, element: add.element, nodes: missing })
      else if (!finals[add.key]) unreadable.push(add.key)
    } else if (present.get(add.key)?.has(add.element) === true) {
      recovered++
      if (add.outcome === 'failed') revived.push({ key: add.key, element: add.element })
    }
  }
  const unreadableKeys = [...new Set(unreadable)].sort()
  return {
    attempted: adds.length,
    acknowledged: adds.filter(a => a.outcome === 'ok').length,
    failed: adds.filter(a => a.outcome === 'failed').length,
    unknown: adds.filter(a => a.outcome === 'unknown').length,
    lost,
    unexpected,
    recovered,
    revived,
    divergent: [...divergent],
    unreadable: unreadableKeys,
    valid: lost.length === 0 && unexpected.length === 0 && revived.length === 0 && divergent.length === 0 && unreadableKeys.length === 0
  }
}

/**
 * Keys whose replicas disagree: the nodes holding a copy of the key must be exactly its owners
 * (when the reports name them; else any `n` nodes: no membership changes during a run) and hold
 * the same context and elements. Nodes whose rings name different owners, or a node that could
 * not be asked, make the key count as divergent: nothing settles that.
 */
export function divergentKeys (reports: readonly NodeReport[], keys: readonly string[], n: number): string[] {
  const out: string[] = []
  for (const key of keys) {
    const copies: string[] = []
    const holders: number[] = []
    const views = new Set<string>()
    let unknown = false
    for (const report of reports) {
      if (!('copies' in report)) { unknown = true; continue }
      const owners = report.owners?.[key]
      if (owners !== undefined) views.add(owners.join(','))
      const copy = report.copies[key]
      if (copy !== undefined && copy !== null) {
        copies.push(JSON.stringify([copy.context, copy.elements]))
        holders.push(report.node)
      }
    }
    const [view, ...others] = [...views]
    const wrongHolders = view === undefined ? copies.length !== n : holders.join(',') !== view
    if (unknown || others.length > 0 || (copies.length > 0 && (wrongHolders || new Set(copies).size !== 1))) out.push(key)
  }
  return out
}

/** Settled: every node answered, holds no hints, and no key diverges. */
export function settled (reports: readonly NodeReport[], keys: readonly string[], n: number): boolean {
  return reports.every(r => 'hintsPending' in r && r.hintsPending === 0) && divergentKeys(reports, keys, n).length === 0
}

export interface RunFigures {
  readonly seed: number
  readonly nemesisMs: number
  readonly convergeMs: number | undefined
  readonly events: Readonly<Record<string, number>>
  readonly crashes: number
  /** Reads of the workload that failed (no add followed them). */
  readonly readsFailed: number
  /** What the workload's operations are called in the table: 'adds' (default) or 'increments'. */
  readonly unit?: string
}

/** The summary table a chaos run prints. */
export function summaryTable (result: CheckResult, figures: RunFigures): string {
  const seconds = (ms: number | undefined): string => ms === undefined ? 'not reached' : `${(ms / 1000).toFixed(1)} s`
  const rows: Array<[string, string]> = [
    ['seed', String(figures.seed)],
    ['nemesis time', seconds(figures.nemesisMs)],
    ['nemesis events', Object.entries(figures.events).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'],
    ['reads failed (no add tried)', String(figures.readsFailed)],
    [`attempted ${figures.unit ?? 'adds'}`, String(result.attempted)],
    ['acknowledged', String(result.acknowledged)],
    ['failed (definite)', String(result.failed)],
    ['unknown', String(result.unknown)],
    ['lost', String(result.lost.length)],
    ['unexpected', String(result.unexpected.length)],
    ['recovered', String(result.recovered)],
    ['revived (failed yet present)', String(result.revived.length)],
    ['divergent keys', String(result.divergent.length)],
    ['unreadable keys', String(result.unreadable.length)],
    ['node crashes', String(figures.crashes)],
    ['time to converge', seconds(figures.convergeMs)],
    ['verdict', result.valid && figures.crashes === 0 ? 'valid' : 'INVALID']
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`)
  const sample = (what: string, found: readonly Finding[]): string[] => found.length === 0
    ? []
    : [`${what}: ${found.slice(0, 10).map(f => `${f.key}:${f.element}${f.nodes === undefined ? '' : ` (missing via ${f.nodes.map(i => `n${i + 1}`).join(',')})`}`).join(' ')}${found.length > 10 ? ' ...' : ''}`]
  return [...lines, ...sample('lost', result.lost), ...sample('unexpected', result.unexpected), ...sample('revived', result.revived),
    ...(result.divergent.length > 0 ? [`divergent: ${result.divergent.join(' ')}`] : []),
    ...(result.unreadable.length > 0 ? [`unreadable: ${result.unreadable.join(' ')}`] : [])].join('\n')
}
