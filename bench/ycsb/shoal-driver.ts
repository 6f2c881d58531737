/**
 * Shoal through client peers. Server-driven: one client per member, each listing its member first,
 * requests round-robin over them, so every member coordinates its share (as bench/kv-load.ts).
 * Client-driven: one client, which learns the ring from gossip and coordinates reads itself.
 *
 * An update writes with the causal context of the key's last put or get seen by this process:
 * a blind put would add a sibling, and YCSB's update replaces the record. Two clients updating a
 * hot key from the same context still make siblings (Dynamo keeps both); the next write with a
 * fresher context folds them. `maxSiblings` reports the most a read returned.
 */
import { createClient } from '../../src/client.ts'
import type { ShoalClient } from '../../src/client.ts'
import type { NodeStatus } from '../../src/node.ts'
import { WrongValueError, rotated } from './driver.ts'
import type { Driver, DriverOptions } from './driver.ts'

export async function shoalDriver (addrs: readonly string[], routing: 'server' | 'client', options: DriverOptions): Promise<Driver> {
  const clients: ShoalClient[] = []
  try {
    const boots = routing === 'server' ? addrs.map((_, i) => rotated(addrs, i)) : [[...addrs]]
    for (const bootstrap of boots) {
      clients.push(await createClient({ bootstrap, routing }))
    }
    await untilFormed(clients, addrs.length, options.readyTimeoutMs)
  } catch (err) {
    await Promise.allSettled(clients.map(async c => { await c.stop() }))
    throw err
  }
  const contexts = new Map<string, string>()
  let next = 0
  let maxSiblings = 0
  const pick = (): ShoalClient => clients[next++ % clients.length] as ShoalClient
  return {
    put: async (key, value) => {
      const context = contexts.get(key)
      const { context: written } = await pick().put(key, value, context === undefined ? {} : { context })
      contexts.set(key, written)
    },
    get: async (key) => {
      const read = await pick().get(key)
      if (read === undefined) throw new WrongValueError(`get ${key}: not found`)
      if (read.siblings.some(s => s.byteLength !== options.valueBytes)) throw new WrongValueError(`get ${key}: a sibling is not ${options.valueBytes} bytes`)
      if (read.siblings.length > maxSiblings) maxSiblings = read.siblings.length
      contexts.set(key, read.context)
    },
    stats: () => ({ maxSiblings }),
    stop: async () => { await Promise.allSettled(clients.map(async c => { await c.stop() })) }
  }
}

/**
 * Waits until every member, asked through a client, sees every member up, and a client-routed
 * client does too (it routes by its own member table).
 */
export async function untilFormed (clients: readonly ShoalClient[], size: number, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs
  let last = ''
  for (;;) {
    const views = await Promise.all(clients.map(async c => {
      try {
        return await c.admin({ op: 'status' }) as NodeStatus
      } catch (err) {
        last = ` (${(err as Error).message})`
        return undefined
      }
    }))
    const up = views.map(v => v?.members.filter(m => m.state === 'up').length ?? 0)
    const own = clients.filter(c => c.routing === 'client').map(c => c.members().filter(m => m.state === 'up').length)
    if (up.every(n => n === size) && own.every(n => n === size)) return
    if (performance.now() > end) throw new Error(`the cluster did not form within ${timeoutMs} ms: members up per view ${up.join(', ')} of ${size}${own.length === 0 ? '' : `, in the client's own table ${own.join(', ')}`}${last}`)
    await new Promise(resolve => setTimeout(resolve, 250))
  }
}
