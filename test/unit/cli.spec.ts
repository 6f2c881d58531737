import assert from 'node:assert/strict'
import { stripVTControlCharacters } from 'node:util'
import fc from 'fast-check'
import { QuorumError, TimeoutError, UnreachableError } from '../../src/core/errors.ts'
import { DataDirectoryInUseError } from '../../src/store/errors.ts'
import { KeyFileError, UsageError, describeFailure } from '../../src/cli/failure.ts'
import { commandHelp, overview } from '../../src/cli/help.ts'
import { commandNames, commandTable, usage } from '../../src/cli/main.ts'
import { bytes, shortPeerIds, statusView } from '../../src/cli/status-view.ts'
import { closest, editDistance } from '../../src/cli/suggest.ts'
import { renderTable, useColor, visibleWidth } from '../../src/cli/table.ts'
import type { NodeStatus } from '../../src/node.ts'

const check = { seed: 20251125, endOnFailure: true }

const A = '12D3KooWFzEdiGhWUVQnBacCk5tCJFj4Jck8FyBzQJkiEDvQDj7b'
const B = '12D3KooWGhwHGnkj3vtgduCTx3X8JoCVGNr6MWPZqLEU67LsDhp6'
const C = '12D3KooWAryBHrCjZqoaP4ZW5V8R7KczF9k6chi4MXkWg8iLWqpW'

function nodeStatus (members: NodeStatus['members']): NodeStatus {
  return {
    peerId: A,
    cluster: 'shoal',
    addrs: [`/ip4/127.0.0.1/tcp/4001/p2p/${A}`],
    state: 'up',
    members,
    hintsPending: 7,
    hintsDelivered: 3,
    hintsDropped: 0,
    antiEntropy: { exchanges: 12, failed: 1, deferred: 0, keysRepaired: 5, bytesSent: 3500, bytesReceived: 2_500_000, treesVerified: 4, treesRebuilt: 0, treesChecked: true, intervalMs: 10_000 },
    handoff: { pending: 2, partitions: 9, keysSent: 40, keysDropped: 0 },
    tombstones: { purged: 6, kept: 1 },
    replication: { n: 3, r: 2, w: 2 }
  }
}

const members: NodeStatus['members'] = [
  { peerId: A, state: 'up', addrs: [`/ip4/127.0.0.1/tcp/4001/p2p/${A}`, '/ip4/10.0.0.1/tcp/4001'], partitions: 4096 },
  { peerId: B, state: 'suspect', addrs: ['/ip4/127.0.0.1/tcp/4002'], partitions: 4096 },
  { peerId: C, state: 'down', addrs: ['/ip4/127.0.0.1/tcp/4003'], partitions: 4096 }
]

describe('the shoal command line, piece by piece', () => {
  describe('did you mean', () => {
    it('suggests the command or option one typo away, a transposition counting as one', () => {
      const commands = ['start', 'put', 'get', 'delete', 'status', 'leave', 'remove', 'dev', 'psk', 'help']
      assert.equal(closest('stauts', commands), 'status')
      assert.equal(closest('statsu', commands), 'status')
      assert.equal(closest('delte', commands), 'delete')
      assert.equal(closest('STATUS', commands), 'status')
      assert.equal(closest('remvoe', commands), 'remove')
      assert.equal(closest('lcoal', ['r', 'local', 'json']), 'local')
      assert.equal(closest('bootstrp', ['bootstrap', 'listen']), 'bootstrap')
    })

    it('says nothing rather than a wild guess, and never guesses one short name for another', () => {
      assert.equal(closest('frobnicate', ['start', 'put', 'get', 'status']), undefined)
      assert.equal(closest('w', ['r', 'json']), undefined, 'w is not a typo of r')
      assert.equal(closest('x', ['r', 'w']), undefined)
      assert.equal(closest('wai', ['wait', 'json']), 'wait', 'a prefix of exactly one candidate')
      assert.equal(closest('re', ['remove', 'r', 'rest']), undefined, 'a prefix of two is ambiguous')
    })

    it('edit distance is a metric with transpositions of cost one', () => {
      fc.assert(fc.property(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), (a, b) => {
        const d = editDistance(a, b)
        assert.equal(d, editDistance(b, a))
        assert.equal(d === 0, a === b)
        assert.ok(d <= Math.max(a.length, b.length))
      }), check)
      assert.equal(editDistance('ab', 'ba'), 1)
      assert.equal(editDistance('kitten', 'sitting'), 3)
    })
  })

  describe('tables and colour', () => {
    it('pads every column to its widest cell, colour codes taking no width, and no line ends in spaces', () => {
      const red = '\u001b[31mdown\u001b[39m'
      const lines = renderTable(['A', 'STATE', 'N'], [['x', red, '1'], ['longer', 'up', '100']], { right: [2] })
      const plain = lines.map(l => stripVTControlCharacters(l))
      assert.deepEqual(plain, ['A       STATE    N', 'x       down     1', 'longer  up     100'])
      assert.equal(visibleWidth(red), 4)
      for (const line of lines) assert.equal(line, line.trimEnd())
    })

    it('colours only a terminal with colours, never with NO_COLOR, always with FORCE_COLOR', () => {
      const tty = { isTTY: true, hasColors: () => true }
      const pipe = { isTTY: false }
      assert.equal(useColor(tty, {}), true)
      assert.equal(useColor(pipe, {}), false)
      assert.equal(useColor({ isTTY: true, hasColors: () => false }, {}), false, 'a dumb terminal')
      assert.equal(useColor(tty, { NO_COLOR: '1' }), false)
      assert.equal(useColor(tty, { NO_COLOR: '' }), true, 'an empty NO_COLOR is unset (no-color.org)')
      assert.equal(useColor(pipe, { FORCE_COLOR: '1' }), true)
      assert.equal(useColor(pipe, { FORCE_COLOR: '0' }), false)
      assert.equal(useColor(tty, { FORCE_COLOR: '1', NO_COLOR: '1' }), false, 'NO_COLOR wins')
    })
  })

  describe('shoal status as a table', () => {
    it('shortens peer IDs to a tail that tells every member apart', () => {
      const short = shortPeerIds([A, B, C])
      assert.equal(short.get(A), `12D3…${A.slice(-6)}`)
      assert.equal(new Set(short.values()).size, 3)
      const twins = ['12D3KooWxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxAAAAAAAAAA', '12D3KooWyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyBAAAAAAAAA']
      const apart = shortPeerIds(twins)
      assert.notEqual(apart.get(twins[0]!), apart.get(twins[1]!), 'a longer tail when the last 6 characters collide')
      for (const [id, s] of apart) assert.ok(id.endsWith(s.split('…')[1]!))
    })

    it('shows every member with its state, partitions and address, and the figures below', () => {
      const out = statusView(nodeStatus(members))
      assert.doesNotMatch(out, /\u001b\[/, 'no colour unless asked')
      const lines = out.split('\n')
      assert.match(lines[0]!, /^cluster shoal, N=3 R=2 W=2: 3 members \(1 up, 1 suspect, 1 down\)$/)
      const header = lines.findIndex(l => l.startsWith('MEMBER'))
      assert.match(lines[header]!, /^MEMBER\s+STATE\s+PARTITIONS\s+ADDRESS$/)
      const rows = lines.slice(header + 1, header + 4)
      for (const [i, m] of members.entries()) {
        const row = rows[i]!
        assert.ok(row.startsWith(`12D3…${m.peerId.slice(-6)}`), row)
        assert.match(row, new RegExp(`\\s${m.state}\\s+4096 \\(100%\\)\\s+/ip4/127\\.0\\.0\\.1/tcp/400${i + 1}`))
        assert.ok(!row.includes('/p2p/'), 'the address without the peer ID, which is in the first column')
      }
      assert.match(rows[0]!, /\* /, 'the answering member is marked')
      assert.match(rows[0]!, /\(\+1\)$/, 'a second address is counted')
      assert.match(out, /^hints\s+7 pending, 3 delivered$/m)
      assert.match(out, /^anti-entropy\s+12 exchanges \(1 failed, 0 deferred\), 5 keys repaired, 3\.4 KiB sent, 2\.4 MiB received; trees checked, every 10 s$/m)
      assert.match(out, /^handoff\s+2 partitions pending, 9 handed off \(40 keys sent\)$/m)
      assert.match(out, /^tombstones\s+6 purged, 1 kept$/m)
    })

    it('a member\'s share is the part of the ring it holds a replica of: all of it up to N members, less beyond', () => {
      const five = Array.from({ length: 5 }, (_, i) => ({ peerId: `12D3KooW${'x'.repeat(40)}member${i}`, state: 'up' as const, addrs: [`/ip4/127.0.0.1/tcp/${4001 + i}`], partitions: [2458, 2458, 2457, 2457, 2458][i]! }))
      const out = statusView(nodeStatus(five))
      assert.equal((out.match(/ \(60%\) /g) ?? []).length, 5, out)
      const left = [...members.slice(0, 2), { ...members[2]!, state: 'left' as const, partitions: 0 }]
      assert.match(statusView(nodeStatus(left)), /\sleft\s+0 \(0%\)/, 'a member that left holds nothing; the others still hold all')
      assert.equal((statusView(nodeStatus(left)).match(/4096 \(100%\)/g) ?? []).length, 2)
    })

    it('--wide shows full peer IDs and dialable addresses; colour paints only the states', () => {
      const wide = statusView(nodeStatus(members), { wide: true })
      for (const m of members) assert.match(wide, new RegExp(`^${m.peerId}`, 'm'))
      assert.ok(wide.includes(`/ip4/127.0.0.1/tcp/4002/p2p/${B}`), 'an address without /p2p/ gets it')
      assert.ok(wide.includes(`/ip4/10.0.0.1/tcp/4001/p2p/${A}`), 'every address')
      const colored = statusView(nodeStatus(members), { color: true })
      assert.ok(colored.includes('\u001b[32mup\u001b[39m'), 'up is green')
      assert.ok(colored.includes('\u001b[33msuspect\u001b[39m'), 'suspect is yellow')
      assert.ok(colored.includes('\u001b[31mdown\u001b[39m'), 'down is red')
      assert.equal(stripVTControlCharacters(colored), statusView(nodeStatus(members)), 'colour changes nothing else, alignment included')
    })

    it('bytes read as a person says them', () => {
      assert.deepEqual([0, 1023, 1024, 1536, 5 * 1024 ** 2, 3 * 1024 ** 3].map(bytes), ['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '5.0 MiB', '3.0 GiB'])
    })
  })

  describe('errors say what to do next, in one line', () => {
    const oneLine = (line: string): void => {
      assert.ok(line.startsWith('shoal: '), line)
      assert.ok(!line.includes('\n'), line)
    }

    it('an unreachable node: is it running, and where the address came from', () => {
      const err = new UnreachableError('no bootstrap member could be reached (/ip4/127.0.0.1/tcp/1/p2p/x: connection error 127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1)')
      const fromEnv = describeFailure(err, { command: 'get', peer: { from: 'env' } })
      oneLine(fromEnv.line)
      assert.equal(fromEnv.exit, 1)
      assert.match(fromEnv.line, /^shoal: UnreachableError: no bootstrap member could be reached .*; nothing is listening at that address \(from \$SHOAL_PEER.*\): is the node running\?/)
      assert.match(describeFailure(err, { command: 'get', peer: { from: 'file', file: 'a/node.json' } }).line, /the address in a\/node\.json/)
      const psk = new UnreachableError('no bootstrap member could be reached (x: The operation was aborted due to timeout; is this the cluster\'s private-network key?)')
      assert.match(describeFailure(psk, { command: 'status', peer: { from: 'flag' } }).line, /check that --psk FILE \(or \$SHOAL_PSK\) is the key file/)
    })

    it('a quorum not met: how many answered, then try again or lower --w (or --r for a read)', () => {
      const put = describeFailure(new QuorumError('put', 2, 1, 3), { command: 'put' })
      oneLine(put.line)
      assert.equal(put.exit, 1)
      assert.match(put.line, /^shoal: QuorumError: put needed 2 of 3 replicas, 1 acknowledged; .*try again .*lower --w/)
      assert.match(describeFailure(new QuorumError('get', 2, 1, 3), { command: 'get' }).line, /lower --r/)
      assert.match(describeFailure(new QuorumError('put', 2, 0, 1), { command: 'put' }).line, /only 1 replica is in the cluster .*start more nodes, or lower --w to 1/)
    })

    it('a port in use names the address and says to choose another --listen, without libp2p\'s stack trace', () => {
      const libp2p = new Error('Some configured addresses failed to be listened on, you may need to remove one or more listen addresses from your configuration or set `transportManager.faultTolerance` to NO_FATAL: /ip4/127.0.0.1/tcp/4455: Error: listen EADDRINUSE: address already in use 127.0.0.1:4455\n    at Server.setupListenHandle [as _listen2] (node:net:2328:16)')
      libp2p.name = 'UnsupportedListenAddressesError'
      const failure = describeFailure(libp2p, { command: 'start' })
      oneLine(failure.line)
      assert.equal(failure.line, 'shoal: cannot listen on /ip4/127.0.0.1/tcp/4455: the port is in use (another shoal node?); choose another --listen, e.g. /ip4/127.0.0.1/tcp/0 for any free port')
      const http = describeFailure(new Error('cannot serve HTTP on 127.0.0.1:8080: EADDRINUSE'), { command: 'start' })
      assert.match(http.line, /cannot serve HTTP on 127\.0\.0\.1:8080: the port is in use; choose another --http/)
    })

    it('a data directory it may not write: which one, and what to do, found through the causes LevelDB wraps', () => {
      const cause = Object.assign(new Error('EACCES: permission denied, mkdir \'/srv/shoal/db\''), { code: 'EACCES' })
      const err = Object.assign(new Error('Database failed to open', { cause }), { code: 'LEVEL_DATABASE_NOT_OPEN' })
      const failure = describeFailure(err, { command: 'start', dataDir: '/srv/shoal' })
      oneLine(failure.line)
      assert.equal(failure.exit, 1)
      assert.match(failure.line, /^shoal: cannot write the data directory \/srv\/shoal: permission denied on \/srv\/shoal\/db; .*chown, chmod.*another --data DIR$/)
      assert.match(describeFailure(new DataDirectoryInUseError('/srv/shoal'), { command: 'start' }).line, /in use by another process .*Stop that one, or give this node its own --data DIR/)
    })

    it('usage errors exit 2, failures 1; a node\'s verdict on an argument is a usage error', () => {
      assert.equal(describeFailure(new UsageError('--w takes an integer from 1 to 16, got "x"'), { command: 'put' }).exit, 2)
      assert.equal(describeFailure(new KeyFileError('key file k is malformed'), { command: 'put' }).exit, 2)
      const invalid = new Error('key must be 1 to 1024 bytes')
      invalid.name = 'InvalidArgumentError'
      const failure = describeFailure(invalid, { command: 'put' })
      assert.equal(failure.exit, 2)
      assert.equal(failure.line, 'shoal: InvalidArgumentError: key must be 1 to 1024 bytes; see shoal help put')
      assert.match(describeFailure(new TimeoutError('kv request timed out'), { command: 'get' }).line, /try again, or give it longer with --timeout MS/)
      const multi = describeFailure(new Error('first\nsecond'), { command: 'get' })
      assert.equal(multi.line, 'shoal: first second', 'a message of several lines becomes one')
    })
  })

  describe('help', () => {
    it('the overview lists every command with its synopsis and points to shoal help COMMAND', () => {
      const text = usage()
      assert.equal(text, overview(commandTable()))
      for (const name of ['start', 'put', 'get', 'delete', 'status', 'leave', 'remove', 'dev', 'psk']) assert.ok(commandNames().includes(name), name)
      for (const name of commandNames()) assert.match(text, new RegExp(`^\\s+shoal ${name}\\b`, 'm'), `the overview lists ${name}`)
      assert.match(text, /shoal help COMMAND/)
    })

    it('every command\'s help has its usage, each of its options with a meaning, and examples that run it', () => {
      for (const [name, command] of Object.entries(commandTable())) {
        const text = commandHelp(name, command)
        assert.match(text, new RegExp(`^usage: shoal ${name}`), name)
        const examples = text.split('\nexamples:\n')[1]?.split('\n\n')[0]?.split('\n') ?? []
        assert.ok(examples.length > 0, `${name} has examples`)
        assert.ok(examples.some(e => e.includes(`shoal ${name}`)), `${name}: an example runs it`)
        for (const option of Object.keys(command.options)) assert.match(text, new RegExp(`--${option}\\b[^\\n]*  \\S`), `${name} --${option} is described`)
      }
    })
  })
})
