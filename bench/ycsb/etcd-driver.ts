/**
 * etcd through its HTTP JSON gateway (v3 API: POST /v3/kv/put and /v3/kv/range, keys and values in
 * base64), round-robin over the members; a follower forwards a put to the leader and serves a
 * linearizable read (etcd's default) after asking the leader for its commit index. Keep-alive
 * sockets, as many per member as callers, so no request waits for a socket or a handshake.
 */
import { Agent, request } from 'node:http'
import { WrongValueError } from './driver.ts'
import type { Driver, DriverOptions } from './driver.ts'

export async function etcdDriver (urls: readonly string[], options: DriverOptions): Promise<Driver> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency, maxFreeSockets: options.concurrency })
  let next = 0
  const post = async (path: string, body: unknown, url = urls[next++ % urls.length] as string): Promise<unknown> => {
    const payload = JSON.stringify(body)
    return await new Promise((resolve, reject) => {
      const req = request(new URL(path, url), {
        method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }, timeout: 15_000
      }, res => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('error', reject)
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString()
          if (res.statusCode !== 200) reject(new Error(`etcd ${path}: HTTP ${res.statusCode}: ${text.slice(0, 200)}`))
          else {
            try {
              resolve(JSON.parse(text))
            } catch {
              reject(new Error(`etcd ${path}: not JSON: ${text.slice(0, 200)}`))
            }
          }
        })
      })
      req.on('timeout', () => { req.destroy(new Error(`etcd ${path}: no answer within 15 s`)) })
      req.on('error', reject)
      req.end(payload)
    })
  }
  const b64 = (key: string): string => Buffer.from(key).toString('base64')
  // Ready once a write goes through every member (each has a leader and forwards to it).
  const end = performance.now() + options.readyTimeoutMs
  for (const url of urls) {
    for (;;) {
      try {
        await post('/v3/kv/put', { key: b64('shoal-bench-ready'), value: b64('1') }, url)
        break
      } catch (err) {
        if (performance.now() > end) throw new Error(`etcd at ${url} not ready within ${options.readyTimeoutMs} ms: ${(err as Error).message}`)
        await new Promise(resolve => setTimeout(resolve, 200))
      }
    }
  }
  return {
    put: async (key, value) => {
      await post('/v3/kv/put', { key: b64(key), value: Buffer.from(value).toString('base64') })
    },
    get: async (key) => {
      const answer = await post('/v3/kv/range', { key: b64(key) }) as { kvs?: Array<{ value?: string }> }
      const value = answer.kvs?.[0]?.value
      if (value === undefined) throw new WrongValueError(`etcd get ${key}: not found`)
      const bytes = Buffer.from(value, 'base64').byteLength
      if (bytes !== options.valueBytes) throw new WrongValueError(`etcd get ${key}: ${bytes} bytes`)
    },
    stats: () => ({}),
    stop: async () => { agent.destroy() }
  }
}
