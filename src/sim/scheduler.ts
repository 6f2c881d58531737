import type { Timer } from '../core/env.ts'

interface Event {
  readonly time: number
  readonly seq: number
  readonly fn: () => void
  cancelled: boolean
}

/**
 * Lets every promise continuation queued so far run, and those they queue: no real I/O exists
 * in a simulated run. Node runs the nextTick queue only once the microtask queue is empty, so a
 * tick queued from a continuation fires after all of them (nothing simulated queues ticks of its
 * own), without the cost of a turn of the event loop per event.
 */
function settle (): Promise<void> {
  return new Promise(resolve => { process.nextTick(resolve) })
}

/** A turn of the event loop, so timers and I/O outside the simulation get their turn too. */
function yieldToLoop (): Promise<void> {
  return new Promise(resolve => { setImmediate(resolve) })
}

/**
 * Virtual time. Events run in (time, insertion) order, one at a time, and the microtasks an event
 * queues run to completion before the next event: the same seed replays the same run.
 */
export class Scheduler {
  now = 0
  private readonly heap: Event[] = []
  private seq = 0
  processed = 0

  at (time: number, fn: () => void): Timer {
    const event: Event = { time: Math.max(time, this.now), seq: this.seq++, fn, cancelled: false }
    this.push(event)
    return { cancel: () => { event.cancelled = true } }
  }

  after (ms: number, fn: () => void): Timer {
    return this.at(this.now + ms, fn)
  }

  /** Runs events until `until` virtual ms, or earlier once `stop()` is true after an event. */
  async run (until: number, stop: () => boolean = () => false): Promise<void> {
    await yieldToLoop()
    while (this.heap.length > 0 && (this.heap[0] as Event).time <= until) {
      const event = this.pop()
      if (event.cancelled) continue
      this.now = event.time
      this.processed++
      event.fn()
      await settle()
      if (stop()) return
    }
    this.now = Math.max(this.now, until)
  }

  private push (event: Event): void {
    const heap = this.heap
    heap.push(event)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(event, heap[parent] as Event)) break
      heap[i] = heap[parent] as Event
      i = parent
    }
    heap[i] = event
  }

  private pop (): Event {
    const heap = this.heap
    const top = heap[0] as Event
    const last = heap.pop() as Event
    if (heap.length > 0) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let smallest = i
        let candidate = last
        if (l < heap.length && before(heap[l] as Event, candidate)) { smallest = l; candidate = heap[l] as Event }
        if (r < heap.length && before(heap[r] as Event, candidate)) { smallest = r; candidate = heap[r] as Event }
        if (smallest === i) break
        heap[i] = candidate
        i = smallest
      }
      heap[i] = last
    }
    return top
  }
}

function before (a: Event, b: Event): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq)
}
