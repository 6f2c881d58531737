import { update } from '../causality.ts'
import type { DvvSet } from '../causality.ts'
import { allEqual, encodeCrdt, joinCrdt, sameTypeStates } from './typed-value.ts'

/**
 * A replica's merge step for convergent values (Store.merge, so replication, read repair, hinted
 * handoff and anti-entropy all take it): when `obj` holds two or more siblings, all states of one
 * CRDT type and not all equal, it returns their join as a new write of this replica, a fresh dot
 * from `actor` (the one the store's modify hands out) with context `obj.vv`, so the join replaces
 * exactly those siblings. Otherwise undefined: plain values, tombstones, mixed or malformed
 * siblings are left as they are, for readers and resolvers.
 *
 * Why this terminates (no two replicas mint dots at each other forever): with no new client
 * writes, every state any replica can hold is a join of the finitely many states clients wrote,
 * a finite lattice. A collapse fires only on unequal states and yields their join, strictly above
 * at least one of them, under a vv that covers every dot it replaced, so a later merge drops those
 * siblings rather than bringing them back beside it. States therefore only climb, and each
 * replica's copy reaches the join of everything written in finitely many steps. Two replicas that
 * collapse the same siblings concurrently mint two siblings holding the same join: equal states,
 * so the next merge leaves them be (readers join them to one value, and the next write replaces
 * both).
 *
 * The new sibling takes the newest timestamp among those it replaces: no clock is read, and the
 * result is the same on every replica given the same input and actor.
 */
export function collapseSiblings (obj: DvvSet, actor: string): DvvSet | undefined {
  if (obj.siblings.length < 2) return undefined
  const states = sameTypeStates(obj.siblings.map(s => s.value))
  if (states === undefined || allEqual(states)) return undefined
  const joined = encodeCrdt(states.reduce(joinCrdt))
  const timestamp = Math.max(...obj.siblings.map(s => s.timestamp))
  return update(obj, obj.vv, actor, joined, timestamp)
}
