/**
 * `shoal counter incr|decr|get KEY [N]` and `shoal set add|remove|members KEY [MEMBER]`: the
 * convergent types from the command line, over the same connection options as `shoal get`.
 */
import { utf8Text } from '../core/bytes.ts'
import type { ShoalClient } from '../client.ts'
import type { Args, Command, Options } from './command.ts'

/** What the commands borrow from main.ts: its client, flag parsing, usage errors and exit codes. */
export interface CliTools {
  readonly withClient: (args: Args, fn: (client: ShoalClient) => Promise<number>) => Promise<number>
  readonly int: (args: Args, name: string, min: number, max: number) => number | undefined
  readonly flag: (args: Args, name: string) => boolean
  readonly usageError: (message: string) => Error
  readonly exit: { readonly ok: number, readonly notFound: number }
}

const QUORUM: Options = { r: { type: 'string' }, w: { type: 'string' } }

/** The `counter` and `set` commands, for main.ts's command table. */
export function crdtCommands (tools: CliTools): Record<string, Command> {
  const { withClient, int, flag, usageError, exit } = tools
  const quorum = (args: Args): { r?: number, w?: number } => {
    const r = int(args, 'r', 1, 16)
    const w = int(args, 'w', 1, 16)
    return { ...(r === undefined ? {} : { r }), ...(w === undefined ? {} : { w }) }
  }

  const counter = async (args: Args): Promise<number> => {
    const [op, key, amount] = args.positionals as [string, string, string | undefined]
    if (op !== 'incr' && op !== 'decr' && op !== 'get') throw usageError(`unknown counter operation ${JSON.stringify(op)}: incr, decr or get`)
    if (op === 'get' && amount !== undefined) throw usageError('counter get takes KEY only')
    if (amount !== undefined && (!/^\d+$/.test(amount) || !Number.isSafeInteger(Number(amount)) || Number(amount) < 1)) {
      throw usageError(`N must be a positive integer, got ${JSON.stringify(amount)}`)
    }
    const by = amount === undefined ? 1 : Number(amount)
    const options = quorum(args)
    return await withClient(args, async client => {
      const handle = client.counter(key)
      const value = op === 'get' ? await handle.value(options) : op === 'incr' ? await handle.increment(by, options) : await handle.decrement(by, options)
      console.log(flag(args, 'json') ? JSON.stringify({ key, value }) : String(value))
      return exit.ok
    })
  }

  const set = async (args: Args): Promise<number> => {
    const [op, key, member] = args.positionals as [string, string, string | undefined]
    if (op !== 'add' && op !== 'remove' && op !== 'members') throw usageError(`unknown set operation ${JSON.stringify(op)}: add, remove or members`)
    if (op === 'members' && member !== undefined) throw usageError('set members takes KEY only')
    if (op !== 'members' && (member === undefined || member === '')) throw usageError(`set ${op} needs KEY and MEMBER`)
    const options = quorum(args)
    return await withClient(args, async client => {
      const handle = client.set(key)
      if (op === 'members') {
        const members = await handle.members(options)
        if (flag(args, 'json')) console.log(JSON.stringify({ key, members: members.map(m => { const t = utf8Text(m); return t === undefined ? { base64: base64(m) } : { value: t } }) }))
        else for (const m of members) console.log(utf8Text(m) ?? `base64:${base64(m)}`)
        return exit.ok
      }
      if (op === 'add') {
        await handle.add(member as string, options)
        if (flag(args, 'json')) console.log(JSON.stringify({ ok: true }))
        return exit.ok
      }
      const removed = await handle.remove(member as string, options)
      if (flag(args, 'json')) console.log(JSON.stringify({ ok: true, removed }))
      if (!removed) {
        console.error(`shoal set remove: ${JSON.stringify(member)} is not a member of ${JSON.stringify(key)}`)
        return exit.notFound
      }
      return exit.ok
    })
  }

  return {
    counter: {
      synopsis: 'counter incr|decr|get KEY [N] [--r R] [--w W]',
      summary: 'a counter that concurrent writers never lose counts of: add or subtract N (default 1), or print its value',
      options: QUORUM,
      positionals: [2, 3],
      run: counter
    },
    set: {
      synopsis: 'set add|remove|members KEY [MEMBER] [--r R] [--w W]',
      summary: 'a set merged across writers (an add concurrent with a remove wins); remove exits 3 when MEMBER was not there',
      options: QUORUM,
      positionals: [2, 3],
      run: set
    }
  }
}

function base64 (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64')
}
