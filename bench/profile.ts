/**
 * Where CPU time goes, from the V8 CPU profiles (`node --cpu-prof`) of the bench's processes:
 * self time grouped by package or source file, per role (the floor server, Shoal nodes, the load
 * generator), and the hottest functions. Profiles cover each process's whole life, start-up
 * and cluster formation included.
 */
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  hitCount?: number
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples?: number[]
}

/** Self time in µs by group and by function, and the profile's span. */
interface Tally {
  spanUs: number
  processes: number
  groups: Map<string, number>
  functions: Map<string, number>
}

const SPECIAL = new Set(['(garbage collector)', '(idle)', '(program)', '(root)'])

/** The package, Shoal source file or runtime part a frame belongs to. */
function groupOf (frame: CallFrame): string {
  if (SPECIAL.has(frame.functionName)) return frame.functionName
  const url = frame.url
  if (url === '') return '(native)'
  if (url.startsWith('node:')) {
    const parts = url.slice('node:'.length).split('/')
    return `node:${parts[0] === 'internal' ? `internal/${parts[1] ?? ''}` : parts[0] ?? ''}`.replace(/\.js$/, '')
  }
  const modules = url.lastIndexOf('/node_modules/')
  if (modules >= 0) {
    const parts = url.slice(modules + '/node_modules/'.length).split('/')
    return parts[0]?.startsWith('@') === true ? `${parts[0]}/${parts[1] ?? ''}` : parts[0] ?? url
  }
  const source = /\/((?:src|bench|bin)\/.*)$/.exec(url)
  return source?.[1] ?? url
}

function tally (profile: CpuProfile, into: Tally): void {
  const hits = profile.nodes.reduce((sum, n) => sum + (n.hitCount ?? 0), 0)
  const span = profile.endTime - profile.startTime
  const perHit = hits === 0 ? 0 : span / hits
  into.spanUs += span
  into.processes++
  for (const node of profile.nodes) {
    const us = (node.hitCount ?? 0) * perHit
    if (us === 0) continue
    const group = groupOf(node.callFrame)
    into.groups.set(group, (into.groups.get(group) ?? 0) + us)
    const name = `${node.callFrame.functionName === '' ? '(anonymous)' : node.callFrame.functionName}  ${group}:${node.callFrame.lineNumber + 1}`
    into.functions.set(name, (into.functions.get(name) ?? 0) + us)
  }
}

/** A role without its instance number: 'shoal-3 node-2' tallies as 'shoal-3 nodes'. */
function roleGroup (role: string): string {
  return role.replace(/ node-\d+$/, ' nodes')
}

function top (map: Map<string, number>, count: number, exclude: Set<string>): Array<[string, number]> {
  return [...map].filter(([k]) => !exclude.has(k)).sort((a, b) => b[1] - a[1]).slice(0, count)
}

/**
 * Reads the `.cpuprofile`s in `dir` of the processes `roles` names (profile files carry the pid
 * in their name) and describes them; profiles of other processes are left out.
 */
export async function summarizeProfiles (dir: string, roles: ReadonlyMap<number, string>): Promise<string> {
  const tallies = new Map<string, Tally>()
  for (const file of (await readdir(dir)).filter(f => f.endsWith('.cpuprofile')).sort()) {
    const role = roles.get(Number(/^CPU\.\d+\.\d+\.(\d+)\./.exec(file)?.[1]))
    if (role === undefined) continue
    const group = roleGroup(role)
    const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile
    let t = tallies.get(group)
    if (t === undefined) {
      t = { spanUs: 0, processes: 0, groups: new Map(), functions: new Map() }
      tallies.set(group, t)
    }
    tally(profile, t)
  }
  const idle = new Set(['(idle)', '(root)'])
  const out: string[] = [`CPU profiles in ${dir} (self time; % of the role's busy time)`]
  for (const [role, t] of tallies) {
    const busy = [...t.groups].filter(([k]) => !idle.has(k)).reduce((sum, [, us]) => sum + us, 0)
    out.push('', `${role}: ${t.processes} process${t.processes === 1 ? '' : 'es'}, ${(t.spanUs / 1e6).toFixed(1)} s alive in all, ${(busy / 1e6).toFixed(1)} s busy`)
    for (const [group, us] of top(t.groups, 14, idle)) out.push(`  ${(100 * us / busy).toFixed(1).padStart(5)} %  ${(us / 1e3).toFixed(0).padStart(7)} ms  ${group}`)
    out.push('  hottest functions:')
    for (const [name, us] of top(t.functions, 12, new Set([...idle].map(k => `${k}  ${k}:0`)))) {
      out.push(`  ${(100 * us / busy).toFixed(1).padStart(5)} %  ${name}`)
    }
  }
  return out.join('\n')
}
