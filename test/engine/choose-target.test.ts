// Distributed mode's choice rule, a pure function: the most free space; ties spread at random over many runs;
// uniformly random when no target tells its free space; a chain stays where it is; the mixed class refused.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chooseTarget, mixedSpaceProblem, type Candidate } from '../../source/engine/targets/choose-target.ts'
import { isLifeboatError } from '../../source/util/errors.ts'

const GiB = 1024 ** 3

/** A seeded generator (mulberry32): the same runs every time, spread like Math.random. */
function seeded(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const never = () => assert.fail('the rule drew a random number where none was needed')

function counts(candidates: Candidate[], runs: number, random: () => number): Map<string, number> {
  const seen = new Map<string, number>()
  for (let i = 0; i < runs; i++) {
    const { target } = chooseTarget({ candidates, random })
    seen.set(target, (seen.get(target) ?? 0) + 1)
  }
  return seen
}

test('the target with the most free space is chosen, with every figure in the sentence', () => {
  const choice = chooseTarget({ candidates: [{ name: 'a', free: 1 * GiB }, { name: 'b', free: 3 * GiB }, { name: 'c', free: 2 * GiB }], random: never })
  assert.equal(choice.target, 'b')
  assert.equal(choice.reason, 'most free space')
  assert.equal(choice.why, 'b, the most free space (a 1.0 GiB free, b 3.0 GiB free, c 2.0 GiB free)')
  assert.deepEqual(choice.candidates.map(c => c.free), [1 * GiB, 3 * GiB, 2 * GiB])
})

test('a full target (0 bytes free) is a target that tells its space, not one that cannot (XO counts it as unlimited)', () => {
  const choice = chooseTarget({ candidates: [{ name: 'full', free: 0 }, { name: 'b', free: 5 }], random: never })
  assert.equal(choice.target, 'b')
  assert.equal(mixedSpaceProblem([{ name: 'full', freeSpaceKnown: true }, { name: 'b', freeSpaceKnown: true }]), undefined)
})

test('a tie at the most free space is broken at random, spread evenly over many runs, and never onto a target with less', () => {
  const candidates = [{ name: 'a', free: 4 * GiB }, { name: 'b', free: 4 * GiB }, { name: 'c', free: 1 * GiB }, { name: 'd', free: 4 * GiB }]
  const seen = counts(candidates, 3000, seeded(7))
  assert.equal(seen.get('c'), undefined, 'c has less free space: never chosen')
  for (const name of ['a', 'b', 'd']) {
    const share = (seen.get(name) ?? 0) / 3000
    assert.ok(Math.abs(share - 1 / 3) < 0.04, `${name} got ${(share * 100).toFixed(1)} % of the ties, a third expected`)
  }
  const one = chooseTarget({ candidates, random: () => 0.5 })
  assert.equal(one.reason, 'tie')
  assert.match(one.why, /^b, chosen at random among the 3 with the most free space \(a 4\.0 GiB free, b 4\.0 GiB free, c 1\.0 GiB free, d 4\.0 GiB free\)$/)
})

test('when no target tells its free space (S3, Azure), every target is as likely', () => {
  const candidates = [{ name: 's3-a', free: undefined }, { name: 's3-b', free: undefined }]
  const seen = counts(candidates, 2000, seeded(11))
  for (const name of ['s3-a', 's3-b']) assert.ok(Math.abs((seen.get(name) ?? 0) / 2000 - 0.5) < 0.04, `${name}: ${seen.get(name)} of 2000`)
  const choice = chooseTarget({ candidates, random: () => 0.99 })
  assert.deepEqual([choice.target, choice.reason], ['s3-b', 'random'])
  assert.equal(choice.why, 's3-b, chosen at random: none of the 2 targets can tell its free space')
  assert.equal(chooseTarget({ candidates, random: () => 0 }).target, 's3-a')
})

test("the chain's holder keeps the backup whatever the free space; several holders: the rule among them", () => {
  const candidates = [{ name: 'a', free: 1 * GiB }, { name: 'b', free: 9 * GiB }, { name: 'c', free: 2 * GiB }]
  const kept = chooseTarget({ candidates, chainHolders: ['a'], random: never })
  assert.deepEqual([kept.target, kept.reason], ['a', 'chain'])
  assert.match(kept.why, /^a, it holds the VM's chain, which this backup continues \(a 1\.0 GiB free, b 9\.0 GiB free, c 2\.0 GiB free\)$/)
  const two = chooseTarget({ candidates, chainHolders: ['a', 'c'], random: never })
  assert.deepEqual([two.target, two.reason], ['c', 'chain'])
  assert.match(two.why, /^c, 2 targets hold a chain this backup continues; among them, the most free space/)
  // A holder that is no candidate any more (its remote is gone from the run) does not count.
  assert.equal(chooseTarget({ candidates, chainHolders: ['gone'], random: never }).target, 'b')
})

test('targets that tell their free space and targets that cannot are refused together, at the choice and in the check of a job', () => {
  assert.throws(
    () => chooseTarget({ candidates: [{ name: 'nfs', free: GiB }, { name: 's3', free: undefined }], random: Math.random }),
    (error: unknown) => isLifeboatError(error, 'DISTRIBUTED_MIXED_SPACE') && /"nfs" tells its free space and "s3" cannot/.test(error.message),
  )
  const problem = mixedSpaceProblem([{ name: 'local', freeSpaceKnown: true }, { name: 'smb', freeSpaceKnown: true }, { name: 'azure', freeSpaceKnown: false }])
  assert.equal(problem?.code, 'DISTRIBUTED_MIXED_SPACE')
  assert.match(problem!.message, /"local", "smb" tell their free space and "azure" cannot \(object stores\): they cannot be pooled\. Keep only remotes of one kind/)
  assert.equal(mixedSpaceProblem([{ name: 's3-a', freeSpaceKnown: false }, { name: 's3-b', freeSpaceKnown: false }]), undefined)
  assert.throws(() => chooseTarget({ candidates: [], random: Math.random }), (error: unknown) => isLifeboatError(error, 'NO_TARGET'))
})
