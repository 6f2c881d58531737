import assert from 'node:assert/strict'
import { keyHash, ringPosition, topBits } from '../../src/core/hash.ts'
import { toBytes } from '../../src/core/bytes.ts'

describe('hash', () => {
  it('places a key at the same position every time and partitions by the top bits', () => {
    const h = keyHash(toBytes('user:42'))
    assert.equal(ringPosition(h), ringPosition(keyHash(toBytes('user:42'))))
    assert.equal(BigInt(topBits(h, 10)), ringPosition(h) >> 54n)
    assert.equal(topBits(h, 0), 0)
  })
})
