/**
 * Finds an iptables that works inside a network namespace, installing the package when it is
 * missing and we are root. The harness cuts links with DROP rules, so without one it cannot run.
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'

/** Why partitions cannot be made on this machine, or the iptables binary that makes them. */
export type IptablesProbe = { readonly ok: true, readonly binary: string } | { readonly ok: false, readonly reason: string }

/** The variants to try, nft first: the legacy backend needs the old x_tables modules. */
const CANDIDATES = ['iptables-nft', 'iptables', 'iptables-legacy']

let cached: IptablesProbe | undefined

/** Root, iproute2 with namespaces, and an iptables that can add a DROP rule inside one. */
export function findIptables (install = true): IptablesProbe {
  if (cached?.ok === true) return cached
  if (process.getuid?.() !== 0) return { ok: false, reason: 'the fault harness needs root (network namespaces and iptables)' }
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return { ok: false, reason: 'iproute2 with network namespace support (ip netns) is not available' }
  let probe = probeInNamespace()
  if (!probe.ok && install && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0) {
    // Once per process: apt-get update, then the package; quiet unless it fails.
    const update = spawnSync('apt-get', ['update'], { encoding: 'utf8', timeout: 300_000 })
    const get = update.status === 0
      ? spawnSync('apt-get', ['install', '-y', 'iptables'], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
      : update
    probe = probeInNamespace()
    if (!probe.ok) probe = { ok: false, reason: `iptables is missing and could not be installed: ${(get.stderr ?? '').trim().split('\n').pop() ?? `exit ${get.status}`}` }
  }
  cached = probe
  return probe
}

/** Adds and lists a DROP rule in a throwaway namespace with each candidate in turn. */
function probeInNamespace (): IptablesProbe {
  const ns = `shoal-probe-${randomBytes(3).toString('hex')}`
  if (spawnSync('ip', ['netns', 'add', ns]).status !== 0) return { ok: false, reason: 'cannot create a network namespace' }
  const failures: string[] = []
  try {
    for (const binary of CANDIDATES) {
      const add = spawnSync('ip', ['netns', 'exec', ns, binary, '-w', '-A', 'INPUT', '-s', '10.213.255.1', '-j', 'DROP'], { encoding: 'utf8' })
      const list = add.status === 0 ? spawnSync('ip', ['netns', 'exec', ns, binary, '-w', '-S', 'INPUT'], { encoding: 'utf8' }) : add
      if (list.status === 0 && list.stdout.includes('10.213.255.1')) return { ok: true, binary }
      failures.push(`${binary}: ${(list.stderr || list.error?.message || `exit ${list.status}`).trim().split('\n')[0]}`)
    }
    return { ok: false, reason: `no iptables works inside a network namespace (${failures.join('; ')})` }
  } finally {
    spawnSync('ip', ['netns', 'del', ns])
  }
}
