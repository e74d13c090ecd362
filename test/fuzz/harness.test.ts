// The harness itself: it lets results and coded errors through and stops at everything else, naming the seed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { LifeboatError } from '../../source/util/errors.ts'
import { FUZZ_SEED, endsCleanly, fuzz } from './harness.ts'

test('a result and a coded error end cleanly; an uncoded error, UNKNOWN and a hang do not', async () => {
  assert.equal(await endsCleanly(async () => 42), 'ok')
  assert.equal(await endsCleanly(async () => { throw new LifeboatError('VHD_TRUNCATED', 'short') }), 'VHD_TRUNCATED')
  await assert.rejects(endsCleanly(async () => { throw new TypeError('x is undefined') }), /uncoded error: TypeError/)
  await assert.rejects(endsCleanly(async () => { throw new LifeboatError('UNKNOWN', 'no code') }), /uncoded error/)
  await assert.rejects(endsCleanly(() => new Promise(() => {}), 50), /a hang/)
})

test('a failing property names its seed and how to replay it', async () => {
  await assert.rejects(fuzz('self-test', fc.nat(), async n => { if (n > 5) throw new RangeError('too big') }, 100),
    (error: Error) => error.message.includes(`seed ${FUZZ_SEED}`) && error.message.includes(`npm run fuzz -- --seed ${FUZZ_SEED}`) && /too big/.test(error.message))
})
