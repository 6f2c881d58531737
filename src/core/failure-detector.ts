/**
 * Phi-accrual failure detection (Hayashibara et al., 2004), as Akka computes it: phi is how
 * unlikely the current silence is, given the heartbeat intervals seen so far, on a -log10 scale
 * (phi 8: a one in 10^8 chance that a live member would be this quiet). Pure: every call is given
 * `now` in milliseconds, from the env's clock.
 *
 * @example
 * ```ts
 * const detectors = new FailureDetectors()
 * detectors.heartbeat('peerA', env.now())         // on each heartbeat from peerA
 * detectors.requestFailed('peerA', env.now())     // a request to peerA failed: suspect at once
 * detectors.liveness('peerA', env.now())          // 'alive' | 'suspect' | 'down'
 * ```
 */
import { InvalidArgumentError } from './errors.ts'

export interface PhiOptions {
  /** phi at or above which a member is down. Default 8, as Cassandra. */
  readonly threshold?: number
  /** How many recent intervals describe the heartbeat process. Default 200. */
  readonly maxSamples?: number
  /** A floor under the intervals' standard deviation, so very regular heartbeats don't make one late one fatal. Default 100 ms. */
  readonly minStdDevMs?: number
  /** Added to the mean interval: a pause of this long costs nothing. Default 0. */
  readonly acceptablePauseMs?: number
  /** The expected interval before any has been seen: seeds the history. Default 1000 ms. */
  readonly firstIntervalMs?: number
  /**
   * Intervals longer than this are outages (a partition, a restart), not samples of the heartbeat
   * process, and are left out of the history, as Cassandra does: one hour-long gap would otherwise
   * slow detection to tens of minutes until it left the window. Default 10 × firstIntervalMs.
   */
  readonly maxIntervalMs?: number
}

export const DEFAULT_THRESHOLD = 8
export const DEFAULT_MAX_SAMPLES = 200
export const DEFAULT_MIN_STD_DEV_MS = 100
export const DEFAULT_ACCEPTABLE_PAUSE_MS = 0
export const DEFAULT_FIRST_INTERVAL_MS = 1000
/** phi's cap: any silence long enough to reach it is simply "down", and phi stays a finite number. */
export const MAX_PHI = 1e6

function positive (name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError(`${name} must be a finite number > 0, got ${value}`)
  return value
}

function checkTime (now: number): void {
  if (!Number.isFinite(now)) throw new InvalidArgumentError(`now must be a finite number of ms, got ${now}`)
}

/**
 * -log10 of the probability that a normally distributed interval exceeds `t`, with the logistic
 * approximation of the normal CDF Akka uses:
 * `y = (t - mean) / stdDev; e = exp(-y * (1.5976 + 0.070566 * y²)); phi = -log10(e / (1 + e))`.
 * Written as log10(1 + exp(z)) with z = y * (1.5976 + 0.070566 * y²), the same value, computed
 * without exp overflowing or e underflowing to 0, so it is finite and rises smoothly with t.
 */
export function phiOf (t: number, mean: number, stdDev: number): number {
  const y = (t - mean) / stdDev
  const z = y * (1.5976 + 0.070566 * y * y)
  const softplus = z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z))
  const phi = softplus / Math.LN10
  return Number.isNaN(phi) ? MAX_PHI : Math.min(MAX_PHI, Math.max(0, phi))
}

/** The failure detector for one member, fed with the arrival times of its heartbeats. */
export class PhiAccrualDetector {
  readonly threshold: number
  private readonly minStdDev: number
  private readonly acceptablePause: number
  private readonly maxInterval: number
  /** A ring buffer of the last `maxSamples` intervals, with running sums for mean and variance. */
  private readonly intervals: Float64Array
  private count = 0
  private next = 0
  private sum = 0
  private sumOfSquares = 0
  private addsSinceExact = 0
  private lastHeartbeat: number | undefined
  /** The latest evidence of life: a heartbeat, or a request that succeeded. */
  private lastSeen: number | undefined

  constructor (options: PhiOptions = {}) {
    this.threshold = positive('threshold', options.threshold ?? DEFAULT_THRESHOLD)
    const maxSamples = options.maxSamples ?? DEFAULT_MAX_SAMPLES
    if (!Number.isSafeInteger(maxSamples) || maxSamples < 1) {
      throw new InvalidArgumentError(`maxSamples must be an integer >= 1, got ${maxSamples}`)
    }
    this.minStdDev = positive('minStdDevMs', options.minStdDevMs ?? DEFAULT_MIN_STD_DEV_MS)
    const pause = options.acceptablePauseMs ?? DEFAULT_ACCEPTABLE_PAUSE_MS
    if (!Number.isFinite(pause) || pause < 0) throw new InvalidArgumentError(`acceptablePauseMs must be finite and >= 0, got ${pause}`)
    this.acceptablePause = pause
    const first = positive('firstIntervalMs', options.firstIntervalMs ?? DEFAULT_FIRST_INTERVAL_MS)
    this.maxInterval = positive('maxIntervalMs', options.maxIntervalMs ?? 10 * first)
    this.intervals = new Float64Array(maxSamples)
    // Akka's prior: two intervals a quarter off the expected one, so early phi is neither
    // hair-trigger (no spread yet) nor blind; real intervals push them out of the window.
    this.addInterval(first - first / 4)
    this.addInterval(first + first / 4)
  }

  /** A heartbeat arrived at `now`. One older than the latest is still evidence of life, not a sample. */
  heartbeat (now: number): void {
    checkTime(now)
    if (this.lastHeartbeat !== undefined && now >= this.lastHeartbeat) {
      const interval = now - this.lastHeartbeat
      if (interval <= this.maxInterval) this.addInterval(interval)
    }
    if (this.lastHeartbeat === undefined || now > this.lastHeartbeat) this.lastHeartbeat = now
    this.seen(now)
  }

  /**
   * Evidence of life that is not a heartbeat (the member answered a request): restarts the silence
   * without adding an interval, since requests don't follow the heartbeat's rhythm.
   */
  seen (now: number): void {
    checkTime(now)
    if (this.lastSeen === undefined || now > this.lastSeen) this.lastSeen = now
  }

  /**
   * How suspicious the silence since the last sign of life is: about 0 right after one, rising
   * with silence, finite and >= 0 (capped at MAX_PHI). MAX_PHI before any sign of life at all:
   * nothing says the member exists.
   */
  phi (now: number): number {
    checkTime(now)
    if (this.lastSeen === undefined) return MAX_PHI
    const silence = Math.max(0, now - this.lastSeen)
    const mean = this.sum / this.count
    const variance = Math.max(0, this.sumOfSquares / this.count - mean * mean)
    return phiOf(silence, mean + this.acceptablePause, Math.max(Math.sqrt(variance), this.minStdDev))
  }

  /** phi < threshold. */
  isAvailable (now: number): boolean {
    return this.phi(now) < this.threshold
  }

  private addInterval (interval: number): void {
    if (this.count === this.intervals.length) {
      const dropped = this.intervals[this.next] ?? 0
      this.sum -= dropped
      this.sumOfSquares -= dropped * dropped
    } else {
      this.count++
    }
    this.intervals[this.next] = interval
    this.next = (this.next + 1) % this.intervals.length
    this.sum += interval
    this.sumOfSquares += interval * interval
    // Running sums drift by rounding over millions of heartbeats: recompute them now and then.
    if (++this.addsSinceExact >= this.intervals.length) this.recomputeSums()
  }

  private recomputeSums (): void {
    this.sum = 0
    this.sumOfSquares = 0
    for (let i = 0; i < this.count; i++) {
      const x = this.intervals[i] ?? 0
      this.sum += x
      this.sumOfSquares += x * x
    }
    this.addsSinceExact = 0
  }
}

/**
 * The local view of the members' liveness, for routing only (never ownership).
 * - 'down': phi at or above the threshold, or never heard of (no evidence it is running; routing
 *   then prefers a fallback with a hint, which loses nothing if the member was in fact up).
 * - 'suspect': a request to it failed since its last heartbeat or successful request.
 * - 'alive': otherwise.
 */
export type Liveness = 'alive' | 'suspect' | 'down'

/**
 * One phi-accrual detector per member, also fed by request outcomes: a failed request marks the
 * member suspect at once (routing avoids it) until its next heartbeat or successful request; a
 * successful request also counts as a sign of life.
 */
export class FailureDetectors {
  private readonly options: PhiOptions
  private readonly threshold: number
  private readonly detectors = new Map<string, PhiAccrualDetector>()
  private readonly suspects = new Set<string>()

  constructor (options: PhiOptions = {}) {
    // Built once here so bad options fail at construction, not at the first heartbeat.
    this.threshold = new PhiAccrualDetector(options).threshold
    this.options = { ...options }
  }

  heartbeat (id: string, now: number): void {
    this.detector(id).heartbeat(now)
    this.suspects.delete(id)
  }

  requestSucceeded (id: string, now: number): void {
    this.detector(id).seen(now)
    this.suspects.delete(id)
  }

  requestFailed (id: string, now: number): void {
    checkTime(now)
    this.suspects.add(id)
  }

  /** 'down' beats 'suspect': a member both silent too long and failing requests is down. */
  liveness (id: string, now: number): Liveness {
    if (this.phi(id, now) >= this.threshold) return 'down'
    return this.suspects.has(id) ? 'suspect' : 'alive'
  }

  /** The member's phi; MAX_PHI for a member never heard of. */
  phi (id: string, now: number): number {
    checkTime(now)
    return this.detectors.get(id)?.phi(now) ?? MAX_PHI
  }

  /** Drop all state about a member: when it has left, or restarted (a new incarnation's rhythm starts afresh). */
  forget (id: string): void {
    this.detectors.delete(id)
    this.suspects.delete(id)
  }

  private detector (id: string): PhiAccrualDetector {
    let detector = this.detectors.get(id)
    if (detector === undefined) {
      detector = new PhiAccrualDetector(this.options)
      this.detectors.set(id, detector)
    }
    return detector
  }
}
