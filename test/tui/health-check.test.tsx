// Health checks in the TUI (frames with ink-testing-library): the runs list shows a backup that succeeded and whose
// check failed as both facts; its tree opens on the failed check and says it beside the VM; the restore screen shows
// each point's last check and `h` health-checks a point by hand (SR → confirm → backup.check, its run followed).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS, goTo } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'
import type { RunSummary, TaskNode } from '../../source/tui/contract.ts'

const POINT = 'xo-vm-backups/vm-0000/20261122T030000Z.json'

function checkedRuns(): RunSummary[] {
  const [first, second, ...rest] = data.runs(4)
  return [
    { ...first!, status: 'success', healthCheck: 'failure', checkedBackups: [{ backupId: `/${POINT}`, status: 'failure' }] },
    { ...second!, runId: 'run-check', kind: 'health check', jobName: undefined, jobId: undefined, scheduleName: undefined, status: 'success', healthCheck: 'success', checkedBackups: [{ backupId: 'xo-vm-backups/vm-0001/20261122T030000Z.json', status: 'success' }] },
    ...rest,
  ]
}

function checkedTree(): TaskNode {
  const tree = data.runTree('run-00000', 'success')
  const web = tree.tasks![0]!
  const exportTask = web.tasks![1]!
  exportTask.tasks = [{
    id: 't-check', parentId: exportTask.id, message: 'health check', start: data.NOW, end: data.NOW + 60_000, duration: 60_000, status: 'failure',
    properties: { sr: { uuid: 'sr-local', name_label: 'Local storage' } },
    result: { code: 'HEALTH_CHECK_TIMEOUT', message: 'The health check timed out after 10 min waiting for the guest agent.' },
  }]
  exportTask.healthCheck = 'failure'
  web.healthCheck = 'failure'
  tree.tasks = [web]
  tree.healthCheck = 'failure'
  return tree
}

test('runs: a successful backup whose health check failed shows both; a health check run is named as one', async () => {
  const runs = checkedRuns()
  const client = fullDaemon().answer('run.list', runs).answer('run.get', ({ runId }) => ({ summary: runs.find(r => r.runId === runId)!, tree: checkedTree() }))
  const t = await renderApp(client)
  await goTo(t, 'runs')
  let frame = await t.waitFor('run-00000')
  assert.match(frame, /✔ success +✖ +nightly \(d/)
  assert.match(frame, /✔ success +✔ +health che/)
  assert.match(frame, /⚠ skipped +- +nightly/, 'a run without checks has none')
  await t.press(KEYS.enter)
  frame = await t.waitFor('HEALTH_CHECK_TIMEOUT')
  assert.match(frame, /✔ success, ✖ health check failed/, 'the header says both')
  assert.match(frame, /▾ ✔ VM web-01 .*· health check failed/, 'the VM stays a success, its check said beside it, opened on it')
  assert.match(frame, /✖ health check on SR Local storage/)
  t.unmount()
})

test("jobs: a job whose last run succeeded with a failed check shows the check's glyph beside the status", async () => {
  const [job, ...others] = data.jobs(2)
  const client = fullDaemon().answer('job.list', [{ ...job!, lastRun: { ...job!.lastRun!, healthCheck: 'failure' } }, ...others])
  const t = await renderApp(client)
  const frame = await t.waitFor('nightly')
  assert.match(frame, /nightly .*✔ success ✖/)
  t.unmount()
})

test('restore: the points show their last check; h health-checks one on an SR and follows its run', async () => {
  const client = fullDaemon().answer('run.list', checkedRuns()).answer('backup.check', { runId: 'run-00009' })
  const t = await renderApp(client)
  await goTo(t, 'restore')
  await t.waitFor('site-a')
  await t.press(KEYS.enter)
  await t.waitFor('db-01')
  await t.press(KEYS.down, KEYS.enter) // web-01
  let frame = await t.waitFor('✖ failed')
  assert.match(frame, /2026-11-22 \d\d:00:00 +delta +100 MiB +✖ failed/, 'the newest point failed its last check')
  assert.match(frame, /2026-11-21 \d\d:00:00 +delta +2\.0 GiB +- /, 'the older one was never checked')
  assert.match(frame, /h health check/)
  await t.press('h')
  await t.waitFor('DR storage')
  await t.press(KEYS.down, KEYS.enter)
  frame = await t.waitFor('Press enter to check')
  assert.match(frame, /Health-check web-01 as it was on 2026-11-22 \d\d:00:00/)
  assert.match(frame, /restored on the SR DR storage of the pool dr-site/)
  assert.doesNotMatch(frame, /Options/, 'a check has no restore options')
  await t.press(KEYS.enter)
  await t.waitFor('Run run-00009')
  assert.deepEqual(client.callsOf('backup.check'), [{ remote: 'site-a', backupId: POINT, sr: 'sr-dr' }])
  assert.deepEqual(client.callsOf('restore.start'), [], 'nothing restored to keep')
  t.unmount()
})
