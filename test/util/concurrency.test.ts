// mapConcurrently: results in the items' order, never more than the limit at once, and a failure thrown only
// once the calls already started have settled.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mapConcurrently } from '../../source/util/concurrency.ts'

const tick = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

test('results come in the items\' order, with at most `limit` calls at once', async () => {
  let running = 0
  let most = 0
  const results = await mapConcurrently([5, 1, 4, 2, 3, 0, 6], 3, async (ms, index) => {
    most = Math.max(most, ++running)
    await tick(ms)
    running--
    return `${index}:${ms}`
  })
  assert.deepEqual(results, ['0:5', '1:1', '2:4', '3:2', '4:3', '5:0', '6:6'], 'in order, whatever order they ended in')
  assert.equal(most, 3, 'the limit is reached and never passed')
})

test('the first failure is thrown after the calls under way settle, and no new call starts', async () => {
  const started: number[] = []
  let settled = 0
  await assert.rejects(mapConcurrently([0, 1, 2, 3, 4, 5], 2, async index => {
    started.push(index)
    await tick(index === 1 ? 1 : 10)
    settled++
    if (index === 1) throw new Error('item 1 failed')
    return index
  }), /item 1 failed/)
  assert.deepEqual(started, [0, 1], 'nothing starts after the failure')
  assert.equal(settled, started.length, 'every call started has settled when the failure is thrown')
})

test('an empty list gives an empty result', async () => {
  assert.deepEqual(await mapConcurrently([], 4, async () => 1), [], 'no call, no result')
})
