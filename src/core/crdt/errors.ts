import { ShoalError } from '../errors.ts'

/**
 * `update()` could not settle the key on one value: its own write is stored, but concurrent
 * writes kept leaving siblings beside it through every retry. Nothing is lost; the next read
 * shows the siblings.
 */
export class ConflictError extends ShoalError {
  override name = 'ConflictError'
}

/**
 * A read found siblings (concurrent writes) and no resolver was given to merge them: pass
 * `resolver` to the call, or to createNode/createClient. Nothing was written.
 */
export class SiblingsError extends ShoalError {
  override name = 'SiblingsError'
}

/** A key holds a value of another kind than the operation needs (a plain value where a counter was asked for). Nothing was written. */
export class WrongTypeError extends ShoalError {
  override name = 'WrongTypeError'
}
