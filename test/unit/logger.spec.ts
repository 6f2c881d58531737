import assert from 'node:assert/strict'
import { libp2pLogger, silentLogger } from '../../src/net/logger.ts'

describe('libp2p logging', () => {
  it('is silent, and free, unless DEBUG asks for logs; then libp2p keeps its own', () => {
    assert.equal(libp2pLogger({}), silentLogger)
    assert.equal(libp2pLogger({ DEBUG: '' }), silentLogger)
    assert.equal(libp2pLogger({ DEBUG: 'libp2p:*' }), undefined)
  })

  it('hands out loggers that do nothing, at any scope', () => {
    const log = silentLogger.forComponent('libp2p:yamux')
    assert.equal(log.enabled, false)
    const scoped = log.newScope('stream')
    assert.equal(scoped.enabled, false)
    assert.doesNotThrow(() => { scoped('a %s', 'message'); scoped.error(new Error('x')); scoped.trace('t') })
  })
})
