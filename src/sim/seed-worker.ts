import { parentPort, workerData } from 'node:worker_threads'
import { runOne } from './parallel.ts'
import type { SeedChunk, SeedWorkerData } from './parallel.ts'

/**
 * A simulator worker thread (started by runSeeds): runs each chunk of seeds it is sent, one at a
 * time, and posts each seed's outcome back as soon as it has it.
 */
if (parentPort === null) throw new Error('seed-worker.ts runs as a worker thread of runSeeds')
const port = parentPort
const { options } = workerData as SeedWorkerData
port.on('message', (chunk: SeedChunk) => {
  void (async () => {
    for (const seed of chunk.seeds) port.postMessage(await runOne(seed, options))
  })()
})
