// The run's export budget on a fake clock: bytes beyond the rate (after a one-second burst) wait exactly
// as long as the rate says, whoever takes them, and a cancel ends the wait.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RateLimit } from '../../source/engine/run/rate-limit.ts'

function fakeClock() {
  const clock = {
    time: 0,
    slept: [] as number[],
    now: () => clock.time,
    async sleep(ms: number, signal?: AbortSignal) {
      if (signal?.aborted === true) throw signal.reason
      clock.slept.push(ms)
      clock.time += ms
    },
  }
  return clock
}

test('a burst of one second passes at once, then every byte waits for its share of the rate', async () => {
  const clock = fakeClock()
  const limit = new RateLimit(1000, clock)
  await limit.take(1000)
  assert.deepEqual(clock.slept, [1000], 'the first second of bytes is due one second from now')
  clock.slept.length = 0
  for (let i = 0; i < 10; i++) await limit.take(500)
  assert.equal(clock.slept.reduce((a, b) => a + b, 0), 5000, '5000 bytes at 1000 B/s take 5 s')
})

test('two exports sharing one budget get the rate together, not each', async () => {
  const clock = fakeClock()
  const limit = new RateLimit(2000, clock)
  const start = clock.time
  await Promise.all([0, 1].map(async () => {
    for (let i = 0; i < 4; i++) await limit.take(1000)
  }))
  assert.ok(clock.time - start >= 3000, `8000 bytes at 2000 B/s need at least 3 s after the burst (took ${clock.time - start} ms)`)
})

test('a cancelled run stops waiting at once', async () => {
  const limit = new RateLimit(1)
  const controller = new AbortController()
  const waiting = limit.take(1_000_000, controller.signal)
  controller.abort(new Error('cancelled'))
  await assert.rejects(waiting, /cancelled/)
})
