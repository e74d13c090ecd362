// The job screen says what the job does in XO's words and where (remotes, SRs by name and pool), and
// offers cr-seed: source VM → one of its snapshots → its copy on the job's SR → confirm → job.crSeed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'
import { parseJob } from '../../source/protocol/job.ts'
import type { JobInfo, Vm } from '../../source/tui/contract.ts'
import type { FakeClient } from './fake-client.ts'

const GiB = data.GB
const disk = (uuid: string, size: number, srId: string) => ({ uuid, name: `${uuid} disk`, size, srId })

function crJob(memory = false): JobInfo {
  return {
    job: parseJob({
      id: 'job-cr',
      name: 'replicate',
      mode: 'delta',
      vms: { uuids: ['vm-web'] },
      remotes: ['site-a'],
      srs: ['sr-dr'],
      settings: memory ? { checkpointSnapshot: true } : {},
      schedules: [{ id: 'sched-cr', name: 'hourly', cron: '0 * * * *', timezone: 'UTC', retention: { backups: 3, replicas: 2 } }],
    }),
    enabled: true,
  }
}

/** web (2 snapshots) is the job's; on the DR SR: a copy whose disks match the newest snapshot, one that does not, and a running VM. */
function inventory(): Vm[] {
  const base = data.vms(1)[0]!
  return [
    {
      ...base, uuid: 'vm-web', name: 'web', disks: [disk('vdi-web', 20 * GiB, 'sr-main'), disk('vdi-web-data', 50 * GiB, 'sr-main')],
      snapshots: [
        { uuid: 'snap-old', name: 'web before upgrade', time: data.NOW - 7 * 86400_000, disks: [disk('vdi-s1', 20 * GiB, 'sr-main')] },
        { uuid: 'snap-new', name: 'web seed', time: data.NOW - 3600_000, disks: [disk('vdi-s2', 20 * GiB, 'sr-main'), disk('vdi-s3', 50 * GiB, 'sr-main')] },
      ],
    },
    { ...base, uuid: 'vm-other', name: 'other', disks: [disk('vdi-o', 10 * GiB, 'sr-main')], snapshots: [] },
    { ...base, uuid: 'vm-copy-bad', name: 'web import 1', poolId: 'pool-dr', poolName: 'dr-site', powerState: 'Halted', disks: [disk('vdi-b', 20 * GiB, 'sr-dr')], snapshots: [], template: true },
    { ...base, uuid: 'vm-copy', name: 'web import 2', poolId: 'pool-dr', poolName: 'dr-site', powerState: 'Halted', disks: [disk('vdi-c1', 50 * GiB, 'sr-dr'), disk('vdi-c2', 20 * GiB, 'sr-dr')], snapshots: [], template: true },
    { ...base, uuid: 'vm-running', name: 'started copy', poolId: 'pool-dr', poolName: 'dr-site', powerState: 'Running', disks: [disk('vdi-r', 20 * GiB, 'sr-dr')], snapshots: [] },
  ]
}

function daemon(info = crJob()): FakeClient {
  return fullDaemon().answer('job.list', [info]).answer('job.get', info).answer('vm.list', inventory())
}

test('job screen: the mode in XO words and the targets with the SR name and pool', async () => {
  const t = await renderApp(daemon(crJob(true)))
  await t.waitFor('replicate')
  await t.press(KEYS.enter)
  const frame = await t.waitFor('Targets:')
  assert.match(frame, /replicate · Delta backup \(1 remote\) \+ Continuous Replication with memory \(1 SR\)/)
  assert.match(frame, /Targets: remote site-a, SR DR storage \(pool dr-site\)/)
  assert.match(frame, /keep 3 backups, 2 replicas/)
  assert.match(frame.split('\n').at(-1)!, /s cr-seed/)
  await t.press('?')
  assert.match(await t.waitFor('Keys here'), /s +cr-seed/)
  t.unmount()
})

test('job screen: a job with no target reads as a rolling snapshot; cr-seed is refused for it with why', async () => {
  const rolling: JobInfo = { ...crJob(), job: parseJob({ ...crJob().job, remotes: [], srs: [], schedules: [{ name: 'hourly', cron: '0 * * * *', timezone: 'UTC', retention: { snapshots: 4 } }] }) }
  const client = daemon(rolling)
  const t = await renderApp(client)
  await t.waitFor('replicate')
  await t.press(KEYS.enter)
  let frame = await t.waitFor('Targets:')
  assert.match(frame, /replicate · Rolling snapshot \(no target\)/)
  assert.match(frame, /Targets: none: snapshots kept on the source pool/)
  await t.press('s')
  frame = await t.waitFor('cr-seed gives a continuous replication its base')
  assert.doesNotMatch(frame, /Source VM/)
  t.unmount()
})

test('cr-seed: source VM, then its snapshot from a list, then the copy on the SR (disks checked), then job.crSeed', async () => {
  const client = daemon().answer('job.crSeed', { jobId: 'job-cr', scheduleId: 'sched-cr', vmUuid: 'vm-web', snapshotUuid: 'snap-new', targetVmUuid: 'vm-copy', targetVmName: 'web - replicate - (20261122T090000Z)', srUuid: 'sr-dr', poolId: 'pool-dr', disks: [] })
  const t = await renderApp(client)
  await t.waitFor('replicate')
  await t.press(KEYS.enter)
  await t.waitFor('Targets:')
  await t.press('s')
  let frame = await t.waitFor('[Source VM]')
  assert.match(frame, /Jobs ▸ replicate ▸ cr-seed/)
  // Only the job's VM, not "other".
  assert.match(frame, /web +pool main +Running +2 snapshots/)
  assert.doesNotMatch(frame, /other/)
  await t.press(KEYS.enter)
  frame = await t.waitFor('[Its snapshot]')
  // Newest first.
  assert.match(frame, /›.*web seed +20 GiB \+ 50 GiB\n.*web before upgrade/)
  await t.press(KEYS.enter)
  frame = await t.waitFor('[Copy on the SR]')
  assert.match(frame, /✖ web import 1 \(template\) +SR DR storage \(pool dr-site\) +20 GiB: it has 1 disk/)
  assert.match(frame, /✔ web import 2 \(template\) +SR DR storage \(pool dr-site\) +50 GiB \+ 20 GiB/)
  assert.doesNotMatch(frame, /started copy/, 'a started VM is no base')
  await t.press(KEYS.enter)
  frame = await t.waitFor('cannot be this snapshot')
  assert.match(frame.replace(/\s+/g, ' '), /✖ The VM "web import 1" cannot be this snapshot's copy: it has 1 disk, the snapshot 2\./)
  await t.press(KEYS.down, KEYS.enter)
  frame = await t.waitFor('[Seed]')
  assert.match(frame.replace(/\s+/g, ' '), /The snapshot "web seed" \(.*\) of web becomes the base of "replicate" \(schedule hourly\), and the VM "web import 2" on SR DR storage \(pool dr-site\) its replica/)
  // esc steps back one pick; enter comes back.
  await t.press(KEYS.esc)
  await t.waitFor('[Copy on the SR]')
  await t.press(KEYS.down, KEYS.enter)
  await t.waitFor('Press enter to seed')
  assert.equal(client.callsOf('job.crSeed').length, 0)
  await t.press(KEYS.enter)
  frame = await t.waitFor('cr-seed replicate: done')
  assert.match(frame, /Jobs ▸ replicate +/)
  assert.deepEqual(client.callsOf('job.crSeed'), [{ id: 'job-cr', schedule: 'hourly', vm: 'vm-web', snapshot: 'snap-new', targetVm: 'vm-copy' }])
  t.unmount()
})

test("cr-seed: the daemon's refusal is shown whole on the confirmation, and nothing else happens", async () => {
  const sentence = "The target VM's disks do not match the snapshot's: disk 1: 50 GiB (53687091200 bytes) on the snapshot, 20 GiB (21474836480 bytes) on the target VM. Import this very snapshot onto the SR (export it as an XVA, import that), then run cr-seed again."
  const client = daemon().answer('job.crSeed', () => {
    throw Object.assign(new Error(sentence), { code: 'CR_SEED_DISKS_DIFFER' })
  })
  const t = await renderApp(client)
  await t.waitFor('replicate')
  await t.press(KEYS.enter)
  await t.waitFor('Targets:')
  await t.press('s')
  await t.waitFor('[Source VM]')
  await t.press(KEYS.enter, KEYS.enter)
  await t.waitFor('[Copy on the SR]')
  await t.press(KEYS.down, KEYS.enter)
  await t.waitFor('Press enter to seed')
  await t.press(KEYS.enter)
  const frame = await t.waitFor('run cr-seed again')
  assert.ok(frame.replace(/\s+/g, ' ').includes(`✖ cr-seed replicate failed: ${sentence}`), frame)
  assert.match(frame, /\[Seed\]/)
  t.unmount()
})

test('cr-seed: read-only refuses before anything is picked', async () => {
  const t = await renderApp(daemon(), { readonly: true })
  await t.waitFor('replicate')
  await t.press(KEYS.enter)
  await t.waitFor('Targets:')
  await t.press('s')
  const frame = await t.waitFor('Read-only: cr-seed is disabled')
  assert.doesNotMatch(frame, /Source VM/)
  t.unmount()
})
