/**
 * The counter checker: pure, from the counter workload's history and the final reads. For each
 * key, every final R = N read must lie between the acknowledged sum (increments that returned ok)
 * and the possible sum (ok and unknown ones: an unknown increment may or may not have landed),
 * and the reads through every node must agree.
 *
 * In the set checker's terms (so the run's summary reads the same): lost = a read below the
 * acknowledged sum; unexpected = a read above the possible sum (or not a counter at all);
 * recovered = units of unknown increments that landed; divergent = owners' copies still differ,
 * or reads through different nodes disagree.
 */
import type { CheckResult, Finding } from './checker.ts'
import { renderTable } from '../../src/cli/table.ts'
import type { FinalRead, IncrementRecord } from './protocol.ts'

export interface CounterSum {
  readonly key: string
  /** Σ of acknowledged increments. */
  readonly acknowledged: number
  /** Σ of acknowledged and unknown increments: the most the counter may hold. */
  readonly possible: number
  /** Σ of every increment tried, definitely failed ones included. */
  readonly attempted: number
  /** The final reads' values, one per node that answered. */
  readonly values: number[]
}

export interface CounterCheckResult extends CheckResult {
  readonly sums: CounterSum[]
}

export function checkCounters (incrs: readonly IncrementRecord[], finals: Readonly<Record<string, readonly FinalRead[]>>, divergent: readonly string[]): CounterCheckResult {
  const lost: Finding[] = []
  const unexpected: Finding[] = []
  const unreadable: string[] = []
  const disagreeing: string[] = []
  const sums: CounterSum[] = []
  let recovered = 0
  for (const [key, reads] of Object.entries(finals)) {
    const mine = incrs.filter(i => i.key === key)
    const sum = (of: readonly IncrementRecord[]): number => of.reduce((n, i) => n + i.amount, 0)
    const acknowledged = sum(mine.filter(i => i.outcome === 'ok'))
    const possible = sum(mine.filter(i => i.outcome !== 'failed'))
    const ok = reads.flatMap(r => 'elements' in r ? [{ node: r.node, element: r.elements[0] ?? '' }] : [])
    if (ok.length === 0) unreadable.push(key)
    const values: number[] = []
    for (const { node, element } of ok) {
      const value = /^-?\d+$/.test(element) ? Number(element) : Number.NaN
      if (Number.isNaN(value) || value > possible) unexpected.push({ key, element: `${element} > possible ${possible}`, nodes: [node] })
      else if (value < acknowledged) lost.push({ key, element: `${value} < acknowledged ${acknowledged}`, nodes: [node] })
      else values.push(value)
    }
    if (new Set(ok.map(r => r.element)).size > 1) disagreeing.push(key)
    if (values.length > 0) recovered += Math.max(...values) - acknowledged
    sums.push({ key, acknowledged, possible, attempted: sum(mine), values })
  }
  const allDivergent = [...new Set([...divergent, ...disagreeing])].sort()
  return {
    attempted: incrs.length,
    acknowledged: incrs.filter(i => i.outcome === 'ok').length,
    failed: incrs.filter(i => i.outcome === 'failed').length,
    unknown: incrs.filter(i => i.outcome === 'unknown').length,
    lost,
    unexpected,
    recovered,
    revived: [],
    divergent: allDivergent,
    unreadable: unreadable.sort(),
    sums,
    valid: lost.length === 0 && unexpected.length === 0 && allDivergent.length === 0 && unreadable.length === 0
  }
}

/** Per key: acknowledged ≤ value ≤ possible, as a table. */
export function counterTable (sums: readonly CounterSum[]): string {
  const rows = sums.map(s => [s.key, String(s.acknowledged), s.values.length === 0 ? '-' : [...new Set(s.values)].join('/'), String(s.possible), String(s.attempted)])
  const header = ['key', 'acknowledged', 'value', 'possible', 'attempted']
  return renderTable(header, rows, { right: header.map((_, i) => i) }).join('\n')
}
