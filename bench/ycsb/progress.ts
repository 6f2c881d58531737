/**
 * The ycsb benchmark's progress on stderr. On a terminal: one line redrawn in place (a bar, the
 * share of the planned work done, what runs now, its live rate, the time gone); log lines print
 * above it. Elsewhere (a pipe, CI): a plain line per stage, no control characters.
 */

export interface ProgressStream {
  readonly isTTY?: boolean
  readonly columns?: number
  write: (text: string) => boolean
}

const BAR_WIDTH = 24
/** Redraws at most this often: a bar that repaints per tick would cost the generator nothing, but the terminal something. */
const REDRAW_MS = 100
/** Without a terminal, a long stage still prints a line this often, so a log shows it is alive. */
const PLAIN_EVERY_MS = 15_000

export class Progress {
  private readonly stream: ProgressStream
  private readonly tty: boolean
  /** Planned work in nominal seconds, and what is done of it. */
  private readonly total: number
  private doneBefore = 0
  private stageWeight = 0
  private stageFraction = 0
  private label = ''
  private detail = ''
  private readonly began: number
  private lastDraw = 0
  private readonly now: () => number

  constructor (stream: ProgressStream, totalWeight: number, now: () => number = () => performance.now()) {
    this.stream = stream
    this.tty = stream.isTTY === true
    this.total = Math.max(totalWeight, 1e-9)
    this.now = now
    this.began = now()
  }

  /** A new stage of `weight` nominal seconds begins (the previous one counts as done). */
  stage (label: string, weight: number): void {
    this.doneBefore += this.stageWeight
    this.stageWeight = weight
    this.stageFraction = 0
    this.label = label
    this.detail = ''
    if (this.tty) this.draw(true)
    else this.plain()
  }

  /** Progress within the stage (0..1) and a live detail such as the rate. */
  update (fraction: number, detail: string): void {
    this.stageFraction = Math.min(1, Math.max(0, fraction))
    this.detail = detail
    if (this.tty) this.draw(false)
    else if (this.now() - this.lastDraw >= PLAIN_EVERY_MS) this.plain()
  }

  /** A line above the bar (or a plain line). */
  log (line: string): void {
    if (this.tty) {
      this.stream.write(`\r\x1b[2K${line}\n`)
      this.draw(true)
    } else {
      this.stream.write(`${line}\n`)
    }
  }

  /** Clears the bar, leaving the terminal as it was. */
  finish (): void {
    if (this.tty) this.stream.write('\r\x1b[2K')
  }

  /** The share of planned work done, 0..1. */
  fraction (): number {
    return Math.min(1, (this.doneBefore + this.stageWeight * this.stageFraction) / this.total)
  }

  /** The line drawn on a terminal (without control characters). */
  line (): string {
    const f = this.fraction()
    const filled = Math.round(f * BAR_WIDTH)
    const elapsed = Math.round((this.now() - this.began) / 1000)
    const clock = `${Math.floor(elapsed / 60)}:${String(elapsed % 60).padStart(2, '0')}`
    const text = `ycsb [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${this.percent()} ${clock}  ${this.label}${this.detail === '' ? '' : `  ${this.detail}`}`
    const columns = this.stream.columns ?? 120
    return text.length > columns - 1 ? text.slice(0, columns - 1) : text
  }

  private percent (): string {
    return `${(this.fraction() * 100).toFixed(0).padStart(3)}%`
  }

  private plain (): void {
    this.lastDraw = this.now()
    this.stream.write(`[${this.percent()}] ${this.label}${this.detail === '' ? '' : `  ${this.detail}`}\n`)
  }

  private draw (force: boolean): void {
    const now = this.now()
    if (!force && now - this.lastDraw < REDRAW_MS) return
    this.lastDraw = now
    this.stream.write(`\r\x1b[2K${this.line()}`)
  }
}
