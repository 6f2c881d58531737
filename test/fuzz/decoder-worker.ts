/**
 * Runs decoder cases in a worker thread, so that run.ts can tell a decoder that never returns (a
 * hang) from a slow one: the worker stores the case it is on in shared memory and reports progress;
 * the main thread stops it when progress stops.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { decoderTarget, runDecoderCase } from './decoders.ts'

export interface DecoderJob {
  readonly seed: number
  /** [target name, first case, case count] */
  readonly ranges: ReadonlyArray<readonly [string, number, number]>
  /** [target index in ranges, case index]: where the worker is now. */
  readonly position: SharedArrayBuffer
}

export type DecoderMessage =
  | { readonly type: 'progress', readonly target: string, readonly cases: number, readonly decoded: number, readonly ms: number }
  | { readonly type: 'failure', readonly target: string, readonly index: number, readonly kind: string, readonly failure: string, readonly hex: string }
  | { readonly type: 'done' }

const REPORT_EVERY = 2000

const job = workerData as DecoderJob
const position = new Int32Array(job.position)
const port = parentPort
if (port === null) throw new Error('decoder-worker.ts runs as a worker thread')

for (const [r, [name, from, count]] of job.ranges.entries()) {
  const target = decoderTarget(name)
  let cases = 0
  let decoded = 0
  let started = performance.now()
  Atomics.store(position, 0, r)
  for (let index = from; index < from + count; index++) {
    Atomics.store(position, 1, index)
    const result = runDecoderCase(target, job.seed, index)
    cases++
    if (result.outcome === 'decoded') decoded++
    if (result.failure !== undefined) {
      port.postMessage({ type: 'failure', target: name, index, kind: result.kind, failure: result.failure, hex: Buffer.from(result.bytes.subarray(0, 256)).toString('hex') } satisfies DecoderMessage)
    }
    if (cases === REPORT_EVERY || index === from + count - 1) {
      port.postMessage({ type: 'progress', target: name, cases, decoded, ms: performance.now() - started } satisfies DecoderMessage)
      cases = 0
      decoded = 0
      started = performance.now()
    }
  }
}
port.postMessage({ type: 'done' } satisfies DecoderMessage)
