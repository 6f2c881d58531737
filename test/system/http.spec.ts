import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseHttpAddress } from '../../src/http/address.ts'
import { startGateway } from '../../src/http/gateway.ts'
import type { HttpGateway } from '../../src/http/gateway.ts'
import { encodeKey } from '../../src/http/key.ts'
import { decodeSiblings } from '../../src/http/multipart.ts'
import type { NodeStats } from '../../src/metrics.ts'
import { createNode } from '../../src/node.ts'
import type { NodeOptions, ShoalNode } from '../../src/node.ts'
import { eventually } from '../support/eventually.ts'

/** The gateway's node refuses values above this: small, so 413s cost little to provoke. */
const MAX_VALUE = 64 * 1024
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

function p2p (node: ShoalNode): string {
  const addr = node.addrs[0] ?? ''
  return addr.includes('/p2p/') ? addr : `${addr}/p2p/${node.peerId}`
}

/** A 3-node cluster in this process over real libp2p on 127.0.0.1, in a temp dir. */
class Cluster {
  readonly nodes: ShoalNode[] = []
  root = ''
  private readonly options: Partial<NodeOptions>

  constructor (options: Partial<NodeOptions>) {
    this.options = options
  }

  async start (): Promise<void> {
    this.root = await mkdtemp(join(tmpdir(), 'shoal-http-'))
    for (let i = 0; i < 3; i++) await this.startNode(i)
    await this.allUp()
  }

  async startNode (i: number): Promise<ShoalNode> {
    const first = this.nodes.find((n, j) => n !== undefined && j !== i)
    const node = await createNode({
      dataDir: join(this.root, `node-${i}`),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: first === undefined ? [] : [p2p(first)],
      cluster: 'http-test',
      timeoutMs: 2000,
      ...this.options
    })
    this.nodes[i] = node
    return node
  }

  async allUp (): Promise<void> {
    await eventually('every node sees 3 members up', () => this.nodes.every(n => n.status().members.filter(m => m.state === 'up').length === 3), 30_000)
  }

  async stop (): Promise<void> {
    for (const node of this.nodes) await node?.stop()
    if (this.root !== '') await rm(this.root, { recursive: true, force: true })
  }
}

/** Bytes sent as they are and what came back until the server closed the connection (or `waitMs` passed). */
async function raw (port: number, chunks: Array<string | Buffer>, options: { waitMs?: number, pauseMs?: number, destroyAfterSend?: boolean } = {}): Promise<{ response: string, closedByServer: boolean }> {
  const socket: Socket = connect(port, '127.0.0.1')
  let response = ''
  let closedByServer = false
  socket.on('data', (d: Buffer) => { response += d.toString('latin1') })
  socket.on('error', () => {})
  const closed = new Promise<void>(resolve => socket.once('close', () => { resolve() }))
  socket.once('end', () => { closedByServer = true })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  for (const chunk of chunks) {
    if (socket.destroyed) break
    socket.write(chunk)
    if (options.pauseMs !== undefined) await new Promise(resolve => setTimeout(resolve, options.pauseMs))
  }
  if (options.destroyAfterSend === true) {
    socket.destroy()
    return { response, closedByServer: false }
  }
  const timer = setTimeout(() => { socket.destroy() }, options.waitMs ?? 5000)
  await closed
  clearTimeout(timer)
  return { response, closedByServer }
}

/**
 * Prometheus text exposition format 0.0.4, strictly: every line a HELP, a TYPE or a sample of a
 * declared family with well-formed labels and a float value. Returns each sample's value by its
 * name and labels as written.
 */
function parsePrometheus (body: string): Map<string, number> {
  const types = new Map<string, string>()
  const samples = new Map<string, number>()
  const nameRe = '[a-zA-Z_:][a-zA-Z0-9_:]*'
  const sampleRe = new RegExp(`^(${nameRe})(\\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\["\\\\n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\["\\\\n])*")*,?)?\\})? (-?(?:\\d+(?:\\.\\d*)?(?:[eE][-+]?\\d+)?|\\.\\d+)|NaN|\\+Inf|-Inf)(?: -?\\d+)?$`)
  for (const line of body.split('\n')) {
    if (line === '') continue
    const type = new RegExp(`^# TYPE (${nameRe}) (counter|gauge|histogram|summary|untyped)$`).exec(line)
    if (type !== null) {
      types.set(type[1] as string, type[2] as string)
      continue
    }
    if (new RegExp(`^# HELP ${nameRe} .*$`).test(line)) continue
    const sample = sampleRe.exec(line)
    assert.ok(sample !== null, `not a Prometheus line: ${JSON.stringify(line)}`)
    const name = sample[1] as string
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count|total|created)$/, '')
    assert.ok(types.has(family), `${name} has no # TYPE line`)
    samples.set(`${name}${sample[2] ?? ''}`, Number(sample[3]))
  }
  return samples
}

describe('the HTTP gateway', function () {
  this.timeout(180_000)
  const cluster = new Cluster({ maxValueBytes: MAX_VALUE })
  let gateway: HttpGateway
  let url: string
  let node: ShoalNode

  const stats = async (): Promise<NodeStats> => await (await fetch(`${url}stats`)).json() as NodeStats
  const absent = async (key: string | Uint8Array): Promise<void> => {
    assert.equal(await cluster.nodes[1]!.get(key, { r: 3 }), undefined, `nothing was written to ${String(key)}`)
  }

  before(async () => {
    await cluster.start()
    node = cluster.nodes[0]!
    gateway = await startGateway(node, { headersTimeoutMs: 1000, requestTimeoutMs: 3000, idleTimeoutMs: 3000 })
    url = gateway.url
  })

  after(async () => {
    await gateway?.stop()
    await cluster.stop()
  })

  it('listens on 127.0.0.1 unless told otherwise', () => {
    assert.equal(gateway.address.host, '127.0.0.1')
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/)
  })

  it('PUT stores the raw body (204 and a context); GET answers 200 with the same bytes and context', async () => {
    const value = Uint8Array.from({ length: 256 }, (_, i) => i)
    const put = await fetch(`${url}kv/bytes`, { method: 'PUT', body: value, headers: { 'Content-Type': 'image/png' } })
    assert.equal(put.status, 204)
    const context = put.headers.get('x-shoal-context')
    assert.ok(context !== null && context.length > 0)
    const get = await fetch(`${url}kv/bytes`)
    assert.equal(get.status, 200)
    assert.equal(get.headers.get('content-type'), 'application/octet-stream')
    assert.equal(get.headers.get('x-shoal-context'), context)
    assert.deepEqual(new Uint8Array(await get.arrayBuffer()), value)
    const head = await fetch(`${url}kv/bytes`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('content-length'), '256')
  })

  it('a key in the path is URL-decoded to any bytes, the same key as the API\'s', async () => {
    const key = Uint8Array.from([0xff, 0x00, 0x2f, 0x3f, 0x25, 0x20, 0xc3, 0xbc])
    assert.equal((await fetch(`${url}kv/${encodeKey(key)}`, { method: 'PUT', body: 'any bytes' })).status, 204)
    assert.equal(text((await node.get(key))!.siblings[0]!), 'any bytes')
    await node.put('a/b c', 'from the API')
    const get = await fetch(`${url}kv/a/b%20c`)
    assert.equal(get.status, 200)
    assert.equal(await get.text(), 'from the API')
  })

  it('two PUTs without a context make siblings: 300 multipart/mixed, one part each; a PUT with the context resolves them', async () => {
    assert.equal((await fetch(`${url}kv/shape`, { method: 'PUT', body: 'circle' })).status, 204)
    assert.equal((await fetch(`${url}kv/shape`, { method: 'PUT', body: 'square\r\n--not-a-boundary' })).status, 204)
    const read = await fetch(`${url}kv/shape`)
    assert.equal(read.status, 300)
    const type = read.headers.get('content-type') ?? ''
    assert.match(type, /^multipart\/mixed; boundary=\S+$/)
    const context = read.headers.get('x-shoal-context')
    assert.ok(context !== null)
    const siblings = decodeSiblings(type, new Uint8Array(await read.arrayBuffer())).map(text).sort()
    assert.deepEqual(siblings, ['circle', 'square\r\n--not-a-boundary'])

    const resolve = await fetch(`${url}kv/shape`, { method: 'PUT', body: 'hexagon', headers: { 'X-Shoal-Context': context } })
    assert.equal(resolve.status, 204)
    const after = await fetch(`${url}kv/shape?r=3`)
    assert.equal(after.status, 200)
    assert.equal(await after.text(), 'hexagon')
  })

  it('DELETE with the read\'s context answers 204, and the key then answers 404', async () => {
    await fetch(`${url}kv/doomed`, { method: 'PUT', body: 'soon gone' })
    const context = (await fetch(`${url}kv/doomed`)).headers.get('x-shoal-context') ?? ''
    const del = await fetch(`${url}kv/doomed`, { method: 'DELETE', headers: { 'X-Shoal-Context': context } })
    assert.equal(del.status, 204)
    const get = await fetch(`${url}kv/doomed`)
    assert.equal(get.status, 404)
    assert.equal((await get.json() as { error: string }).error, 'NotFoundError')
  })

  it('404 for a key never written and for paths it does not serve; 405 with Allow for other methods', async () => {
    for (const path of ['kv/never-written', 'nothing-here', 'kv', 'stats/more']) {
      const res = await fetch(`${url}${path}`)
      assert.equal(res.status, 404, path)
      const body = await res.json() as { error: string, message: string, advice: string }
      assert.equal(body.error, 'NotFoundError', path)
      assert.ok(body.message.length > 0 && body.advice.length > 0)
    }
    for (const [method, path, allow] of [['POST', 'kv/x', 'GET, HEAD, PUT, DELETE'], ['PATCH', 'kv/x', 'GET, HEAD, PUT, DELETE'], ['PUT', 'stats', 'GET, HEAD'], ['DELETE', '', 'GET, HEAD'], ['POST', 'metrics', 'GET, HEAD']] as const) {
      const res = await fetch(`${url}${path}`, { method, ...(method === 'POST' || method === 'PUT' || method === 'PATCH' ? { body: 'x' } : {}) })
      assert.equal(res.status, 405, `${method} /${path}`)
      assert.equal(res.headers.get('allow'), allow)
      assert.equal((await res.json() as { error: string }).error, 'MethodNotAllowedError')
    }
    await absent('x')
  })

  it('400 with a typed error for bad input, and nothing is written', async () => {
    const rows: Array<[string, string, RequestInit, string]> = [
      ['a malformed percent-escape', 'kv/bad%ZZ', { method: 'PUT', body: 'v' }, 'InvalidArgumentError'],
      ['a lone %', 'kv/bad%', { method: 'GET' }, 'InvalidArgumentError'],
      ['no key', 'kv/', { method: 'PUT', body: 'v' }, 'InvalidArgumentError'],
      ['a 1025-byte key', `kv/${'k'.repeat(1025)}`, { method: 'PUT', body: 'v' }, 'InvalidArgumentError'],
      ['a malformed context', 'kv/bad-input', { method: 'PUT', body: 'v', headers: { 'X-Shoal-Context': 'not a context!' } }, 'InvalidContextError'],
      ['a context of the wrong shape', 'kv/bad-input', { method: 'DELETE', headers: { 'X-Shoal-Context': 'AAAA' } }, 'InvalidContextError'],
      ['w=0', 'kv/bad-input?w=0', { method: 'PUT', body: 'v' }, 'InvalidArgumentError'],
      ['w above N', 'kv/bad-input?w=4', { method: 'PUT', body: 'v' }, 'InvalidArgumentError'],
      ['w not a number', 'kv/bad-input?w=two', { method: 'DELETE' }, 'InvalidArgumentError'],
      ['w given twice', 'kv/bad-input?w=1&w=2', { method: 'PUT', body: 'v' }, 'InvalidArgumentError'],
      ['an unknown parameter (W for w)', 'kv/bad-input?W=3', { method: 'PUT', body: 'v' }, 'InvalidArgumentError'],
      ['r on a PUT', 'kv/bad-input?r=1', { method: 'PUT', body: 'v' }, 'InvalidArgumentError'],
      ['r=0', 'kv/bad-input?r=0', { method: 'GET' }, 'InvalidArgumentError'],
      ['r above N', 'kv/bad-input?r=9', { method: 'GET' }, 'InvalidArgumentError'],
      ['w on a GET', 'kv/bad-input?w=2', { method: 'GET' }, 'InvalidArgumentError'],
      ['a query on /stats', 'stats?all=1', { method: 'GET' }, 'InvalidArgumentError']
    ]
    for (const [what, path, init, error] of rows) {
      const res = await fetch(`${url}${path}`, init)
      assert.equal(res.status, 400, what)
      const body = await res.json() as { error: string, message: string, advice: string }
      assert.equal(body.error, error, what)
      assert.ok(body.message.length > 0 && body.advice.length > 0, what)
    }
    await absent('bad-input')
    await absent('bad')
  })

  it('counters: GET answers {value} (0 when absent), POST adds ?by= (default 1, negative subtracts), the same counter as the API\'s', async () => {
    const value = async (res: Response): Promise<number> => {
      assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8')
      return (await res.json() as { value: number }).value
    }
    const absent = await fetch(`${url}counters/visits`)
    assert.equal(absent.status, 200)
    assert.equal(await value(absent), 0)
    assert.equal(await value(await fetch(`${url}counters/visits`, { method: 'POST' })), 1)
    assert.equal(await value(await fetch(`${url}counters/visits?by=41&w=3`, { method: 'POST' })), 42)
    assert.equal(await value(await fetch(`${url}counters/visits?by=-2`, { method: 'POST' })), 40)
    await cluster.nodes[2]!.counter('visits').increment(5)
    assert.equal(await value(await fetch(`${url}counters/visits?r=3`)), 45)
    assert.equal(await cluster.nodes[1]!.counter('visits').value({ r: 3 }), 45)
  })

  it('sets: PUT adds a member, DELETE removes it (404 when absent), GET lists them or asks about one, the same set as the API\'s', async () => {
    const members = async (): Promise<unknown> => await (await fetch(`${url}sets/cart?r=3`)).json()
    assert.deepEqual(await members(), { members: [] })
    for (const member of ['pears', 'apples', 'käse%2Fbrot']) assert.equal((await fetch(`${url}sets/cart/${member}`, { method: 'PUT' })).status, 204)
    await cluster.nodes[1]!.set('cart').add(Uint8Array.from([0xff, 0x00]))
    assert.deepEqual(await members(), { members: ['apples', 'käse/brot', 'pears'], binary: ['/wA='] })
    assert.equal((await fetch(`${url}sets/cart/apples`)).status, 204)
    assert.equal((await fetch(`${url}sets/cart/apples`, { method: 'DELETE' })).status, 204)
    assert.equal((await fetch(`${url}sets/cart/apples`)).status, 404)
    const again = await fetch(`${url}sets/cart/apples?w=3`, { method: 'DELETE' })
    assert.equal(again.status, 404)
    assert.equal((await again.json() as { error: string }).error, 'NotFoundError')
    assert.deepEqual((await cluster.nodes[2]!.set('cart').members({ r: 3 })).map(text).sort(), ['käse/brot', 'pears', '\ufffd\u0000'].sort())
  })

  it('counters and sets: bad input is 400, another kind of value 409, other methods 405; nothing is written', async () => {
    await node.put('plain', 'a plain value')
    await node.counter('a-counter').increment(3)
    const rows: Array<[string, string, RequestInit, number, string]> = [
      ['by not an integer', 'counters/c-bad?by=1.5', { method: 'POST' }, 400, 'InvalidArgumentError'],
      ['by empty', 'counters/c-bad?by=', { method: 'POST' }, 400, 'InvalidArgumentError'],
      ['by past a safe integer', 'counters/c-bad?by=99999999999999999', { method: 'POST' }, 400, 'InvalidArgumentError'],
      ['by on a GET', 'counters/c-bad?by=2', { method: 'GET' }, 400, 'InvalidArgumentError'],
      ['r on a POST', 'counters/c-bad?r=1', { method: 'POST' }, 400, 'InvalidArgumentError'],
      ['w above N', 'counters/c-bad?w=4', { method: 'POST' }, 400, 'InvalidArgumentError'],
      ['no counter key', 'counters/', { method: 'POST' }, 400, 'InvalidArgumentError'],
      ['no set member', 'sets/s-bad/', { method: 'PUT' }, 400, 'InvalidArgumentError'],
      ['a malformed member escape', 'sets/s-bad/%G0', { method: 'PUT' }, 400, 'InvalidArgumentError'],
      ['an unknown parameter on a set', 'sets/s-bad/m?by=1', { method: 'PUT' }, 400, 'InvalidArgumentError'],
      ['a counter over a plain value', 'counters/plain', { method: 'POST' }, 409, 'WrongTypeError'],
      ['a set over a plain value', 'sets/plain/m', { method: 'PUT' }, 409, 'WrongTypeError'],
      ['a set read of a counter', 'sets/a-counter', { method: 'GET' }, 409, 'WrongTypeError'],
      ['PUT on a counter', 'counters/c-bad', { method: 'PUT', body: '1' }, 405, 'MethodNotAllowedError'],
      ['POST on a set', 'sets/s-bad', { method: 'POST', body: 'm' }, 405, 'MethodNotAllowedError'],
      ['no key at all', 'counters', { method: 'GET' }, 404, 'NotFoundError']
    ]
    for (const [what, path, init, status, error] of rows) {
      const res = await fetch(`${url}${path}`, init)
      assert.equal(res.status, status, what)
      const body = await res.json() as { error: string, message: string, advice: string }
      assert.equal(body.error, error, what)
      assert.ok(body.message.length > 0 && body.advice.length > 0, what)
    }
    await absent('c-bad')
    await absent('s-bad')
    assert.equal(text((await cluster.nodes[1]!.get('plain', { r: 3 }))!.siblings[0]!), 'a plain value')
    assert.equal(await cluster.nodes[1]!.counter('a-counter').value({ r: 3 }), 3)
  })

  it('?w= and ?r= reach the coordinator: w=3 and r=3 succeed while every replica is up, r=1 reads', async () => {
    const put = await fetch(`${url}kv/quorums?w=3`, { method: 'PUT', body: 'everywhere' })
    assert.equal(put.status, 204)
    // W=3 acknowledged: every replica holds it now, not eventually.
    for (const n of cluster.nodes) assert.equal(text((await n.getLocal('quorums'))!.siblings[0]!), 'everywhere')
    for (const r of [1, 3]) {
      const get = await fetch(`${url}kv/quorums?r=${r}`)
      assert.equal(get.status, 200)
      assert.equal(await get.text(), 'everywhere')
    }
  })

  it('413 for a body over the node\'s maxValueBytes, by Content-Length or streamed chunked; nothing written', async () => {
    const exact = await fetch(`${url}kv/exact`, { method: 'PUT', body: new Uint8Array(MAX_VALUE) })
    assert.equal(exact.status, 204, 'exactly maxValueBytes is accepted')

    const announced = await fetch(`${url}kv/too-big`, { method: 'PUT', body: new Uint8Array(MAX_VALUE + 1) })
    assert.equal(announced.status, 413)
    assert.equal((await announced.json() as { error: string }).error, 'PayloadTooLargeError')

    // No Content-Length: counted while it streams, refused once past the limit.
    let sent = 0
    const stream = new ReadableStream<Uint8Array>({
      pull (controller) {
        if (sent > 4 * MAX_VALUE) { controller.close(); return }
        sent += 16 * 1024
        controller.enqueue(new Uint8Array(16 * 1024))
      }
    })
    const chunked = await fetch(`${url}kv/too-big`, { method: 'PUT', body: stream, duplex: 'half' } as RequestInit)
    assert.equal(chunked.status, 413)
    assert.equal((await chunked.json() as { error: string }).error, 'PayloadTooLargeError')

    // Expect: 100-continue (curl's way for large bodies): refused before the body is sent.
    const { response } = await raw(gateway.address.port, [`PUT /kv/too-big HTTP/1.1\r\nHost: x\r\nContent-Length: ${MAX_VALUE + 1}\r\nExpect: 100-continue\r\n\r\n`], { waitMs: 3000 })
    assert.match(response, /^HTTP\/1\.1 413 /)
    assert.doesNotMatch(response, /100 Continue/)
    await absent('too-big')
    // A body that fits is asked for (100 Continue), then stored.
    const fits = await raw(gateway.address.port, ['PUT /kv/continued HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n', 'hello'], { pauseMs: 300, waitMs: 5000 })
    assert.match(fits.response, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 204 /)
    assert.equal(text((await node.get('continued'))!.siblings[0]!), 'hello')
  })

  it('/stats: requests, latency percentiles, read repairs, hints, anti-entropy, members and the ring; counts move', async () => {
    const before = await stats()
    assert.equal(before.peerId, node.peerId)
    assert.equal(before.cluster, 'http-test')
    assert.equal(before.members.length, 3)
    assert.ok(before.members.every(m => m.state === 'up' && m.partitions === 4096))
    assert.deepEqual(before.members.map(m => m.peerId).sort(), cluster.nodes.map(n => n.peerId).sort())
    assert.equal(before.ring.partitions, 4096)
    assert.equal(before.ring.n, 3)
    assert.deepEqual([...before.ring.members], cluster.nodes.map(n => n.peerId).sort())
    assert.equal(before.ring.owners.length, 3)
    for (const band of before.ring.owners) {
      assert.equal(band.length, 4096)
      assert.ok(band.every(i => Number.isInteger(i) && i >= 0 && i < 3))
    }
    // Partition 0's owners, as the node's own ring has them.
    const owners = before.ring.owners.map(band => before.ring.members[band[0]!])
    assert.equal(new Set(owners).size, 3)
    for (const field of ['pending', 'delivered', 'dropped'] as const) assert.equal(typeof before.hints[field], 'number')
    for (const field of ['exchanges', 'keysRepaired', 'treesVerified', 'failed'] as const) assert.equal(typeof before.antiEntropy[field], 'number')
    assert.equal(typeof before.readRepairs, 'number')

    const replicaWrites = (await cluster.nodes[1]!.stats()).replicaRequests.write
    await fetch(`${url}kv/counted`, { method: 'PUT', body: 'one' })
    await fetch(`${url}kv/counted`)
    await fetch(`${url}kv/counted?r=9`)
    await fetch(`${url}kv/counted`, { method: 'DELETE' })
    const after = await stats()
    assert.equal(after.requests.put.ok, before.requests.put.ok + 1)
    assert.equal(after.requests.get.ok, before.requests.get.ok + 1)
    // A refused argument is the caller's doing, not the cluster's: rejected, not failed.
    assert.equal(after.requests.get.rejected, before.requests.get.rejected + 1)
    assert.equal(after.requests.get.failed, before.requests.get.failed)
    assert.equal(after.requests.delete.ok, before.requests.delete.ok + 1)
    for (const op of ['get', 'put', 'delete'] as const) {
      const l = after.latencyMs[op]
      assert.ok(l.p50 > 0 && l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.p999, `${op}: ${JSON.stringify(l)}`)
    }
    assert.equal(after.latencyWindowSeconds, 10)
    // The put's copy went to every replica: node 1 served it, though it coordinated nothing.
    await eventually('node 1 counts the replica writes it served', async () => (await cluster.nodes[1]!.stats()).replicaRequests.write >= replicaWrites + 2)
    assert.ok(after.uptimeMs > before.uptimeMs)
  })

  it('/metrics is Prometheus text from the node\'s own registry, and its shoal_ counters move', async () => {
    const res = await fetch(`${url}metrics`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    const before = parsePrometheus(await res.text())
    const puts = (m: Map<string, number>): number => m.get('shoal_requests_total{op="put",outcome="ok"}') ?? -1
    assert.ok(puts(before) >= 0)
    assert.equal(before.get('shoal_members{state="up"}'), 3)
    assert.equal(before.get('shoal_partitions_owned'), 4096)
    for (const name of ['shoal_read_repairs_total', 'shoal_hints_pending', 'shoal_hints_delivered_total', 'shoal_anti_entropy_exchanges_total', 'shoal_anti_entropy_keys_repaired_total']) {
      assert.ok(before.has(name), name)
    }
    await fetch(`${url}kv/metered`, { method: 'PUT', body: 'x' })
    await fetch(`${url}kv/metered`, { method: 'PUT', body: 'y' })
    await (await fetch(`${url}kv/bad%ZZ`)).arrayBuffer()
    const after = parsePrometheus(await (await fetch(`${url}metrics`)).text())
    assert.equal(puts(after), puts(before) + 2)
    // The gateway's own answers, by status: the two 204s among them.
    assert.ok((after.get('shoal_http_responses_total{code="204"}') ?? 0) >= (before.get('shoal_http_responses_total{code="204"}') ?? 0) + 2)
    assert.equal(after.get('shoal_http_responses_total{code="400"}'), (before.get('shoal_http_responses_total{code="400"}') ?? 0) + 1)
    assert.equal(after.get('shoal_request_duration_seconds_count{op="put"}'), (before.get('shoal_request_duration_seconds_count{op="put"}') ?? 0) + 2)
    assert.equal(after.get('shoal_request_duration_seconds_bucket{le="+Inf",op="put"}'), after.get('shoal_request_duration_seconds_count{op="put"}'))
    // Another node's registry counts only its own requests: none of these.
    const other = parsePrometheus(await cluster.nodes[1]!.metrics.text())
    assert.ok((other.get('shoal_requests_total{op="put",outcome="ok"}') ?? 0) < puts(after))
  })

  it('serves the status page at /, self-contained', async () => {
    const res = await fetch(url)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/)
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/)
    const html = await res.text()
    assert.match(html, /<svg id="ring"/)
    assert.match(html, /fetch\('\/stats'/)
    assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)="https?:/, 'nothing loaded from elsewhere')
  })

  it('hostile clients get an error or a closed connection, never a crashed node', async () => {
    const port = gateway.address.port
    const garbage = await raw(port, ['\x00\x01GARBAGE \r\n\r\n'])
    assert.match(garbage.response, /^HTTP\/1\.1 400 /)
    const hugeHeader = await raw(port, [`GET /stats HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(32 * 1024)}\r\n\r\n`])
    assert.match(hugeHeader.response, /^HTTP\/1\.1 431 /)
    const badLength = await raw(port, ['PUT /kv/x HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n'])
    assert.match(badLength.response, /^HTTP\/1\.1 400 /)

    // An upload that breaks off: nothing is written.
    await raw(port, ['PUT /kv/aborted HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n', 'only ten b'], { destroyAfterSend: true })
    // A client that sends its request a byte at a time, slower than the header deadline (1 s here).
    const slow = await raw(port, 'GET /stats HTTP/1.1\r\nHost: x\r\n'.split(''), { pauseMs: 100, waitMs: 8000 })
    assert.ok(slow.closedByServer || /^HTTP\/1\.1 408 /.test(slow.response), `a slow client is cut off: ${slow.response.slice(0, 40)}`)
    // A client that sends headers and then goes silent mid-body is cut off by the request deadline.
    const silent = await raw(port, ['PUT /kv/silent HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc'], { waitMs: 10_000 })
    assert.ok(silent.closedByServer || silent.response.startsWith('HTTP/1.1 408'), 'a silent upload is cut off')

    await absent('aborted')
    await absent('silent')
    const res = await fetch(`${url}stats`)
    assert.equal(res.status, 200, 'the gateway still serves')
    assert.equal((await node.status()).members.length, 3)
  })

  it('beyond its limit of requests in flight it answers 503 OverloadedError (not served) with Retry-After', async () => {
    const small = await startGateway(node, { maxRequests: 1, requestTimeoutMs: 10_000 })
    let holder: Socket | undefined
    try {
      // One upload that has not finished holds the only slot.
      holder = connect(small.address.port, '127.0.0.1')
      holder.on('error', () => {})
      holder.write('PUT /kv/held HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc')
      await eventually('the held upload is in flight', async () => {
        const res = await fetch(`${small.url}kv/other`, { method: 'PUT', body: 'v' })
        if (res.status !== 503) return false
        assert.equal(res.headers.get('retry-after'), '1')
        assert.equal((await res.json() as { error: string }).error, 'OverloadedError')
        return true
      })
      await absent('other')
    } finally {
      holder?.destroy()
      await small.stop()
    }
  })

  it('beyond its budget of bytes held (uploads and replies not yet written out) it answers 503 OverloadedError', async () => {
    await node.put('large', new Uint8Array(2000))
    const small = await startGateway(node, { maxBodyBytes: 1000 })
    try {
      const get = await fetch(`${small.url}kv/large`)
      assert.equal(get.status, 503)
      assert.equal((await get.json() as { error: string }).error, 'OverloadedError')
      const put = await fetch(`${small.url}kv/large-upload`, { method: 'PUT', body: new Uint8Array(2000) })
      assert.equal(put.status, 503)
      await absent('large-upload')
      await node.set('large-set').add('m'.repeat(1200))
      const members = await fetch(`${small.url}sets/large-set`)
      assert.equal(members.status, 503, 'a set\'s reply counts like a value\'s')
      assert.equal((await members.json() as { error: string }).error, 'OverloadedError')
      // Within the budget, and its bytes are given back once each answer is written.
      for (let i = 0; i < 3; i++) {
        const fits = await fetch(`${small.url}kv/fits-${i}`, { method: 'PUT', body: new Uint8Array(900) })
        assert.equal(fits.status, 204)
        assert.equal((await fetch(`${small.url}kv/fits-${i}`)).status, 200)
      }
    } finally {
      await small.stop()
    }
  })
})

describe('the HTTP gateway while replicas are down', function () {
  this.timeout(180_000)
  // No background repair: only a read may bring the stopped replica up to date.
  const cluster = new Cluster({ antiEntropyIntervalMs: 0, hintIntervalMs: 0, handoffIntervalMs: 0 })
  let gateway: HttpGateway
  let url: string

  before(async () => {
    await cluster.start()
    gateway = await startGateway(cluster.nodes[0]!)
    url = gateway.url
  })

  after(async () => {
    await gateway?.stop()
    await cluster.stop()
  })

  it('503 with the reason when a quorum is not met; the lower quorum succeeds; a later read repairs the stale replica', async () => {
    const statsOf = async (): Promise<NodeStats> => await (await fetch(`${url}stats`)).json() as NodeStats
    await cluster.nodes[2]!.stop()

    // Another key: a write that failed may still have reached some replicas (it would be a sibling).
    const w3 = await fetch(`${url}kv/all-three?w=3`, { method: 'PUT', body: 'three of three' })
    assert.equal(w3.status, 503)
    assert.equal(w3.headers.get('retry-after'), '1')
    const w3body = await w3.json() as { error: string, message: string, advice: string }
    assert.equal(w3body.error, 'QuorumError')
    // The coordinator decides as soon as W=3 cannot be met: the node's own copy may be the only answer yet.
    assert.match(w3body.message, /put needed 3 of 3 replicas, [12] acknowledged/)

    const w2 = await fetch(`${url}kv/partial?w=2`, { method: 'PUT', body: 'two of three' })
    assert.equal(w2.status, 204)
    const r3 = await fetch(`${url}kv/partial?r=3`)
    assert.equal(r3.status, 503)
    // Decided at the first failure: a refused connection can come back before even the local read.
    assert.match((await r3.json() as { message: string }).message, /get needed 3 of 3 replicas, [0-2] replied/)
    assert.equal((await fetch(`${url}kv/partial?r=2`)).status, 200)

    const failed = await statsOf()
    assert.ok(failed.requests.put.failed >= 1 && failed.requests.get.failed >= 1)
    await eventually('node 0 sees the stopped node down or suspect', async () =>
      (await statsOf()).members.find(m => m.peerId === cluster.nodes[2]!.peerId)?.state !== 'up')

    // Back with its old data: it missed the W=2 write, and only a read can tell it.
    const stale = await cluster.startNode(2)
    await cluster.allUp()
    assert.equal(await stale.getLocal('partial'), undefined, 'the restarted replica missed the write')
    const repairsBefore = (await statsOf()).readRepairs
    const read = await fetch(`${url}kv/partial?r=3`)
    assert.equal(read.status, 200)
    assert.equal(await read.text(), 'two of three')
    await eventually('read repair reached the stale replica', async () => (await stale.getLocal('partial')) !== undefined)
    assert.ok((await statsOf()).readRepairs > repairsBefore)
    const metrics = await cluster.nodes[0]!.metrics.text()
    assert.match(metrics, /^shoal_read_repairs_total [1-9]/m)
  })

  it('503 when two of three nodes are stopped, saying how many replicas answered', async () => {
    await cluster.nodes[1]!.stop()
    await cluster.nodes[2]!.stop()
    const put = await fetch(`${url}kv/alone`, { method: 'PUT', body: 'v' })
    assert.equal(put.status, 503)
    const body = await put.json() as { error: string, message: string }
    assert.equal(body.error, 'QuorumError')
    assert.match(body.message, /put needed 2 of 3 replicas, [01] acknowledged/)
    const get = await fetch(`${url}kv/alone`)
    assert.equal(get.status, 503)
    assert.match((await get.json() as { message: string }).message, /get needed 2 of 3 replicas, [01] replied/)
  })
})

describe('the HTTP gateway of a lone node', function () {
  this.timeout(60_000)

  it('with the default N=3, R=2, W=2 it says why no quorum can form and what to do; with --n 1 --r 1 --w 1 it serves', async () => {
    const root = await mkdtemp(join(tmpdir(), 'shoal-http-lone-'))
    const started: Array<{ node: ShoalNode, gateway: HttpGateway }> = []
    try {
      const lone = async (name: string, replication: Partial<NodeOptions>): Promise<string> => {
        const node = await createNode({ dataDir: join(root, name), listen: ['/ip4/127.0.0.1/tcp/0'], cluster: `lone-${name}`, mdns: false, ...replication })
        const gateway = await startGateway(node)
        started.push({ node, gateway })
        return gateway.url
      }
      const defaults = await lone('defaults', {})
      const put = await fetch(`${defaults}kv/k`, { method: 'PUT', body: 'v' })
      assert.equal(put.status, 503)
      const body = await put.json() as { error: string, message: string, advice: string }
      assert.equal(body.error, 'QuorumError')
      assert.match(body.message, /put needed 2 of 1 replicas/)
      assert.match(body.advice, /only 1 member holds this key .*start more nodes.*\?w=1.*--n 1 --r 1 --w 1/)
      assert.equal(put.headers.get('retry-after'), null, 'retrying alone cannot help')
      const get = await fetch(`${defaults}counters/c`)
      assert.equal(get.status, 503)
      assert.match((await get.json() as { advice: string }).advice, /\?r=1/)

      const single = await lone('single', { n: 1, r: 1, w: 1 })
      assert.equal((await fetch(`${single}kv/k`, { method: 'PUT', body: 'v' })).status, 204)
      assert.equal(await (await fetch(`${single}kv/k`)).text(), 'v')
      assert.deepEqual(await (await fetch(`${single}counters/c`, { method: 'POST' })).json(), { value: 1 })
    } finally {
      for (const { node, gateway } of started) {
        await gateway.stop()
        await node.stop()
      }
      await rm(root, { recursive: true, force: true })
    }
  })
})

describe('--http addresses', () => {
  it('a bare PORT or :PORT listens on 127.0.0.1; HOST:PORT and [IPv6]:PORT as given', () => {
    assert.deepEqual(parseHttpAddress('8080'), { host: '127.0.0.1', port: 8080 })
    assert.deepEqual(parseHttpAddress(':8080'), { host: '127.0.0.1', port: 8080 })
    assert.deepEqual(parseHttpAddress('0.0.0.0:80'), { host: '0.0.0.0', port: 80 })
    assert.deepEqual(parseHttpAddress('localhost:0'), { host: 'localhost', port: 0 })
    assert.deepEqual(parseHttpAddress('[::1]:9000'), { host: '::1', port: 9000 })
    for (const bad of ['', 'http://x:1', '65536', '1.2.3.4', '1.2.3.4:', 'a b:1', '[nope]:1', ':-1', '::1:80', '8080x']) {
      assert.throws(() => parseHttpAddress(bad), (err: Error) => err.name === 'InvalidArgumentError' && /HOST:PORT/.test(err.message), bad)
    }
  })
})
