import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import cron from 'node-cron'
import { instantOf, nextFireTime, wallClock } from '../../source/protocol/cron.ts'
import { Scheduler, type Clock, type ScheduleEntry } from '../../source/daemon/scheduler.ts'

/** A clock whose time only moves when the test says so; timers fire in order as it passes them. */
class FakeClock implements Clock {
  #now: number
  #timers = new Map<number, { at: number; fire: () => void }>()
  #nextHandle = 1

  constructor(start: number) {
    this.#now = start
  }
  now = () => this.#now
  setTimer = (fire: () => void, ms: number) => {
    const handle = this.#nextHandle++
    this.#timers.set(handle, { at: this.#now + ms, fire })
    return handle
  }
  clearTimer = (handle: unknown) => {
    this.#timers.delete(handle as number)
  }
  advanceTo(end: number): void {
    for (;;) {
      let first: [number, { at: number; fire: () => void }] | undefined
      for (const entry of this.#timers) if (first === undefined || entry[1].at < first[1].at) first = entry
      if (first === undefined || first[1].at > end) break
      this.#timers.delete(first[0])
      this.#now = Math.max(this.#now, first[1].at)
      first[1].fire()
    }
    this.#now = end
  }
}

const ZONES = ['Europe/Paris', 'America/New_York', 'Australia/Sydney'] as const
// The 2026 transitions (UTC instants of the jump), checked below against the zone database itself.
const TRANSITIONS: Record<(typeof ZONES)[number], { spring: string; fall: string }> = {
  'Europe/Paris': { spring: '2026-03-29T01:00:00Z', fall: '2026-10-25T01:00:00Z' },
  'America/New_York': { spring: '2026-03-08T07:00:00Z', fall: '2026-11-01T06:00:00Z' },
  'Australia/Sydney': { spring: '2026-10-03T16:00:00Z', fall: '2026-04-04T16:00:00Z' },
}
const HOUR = 3_600_000
const DAY = 24 * HOUR

function offsetAt(instant: number, zone: string): number {
  const w = wallClock(instant, zone)
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(instant / 1000) * 1000
}

/** Every wall-clock minute of (from, to] (naive calendar time, DST ignored) that the expression names, per node-cron. */
function scheduledWallTimes(expression: string, fromWall: number, toWall: number): number[] {
  const task = cron.createTask(expression, () => {}, { timezone: 'UTC' })
  const out: number[] = []
  for (let t = fromWall + 60_000; t <= toWall; t += 60_000) if (task.match(new Date(t))) out.push(t)
  return out
}

function fireAll(expression: string, zone: string, from: number, to: number): number[] {
  const clock = new FakeClock(from)
  const fired: number[] = []
  const scheduler = new Scheduler((_entry, at) => {
    // Called at the scheduled instant itself, never early or late, on a fake clock.
    assert.equal(clock.now(), at)
    fired.push(at)
  }, clock)
  scheduler.setSchedules([{ jobId: 'j', scheduleId: 's', cron: expression, timezone: zone }])
  clock.advanceTo(to)
  scheduler.stop()
  return fired
}

test('the 2026 transitions used below are the zone database’s', () => {
  for (const zone of ZONES) {
    for (const at of Object.values(TRANSITIONS[zone])) {
      const t = Date.parse(at)
      assert.notEqual(offsetAt(t - 1000, zone), offsetAt(t, zone), `${zone} changes offset at ${at}`)
    }
  }
})

test('known instants across spring-forward and fall-back', () => {
  const next = (expression: string, zone: string, after: string) => new Date(nextFireTime({ cron: expression, timezone: zone }, Date.parse(after))!).toISOString()
  // Paris: 02:30 does not exist on 29 March: fires once, when the clock jumps to 03:00.
  assert.equal(next('30 2 * * *', 'Europe/Paris', '2026-03-28T02:00:00Z'), '2026-03-29T01:00:00.000Z')
  assert.equal(next('30 2 * * *', 'Europe/Paris', '2026-03-29T01:00:00Z'), '2026-03-30T00:30:00.000Z')
  // Paris: 02:30 happens twice on 25 October: the first (CEST) only.
  assert.equal(next('30 2 * * *', 'Europe/Paris', '2026-10-24T12:00:00Z'), '2026-10-25T00:30:00.000Z')
  assert.equal(next('30 2 * * *', 'Europe/Paris', '2026-10-25T00:30:00Z'), '2026-10-26T01:30:00.000Z')
  // New York: 01:30 twice on 1 November; from inside the second pass the next is the next day.
  assert.equal(next('30 1 * * *', 'America/New_York', '2026-11-01T05:00:00Z'), '2026-11-01T05:30:00.000Z')
  assert.equal(next('30 1 * * *', 'America/New_York', '2026-11-01T06:10:00Z'), '2026-11-02T06:30:00.000Z')
  assert.equal(next('30 2 * * *', 'America/New_York', '2026-03-08T00:00:00Z'), '2026-03-08T07:00:00.000Z')
  // Sydney: spring forward in October, fall back in April.
  assert.equal(next('0 2 * * *', 'Australia/Sydney', '2026-10-03T12:00:00Z'), '2026-10-03T16:00:00.000Z')
  assert.equal(next('0 2 * * *', 'Australia/Sydney', '2026-04-04T12:00:00Z'), '2026-04-04T15:00:00.000Z')
  assert.equal(next('0 2 * * *', 'Australia/Sydney', '2026-04-04T15:00:00Z'), '2026-04-05T16:00:00.000Z')
})

for (const zone of ZONES) {
  for (const kind of ['spring', 'fall'] as const) {
    test(`${zone} ${kind}: every scheduled time fires exactly once on a fake clock`, () => {
      const jump = Date.parse(TRANSITIONS[zone][kind])
      const from = jump - 2 * DAY
      const to = jump + 2 * DAY
      for (const expression of ['15 * * * *', '*/20 * * * *', '30 2 * * *', '0 1-3 * * *', '45 0,1,2,3 * * *']) {
        const fired = fireAll(expression, zone, from, to)
        // Strictly increasing: no instant fires twice, nothing goes back in time.
        for (let i = 1; i < fired.length; i++) assert.ok(fired[i]! > fired[i - 1]!, `${expression}: fires in order`)
        // The wall times the expression names in the window (naive calendar, so a repeated hour counts once).
        const fromWall = from + offsetAt(from, zone)
        const toWall = to + offsetAt(to, zone)
        const expected = scheduledWallTimes(expression, fromWall, toWall)
        const matcher = cron.createTask(expression, () => {}, { timezone: zone })
        const labels = new Set<number>()
        let gapFires = 0
        for (const t of fired) {
          const wall = t + offsetAt(t, zone)
          if (matcher.match(new Date(t))) {
            // A matching instant in a repeated hour is its first occurrence.
            assert.ok(!matcher.match(new Date(t - HOUR)) || wallClock(t - HOUR, zone).hour !== wallClock(t, zone).hour, `${expression}: ${new Date(t).toISOString()} is not a second occurrence`)
            labels.add(wall)
          } else {
            // Otherwise it is the jump of a spring-forward, for the times the jump skipped.
            assert.equal(t, jump, `${expression}: ${new Date(t).toISOString()} matches or is the DST jump`)
            gapFires++
          }
        }
        const skipped = expected.filter(w => !labels.has(w))
        // Times skipped by the jump are all served by the one fire at the jump (which may also be a scheduled
        // time of its own); any other missing time is a bug.
        assert.ok(gapFires <= 1, 'the clock jump is served by one fire at most')
        if (skipped.length > 0) assert.ok(fired.includes(jump), `${expression}: the skipped times fire at the jump`)
        for (const w of skipped) {
          const t = instantOf(wallOf(w), zone)
          assert.equal(t, jump, `${expression}: ${new Date(w).toISOString().slice(0, 16)} (wall) fired`)
        }
        assert.equal(labels.size, expected.length - skipped.length)
      }
    })
  }
}

function wallOf(naive: number) {
  const d = new Date(naive)
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() }
}

test('nextFireTime agrees with node-cron’s matcher on random schedules and instants', () => {
  const field = (max: number, min = 0) => fc.oneof(fc.constant('*'), fc.integer({ min, max }).map(String), fc.integer({ min: 2, max: Math.max(2, Math.floor(max / 2)) }).map(n => `*/${n}`))
  fc.assert(
    fc.property(
      fc.tuple(field(59), field(23), fc.constantFrom('*', '1', '15', 'L', '1,15'), fc.constantFrom('*', '1-6', '3,11'), fc.constantFrom('*', '1-5', '0', 'sun', '1#2')),
      fc.constantFrom(...ZONES, 'UTC', 'Asia/Kolkata'),
      fc.integer({ min: Date.parse('2025-01-01T00:00:00Z'), max: Date.parse('2027-12-31T00:00:00Z') }),
      (fields, zone, after) => {
        // node-cron ANDs day of month and day of week: the 2nd Monday is never the 1st, 15th or last day.
        fc.pre(!(fields[4] === '1#2' && fields[2] !== '*'))
        const expression = fields.join(' ')
        const next = nextFireTime({ cron: expression, timezone: zone }, after)
        assert.ok(next !== undefined, `${expression} fires`)
        assert.ok(next > after, 'the next fire time comes after the given time')
        const matcher = cron.createTask(expression, () => {}, { timezone: zone })
        const jump = offsetAt(next - 1000, zone) !== offsetAt(next, zone)
        assert.ok(matcher.match(new Date(next)) || jump, `${expression} in ${zone} after ${new Date(after).toISOString()}: ${new Date(next).toISOString()} matches`)
        // No whole minute between `after` and `next` matches, unless it is the repeat of an hour already served.
        const firstMinute = Math.floor(after / 60_000) * 60_000 + 60_000
        for (let t = firstMinute; t < next && t - firstMinute < DAY; t += 60_000) {
          if (!matcher.match(new Date(t))) continue
          const repeated = offsetAt(t, zone) < offsetAt(t - HOUR, zone) || offsetAt(t, zone) < offsetAt(t - 2 * HOUR, zone)
          assert.ok(repeated && wallClock(t - (offsetAt(t - 2 * HOUR, zone) - offsetAt(t, zone)), zone).minute === wallClock(t, zone).minute, `${expression} in ${zone}: ${new Date(t).toISOString()} matches before ${new Date(next).toISOString()}`)
        }
      },
    ),
    { numRuns: 150 },
  )
})

test('a changed job keeps the pending fire time of its unchanged schedules; removed schedules stop', () => {
  const start = Date.parse('2026-06-01T00:00:00Z')
  const clock = new FakeClock(start)
  const fired: string[] = []
  const scheduler = new Scheduler(entry => fired.push(entry.scheduleId), clock)
  const hourly: ScheduleEntry = { jobId: 'j', scheduleId: 'hourly', cron: '0 * * * *', timezone: 'UTC' }
  const daily: ScheduleEntry = { jobId: 'j', scheduleId: 'daily', cron: '0 12 * * *', timezone: 'UTC' }
  scheduler.setSchedules([hourly, daily])
  assert.equal(scheduler.nextRun('j'), start + HOUR)
  clock.advanceTo(start + 90 * 60_000)
  scheduler.setSchedules([hourly])
  clock.advanceTo(start + DAY)
  scheduler.stop()
  assert.equal(fired.filter(id => id === 'hourly').length, 24)
  assert.equal(fired.filter(id => id === 'daily').length, 0)
  assert.equal(scheduler.nextRun('other'), undefined)
})

test('a late timer (suspended machine) fires once, then resumes the schedule', () => {
  const start = Date.parse('2026-06-01T00:00:00Z')
  let now = start
  const timers: Array<() => void> = []
  const clock: Clock = { now: () => now, setTimer: fire => timers.push(fire), clearTimer: () => {} }
  const fired: number[] = []
  const scheduler = new Scheduler((_e, at) => fired.push(at), clock)
  scheduler.setSchedules([{ jobId: 'j', scheduleId: 's', cron: '*/5 * * * *', timezone: 'UTC' }])
  now = start + 3 * HOUR + 60_000
  timers.pop()!()
  assert.deepEqual(fired, [start + 5 * 60_000])
  assert.equal(scheduler.nextRun('j'), start + 3 * HOUR + 5 * 60_000)
  scheduler.stop()
})
