import assert from 'node:assert/strict'
import fc from 'fast-check'
import { bytesId, fromBytesId, toBytes } from '../../src/core/bytes.ts'
import { sha256 } from '../../src/core/hash.ts'
import {
  FANOUT, HASH_BYTES, MerkleTree, SEGMENTS, diffSegmentKeys, diffTrees, differingChildren, leafHash, segmentOf
} from '../../src/core/merkle.ts'
import type { MerkleOptions } from '../../src/core/merkle.ts'

type Listing = Map<string, Uint8Array>

function build (listing: ReadonlyMap<string, Uint8Array>, options?: MerkleOptions): MerkleTree {
  const tree = new MerkleTree(options)
  for (const [id, digest] of listing) tree.update(fromBytesId(id), undefined, digest)
  return tree
}

/** The listing of one segment: what a replica would scan from its store. */
function segmentListing (listing: ReadonlyMap<string, Uint8Array>, segment: number, segments: number): Listing {
  const result: Listing = new Map()
  for (const [id, digest] of listing) if (segmentOf(fromBytesId(id), segments) === segment) result.set(id, digest)
  return result
}

/** Brute force: the keys on one side only or with different digests. */
function differingKeys (a: ReadonlyMap<string, Uint8Array>, b: ReadonlyMap<string, Uint8Array>): string[] {
  const ids = new Set([...a.keys(), ...b.keys()])
  return [...ids].filter(id => {
    const x = a.get(id)
    const y = b.get(id)
    return x === undefined || y === undefined || toBytesHex(x) !== toBytesHex(y)
  }).sort()
}

function toBytesHex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

const key = fc.uint8Array({ minLength: 0, maxLength: 6 })
const digest = fc.uint8Array({ minLength: 1, maxLength: 8 })
const shapes: MerkleOptions[] = [{}, { segments: 16, fanout: 4 }, { segments: 8, fanout: 2 }]
const shape = fc.constantFrom(...shapes)

describe('merkle', () => {
  it('has the fixed 64/8 shape by default, empty segments all zero', () => {
    const tree = new MerkleTree()
    assert.equal(SEGMENTS, 64)
    assert.equal(FANOUT, 8)
    assert.equal(tree.depth, 2)
    assert.deepEqual(tree.root(), new Uint8Array(HASH_BYTES))
    assert.deepEqual(tree.segment(63), new Uint8Array(HASH_BYTES))
    assert.equal(tree.children(0, 0).length, 8)
    assert.equal(tree.children(1, 7).length, 8)
  })

  it('rejects shapes that are not a power of the fanout, and nodes outside the tree', () => {
    for (const options of [{ segments: 100 }, { segments: 32 }, { fanout: 3, segments: 9 }, { fanout: 1 }, { segments: 0 }, { segments: 2 ** 30 }]) {
      assert.throws(() => new MerkleTree(options), { name: 'InvalidArgumentError' }, JSON.stringify(options))
    }
    const tree = new MerkleTree()
    assert.throws(() => tree.node(3, 0), { name: 'InvalidArgumentError' })
    assert.throws(() => tree.node(1, FANOUT), { name: 'InvalidArgumentError' })
    assert.throws(() => tree.segment(-1), { name: 'InvalidArgumentError' })
    assert.throws(() => tree.children(2, 0), { name: 'InvalidArgumentError' })
    assert.throws(() => segmentOf(toBytes('k'), 100), { name: 'InvalidArgumentError' })
  })

  it('puts a key in the segment named by the top bits of its hash segment word', () => {
    const k = toBytes('user:42')
    const word = new DataView(sha256(k).buffer).getUint32(8)
    assert.equal(segmentOf(k), word >>> 26)
    assert.equal(segmentOf(k, 16), word >>> 28)
    assert.equal(segmentOf(k, 1), 0)
  })

  it('hashes a leaf as 16 bytes of sha256 over the length-prefixed key and the digest', () => {
    const k = toBytes('ab')
    const d = toBytes('c')
    assert.deepEqual(leafHash(k, d), sha256(Uint8Array.of(0, 0, 0, 2, 0x61, 0x62, 0x63)).subarray(0, 16))
    assert.notDeepEqual(leafHash(toBytes('ab'), toBytes('c')), leafHash(toBytes('a'), toBytes('bc')))
  })

  it('a write changes its segment and every ancestor, and the root is the XOR of all segments', () => {
    const tree = new MerkleTree()
    const k = toBytes('user:42')
    const segment = tree.update(k, undefined, toBytes('v1'))
    assert.equal(segment, segmentOf(k))
    assert.deepEqual(tree.segment(segment), leafHash(k, toBytes('v1')))
    assert.deepEqual(tree.node(1, Math.floor(segment / FANOUT)), leafHash(k, toBytes('v1')))
    assert.deepEqual(tree.root(), leafHash(k, toBytes('v1')))
    tree.update(k, toBytes('v1'), undefined)
    assert.deepEqual(tree.root(), new Uint8Array(HASH_BYTES))
  })

  it('hands out copies: changing a returned hash leaves the tree alone', () => {
    const tree = build(new Map([[bytesId(toBytes('k')), toBytes('d')]]))
    const before = tree.root()
    tree.root().fill(7)
    tree.segment(segmentOf(toBytes('k'))).fill(7)
    for (const child of tree.children(0, 0)) child.fill(7)
    assert.deepEqual(tree.root(), before)
  })

  it('a tree updated incrementally equals one rebuilt from the final key -> digest map', () => {
    const op = fc.record({ key, digest: fc.option(digest, { nil: undefined }) })
    fc.assert(fc.property(shape, fc.array(op, { maxLength: 120 }), (options, ops) => {
      const tree = new MerkleTree(options)
      const listing: Listing = new Map()
      for (const { key, digest } of ops) {
        const id = bytesId(key)
        // digest undefined is a delete; of an absent key, a no-op
        tree.update(key, listing.get(id), digest)
        if (digest === undefined) listing.delete(id)
        else listing.set(id, digest)
      }
      const rebuilt = build(listing, options)
      assert.ok(tree.equals(rebuilt))
      assert.deepEqual(tree.root(), rebuilt.root())
      assert.deepEqual(diffTrees(tree, rebuilt), { segments: [], compared: 1 })
    }), { numRuns: 200 })
  })

  it('the root is the XOR of all segments, and each inner node the XOR of its children', () => {
    fc.assert(fc.property(shape, fc.array(fc.tuple(key, digest), { maxLength: 60 }), (options, pairs) => {
      const tree = build(new Map(pairs.map(([k, d]) => [bytesId(k), d])), options)
      for (let level = 0; level < tree.depth; level++) {
        for (let index = 0; index < tree.fanout ** level; index++) {
          const xor = new Uint8Array(HASH_BYTES)
          for (const child of tree.children(level, index)) child.forEach((b, i) => { xor[i] = (xor[i] ?? 0) ^ b })
          assert.deepEqual(tree.node(level, index), xor)
        }
      }
    }), { numRuns: 50 })
  })

  it('diffTrees finds exactly the segments whose keys differ, and diffSegmentKeys exactly the keys', () => {
    const listing = fc.array(fc.tuple(key, digest), { maxLength: 60 }).map(pairs => new Map(pairs.map(([k, d]) => [bytesId(k), d])))
    // Replica b is replica a with some keys changed, dropped or added, as after missed writes.
    const replicas = fc.tuple(listing, fc.array(fc.tuple(key, fc.option(digest, { nil: undefined })), { maxLength: 12 }))
      .map(([a, edits]) => {
        const b = new Map(a)
        for (const [k, d] of edits) {
          if (d === undefined) b.delete(bytesId(k))
          else b.set(bytesId(k), d)
        }
        return [a, b] as const
      })
    fc.assert(fc.property(shape, replicas, (options, [a, b]) => {
      const ta = build(a, options)
      const tb = build(b, options)
      const expectedKeys = differingKeys(a, b)
      const expectedSegments = [...new Set(expectedKeys.map(id => segmentOf(fromBytesId(id), ta.segments)))].sort((x, y) => x - y)

      const { segments, compared } = diffTrees(ta, tb)
      assert.deepEqual(segments, expectedSegments)
      assert.equal(ta.equals(tb), expectedKeys.length === 0)

      // The cost: the root, then all children of every differing inner node.
      let differingInner = 0
      for (let level = 0; level < ta.depth; level++) {
        for (let index = 0; index < ta.fanout ** level; index++) {
          if (toBytesHex(ta.node(level, index)) !== toBytesHex(tb.node(level, index))) differingInner++
        }
      }
      assert.equal(compared, 1 + ta.fanout * differingInner)

      const found = segments.flatMap(s => diffSegmentKeys(segmentListing(a, s, ta.segments), segmentListing(b, s, ta.segments)))
      assert.deepEqual(found.sort(), expectedKeys)
    }), { numRuns: 200 })
  })

  it('equal trees compare only the root', () => {
    const listing = new Map([...Array(500).keys()].map(i => [bytesId(toBytes(`key-${i}`)), toBytes(`v${i}`)]))
    assert.deepEqual(diffTrees(build(listing), build(listing)), { segments: [], compared: 1 })
    assert.deepEqual(diffTrees(new MerkleTree(), new MerkleTree()), { segments: [], compared: 1 })
  })

  it('one missed write costs one descent: the root and FANOUT hashes at each level below it', () => {
    const listing = new Map([...Array(500).keys()].map(i => [bytesId(toBytes(`key-${i}`)), toBytes(`v${i}`)]))
    const a = build(listing)
    const b = build(listing)
    const segment = b.update(toBytes('key-7'), toBytes('v7'), toBytes('v7b'))
    assert.deepEqual(diffTrees(a, b), { segments: [segment], compared: 1 + FANOUT * a.depth })
  })

  it('diffSegmentKeys names keys on one side only and keys with different digests', () => {
    const mine = new Map([['a', toBytes('1')], ['b', toBytes('2')], ['c', toBytes('3')]])
    const theirs = new Map([['b', toBytes('2')], ['c', toBytes('x')], ['d', toBytes('4')]])
    assert.deepEqual(diffSegmentKeys(mine, theirs), ['a', 'c', 'd'])
    assert.deepEqual(diffSegmentKeys(theirs, mine), ['a', 'c', 'd'])
    assert.deepEqual(diffSegmentKeys(mine, new Map(mine)), [])
  })

  it('differingChildren compares child lists and rejects ill-formed remote ones', () => {
    const z = new Uint8Array(HASH_BYTES)
    const one = new Uint8Array(HASH_BYTES).fill(1)
    assert.deepEqual(differingChildren([z, one, z], [z, z, z]), [1])
    assert.throws(() => differingChildren([z, z], [z]), { name: 'MalformedDataError' })
    assert.throws(() => differingChildren([z], [new Uint8Array(3)]), { name: 'MalformedDataError' })
  })

  it('fromSegments round-trips and rebuilds the inner nodes', () => {
    fc.assert(fc.property(shape, fc.array(fc.tuple(key, digest), { maxLength: 60 }), (options, pairs) => {
      const tree = build(new Map(pairs.map(([k, d]) => [bytesId(k), d])), options)
      const copy = MerkleTree.fromSegments(tree.segmentHashes(), options)
      assert.ok(copy.equals(tree))
      assert.deepEqual(copy.root(), tree.root())
      if (tree.depth > 0) assert.deepEqual(copy.children(0, 0), tree.children(0, 0))
    }), { numRuns: 100 })
    assert.throws(() => MerkleTree.fromSegments([new Uint8Array(HASH_BYTES)]), { name: 'MalformedDataError' })
    const hashes = new MerkleTree().segmentHashes()
    hashes[3] = new Uint8Array(15)
    assert.throws(() => MerkleTree.fromSegments(hashes), { name: 'MalformedDataError' })
  })

  it('a clone has every node of its original and changes independently of it', () => {
    fc.assert(fc.property(shape, fc.array(fc.tuple(key, digest), { maxLength: 60 }), key, digest, (options, pairs, extra, extraDigest) => {
      const tree = build(new Map(pairs.map(([k, d]) => [bytesId(k), d])), options)
      const clone = tree.clone()
      assert.ok(clone.sameShape(tree) && clone.equals(tree))
      for (let level = 0; level < tree.depth; level++) {
        for (let index = 0; index < tree.fanout ** level; index++) assert.deepEqual(clone.children(level, index), tree.children(level, index))
      }
      const root = tree.root()
      clone.update(extra, undefined, extraDigest)
      assert.deepEqual(tree.root(), root, 'the original is untouched')
      const leaf = leafHash(extra, extraDigest)
      assert.deepEqual(clone.root(), root.map((b, i) => b ^ (leaf[i] ?? 0)), 'the clone took the update')
    }), { numRuns: 100 })
  })

  it('trees of different shapes are never equal and cannot be diffed', () => {
    const a = new MerkleTree()
    const b = new MerkleTree({ segments: 16, fanout: 4 })
    assert.equal(a.equals(b), false)
    assert.throws(() => diffTrees(a, b), { name: 'InvalidArgumentError' })
  })
})
