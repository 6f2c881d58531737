import assert from 'node:assert/strict'
import fc from 'fast-check'
import { writer } from 'protons-runtime'
import { ShoalError } from '../../src/core/errors.ts'

/** Plain objects, as decoders build them (fast-check's records have no prototype by default). */
export const plainRecord: typeof fc.record = ((model: Record<string, fc.Arbitrary<unknown>>, constraints?: object) =>
  fc.record(model, { ...constraints, noNullPrototype: true })) as typeof fc.record

/** A wire codec and the values it must carry. */
export interface Codec<T> {
  name: string
  arb: fc.Arbitrary<T>
  encode: (value: T) => Uint8Array
  decode: (bytes: Uint8Array) => T
}

export type Build = (w: ReturnType<typeof writer>) => void

/** Protobuf bytes written by hand, for frames an encoder would never make. */
export function frame (build: Build): Uint8Array {
  const w = writer()
  build(w)
  return w.finish()
}

export function assertMalformed (fn: () => unknown, pattern?: RegExp): void {
  assert.throws(fn, (err: Error) => err.name === 'MalformedDataError' && (pattern === undefined || pattern.test(err.message)))
}

/** Decodes, or throws a MalformedDataError wrapping no untyped error; anything else fails the test. */
export function decodeOrMalformed<T> (c: Codec<T>, bytes: Uint8Array): T | undefined {
  try {
    return c.decode(bytes)
  } catch (err) {
    assert.equal((err as Error).name, 'MalformedDataError', `${c.name}: ${(err as Error).stack}`)
    // A TypeError wrapped into a MalformedDataError is still a decoder bug.
    for (let cause = (err as Error).cause; cause !== undefined; cause = (cause as Error).cause) {
      assert.ok(cause instanceof ShoalError, `${c.name}: wraps the untyped ${(cause as Error)?.stack}`)
    }
    return undefined
  }
}

const mutationArb = plainRecord({
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
  kind: fc.constantFrom('set', 'insert', 'delete', 'cut')
})

function mutate (bytes: Uint8Array, mutations: ReadonlyArray<{ at: number, byte: number, kind: string }>): Uint8Array {
  let out = Array.from(bytes)
  for (const { at, byte, kind } of mutations) {
    const i = out.length === 0 ? 0 : at % out.length
    if (kind === 'set' && out.length > 0) out[i] = byte
    else if (kind === 'insert') out.splice(i, 0, byte)
    else if (kind === 'delete') out.splice(i, 1)
    else out = out.slice(0, i)
  }
  return Uint8Array.from(out)
}

/**
 * The properties every decoder of untrusted bytes keeps, as mocha tests in the current describe:
 * round trips, random and mutated frames decode or throw MalformedDataError and nothing else,
 * unknown fields are skipped.
 */
export function codecProperties<T> (c: Codec<T>, runs: { roundTrip: number, random: number, mutated: number }): void {
  it('decodes what it encodes', () => {
    fc.assert(fc.property(c.arb, value => {
      assert.deepStrictEqual(c.decode(c.encode(value)), value)
    }), { numRuns: runs.roundTrip })
  })

  it('random bytes decode or throw MalformedDataError, nothing else', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), bytes => { decodeOrMalformed(c, bytes) }), { numRuns: runs.random })
  })

  it('a mutated frame decodes to a message that round-trips, or throws MalformedDataError', () => {
    fc.assert(fc.property(c.arb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (value, mutations) => {
      const decoded = decodeOrMalformed(c, mutate(c.encode(value), mutations))
      if (decoded !== undefined) assert.deepStrictEqual(c.decode(c.encode(decoded)), decoded)
    }), { numRuns: runs.mutated })
  })

  it('skips fields it does not know, so a newer peer can add some', () => {
    fc.assert(fc.property(c.arb, value => {
      const extra = frame(w => w.uint32(99 << 3 | 2).string('from the future').uint32(100 << 3).uint64Number(2 ** 40))
      const bytes = c.encode(value)
      const withExtra = new Uint8Array(bytes.length + extra.length)
      withExtra.set(bytes)
      withExtra.set(extra, bytes.length)
      assert.deepStrictEqual(c.decode(withExtra), value)
    }), { numRuns: 50 })
  })
}
