// The daemon's index of runs, with the real engine run machinery, state and run log store: what a client
// that reacts to a run's events reads about that run.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { Runs } from '../../source/daemon/runs.ts'
import { DaemonState } from '../../source/daemon/state.ts'
import { startRun } from '../../source/engine/run/backup-run.ts'
import { RunLogStore } from '../../source/tasks/index.ts'
import { sleep } from '../../source/util/abort.ts'
import { tempDir } from '../helpers/tools.ts'

test('a run is pending in the index from its first event on, and ends cancelled there when cancelled', async () => {
  const dir = await tempDir('lifeboat-runs-')
  try {
    const state = await DaemonState.open(dir.path)
    const seen: Array<string | undefined> = []
    const runs: Runs = new Runs({
      state, store: new RunLogStore(join(dir.path, 'runs')), onRunsChanged: () => {}, log: () => {},
      onTaskEvent: runId => seen.push(runs.summary(runId)?.status),
    })
    const runId = await runs.start('backup', { jobId: 'job-1', jobName: 'nightly' }, onEvent =>
      startRun({ name: 'backup run', data: {} }, 0, { onEvent }, async (task, signal) => {
        task.info('vms', { vms: [] })
        await sleep(60_000, signal)
      }),
    )
    assert.deepEqual(seen, ['pending', 'pending'], 'the run start and its first info')
    assert.deepEqual(runs.list({ status: 'pending' }).map(run => run.runId), [runId])
    await runs.cancelAll('the daemon was stopped (SIGTERM)', 30_000)
    assert.equal(runs.summary(runId)?.status, 'cancelled')
    assert.deepEqual(runs.list({ status: 'cancelled' }).map(run => run.runId), [runId])
  } finally {
    await dir.cleanup()
  }
})

test('a job is free from its run root end event on, before the log and the index are written', async () => {
  const dir = await tempDir('lifeboat-runs-')
  try {
    const state = await DaemonState.open(dir.path)
    const runningAtEnd: Array<string | undefined> = []
    const runs: Runs = new Runs({
      state, store: new RunLogStore(join(dir.path, 'runs')), onRunsChanged: () => {}, log: () => {},
      onTaskEvent: (runId, event) => {
        if (event.type === 'end' && event.id === runId) runningAtEnd.push(runs.runningRunOf('job-1'))
      },
    })
    const runId = await runs.start('backup', { jobId: 'job-1', jobName: 'nightly' }, onEvent =>
      startRun({ name: 'backup run', data: {} }, 0, { onEvent }, async task => {
        task.info('vms', { vms: [] })
      }),
    )
    assert.ok(runId.length > 0, 'the run started')
    for (let i = 0; i < 250 && runs.summary(runId)?.status === 'pending'; i++) await sleep(20)
    assert.equal(runs.summary(runId)?.status, 'success', 'the run ended and its index entry says so')
    assert.deepEqual(runningAtEnd, [undefined], 'a client told of the end (job run --wait) can start the job again at once')
  } finally {
    await dir.cleanup()
  }
})
