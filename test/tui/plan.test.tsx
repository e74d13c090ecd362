// The plan view: from the jobs screen (p) the plan of the job's next run, its problems in their colour,
// scrolled at 80×24, each line readable whole; from the wizard's Review (p) the plan of the draft, asked of
// the daemon with the job as written (nothing saved), and esc back to the Review with the draft kept.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { frameFits, renderApp, KEYS } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'

test('plan: p on a job shows the plan of its next run; it scrolls, fits 80×24, and enter reads a line whole', async () => {
  const client = fullDaemon().answer('job.plan', data.plan())
  const t = await renderApp(client)
  await t.waitFor('nightly')
  await t.press('p')
  let frame = await t.waitFor('Plan of job "nightly" (delta)')
  assert.deepEqual(client.callsOf('job.plan'), [{ id: 'job-0' }])
  assert.match(frame, /1 problem would stop it \(below\)/)
  assert.match(frame, /delta root \(20 GiB\): delta from the job's last exported snapshot/)
  assert.match(frame, /full {2}data \(100 GiB\): the newest backup of this disk on remote site-a/)
  assert.match(frame, /remote site-a: 30 GiB free; receives 40 GiB/)
  assert.equal(frameFits(frame, 80, 24), undefined, 'the plan fits 80×24')
  assert.match(frame, /… \d+ more/)
  await t.press('G')
  frame = await t.waitFor('other-11')
  assert.match(frame, /more above/)
  // Back to the problem and read it whole.
  await t.press('/')
  await t.type('TARGET_TOO')
  await t.press(KEYS.enter)
  frame = await t.waitFor(/error TARGET_TOO_SMALL/)
  await t.press(KEYS.enter)
  frame = await t.waitFor('Plan — any key closes')
  assert.match(frame.replace(/\s+/g, ' '), /remote "site-a" has 30 GiB free; this run is expected to write 40 GiB there \(recent deltas \+ allocated sizes\)\./)
  t.unmount()
})

test('plan: the wizard Review plans the draft (p), the daemon gets the job as written, esc returns to the Review', async () => {
  const client = fullDaemon().answer('job.plan', data.plan(0))
  const t = await renderApp(client)
  await t.waitFor('nightly')
  await t.press('n')
  await t.type('drafted')
  await t.press(KEYS.enter, KEYS.enter, ' ', KEYS.enter, KEYS.enter, KEYS.enter)
  let frame = await t.waitFor('Press enter to save')
  assert.match(frame, /p plan the first run/)
  await t.press('p')
  frame = await t.waitFor('plan, not saved')
  assert.match(frame, /Plan of job "nightly"/)
  const [params] = client.callsOf('job.plan') as Array<{ job: { name: string; mode: string; remotes: string[] }; id?: string }>
  assert.equal(params!.job.name, 'drafted')
  assert.equal(params!.id, undefined, 'a new job has no id yet')
  assert.deepEqual(client.callsOf('job.create'), [], 'planning saves nothing')
  await t.press(KEYS.esc)
  frame = await t.waitFor('Press enter to save')
  assert.match(frame, /^drafted · delta/m)
  t.unmount()
})
