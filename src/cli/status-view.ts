/**
 * `shoal status` for people: the members as a table (state coloured on a terminal), then hints,
 * anti-entropy, handoff and tombstones. `shoal status --json` prints the NodeStatus itself.
 */
import type { MemberStatus, NodeStatus } from '../node.ts'
import { painter, renderTable } from './table.ts'
import type { Paint, Style } from './table.ts'

export interface StatusViewOptions {
  /** Full peer IDs and every address, dialable (with /p2p/). */
  readonly wide?: boolean
  readonly color?: boolean
}

const STATE_STYLE: Record<MemberStatus['state'], Style> = {
  up: 'green',
  suspect: 'yellow',
  down: 'red',
  leaving: 'cyan',
  left: 'gray'
}

/** States in the order the summary counts them. */
const STATES: ReadonlyArray<MemberStatus['state']> = ['up', 'suspect', 'down', 'leaving', 'left']

/**
 * Peer IDs shortened to `12D3…` and enough of their tail to tell them apart (at least 6
 * characters): every Ed25519 peer ID starts with 12D3KooW, so the tail is what differs.
 */
export function shortPeerIds (ids: readonly string[], minTail = 6): Map<string, string> {
  const unique = [...new Set(ids)]
  let tail = minTail
  const longest = Math.max(0, ...unique.map(id => id.length))
  while (tail < longest && new Set(unique.map(id => id.slice(-tail))).size < unique.length) tail++
  return new Map(unique.map(id => [id, id.length <= tail + 5 ? id : `${id.slice(0, 4)}…${id.slice(-tail)}`]))
}

/** An address without its /p2p/<id> suffix: the table shows the peer ID beside it. */
function bare (addr: string): string {
  const at = addr.indexOf('/p2p/')
  return at === -1 ? addr : addr.slice(0, at)
}

function dialable (addr: string, peerId: string): string {
  return addr.includes('/p2p/') ? addr : `${addr}/p2p/${peerId}`
}

/** Bytes as a reader would say them: 512 B, 3.4 KiB, 12.0 MiB. */
export function bytes (n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = n / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${units[unit] ?? 'TiB'}`
}

function count (n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

/**
 * The ring's partition count, from what the members replicate: each partition has min(N, members
 * holding any) replicas. Undefined when the status does not say N (an older node).
 */
function partitionCount (s: NodeStatus): number | undefined {
  const n = s.replication?.n
  const holders = s.members.filter(m => m.partitions > 0).length
  if (n === undefined || holders === 0) return undefined
  const total = s.members.reduce((sum, m) => sum + m.partitions, 0)
  return total / Math.min(n, holders)
}

/** The lines `shoal status` prints: each member's share is the part of the keys it holds a replica of. */
export function statusView (s: NodeStatus, options: StatusViewOptions = {}): string {
  const paint: Paint = painter(options.color === true)
  const wide = options.wide === true
  const short = shortPeerIds(s.members.map(m => m.peerId))
  const name = (id: string): string => wide ? id : short.get(id) ?? id
  const ringSize = partitionCount(s)
  const rows = s.members.map(m => {
    const share = ringSize === undefined ? '' : ` (${Math.round(100 * m.partitions / ringSize)}%)`
    const addrs = wide ? m.addrs.map(a => dialable(a, m.peerId)) : m.addrs.map(bare)
    const more = !wide && addrs.length > 1 ? ` (+${addrs.length - 1})` : ''
    return [
      `${name(m.peerId)}${m.peerId === s.peerId ? ' *' : ''}`,
      paint(STATE_STYLE[m.state] ?? 'reset', m.state),
      `${m.partitions}${share}`,
      wide ? addrs.join(' ') : `${addrs[0] ?? '-'}${more}`
    ]
  })
  const tally = STATES.map(state => [state, s.members.filter(m => m.state === state).length] as const)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${paint(STATE_STYLE[state], state)}`)
  const replication = s.replication === undefined ? '' : `, N=${s.replication.n} R=${s.replication.r} W=${s.replication.w}`
  const ae = s.antiEntropy
  const ho = s.handoff
  return [
    `cluster ${s.cluster}${replication}: ${count(s.members.length, 'member')} (${tally.join(', ') || 'none known'})`,
    `seen from ${name(s.peerId)} * (${paint(STATE_STYLE[s.state] ?? 'reset', s.state)})`,
    '',
    ...renderTable(['MEMBER', 'STATE', 'PARTITIONS', 'ADDRESS'], rows),
    '',
    `hints         ${s.hintsPending} pending, ${s.hintsDelivered} delivered${s.hintsDropped > 0 ? `, ${s.hintsDropped} dropped (undecodable)` : ''}`,
    `anti-entropy  ${count(ae.exchanges, 'exchange')} (${ae.failed} failed, ${ae.deferred} deferred), ${count(ae.keysRepaired, 'key')} repaired, ` +
      `${bytes(ae.bytesSent)} sent, ${bytes(ae.bytesReceived)} received; trees ${ae.treesChecked ? 'checked' : 'being checked'}` +
      `${ae.treesRebuilt > 0 ? ` (${ae.treesRebuilt} rebuilt)` : ''}, every ${ae.intervalMs >= 1000 ? `${ae.intervalMs / 1000} s` : `${ae.intervalMs} ms`}`,
    `handoff       ${count(ho.pending, 'partition')} pending, ${ho.partitions} handed off (${count(ho.keysSent, 'key')} sent)`,
    `tombstones    ${s.tombstones.purged} purged, ${s.tombstones.kept} kept`,
    ...(wide ? [] : ['', '* the member answering. --wide: full peer IDs and dialable addresses; --json: every field'])
  ].join('\n')
}
