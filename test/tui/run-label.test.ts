// What the runs list and a run's header call a run: a backup by its job and schedule, a mirror the same and said
// to be one, anything else by its kind.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { runLabel } from '../../source/tui/screens/common.tsx'

test('a run is named by its job and schedule, a mirror run says it is one, a restore by its kind', () => {
  const base = { runId: 'r', start: 0, status: 'success' as const, jobName: 'offsite', scheduleName: 'nightly' }
  assert.equal(runLabel({ ...base, kind: 'backup' }), 'offsite (nightly)')
  assert.equal(runLabel({ ...base, kind: 'mirror' }), 'mirror offsite (nightly)')
  assert.equal(runLabel({ runId: 'r', start: 0, status: 'success', kind: 'restore' }), 'restore')
})
