import assert from 'node:assert/strict'
import { MalformedDataError } from '../../src/core/errors.ts'
import { MAX_STRING_BYTES } from '../../src/net/constants.ts'
import { SimRandom } from '../../src/sim/random.ts'
import { DECODERS, codecTarget, runDecoderCase } from '../fuzz/decoders.ts'
import type { DecoderTarget } from '../fuzz/decoders.ts'
import { HANDLER_TARGETS, HandlerFuzz } from '../fuzz/handlers.ts'
import type { BatchResult } from '../fuzz/handlers.ts'
import { MUTATIONS, mutate, scan, varint } from '../fuzz/mutate.ts'

// The sample npm test runs; `npm run fuzz -- --cases 1000000 --time 600` is the long run.
const SEED = 20261125
const DECODER_CASES = 2000
const HANDLER_CASES = 50

/** A decoder under fuzz that misbehaves as `decode` does, to show the fuzzer's checks can fail. */
function broken (decode: (bytes: Uint8Array) => unknown): DecoderTarget {
  return {
    name: 'broken',
    errors: ['MalformedDataError'],
    frame: rng => Uint8Array.of(0x08, rng.int(0, 127)),
    check: bytes => { decode(bytes); return 'decoded' }
  }
}

function failuresOf (target: DecoderTarget, cases = 50): string[] {
  const failures: string[] = []
  for (let i = 0; i < cases; i++) {
    const failure = runDecoderCase(target, SEED, i).failure
    if (failure !== undefined) failures.push(failure)
  }
  return failures
}

describe('fuzzing every wire decoder (a sample of npm run fuzz)', function () {
  this.timeout(60_000)

  for (const target of DECODERS) {
    it(`${target.name}: ${DECODER_CASES} random and mutated frames decode to a valid value or throw ${target.errors.join('/')}`, () => {
      let decoded = 0
      const failures: string[] = []
      for (let i = 0; i < DECODER_CASES; i++) {
        const result = runDecoderCase(target, SEED, i)
        if (result.outcome === 'decoded') decoded++
        if (result.failure !== undefined) failures.push(`case ${i} (${result.kind}): ${result.failure}`)
      }
      assert.deepEqual(failures.slice(0, 5), [])
      // Both sides are exercised: some frames decode (so the value checks run), most do not.
      assert.ok(decoded > DECODER_CASES / 50, `only ${decoded} of ${DECODER_CASES} frames decoded`)
      assert.ok(decoded < DECODER_CASES * 0.9, `${decoded} of ${DECODER_CASES} frames decoded: the mutations do too little`)
    })
  }

  it('a case is the same bytes every time: a failure replays by seed and case number', () => {
    for (const target of DECODERS) {
      for (const i of [0, 7, 1234]) assert.deepEqual(runDecoderCase(target, SEED, i).bytes, runDecoderCase(target, SEED, i).bytes)
    }
    assert.notDeepEqual(runDecoderCase(DECODERS[0] as DecoderTarget, SEED, 1).bytes, runDecoderCase(DECODERS[0] as DecoderTarget, SEED + 1, 1).bytes)
  })

  it('catches a decoder that throws an untyped error, wraps one, allocates from a claimed length, or decodes to an unstable value', () => {
    assert.match(failuresOf(broken(() => { throw new TypeError('x is undefined') }))[0] ?? '', /threw TypeError/)
    assert.match(failuresOf(broken(() => { throw new MalformedDataError('bad', { cause: new RangeError('offset out of range') }) }))[0] ?? '', /wrapping the untyped RangeError/)
    const claimed: Uint8Array[] = []
    assert.match(failuresOf(broken(() => { claimed.push(new Uint8Array(2 ** 30)); throw new MalformedDataError('too big') }), 1)[0] ?? '', /allocated \d+ MiB/)
    claimed.length = 0
    let calls = 0
    const unstable = codecTarget('unstable', () => 1, n => Uint8Array.of(n), () => calls++)
    assert.match(failuresOf(unstable)[0] ?? '', /changes through encode and decode/)
  })

  it('mutations that know the wire format keep to it where they should', () => {
    const rng = new SimRandom(SEED)
    const frame = Uint8Array.of(0x08, 0x96, 0x01, 0x12, 0x03, 0x61, 0x62, 0x63, 0x18, 0x00)
    assert.deepEqual(scan(frame).map(f => [f.start, f.end, f.wireType]), [[0, 3, 0], [3, 8, 2], [8, 10, 0]])
    assert.deepEqual(varint(300), [0xac, 0x02])
    for (let i = 0; i < 200; i++) {
      // A nested mutation fixes up the length of the field it changed: the frame still scans whole.
      const nested = mutate(rng, frame, frame, 'nested')
      assert.equal(scan(nested).reduce((n, f) => Math.max(n, f.end), 0), nested.length)
      const huge = mutate(rng, frame, frame, 'huge-length')
      assert.ok(huge.length < frame.length + 10)
    }
    for (const kind of MUTATIONS) assert.ok(mutate(rng, new Uint8Array(0), frame, kind) instanceof Uint8Array, kind)
  })
})

describe('fuzzing every protocol handler of a live node over real libp2p (a sample of npm run fuzz)', function () {
  this.timeout(120_000)
  let fuzz: HandlerFuzz | undefined
  const escaped: unknown[] = []
  const onEscape = (reason: unknown): void => { escaped.push(reason) }

  before(async () => {
    process.on('unhandledRejection', onEscape)
    process.on('uncaughtException', onEscape)
    fuzz = await HandlerFuzz.start({ timeoutMs: 500 })
  })

  after(async () => {
    await fuzz?.stop()
    process.off('unhandledRejection', onEscape)
    process.off('uncaughtException', onEscape)
  })

  afterEach(() => {
    assert.deepEqual(escaped.splice(0), [], 'no unhandled rejection or uncaught exception')
  })

  const run = async (target: typeof HANDLER_TARGETS[number], writes: boolean, from: number): Promise<BatchResult> => {
    const result = await (fuzz as HandlerFuzz).runBatch(target, SEED, from, HANDLER_CASES, { writes })
    assert.deepEqual(result.failures.slice(0, 5), [])
    return result
  }

  for (const target of HANDLER_TARGETS) {
    if (target === 'gossip') {
      it('gossip: random and mutated heartbeats, and fuzzed answers to the node\'s table pulls, change nothing; it still serves puts and gets', async () => {
        const result = await run(target, false, 0)
        assert.equal(result.published, HANDLER_CASES)
        assert.equal(result.clean, true)
        assert.ok(result.pulls > 0, 'the node pulled the hostile peer\'s table')
      })
      continue
    }
    it(`${target}: bad frames get the stream reset and change nothing, good ones an answer; the node still serves puts and gets`, async () => {
      const garbage = await run(target, false, 0)
      assert.equal(garbage.clean, true)
      assert.ok(garbage.reset > 0, 'some frames were refused')
      const mixed = await run(target, true, HANDLER_CASES)
      assert.ok(garbage.replied + mixed.replied > 0, 'some frames were answered')
    })
  }

  it('a stream that stops half-way, or never sends, is reset at the node\'s deadline, not held open', async () => {
    const f = fuzz as HandlerFuzz
    const [silent, half] = await Promise.all([
      f.silent('kv', new Uint8Array(0)),
      f.silent('kv', Uint8Array.of(20, 0x08, 0x01))
    ])
    assert.deepEqual(silent, { received: 0, status: 'reset' })
    assert.deepEqual(half, { received: 0, status: 'reset' })
  })

  it('a length prefix beyond the largest members or admin request is refused at once, not waited for', async () => {
    // Both used to take frames up to their answers' bound (16 MiB, 4 MiB) and wait for them: an
    // admin stream claiming 4097 bytes was held open for the admin deadline of 60 s.
    const f = fuzz as HandlerFuzz
    const claim = Uint8Array.from(varint(MAX_STRING_BYTES + 1))
    assert.deepEqual(await f.silent('admin', claim), { received: 0, status: 'reset' })
    assert.deepEqual(await f.silent('members', claim), { received: 0, status: 'reset' })
  })

  it('the checks after a batch fail when the node did change: a put during a batch of garbage is caught', async () => {
    const f = fuzz as HandlerFuzz
    const result = await f.runBatch('members', SEED, 0, 5, { writes: false, during: async () => { await f.node.put('changed behind the fuzzer', 'x') } })
    assert.deepEqual(result.failures.map(x => x.failure), ['members frames that do not decode changed the data of 1 partitions'])
  })
})
