/**
 * The ycsb benchmark's SVG charts for the README, drawn by hand (a chart library for two charts
 * would outweigh them): throughput bars per workload, operation and target, and latency CDF
 * lines per target on a logarithmic time axis.
 */
import type { Row } from './report.ts'
import { cdfOf } from './report.ts'

/** One colour per target, the same in both charts (a colour-blind-safe palette, Okabe-Ito). */
const COLOURS: Record<string, string> = {
  'shoal-3': '#0072B2',
  'shoal-5': '#56B4E9',
  'shoal-3-client-driven': '#009E73',
  floor: '#999999',
  'kad-dht': '#E69F00',
  etcd: '#D55E00'
}
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"'

const colour = (target: string): string => COLOURS[target] ?? '#CC79A7'

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** 1, 2, 5 × 10^k steps so that about `count` gridlines cover 0..max. */
function niceStep (max: number, count: number): number {
  const raw = max / count
  const p = 10 ** Math.floor(Math.log10(raw))
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p
  return 10 * p
}

function legend (targets: readonly string[], x: number, y: number): string {
  return targets.map((t, i) =>
    `<rect x="${x}" y="${y + i * 18}" width="12" height="12" fill="${colour(t)}"/><text x="${x + 18}" y="${y + i * 18 + 10}" font-size="12">${escape(t)}</text>`).join('\n')
}

function svg (width: number, height: number, title: string, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ${FONT}>\n` +
    `<rect width="${width}" height="${height}" fill="#ffffff"/>\n` +
    `<text x="${width / 2}" y="22" font-size="15" font-weight="600" text-anchor="middle">${escape(title)}</text>\n${body}\n</svg>\n`
}

/**
 * Grouped bars: a group per (workload, operation) at `clients` (the insert phase at its own
 * count), a bar per target, its ops/s above it.
 */
export function throughputChart (rows: readonly Row[], clients: number, subtitle: string): string {
  const chosen = rows.filter(r => r.workload === 'load' || r.clients === clients)
  const targets = [...new Set(chosen.map(r => r.target))]
  const groups = [...new Set(chosen.map(r => `${r.workload}|${r.op}`))]
  const width = 900
  const height = 420
  const left = 70
  const right = 190
  const top = 50
  const bottom = 70
  const plotW = width - left - right
  const plotH = height - top - bottom
  const max = Math.max(1, ...chosen.map(r => r.opsPerSec))
  const step = niceStep(max, 5)
  const top1 = Math.ceil(max / step) * step
  const y = (v: number): number => top + plotH - v / top1 * plotH
  const groupW = plotW / Math.max(1, groups.length)
  const barW = Math.min(28, (groupW - 16) / Math.max(1, targets.length))
  const parts: string[] = []
  for (let v = 0; v <= top1 + step / 2; v += step) {
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`)
    parts.push(`<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="11" text-anchor="end">${v.toLocaleString('en-US')}</text>`)
  }
  groups.forEach((g, gi) => {
    const [workload, op] = g.split('|') as [string, string]
    const x0 = left + gi * groupW + (groupW - barW * targets.length) / 2
    targets.forEach((t, ti) => {
      const r = chosen.find(row => row.target === t && `${row.workload}|${row.op}` === g)
      if (r === undefined) return
      const x = x0 + ti * barW
      parts.push(`<rect x="${x.toFixed(1)}" y="${y(r.opsPerSec).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(plotH - (y(r.opsPerSec) - top)).toFixed(1)}" fill="${colour(t)}"><title>${escape(`${t} ${workload} ${op}: ${r.opsPerSec.toFixed(0)} ops/s`)}</title></rect>`)
      // Narrow bars get their figure upright, so that neighbours' figures do not run together.
      const cx = x + (barW - 2) / 2
      const cy = y(r.opsPerSec) - 3
      parts.push(barW < 26
        ? `<text x="${(cx + 3).toFixed(1)}" y="${cy.toFixed(1)}" font-size="9" transform="rotate(-90 ${(cx + 3).toFixed(1)} ${cy.toFixed(1)})">${r.opsPerSec.toFixed(0)}</text>`
        : `<text x="${cx.toFixed(1)}" y="${cy.toFixed(1)}" font-size="9" text-anchor="middle">${r.opsPerSec.toFixed(0)}</text>`)
    })
    const label = workload === 'load' ? 'insert (load)' : `workload ${workload}`
    parts.push(`<text x="${(left + gi * groupW + groupW / 2).toFixed(1)}" y="${top + plotH + 18}" font-size="12" text-anchor="middle">${escape(label)}</text>`)
    parts.push(`<text x="${(left + gi * groupW + groupW / 2).toFixed(1)}" y="${top + plotH + 33}" font-size="12" text-anchor="middle" fill="#555">${escape(op)}</text>`)
  })
  parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`)
  parts.push(`<text x="18" y="${top + plotH / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 18 ${top + plotH / 2})">operations per second</text>`)
  parts.push(`<text x="${left + plotW / 2}" y="${height - 12}" font-size="11" text-anchor="middle" fill="#555">${escape(subtitle)}</text>`)
  parts.push(legend(targets, left + plotW + 20, top))
  return svg(width, height, `Throughput, ${clients} clients (higher is better)`, parts.join('\n'))
}

/** Latency CDF lines, one per target, for one (workload, operation, clients); x logarithmic in ms. */
export function latencyCdfChart (rows: readonly Row[], title: string, subtitle: string): string {
  const width = 900
  const height = 420
  const left = 60
  const right = 190
  const top = 50
  const bottom = 60
  const plotW = width - left - right
  const plotH = height - top - bottom
  const lines = rows.map(r => ({ target: r.target, points: cdfOf(r).map(([ms, f]): [number, number] => [Math.max(ms, 0.01), f]) }))
  const all = lines.flatMap(l => l.points.map(p => p[0]))
  const lo = 10 ** Math.floor(Math.log10(Math.min(...all, 1)))
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...all, lo * 10)))
  const x = (ms: number): number => left + (Math.log10(ms) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) * plotW
  const y = (f: number): number => top + plotH - f * plotH
  const parts: string[] = []
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    parts.push(`<line x1="${x(d).toFixed(1)}" x2="${x(d).toFixed(1)}" y1="${top}" y2="${top + plotH}" stroke="#e5e5e5"/>`)
    parts.push(`<text x="${x(d).toFixed(1)}" y="${top + plotH + 16}" font-size="11" text-anchor="middle">${d >= 1 ? d.toLocaleString('en-US') : String(d)}</text>`)
  }
  // p99 and beyond are in the table: on a linear axis they would sit on top of 100 %.
  for (const f of [0, 0.25, 0.5, 0.75, 0.9, 1]) {
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(f).toFixed(1)}" y2="${y(f).toFixed(1)}" stroke="${f === 0.5 ? '#d0d0d0' : '#eeeeee'}"/>`)
    parts.push(`<text x="${left - 6}" y="${(y(f) + 4).toFixed(1)}" font-size="11" text-anchor="end">${(f * 100).toFixed(0)} %</text>`)
  }
  for (const line of lines) {
    const d = line.points.map(([ms, f], i) => `${i === 0 ? 'M' : 'L'}${x(ms).toFixed(1)},${y(f).toFixed(1)}`).join(' ')
    parts.push(`<path d="${d}" fill="none" stroke="${colour(line.target)}" stroke-width="2"><title>${escape(line.target)}</title></path>`)
  }
  parts.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`)
  parts.push(`<text x="${left + plotW / 2}" y="${top + plotH + 34}" font-size="12" text-anchor="middle">latency, ms (log scale)</text>`)
  parts.push(`<text x="16" y="${top + plotH / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${top + plotH / 2})">operations at or below</text>`)
  parts.push(`<text x="${left + plotW / 2}" y="${height - 8}" font-size="11" text-anchor="middle" fill="#555">${escape(subtitle)}</text>`)
  parts.push(legend(lines.map(l => l.target), left + plotW + 20, top))
  return svg(width, height, title, parts.join('\n'))
}
