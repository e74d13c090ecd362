// The lanes' rate: smoothed between readings, so that ETAs move steadily instead of swinging.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { smoothRate, type RateSample } from '../../source/daemon/lanes.ts'

const MiB = 1024 * 1024

/** Readings every 250 ms of a stream moving `speed(t)` bytes per second; the smoothed rates. */
function follow(speed: (at: number) => number, readings: number, average?: number): RateSample[] {
  const samples: RateSample[] = []
  let done = 0
  let sample: RateSample | undefined
  for (let i = 0; i < readings; i++) {
    const at = i * 250
    done += i === 0 ? 0 : (speed(at) * 250) / 1000
    sample = smoothRate(sample, at, done, average)
    samples.push(sample)
  }
  return samples
}

test('a one-reading burst (a run of zero blocks) barely moves the rate, so the ETA does not jump', () => {
  const rates = follow(at => (at === 10_000 ? 2000 * MiB : 50 * MiB), 80, 50 * MiB).map(s => s.rate)
  for (const rate of rates) assert.ok(rate > 40 * MiB && rate < 100 * MiB, `rate ${rate / MiB} MiB/s`)
})

test('consecutive rates differ by a few percent at most while the speed changes fourfold', () => {
  const rates = follow(at => (at < 30_000 ? 20 * MiB : 80 * MiB), 400, 20 * MiB).map(s => s.rate)
  for (let i = 120; i < rates.length; i++) assert.ok(Math.abs(rates[i]! - rates[i - 1]!) / rates[i - 1]! < 0.1, `reading ${i}: ${rates[i - 1]! / MiB} → ${rates[i]! / MiB}`)
  assert.ok(rates.at(-1)! > 75 * MiB, 'and it reaches the new speed')
})

test("a slow start (the first reading's average) is forgotten within seconds: the ETA does not fall from hours to minutes", () => {
  const rates = follow(() => 2 * MiB, 40, 0.1 * MiB).map(s => s.rate)
  assert.ok(rates[8]! > 1.8 * MiB, `after 2 s: ${rates[8]! / MiB} MiB/s`)
})

test('the first reading starts from the reported average; a stall slows the rate toward 0 without reaching it at once', () => {
  const [first] = follow(() => 0, 1, 7 * MiB)
  assert.equal(first!.rate, 7 * MiB)
  const stalled = follow(at => (at < 2000 ? 10 * MiB : 0), 40, 10 * MiB)
  assert.ok(stalled.at(-1)!.rate < stalled[8]!.rate, 'the rate keeps falling while the transfer stalls')
  assert.ok(stalled.at(-1)!.rate > 0, 'a stall slows the rate without reaching 0 at once')
})
