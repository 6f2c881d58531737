/**
 * The HTTP gateway (`shoal start --http HOST:PORT`): Riak-shaped key-value access, the node's
 * stats and Prometheus metrics, and the status page, on node:http.
 *
 * - `GET|HEAD /kv/{key}[?r=R]`: 200 with the value, or 300 `multipart/mixed` with one part per
 *   sibling; the causal context in `X-Shoal-Context`; 404 when missing.
 * - `PUT /kv/{key}[?w=W]`: the raw body is the value; `X-Shoal-Context` (from a read) replaces
 *   what it covers, none adds a sibling; 204 with the new context.
 * - `DELETE /kv/{key}[?w=W]`: 204.
 * - Counters and sets, merged by Shoal (never siblings), as JSON:
 *   `GET /counters/{key}[?r=R]` → `{"value": N}` (0 when absent); `POST /counters/{key}[?by=N][&w=W]`
 *   adds N (default 1, negative subtracts) → `{"value": N}`; `GET /sets/{key}[?r=R]` →
 *   `{"members": [...]}` (UTF-8 members as text, any others base64 under `"binary"`);
 *   `PUT|DELETE /sets/{key}/{member}[?w=W]` adds or removes a member (204; 404 when a removed
 *   member was not there); `GET /sets/{key}/{member}` → 204 member, 404 not. A key holding
 *   another kind of value answers 409 and nothing is written.
 * - `GET /stats` (JSON), `GET /metrics` (Prometheus text), `GET /` (the status page).
 *
 * Every failure is a status with a short JSON body `{error, message, advice}` (errors.ts). The
 * gateway bounds what it holds: a body is refused past the node's maxValueBytes (at the
 * Content-Length, or while it streams), requests and body bytes in flight are capped (beyond:
 * 503, not served), and slow or silent clients are cut off by deadlines, so no client can make
 * the node run out of memory or crash.
 *
 * @example
 * ```ts
 * const node = await createNode({ dataDir: './shoal-data' })
 * const gateway = await startGateway(node, { host: '127.0.0.1', port: 8080 })
 * // curl -X PUT --data-binary hello http://127.0.0.1:8080/kv/greeting
 * await gateway.stop()
 * await node.stop()
 * ```
 */
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Counter } from 'prom-client'
import type { Registry } from 'prom-client'
import { utf8Text } from '../core/bytes.ts'
import { InvalidArgumentError, OverloadedError } from '../core/errors.ts'
import type { NodeStats } from '../metrics.ts'
import type { ShoalCounter, ShoalSet } from '../kv-ops.ts'
import type { GetResult, PutResult, ReadOptions, WriteOptions } from '../node.ts'
import { DEFAULT_HTTP_HOST, httpUrl } from './address.ts'
import type { HttpAddress } from './address.ts'
import { contentLength, readBody } from './body.ts'
import { MethodNotAllowedError, NotFoundError, httpFailure } from './errors.ts'
import { decodeKey } from './key.ts'
import { encodeSiblings } from './multipart.ts'
import { STATUS_PAGE } from './status-page.ts'

/** What the gateway needs of a node (a {@link ShoalNode} has it all). */
export interface GatewayNode {
  put: (key: Uint8Array, value: Uint8Array, options?: WriteOptions) => Promise<PutResult>
  get: (key: Uint8Array, options?: ReadOptions) => Promise<GetResult | undefined>
  delete: (key: Uint8Array, options?: WriteOptions) => Promise<void>
  counter: (key: Uint8Array) => ShoalCounter
  set: (key: Uint8Array) => ShoalSet
  stats: () => Promise<NodeStats>
  readonly metrics: {
    text: () => Promise<string>
    readonly contentType: string
    collectProcessMetrics: () => void
    /** The node's own registry: the gateway adds its responses by status code. */
    readonly registry: Registry
  }
  readonly maxValueBytes: number
}

export interface GatewayOptions {
  /** Default 127.0.0.1: the gateway has no authentication; expose it only on a trusted network. */
  readonly host?: string
  /** Default 0: a free port the system picks (see {@link HttpGateway.address}). */
  readonly port?: number
  /** Add Node.js process metrics (CPU, memory, GC, event loop) to /metrics. Default false. */
  readonly processMetrics?: boolean
  /**
   * Requests served at once, counted until their response is written out (a client that does not
   * read its answer holds its slot until the idle timeout); beyond, 503 OverloadedError. Default 256.
   */
  readonly maxRequests?: number
  /**
   * Bytes of request bodies and replies held at once, until each response is written out; a request
   * that would pass it is answered 503 OverloadedError, unserved. Default 64 MiB, at least 4 values.
   */
  readonly maxBodyBytes?: number
  /** Open connections at most; more are refused by the socket. Default 1024. */
  readonly maxConnections?: number
  /** A client must send its headers within this. Default 10 s. */
  readonly headersTimeoutMs?: number
  /** A client must send its whole request within this. Default 60 s. */
  readonly requestTimeoutMs?: number
  /** A connection with no traffic either way (a client that stopped reading) is closed after this. Default 30 s. */
  readonly idleTimeoutMs?: number
}

/** The largest request head (request line and headers): a 1024-byte key escaped is 3 KiB. */
const MAX_HEADER_BYTES = 16 * 1024
const CONTEXT_HEADER = 'x-shoal-context'
const RESPONSES_METRIC = 'shoal_http_responses_total'
const KV_METHODS = ['GET', 'HEAD', 'PUT', 'DELETE'] as const
const READ_METHODS = ['GET', 'HEAD'] as const
const COUNTER_METHODS = ['GET', 'HEAD', 'POST'] as const
const JSON_HEADERS = { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' }
const SET_MEMBER_METHODS = ['GET', 'HEAD', 'PUT', 'DELETE'] as const
/** The status page runs only its own inline script and talks only to this gateway. */
const PAGE_POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:"

/** A running gateway. */
export class HttpGateway {
  private readonly node: GatewayNode
  private readonly server: Server
  private readonly maxRequests: number
  private readonly maxBodyBytes: number
  private readonly sockets = new Set<Socket>()
  private readonly responses: Counter<'code'>
  private inFlight = 0
  private bytesHeld = 0
  private stopped = false

  private constructor (node: GatewayNode, options: GatewayOptions) {
    this.node = node
    this.maxRequests = options.maxRequests ?? 256
    this.maxBodyBytes = options.maxBodyBytes ?? Math.max(64 * 1024 * 1024, 4 * node.maxValueBytes)
    const headersTimeout = options.headersTimeoutMs ?? 10_000
    this.server = createServer({
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout,
      requestTimeout: options.requestTimeoutMs ?? 60_000,
      keepAliveTimeout: 5000,
      // How often those two deadlines are checked: Node's default, 30 s, would let them slip.
      connectionsCheckingInterval: Math.min(1000, headersTimeout)
    }, (req, res) => { void this.serve(req, res) })
    this.server.maxConnections = options.maxConnections ?? 1024
    // With no 'timeout' listener, Node destroys a socket idle this long: a reader that never reads.
    this.server.setTimeout(options.idleTimeoutMs ?? 30_000)
    // curl sends large bodies with Expect: 100-continue: refuse an oversized one before it is sent.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      const length = contentLength(req)
      if (length !== undefined && length > this.node.maxValueBytes) {
        void this.serve(req, res)
        return
      }
      res.writeContinue()
      void this.serve(req, res)
    })
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.once('close', () => { this.sockets.delete(socket) })
    })
    if (options.processMetrics === true) node.metrics.collectProcessMetrics()
    // One counter per registry, shared by every gateway of the node.
    const registry = node.metrics.registry
    this.responses = registry.getSingleMetric(RESPONSES_METRIC) as Counter<'code'> | undefined ??
      new Counter({ name: RESPONSES_METRIC, help: 'HTTP responses of the gateway, by status code.', labelNames: ['code'], registers: [registry] })
  }

  /** Starts a gateway for `node` and resolves once it listens. */
  static async start (node: GatewayNode, options: GatewayOptions = {}): Promise<HttpGateway> {
    const host = options.host ?? DEFAULT_HTTP_HOST
    const port = options.port ?? 0
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`port must be an integer from 0 to 65535, got ${port}`)
    const gateway = new HttpGateway(node, options)
    await new Promise<void>((resolve, reject) => {
      gateway.server.once('error', reject)
      gateway.server.listen(port, host, () => {
        gateway.server.off('error', reject)
        resolve()
      })
    })
    // A socket error after listening (EMFILE, say) must not become an uncaught exception.
    gateway.server.on('error', () => {})
    return gateway
  }

  /** Where it listens (the port the system picked when asked for 0). */
  get address (): HttpAddress {
    const info = this.server.address() as AddressInfo
    return { host: info.address, port: info.port }
  }

  /** `http://host:port/`. */
  get url (): string {
    return httpUrl(this.address)
  }

  /** Stops listening and closes every connection, requests in flight included. Safe to call twice. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    const closed = new Promise<void>(resolve => { this.server.close(() => { resolve() }) })
    this.server.closeAllConnections()
    for (const socket of this.sockets) socket.destroy()
    await closed
  }

  private async serve (req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A client that goes away makes these emit 'error': never an uncaught exception.
    req.on('error', () => {})
    res.on('error', () => {})
    res.once('finish', () => { this.responses.inc({ code: String(res.statusCode) }) })
    if (this.inFlight >= this.maxRequests) {
      this.fail(req, res, new OverloadedError(`the gateway is serving ${this.inFlight} requests, its limit`))
      return
    }
    // Held until the response is written out or the connection goes, not only until it is
    // handled: what a slow reader has not read yet is still in memory.
    this.inFlight++
    const ticket: Ticket = { bytes: 0 }
    res.once('close', () => {
      this.inFlight--
      this.bytesHeld -= ticket.bytes
    })
    try {
      await this.route(req, res, ticket)
    } catch (err) {
      this.fail(req, res, err)
    }
  }

  private async route (req: IncomingMessage, res: ServerResponse, ticket: Ticket): Promise<void> {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    const query = q === -1 ? '' : url.slice(q + 1)
    const method = req.method ?? 'GET'
    if (path.startsWith('/kv/')) {
      allow(method, KV_METHODS, path)
      await this.kv(req, res, ticket, method, path.slice('/kv/'.length), query)
      return
    }
    if (path.startsWith('/counters/')) {
      allow(method, COUNTER_METHODS, path)
      await this.counter(res, method, path.slice('/counters/'.length), query)
      return
    }
    if (path.startsWith('/sets/')) {
      const rest = path.slice('/sets/'.length)
      const slash = rest.indexOf('/')
      if (slash === -1) {
        allow(method, READ_METHODS, path)
        await this.setMembers(res, ticket, rest, query)
      } else {
        allow(method, SET_MEMBER_METHODS, path)
        await this.setMember(res, method, rest.slice(0, slash), rest.slice(slash + 1), query)
      }
      return
    }
    if (path === '/' || path === '/stats' || path === '/metrics') {
      allow(method, READ_METHODS, path)
      // A browser may add a query to the page's URL; the API paths refuse one they would ignore.
      if (path !== '/') noQuery(query)
      if (path === '/') {
        send(res, 200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': PAGE_POLICY, 'Cache-Control': 'no-cache' }, STATUS_PAGE)
      } else if (path === '/stats') {
        send(res, 200, JSON_HEADERS, JSON.stringify(await this.node.stats()) + '\n')
      } else {
        send(res, 200, { 'Content-Type': this.node.metrics.contentType, 'Cache-Control': 'no-store' }, await this.node.metrics.text())
      }
      return
    }
    if (path === '/kv' || path === '/counters' || path === '/sets') throw new NotFoundError(`no key in the path: use ${path}/{key}, with the key percent-encoded`)
    throw new NotFoundError(`nothing is served at ${truncate(path)}`)
  }

  private async kv (req: IncomingMessage, res: ServerResponse, ticket: Ticket, method: string, rawKey: string, query: string): Promise<void> {
    const key = pathKey('/kv', rawKey)
    if (method === 'GET' || method === 'HEAD') {
      const { r } = quorums(query, ['r'])
      const read = await this.node.get(key, r === undefined ? {} : { r })
      if (read === undefined) {
        sendJson(req, res, 404, {}, { error: 'NotFoundError', message: 'the key has no value (never written, or deleted)', advice: 'write it with PUT first' })
        return
      }
      this.hold(ticket, read.siblings.reduce((sum, v) => sum + v.byteLength, 0), 'replies')
      const headers = { [CONTEXT_HEADER]: read.context, 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' }
      if (read.siblings.length === 1) {
        send(res, 200, { ...headers, 'Content-Type': 'application/octet-stream' }, read.siblings[0] as Uint8Array)
      } else {
        const multipart = encodeSiblings(read.siblings)
        send(res, 300, { ...headers, 'Content-Type': multipart.contentType }, multipart.body)
      }
      return
    }
    const { w } = quorums(query, ['w'])
    const context = contextHeader(req)
    const options: WriteOptions = { ...(context === undefined ? {} : { context }), ...(w === undefined ? {} : { w }) }
    if (method === 'DELETE') {
      await this.node.delete(key, options)
      send(res, 204, {}, undefined)
      return
    }
    // What the body may weigh (its Content-Length, else the node's limit), before a byte is read.
    const limit = this.node.maxValueBytes
    this.hold(ticket, Math.min(contentLength(req) ?? limit, limit), 'uploads')
    const value = await readBody(req, limit)
    const { context: written } = await this.node.put(key, value, options)
    send(res, 204, { [CONTEXT_HEADER]: written }, undefined)
  }

  /** `GET /counters/{key}` reads the counter's value, `POST` adds `by` (default 1) and answers the value after it. */
  private async counter (res: ServerResponse, method: string, rawKey: string, query: string): Promise<void> {
    const counter = this.node.counter(pathKey('/counters', rawKey))
    let value: number
    if (method === 'POST') {
      const params = parseQuery(query, ['by', 'w'])
      const by = params.by === undefined ? 1 : amount(params.by)
      value = await counter.increment(by, quorum(params, 'w'))
    } else {
      value = await counter.value(quorum(parseQuery(query, ['r']), 'r'))
    }
    send(res, 200, JSON_HEADERS, JSON.stringify({ value }) + '\n')
  }

  /** `GET /sets/{key}`: the members, in byte order. */
  private async setMembers (res: ServerResponse, ticket: Ticket, rawKey: string, query: string): Promise<void> {
    const members = await this.node.set(pathKey('/sets', rawKey)).members(quorum(parseQuery(query, ['r']), 'r'))
    const text: string[] = []
    const binary: string[] = []
    for (const member of members) {
      const decoded = utf8Text(member)
      if (decoded === undefined) binary.push(Buffer.from(member).toString('base64'))
      else text.push(decoded)
    }
    const body = JSON.stringify(binary.length === 0 ? { members: text } : { members: text, binary }) + '\n'
    // A set can be as large as a value: its reply counts against the budget like a value's.
    this.hold(ticket, Buffer.byteLength(body), 'replies')
    send(res, 200, JSON_HEADERS, body)
  }

  /** `PUT`, `DELETE` or `GET /sets/{key}/{member}`: add, remove, or ask about one member. */
  private async setMember (res: ServerResponse, method: string, rawKey: string, rawMember: string, query: string): Promise<void> {
    const set = this.node.set(pathKey('/sets', rawKey))
    const member = decodeKey(rawMember)
    if (member.byteLength === 0) throw new InvalidArgumentError('no member in the path: use /sets/{key}/{member}, each percent-encoded')
    if (method === 'PUT') {
      await set.add(member, quorum(parseQuery(query, ['w']), 'w'))
    } else if (method === 'DELETE') {
      if (!await set.remove(member, quorum(parseQuery(query, ['w']), 'w'))) throw new NotFoundError('the set has no such member: nothing was written')
    } else if (!await set.has(member, quorum(parseQuery(query, ['r']), 'r'))) {
      throw new NotFoundError('the set has no such member')
    }
    send(res, 204, { 'Cache-Control': 'no-store' }, undefined)
  }

  /** Counts `bytes` against the gateway's budget for this request, or refuses it unserved. */
  private hold (ticket: Ticket, bytes: number, what: string): void {
    if (this.bytesHeld + bytes > this.maxBodyBytes) {
      throw new OverloadedError(`the gateway holds ${this.bytesHeld} bytes of uploads and replies, its limit is ${this.maxBodyBytes}; no room for ${bytes} bytes of ${what}`)
    }
    this.bytesHeld += bytes
    ticket.bytes += bytes
  }

  private fail (req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const failure = httpFailure(err)
    sendJson(req, res, failure.status, failure.headers, { error: failure.error, message: failure.message, advice: failure.advice })
  }
}

/** Starts a gateway for `node`. See {@link HttpGateway}. */
export async function startGateway (node: GatewayNode, options: GatewayOptions = {}): Promise<HttpGateway> {
  return await HttpGateway.start(node, options)
}

/** What one request holds of the gateway's byte budget, released when its response is done. */
interface Ticket {
  bytes: number
}

/** An error's body: `{error, message, advice}`. */
function sendJson (req: IncomingMessage, res: ServerResponse, status: number, extra: Record<string, string>, body: { error: string, message: string, advice: string }): void {
  const headers: Record<string, string> = { ...extra, ...JSON_HEADERS }
  // A body left unread (refused before or while it was sent) is not drained: the connection goes.
  if (!req.complete) headers.Connection = 'close'
  send(res, status, headers, JSON.stringify(body) + '\n')
}

function send (res: ServerResponse, status: number, headers: Record<string, string>, body: string | Uint8Array | undefined): void {
  if (res.headersSent || res.destroyed) return
  const bytes = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body
  res.writeHead(status, { ...headers, ...(bytes === undefined ? {} : { 'Content-Length': String(bytes.byteLength) }) })
  res.end(bytes)
}

function allow (method: string, allowed: readonly string[], path: string): void {
  if (!allowed.includes(method)) throw new MethodNotAllowedError(`${method} is not allowed on ${truncate(path)}`, allowed)
}

function noQuery (query: string): void {
  if (query !== '') throw new InvalidArgumentError('this path takes no query parameters')
}

/**
 * `r` or `w` from the query string: a positive integer, once. An unknown or repeated parameter is
 * refused rather than ignored (a mistyped `W=3` must not silently write with the default).
 */
function quorums (query: string, known: ReadonlyArray<'r' | 'w'>): { r?: number, w?: number } {
  const params = parseQuery(query, known)
  return { ...quorum(params, 'r'), ...quorum(params, 'w') }
}

/** The parameters `known` of this method: anything else, or one given twice, is refused. */
function parseQuery (query: string, known: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  if (query === '') return out
  for (const pair of query.split('&')) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    const name = eq === -1 ? pair : pair.slice(0, eq)
    const value = eq === -1 ? '' : pair.slice(eq + 1)
    const takes = `this method takes ${known.map(k => `${k}=`).join(' or ')}`
    if (!QUERY_NAMES.includes(name)) throw new InvalidArgumentError(`unknown query parameter ${JSON.stringify(truncate(name))}: ${takes}`)
    if (!known.includes(name)) throw new InvalidArgumentError(`${name}= does not apply to this method (${takes})`)
    if (out[name] !== undefined) throw new InvalidArgumentError(`${name}= is given twice`)
    out[name] = value
  }
  return out
}

const QUERY_NAMES = ['r', 'w', 'by']

/** `r` or `w` as an option: a positive integer (the node refuses one above N). */
function quorum (params: Record<string, string>, name: 'r' | 'w'): { r?: number, w?: number } {
  const value = params[name]
  if (value === undefined) return {}
  if (!/^\d{1,2}$/.test(value) || Number(value) < 1) throw new InvalidArgumentError(`${name} must be an integer from 1 to N, got ${JSON.stringify(truncate(value))}`)
  return { [name]: Number(value) }
}

/** A counter step: a safe integer, negative to subtract. */
function amount (value: string): number {
  if (!/^-?\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) throw new InvalidArgumentError(`by must be an integer (negative to subtract), got ${JSON.stringify(truncate(value))}`)
  return Number(value)
}

/** The key of `{base}/{key}` (see decodeKey); an empty one is refused. */
function pathKey (base: string, rawKey: string): Uint8Array {
  const key = decodeKey(rawKey)
  if (key.byteLength === 0) throw new InvalidArgumentError(`no key in the path: use ${base}/{key}, with the key percent-encoded`)
  return key
}



/** The X-Shoal-Context header, once; the node decodes it (InvalidContextError when malformed). */
function contextHeader (req: IncomingMessage): string | undefined {
  const value = req.headers[CONTEXT_HEADER]
  if (value === undefined) return undefined
  // Node joins repeated custom headers with ', ': a context never holds a comma.
  if (typeof value !== 'string' || value.includes(',')) throw new InvalidArgumentError('X-Shoal-Context is given more than once')
  const trimmed = value.trim()
  return trimmed === '' ? undefined : trimmed
}

function truncate (text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}...` : text
}
