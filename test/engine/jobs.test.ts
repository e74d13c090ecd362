import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { DEFAULT_SETTINGS, findSchedule, formatDuration, parseDuration, parseJob, resolveSettings, selectVms, type VmCandidate } from '../../source/engine/jobs/index.ts'
import { ALL_VMS } from '../../source/protocol/job.ts'

// The job file of DESIGN.md, verbatim.
const DESIGN_JOB = {
  name: 'nightly',
  mode: 'delta',
  vms: { smart: { pools: ['<pool uuid>'], notPools: [], tags: ['prod'], notTags: [], powerState: 'running' } },
  remotes: ['site-a', 'site-b'],
  srs: [],
  settings: { concurrency: 2, timeout: '4h', distributeBackups: false },
  schedules: [{ name: 'daily', cron: '0 3 * * *', timezone: 'Europe/Paris', enabled: true, retention: { backups: 7, replicas: 0, snapshots: 1 }, fullInterval: 7 }],
}

const MIRROR_JOB = {
  name: 'offsite',
  type: 'mirror',
  mode: 'delta',
  sourceRemote: 'site-a',
  remotes: ['site-b'],
  schedules: [{ name: 'nightly', cron: '0 5 * * *', timezone: 'UTC', retention: { backups: 14 } }],
}

test('a mirror job parses: without vms it copies every VM of its source; a backup job is of type "backup"', () => {
  const mirror = parseJob(MIRROR_JOB)
  assert.equal(mirror.type, 'mirror')
  assert.deepEqual(mirror.vms, ALL_VMS)
  assert.equal(resolveSettings(mirror, mirror.schedules[0]!, { target: { remote: 'site-b' } }).exportRetention, 14)
  const filtered = parseJob({ ...MIRROR_JOB, vms: { smart: { tags: ['prod'] } } })
  assert.deepEqual(filtered.vms, { smart: { pools: [], notPools: [], tags: ['prod'], notTags: [] } })
  assert.equal(parseJob(DESIGN_JOB).type, 'backup')
  const distributed = parseJob({ ...DESIGN_JOB, settings: { distributeBackups: true } })
  assert.equal(resolveSettings(distributed, distributed.schedules[0]!).distributeBackups, true)
  // The copies are health-checked as backups are: job or schedule settings.
  const checked = parseJob({ ...MIRROR_JOB, settings: { healthCheckSr: 'sr-1', healthCheckVmsWithTags: ['prod'] }, schedules: [{ ...MIRROR_JOB.schedules[0], settings: { healthCheckTimeout: '5m' } }] })
  assert.deepEqual(
    (({ healthCheckSr, healthCheckVmsWithTags, healthCheckTimeout }) => ({ healthCheckSr, healthCheckVmsWithTags, healthCheckTimeout }))(resolveSettings(checked, checked.schedules[0]!)),
    { healthCheckSr: 'sr-1', healthCheckVmsWithTags: ['prod'], healthCheckTimeout: 300_000 },
  )
})

test("DESIGN.md's job file parses, durations become milliseconds, defaults fill the rest", () => {
  const job = parseJob(DESIGN_JOB)
  assert.equal(job.settings.timeout, 4 * 3_600_000)
  const settings = resolveSettings(job, job.schedules[0]!)
  assert.deepEqual(settings, { ...DEFAULT_SETTINGS, concurrency: 2, timeout: 14_400_000, exportRetention: 7, copyRetention: 0, snapshotRetention: 1, fullInterval: 7 })
  assert.equal(DEFAULT_SETTINGS.copyRetention, 1, 'without a retention, 1 replica is kept per SR')
  assert.deepEqual(job.overrides, { vms: {}, remotes: {}, srs: {} })
  const minimal = parseJob({ name: 'm', mode: 'full', vms: { uuids: ['vm-1'] }, schedules: [{ name: 's', cron: '0 1 * * *', timezone: 'UTC' }] })
  assert.deepEqual(minimal.remotes, [])
  assert.equal(minimal.schedules[0]!.enabled, true)
  assert.deepEqual(resolveSettings(minimal, minimal.schedules[0]!), DEFAULT_SETTINGS)
  assert.equal(DEFAULT_SETTINGS.concurrency, 2)
  assert.equal(DEFAULT_SETTINGS.compression, 'none')
  assert.equal(DEFAULT_SETTINGS.fullInterval, 0)
  assert.equal(DEFAULT_SETTINGS.timeout, 0)
})

test('settings resolve in XO order: defaults → job → schedule → VM → target', () => {
  const job = parseJob({
    ...DESIGN_JOB,
    settings: { concurrency: 4, compression: 'none', deleteFirst: true, timeout: '2h' },
    schedules: [
      { name: 'daily', cron: '0 3 * * *', timezone: 'Europe/Paris', retention: { backups: 7 }, settings: { concurrency: 3, timeout: 'none' } },
      { name: 'weekly', cron: '0 4 * * 0', timezone: 'Europe/Paris', retention: { backups: 4 }, fullInterval: 1, settings: { forceFull: true, fullInterval: 9 } },
    ],
    overrides: { vms: { 'vm-1': { concurrency: 1, offlineSnapshot: true } }, remotes: { 'site-b': { exportRetention: 2, deleteFirst: false } }, srs: { 'sr-1': { copyRetention: 5 } } },
  })
  const daily = findSchedule(job, 'daily')
  const weekly = findSchedule(job, 'weekly')
  assert.equal(resolveSettings(job, daily).concurrency, 3)
  assert.equal(resolveSettings(job, daily).timeout, 0, "a schedule's 'none' lifts the job's timeout")
  assert.equal(resolveSettings(job, weekly).timeout, 7_200_000)
  assert.equal(resolveSettings(job, weekly).forceFull, true)
  assert.equal(resolveSettings(job, weekly).fullInterval, 1, 'the schedule field wins over its own settings')
  assert.equal(resolveSettings(job, daily).forceFull, false)
  const vm = resolveSettings(job, daily, { vmUuid: 'vm-1' })
  assert.equal(vm.concurrency, 1)
  assert.equal(vm.offlineSnapshot, true)
  assert.equal(vm.deleteFirst, true)
  const target = resolveSettings(job, daily, { vmUuid: 'vm-1', target: { remote: 'site-b' } })
  assert.equal(target.exportRetention, 2)
  assert.equal(target.deleteFirst, false)
  assert.equal(target.offlineSnapshot, true)
  assert.equal(resolveSettings(job, daily, { target: { remote: 'site-a' } }).exportRetention, 7)
  assert.equal(resolveSettings(job, daily, { target: { sr: 'sr-1' } }).copyRetention, 5)
  assert.equal(resolveSettings(job, daily).snapshotRetention, 0)
  const jobWide = parseJob({ ...DESIGN_JOB, settings: { exportRetention: 3, snapshotRetention: 2 }, schedules: [{ name: 's', cron: '0 1 * * *', timezone: 'UTC', retention: { backups: 5 } }] })
  assert.equal(resolveSettings(jobWide, jobWide.schedules[0]!).exportRetention, 5, 'the schedule retention wins')
  assert.equal(resolveSettings(jobWide, jobWide.schedules[0]!).snapshotRetention, 2, "absent from the schedule: the job's setting")
  assert.equal(findSchedule(job).name, 'daily')
  assert.throws(() => findSchedule(job, 'monthly'), { code: 'SCHEDULE_NOT_FOUND' })
})

const INVALID: Array<[string, unknown, string, RegExp]> = [
  ['missing name', { ...DESIGN_JOB, name: undefined }, 'name', /required/],
  ['bad mode', { ...DESIGN_JOB, mode: 'mirror' }, 'mode', /"full" or "delta"/],
  ['bad cron', { ...DESIGN_JOB, schedules: [{ ...DESIGN_JOB.schedules[0], cron: '0 3 * *' }] }, 'schedules.0.cron', /it has 4 fields; write 5/],
  ['bad timezone', { ...DESIGN_JOB, schedules: [{ ...DESIGN_JOB.schedules[0], timezone: 'Europe/Parsi' }] }, 'schedules.0.timezone', /IANA timezone/],
  ['bad duration', { ...DESIGN_JOB, settings: { timeout: 'four hours' } }, 'settings.timeout', /not a duration/],
  ['negative concurrency', { ...DESIGN_JOB, settings: { concurrency: -1 } }, 'settings.concurrency', /whole number/],
  ['unknown setting', { ...DESIGN_JOB, settings: { concurency: 2 } }, 'settings', /unknown field "concurency"/],
  ['bad compression', { ...DESIGN_JOB, mode: 'full', settings: { compression: 'brotli' } }, 'settings.compression', /"none", "gzip" or "zstd"/],
  ['compression in delta mode', { ...DESIGN_JOB, settings: { compression: 'zstd' } }, 'settings.compression', /full backups only/],
  ['new MACs without continuous replication', { ...DESIGN_JOB, settings: { newMacAddresses: true } }, 'settings.newMacAddresses', /continuous replication only/],
  ['distributed over one remote', { ...DESIGN_JOB, remotes: ['site-a'], settings: { distributeBackups: true } }, 'settings.distributeBackups', /at least 2 remotes to spread them over; the job has 1/],
  ['distributed replications over no SR', { ...DESIGN_JOB, srs: [], settings: { distributeReplications: true } }, 'settings.distributeReplications', /at least 2 SRs to spread them over; the job has 0/],
  ['distributed set by a schedule', { ...DESIGN_JOB, schedules: [{ ...DESIGN_JOB.schedules[0], settings: { distributeBackups: true } }] }, 'schedules.0.settings.distributeBackups', /applies to the whole job/],
  ['distributed set for one remote', { ...DESIGN_JOB, overrides: { remotes: { 'site-a': { distributeBackups: false } } } }, 'overrides.remotes.site-a.distributeBackups', /applies to the whole job/],
  ['a per-remote retention in a distributed job', { ...DESIGN_JOB, settings: { distributeBackups: true }, overrides: { remotes: { 'site-b': { exportRetention: 3 } } } }, 'overrides.remotes.site-b.exportRetention', /cannot be set for one remote of a distributed job: its retention counts the backups of all its remotes together/],
  ['a per-SR deleteFirst in a distributed replication', { ...DESIGN_JOB, srs: ['sr-1', 'sr-2'], settings: { distributeReplications: true }, overrides: { srs: { 'sr-2': { deleteFirst: true } } } }, 'overrides.srs.sr-2.deleteFirst', /cannot be set for one SR of a distributed job/],
  ['backup job without vms', { ...DESIGN_JOB, vms: undefined }, 'vms', /required/],
  ['backup job with a source remote', { ...DESIGN_JOB, sourceRemote: 'site-a' }, 'sourceRemote', /for mirror jobs/],
  ['unknown job type', { ...DESIGN_JOB, type: 'copy' }, 'type', /"backup" .*, "mirror" .* or "verify"/],
  ['mirror without a source', { ...MIRROR_JOB, sourceRemote: undefined }, 'sourceRemote', /name it in sourceRemote/],
  ['mirror without targets', { ...MIRROR_JOB, remotes: [] }, 'remotes', /at least one remote to copy the backups to/],
  ['mirror onto its source', { ...MIRROR_JOB, remotes: ['site-b', 'site-a'] }, 'remotes.1', /cannot also be a target of its own mirror/],
  ['mirror with an SR', { ...MIRROR_JOB, srs: ['sr-1'] }, 'srs', /takes no SR/],
  ['mirror filtered by pool', { ...MIRROR_JOB, vms: { smart: { pools: ['p1'] } } }, 'vms.smart', /by uuid or by tags/],
  ['mirror with a snapshot setting', { ...MIRROR_JOB, settings: { snapshotRetention: 2 } }, 'settings.snapshotRetention', /does not apply to a mirror job/],
  ['mirror with a fullInterval', { ...MIRROR_JOB, schedules: [{ ...MIRROR_JOB.schedules[0], fullInterval: 7 }] }, 'schedules.0.fullInterval', /does not apply to a mirror job/],
  ['mirror distributed', { ...MIRROR_JOB, remotes: ['site-b', 'site-c'], settings: { distributeBackups: true } }, 'settings.distributeBackups', /cannot distribute them/],
  ['mirror keeping replicas', { ...MIRROR_JOB, schedules: [{ ...MIRROR_JOB.schedules[0], retention: { replicas: 2 } }] }, 'schedules.0.retention', /retention\.backups, not replicas/],
  ['offline and checkpoint snapshot', { ...DESIGN_JOB, settings: { offlineSnapshot: true, checkpointSnapshot: true } }, 'settings', /exclude each other/],
  ['no schedule', { ...DESIGN_JOB, schedules: [] }, 'schedules', /at least one schedule/],
  ['duplicate schedule names', { ...DESIGN_JOB, schedules: [DESIGN_JOB.schedules[0], DESIGN_JOB.schedules[0]] }, 'schedules.1.name', /already named/],
  ['bad vms', { ...DESIGN_JOB, vms: { all: true } }, 'vms', /unknown field "all"/],
  ['vms with neither form', { ...DESIGN_JOB, vms: {} }, 'vms', /either "uuids".*or "smart"/],
  ['empty VM list', { ...DESIGN_JOB, vms: { uuids: [] } }, 'vms.uuids', /at least one VM/],
  ['bad power state', { ...DESIGN_JOB, vms: { smart: { powerState: 'on' } } }, 'vms.smart.powerState', /"running", "halted"/],
  ['wrong type is not "required"', { ...DESIGN_JOB, settings: { concurrency: 'two' } }, 'settings.concurrency', /whole number/],
  ['bad retention', { ...DESIGN_JOB, schedules: [{ ...DESIGN_JOB.schedules[0], retention: { backups: 1.5 } }] }, 'schedules.0.retention.backups', /./],
  ['bad LTR', { ...DESIGN_JOB, settings: { longTermRetention: { daily: { retention: 0 } } } }, 'settings.longTermRetention.daily.retention', /at least 1/],
]
for (const [name, input, path, message] of INVALID) {
  test(`invalid job refused with a message for the field: ${name}`, () => {
    assert.throws(() => parseJob(input), (error: Error & { code?: string; data?: { problems: Array<{ path: string; message: string }> } }) => {
      assert.equal(error.code, 'JOB_INVALID')
      const problem = error.data!.problems.find(p => p.path === path)
      assert.ok(problem, `no problem reported at ${path}: ${JSON.stringify(error.data!.problems)}`)
      assert.match(problem.message, message)
      assert.match(error.message, new RegExp(`- ${path.replace(/\./g, '\\.')}: `))
      return true
    })
  })
}

test('several invalid fields give one message each', () => {
  assert.throws(
    () => parseJob({ ...DESIGN_JOB, mode: 'x', settings: { concurrency: 'two' }, schedules: [{ ...DESIGN_JOB.schedules[0], cron: 'nope', timezone: 'Nowhere/City' }] }),
    (error: Error & { data?: { problems: Array<{ path: string }> } }) => {
      assert.deepEqual(error.data!.problems.map(p => p.path).sort(), ['mode', 'schedules.0.cron', 'schedules.0.timezone', 'settings.concurrency'])
      return true
    },
  )
})

test('durations', () => {
  const table: Array<[string, number | undefined]> = [['4h', 14_400_000], ['30m', 1_800_000], ['1h30m', 5_400_000], ['90s', 90_000], ['250ms', 250], ['1d', 86_400_000], ['1.5h', 5_400_000], ['', undefined], ['4', undefined], ['h', undefined], ['4 hours', undefined], ['-1h', undefined]]
  for (const [text, ms] of table) assert.equal(parseDuration(text), ms, text)
  fc.assert(fc.property(fc.integer({ min: 1, max: 1e10 }), ms => assert.equal(parseDuration(formatDuration(ms)), ms)))
})

const POOL_A = 'pool-a'
const POOL_B = 'pool-b'
function vm(uuid: string, extra: Partial<VmCandidate> = {}): VmCandidate {
  return { uuid, poolUuid: POOL_A, tags: [], power_state: 'Running', other_config: {}, blocked_operations: {}, is_a_template: false, is_a_snapshot: false, is_control_domain: false, ...extra }
}
const RECORDS: VmCandidate[] = [
  vm('web', { tags: ['prod'] }),
  vm('db', { tags: ['prod', 'db'], power_state: 'Halted' }),
  vm('dev', { tags: ['dev'], poolUuid: POOL_B }),
  vm('nobak', { tags: ['prod', 'xo:no-bak'] }),
  vm('nobak-reason', { tags: ['prod', 'xo:no-bak=too big'] }),
  vm('replica', { tags: ['prod'], blocked_operations: { start: 'Start operation for this vm is blocked, clone it if you want to use it.' }, other_config: { 'xo:backup:job': 'job-1' } }),
  vm('other-replica', { tags: ['prod'], blocked_operations: { start: 'x' }, other_config: { 'xo:backup:job': 'job-2' } }),
  vm('copied-keys', { tags: ['prod'], other_config: { 'xo:backup:job': 'job-1' } }),
  vm('template', { tags: ['prod'], is_a_template: true }),
  vm('snapshot', { tags: ['prod'], is_a_snapshot: true }),
  vm('dom0', { tags: ['prod'], is_control_domain: true }),
]
const smart = (s: Record<string, unknown>) => parseJob({ ...DESIGN_JOB, vms: { smart: s } }).vms

const SMART_TABLE: Array<[string, Record<string, unknown>, string[]]> = [
  ['everything', {}, ['web', 'db', 'dev', 'other-replica', 'copied-keys']],
  ['tag in', { tags: ['prod'] }, ['web', 'db', 'other-replica', 'copied-keys']],
  ['any of the tags', { tags: ['db', 'dev'] }, ['db', 'dev']],
  ['tag out', { notTags: ['db'] }, ['web', 'dev', 'other-replica', 'copied-keys']],
  ['pool in', { pools: [POOL_B] }, ['dev']],
  ['pool out', { notPools: [POOL_A] }, ['dev']],
  ['power state', { powerState: 'halted' }, ['db']],
  ['combined', { pools: [POOL_A], tags: ['prod'], notTags: ['db'], powerState: 'running' }, ['web', 'other-replica', 'copied-keys']],
  ['no match', { tags: ['nothing'] }, []],
]
for (const [name, selection, expected] of SMART_TABLE) {
  test(`smart selection: ${name}`, () => {
    const result = selectVms(smart(selection), RECORDS, 'job-1')
    assert.deepEqual(result.selected, expected)
  })
}

test('smart selection reports the VMs it leaves out for xo:no-bak and as own replicas, not templates', () => {
  const result = selectVms(smart({ tags: ['prod'] }), RECORDS, 'job-1')
  assert.deepEqual(result.excluded, [
    { uuid: 'nobak', reason: 'tagged xo:no-bak' },
    { uuid: 'nobak-reason', reason: 'tagged xo:no-bak' },
    { uuid: 'replica', reason: 'replica made by this job' },
  ])
})

test('a fixed list keeps its order, reports missing VMs and still excludes what must never be backed up', () => {
  const job = parseJob({ ...DESIGN_JOB, vms: { uuids: ['db', 'ghost', 'template', 'web', 'replica', 'db'] } })
  assert.deepEqual(selectVms(job.vms, RECORDS, 'job-1'), {
    selected: ['db', 'web'],
    excluded: [
      { uuid: 'template', reason: 'template' },
      { uuid: 'replica', reason: 'replica made by this job' },
    ],
    missing: ['ghost'],
  })
})

test('property: smart selection is pure and never selects an excluded VM', () => {
  const arbitraryVm = fc.record({
    uuid: fc.uuid(),
    poolUuid: fc.constantFrom(POOL_A, POOL_B),
    tags: fc.subarray(['prod', 'db', 'xo:no-bak', 'xo:no-bak=x']),
    power_state: fc.constantFrom('Running', 'Halted', 'Suspended'),
    other_config: fc.constantFrom({}, { 'xo:backup:job': 'job-1' }),
    blocked_operations: fc.constantFrom({}, { start: 'blocked' }),
    is_a_template: fc.boolean(),
    is_a_snapshot: fc.boolean(),
    is_control_domain: fc.boolean(),
  })
  fc.assert(
    fc.property(fc.array(arbitraryVm, { maxLength: 20 }), fc.subarray(['prod', 'db']), (generated, tags) => {
      const records = generated as VmCandidate[]
      const selection = smart({ tags })
      const first = selectVms(selection, records, 'job-1')
      assert.deepEqual(selectVms(selection, records, 'job-1'), first)
      for (const uuid of first.selected) {
        const record = records.find(r => r.uuid === uuid)!
        assert.ok(!record.is_a_template && !record.is_a_snapshot && !record.is_control_domain, 'a selected VM is neither a template, a snapshot nor the control domain')
        assert.ok(!record.tags.some(t => t.startsWith('xo:no-bak')), 'a selected VM has no xo:no-bak tag')
        assert.ok(!('start' in record.blocked_operations && record.other_config['xo:backup:job'] === 'job-1'), 'a selected VM is not a replica this job made (start blocked, xo:backup:job = job-1)')
      }
    }),
  )
})
