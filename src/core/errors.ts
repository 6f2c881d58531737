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
