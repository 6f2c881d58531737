/**
 * Everything the core needs from the world: a clock, a random source and timers. Production
 * passes the real ones; the simulator passes virtual time and a seeded generator, so the same
 * coordinator and membership code runs in both and a simulated run replays from its seed.
 */
export interface Env {
  /** Milliseconds, monotonic within one process life. */
  now: () => number
  /** Uniform in [0, 1). */
  random: () => number
  setTimer: (ms: number, fn: () => void) => Timer
}

export interface Timer {
  cancel: () => void
}

/** Resolves after `ms` of the env's time (virtual time in the simulator). */
export function sleep (env: Env, ms: number): Promise<void> {
  return new Promise(resolve => { env.setTimer(ms, resolve) })
}
