/**
 * Plain-text tables and colour for the terminal: columns padded to their widest cell (colour codes
 * do not count), colour only where a reader will see it.
 */
import { stripVTControlCharacters, styleText } from 'node:util'

/** Something that may be a terminal: process.stdout, or a stand-in in tests. */
export interface Terminal {
  readonly isTTY?: boolean
  hasColors?: (count?: number, env?: NodeJS.ProcessEnv) => boolean
}

/**
 * Whether to colour what goes to `stream`: never when NO_COLOR is set (no-color.org), always when
 * FORCE_COLOR is set to anything but 0 or false, else only on a terminal that has colours.
 */
export function useColor (stream: Terminal, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false
  const force = env.FORCE_COLOR
  if (force !== undefined && force !== '0' && force !== 'false') return true
  return stream.isTTY === true && (stream.hasColors?.(16, env) ?? false)
}

/** A style `util.styleText` knows (`green`, `red`, `dim`, `bold`, ...). */
export type Style = Parameters<typeof styleText>[0]

/** Paints text with a style when colour is on; the identity when it is off. */
export type Paint = (style: Style, text: string) => string

export function painter (color: boolean): Paint {
  // The decision is ours (useColor), so styleText must not second-guess it against process.stdout.
  return color ? (style, text) => styleText(style, text, { validateStream: false }) : (_style, text) => text
}

/** The width a cell takes on screen: colour codes take none. */
export function visibleWidth (text: string): number {
  return stripVTControlCharacters(text).length
}

export interface TableOptions {
  /** Columns whose cells are right-aligned (numbers). */
  readonly right?: readonly number[]
  /** Spaces between columns. Default 2. */
  readonly gap?: number
}

/**
 * Lays rows out under a header, each column as wide as its widest cell; the last column is not
 * padded, so no line ends in spaces.
 */
export function renderTable (header: readonly string[], rows: ReadonlyArray<readonly string[]>, options: TableOptions = {}): string[] {
  const gap = ' '.repeat(options.gap ?? 2)
  const right = new Set(options.right ?? [])
  const widths = header.map((h, i) => Math.max(visibleWidth(h), ...rows.map(r => visibleWidth(r[i] ?? ''))))
  const line = (cells: readonly string[]): string => header.map((_, i) => {
    const cell = cells[i] ?? ''
    const pad = ' '.repeat((widths[i] ?? 0) - visibleWidth(cell))
    if (right.has(i)) return pad + cell
    return i === header.length - 1 ? cell : cell + pad
  }).join(gap).trimEnd()
  return [line(header), ...rows.map(line)]
}
