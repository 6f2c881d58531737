import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

describe('the package', () => {
  it("is importable as 'shoal' from its built JavaScript, and the README's example runs", async () => {
    const shoal = await import('shoal')
    const ring = new shoal.Ring([{ id: 'alpha', weight: 1 }, { id: 'beta', weight: 1 }, { id: 'gamma', weight: 1 }])
    assert.deepEqual([...ring.owners(ring.partitionOf(shoal.toBytes('user:42')))].sort(), ['alpha', 'beta', 'gamma'])
    const a = shoal.update(undefined, new Map(), 'replica-a', shoal.toBytes('red'), 1)
    const b = shoal.update(undefined, new Map(), 'replica-b', shoal.toBytes('blue'), 2)
    const both = shoal.merge(a, b)
    assert.equal(shoal.values(both).length, 2)
    const resolved = shoal.update(both, shoal.decodeContext(shoal.encodeContext(both.vv)), 'replica-a', shoal.toBytes('purple'), 3)
    assert.deepEqual(shoal.values(resolved).map(v => new TextDecoder().decode(v)), ['purple'])
    assert.ok(import.meta.resolve('shoal').includes('/dist/'), 'the package entry must be built JavaScript')
  })

  it('the built package starts a node and a client peer that write and read', async () => {
    const { createNode, createClient } = await import('shoal')
    const dataDir = await mkdtemp(join(tmpdir(), 'shoal-package-'))
    const node = await createNode({ dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], n: 1, r: 1, w: 1 })
    try {
      await node.put('greeting', 'hello')
      const client = await createClient({ bootstrap: [node.addrs[0] ?? ''] })
      try {
        const read = await client.get('greeting')
        assert.deepEqual(read?.siblings.map(v => new TextDecoder().decode(v)), ['hello'])
      } finally {
        await client.stop()
      }
    } finally {
      await node.stop()
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('`shoal --help` lists the commands and exits 0; an unknown command is a usage error (exit 2)', () => {
    const help = spawnSync(process.execPath, ['bin/shoal.js', '--help'], { cwd: root, encoding: 'utf8' })
    assert.equal(help.status, 0)
    for (const command of ['start', 'put', 'get', 'delete', 'status', 'leave', 'dev']) assert.match(help.stdout, new RegExp(`shoal ${command}`))
    const bad = spawnSync(process.execPath, ['bin/shoal.js', 'frobnicate'], { cwd: root, encoding: 'utf8' })
    assert.equal(bad.status, 2)
    assert.match(bad.stderr, /unknown command "frobnicate"/)
  })
})
