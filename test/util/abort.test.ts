import { test, mock } from 'node:test'
import assert from 'node:assert/strict'
import { longTimeout, sleep, withTimeout } from '../../source/util/abort.ts'

const HOUR = 3_600_000
const DAY = 24 * HOUR

test('longTimeout fires after durations past node timers (2^31−1 ms), not before', () => {
  mock.timers.enable({ apis: ['setTimeout'] })
  try {
    let fired = 0
    // Hour by hour: a mocked timer armed inside a tick starts at the tick's end, so each chained timer may lag by an hour.
    const hours = (n: number) => {
      for (let i = 0; i < n; i++) mock.timers.tick(HOUR)
    }
    const days = (n: number) => hours(n * 24)
    longTimeout(() => fired++, 60 * DAY)
    days(59)
    assert.equal(fired, 0)
    days(1)
    hours(2)
    assert.equal(fired, 1)
    const clear = longTimeout(() => fired++, 30 * DAY)
    days(25)
    clear()
    days(10)
    assert.equal(fired, 1, 'cleared after its first chained timer')
  } finally {
    mock.timers.reset()
  }
})

test('withTimeout and sleep of 25 days do not end after 1 ms (the overflow of setTimeout)', async () => {
  const stop = new AbortController()
  const bound = withTimeout(stop.signal, 25 * DAY, 'the run')
  const slept = sleep(25 * DAY, bound.signal).then(() => 'slept', () => 'aborted')
  await new Promise(resolve => setTimeout(resolve, 50))
  assert.equal(bound.signal.aborted, false)
  assert.equal(await Promise.race([slept, 'waiting']), 'waiting')
  stop.abort()
  assert.equal(await slept, 'aborted')
  bound.dispose()
})
