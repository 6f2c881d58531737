import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IDENTITY_FILE, loadOrCreateIdentity } from '../../src/store/identity.ts'

describe('identity', () => {
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-identity-'))
  })

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('is created once and a reload gives the same peer id', async () => {
    const dataDir = join(dir, 'data') // not there yet: created on the way
    const first = await loadOrCreateIdentity(dataDir)
    assert.equal(first.created, true)
    assert.equal(first.privateKey.type, 'Ed25519')
    assert.deepEqual(await readdir(dataDir), [IDENTITY_FILE], 'no temporary file left behind')
    if (process.platform !== 'win32') assert.equal((await stat(join(dataDir, IDENTITY_FILE))).mode & 0o777, 0o600)

    const second = await loadOrCreateIdentity(dataDir)
    assert.equal(second.created, false)
    assert.ok(second.peerId.equals(first.peerId))
    assert.ok(second.privateKey.equals(first.privateKey))
  })

  it('concurrent first starts agree on one key', async () => {
    const results = await Promise.all(Array.from({ length: 4 }, async () => loadOrCreateIdentity(dir)))
    const ids = new Set(results.map(r => r.peerId.toString()))
    assert.equal(ids.size, 1)
    assert.deepEqual(await readdir(dir), [IDENTITY_FILE])
  })

  for (const [what, bytes] of [
    ['garbage', new TextEncoder().encode('not a key\n')],
    ['an empty file', new Uint8Array(0)],
    ['a truncated key', new Uint8Array([8, 1, 18, 3, 1, 2, 3])]
  ] as const) {
    it(`a key file holding ${what} fails with InvalidIdentityError and is left untouched`, async () => {
      const path = join(dir, IDENTITY_FILE)
      await writeFile(path, bytes)
      await assert.rejects(loadOrCreateIdentity(dir), (err: Error) => {
        assert.equal(err.name, 'InvalidIdentityError')
        assert.ok(err.message.includes(path))
        return true
      })
      assert.deepEqual(new Uint8Array(await readFile(path)), bytes)
      assert.deepEqual(await readdir(dir), [IDENTITY_FILE])
    })
  }
})
