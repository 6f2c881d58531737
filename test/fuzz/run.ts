/**
 * `npm run fuzz -- --cases N [--seed S] [--target decoders|handlers|all] [--time SECONDS]
 *  [--only NAME] [--case I]`
 *
 * Fuzzes every wire decoder in-process (decoders.ts, in a worker thread so a hang is caught) and
 * every protocol handler of a live node over real libp2p on 127.0.0.1 (handlers.ts). `--cases` is
 * per group: decoder cases are spread evenly over the decoders, handler cases over the protocols
 * (in batches, half of them without frames that decode as writes, so that nothing may change);
 * `--time` stops starting handler batches after that many seconds. Prints cases per target and
 * per second, and each failing case with the command that replays it. Exits 1 on any failure.
 *
 * `--only NAME` runs one decoder or protocol; `--case I` replays case I alone.
 */
import { parseArgs } from 'node:util'
import { Worker } from 'node:worker_threads'
import { DECODERS, decoderTarget, runDecoderCase } from './decoders.ts'
import type { DecoderJob, DecoderMessage } from './decoder-worker.ts'
import { HANDLER_TARGETS, HandlerFuzz } from './handlers.ts'
import type { HandlerTarget } from './handlers.ts'

/** No progress from the decoder worker for this long is a hang. */
const HANG_MS = 30_000
/** Handler cases between the checks of a batch (nothing escaped, nothing changed, puts and gets work). */
const BATCH = 500

const usage = 'usage: npm run fuzz -- --cases N [--seed S] [--target decoders|handlers|all] [--time SECONDS] [--only NAME] [--case I]'

interface Args {
  cases: number
  seed: number
  target: 'decoders' | 'handlers' | 'all'
  time: number
  only?: string
  case?: number
}

function parse (): Args {
  const { values } = parseArgs({
    options: {
      cases: { type: 'string', default: '10000' },
      seed: { type: 'string' },
      target: { type: 'string', default: 'all' },
      time: { type: 'string', default: '0' },
      only: { type: 'string' },
      case: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help === true) {
    console.log(usage)
    process.exit(0)
  }
  const int = (name: string, text: string | undefined, min: number): number => {
    const n = Number(text)
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${text}\n${usage}`)
    return n
  }
  const target = values.target
  if (target !== 'decoders' && target !== 'handlers' && target !== 'all') throw new Error(`--target must be decoders, handlers or all\n${usage}`)
  const known = [...DECODERS.map(d => d.name), ...HANDLER_TARGETS]
  if (values.only !== undefined && !known.includes(values.only)) throw new Error(`--only must be one of ${known.join(', ')}`)
  return {
    cases: int('cases', values.cases, 1),
    seed: values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : int('seed', values.seed, 0),
    target,
    time: int('time', values.time, 0),
    ...(values.only === undefined ? {} : { only: values.only }),
    ...(values.case === undefined ? {} : { case: int('case', values.case, 0) })
  }
}

interface Tally { cases: number, decoded: number, ms: number, failures: number }

function replay (args: Args, group: string, target: string, index: number): string {
  return `npm run fuzz -- --target ${group} --only ${target} --seed ${args.seed} --case ${index}`
}

function rate (cases: number, ms: number): string {
  return ms > 0 ? String(Math.round(cases / ms * 1000)) : '-'
}

/** Splits `total` cases over `names`, or runs the one case asked for. */
function ranges (args: Args, names: readonly string[]): Array<[string, number, number]> {
  const chosen = args.only === undefined ? names : names.filter(n => n === args.only)
  if (args.case !== undefined) return chosen.map(n => [n, args.case as number, 1])
  return chosen.map((n, i) => [n, 0, Math.floor(args.cases / chosen.length) + (i < args.cases % chosen.length ? 1 : 0)])
}

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes.subarray(0, 512)).toString('hex') + (bytes.length > 512 ? `... (${bytes.length} bytes)` : '')
}

async function fuzzDecoders (args: Args): Promise<number> {
  const jobRanges = ranges(args, DECODERS.map(d => d.name))
  if (jobRanges.length === 0) return 0
  if (args.case !== undefined) {
    // A replay: the case in full, before the worker runs it again under the watchdog.
    for (const [name, index] of jobRanges) {
      const result = runDecoderCase(decoderTarget(name), args.seed, index)
      console.log(`decoders ${name} case ${index} (${result.kind}): ${result.outcome}${result.failure === undefined ? '' : `, FAIL ${result.failure}`}\n  frame: ${hex(result.bytes)}`)
    }
  }
  const position = new SharedArrayBuffer(8)
  const at = new Int32Array(position)
  const tallies = new Map<string, Tally>(jobRanges.map(([name]) => [name, { cases: 0, decoded: 0, ms: 0, failures: 0 }]))
  const worker = new Worker(new URL('./decoder-worker.ts', import.meta.url), { workerData: { seed: args.seed, ranges: jobRanges, position } satisfies DecoderJob })
  const started = performance.now()
  let failures = 0
  await new Promise<void>((resolve, reject) => {
    let last = Date.now()
    const watchdog = setInterval(() => {
      if (Date.now() - last < HANG_MS) return
      clearInterval(watchdog)
      const [name] = jobRanges[Atomics.load(at, 0)] ?? ['?']
      const index = Atomics.load(at, 1)
      console.log(`FAIL decoders ${name} case ${index}: no progress for ${HANG_MS / 1000} s (a hang)\n  replay: ${replay(args, 'decoders', name, index)}`)
      failures++
      worker.terminate().then(() => { resolve() }, reject)
    }, 1000)
    worker.on('message', (message: DecoderMessage) => {
      last = Date.now()
      if (message.type === 'progress') {
        const t = tallies.get(message.target) as Tally
        t.cases += message.cases
        t.decoded += message.decoded
        t.ms += message.ms
      } else if (message.type === 'failure') {
        failures++
        const t = tallies.get(message.target) as Tally
        t.failures++
        if (t.failures <= 5) {
          console.log(`FAIL decoders ${message.target} case ${message.index} (${message.kind}): ${message.failure}\n  frame: ${message.hex}\n  replay: ${replay(args, 'decoders', message.target, message.index)}`)
        }
      } else {
        clearInterval(watchdog)
        resolve()
      }
    })
    worker.on('error', err => { clearInterval(watchdog); reject(err) })
  })
  const ms = performance.now() - started
  console.log('\ndecoder     cases      decoded  rejected  failures  cases/s')
  let total = 0
  for (const [name, t] of tallies) {
    total += t.cases
    console.log(`${name.padEnd(16)}${String(t.cases).padStart(9)}${String(t.decoded).padStart(10)}${String(t.cases - t.decoded).padStart(10)}${String(t.failures).padStart(10)}${rate(t.cases, t.ms).padStart(9)}`)
  }
  console.log(`decoders: ${total} cases in ${(ms / 1000).toFixed(1)} s (${rate(total, ms)}/s), ${failures} failures, seed ${args.seed}`)
  return failures
}

interface HandlerTally { cases: number, replied: number, reset: number, published: number, pulls: number, skipped: number, batches: number, clean: number, failures: number, ms: number }

async function fuzzHandlers (args: Args): Promise<number> {
  const jobRanges = ranges(args, HANDLER_TARGETS)
  if (jobRanges.length === 0) return 0
  const tallies = new Map<string, HandlerTally>(jobRanges.map(([name]) => [name, { cases: 0, replied: 0, reset: 0, published: 0, pulls: 0, skipped: 0, batches: 0, clean: 0, failures: 0, ms: 0 }]))
  const deadline = args.time > 0 ? Date.now() + args.time * 1000 : Infinity
  const fuzz = await HandlerFuzz.start()
  if (args.case !== undefined) {
    for (const [name, index] of jobRanges) {
      if (name === 'gossip') {
        const { bytes, kind } = fuzz.heartbeatBytes(args.seed, index)
        console.log(`handlers gossip case ${index} (${kind}): heartbeat ${hex(bytes)}`)
      } else {
        const { wire, kind, framing, request } = fuzz.streamBytes(name as Exclude<HandlerTarget, 'gossip'>, args.seed, index)
        console.log(`handlers ${name} case ${index} (${kind}, ${framing}, ${request === undefined ? 'does not decode' : 'decodes'}): wire ${hex(wire)}`)
      }
    }
  }
  const started = performance.now()
  let failures = 0
  try {
    // Round robin over the protocols, one batch each, until every range is done or time is up.
    const next = new Map(jobRanges.map(([name, from]) => [name, from]))
    while (Date.now() < deadline) {
      let ran = false
      for (const [name, from, count] of jobRanges) {
        const at = next.get(name) as number
        const size = Math.min(BATCH, from + count - at)
        if (size <= 0 || Date.now() >= deadline) continue
        ran = true
        const t = tallies.get(name) as HandlerTally
        const t0 = performance.now()
        const result = await fuzz.runBatch(name as HandlerTarget, args.seed, at, size, { writes: args.case !== undefined || t.batches % 2 === 1 })
        t.ms += performance.now() - t0
        t.cases += result.cases
        t.replied += result.replied
        t.reset += result.reset
        t.published += result.published
        t.pulls += result.pulls
        t.skipped += result.skipped
        t.batches++
        if (result.clean) t.clean++
        next.set(name, at + size)
        for (const f of result.failures) {
          failures++
          t.failures++
          if (t.failures <= 5) {
            const what = f.kind === 'batch' ? `after the batch from case ${f.index}` : `case ${f.index} (${f.kind}${f.framing === undefined ? '' : `, ${f.framing}`})`
            console.log(`FAIL handlers ${f.target} ${what}: ${f.failure}\n  replay: ${replay(args, 'handlers', f.target, f.index)}`)
          }
        }
      }
      if (!ran) break
    }
  } finally {
    await fuzz.stop()
  }
  const ms = performance.now() - started
  console.log('\nhandler     cases  replied    reset  skipped  published  pulls  batches (no writes)  failures  cases/s')
  let total = 0
  for (const [name, t] of tallies) {
    total += t.cases
    console.log(`${name.padEnd(9)}${String(t.cases).padStart(8)}${String(t.replied).padStart(9)}${String(t.reset).padStart(9)}${String(t.skipped).padStart(9)}${String(t.published).padStart(11)}${String(t.pulls).padStart(7)}${String(t.batches).padStart(9)} (${t.clean})${String(t.failures).padStart(15)}${rate(t.cases, t.ms).padStart(9)}`)
  }
  console.log(`handlers: ${total} cases in ${(ms / 1000).toFixed(1)} s (${rate(total, ms)}/s, batch checks included), ${failures} failures, seed ${args.seed}`)
  return failures
}

async function main (): Promise<void> {
  let args: Args
  try {
    args = parse()
  } catch (err) {
    console.error((err as Error).message)
    process.exit(2)
  }
  const started = performance.now()
  let failures = 0
  if (args.target !== 'handlers') failures += await fuzzDecoders(args)
  if (args.target !== 'decoders') failures += await fuzzHandlers(args)
  console.log(`\n${failures} failures in ${((performance.now() - started) / 1000).toFixed(1)} s (seed ${args.seed})`)
  process.exit(failures === 0 ? 0 : 1)
}

await main()
