import { QuorumError, ShoalError } from '../core/errors.ts'

/** A request body longer than the node accepts; nothing was written. */
export class PayloadTooLargeError extends ShoalError {
  override name = 'PayloadTooLargeError'
}

/** A path the gateway does not serve. */
export class NotFoundError extends ShoalError {
  override name = 'NotFoundError'
}

/** A method the path does not take; `allow` lists those it does. */
export class MethodNotAllowedError extends ShoalError {
  override name = 'MethodNotAllowedError'
  readonly allow: readonly string[]

  constructor (message: string, allow: readonly string[]) {
    super(message)
    this.allow = allow
  }
}

/** How an error answers over HTTP: its status and what the caller can do about it. */
export interface HttpFailure {
  readonly status: number
  /** The error's class name: callers test it, as they test `err.name` in the API. */
  readonly error: string
  readonly message: string
  readonly advice: string
  readonly headers: Record<string, string>
}

const RETRY = 'retry later; the cluster repairs itself as members come back'

/**
 * Every error Shoal raises, by name, to an HTTP status. Riak's choices where it has one: 400 bad
 * input, 404, 413, 503 when too few replicas answer, 504 when they answer too late.
 */
const BY_NAME: Record<string, { status: number, advice: string }> = {
  InvalidArgumentError: { status: 400, advice: 'fix the request (keys are 1 to 1024 bytes; r and w are integers from 1 to N)' },
  InvalidContextError: { status: 400, advice: 'send X-Shoal-Context exactly as a read or a write returned it, or none to add a sibling' },
  NotFoundError: { status: 404, advice: 'the gateway serves / (status page), /kv/{key}, /counters/{key}, /sets/{key}[/{member}], /stats and /metrics' },
  MethodNotAllowedError: { status: 405, advice: 'use a method the Allow header lists' },
  WrongTypeError: { status: 409, advice: 'the key holds another kind of value (a plain value, a counter or a set): use the path of its kind, or another key' },
  TooManySiblingsError: { status: 409, advice: 'read the key and write with its X-Shoal-Context to resolve its siblings' },
  PayloadTooLargeError: { status: 413, advice: 'send a smaller value, or start the nodes with a larger maxValueBytes (at most 16 MiB)' },
  QuorumError: { status: 503, advice: `${RETRY}, or ask for a lower r or w (a write that failed may still have reached some replicas)` },
  UnavailableError: { status: 503, advice: RETRY },
  UnreachableError: { status: 503, advice: RETRY },
  NotOwnerError: { status: 503, advice: 'the members disagree on the ring for a moment; retry' },
  NoReplyError: { status: 503, advice: RETRY },
  OverloadedError: { status: 503, advice: 'the node is busy and did not serve the request; retry in a moment' },
  StoreClosedError: { status: 503, advice: 'the node is stopping; use another member' },
  TimeoutError: { status: 504, advice: 'the replicas did not answer in time; retry (a write may still have been applied)' },
  MalformedDataError: { status: 502, advice: 'a member sent data that does not decode; check that every member runs the same Shoal version' },
  CorruptRecordError: { status: 500, advice: 'a replica holds a damaged record; anti-entropy or a write with the key\'s context replaces it' }
}

/** The HTTP answer for an error: known Shoal errors by name, anything else a 500 that leaks no internals. */
export function httpFailure (err: unknown): HttpFailure {
  const e = err instanceof Error ? err : new Error(String(err))
  const known = BY_NAME[e.name]
  const headers: Record<string, string> = {}
  if (e instanceof MethodNotAllowedError) headers.Allow = e.allow.join(', ')
  if (known?.status === 503) headers['Retry-After'] = '1'
  if (e instanceof QuorumError && e.asked < e.needed) {
    // Retrying cannot help: the ring has fewer members for this key than the quorum asked for.
    const param = e.op === 'get' ? 'r' : 'w'
    const advice = `only ${e.asked} member${e.asked === 1 ? ' holds' : 's hold'} this key in the cluster: start more nodes (shoal dev runs 3), ask with ?${param}=${e.asked}, or run a lone node with --n 1 --r 1 --w 1`
    return { status: 503, error: e.name, message: e.message, advice, headers: {} }
  }
  if (known !== undefined) return { status: known.status, error: e.name, message: e.message, advice: known.advice, headers }
  if (e instanceof ShoalError) return { status: 500, error: e.name, message: e.message, advice: 'an error the gateway has no status for; see the node\'s log', headers }
  return { status: 500, error: 'InternalError', message: 'the gateway failed to serve the request', advice: 'see the node\'s log; retrying may help', headers }
}
