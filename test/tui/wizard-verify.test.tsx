// The wizard makes verify jobs: type verify on the first step, Read data in the place of the mode; Where comes
// before Which VMs (the remotes to check, no SR), whose list is the VMs those remotes hold; When keeps nothing;
// How is the timeout alone; each step shows its problem in place, and esc leaves from every step.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS, type Terminal } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'

/** A new job named `name` turned into a verify job, on the first step (the focus on Type). */
async function verifyBasics(t: Terminal, name: string): Promise<string> {
  await t.waitFor('nightly')
  await t.press('n')
  await t.waitFor('[Job]')
  await t.type(name)
  await t.press(KEYS.down, KEYS.down, KEYS.right, KEYS.right)
  return t.waitFor('‹ verify ›')
}

test('wizard: a verify job reading every block of one VM on two remotes, on its own schedule, with a timeout', async () => {
  const client = fullDaemon().answer('backup.list', ({ remote }) => (remote === 'site-a' ? data.restorePoints() : data.restorePoints().slice(2))).answer('job.create', data.jobs(1)[0]!)
  const t = await renderApp(client)
  let frame = await verifyBasics(t, 'check')
  assert.match(frame, /Verify: reads the backups on remotes and records each one verified or failed/)
  assert.doesNotMatch(frame, /Mode /, 'a verify job has no mode')
  await t.press(KEYS.up, ' ')
  frame = await t.waitFor('[x] every block read back')
  await t.press(KEYS.enter)
  frame = await t.waitFor('[Where]')
  assert.match(frame, /Job → \[Where\] → Which VMs → When → How → Review/, 'the remotes come before the VMs')
  assert.match(frame, /The remotes whose backups are checked \(0 remotes\)/)
  assert.doesNotMatch(frame, /SR /, 'a verify job takes no SR')
  assert.match(frame, /✖ remotes: a verify job checks the backups on remotes: list at least one\./, 'the problem shows in place')
  await t.press(' ', KEYS.down, ' ')
  frame = await t.waitFor('Verify with read data (2 remotes)')
  assert.doesNotMatch(frame, /✖/)
  await t.press(KEYS.enter)
  frame = await t.waitFor('VMs with backups on site-a, offsite')
  assert.match(frame, /\[ \] web-01 +2 backups on site-a, offsite/)
  assert.match(frame, /\[ \] db-01 +2 backups on site-a, offsite/)
  assert.doesNotMatch(frame, /smart selection|p: /, 'a verify job picks VMs by uuid only')
  await t.press('p')
  frame = await t.waitFor('(0 picked; none: every VM)')
  await t.press(KEYS.down, ' ')
  await t.waitFor('(1 picked; none: every VM)')
  await t.press(KEYS.enter)
  frame = await t.waitFor('[When]')
  assert.doesNotMatch(frame, /Keep |Full every/, 'a verify job keeps nothing')
  await t.press(KEYS.down)
  for (let k = 0; k < 9; k++) await t.press(KEYS.backspace)
  await t.type('0 4 * * 0')
  frame = await t.waitFor('✔ Next runs')
  await t.press(KEYS.down)
  for (let k = 0; k < 40; k++) await t.press(KEYS.backspace)
  await t.type('Mars/Olympus')
  frame = await t.waitFor('✖')
  assert.match(frame, /✖ Timezone: /, 'a wrong timezone is said on the When step')
  for (let k = 0; k < 12; k++) await t.press(KEYS.backspace)
  await t.type('Europe/Paris')
  await t.waitFor('✔ Next runs (Europe/Paris)')
  await t.press(KEYS.enter)
  frame = await t.waitFor('[How]')
  assert.match(frame, /Timeout/)
  assert.doesNotMatch(frame, /VMs at once|Compression|Health check SR|Distribute/, 'the timeout is its one setting')
  await t.type('2h')
  await t.press(KEYS.enter)
  frame = await t.waitFor('Press enter to save')
  assert.match(frame, /check · verify, reading every block · 1 VM picked/)
  assert.match(frame, /Does: Verify with read data \(2 remotes\)/)
  assert.match(frame, /Checks: remote site-a, remote offsite/)
  assert.match(frame, /When: daily at "0 4 \* \* 0" \(Europe\/Paris\)/)
  assert.match(frame, /Keep: nothing/)
  assert.match(frame, /How: timeout 2h/)
  assert.doesNotMatch(frame, /Check: |plan the first run/)
  await t.press(KEYS.enter)
  await t.waitFor('create check: done')
  const [params] = client.callsOf('job.create') as Array<{ job: Record<string, unknown> }>
  const { schedules, ...job } = params!.job
  assert.deepEqual(job, { name: 'check', type: 'verify', readData: true, vms: { uuids: ['vm-0001'] }, remotes: ['site-a', 'offsite'], settings: { timeout: '2h' } })
  assert.deepEqual(schedules, [{ name: 'daily', cron: '0 4 * * 0', timezone: 'Europe/Paris', enabled: true, retention: {} }])
  t.unmount()
})

test('wizard: esc leaves a verify job from every step, asking once something was changed', async () => {
  const t = await renderApp(fullDaemon())
  for (const presses of [[], [KEYS.enter], [KEYS.enter, KEYS.enter], [KEYS.enter, KEYS.enter, KEYS.enter], [KEYS.enter, KEYS.enter, KEYS.enter, KEYS.enter], [KEYS.enter, KEYS.enter, KEYS.enter, KEYS.enter, KEYS.enter]]) {
    await verifyBasics(t, 'x')
    await t.press(...presses)
    await t.waitFor(`[${['Job', 'Where', 'Which VMs', 'When', 'How', 'Review'][presses.length]}]`)
    await t.press(KEYS.esc)
    await t.waitFor('discard this new job? [y/n]')
    await t.press('y')
    await t.waitFor('Next run')
  }
  t.unmount()
})

test('e on a verify job opens it in the wizard as a verify job, and saving keeps it one', async () => {
  const verifyJob = { ...data.jobs(1)[0]!, job: { ...data.jobs(1)[0]!.job, type: 'verify' as const, readData: true, remotes: ['site-a'], srs: [], vms: { uuids: ['vm-0000'] }, settings: { timeout: 3_600_000 }, schedules: [{ ...data.jobs(1)[0]!.job.schedules[0]!, retention: {} }] } }
  const client = fullDaemon().answer('job.get', () => verifyJob).answer('job.update', verifyJob)
  const t = await renderApp(client)
  await t.waitFor('nightly')
  await t.press('e')
  let frame = await t.waitFor('‹ verify ›')
  assert.match(frame, /Read data +\[x\]/)
  await t.press(KEYS.enter, KEYS.enter, KEYS.enter, KEYS.enter, KEYS.enter)
  frame = await t.waitFor('Press enter to save')
  assert.match(frame, /verify, reading every block · 1 VM picked/)
  assert.match(frame, /How: timeout 60m/)
  await t.press(KEYS.enter)
  await t.waitFor('save nightly: done')
  const [params] = client.callsOf('job.update') as Array<{ job: Record<string, unknown> }>
  assert.equal(params!.job.type, 'verify')
  assert.equal(params!.job.readData, true)
  assert.equal(params!.job.mode, undefined)
  assert.deepEqual(params!.job.vms, { uuids: ['vm-0000'] })
  t.unmount()
})
