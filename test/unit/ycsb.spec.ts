import assert from 'node:assert/strict'
import { build, encodeIntoCompressedBase64 } from 'hdr-histogram-js'
import { latencyCdfChart, throughputChart } from '../../bench/ycsb/charts.ts'
import { parseOptions } from '../../bench/ycsb/index.ts'
import { STAMP_BYTES, newest, stamped } from '../../bench/ycsb/kad.ts'
import { Progress } from '../../bench/ycsb/progress.ts'
import { cdfOf, goals, mergeResults, ratioTable, rowsOf } from '../../bench/ycsb/report.ts'
import type { Row } from '../../bench/ycsb/report.ts'
import type { PhaseResult } from '../../bench/ycsb/messages.ts'
import { shareOf } from '../../bench/ycsb/messages.ts'
import { WORKLOAD, keyOf, operationStream } from '../../bench/ycsb/workload.ts'
import { ScrambledZipfianGenerator, ZipfianGenerator, zeta } from '../../bench/ycsb/zipfian.ts'
import { seeded } from '../../src/sim/random.ts'

function draws (next: () => number, count: number): number[] {
  return Array.from({ length: count }, next)
}

function counts (values: readonly number[], size: number): number[] {
  const out = new Array<number>(size).fill(0)
  for (const v of values) {
    assert.ok(Number.isInteger(v) && v >= 0 && v < size, `draw ${v} outside 0..${size - 1}`)
    out[v] = (out[v] ?? 0) + 1
  }
  return out
}

/** A histogram of `values` (µs), as the generator sends it. */
function hdr (values: readonly number[]): string {
  const h = build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, autoResize: false })
  for (const v of values) h.recordValue(v)
  const encoded = encodeIntoCompressedBase64(h)
  h.destroy()
  return encoded
}

function row (target: Row['target'], workload: Row['workload'], op: Row['op'], opsPerSec: number, p50Ms: number, p99Ms = p50Ms * 2): Row {
  return {
    target, workload, op, clients: 32, opsPerSec, p50Ms, p95Ms: p50Ms, p99Ms, p999Ms: p99Ms, maxMs: p99Ms, meanMs: p50Ms,
    ops: 100, errors: 0, generatorCpuPercent: 10, generatorElu: 0.2, hdr: hdr([p50Ms * 1000, p99Ms * 1000])
  }
}

describe('ycsb benchmark', () => {
  describe('zipfian key choice', () => {
    it('draws rank 0 and 1 with their zipfian probabilities and gives the top 10 % of ranks their share', () => {
      const items = 1000
      const zipf = new ZipfianGenerator(items, seeded(7))
      const n = 200_000
      const c = counts(draws(() => zipf.next(), n), items)
      for (const rank of [0, 1]) {
        const expected = zipf.probability(rank)
        assert.ok(Math.abs((c[rank] ?? 0) / n - expected) < 0.1 * expected, `rank ${rank}: ${(c[rank] ?? 0) / n} vs ${expected}`)
      }
      const top = c.slice(0, items / 10).reduce((a, b) => a + b, 0) / n
      const exact = zeta(items / 10, 0.99) / zeta(items, 0.99)
      assert.ok(Math.abs(top - exact) < 0.03, `top 10 %: ${top} vs ${exact}`)
      // Skewed: the top 10 % take most draws, and the least popular half gets little.
      assert.ok(top > 0.6)
      const bottomHalf = c.slice(items / 2).reduce((a, b) => a + b, 0) / n
      assert.ok(bottomHalf < 0.15, `bottom half: ${bottomHalf}`)
    })

    it('repeats the same draws for the same seed and different ones for another seed', () => {
      const one = new ScrambledZipfianGenerator(10_000, 1, seeded(5))
      const two = new ScrambledZipfianGenerator(10_000, 1, seeded(5))
      const other = new ScrambledZipfianGenerator(10_000, 1, seeded(6))
      const s1 = draws(() => one.next(), 1000)
      assert.deepEqual(s1, draws(() => two.next(), 1000))
      assert.notDeepEqual(s1, draws(() => other.next(), 1000))
    })

    it('scrambles ranks over the key space with a permutation: every item reachable, the hottest one drawn most', () => {
      const items = 500
      const scrambled = new ScrambledZipfianGenerator(items, 3, seeded(9))
      const ranks = Array.from({ length: items }, (_, r) => scrambled.itemAt(r))
      assert.deepEqual([...ranks].sort((x, y) => x - y), Array.from({ length: items }, (_, i) => i))
      // Not the identity: hot items are spread, not items 0, 1, 2...
      assert.notDeepEqual(ranks.slice(0, 10), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      const c = counts(draws(() => scrambled.next(), 50_000), items)
      const hottest = c.indexOf(Math.max(...c))
      assert.equal(hottest, scrambled.itemAt(0))
      // Another seed puts other items on top.
      assert.notDeepEqual(Array.from({ length: 10 }, (_, r) => new ScrambledZipfianGenerator(items, 4, seeded(9)).itemAt(r)), ranks.slice(0, 10))
    })

    it('refuses a key space below 2 and a constant outside (0, 1)', () => {
      assert.throws(() => new ZipfianGenerator(1, seeded(1)), { name: 'RangeError' })
      assert.throws(() => new ZipfianGenerator(10, seeded(1), 1), { name: 'RangeError' })
    })
  })

  describe('workloads', () => {
    it('mixes reads and updates in the workload\'s proportions, the same for the same seed and client', () => {
      const n = 20_000
      for (const name of ['A', 'B', 'C'] as const) {
        const next = operationStream(WORKLOAD[name], 1000, 42, 3)
        const ops = draws(() => next().op === 'get' ? 1 : 0, n)
        const reads = ops.reduce((a, b) => a + b, 0) / n
        assert.ok(Math.abs(reads - WORKLOAD[name].readProportion) < 0.015, `${name}: ${reads}`)
      }
      const a = operationStream(WORKLOAD.A, 1000, 42, 3)
      const b = operationStream(WORKLOAD.A, 1000, 42, 3)
      const c = operationStream(WORKLOAD.A, 1000, 42, 4)
      const first = Array.from({ length: 200 }, () => a())
      assert.deepEqual(first, Array.from({ length: 200 }, () => b()))
      assert.notDeepEqual(first, Array.from({ length: 200 }, () => c()))
      assert.ok(first.every(o => o.item >= 0 && o.item < 1000))
      assert.equal(keyOf(42), 'user0000000042')
    })
  })

  describe('report', () => {
    it('turns a phase\'s histograms into rows with the shape latest.json promises', () => {
      const gets = Array.from({ length: 1000 }, (_, i) => 1000 + i * 10) // 1.00 .. 10.99 ms
      const result: PhaseResult = {
        workload: 'B', clients: 32, histograms: { get: hdr(gets), put: hdr([5000]) }, counts: { get: 1000, put: 1 },
        windowMs: 2000, errors: { put: 2 }, firstError: 'put: QuorumError: x', generatorCpuPercent: 41.23, generatorElu: 0.5, stats: { maxSiblings: 2 }
      }
      const rows = rowsOf('shoal-3', result, 150)
      assert.equal(rows.length, 2)
      const [get, put] = rows as [Row, Row]
      for (const r of rows) {
        for (const field of ['target', 'op', 'clients', 'opsPerSec', 'p50Ms', 'p95Ms', 'p99Ms', 'p999Ms', 'workload'] as const) assert.ok(field in r, field)
      }
      assert.equal(get.target, 'shoal-3')
      assert.equal(get.op, 'get')
      assert.equal(get.workload, 'B')
      assert.equal(get.clients, 32)
      assert.equal(get.opsPerSec, 500)
      assert.ok(Math.abs(get.p50Ms - 6) < 0.02, String(get.p50Ms))
      assert.ok(Math.abs(get.p99Ms - 10.9) < 0.02, String(get.p99Ms))
      assert.ok(get.p95Ms <= get.p99Ms && get.p99Ms <= get.p999Ms && get.p999Ms <= get.maxMs)
      assert.equal(get.errors, 0)
      assert.equal(put.errors, 2)
      assert.equal(put.ops, 1)
      assert.equal(get.serverCpuPercent, 150)
      assert.equal(get.maxSiblings, 2)
      const cdf = cdfOf(get)
      assert.ok(cdf.every(([ms, f], i) => i === 0 || (ms >= (cdf[i - 1]?.[0] ?? 0) && f > (cdf[i - 1]?.[1] ?? 0))), 'a CDF rises')
      assert.equal(cdf.at(-1)?.[1], 1)
    })

    it('merges the phases of several generators: histograms added, counts summed, every client and record dealt once', () => {
      const phase = (values: number[], put: number[], windowMs: number, cpu: number, elu: number, siblings: number): PhaseResult => ({
        workload: 'A', clients: 32, histograms: { get: hdr(values), ...(put.length === 0 ? {} : { put: hdr(put) }) }, counts: {},
        windowMs, errors: { get: 1 }, generatorCpuPercent: cpu, generatorElu: elu, stats: { maxSiblings: siblings }
      })
      const merged = mergeResults([phase([1000, 2000], [3000], 1000, 30, 0.4, 1), phase([4000], [], 1100, 20, 0.7, 3)])
      assert.equal(merged.counts.get, 3)
      assert.equal(merged.counts.put, 1)
      assert.equal(merged.errors.get, 2)
      assert.equal(merged.windowMs, 1100)
      assert.equal(merged.generatorCpuPercent, 50)
      assert.equal(merged.generatorElu, 0.7)
      assert.equal(merged.stats.maxSiblings, 3)
      const [get] = rowsOf('floor', merged, undefined)
      assert.ok(get !== undefined && Math.abs(get.maxMs - 4) < 0.01 && Math.abs(get.p50Ms - 2) < 0.01)
      const shares = [0, 1, 2].map(g => shareOf(32, g, 3))
      assert.deepEqual(shares.flat().sort((a, b) => a - b), Array.from({ length: 32 }, (_, i) => i))
      assert.deepEqual(shareOf(1, 1, 2), [])
    })

    it('gives Shoal\'s ratio to every other target and judges the issue\'s goals', () => {
      const rows = [
        row('shoal-3', 'load', 'put', 1200, 10), row('etcd', 'load', 'put', 1000, 20), row('floor', 'load', 'put', 3000, 5),
        row('shoal-3', 'C', 'get', 1500, 4, 50), row('etcd', 'C', 'get', 1000, 8), row('kad-dht', 'C', 'get', 100, 200),
        row('shoal-3-client-driven', 'C', 'get', 2000, 3), row('floor', 'C', 'get', 4000, 2)
      ]
      const table = ratioTable(rows, 'shoal-3') ?? ''
      assert.match(table, /etcd/)
      assert.match(table, /1\.20x \/ 0\.50x/) // load put against etcd
      const list = goals(rows)
      assert.equal(list.length, 6)
      assert.deepEqual(list.map(g => g.met), [true, false, true, false, true, false])
      assert.equal(list[0]?.measured, '1.20x')
      assert.equal(list[5]?.measured?.startsWith('12.50x'), true)
      // A target that did not run leaves its goal unmeasured rather than failed.
      assert.equal(goals(rows.filter(r => r.target !== 'etcd'))[0]?.met, undefined)
    })

    it('draws charts with a bar per target and workload and a CDF line per target', () => {
      const rows = [row('shoal-3', 'C', 'get', 1500, 4), row('etcd', 'C', 'get', 1000, 8), row('shoal-3', 'load', 'put', 900, 9)]
      const bars = throughputChart(rows, 32, 'subtitle <&>')
      assert.match(bars, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
      assert.equal((bars.match(/<title>/g) ?? []).length, 3)
      assert.match(bars, /subtitle &lt;&amp;&gt;/)
      const cdf = latencyCdfChart(rows.slice(0, 2), 'Get latency', 'sub')
      assert.equal((cdf.match(/<path /g) ?? []).length, 2)
      assert.ok(cdf.trimEnd().endsWith('</svg>'))
    })
  })

  describe('kad-dht records', () => {
    it('stamp each value so that the newest record wins whatever the order', async () => {
      const older = stamped(new Uint8Array([1]))
      await new Promise(resolve => setTimeout(resolve, 2))
      const newer = stamped(new Uint8Array([2]))
      assert.equal(newer.byteLength, STAMP_BYTES + 1)
      assert.equal(newer[STAMP_BYTES], 2)
      assert.equal(newest([older, newer]), 1)
      assert.equal(newest([newer, older]), 0)
      assert.equal(newest([new Uint8Array(3), older]), 1)
    })
  })

  describe('command line', () => {
    it('takes its flags in both forms and names a bad one', () => {
      const o = parseOptions(['--targets', 'etcd,floor', '--workloads=a,c', '--clients', '1,32', '--seconds', '4', '--records=500', '--seed', '9'])
      assert.deepEqual(o.targets, ['etcd', 'floor'])
      assert.deepEqual(o.workloads, ['A', 'C'])
      assert.deepEqual(o.clients, [1, 32])
      assert.equal(o.measureMs, 4000)
      assert.equal(o.records, 500)
      assert.equal(o.seed, 9)
      const defaults = parseOptions([])
      assert.equal(defaults.targets.length, 6)
      assert.deepEqual(defaults.clients, [32])
      assert.equal(defaults.records, 10_000)
      assert.ok(defaults.out.endsWith('bench/results/latest.json'))
      assert.ok(parseOptions(['--quick']).out !== defaults.out, 'a quick run leaves latest.json alone')
      for (const bad of [['--targets', 'redis'], ['--clients', '0'], ['--seconds', 'x'], ['--records', '1'], ['--frobnicate'], ['extra'], ['--workloads', 'D']]) {
        assert.throws(() => parseOptions(bad), { name: 'UsageError' }, bad.join(' '))
      }
    })
  })

  describe('progress', () => {
    it('redraws one line on a terminal and prints plain lines elsewhere', () => {
      let t = 0
      const tty: string[] = []
      const bar = new Progress({ isTTY: true, columns: 200, write: s => { tty.push(s); return true } }, 10, () => t)
      bar.stage('shoal-3: loading', 4)
      t += 1000
      bar.update(0.5, '500 ops/s')
      assert.equal(bar.fraction(), 0.2)
      assert.match(bar.line(), /\[#####-+\]  20% 0:01 {2}shoal-3: loading {2}500 ops\/s/)
      bar.log('a result')
      bar.finish()
      assert.ok(tty.every(s => s.startsWith('\r\x1b[2K')))
      assert.ok(tty.some(s => s.includes('a result\n')))

      const plain: string[] = []
      let u = 0
      const log = new Progress({ write: s => { plain.push(s); return true } }, 10, () => u)
      log.stage('etcd: starting', 5)
      log.update(0.5, 'x')
      u += 20_000
      log.update(0.6, '12 ops/s')
      log.stage('etcd: loading', 5)
      log.log('done')
      log.finish()
      assert.deepEqual(plain, ['[  0%] etcd: starting\n', '[ 30%] etcd: starting  12 ops/s\n', '[ 50%] etcd: loading\n', 'done\n'])
    })
  })
})
