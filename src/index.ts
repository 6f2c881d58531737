/**
 * Shoal's public API: a node (`createNode`), a client peer (`createClient`), and the Dynamo core
 * and storage they are built from, for those who embed or test them.
 *
 * @example
 * ```ts
 * import { createNode, createClient } from 'shoal'
 *
 * const node = await createNode({ dataDir: './shoal-data', listen: ['/ip4/127.0.0.1/tcp/4001'] })
 * await node.put('greeting', 'hello')
 * const client = await createClient({ bootstrap: [`/ip4/127.0.0.1/tcp/4001/p2p/${node.peerId}`] })
 * const read = await client.get('greeting')           // { siblings: [Uint8Array 'hello'], context }
 * await client.stop()
 * await node.stop()
 * ```
 *
 * @example
 * ```ts
 * import { Ring, update, merge, values, encodeContext, decodeContext, toBytes } from 'shoal'
 *
 * const ring = new Ring([{ id: 'alpha', weight: 1 }, { id: 'beta', weight: 1 }, { id: 'gamma', weight: 1 }])
 * ring.owners(ring.partitionOf(toBytes('user:42')))   // the key's N=3 replicas, in preference order
 *
 * const a = update(undefined, new Map(), 'replica-a', toBytes('red'), Date.now())  // two concurrent writes
 * const b = update(undefined, new Map(), 'replica-b', toBytes('blue'), Date.now())
 * const both = merge(a, b)                            // siblings: red and blue
 * const context = encodeContext(both.vv)              // what a read hands the client
 * const resolved = update(both, decodeContext(context), 'replica-a', toBytes('purple'), Date.now())
 * values(resolved)                                    // [purple]
 * ```
 */
export { createNode, ShoalNode, DEFAULT_CLUSTER } from './node.ts'
export type { NodeOptions, NodeStatus, MemberStatus as NodeMemberStatus, MemberState, GetResult, PutResult, ReadOptions, WriteOptions, KeyValue } from './node.ts'
export { createClient, ShoalClient } from './client.ts'
export type { ClientOptions } from './client.ts'
export { startGateway, HttpGateway } from './http/gateway.ts'
export type { GatewayNode, GatewayOptions } from './http/gateway.ts'
export { parseHttpAddress } from './http/address.ts'
export type { HttpAddress } from './http/address.ts'
export { encodeKey, decodeKey } from './http/key.ts'
export { encodeSiblings, decodeSiblings } from './http/multipart.ts'
export { PayloadTooLargeError, NotFoundError, MethodNotAllowedError } from './http/errors.ts'
export { NodeMetrics } from './metrics.ts'
export type { NodeStats, LatencyPercentiles, RingSnapshot, RequestOp } from './metrics.ts'
export { lastWriterWins, DELETE } from './kv-ops.ts'
export type { Resolver, SiblingInfo, UpdateFunction, UpdateOptions, UpdateResult, ShoalCounter, ShoalSet, CrdtOptions } from './kv-ops.ts'
export * from './core/crdt/errors.ts'
export { toBytes, describeKey } from './core/bytes.ts'
export {
  EMPTY, update, merge, join, covers, descends, equals, values, isDeleted,
  encodeContext, decodeContext, encodeObject, decodeObject, objectDigest
} from './core/causality.ts'
export type { Dot, DvvSet, Sibling, VersionVector } from './core/causality.ts'
export { Ring, ownershipChanges, DEFAULT_PARTITIONS, DEFAULT_N } from './core/ring.ts'
export type { RingMember, RingOptions, OwnershipChange } from './core/ring.ts'
export { MerkleTree, diffTrees, diffSegmentKeys, segmentOf, SEGMENTS } from './core/merkle.ts'
export { MemberTable, compareRecords, validateRecord } from './core/membership.ts'
export type { MemberRecord, MemberStatus } from './core/membership.ts'
export { PhiAccrualDetector, FailureDetectors } from './core/failure-detector.ts'
export type { Liveness, PhiOptions } from './core/failure-detector.ts'
export { MembershipAgent } from './core/membership-agent.ts'
export type { Heartbeat } from './core/membership-agent.ts'
export { Coordinator, DEFAULT_LIMITS } from './core/coordinator/coordinator.ts'
export type { LocalReplica, Limits, PutOptions, GetOptions } from './core/coordinator/coordinator.ts'
export type { KvRequest, KvResponse, Transport } from './core/coordinator/messages.ts'
export type { Env, Timer } from './core/env.ts'
export * from './core/errors.ts'
export { Store } from './store/store.ts'
export type { StoreOptions } from './store/store.ts'
export { loadOrCreateIdentity } from './store/identity.ts'
export * from './store/errors.ts'
