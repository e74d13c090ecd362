import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { getOldEntries, oldCopies, type LongTermRetention } from '../../source/repository/index.ts'

// Xen Orchestra's own vectors (_getOldEntries.test.mjs), dates read as UTC.
const t = (text: string) => Date.parse(`${text.replace(' ', 'T')}Z`)
const entries = (dates: string[]) => dates.map((date, i) => ({ timestamp: t(date), id: i + 1 }))

const TABLE: Array<{ name: string; min: number; dates: string[]; ltr?: LongTermRetention; timezone?: string; deleted: number[] }> = [
  { name: 'count retention', min: 1, dates: ['1970-01-01 00:00:00', '1970-01-01 00:00:01', '1970-01-01 00:00:02'], deleted: [1, 2] },
  { name: 'count retention larger than the list', min: 5, dates: ['2024-01-01 00:00:00', '2024-01-02 00:00:00'], deleted: [] },
  { name: 'count retention 0 deletes all', min: 0, dates: ['2024-01-01 00:00:00', '2024-01-02 00:00:00'], deleted: [1, 2] },
  {
    name: 'daily: oldest of each of the 3 most recent days',
    min: 0,
    dates: ['2024-09-01 00:00:00', '2024-09-01 00:01:00', '2024-09-02 00:09:00', '2024-09-02 00:10:00', '2024-09-03 00:09:00', '2024-09-04 00:09:00', '2024-09-04 00:10:00'],
    ltr: { daily: { retention: 3 } },
    timezone: 'UTC',
    deleted: [1, 2, 4, 7],
  },
  {
    name: 'weekly (weeks start on Sunday)',
    min: 0,
    dates: ['2024-08-30 00:01:00', '2024-08-31 00:00:00', '2024-09-03 00:09:00', '2024-09-04 00:09:00', '2024-09-05 00:09:00', '2024-09-06 00:09:00', '2024-09-07 00:09:00', '2024-09-15 00:09:00', '2024-09-21 00:09:00', '2024-09-22 00:09:00'],
    ltr: { weekly: { retention: 3 } },
    timezone: 'Europe/Paris',
    deleted: [1, 2, 4, 5, 6, 7, 9],
  },
  {
    name: 'monthly',
    min: 0,
    dates: ['2024-06-22 00:09:00', '2024-07-31 00:09:00', '2024-08-01 00:09:00', '2024-08-05 00:09:00', '2024-08-07 00:09:00', '2024-09-09 00:09:00', '2024-09-15 00:09:00', '2024-09-22 00:09:00'],
    ltr: { monthly: { retention: 3 } },
    timezone: 'Europe/Paris',
    deleted: [1, 4, 5, 7, 8],
  },
  {
    name: 'all kinds together with a count',
    min: 2,
    dates: ['2023-05-18 00:09:00', '2024-06-15 00:09:00', '2024-07-04 00:09:00', '2024-08-12 00:09:00', '2024-09-05 00:09:00', '2024-10-02 00:09:00', '2024-11-01 00:09:00', '2024-12-17 00:09:00', '2024-12-24 00:09:00', '2025-01-01 00:09:00', '2025-01-02 00:10:00', '2025-12-31 00:09:00', '2025-12-31 10:09:00'],
    ltr: { daily: { retention: 2 }, weekly: { retention: 4 }, monthly: { retention: 5 }, yearly: { retention: 2 } },
    timezone: 'Europe/Paris',
    deleted: [1, 3, 4, 5],
  },
  {
    name: 'days cut in the timezone (Auckland, UTC+12)',
    min: 0,
    // local NZ dates: 08-31 21:01, 09-01 12:10, 09-02 02:20, 09-02 12:22, 09-04 02:00, 09-04 12:09, 09-04 12:10
    dates: ['2024-08-31 09:01:00', '2024-09-01 00:10:00', '2024-09-01 14:20:00', '2024-09-02 00:22:00', '2024-09-03 14:00:00', '2024-09-04 00:09:00', '2024-09-04 00:10:00'],
    ltr: { daily: { retention: 3 } },
    timezone: 'Pacific/Auckland',
    deleted: [1, 4, 6, 7],
  },
  {
    name: 'firstHourOfTheDay moves the day boundary',
    min: 0,
    dates: ['2024-09-01 01:00:00', '2024-09-01 03:00:00', '2024-09-02 01:00:00'],
    ltr: { daily: { retention: 2, settings: { firstHourOfTheDay: 2 } } },
    timezone: 'UTC',
    // with days starting at 02:00, 09-01 01:00 is on 08-31 and the two others on 09-01, whose oldest is 09-01 03:00
    deleted: [3],
  },
]

for (const row of TABLE) {
  test(`getOldEntries: ${row.name}`, () => {
    const options = { ...(row.ltr && { longTermRetention: row.ltr }), ...(row.timezone && { timezone: row.timezone }) }
    assert.deepEqual(getOldEntries(row.min, entries(row.dates), options).map(e => e.id), row.deleted)
  })
}

test('getOldEntries: entries without timestamps (snapshots, replicas) use the count only', () => {
  const replicas: Array<{ timestamp?: number; id: number }> = [{ id: 1 }, { id: 2 }, { id: 3 }]
  assert.deepEqual(getOldEntries(1, replicas).map(e => e.id), [1, 2])
})

test('getOldEntries: invalid calls are refused with RETENTION_INVALID', () => {
  const sorted = entries(['2024-09-01 00:00:00', '2024-09-02 00:00:00', '2024-09-03 00:00:00'])
  const cases: Array<[number, Array<{ timestamp?: number }>, object]> = [
    [-1, sorted, {}],
    [1.5, sorted, {}],
    [4, sorted, { longTermRetention: { hourly: { retention: 3 } }, timezone: 'Europe/Paris' }],
    [3, sorted, { longTermRetention: { daily: { retention: 0 } }, timezone: 'Europe/Paris' }],
    [1, sorted, { longTermRetention: { daily: { retention: 2 } } }],
    [1, sorted, { longTermRetention: { daily: { retention: 2 } }, timezone: 'Mars/Olympus' }],
    [5, [sorted[0]!, sorted[2]!, sorted[1]!], {}],
    [5, [{ timestamp: Number.NaN }], { longTermRetention: { daily: { retention: 5 } }, timezone: 'Europe/Paris' }],
    [1, [{}, {}], { longTermRetention: { daily: { retention: 5 } }, timezone: 'Europe/Paris' }],
  ]
  for (const [min, list, options] of cases) assert.throws(() => getOldEntries(min, list, options as never), { code: 'RETENTION_INVALID' }, JSON.stringify(options))
})

test('property: count retention keeps exactly the newest minCount and returns the rest in order', () => {
  fc.assert(
    fc.property(fc.nat(30), fc.nat(10), (length, min) => {
      const list = Array.from({ length }, (_, i) => ({ timestamp: i * 1000, id: i }))
      const old = getOldEntries(min, list)
      assert.deepEqual(old, list.slice(0, Math.max(0, length - min)))
    }),
  )
})

test('property: long-term retention only ever keeps more, and keeps one backup in each of the most recent days', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 1.6e12, max: 1.8e12 }), { maxLength: 40 }), fc.nat(5), fc.integer({ min: 1, max: 5 }), (times, min, days) => {
      const list = [...times].sort((a, b) => a - b).map(timestamp => ({ timestamp }))
      const plain = new Set(getOldEntries(min, list))
      const withLtr = getOldEntries(min, list, { longTermRetention: { daily: { retention: days } }, timezone: 'Europe/Paris' })
      for (const entry of withLtr) assert.ok(plain.has(entry), 'long-term retention only removes entries the plain retention removes too')
      const day = (e: { timestamp: number }) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris' }).format(e.timestamp)
      const keptDays = new Set(list.filter(e => !withLtr.includes(e)).map(day))
      assert.equal(keptDays.size >= Math.min(days, new Set(list.map(day)).size), true)
    }),
  )
})

test('oldCopies: restore points on several targets, in any order, counted together; copies of one point kept or deleted together', () => {
  const at = (target: string, day: number) => ({ target, timestamp: Date.UTC(2026, 0, day), point: `snapshot-${day}` })
  // Days 1-6 spread over a, b and c; day 2 exists on a and b (the job was not distributed then).
  const entries = [at('c', 6), at('a', 1), at('b', 2), at('a', 2), at('c', 5), at('b', 3), at('a', 4)]
  const old = oldCopies(3, entries)
  assert.deepEqual(old.map(e => `${e.target}${new Date(e.timestamp).getUTCDate()}`).sort(), ['a1', 'a2', 'b2', 'b3'], 'the 3 newest points (days 4, 5, 6) are kept wherever they are; both copies of day 2 go')
  assert.deepEqual(oldCopies(5, entries).map(e => `${e.target}${new Date(e.timestamp).getUTCDate()}`), ['a1'], 'day 2 counts once: 5 points kept out of 6')
  const daily = oldCopies(1, entries, { longTermRetention: { daily: { retention: 2 } }, timezone: 'UTC' })
  assert.deepEqual(daily.map(e => new Date(e.timestamp).getUTCDate()).sort(), [1, 2, 2, 3, 4], 'long-term rules apply across targets too')
})

test('oldCopies: two restore points of the same second on two targets are two points, ordered, not copies of one', () => {
  const second = Date.UTC(2026, 0, 1, 3)
  const entries = [{ target: 'a', timestamp: second, point: 'snapshot-x' }, { target: 'b', timestamp: second, point: 'snapshot-y' }, { target: 'a', timestamp: second - 1000, point: 'snapshot-w' }]
  assert.deepEqual(oldCopies(2, entries).map(e => e.point), ['snapshot-w'])
  assert.deepEqual(oldCopies(1, entries).map(e => e.point).sort(), ['snapshot-w', 'snapshot-x'])
})
