/**
 * Typed errors. Callers test `err.name`, never the message (as js-libp2p does).
 * Every error Shoal raises on purpose is a ShoalError.
 */
export class ShoalError extends Error {
  override name: string = 'ShoalError'
}

/** An argument from a caller (API or CLI) is out of range or malformed. Nothing was changed. */
export class InvalidArgumentError extends ShoalError {
  override name = 'InvalidArgumentError'
}

/** A causal context string could not be decoded. Nothing was changed. */
export class InvalidContextError extends ShoalError {
  override name = 'InvalidContextError'
}

/** Bytes from the network or from disk do not decode to a valid message or record. */
export class MalformedDataError extends ShoalError {
  override name = 'MalformedDataError'
}

/** A get or put could not gather its quorum: says how many replicas answered of how many were needed. */
export class QuorumError extends ShoalError {
  override name = 'QuorumError'
  readonly op: 'get' | 'put' | 'delete'
  readonly needed: number
  readonly answered: number
  readonly asked: number
  readonly failures: readonly string[]

  constructor (op: 'get' | 'put' | 'delete', needed: number, answered: number, asked: number, failures: readonly string[] = []) {
    const verb = op === 'get' ? 'replied' : 'acknowledged'
    const why = failures.length > 0 ? ` (${failures.join('; ')})` : ''
    super(`${op} needed ${needed} of ${asked} replicas, ${answered} ${verb}${why}`)
    this.op = op
    this.needed = needed
    this.answered = answered
    this.asked = asked
    this.failures = failures
  }
}

/** A request did not complete before its deadline. */
export class TimeoutError extends ShoalError {
  override name = 'TimeoutError'
}

/** A key already holds the most siblings allowed: write with a context to resolve them. */
export class TooManySiblingsError extends ShoalError {
  override name = 'TooManySiblingsError'
}

/** No member of the key's preference list could be reached to coordinate the request. */
export class UnavailableError extends ShoalError {
  override name = 'UnavailableError'
}

/** A member could not be reached at all: the request was not delivered. */
export class UnreachableError extends ShoalError {
  override name = 'UnreachableError'
}

/** The node is serving as much as it allows itself: the request was not served (safe to retry). */
export class OverloadedError extends ShoalError {
  override name = 'OverloadedError'
}

/** A request that must be coordinated by a preflist member reached a node that is not one. */
export class NotOwnerError extends ShoalError {
  override name = 'NotOwnerError'
}

/** Rebuilds a typed error that crossed the wire: same name, same message. */
export function remoteError (name: string, message: string): ShoalError {
  const err = new ShoalError(message)
  err.name = name
  return err
}
