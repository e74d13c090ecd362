// Job files, mostly well-formed with a few fields wrong (wrong types, odd durations and crons, unknown keys, deep
// values): each is a job or a JOB_INVALID refusal, and an accepted job's settings resolve for every schedule.
import { test } from 'node:test'
import fc from 'fast-check'
import { findSchedule, parseJob, resolveSettings } from '../../source/protocol/job.ts'
import { assertReached, fuzz } from './harness.ts'

/** Job files whose values are odd one time in `oddOneIn` (never with 0): from nearly all valid to mostly wrong. */
function jobFiles(oddOneIn: number): fc.Arbitrary<unknown> {
  /** Usually a sensible value, sometimes an odd one. */
  const usually = <T, U>(sensible: fc.Arbitrary<T>, odd: fc.Arbitrary<U>): fc.Arbitrary<T | U> =>
    oddOneIn === 0 ? sensible : fc.oneof({ weight: oddOneIn - 1, arbitrary: sensible }, { weight: 1, arbitrary: odd })
  /** Usually a plausible value, sometimes anything at all. */
  const mostly = <T>(plausible: fc.Arbitrary<T>): fc.Arbitrary<unknown> => usually(plausible, fc.anything())

  const text = usually(fc.constantFrom('nightly', 'site-a', 'site-b', 'prod'), fc.oneof(fc.constantFrom('', '  ', 'a\u0000b', '\u001b[31mred'), fc.string({ maxLength: 20 })))
  const count = usually(fc.nat({ max: 50 }), fc.constantFrom(-3, 0.5, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, -0))
  const duration = usually(fc.constantFrom('4h', '30m', 3_600_000), fc.oneof(fc.constantFrom('4h', '30m', '1h30m', 'none', '600h', '25d', '0', '1e9h', '99999999999999999999d', '-1h', '4 h', ''),
    fc.nat(), fc.constant(null), fc.string({ maxLength: 12 })))
  const cronExpression = usually(fc.constantFrom('0 3 * * *', '15 1 * * 0', '*/5 * * * *'), fc.oneof(fc.constantFrom('0 3 31 2 *', '61 * * * *', '* * * *', '0 0 1 1 * *', ''), fc.string({ maxLength: 20 })))
  const timezone = usually(fc.constantFrom('UTC', 'Europe/Paris', 'America/New_York'), fc.oneof(fc.constantFrom('Mars/Olympus', ''), fc.string({ maxLength: 12 })))

  const settings = fc.record({
    concurrency: mostly(count), timeout: mostly(duration), compression: mostly(usually(fc.constant('none'), fc.constantFrom('gzip', 'zstd', 'brotli'))),
    fullInterval: mostly(count), forceFull: mostly(fc.boolean()), exportRetention: mostly(count), copyRetention: mostly(count),
    snapshotRetention: mostly(count), offlineSnapshot: mostly(fc.boolean()), checkpointSnapshot: mostly(fc.boolean()),
    deleteFirst: mostly(fc.boolean()), distributeBackups: usually(fc.constant(false), fc.anything()), distributeReplications: usually(fc.constant(false), fc.anything()),
    maxExportRate: mostly(count), nRetriesVmBackupFailures: mostly(count),
    longTermRetention: mostly(fc.record({ daily: fc.record({ retention: usually(fc.integer({ min: 1, max: 30 }), count),
      settings: fc.record({ firstHourOfTheDay: usually(fc.integer({ min: 0, max: 23 }), count) }, { requiredKeys: [] }) }, { requiredKeys: ['retention'] }) }, { requiredKeys: [] })),
  }, { requiredKeys: [] })

  const schedule = fc.record({
    id: mostly(text), name: mostly(fc.constantFrom('daily', 'weekly', 'monthly')), cron: mostly(cronExpression), timezone: mostly(timezone),
    enabled: mostly(fc.boolean()), retention: mostly(fc.record({ backups: count, replicas: count, snapshots: count }, { requiredKeys: [] })),
    fullInterval: mostly(count), settings: mostly(settings),
  }, { requiredKeys: ['name', 'cron', 'timezone'] })

  const vms = fc.oneof(
    fc.record({ uuids: fc.array(text, { minLength: 1, maxLength: 3 }) }),
    fc.record({ smart: fc.record({ pools: fc.array(text, { maxLength: 2 }), notPools: fc.array(text, { maxLength: 2 }), tags: fc.array(text, { maxLength: 2 }),
      notTags: fc.array(text, { maxLength: 2 }), powerState: usually(fc.constantFrom('running', 'halted', 'suspended', 'paused'), fc.constant('on')) }, { requiredKeys: [] }) }),
    usually(fc.constant(undefined), fc.record({ uuids: fc.array(text), smart: fc.object() })),
  )

  // A value nested up to 5000 deep, as a job file can be.
  const deep = fc.integer({ min: 1, max: 5000 }).map(depth => {
    let value: unknown = 'leaf'
    for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { nested: value }
    return value
  })

  const job = fc.record({
    name: mostly(text), mode: mostly(usually(fc.constantFrom('full', 'delta'), fc.constant('mirror'))), vms: mostly(vms),
    remotes: mostly(usually(fc.uniqueArray(text, { maxLength: 3 }), fc.array(text, { maxLength: 3 }))), srs: mostly(fc.array(text, { maxLength: 2 })), settings: mostly(settings),
    overrides: mostly(fc.record({ vms: fc.dictionary(text, settings, { maxKeys: 2 }), remotes: fc.dictionary(text, settings, { maxKeys: 2 }) }, { requiredKeys: [] })),
    schedules: mostly(usually(fc.uniqueArray(schedule, { minLength: 1, maxLength: 3, selector: entry => entry.name }), fc.array(schedule, { maxLength: 3 }))),
  }, { requiredKeys: ['name', 'mode', 'vms', 'schedules'] })

  /** Now and then a deep value under a known or an unknown key. */
  const jobFile = fc.tuple(job, usually(fc.constant(null), fc.tuple(fc.constantFrom('settings', 'vms', 'unknown', 'name'), deep)))
    .map(([file, extra]) => (extra === null ? file : { ...file, [extra[0]]: extra[1] }))
  return jobFile
}

test('fuzz: job files end as a job whose settings resolve, or as JOB_INVALID', async () => {
  const outcomes = await fuzz('job schema', fc.oneof(jobFiles(0), jobFiles(40), jobFiles(8), fc.anything()), async input => {
    const parsed = parseJob(input)
    for (const entry of parsed.schedules) resolveSettings(parsed, findSchedule(parsed, entry.name), { vmUuid: 'vm', target: { remote: parsed.remotes[0] ?? 'r' } })
  }, 3000)
  assertReached(outcomes, ['ok', 'JOB_INVALID'])
})
