/**
 * `shoal --help`, `shoal help COMMAND` and `shoal COMMAND --help`: usage, options and examples,
 * built from the command table so a new command documents itself.
 */
import type { Command, CommandHelp, CommonOptions, Options } from './command.ts'

export const DEFAULT_DATA = './shoal-data'

/** The options every client command takes: where the node is and how to reach it. */
export const CLIENT_OPTIONS: Options = {
  peer: { type: 'string', value: 'MULTIADDR', help: 'the node to talk to (else $SHOAL_PEER, else DIR/node.json of --data)' },
  data: { type: 'string', value: 'DIR', help: `a local node's data directory, to find its address (default ${DEFAULT_DATA})` },
  psk: { type: 'string', value: 'FILE', help: 'the private-network key of a cluster started with one (else $SHOAL_PSK)' },
  cluster: { type: 'string', value: 'NAME', help: 'the cluster\'s name (default shoal)' },
  timeout: { type: 'string', value: 'MS', help: 'how long to wait for an answer (default 15000)' },
  json: { type: 'boolean', default: false, help: 'print JSON (fields may be added, never removed)' },
  help: { type: 'boolean', short: 'h', default: false, help: 'this text' }
}

/** The options of a command that runs nodes: no --peer, the data directory is theirs. */
export const NODE_OPTIONS: Options = {
  data: { type: 'string', value: 'DIR', help: `where the store and the node's key live (default ${DEFAULT_DATA})` },
  psk: { type: 'string', value: 'FILE', help: 'run as a private network: only peers with this key file connect (else $SHOAL_PSK)' },
  cluster: { type: 'string', value: 'NAME', help: 'the cluster\'s name: nodes of other clusters are ignored (default shoal)' },
  timeout: { type: 'string', value: 'MS', help: 'deadline of a request this node coordinates (default 5000)' },
  json: { type: 'boolean', default: false, help: 'print JSON on stdout' },
  help: { type: 'boolean', short: 'h', default: false, help: 'this text' }
}

const BARE_OPTIONS: Options = {
  json: { type: 'boolean', default: false, help: 'print JSON' },
  help: { type: 'boolean', short: 'h', default: false, help: 'this text' }
}

export function commonOptions (kind: CommonOptions | undefined): Options {
  return kind === 'node' ? NODE_OPTIONS : kind === 'none' ? BARE_OPTIONS : CLIENT_OPTIONS
}

/**
 * Help for commands registered without their own (the convergent types' commands), so that
 * `--help` has examples for every command.
 */
const FALLBACK_HELP: Record<string, CommandHelp> = {
  counter: {
    description: 'A PN-counter stored under KEY: increments and decrements from anywhere merge, none is lost. incr and decr print the new value; get prints the value.',
    examples: ['shoal counter incr page-views', 'shoal counter incr page-views 10', 'shoal counter decr stock:apples 3', 'shoal counter get page-views --json']
  },
  set: {
    description: 'An add-wins set stored under KEY: concurrent adds and removes merge; an add concurrent with a remove wins. members prints one member per line.',
    examples: ['shoal set add cart:42 apples', 'shoal set remove cart:42 apples', 'shoal set members cart:42', 'shoal set members cart:42 --json']
  }
}

export function helpOf (name: string, command: Command): CommandHelp | undefined {
  return command.help ?? FALLBACK_HELP[name]
}

/** `--flag VALUE` as help shows it. */
function flagText (name: string, spec: Options[string]): string {
  const short = spec.short === undefined ? '' : `-${spec.short}, `
  const value = spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : ''
  return `${short}--${name}${value}${spec.multiple === true ? '...' : ''}`
}

/** What an option means when a command registered without saying (the quorum options do the same everywhere). */
const USUAL_OPTIONS: Options = {
  r: { type: 'string', value: 'R', help: 'replicas that must answer a read (1 to N; default the node\'s R)' },
  w: { type: 'string', value: 'W', help: 'replicas that must acknowledge a write (1 to N; default the node\'s W)' }
}

function optionLines (options: Options): string[] {
  const rows = Object.entries(options).map(([name, given]) => {
    const usual = USUAL_OPTIONS[name]
    const spec = given.help === undefined && usual?.type === given.type ? { ...given, ...usual } : given
    return [flagText(name, spec), spec.help ?? ''] as const
  })
  const width = Math.max(0, ...rows.map(([flag]) => flag.length))
  return rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`.trimEnd())
}

/** Words wrapped at `width` columns, each line indented. */
function wrap (text: string, width = 96, indent = ''): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/).filter(w => w !== '')) {
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line)
      line = word
    } else {
      line = line === '' ? word : `${line} ${word}`
    }
  }
  if (line !== '') lines.push(indent + line)
  return lines
}

/** A synopsis wrapped between its bracketed parts, never inside one; continuation lines indented. */
function wrapSynopsis (synopsis: string, first: string, indent: string, width = 100): string[] {
  const parts = synopsis.match(/\[[^\]]*\](?:\.\.\.)?|\S+/g) ?? [synopsis]
  const lines: string[] = []
  let line = first
  for (const part of parts) {
    const blank = line === first || line === indent
    if (!blank && line.length + 1 + part.length > width) {
      lines.push(line)
      line = indent + part
    } else {
      line = blank ? line + part : `${line} ${part}`
    }
  }
  lines.push(line)
  return lines
}

/** `shoal COMMAND --help`. */
export function commandHelp (name: string, command: Command): string {
  const help = helpOf(name, command)
  const own = optionLines(command.options)
  const examples = help?.examples ?? []
  return [
    ...wrapSynopsis(command.synopsis, 'usage: shoal ', '         '),
    '',
    ...wrap(help?.description ?? `${command.summary[0]?.toUpperCase() ?? ''}${command.summary.slice(1)}.`),
    ...(own.length > 0 ? ['', 'options:', ...own] : []),
    '',
    command.common === 'node' ? 'node options:' : command.common === 'none' ? 'other options:' : 'connection options:',
    ...optionLines(commonOptions(command.common)),
    ...(examples.length > 0 ? ['', 'examples:', ...examples.map(e => `  ${e}`)] : []),
    '',
    'exit codes: 0 success, 1 the operation failed, 2 usage error, 3 not found'
  ].join('\n')
}

/** `shoal --help`: every command with its summary and synopsis. */
export function overview (commands: Record<string, Command>): string {
  const width = Math.max(...Object.keys(commands).map(c => c.length))
  return [
    'usage: shoal <command> [options]',
    '',
    'Shoal is a peer-to-peer, leaderless key-value store after Amazon\'s Dynamo.',
    '',
    'commands:',
    ...Object.entries(commands).flatMap(([name, c]) => [
      `  ${name.padEnd(width)}  ${c.summary}`,
      ...wrapSynopsis(c.synopsis, `  ${' '.repeat(width)}  shoal `, ' '.repeat(width + 10))
    ]),
    '',
    'connection options of the commands that talk to a node:',
    ...optionLines(CLIENT_OPTIONS),
    '',
    'shoal help COMMAND (or shoal COMMAND --help) shows a command\'s options and examples.',
    'Try it: shoal dev starts a 3-node cluster on this machine and prints what to run next.',
    '',
    'exit codes: 0 success, 1 the operation failed, 2 usage error, 3 not found'
  ].join('\n')
}
