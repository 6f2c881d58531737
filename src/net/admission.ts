/**
 * Admission control for inbound requests (DESIGN.md "Requests"): how many requests a node serves
 * at once and how many bytes of their frames and replies it holds, in all and per peer. libp2p
 * bounds streams per connection only, so many peers (or one peer's reconnections) could otherwise
 * pin any number of streams, and a reader that never reads pins its reply until the stream's
 * deadline. A request beyond a bound is refused at once with OverloadedError, which says it was
 * not served, so the caller may retry it, elsewhere or later.
 *
 * @example
 * ```ts
 * const admission = new Admission({
 *   maxRequests: 1024, maxRequestsPerPeer: 256, maxBytes: 128 << 20, maxBytesPerPeer: 32 << 20, maxHandlingPerPeer: 32
 * })
 * const ticket = admission.enter(peerIdString)   // undefined: refuse the request
 * if (ticket !== undefined && !ticket.reserve(frameLength)) { ... refuse ... }
 * ticket?.release()                              // when the stream is done
 * ```
 */
import { InvalidArgumentError } from '../core/errors.ts'

export interface AdmissionLimits {
  /** Requests served at once by the node. */
  readonly maxRequests: number
  /** Requests served at once for one peer, over all its connections. */
  readonly maxRequestsPerPeer: number
  /** Bytes of request frames and replies the node holds at once. */
  readonly maxBytes: number
  /** Bytes of request frames and replies held at once for one peer. */
  readonly maxBytesPerPeer: number
  /**
   * Requests of one peer being handled (read, answered, encoded) at once; its others wait for a
   * slot within their deadline. What a request's reply will weigh is known only once it is
   * handled: this bounds the memory of replies not yet held against the budget.
   */
  readonly maxHandlingPerPeer: number
}

interface Usage {
  requests: number
  bytes: number
  /**
   * A reservation of this peer did not fit: its new requests are refused until half its budget is
   * free again, so a greedy peer's reads are not read, encoded and thrown away one after the other.
   */
  saturated: boolean
}

/**
 * Reservations above this size may use only 7/8 of the node's budget: the last eighth stays for
 * small requests, so peers pinning large replies cannot shut everyone else out.
 */
const SMALL_BYTES = 64 * 1024

/** What the node holds for one request; released once its stream is done. */
export interface Ticket {
  /** Holds `bytes` more for this request if both budgets allow it; false (nothing held) if not. */
  reserve: (bytes: number) => boolean
  /**
   * Holds `bytes` more even past the budgets: for a reply that must be sent (a write's
   * acknowledgement), whose request was admitted.
   */
  force: (bytes: number) => void
  /** Gives back everything this request held. Safe to call twice. */
  release: () => void
  /** This peer's room ran out and half its budget is not yet free again: refuse, do not serve. */
  blocked: () => boolean
}

/** Counts the requests and bytes held, in all and per peer, against their limits. */
export class Admission {
  readonly limits: AdmissionLimits
  /** Requests refused since start. */
  refused = 0
  private readonly total = { requests: 0, bytes: 0 }
  private readonly peers = new Map<string, Usage>()

  constructor (limits: AdmissionLimits) {
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError(`admission limit ${name} must be a positive integer`)
    }
    this.limits = limits
  }

  /** Requests and bytes held now, in all or for one peer. */
  usage (peer?: string): { requests: number, bytes: number } {
    const usage = peer === undefined ? this.total : this.peers.get(peer)
    return { requests: usage?.requests ?? 0, bytes: usage?.bytes ?? 0 }
  }

  /**
   * Admits one request from `peer`: a ticket, or undefined when the node or the peer already has
   * as many requests in flight as allowed, or holds its whole byte budget (counted as refused).
   */
  enter (peer: string): Ticket | undefined {
    const mine = this.peers.get(peer) ?? { requests: 0, bytes: 0, saturated: false }
    const { maxRequests, maxRequestsPerPeer, maxBytes, maxBytesPerPeer } = this.limits
    if (this.total.requests >= maxRequests || mine.requests >= maxRequestsPerPeer ||
        mine.saturated || this.total.bytes >= maxBytes || mine.bytes >= maxBytesPerPeer) {
      this.refused++
      return undefined
    }
    this.peers.set(peer, mine)
    this.total.requests++
    mine.requests++
    let held = 0
    let released = false
    const hold = (bytes: number): void => {
      held += bytes
      this.total.bytes += bytes
      mine.bytes += bytes
    }
    return {
      reserve: (bytes) => {
        if (released) return false
        const nodeLimit = bytes <= SMALL_BYTES ? maxBytes : Math.floor(maxBytes * 7 / 8)
        if (this.total.bytes + bytes > nodeLimit || mine.bytes + bytes > maxBytesPerPeer) {
          // The peer asking for room is the one held back (one that asks for more than half its
          // budget at once is merely refused this once).
          if (bytes <= maxBytesPerPeer / 2) mine.saturated = true
          this.refused++
          return false
        }
        hold(bytes)
        return true
      },
      force: (bytes) => { if (!released) hold(bytes) },
      blocked: () => mine.saturated,
      release: () => {
        if (released) return
        released = true
        this.total.requests--
        this.total.bytes -= held
        mine.requests--
        mine.bytes -= held
        if (mine.bytes <= maxBytesPerPeer / 2) mine.saturated = false
        if (mine.requests === 0) this.peers.delete(peer)
      }
    }
  }
}
