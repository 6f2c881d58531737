import type { ShoalLibp2p } from './libp2p.ts'
import type { Message } from '@libp2p/gossipsub'
import type { Logger } from '@libp2p/interface'

/** The gossipsub topic of a cluster's membership heartbeats. */
export function clusterTopic (cluster: string): string {
  return `/shoal/${encodeURIComponent(cluster)}/members/1`
}

/**
 * One gossipsub topic per cluster name; the sender of each message is its signed `from`.
 * Gossipsub runs with StrictSign, so a member can only speak for itself: unsigned messages are
 * dropped here as well, in case the router was built with another policy.
 *
 * @example
 * ```ts
 * const gossip = new ClusterGossip(libp2p, 'prod', (from, data) => agent.onHeartbeat(from, decodeHeartbeat(data)))
 * gossip.start()
 * await gossip.publish(encodeHeartbeat(heartbeat))
 * ```
 */
export class ClusterGossip {
  readonly topic: string
  private readonly libp2p: ShoalLibp2p
  private readonly onMessage: (from: string, data: Uint8Array) => void
  private readonly log: Logger
  private started = false

  constructor (libp2p: ShoalLibp2p, cluster: string, onMessage: (from: string, data: Uint8Array) => void) {
    this.libp2p = libp2p
    this.topic = clusterTopic(cluster)
    this.onMessage = onMessage
    this.log = libp2p.logger.forComponent('shoal:gossip')
  }

  /** Subscribe to the cluster topic and start passing its messages on. Safe to call twice. */
  start (): void {
    if (this.started) return
    this.started = true
    this.libp2p.services.pubsub.addEventListener('message', this.handleMessage)
    this.libp2p.services.pubsub.subscribe(this.topic)
  }

  /** Unsubscribe and stop passing messages on. Safe to call twice. */
  stop (): void {
    if (!this.started) return
    this.started = false
    this.libp2p.services.pubsub.removeEventListener('message', this.handleMessage)
    this.libp2p.services.pubsub.unsubscribe(this.topic)
  }

  /** Publish to the cluster. Resolves even when no peer is subscribed yet (a lone member). */
  async publish (data: Uint8Array): Promise<void> {
    try {
      await this.libp2p.services.pubsub.publish(this.topic, data)
    } catch (err) {
      // Raised only if the router was built without allowPublishToZeroTopicPeers.
      if (err instanceof Error && err.message === 'PublishError.NoPeersSubscribedToTopic') return
      throw err
    }
  }

  private readonly handleMessage = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    if (msg.topic !== this.topic) return
    if (msg.type !== 'signed') {
      this.log('dropped an unsigned message on %s', this.topic)
      return
    }
    const from = msg.from
    const fail = (err: unknown): void => { this.log.error('message handler failed for a message from %p - %e', from, err) }
    try {
      // Node reports a throw inside an event listener as an uncaught exception: keep it here.
      // An async handler's rejection likewise.
      const result: unknown = this.onMessage(from.toString(), msg.data)
      if (result instanceof Promise) result.catch(fail)
    } catch (err) {
      fail(err)
    }
  }
}
