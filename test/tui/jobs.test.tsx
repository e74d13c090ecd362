import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FakeClient } from './fake-client.ts'
import { renderApp, KEYS } from './render.tsx'
import { jobs } from './data.ts'

test('jobs: the table lists jobs with status glyphs, next run and a footer', async () => {
  const client = new FakeClient().answer('job.list', jobs(2))
  const t = await renderApp(client)
  const frame = await t.waitFor('nightly')
  assert.match(frame, /Lifeboat ▸ Jobs/)
  assert.match(frame, /✔ success/)
  assert.match(frame, /⏸/)
  assert.match(frame, /n new/)
  t.unmount()
})

test('jobs: r runs the selected job; d asks for the name before deleting', async () => {
  const client = new FakeClient().answer('job.list', jobs(2)).answer('job.run', { runId: 'run-9' }).answer('job.delete', {})
  const t = await renderApp(client)
  await t.waitFor('nightly')
  await t.press('r')
  assert.deepEqual(client.callsOf('job.run'), [{ id: 'job-0' }])
  await t.press(KEYS.down, 'd')
  await t.waitFor('Type "job-1"')
  await t.type('job-x')
  await t.press(KEYS.enter)
  assert.equal(client.callsOf('job.delete').length, 0)
  await t.press(KEYS.backspace)
  await t.type('1')
  await t.press(KEYS.enter)
  assert.deepEqual(client.callsOf('job.delete'), [{ id: 'job-1' }])
  t.unmount()
})

test('jobs: a daemon error is shown as its sentence, not a crash', async () => {
  const client = new FakeClient().answer('job.list', () => {
    throw Object.assign(new Error('The state file is unreadable: restore it from /var/lib/lifeboat/state.json.bak.'), { code: 'STATE_CORRUPT' })
  })
  const t = await renderApp(client)
  const frame = await t.waitFor('✖ The state file is unreadable')
  assert.match(frame, /No jobs yet/)
  t.unmount()
})
