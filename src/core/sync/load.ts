/**
 * Foreground latency, for admission control of background work (Dynamo §6.5): a fast and a slow
 * moving average of request latencies. The node is busy while the fast one runs well above the
 * slow one (requests are slower than they usually are), and only while requests keep coming.
 */
export class LatencyMonitor {
  private fast = 0
  private slow = 0
  private samples = 0
  private last = -Infinity
  private readonly ratio: number
  private readonly floorMs: number
  private readonly quietMs: number

  /**
   * @param options.ratio   busy when fast > ratio × slow (default 2)
   * @param options.floorMs latencies under this never count as busy (default 5 ms)
   * @param options.quietMs with no request for this long the node is not busy (default 1 s)
   */
  constructor (options: { ratio?: number, floorMs?: number, quietMs?: number } = {}) {
    this.ratio = options.ratio ?? 2
    this.floorMs = options.floorMs ?? 5
    this.quietMs = options.quietMs ?? 1000
  }

  record (ms: number, now: number): void {
    if (!Number.isFinite(ms) || ms < 0) return
    this.samples++
    this.last = now
    // The first samples seed both averages.
    this.fast = this.samples === 1 ? ms : this.fast + 0.2 * (ms - this.fast)
    this.slow = this.samples === 1 ? ms : this.slow + 0.01 * (ms - this.slow)
  }

  busy (now: number): boolean {
    if (now - this.last > this.quietMs || this.samples < 20) return false
    return this.fast > this.floorMs && this.fast > this.ratio * this.slow
  }

  /** Foreground work without a latency of its own (a replica write served): marks the node active. */
  touch (now: number): void {
    this.last = Math.max(this.last, now)
  }

  /** Whether requests are coming in: one within the last quietMs. */
  active (now: number): boolean {
    return now - this.last <= this.quietMs
  }

  /** The fast average, in ms. */
  latencyMs (): number {
    return this.fast
  }
}
