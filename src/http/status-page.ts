/**
 * The status page the gateway serves at `/`: one self-contained HTML document (inline CSS, script
 * and SVG; nothing fetched but /stats, no build step). It polls /stats every second and draws
 * the ring as a circle of partitions coloured by owner (outer band: primaries; inner bands: the
 * other replicas), the members with their state, requests, a sparkline of recent p50 and p99
 * latency, hints, anti-entropy and handoff.
 *
 * Elements carry data attributes for tests and scripts: `[data-member="<peer id>"]` rows with
 * `data-state`, `#ring path[data-member]`, `#live[data-live]`.
 *
 * The script avoids backticks and dollar-brace so this file can hold it in a template literal.
 */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shoal status</title>
<link rel="icon" href="data:,">
<style>
  :root {
    --bg: #0f1419; --panel: #171e26; --line: #263241; --text: #d9e1ea; --dim: #8596a8;
    --up: #3fb950; --suspect: #d29922; --down: #f85149; --leaving: #58a6ff; --left: #6e7781;
  }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
  header { display: flex; align-items: baseline; gap: 16px; flex-wrap: wrap; padding: 14px 24px; border-bottom: 1px solid var(--line); }
  header h1 { margin: 0; font-size: 20px; letter-spacing: .5px; }
  header .sub { color: var(--dim); }
  header .spacer { flex: 1; }
  #live { font-size: 13px; padding: 2px 10px; border-radius: 10px; background: #1f3326; color: var(--up); }
  #live[data-live="false"] { background: #3a1d1f; color: var(--down); }
  main { display: grid; grid-template-columns: minmax(380px, 480px) 1fr; gap: 20px; padding: 20px 24px; }
  .panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
  .panel h2 { margin: 0 0 10px; font-size: 12px; text-transform: uppercase; letter-spacing: 1px; color: var(--dim); font-weight: 600; }
  #ring { width: 100%; height: auto; display: block; }
  #ring path { transition: opacity .4s; }
  #ring .state-suspect { opacity: .5; }
  #ring .state-down, #ring .state-left { opacity: .18; }
  #ring .state-leaving { opacity: .75; }
  #ring text { fill: var(--text); text-anchor: middle; }
  #health-text { margin-top: 8px; font-size: 13px; }
  #tip { margin-top: 4px; min-height: 20px; color: var(--dim); font-size: 12px; font-family: ui-monospace, Menlo, monospace; word-break: break-all; }
  .right { display: flex; flex-direction: column; gap: 20px; min-width: 0; }
  table { width: 100%; border-collapse: collapse; }
  th { text-align: left; font-weight: 500; color: var(--dim); font-size: 12px; padding: 4px 8px; border-bottom: 1px solid var(--line); }
  td { padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: middle; }
  td.id { font-family: ui-monospace, Menlo, monospace; font-size: 12px; word-break: break-all; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .swatch { display: inline-block; width: 14px; height: 14px; border-radius: 3px; }
  .pill { display: inline-block; min-width: 64px; text-align: center; padding: 1px 8px; border-radius: 9px; font-size: 12px; font-weight: 600; color: #0f1419; }
  .pill.up { background: var(--up); } .pill.suspect { background: var(--suspect); } .pill.down { background: var(--down); }
  .pill.leaving { background: var(--leaving); } .pill.left { background: var(--left); }
  .self { color: var(--dim); font-size: 11px; margin-left: 6px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 20px; }
  .big { font-size: 28px; font-weight: 600; font-variant-numeric: tabular-nums; }
  .unit { font-size: 13px; color: var(--dim); font-weight: 400; margin-left: 4px; }
  .kv { display: grid; grid-template-columns: 1fr auto; gap: 2px 12px; margin-top: 6px; font-size: 13px; }
  .kv span:nth-child(odd) { color: var(--dim); }
  .kv span:nth-child(even) { text-align: right; font-variant-numeric: tabular-nums; }
  .spark { width: 100%; height: 64px; display: block; margin-top: 6px; }
  .legend { font-size: 12px; color: var(--dim); }
  .legend b { font-weight: 600; }
  .legend.scale { font-size: 11px; margin-top: 2px; }
  .p50 { color: #58a6ff; } .p99 { color: #f0883e; }
  .bar { height: 6px; background: var(--line); border-radius: 3px; overflow: hidden; margin-top: 8px; }
  .bar > div { height: 100%; width: 100%; }
  .bar > div.done { background: var(--up); }
  .bar > div.running { width: 30%; background: var(--suspect); animation: slide 1.2s ease-in-out infinite alternate; }
  @keyframes slide { from { margin-left: 0; } to { margin-left: 70%; } }
  .warn { color: var(--suspect); }
  @media (max-width: 900px) { main { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header>
  <h1>Shoal</h1>
  <span class="sub">cluster <b id="cluster">-</b></span>
  <span class="sub">seen from <span id="self">-</span></span>
  <span class="sub">up <span id="uptime">-</span></span>
  <span class="spacer"></span>
  <span id="live" data-live="false">connecting</span>
</header>
<main>
  <section class="panel">
    <h2>Ring</h2>
    <svg id="ring" viewBox="0 0 440 440" role="img" aria-label="the ring: partitions coloured by owner">
      <g id="bands"></g>
      <text x="220" y="205" font-size="30" font-weight="600" id="ring-partitions">-</text>
      <text x="220" y="228" font-size="13" fill-opacity=".7" id="ring-caption">partitions</text>
      <text x="220" y="252" font-size="13" fill-opacity=".7" id="ring-members">-</text>
      <g id="health"></g>
    </svg>
    <div id="health-text" class="legend">-</div>
    <div id="tip">outer band: each partition's primary; inner bands: its other replicas; innermost: replicas up (green all, amber enough for R and W, red too few). Point at a partition.</div>
  </section>
  <div class="right">
    <section class="panel">
      <h2>Members</h2>
      <table>
        <thead><tr><th></th><th>peer id</th><th>state</th><th style="text-align:right">partitions</th><th style="text-align:right">share</th></tr></thead>
        <tbody id="members"></tbody>
      </table>
    </section>
    <div class="cards">
      <section class="panel">
        <h2>Requests</h2>
        <div class="big"><span id="rate">0</span><span class="unit">req/s coordinated</span></div>
        <div class="kv" id="requests"></div>
      </section>
      <section class="panel">
        <h2>Latency, get</h2>
        <div class="legend"><b class="p50">p50</b> <span id="get-p50">-</span> &nbsp; <b class="p99">p99</b> <span id="get-p99">-</span></div>
        <div class="legend scale" id="get-max"></div>
        <svg class="spark" id="spark-get" viewBox="0 0 240 64" preserveAspectRatio="none"></svg>
      </section>
      <section class="panel">
        <h2>Latency, put</h2>
        <div class="legend"><b class="p50">p50</b> <span id="put-p50">-</span> &nbsp; <b class="p99">p99</b> <span id="put-p99">-</span></div>
        <div class="legend scale" id="put-max"></div>
        <svg class="spark" id="spark-put" viewBox="0 0 240 64" preserveAspectRatio="none"></svg>
      </section>
      <section class="panel">
        <h2>Hinted handoff</h2>
        <div class="big"><span id="hints-pending">0</span><span class="unit">hints pending</span></div>
        <div class="kv" id="hints"></div>
      </section>
      <section class="panel">
        <h2>Anti-entropy</h2>
        <div class="big"><span id="ae-exchanges">0</span><span class="unit">exchanges</span></div>
        <div class="kv" id="ae"></div>
        <div class="bar" title="start-up check of stored Merkle trees"><div id="ae-bar"></div></div>
      </section>
      <section class="panel">
        <h2>Repairs and handoff</h2>
        <div class="big"><span id="read-repairs">0</span><span class="unit">read repairs</span></div>
        <div class="kv" id="handoff"></div>
      </section>
    </div>
  </div>
</main>
<script>
(function () {
'use strict'
var PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#b07aa1', '#76b7b2', '#edc948', '#ff9da7', '#9c755f', '#bab0ac',
  '#1f77b4', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#dbdb8d', '#9edae5']
var SVG = 'http://www.w3.org/2000/svg'
var HISTORY = 60
var samples = []
var last = null
var ringKey = ''
var ring = null
var lastOk = 0

function $ (id) { return document.getElementById(id) }
function colour (i) { return i < 0 ? '#30363d' : PALETTE[i % PALETTE.length] }
function fmtMs (ms) { return ms >= 100 ? ms.toFixed(0) + ' ms' : ms >= 10 ? ms.toFixed(1) + ' ms' : ms.toFixed(2) + ' ms' }
function fmtInt (n) { return Number(n).toLocaleString('en-US') }
function fmtDuration (ms) {
  var s = Math.floor(ms / 1000)
  if (s < 60) return s + ' s'
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s'
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min'
}
function shortId (id) { return id.length > 16 ? id.slice(0, 8) + '\\u2026' + id.slice(-6) : id }

function kv (el, rows) {
  el.textContent = ''
  rows.forEach(function (row) {
    var k = document.createElement('span'); k.textContent = row[0]
    var v = document.createElement('span'); v.textContent = row[1]
    if (row[2]) v.className = row[2]
    el.appendChild(k); el.appendChild(v)
  })
}

// One path per band and member: thousands of partitions, a handful of SVG elements.
function arc (cx, cy, r0, r1, a0, a1) {
  // An arc whose ends meet draws nothing in SVG: a whole circle (one owner, one health) is two halves.
  if (a1 - a0 > Math.PI) return arc(cx, cy, r0, r1, a0, (a0 + a1) / 2) + arc(cx, cy, r0, r1, (a0 + a1) / 2, a1)
  var large = a1 - a0 > Math.PI ? 1 : 0
  var c0 = Math.cos(a0), s0 = Math.sin(a0), c1 = Math.cos(a1), s1 = Math.sin(a1)
  return 'M' + (cx + r1 * c0).toFixed(2) + ' ' + (cy + r1 * s0).toFixed(2) +
    'A' + r1 + ' ' + r1 + ' 0 ' + large + ' 1 ' + (cx + r1 * c1).toFixed(2) + ' ' + (cy + r1 * s1).toFixed(2) +
    'L' + (cx + r0 * c1).toFixed(2) + ' ' + (cy + r0 * s1).toFixed(2) +
    'A' + r0 + ' ' + r0 + ' 0 ' + large + ' 0 ' + (cx + r0 * c0).toFixed(2) + ' ' + (cy + r0 * s0).toFixed(2) + 'Z'
}

function drawRing (r) {
  var g = $('bands')
  g.textContent = ''
  var q = r.partitions
  var bands = [[168, 212]]
  for (var k = 1; k < r.n; k++) bands.push([168 - k * 22, 168 - k * 22 + 18])
  var step = 2 * Math.PI / q
  var start = -Math.PI / 2
  r.owners.forEach(function (owners, k) {
    var band = bands[k]
    if (band === undefined) return
    var paths = {}
    var p = 0
    while (p < q) {
      var who = owners[p]
      var end = p + 1
      while (end < q && owners[end] === who) end++
      var d = arc(220, 220, band[0], band[1], start + p * step, start + end * step)
      paths[who] = (paths[who] || '') + d
      p = end
    }
    Object.keys(paths).forEach(function (who) {
      var path = document.createElementNS(SVG, 'path')
      var i = Number(who)
      path.setAttribute('d', paths[who])
      path.setAttribute('fill', colour(i))
      if (i >= 0) path.setAttribute('data-member', r.members[i])
      path.setAttribute('data-band', String(k))
      g.appendChild(path)
    })
  })
  $('ring-partitions').textContent = fmtInt(q)
  $('ring-caption').textContent = 'partitions \\u00b7 N = ' + r.n
}

var HEALTH = [108, 118]
var HEALTH_COLOURS = { full: '#3fb950', quorum: '#d29922', short: '#f85149' }

// Per partition, how many of its owners are up: the operator's question when a member goes down.
function drawHealth (s) {
  var g = $('health')
  g.textContent = ''
  var r = s.ring
  var states = {}
  s.members.forEach(function (m) { states[m.peerId] = m.state })
  var quorum = Math.max(s.replication.r, s.replication.w)
  var kind = new Array(r.partitions)
  var counts = { full: 0, quorum: 0, short: 0 }
  for (var p = 0; p < r.partitions; p++) {
    var live = 0
    for (var k = 0; k < r.owners.length; k++) {
      var i = r.owners[k][p]
      if (i >= 0 && states[r.members[i]] === 'up') live++
    }
    kind[p] = live >= r.n ? 'full' : live >= quorum ? 'quorum' : 'short'
    counts[kind[p]]++
  }
  var step = 2 * Math.PI / r.partitions
  var start = -Math.PI / 2
  var paths = {}
  var q = 0
  while (q < r.partitions) {
    var end = q + 1
    while (end < r.partitions && kind[end] === kind[q]) end++
    paths[kind[q]] = (paths[kind[q]] || '') + arc(220, 220, HEALTH[0], HEALTH[1], start + q * step, start + end * step)
    q = end
  }
  Object.keys(paths).forEach(function (k) {
    var path = document.createElementNS(SVG, 'path')
    path.setAttribute('d', paths[k])
    path.setAttribute('fill', HEALTH_COLOURS[k])
    path.setAttribute('data-health', k)
    g.appendChild(path)
  })
  var el = $('health-text')
  el.setAttribute('data-short', String(counts.short))
  el.setAttribute('data-degraded', String(counts.quorum))
  if (counts.quorum === 0 && counts.short === 0) {
    el.textContent = 'every partition has all ' + r.n + ' replicas up'
    el.className = 'legend'
  } else {
    el.textContent = fmtInt(counts.quorum) + ' partitions short of a replica (R and W still met), ' +
      fmtInt(counts.short) + ' with fewer than ' + quorum + ' replicas up'
    el.className = 'legend warn'
  }
}

function partitionAt (evt) {
  var svg = $('ring')
  var box = svg.getBoundingClientRect()
  var x = (evt.clientX - box.left) / box.width * 440 - 220
  var y = (evt.clientY - box.top) / box.height * 440 - 220
  var dist = Math.sqrt(x * x + y * y)
  if (ring === null || dist < HEALTH[0] || dist > 212) return -1
  var angle = Math.atan2(y, x) + Math.PI / 2
  if (angle < 0) angle += 2 * Math.PI
  return Math.min(ring.partitions - 1, Math.floor(angle / (2 * Math.PI) * ring.partitions))
}

$('ring').addEventListener('mousemove', function (evt) {
  var p = partitionAt(evt)
  if (p < 0) return
  var names = ring.owners.map(function (row) { return row[p] < 0 ? '-' : shortId(ring.members[row[p]]) })
  $('tip').textContent = 'partition ' + p + ': ' + names.join(', ')
})

function drawMembers (s) {
  var body = $('members')
  body.textContent = ''
  var total = 0
  s.members.forEach(function (m) { total += m.partitions })
  var members = s.members.slice().sort(function (a, b) { return a.peerId < b.peerId ? -1 : 1 })
  members.forEach(function (m) {
    var tr = document.createElement('tr')
    tr.setAttribute('data-member', m.peerId)
    tr.setAttribute('data-state', m.state)
    var i = s.ring.members.indexOf(m.peerId)
    var sw = document.createElement('td'); var box = document.createElement('span')
    box.className = 'swatch'; box.style.background = colour(i); sw.appendChild(box)
    var id = document.createElement('td'); id.className = 'id'; id.textContent = m.peerId
    if (m.peerId === s.peerId) { var me = document.createElement('span'); me.className = 'self'; me.textContent = '(this node)'; id.appendChild(me) }
    var st = document.createElement('td'); var pill = document.createElement('span')
    pill.className = 'pill ' + m.state; pill.textContent = m.state; st.appendChild(pill)
    var parts = document.createElement('td'); parts.className = 'num'; parts.textContent = fmtInt(m.partitions)
    var share = document.createElement('td'); share.className = 'num'
    share.textContent = total > 0 ? (100 * m.partitions / total).toFixed(1) + ' %' : '-'
    ;[sw, id, st, parts, share].forEach(function (td) { tr.appendChild(td) })
    body.appendChild(tr)
  })
  var states = {}
  s.members.forEach(function (m) { states[m.peerId] = m.state })
  document.querySelectorAll('#bands path[data-member]').forEach(function (path) {
    path.setAttribute('class', 'state-' + (states[path.getAttribute('data-member')] || 'left'))
  })
  var up = s.members.filter(function (m) { return m.state === 'up' }).length
  $('ring-members').textContent = up + ' of ' + s.members.length + ' members up'
}

function spark (id, op) {
  var svg = $(id)
  svg.textContent = ''
  var points = samples.map(function (h) { return h.latency[op] })
  var max = 1
  points.forEach(function (p) { if (p.p99 > max) max = p.p99 })
  max = max * 1.15
  ;[['p99', '#f0883e'], ['p50', '#58a6ff']].forEach(function (line) {
    var d = ''
    points.forEach(function (p, i) {
      var x = (HISTORY - points.length + i) * 240 / (HISTORY - 1)
      var y = 62 - p[line[0]] / max * 58
      d += (d === '' ? 'M' : 'L') + x.toFixed(1) + ' ' + y.toFixed(1)
    })
    var path = document.createElementNS(SVG, 'path')
    path.setAttribute('d', d)
    path.setAttribute('fill', 'none')
    path.setAttribute('stroke', line[1])
    path.setAttribute('stroke-width', '2')
    path.setAttribute('vector-effect', 'non-scaling-stroke')
    svg.appendChild(path)
  })
  $(op + '-max').textContent = 'top of graph ' + fmtMs(max) + ', last ' + points.length + ' s'
  var now = points[points.length - 1]
  var idle = now === undefined || (now.p50 === 0 && now.p99 === 0)
  $(op + '-p50').textContent = idle ? 'idle' : fmtMs(now.p50)
  $(op + '-p99').textContent = idle ? 'idle' : fmtMs(now.p99)
}

function render (s) {
  $('cluster').textContent = s.cluster
  $('self').textContent = shortId(s.peerId) + (s.state === 'up' ? '' : ' (' + s.state + ')')
  $('self').title = s.peerId
  $('uptime').textContent = fmtDuration(s.uptimeMs)
  var key = s.ring.members.join(',') + '/' + s.ring.partitions + '/' + s.ring.n + '/' + s.ring.owners.map(function (o) { return o.join('') }).join('|')
  if (key !== ringKey) { ringKey = key; ring = s.ring; drawRing(s.ring) }
  drawMembers(s)
  drawHealth(s)

  var now = Date.now()
  var total = 0
  var ops = ['get', 'put', 'delete']
  ops.forEach(function (op) { total += s.requests[op].ok + s.requests[op].failed + s.requests[op].rejected })
  var rate = last === null ? 0 : Math.max(0, (total - last.total) / ((now - last.at) / 1000))
  last = { total: total, at: now }
  $('rate').textContent = rate >= 100 ? rate.toFixed(0) : rate.toFixed(1)
  kv($('requests'), ops.map(function (op) {
    var r = s.requests[op]
    var extra = (r.failed > 0 ? ', ' + fmtInt(r.failed) + ' failed' : '') + (r.rejected > 0 ? ', ' + fmtInt(r.rejected) + ' rejected' : '')
    return [op, fmtInt(r.ok) + ' ok' + extra, r.failed > 0 ? 'warn' : '']
  }).concat([['replica reads / writes served', fmtInt(s.replicaRequests.read) + ' / ' + fmtInt(s.replicaRequests.write)]]))

  samples.push({ latency: s.latencyMs })
  if (samples.length > HISTORY) samples.shift()
  spark('spark-get', 'get')
  spark('spark-put', 'put')

  $('hints-pending').textContent = fmtInt(s.hints.pending)
  kv($('hints'), [['delivered', fmtInt(s.hints.delivered)], ['dropped (undecodable)', fmtInt(s.hints.dropped)]])

  var ae = s.antiEntropy
  $('ae-exchanges').textContent = fmtInt(ae.exchanges)
  kv($('ae'), [
    ['keys repaired', fmtInt(ae.keysRepaired)],
    ['failed / deferred', fmtInt(ae.failed) + ' / ' + fmtInt(ae.deferred), ae.failed > 0 ? 'warn' : ''],
    ['interval', fmtDuration(ae.intervalMs)],
    ['trees checked at start', ae.treesChecked ? 'done, ' + fmtInt(ae.treesVerified) + ' (' + fmtInt(ae.treesRebuilt) + ' rebuilt)' : 'checking, ' + fmtInt(ae.treesVerified) + ' so far']
  ])
  var bar = $('ae-bar')
  // The start-up check does not know its total in advance: a full bar once done, a moving one while it runs.
  bar.className = ae.treesChecked ? 'done' : 'running'

  $('read-repairs').textContent = fmtInt(s.readRepairs)
  kv($('handoff'), [
    ['partitions to hand off', fmtInt(s.handoff.pending), s.handoff.pending > 0 ? 'warn' : ''],
    ['partitions handed off', fmtInt(s.handoff.partitions)],
    ['keys handed off', fmtInt(s.handoff.keysSent)],
    ['tombstones purged', fmtInt(s.tombstones.purged)]
  ])
}

function setLive (ok, why) {
  var live = $('live')
  live.setAttribute('data-live', ok ? 'true' : 'false')
  live.textContent = ok ? 'live' : why
}

function poll () {
  var controller = new AbortController()
  var timer = setTimeout(function () { controller.abort() }, 2500)
  fetch('/stats', { cache: 'no-store', signal: controller.signal })
    .then(function (res) { if (!res.ok) throw new Error('HTTP ' + res.status); return res.json() })
    .then(function (s) { render(s); lastOk = Date.now(); setLive(true) })
    .catch(function () { setLive(false, lastOk === 0 ? 'node unreachable' : 'no answer for ' + fmtDuration(Date.now() - lastOk)) })
    .finally(function () { clearTimeout(timer); setTimeout(poll, 1000) })
}
poll()
})()
</script>
</body>
</html>
`
