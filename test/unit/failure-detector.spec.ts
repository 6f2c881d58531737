import assert from 'node:assert/strict'
import fc from 'fast-check'
import { FailureDetectors, MAX_PHI, PhiAccrualDetector, phiOf } from '../../src/core/failure-detector.ts'
import type { PhiOptions } from '../../src/core/failure-detector.ts'
import { seeded } from '../../src/sim/random.ts'

/**
 * The silence, in standard deviations past the mean, at which phi reaches `phi`: phi = log10(1 + e^z)
 * with z = y (1.5976 + 0.070566 y²), so z = ln(10^phi - 1), solved for y by bisection (z rises with y).
 */
function deviationsAt (phi: number): number {
  const z = Math.log(10 ** phi - 1)
  let lo = 0
  let hi = 100
  for (let i = 0; i < 100; i++) {
    const y = (lo + hi) / 2
    if (y * (1.5976 + 0.070566 * y * y) < z) lo = y
    else hi = y
  }
  return lo
}

/** Feeds heartbeats at the given times; returns the last. */
function feed (detector: PhiAccrualDetector, times: readonly number[]): number {
  for (const t of times) detector.heartbeat(t)
  return times[times.length - 1] ?? 0
}

/** Milliseconds of silence after `last` until phi first reaches the threshold (1 ms resolution). */
function silenceUntilDown (detector: PhiAccrualDetector, last: number): number {
  for (let silence = 0; silence < 60_000; silence++) {
    if (!detector.isAvailable(last + silence)) return silence
  }
  throw new Error('phi never crossed the threshold')
}

function stats (xs: readonly number[]): { mean: number, sd: number } {
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length
  return { mean, sd: Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length) }
}

/** Heartbeat times: `count` intervals drawn from `interval`, starting at 10 s. */
function arrivals (count: number, interval: () => number): { times: number[], intervals: number[] } {
  const times = [10_000]
  const intervals: number[] = []
  for (let i = 0; i < count; i++) {
    const gap = interval()
    intervals.push(gap)
    times.push((times[times.length - 1] ?? 0) + gap)
  }
  return { times, intervals }
}

describe('failure detector', () => {
  it('phi is about 0 just after a heartbeat and rises monotonically with silence', () => {
    const detector = new PhiAccrualDetector()
    const last = feed(detector, Array.from({ length: 30 }, (_, i) => i * 1000))
    assert.ok(detector.phi(last) < 1e-3)
    let previous = detector.phi(last)
    for (let silence = 10; silence <= 10_000; silence += 10) {
      const phi = detector.phi(last + silence)
      assert.ok(phi >= previous, `phi fell at ${silence} ms`)
      previous = phi
    }
    assert.ok(previous > 8)
  })

  it('with regular 1 s heartbeats phi crosses 8 at mean + 5.2 minimum deviations of silence', () => {
    const y = deviationsAt(8) // ≈ 5.22
    for (const minStdDevMs of [100, 150, 200]) {
      const random = seeded(minStdDevMs)
      // ±20 ms of jitter: a spread well under the floor, so the floor decides.
      const { times, intervals } = arrivals(300, () => 1000 + (random() - 0.5) * 40)
      const detector = new PhiAccrualDetector({ minStdDevMs })
      const last = feed(detector, times)
      const { mean, sd } = stats(intervals.slice(-200))
      assert.ok(sd < minStdDevMs)
      const expected = mean + y * minStdDevMs
      const silence = silenceUntilDown(detector, last)
      assert.ok(Math.abs(silence - expected) <= 2, `minStdDev ${minStdDevMs}: crossed at ${silence} ms, expected ${expected.toFixed(0)}`)
      assert.ok(silence > 1500 && silence < 5000)
    }
  })

  it('irregular intervals widen the window before a member is down', () => {
    const y = deviationsAt(8)
    const regular = new PhiAccrualDetector()
    const regularDown = silenceUntilDown(regular, feed(regular, arrivals(300, () => 1000).times))

    const random = seeded(7)
    const { times, intervals } = arrivals(300, () => 500 + random() * 1000)
    const irregular = new PhiAccrualDetector()
    const irregularDown = silenceUntilDown(irregular, feed(irregular, times))
    const { mean, sd } = stats(intervals.slice(-200)) // ≈ 1000 ± 289
    assert.ok(Math.abs(irregularDown - (mean + y * sd)) <= 2, `crossed at ${irregularDown}, expected ${(mean + y * sd).toFixed(0)}`)
    assert.ok(irregularDown > regularDown + 500)
  })

  it('an acceptable pause delays the crossing by exactly the pause', () => {
    const times = arrivals(300, () => 1000).times
    const plain = new PhiAccrualDetector()
    const paused = new PhiAccrualDetector({ acceptablePauseMs: 3000 })
    assert.equal(silenceUntilDown(paused, feed(paused, times)), silenceUntilDown(plain, feed(plain, times)) + 3000)
  })

  it('before any real interval the first-interval estimate sets the pace', () => {
    const detector = new PhiAccrualDetector({ firstIntervalMs: 1000 })
    assert.equal(detector.isAvailable(0), false)
    detector.heartbeat(0)
    // Prior intervals 750 and 1250: mean 1000, deviation 250.
    assert.ok(Math.abs(silenceUntilDown(detector, 0) - (1000 + deviationsAt(8) * 250)) <= 1)
  })

  it('an outage longer than maxIntervalMs is not learnt as a normal interval', () => {
    const times = arrivals(100, () => 1000).times
    const detector = new PhiAccrualDetector()
    const last = feed(detector, times)
    const before = silenceUntilDown(detector, last)
    // An hour of partition, then the member is back: detection stays as quick as it was.
    detector.heartbeat(last + 3_600_000)
    detector.heartbeat(last + 3_601_000)
    assert.ok(Math.abs(silenceUntilDown(detector, last + 3_601_000) - before) <= 10)
  })

  it('phi is always finite and >= 0, whatever the arrivals', () => {
    const options = fc.record({
      threshold: fc.option(fc.double({ min: 0.5, max: 20, noNaN: true }), { nil: undefined }),
      maxSamples: fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }),
      minStdDevMs: fc.option(fc.double({ min: 1e-3, max: 1000, noNaN: true }), { nil: undefined }),
      acceptablePauseMs: fc.option(fc.double({ min: 0, max: 1e4, noNaN: true }), { nil: undefined }),
      firstIntervalMs: fc.option(fc.double({ min: 1e-3, max: 1e5, noNaN: true }), { nil: undefined })
    })
    // Steps may be 0 (same ms), huge, or backwards (out-of-order delivery).
    const step = fc.oneof(fc.constant(0), fc.integer({ min: -5000, max: 5000 }), fc.double({ min: -1e12, max: 1e12, noNaN: true }))
    const event = fc.record({ step, kind: fc.constantFrom('heartbeat', 'seen', 'query') })
    fc.assert(fc.property(options, fc.array(event, { maxLength: 60 }), fc.double({ min: -1e9, max: 1e9, noNaN: true }), (opts, events, start) => {
      const detector = new PhiAccrualDetector(opts as PhiOptions)
      let now = start
      for (const { step, kind } of events) {
        now += step
        if (kind === 'heartbeat') detector.heartbeat(now)
        else if (kind === 'seen') detector.seen(now)
        for (const at of [now, now + 1, now + 1e9, now - 1e9]) {
          const phi = detector.phi(at)
          assert.ok(Number.isFinite(phi) && phi >= 0 && phi <= MAX_PHI, `phi ${phi} at ${at}`)
        }
      }
    }), { numRuns: 300 })
  })

  it('computes the same phi as the literal Akka formula wherever that one is finite', () => {
    const akka = (t: number, mean: number, sd: number): number => {
      const y = (t - mean) / sd
      const e = Math.exp(-y * (1.5976 + 0.070566 * y * y))
      return -Math.log10(t > mean ? e / (1 + e) : 1 - 1 / (1 + e))
    }
    fc.assert(fc.property(fc.double({ min: 0, max: 20_000, noNaN: true }), fc.double({ min: 1, max: 5000, noNaN: true }), fc.double({ min: 1, max: 2000, noNaN: true }), (t, mean, sd) => {
      const expected = akka(t, mean, sd)
      if (!Number.isFinite(expected) || expected > 30) return
      assert.ok(Math.abs(phiOf(t, mean, sd) - expected) <= 1e-9 + 1e-9 * expected, `${phiOf(t, mean, sd)} vs ${expected}`)
    }), { numRuns: 1000 })
  })

  it('rejects options that would make phi meaningless, and times that are not numbers', () => {
    for (const options of [{ threshold: 0 }, { maxSamples: 0 }, { maxSamples: 1.5 }, { minStdDevMs: 0 }, { acceptablePauseMs: -1 }, { firstIntervalMs: NaN }, { maxIntervalMs: Infinity }]) {
      assert.throws(() => new PhiAccrualDetector(options), { name: 'InvalidArgumentError' }, JSON.stringify(options))
      assert.throws(() => new FailureDetectors(options), { name: 'InvalidArgumentError' }, JSON.stringify(options))
    }
    assert.throws(() => new PhiAccrualDetector().heartbeat(NaN), { name: 'InvalidArgumentError' })
    assert.throws(() => new FailureDetectors().liveness('a', Infinity), { name: 'InvalidArgumentError' })
  })

  describe('FailureDetectors', () => {
    function withHeartbeats (id: string, upTo: number): FailureDetectors {
      const detectors = new FailureDetectors()
      for (let t = 0; t <= upTo; t += 1000) detectors.heartbeat(id, t)
      return detectors
    }

    it('a member never heard of is down', () => {
      const detectors = new FailureDetectors()
      assert.equal(detectors.liveness('stranger', 0), 'down')
      assert.equal(detectors.phi('stranger', 0), MAX_PHI)
    })

    it('a requestFailed makes a live member suspect at once, and its next heartbeat clears it', () => {
      const detectors = withHeartbeats('a', 10_000)
      assert.equal(detectors.liveness('a', 10_100), 'alive')
      detectors.requestFailed('a', 10_100)
      assert.equal(detectors.liveness('a', 10_100), 'suspect')
      assert.equal(detectors.liveness('a', 10_900), 'suspect')
      detectors.heartbeat('a', 11_000)
      assert.equal(detectors.liveness('a', 11_000), 'alive')
    })

    it('a successful request clears suspicion and counts as a sign of life', () => {
      const detectors = withHeartbeats('a', 10_000)
      detectors.requestFailed('a', 10_100)
      detectors.requestSucceeded('a', 10_200)
      assert.equal(detectors.liveness('a', 10_200), 'alive')
      // Heartbeats lost, requests answered: still alive long after phi alone would say down.
      for (let t = 10_500; t <= 20_000; t += 500) detectors.requestSucceeded('a', t)
      assert.equal(detectors.liveness('a', 20_000), 'alive')
      assert.equal(detectors.liveness('a', 30_000), 'down')
    })

    it('silence past the threshold is down, whether or not a request failed', () => {
      const detectors = withHeartbeats('a', 10_000)
      assert.equal(detectors.liveness('a', 13_000), 'down')
      detectors.requestFailed('a', 13_000)
      assert.equal(detectors.liveness('a', 13_000), 'down')
      detectors.heartbeat('a', 13_500)
      assert.equal(detectors.liveness('a', 13_500), 'alive')
    })

    it('forget drops a member back to never heard of', () => {
      const detectors = withHeartbeats('a', 10_000)
      detectors.requestFailed('a', 10_100)
      detectors.forget('a')
      assert.equal(detectors.liveness('a', 10_100), 'down')
      detectors.heartbeat('a', 10_200)
      assert.equal(detectors.liveness('a', 10_200), 'alive')
    })

    it('keeps one detector per member', () => {
      const detectors = withHeartbeats('a', 10_000)
      for (let t = 0; t <= 5000; t += 1000) detectors.heartbeat('b', t)
      assert.equal(detectors.liveness('a', 10_500), 'alive')
      assert.equal(detectors.liveness('b', 10_500), 'down')
    })
  })
})
