/**
 * The counter workload of a chaos run: the set workload's process (set-workload.ts) with another
 * operation. Each client loops: pick a key, increment its PN-counter by 1 to 5 through
 * `client.counter(key).increment()`, and report the increment with its outcome: ok
 * (acknowledged), failed (definitely not applied) or unknown. The checker (counter-checker.ts)
 * then wants each counter's final value between the acknowledged sum and the sum of every
 * increment that may have been applied.
 */
import { decodeCrdt } from '../../src/core/crdt/typed-value.ts'
import { counterValue } from '../../src/core/crdt/counter.ts'
import type { GetResult } from '../../src/node.ts'
import type { AddOutcome } from './protocol.ts'
import { definite, emit, runWorkloadProcess } from './set-workload.ts'
import type { WorkloadKind } from './set-workload.ts'

/** A counter's value as the checker's one "element"; anything else says what it is instead. */
export function counterElements (result: GetResult | undefined): string[] {
  if (result === undefined) return ['0']
  const decoded = result.siblings.length === 1 ? decodeCrdt(result.siblings[0] as Uint8Array) : undefined
  if (decoded?.type !== 'counter') return [`<not a counter: ${result.siblings.length} siblings>`]
  return [String(counterValue(decoded.state))]
}

export const counterKind: WorkloadKind = {
  prefix: 'counter',
  elementsOf: counterElements,
  step: async (client, id, key, _n, random) => {
    const amount = random.int(1, 5)
    const started = Date.now()
    let outcome: AddOutcome = 'ok'
    let error: string | undefined
    try {
      await client.counter(key).increment(amount)
    } catch (err) {
      // A failed read is a failed increment too (nothing was written): this side cannot tell the
      // read's errors from the write's, so only errors raised before anything was sent are definite.
      outcome = definite(err) ? 'failed' : 'unknown'
      error = (err as Error).name
    }
    emit({ event: 'incr', client: id, key, amount, outcome, ...(error === undefined ? {} : { error }), ms: Date.now() - started })
    return outcome
  }
}

if (import.meta.main) await runWorkloadProcess(counterKind)
