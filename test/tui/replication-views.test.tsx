// Runs to SRs read like runs to remotes: the export task names the SR and its pool (and full or delta),
// its `target snapshot` and retention children show under it, and the lanes name an SR target and mark
// the writer that holds an export back.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS, goTo } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'
import type { TaskNode } from '../../source/tui/contract.ts'

const { NOW } = data
const GiB = data.GB

function replicationTree(runId: string): TaskNode {
  const task = (id: string, parentId: string, message: string, extra: Partial<TaskNode> = {}): TaskNode => ({ id, parentId, message, start: NOW, end: NOW + 60_000, duration: 60_000, status: 'success', ...extra })
  return {
    ...task(runId, '', 'backup', { data: { jobName: 'replicate' } }),
    tasks: [
      task('t-vm', runId, 'backup VM', {
        data: { type: 'VM', id: 'vm-0000', name_label: 'web-01' },
        tasks: [
          task('t-snap', 't-vm', 'snapshot'),
          task('t-remote', 't-vm', 'export', { data: { type: 'remote', id: 'site-a', name_label: 'file:///srv/backups', isFull: true }, tasks: [task('t-r-transfer', 't-remote', 'transfer', { result: { size: 2 * GiB } })] }),
          task('t-sr', 't-vm', 'export', {
            data: { type: 'SR', id: 'sr-dr', name_label: 'DR storage', isFull: false },
            tasks: [task('t-sr-transfer', 't-sr', 'transfer', { result: { size: 300 * 1024 * 1024 } }), task('t-target-snap', 't-sr', 'target snapshot'), task('t-retention', 't-sr', 'replica retention', { warnings: [{ message: 'the replica web-01 - replicate - (20261120T030000Z) is running: left in place', timestamp: NOW }] })],
          }),
          task('t-sr-gone', 't-vm', 'export', { data: { type: 'SR', id: 'sr-gone', name_label: 'Old NFS', isFull: true }, status: 'failure', result: { code: 'SR_BACKEND_FAILURE_44', message: 'The SR "Old NFS" is full: the replica was removed.' } }),
        ],
      }),
    ],
  }
}

test('logs: an SR export names the SR and its pool like a remote one, with its target snapshot and retention children', async () => {
  const runs = data.runs(1)
  const client = fullDaemon().answer('run.list', runs).answer('run.get', { summary: runs[0]!, tree: replicationTree(runs[0]!.runId) })
  // Wide enough for the failure's and the warning's sentences whole.
  const t = await renderApp(client, { columns: 120 })
  await goTo(t, 'runs')
  await t.waitFor(runs[0]!.runId)
  await t.press(KEYS.enter)
  await t.waitFor('backup VM')
  await t.press('e')
  let frame = await t.waitFor('export to SR')
  assert.match(frame, /export to remote site-a · full/)
  assert.match(frame, /export to SR DR storage \(pool dr-site\) · delta/)
  // An SR of no connected pool: the name the run recorded, no pool invented.
  assert.match(frame, /✖ export to SR Old NFS · full/)
  assert.match(frame, /✖ SR_BACKEND_FAILURE_44: The SR "Old NFS" is full: the replica was removed\./)
  assert.match(frame, /export to SR DR storage \(pool dr-site\) · delta[^\n]*\n[^\n]*transfer +1m00s +300 MiB[^\n]*\n[^\n]*target snapshot[^\n]*\n[^\n]*replica retention/)
  assert.match(frame, /⚠ the replica web-01 - replicate - \(20261120T030000Z\) is running: left in place/)
  t.unmount()
})

test('lanes: an SR target is named, and the writer holding the export back is marked', async () => {
  const lanes = data.lanes(1, 0.5)
  const holder = lanes.pools[0]!.vdiExports.holders[0]!
  holder.targets = { 'site-a': { done: 10 * GiB, state: 'writing' }, 'sr-dr': { done: 4 * GiB, state: 'writing' } }
  const client = fullDaemon().answer('lanes.get', lanes)
  const t = await renderApp(client, { columns: 120 })
  await goTo(t, 'lanes')
  let frame = await t.waitFor('SR DR storage')
  assert.match(frame, /vm-0 xvda .* site-a 50% SR DR storage 20% \(slowest\)/)
  // Once the SR catches up, nothing is marked.
  holder.targets = { 'site-a': { done: 12 * GiB, state: 'writing' }, 'sr-dr': { done: 12 * GiB, state: 'writing' } }
  client.notify('lanes', { snapshot: { ...lanes, at: NOW + 1000 } })
  frame = await t.waitFor('SR DR storage 60%')
  assert.doesNotMatch(frame, /slowest/)
  t.unmount()
})

test('logs: an export of a distributed job says why the VM went to that target, in the label and, unfolded, whole', async () => {
  const runs = data.runs(1)
  const task = (id: string, parentId: string, message: string, extra: Partial<TaskNode> = {}): TaskNode => ({ id, parentId, message, start: NOW, end: NOW + 60_000, duration: 60_000, status: 'success', ...extra })
  const why = "b, it holds the VM's chain, which this backup continues (a 1.0 GiB free, b 512 MiB free, c 2.0 GiB free)"
  const tree: TaskNode = {
    ...task(runs[0]!.runId, '', 'backup', { data: { jobName: 'spread' } }),
    tasks: [
      task('t-vm', runs[0]!.runId, 'backup VM', {
        data: { type: 'VM', id: 'vm-0000', name_label: 'web-01' },
        tasks: [task('t-b', 't-vm', 'export', { data: { type: 'remote', id: 'b', name_label: 'file:///srv/b', isFull: false, distributed: { reason: 'chain', why } }, tasks: [task('t-b-transfer', 't-b', 'transfer', { result: { size: GiB } })] })],
      }),
    ],
  }
  const client = fullDaemon().answer('run.list', runs).answer('run.get', { summary: runs[0]!, tree })
  const t = await renderApp(client, { columns: 140 })
  await goTo(t, 'runs')
  await t.waitFor(runs[0]!.runId)
  await t.press(KEYS.enter)
  await t.waitFor('backup VM')
  await t.press('e')
  const frame = await t.waitFor('ⓘ b, it holds')
  assert.match(frame, /export to remote b · delta · distributed: chain kept/)
  assert.match(frame, /ⓘ b, it holds the VM's chain, which this backup continues \(a 1\.0 GiB free, b 512 MiB free, c 2\.0 GiB free\)/)
  t.unmount()
})
