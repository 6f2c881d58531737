/**
 * What the `shoal` command says when something fails: one line, `shoal: ` first, what went wrong
 * and what to do next, and an exit code that tells a usage error (2) from a failure (1).
 */

/** A command line that cannot be run as given: exit 2, nothing sent or written. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** A private-network key file that cannot be read or is malformed: exit 2, nothing sent. */
export class KeyFileError extends Error {
  override name = 'KeyFileError'
}

/** Where a client command's peer address came from, to say where to look when it is wrong. */
export type PeerSource = { readonly from: 'flag' | 'env' } | { readonly from: 'file', readonly file: string }

export interface FailureContext {
  /** The command that failed: `put`, `start`, ... */
  readonly command: string
  readonly peer?: PeerSource
  /** The data directory a node was starting on. */
  readonly dataDir?: string
}

export interface Failure {
  /** The line for stderr, `shoal: ` first, no newline in it. */
  readonly line: string
  readonly exit: 1 | 2
}

/** Errors whose message a person should read, not its class name: the CLI's own. */
const PLAIN = new Set(['Error', 'UsageError', 'KeyFileError'])

/** A node's verdict on an argument is a usage error: the command line must change, not the cluster. */
const USAGE = new Set(['UsageError', 'KeyFileError', 'InvalidArgumentError', 'InvalidContextError'])

/** The error and its causes, outermost first (libp2p and LevelDB wrap the system error). */
function chain (err: unknown): Array<Error & { code?: unknown }> {
  const out: Array<Error & { code?: unknown }> = []
  let e: unknown = err
  while (e instanceof Error && out.length < 8) {
    out.push(e)
    e = e.cause
  }
  return out
}

function oneLine (text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}

function hasCode (errors: ReadonlyArray<Error & { code?: unknown }>, codes: readonly string[]): string | undefined {
  for (const e of errors) {
    if (typeof e.code === 'string' && codes.includes(e.code)) return e.code
    const inText = codes.find(code => e.message.includes(code))
    if (inText !== undefined) return inText
  }
  return undefined
}

function peerHint (peer: PeerSource | undefined): string {
  if (peer === undefined) return ''
  if (peer.from === 'file') return ` (the address in ${peer.file}, written when that node last started)`
  if (peer.from === 'env') return ' (from $SHOAL_PEER: it may name a node or a `shoal dev` cluster that has stopped)'
  return ' (from --peer)'
}

/** The next step for each error a person can act on; undefined when the message says it all. */
function nextStep (name: string, message: string, errors: ReadonlyArray<Error & { code?: unknown }>, context: FailureContext): string | undefined {
  const { command } = context
  switch (name) {
    case 'UnreachableError': {
      const refused = hasCode(errors, ['ECONNREFUSED']) !== undefined
      const where = peerHint(context.peer)
      // The client says so when it had a key and every member it reached refused the handshake.
      if (!refused && message.includes('is this the cluster\'s private-network key?')) {
        return `check that --psk FILE (or $SHOAL_PSK) is the key file the cluster's nodes were started with, and that the node runs at this address${where}`
      }
      return refused
        ? `nothing is listening at that address${where}: is the node running? \`shoal status\` on a running member lists every member's address`
        : `is the node running, and is this its address${where}? \`shoal status\` on a running member lists every member's address`
    }
    case 'TimeoutError':
    case 'NoReplyError':
      return 'the node did not answer in time (overloaded, partitioned or stopping): try again, or give it longer with --timeout MS'
    case 'QuorumError': {
      const flag = command === 'get' || /^get needed/.test(message) ? '--r' : '--w'
      const counts = /needed (\d+) of (\d+) replicas/.exec(message)
      const needed = Number(counts?.[1])
      const asked = Number(counts?.[2])
      if (counts !== null && asked < needed) {
        return `only ${asked} replica${asked === 1 ? ' is' : 's are'} in the cluster for this key: start more nodes, or lower ${flag} to ${asked}`
      }
      return `\`shoal status\` shows which members are down or suspect: try again once they answer, or lower ${flag} to need fewer replicas`
    }
    case 'UnavailableError':
      return 'no replica of this key could be reached: `shoal status` shows which members are down; try again once one is back'
    case 'OverloadedError':
      return 'the node is at its request limit: try again shortly (nothing was done, so retrying is safe)'
    case 'TooManySiblingsError':
      return 'read the key (`shoal get KEY --json`) and write the merged value back with its --context to resolve the siblings'
    case 'InvalidContextError':
      return `give --context exactly as \`shoal get KEY --json\` or \`shoal put\` printed it (see shoal help ${command})`
    case 'DataDirectoryInUseError':
      return command === 'dev'
        ? 'is another `shoal dev` running on it? Stop that one, or give this one its own --data DIR'
        : 'is another `shoal start` running on it? Stop that one, or give this node its own --data DIR'
    case 'WrongTypeError':
      return 'the key holds another kind of value: use the commands for that kind (shoal get shows a plain value), or another key'
    case 'ConflictError':
      return 'concurrent writers kept adding siblings; nothing is lost: try again'
    case 'NotADataDirectoryError':
    case 'UnsupportedFormatError':
      return 'give --data a new or empty directory, or the data directory of a Shoal node'
    case 'InvalidArgumentError':
      if (/value is \d+ bytes/.test(message)) return 'keep large values elsewhere and store a reference to them'
      return `see shoal help ${command}`
    case 'UsageError':
      // Most usage errors already say what would be right.
      return /shoal help|usage: |did you mean/.test(message) ? undefined : `see shoal help ${command}`
    default:
      return undefined
  }
}

/** Failures of the machine rather than the cluster: the port, the directory. */
function systemFailure (errors: ReadonlyArray<Error & { code?: unknown }>, context: FailureContext): string | undefined {
  const text = errors.map(e => e.message).join(' ')
  const inUse = hasCode(errors, ['EADDRINUSE'])
  if (inUse !== undefined) {
    if (/cannot serve HTTP/.test(text)) {
      const where = /cannot serve HTTP on (\S+):/.exec(text)?.[1] ?? 'that address'
      return `cannot serve HTTP on ${where}: the port is in use; choose another --http HOST:PORT (port 0 takes any free one)`
    }
    const addr = /(\/ip[46]\/[^\s:]+\/tcp\/\d+)/.exec(text)?.[1]
    return `cannot listen on ${addr ?? 'the --listen address'}: the port is in use (another shoal node?); choose another --listen, e.g. /ip4/127.0.0.1/tcp/0 for any free port`
  }
  if (hasCode(errors, ['EADDRNOTAVAIL']) !== undefined) {
    const addr = /(\/ip[46]\/[^\s:]+\/tcp\/\d+)/.exec(text)?.[1]
    return `cannot listen on ${addr ?? 'the --listen address'}: that IP address is not on this machine; give --listen one of its addresses, or /ip4/0.0.0.0/tcp/PORT for all`
  }
  const denied = hasCode(errors, ['EACCES', 'EPERM', 'EROFS'])
  if (denied !== undefined && (context.command === 'start' || context.command === 'dev')) {
    const path = /'([^']+)'/.exec(errors.find(e => e.message.includes(denied))?.message ?? '')?.[1]
    const dir = context.dataDir ?? path ?? 'the data directory'
    const what = denied === 'EROFS' ? 'it is on a read-only file system' : `permission denied${path !== undefined && path !== dir ? ` on ${path}` : ''}`
    return `cannot write the data directory ${dir}: ${what}; run shoal as a user who may write there, fix its owner or mode (chown, chmod), or choose another --data DIR`
  }
  return undefined
}

/**
 * The one line and exit code for an error that ended a command: `shoal: ` first, the error's
 * class when it is Shoal's (scripts and people search for it), its message, and what to do next.
 */
export function describeFailure (err: unknown, context: FailureContext): Failure {
  const errors = chain(err)
  const first = errors[0]
  if (first === undefined) return { line: `shoal: ${context.command} failed: ${oneLine(String(err))}`, exit: 1 }
  const system = systemFailure(errors, context)
  if (system !== undefined) return { line: `shoal: ${system}`, exit: 1 }
  const name = first.name
  const message = oneLine(first.message)
  const step = nextStep(name, message, errors, context)
  const label = PLAIN.has(name) ? '' : `${name}: `
  return {
    line: `shoal: ${label}${message}${step === undefined ? '' : `; ${step}`}`,
    exit: USAGE.has(name) ? 2 : 1
  }
}
