/**
 * The harness's network: one namespace per node, one for the workload clients, and a "switch"
 * namespace holding the bridge that joins them by veth pairs. Every address lives inside these
 * namespaces, so the root namespace has no route to the cluster and nothing the harness does
 * touches the machine's own network. Links are cut with iptables DROP rules inside the node
 * namespaces; the client namespace never gets any.
 */
import { spawnSync } from 'node:child_process'

/** One node's place on the bridge. */
export interface NodeSlot {
  readonly index: number
  readonly ns: string
  readonly ip: string
}

/** An unordered pair of node indexes whose traffic is dropped both ways. */
export type Cut = readonly [number, number]

export class ChaosNetwork {
  readonly runId: string
  readonly switchNs: string
  readonly clientNs: string
  readonly clientIp: string
  readonly nodes: readonly NodeSlot[]
  private readonly iptables: string
  private readonly created: string[] = []
  private cuts: Cut[] = []

  /**
   * @param runId random hex, part of every namespace name so concurrent runs never collide
   * @param subnet the third octet of 10.213.x.0/24; only ever configured inside the namespaces
   */
  constructor (runId: string, nodes: number, subnet: number, iptables: string) {
    this.runId = runId
    this.iptables = iptables
    const base = `10.213.${subnet}`
    this.switchNs = `shoal-chaos-${runId}-sw`
    this.clientNs = `shoal-chaos-${runId}-cl`
    this.clientIp = `${base}.2`
    this.nodes = Array.from({ length: nodes }, (_, index) => ({ index, ns: `shoal-chaos-${runId}-n${index + 1}`, ip: `${base}.${11 + index}` }))
  }

  /** Every namespace this network is made of, for teardown. */
  get namespaces (): string[] {
    return [this.switchNs, this.clientNs, ...this.nodes.map(n => n.ns)]
  }

  /** Creates the namespaces, the bridge and the links. Throws (having undone nothing: call destroy) on failure. */
  create (): void {
    this.addNs(this.switchNs)
    ip('-n', this.switchNs, 'link', 'add', 'br0', 'type', 'bridge')
    ip('-n', this.switchNs, 'link', 'set', 'br0', 'up')
    ip('-n', this.switchNs, 'link', 'set', 'lo', 'up')
    const hosts = [{ ns: this.clientNs, ip: this.clientIp, port: 'pc' }, ...this.nodes.map(n => ({ ns: n.ns, ip: n.ip, port: `p${n.index + 1}` }))]
    for (const host of hosts) {
      this.addNs(host.ns)
      // Both ends are born inside their namespaces: no interface ever appears in the root one.
      ip('link', 'add', 'eth0', 'netns', host.ns, 'type', 'veth', 'peer', 'name', host.port, 'netns', this.switchNs)
      ip('-n', this.switchNs, 'link', 'set', host.port, 'master', 'br0', 'up')
      ip('-n', host.ns, 'addr', 'add', `${host.ip}/24`, 'dev', 'eth0')
      ip('-n', host.ns, 'link', 'set', 'eth0', 'up')
      ip('-n', host.ns, 'link', 'set', 'lo', 'up')
    }
  }

  /** Whether the root namespace has an address or a route on the cluster's subnet: it must not. */
  rootSeesSubnet (): boolean {
    const prefix = this.clientIp.slice(0, this.clientIp.lastIndexOf('.') + 1)
    const addrs = spawnSync('ip', ['-o', '-4', 'addr'], { encoding: 'utf8' }).stdout
    const routes = spawnSync('ip', ['-4', 'route'], { encoding: 'utf8' }).stdout
    return addrs.includes(prefix) || routes.includes(prefix)
  }

  /** The argv prefix that runs a command inside a namespace; `ip netns exec` execs it, so the pid is the command's. */
  exec (ns: string, ...argv: string[]): string[] {
    return ['netns', 'exec', ns, ...argv]
  }

  /** The pairs cut right now. */
  get currentCuts (): readonly Cut[] {
    return this.cuts
  }

  /** Drops all traffic between each pair, both directions, on both sides (INPUT and OUTPUT). */
  cut (pairs: readonly Cut[]): void {
    for (const [a, b] of pairs) {
      for (const [self, peer] of [[a, b], [b, a]] as const) {
        const ns = this.slot(self).ns
        const peerIp = this.slot(peer).ip
        this.rule(ns, '-A', 'INPUT', '-s', peerIp, '-j', 'DROP')
        this.rule(ns, '-A', 'OUTPUT', '-d', peerIp, '-j', 'DROP')
      }
      this.cuts.push([a, b])
    }
  }

  /** Removes every DROP rule the harness added. */
  heal (): void {
    for (const node of this.nodes) {
      this.rule(node.ns, '-F', 'INPUT')
      this.rule(node.ns, '-F', 'OUTPUT')
    }
    this.cuts = []
  }

  /** The DROP rules in force inside a node's namespace, as `iptables -S` prints them (for tests). */
  rules (index: number): string[] {
    const out = spawnSync('ip', this.exec(this.slot(index).ns, this.iptables, '-w', '-S'), { encoding: 'utf8' })
    return out.stdout.split('\n').filter(line => line.includes('DROP'))
  }

  /**
   * Deletes every namespace (their veths and the bridge go with them). Synchronous, so it can run
   * at process exit too; processes inside must be gone first or they keep a namespace alive.
   */
  destroy (): void {
    for (const ns of [...this.created].reverse()) spawnSync('ip', ['netns', 'del', ns])
    this.created.length = 0
  }

  private addNs (ns: string): void {
    ip('netns', 'add', ns)
    this.created.push(ns)
  }

  private slot (index: number): NodeSlot {
    const slot = this.nodes[index]
    if (slot === undefined) throw new Error(`no node ${index}`)
    return slot
  }

  private rule (ns: string, ...args: string[]): void {
    const out = spawnSync('ip', this.exec(ns, this.iptables, '-w', ...args), { encoding: 'utf8' })
    if (out.status !== 0) throw new Error(`${this.iptables} ${args.join(' ')} in ${ns}: ${out.stderr.trim()}`)
  }
}

/** Runs `ip` and throws with its stderr when it fails. */
export function ip (...args: string[]): void {
  const out = spawnSync('ip', args, { encoding: 'utf8' })
  if (out.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(out.stderr || out.error?.message || '').trim()}`)
}
