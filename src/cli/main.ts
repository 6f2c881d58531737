import { parseArgs } from 'node:util'

/** Exit codes, part of the command's contract with scripts. */
export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3 } as const

interface Command {
  readonly synopsis: string
  readonly summary: string
}

const COMMANDS: Record<string, Command> = {
  start: { synopsis: 'start [--data DIR] [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--cluster NAME] [--mdns | --no-mdns] [--n 3] [--r 2] [--w 2] [--weight 1] [--json]', summary: 'run a node until SIGINT or SIGTERM' },
  put: { synopsis: 'put KEY [VALUE] [--context CTX] [--w W]', summary: 'write a value (read from stdin when VALUE is omitted)' },
  get: { synopsis: 'get KEY [--r R] [--local]', summary: 'read every sibling of a key and its context' },
  delete: { synopsis: 'delete KEY [--context CTX] [--w W]', summary: 'delete a key (a tombstone under a context)' },
  status: { synopsis: 'status', summary: 'members, their state and partitions, hints pending' },
  leave: { synopsis: 'leave', summary: 'hand this node\'s data to the others and leave the ring' },
  dev: { synopsis: 'dev [--nodes 3] [--data DIR]', summary: 'a local cluster on loopback to try Shoal' }
}

export function usage (): string {
  const width = Math.max(...Object.keys(COMMANDS).map(c => c.length))
  return [
    'usage: shoal <command> [options]',
    '',
    'Shoal is a peer-to-peer, leaderless key-value store after Amazon\'s Dynamo.',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}\n  ${' '.repeat(width)}  shoal ${c.synopsis}`),
    '',
    'common options: --peer MULTIADDR (else $SHOAL_PEER, else DIR/node.json of --data, default ./shoal-data), --json, --timeout MS',
    '  -h, --help  this text',
    '',
    'exit codes: 0 success, 1 the operation failed, 2 usage error, 3 not found'
  ].join('\n')
}

/** Runs the command line `argv` (without `node` and the script); returns the exit code. */
export async function main (argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    console.log(usage())
    return name === undefined ? EXIT.usage : EXIT.ok
  }
  const command = COMMANDS[name]
  if (command === undefined) {
    console.error(`shoal: unknown command ${JSON.stringify(name)}\n\n${usage()}`)
    return EXIT.usage
  }
  const { values } = parseArgs({ args: [...rest], options: { help: { type: 'boolean', short: 'h' } }, strict: false, allowPositionals: true })
  if (values.help === true) {
    console.log(`usage: shoal ${command.synopsis}\n\n${command.summary}`)
    return EXIT.ok
  }
  // The node and its network protocols arrive with the live-cluster work; until then say so.
  console.error(`shoal ${name}: not available yet: this build has the core, storage and simulator only (the live cluster is not built yet)`)
  return EXIT.failed
}
