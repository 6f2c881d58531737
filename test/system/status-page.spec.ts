import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Browser, Page } from 'playwright-core'
import { Processes, stderrTail } from '../../bench/processes.ts'
import type { NodeStats } from '../../src/metrics.ts'
import { launchChromium } from '../support/chromium.ts'
import { eventually } from '../support/eventually.ts'

const bin = fileURLToPath(new URL('../../bin/shoal.js', import.meta.url))
const docs = fileURLToPath(new URL('../../docs/', import.meta.url))

interface Started {
  readonly process: ChildProcess
  readonly peerId: string
  readonly addrs: string[]
  readonly http?: string
}

describe('the status page, in headless Chromium', function () {
  this.timeout(240_000)
  const processes = new Processes()
  const nodes: Started[] = []
  let browser: Browser | undefined
  let page: Page
  let url: string
  let traffic: Promise<void> | undefined
  let trafficOn = false

  /** `shoal start ... --json`: resolves with its first stdout line. */
  async function start (dataDir: string, extra: string[]): Promise<Started> {
    const child = processes.spawn('node', [bin, 'start', '--data', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--cluster', 'status-page', '--json', ...extra])
    const tail = stderrTail(child)
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve)
      child.once('exit', code => { reject(new Error(`shoal start exited with ${code}: ${tail()}`)) })
    })
    return { process: child, ...(JSON.parse(line) as { peerId: string, addrs: string[], http?: string }) }
  }

  const stats = async (): Promise<NodeStats> => await (await fetch(`${url}stats`)).json() as NodeStats

  /** Puts and gets through the gateway, so the page has requests and latencies to show. */
  async function load (): Promise<void> {
    for (let i = 0; trafficOn; i++) {
      const key = `key-${i % 50}`
      await fetch(`${url}kv/${key}`, { method: 'PUT', body: `value ${i}` }).then(async r => await r.arrayBuffer()).catch(() => {})
      await fetch(`${url}kv/${key}`).then(async r => await r.arrayBuffer()).catch(() => {})
      await new Promise(resolve => setTimeout(resolve, 40))
    }
  }

  before(async function () {
    browser = await launchChromium(this)
    const root = await processes.tempDir('shoal-page-')
    const first = await start(join(root, 'a'), ['--http', '127.0.0.1:0'])
    assert.ok(first.http !== undefined, 'start --json names its HTTP address')
    url = first.http
    nodes.push(first)
    const bootstrap = first.addrs[0]!.includes('/p2p/') ? first.addrs[0]! : `${first.addrs[0]!}/p2p/${first.peerId}`
    for (const name of ['b', 'c']) nodes.push(await start(join(root, name), ['--bootstrap', bootstrap]))
    await eventually('the first node sees 3 members up', async () => (await stats()).members.filter(m => m.state === 'up').length === 3, 120_000)
    trafficOn = true
    traffic = load()
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
  })

  after(async () => {
    trafficOn = false
    await traffic
    await browser?.close()
    await processes.cleanup()
  })

  it('loads, shows every member with its state, and draws the ring in their colours', async () => {
    const errors: string[] = []
    page.on('pageerror', err => { errors.push(err.message) })
    await page.goto(url)
    for (const node of nodes) {
      const row = page.locator(`#members tr[data-member="${node.peerId}"]`)
      await row.waitFor({ timeout: 15_000 })
      assert.equal(await row.getAttribute('data-state'), 'up')
      assert.match(await row.innerText(), new RegExp(node.peerId))
      // Each member owns arcs in the outer band (its primaries) and in the inner ones.
      assert.equal(await page.locator(`#ring path[data-member="${node.peerId}"]`).count(), 3)
    }
    assert.equal(await page.locator('#live').getAttribute('data-live'), 'true')
    assert.equal(await page.locator('#ring-partitions').textContent(), '4,096')
    assert.match(await page.locator('#ring-members').textContent() ?? '', /3 of 3 members up/)
    const health = page.locator('#health-text')
    assert.equal(await health.getAttribute('data-degraded'), '0')
    assert.match(await health.innerText(), /every partition has all 3 replicas up/)
    // Drawn, not only present: an SVG arc whose ends meet would be an invisible path.
    const band = await page.locator('#health path[data-health="full"]').boundingBox()
    assert.ok(band !== null && band.width > 100 && band.height > 100, `the health band is drawn: ${JSON.stringify(band)}`)
    const arcs = await page.locator(`#ring path[data-member="${nodes[0]!.peerId}"][data-band="0"]`).boundingBox()
    assert.ok(arcs !== null && arcs.width > 300, `the first member's primaries go round the ring: ${JSON.stringify(arcs)}`)
    await eventually('the page shows the requests coming in', async () => Number(await page.locator('#rate').innerText()) > 0)
    assert.deepEqual(errors, [], 'no script errors')
  })

  it('shoal start --http also serves /metrics with its process metrics, and /stats', async () => {
    const metrics = await (await fetch(`${url}metrics`)).text()
    assert.match(metrics, /^shoal_requests_total\{op="put",outcome="ok"\} [1-9]/m)
    assert.match(metrics, /^process_resident_memory_bytes \d+/m)
    assert.match(metrics, /^nodejs_eventloop_lag_seconds /m)
    assert.equal((await stats()).peerId, nodes[0]!.peerId)
  })

  it('changes when a node stops: its row turns suspect or down, and its arcs fade', async () => {
    const stopped = nodes[2]!
    const row = page.locator(`#members tr[data-member="${stopped.peerId}"]`)
    assert.equal(await row.getAttribute('data-state'), 'up')
    // For the README's picture: a minute of latency history first.
    if (process.env.SHOAL_SCREENSHOT === '1') await new Promise(resolve => setTimeout(resolve, 45_000))
    await processes.stop(stopped.process)
    await eventually('the page shows the stopped node as suspect or down', async () =>
      ['suspect', 'down'].includes(await row.getAttribute('data-state') ?? ''), 30_000, 200)
    const arc = page.locator(`#ring path[data-member="${stopped.peerId}"]`).first()
    assert.match(await arc.getAttribute('class') ?? '', /state-(suspect|down)/)
    assert.match(await page.locator('#ring-members').textContent() ?? '', /2 of 3 members up/)
    // N = 3 on 3 members: every partition lost one replica, none its quorum.
    const health = page.locator('#health-text')
    assert.equal(await health.getAttribute('data-degraded'), '4096')
    assert.equal(await health.getAttribute('data-short'), '0')
    assert.equal(await page.locator('#health path[data-health="full"]').count(), 0)
    assert.equal(await page.locator('#health path[data-health="quorum"]').count(), 1)
    // The others stay up on the page.
    for (const node of nodes.slice(0, 2)) {
      assert.equal(await page.locator(`#members tr[data-member="${node.peerId}"]`).getAttribute('data-state'), 'up')
    }
    if (process.env.SHOAL_SCREENSHOT === '1') {
      await eventually('the stopped node is down', async () => await row.getAttribute('data-state') === 'down', 30_000, 200)
      await mkdir(docs, { recursive: true })
      await page.screenshot({ path: join(docs, 'status-page.png'), fullPage: true })
    }
  })

  it('says so when the node it polls stops answering', async () => {
    await processes.stop(nodes[0]!.process)
    await eventually('the page is marked not live', async () => await page.locator('#live').getAttribute('data-live') === 'false', 15_000, 200)
    assert.match(await page.locator('#live').innerText(), /no answer|unreachable/)
  })
})
