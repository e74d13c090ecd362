import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { forkAsyncIterable } from '../../source/engine/run/fanout.ts'
import { sleep } from '../../source/util/abort.ts'

async function* counted(n: number, state: { produced: number }, fail?: number) {
  for (let i = 0; i < n; i++) {
    if (i === fail) throw new Error('source broke')
    state.produced++
    yield i
  }
}

test('every fork sees every item, in order', async () => {
  const state = { produced: 0 }
  const forks = forkAsyncIterable(counted(50, state), 3)
  const results = await Promise.all(forks.map(async f => { const out: number[] = []; for await (const x of f) out.push(x); return out }))
  for (const r of results) assert.deepEqual(r, Array.from({ length: 50 }, (_, i) => i))
  assert.equal(state.produced, 50)
})

test('lock-step: the source is never more than one item ahead of the slowest fork', async () => {
  const state = { produced: 0 }
  const forks = forkAsyncIterable(counted(20, state), 2)
  let maxLead = 0
  const slowSeen: number[] = []
  await Promise.all([
    (async () => { for await (const x of forks[0]!) { maxLead = Math.max(maxLead, state.produced - slowSeen.length); void x } })(),
    (async () => { for await (const x of forks[1]!) { await sleep(2); slowSeen.push(x) } })(),
  ])
  assert.ok(maxLead <= 2, `source ran ${maxLead} items ahead of the slowest fork`)
  assert.equal(slowSeen.length, 20)
})

test('a fork that fails is dropped and the others finish', async () => {
  const state = { produced: 0 }
  const forks = forkAsyncIterable(counted(30, state), 3)
  const outcomes = await Promise.allSettled(
    forks.map(async (f, i) => {
      const out: number[] = []
      for await (const x of f) {
        if (i === 1 && x === 7) throw new Error('target full')
        out.push(x)
      }
      return out.length
    }),
  )
  assert.deepEqual(outcomes.map(o => o.status), ['fulfilled', 'rejected', 'fulfilled'])
  assert.equal((outcomes[0] as PromiseFulfilledResult<number>).value, 30)
  assert.equal((outcomes[2] as PromiseFulfilledResult<number>).value, 30)
})

test('a source error reaches every fork', async () => {
  const forks = forkAsyncIterable(counted(30, { produced: 0 }, 5), 2)
  const outcomes = await Promise.allSettled(forks.map(async f => { for await (const _ of f) void _ }))
  assert.deepEqual(outcomes.map(o => o.status), ['rejected', 'rejected'])
})

test('when every fork gives up, the source is closed', async () => {
  let closed = false
  async function* source() {
    try { for (let i = 0; ; i++) yield i } finally { closed = true }
  }
  const forks = forkAsyncIterable(source(), 2)
  await Promise.all(forks.map(async f => { for await (const x of f) if (x === 3) break }))
  await sleep(1)
  assert.equal(closed, true)
})

test('property: any mix of speeds and failures, survivors get the whole sequence', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 40 }), fc.array(fc.record({ delay: fc.integer({ min: 0, max: 2 }), failAt: fc.option(fc.integer({ min: 0, max: 45 }), { nil: undefined }) }), { minLength: 1, maxLength: 4 }), async (n, consumers) => {
      const forks = forkAsyncIterable(counted(n, { produced: 0 }), consumers.length)
      const outcomes = await Promise.allSettled(
        consumers.map(async (c, i) => {
          const out: number[] = []
          for await (const x of forks[i]!) {
            if (c.failAt === x) throw new Error('fail')
            if (c.delay > 0) await sleep(c.delay)
            out.push(x)
          }
          return out
        }),
      )
      outcomes.forEach((o, i) => {
        const c = consumers[i]!
        const shouldFail = c.failAt !== undefined && c.failAt < n
        assert.equal(o.status, shouldFail ? 'rejected' : 'fulfilled')
        if (o.status === 'fulfilled') assert.deepEqual(o.value, Array.from({ length: n }, (_, k) => k))
      })
    }),
    { numRuns: 60 },
  )
})
