/**
 * The shape of a `shoal` command: one entry in main.ts's command table holds its options, its
 * help and the function that runs it.
 */
import type { ParseArgsOptionDescriptor } from 'node:util'

/** One option, as `util.parseArgs` takes it, with what `--help` says about it. */
export type OptionSpec = ParseArgsOptionDescriptor & {
  /** The value's placeholder in help: `MS`, `DIR`. */
  readonly value?: string
  /** One line for `--help`. */
  readonly help?: string
}

export type Options = Record<string, OptionSpec>

/** A parsed command line. */
export interface Args {
  readonly values: Record<string, string | boolean | Array<string | boolean> | undefined>
  readonly positionals: string[]
}

/** What `shoal COMMAND --help` shows beyond the synopsis and summary. */
export interface CommandHelp {
  /** A few sentences: what the command does, what it prints, when it returns. */
  readonly description?: string
  /** Lines to run, each as a person would type it; `#` starts a comment. */
  readonly examples: readonly string[]
}

/** Which of the common options a command takes. */
export type CommonOptions = 'client' | 'node' | 'none'

export interface Command {
  readonly synopsis: string
  readonly summary: string
  readonly options: Options
  readonly positionals: [min: number, max: number]
  readonly run: (args: Args) => Promise<number>
  readonly help?: CommandHelp
  /** Default 'client': --peer, --data, --psk, --cluster, --timeout, --json. */
  readonly common?: CommonOptions
}
