// What the screens tell must be true: elapsed times tick, transfers show bytes and an honest speed and ETA,
// times name their timezone, restore points and restores name what they are, strings from outside cannot
// drive the terminal, and a cancelled run reads cancelled everywhere.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS, goTo } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'
import type { TaskNode } from '../../source/tui/contract.ts'

const MiB = 1024 * 1024

test('a run in progress: its elapsed time ticks with no event from the daemon', async () => {
  const start = Date.now() - 5000
  const summary = { ...data.runs(1)[0]!, status: 'pending' as const, start }
  delete (summary as { end?: number }).end
  const tree: TaskNode = { id: summary.runId, message: 'backup', start, status: 'pending' }
  const t = await renderApp(fullDaemon().answer('run.list', [summary]).answer('run.get', { summary, tree }))
  await goTo(t, 'runs')
  await t.waitFor('⟳ running')
  await t.press(KEYS.enter)
  const first = /started [^·]+ · (\d+s)/.exec(await t.waitFor('⟳ running backup'))![1]
  const later = await t.waitFor(new RegExp(`started [^·]+ · (?!${first})\\d+s`))
  assert.match(later, /⟳ running backup nightly/)
  t.unmount()
})

test('lanes: a transfer shows bytes done and its speed; an XVA of unknown size no invented ETA; slow is KiB/s, not 0.0 MiB/s', async () => {
  const snapshot = data.lanes(0)
  snapshot.pools[0]!.vmExports.holders = [{ runId: 'r', jobName: 'nightly', vm: 'vm-x', vmName: 'full-vm', phase: 'export', since: data.NOW - 60_000, done: 3 * 1024 * MiB, bytesPerSecond: 50 * MiB }]
  snapshot.pools[0]!.vdiExports.holders = [{ runId: 'r', jobName: 'nightly', vm: 'vm-y', vmName: 'slow-vm', disk: 'xvda', phase: 'export', since: data.NOW - 60_000, done: 10 * MiB, total: 20 * MiB, bytesPerSecond: 300 * 1024 }]
  const t = await renderApp(fullDaemon().answer('lanes.get', snapshot))
  await goTo(t, 'lanes')
  const frame = await t.waitFor('full-vm')
  const xva = frame.split('\n').find(line => line.includes('full-vm'))!
  assert.match(xva, /full-vm +export +3\.0 GiB +50\.0 MiB\/s +1m00s so far/)
  assert.doesNotMatch(xva, /%|░/)
  const slow = frame.split('\n').find(line => line.includes('slow-vm'))!
  assert.match(slow, /50% +10 MiB +300 KiB\/s +34s/)
  t.unmount()
})

test('the footer says a run started, not that it is done', async () => {
  const t = await renderApp(fullDaemon().answer('job.run', { runId: 'run-new' }))
  await t.waitFor('nightly')
  await t.press('r')
  const frame = await t.waitFor('run nightly: started')
  assert.match(frame, /started \(run run-new\)/)
  assert.doesNotMatch(frame, /done/)
  t.unmount()
})

test("a schedule's next run is told in its timezone, named when it is not the local one", async () => {
  const t = await renderApp(fullDaemon())
  // NOW + 1 h is 11:00 UTC, 12:00 in Paris.
  let frame = await t.waitFor('nightly')
  assert.match(frame, /nightly .* 11-22 12:00 GMT\+1/)
  await t.press(KEYS.enter)
  frame = await t.waitFor('next run')
  assert.match(frame, /next run 2026-11-22 12:00 Europe\/Paris/)
  t.unmount()
})

test("restore points show seconds and the job's name", async () => {
  const t = await renderApp(fullDaemon())
  await goTo(t, 'restore')
  await t.waitFor('site-a')
  await t.press(KEYS.enter)
  await t.waitFor('db-01')
  await t.press(KEYS.down, KEYS.enter)
  const frame = await t.waitFor('Restore point]')
  await t.waitFor('nightly')
  assert.match(t.frame(), /2026-11-22 10:00:00 +delta +100 MiB +- +never +nightly/)
  assert.doesNotMatch(frame, /job-0/)
  t.unmount()
})

test('restore points say their last verification: never, verified (with when), failed with its code; the confirm step says why', async () => {
  const t = await renderApp(fullDaemon())
  await goTo(t, 'restore')
  await t.waitFor('site-a')
  await t.press(KEYS.enter)
  await t.waitFor('db-01')
  await t.press(KEYS.down, KEYS.enter)
  await t.waitFor('Restore point]')
  await t.waitFor('nightly')
  assert.match(t.frame(), /2026-11-22 10:00:00 .* never /, 'the newest point was never verified')
  await t.press(KEYS.esc)
  await t.waitFor('[VM]')
  await t.press(KEYS.up, KEYS.enter)
  await t.waitFor('site-a ▸ db-01')
  assert.match(t.frame(), /2026-11-22 10:00:00 +full .* ✔ 11-22 09:00 +job-1/, 'a verified point says when (structure only: no "data")')
  await t.press(KEYS.esc)
  await t.waitFor('[VM]')
  await t.press(KEYS.down, KEYS.enter)
  await t.waitFor('Restore point]')
  assert.match(t.frame(), /2026-11-21 10:00:00 .* ✖ VHD_TRUNCATED /, 'the older one failed, with its code')
  await t.press(KEYS.down, KEYS.enter)
  await t.waitFor('Target SR]')
  await t.press(KEYS.enter)
  await t.waitFor('Options]')
  await t.press(KEYS.enter)
  const confirm = await t.waitFor('Confirm]')
  assert.match(confirm, /verification: FAILED on 2026-11-22 09:00: VHD_TRUNCATED, its disk is unusable/, confirm)
  t.unmount()
})

test('a finished restore names the VM it created, with its uuid', async () => {
  const summary = { runId: 'run-restore', kind: 'restore' as const, start: data.NOW, end: data.NOW + 60_000, status: 'success' as const }
  const tree: TaskNode = { id: 'run-restore', message: 'restore', start: data.NOW, end: data.NOW + 60_000, duration: 60_000, status: 'success', result: { vmUuid: '5f0c1d2e-3a4b-4c5d-8e9f-00112233abcd', vmName: 'web-01 (restored 2026-11-22 10:00:00 from site-a)', pool: 'pool-dr' } }
  const t = await renderApp(fullDaemon().answer('run.list', [summary]).answer('run.get', { summary, tree }))
  await goTo(t, 'runs')
  await t.waitFor('run-restore')
  await t.press(KEYS.enter)
  const frame = await t.waitFor('Restored as')
  assert.ok(frame.replace(/\n/g, ' ').includes('Restored as the VM "web-01 (restored 2026-11-22 10:00:00 from site-a)" (5f0c1d2e-3a4b-4c5d-8e9f-00112233abcd)'), frame)
  t.unmount()
})

test('names from XAPI and jobs cannot drive the terminal: control sequences are shown as �', async () => {
  const evil = 'web\u001B]0;pwned\u0007-01\u001B[2J'
  const vms = data.vms(2).map((vm, i) => (i === 0 ? { ...vm, name: evil } : vm))
  const jobs = data.jobs(1)
  jobs[0]!.job.name = `night\u001B[31mly`
  const t = await renderApp(fullDaemon().answer('vm.list', vms).answer('job.list', jobs).answer('job.get', jobs[0]!))
  let frame = await t.waitFor('night')
  assert.doesNotMatch(frame, /\u001B/)
  assert.match(frame, /night\ufffd\[3/)
  await t.press(KEYS.enter)
  frame = await t.waitFor('Jobs ▸ night')
  assert.doesNotMatch(frame, /\u001B/)
  assert.match(frame, /Jobs ▸ night\ufffd\[31mly/)
  await goTo(t, 'vms')
  frame = await t.waitFor('2 VMs')
  assert.doesNotMatch(frame, /\u001B|\u0007/)
  assert.match(frame, /web\ufffd\]0;pwned\ufffd-01\ufffd\[2J/)
  t.unmount()
})

test('a cancelled run reads ⏸ cancelled on the jobs, job, runs and tree screens, never ✖', async () => {
  const cancelled = { ...data.runs(1)[0]!, status: 'cancelled' as const }
  const jobs = data.jobs(1)
  jobs[0]!.lastRun = cancelled
  const tree: TaskNode = { ...data.runTree(cancelled.runId, 'cancelled'), tasks: [{ id: 't-vm', parentId: cancelled.runId, message: 'backup VM', data: { vmName: 'web-01' }, start: data.NOW, end: data.NOW + 1000, duration: 1000, status: 'cancelled' }] }
  const t = await renderApp(fullDaemon().answer('job.list', jobs).answer('job.get', jobs[0]!).answer('run.list', [cancelled]).answer('run.get', { summary: cancelled, tree }))
  let frame = await t.waitFor('nightly')
  assert.match(frame, /nightly .*⏸ cancelled/)
  await t.press(KEYS.enter)
  frame = await t.waitFor('Recent runs')
  assert.match(frame, /⏸ cancelled +11-22/)
  await goTo(t, 'runs')
  frame = await t.waitFor('run-00000')
  assert.match(frame, /⏸ cancelled +- +nightly/)
  await t.press(KEYS.enter)
  frame = await t.waitFor('⏸ cancelled backup')
  assert.match(frame, /⏸ backup VM web-01/)
  assert.doesNotMatch(frame, /✖/)
  t.unmount()
})

test("a running run's tree shows its transfers now: bytes, %, speed and ETA", async () => {
  const t = await renderApp(fullDaemon())
  await goTo(t, 'runs')
  await t.waitFor('run-00002')
  await t.press(KEYS.down, KEYS.down, KEYS.enter)
  const frame = await t.waitFor('⟳ running backup')
  assert.match(frame, /vm-0 xvda +█{2}░{2} +50% +10 GiB +30\.0 MiB\/s +5m41s/)
  t.unmount()
})

test("a verify run's tree names each VM and each backup by its date, and shows why one failed", async () => {
  const summary = { runId: 'run-verify', kind: 'verify' as const, start: data.NOW, end: data.NOW + 5000, status: 'failure' as const }
  const at = { start: data.NOW, end: data.NOW + 5000, duration: 5000 }
  const backup = (date: string, failed: boolean): TaskNode => ({
    id: `b-${date}`, parentId: 'vm', message: 'verify backup', data: { backupId: `/xo-vm-backups/vm-0000/${date}.json` }, ...at,
    status: failed ? 'failure' : 'success', ...(failed && { result: { code: 'VHD_PARENT_MISSING', message: 'its parent "20261120T030000Z.vhd" is missing' } }),
  })
  const tree: TaskNode = {
    id: 'run-verify', message: 'verify', ...at, status: 'failure',
    tasks: [{ id: 'remote', parentId: 'run-verify', message: 'verify remote', data: { remote: 'site-a' }, ...at, status: 'failure',
      tasks: [{ id: 'vm', parentId: 'remote', message: 'verify VM', data: { type: 'VM', id: 'vm-0000', vmName: 'web-01' }, ...at, status: 'failure', tasks: [backup('20261121T030000Z', true), backup('20261122T030000Z', false)] }] }],
  }
  const t = await renderApp(fullDaemon().answer('run.list', [summary]).answer('run.get', { summary, tree }))
  await goTo(t, 'runs')
  await t.waitFor('run-verify')
  await t.press(KEYS.enter)
  const frame = await t.waitFor('verify VM web-01')
  assert.match(frame, /verify remote site-a/, frame)
  assert.match(frame, /verify backup 20261121T030000Z/, 'the failed backup is named by its date')
  assert.match(frame, /VHD_PARENT_MISSING: its parent "20261120T030000Z\.vhd" is missing/, 'and says why')
  t.unmount()
})
