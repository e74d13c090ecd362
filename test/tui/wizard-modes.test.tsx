// The wizard offers every mode of a job by what it sends where: remotes (Full / Delta backup), SRs
// (Disaster Recovery / Continuous Replication, with memory), both, or nothing (Rolling snapshot), with
// the retention each one needs, and the daemon's own sentences at the step they are about.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS, type Terminal } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'

type CreatedJob = { mode: string; remotes: string[]; srs: string[]; settings: Record<string, unknown>; schedules: Array<{ retention: Record<string, number> }> }

/** A new job named `name` in `mode`, through Which VMs (the smart selection as it opens), to Where. */
async function toWhere(t: Terminal, name: string, mode: 'delta' | 'full'): Promise<void> {
  await t.waitFor('nightly')
  await t.press('n')
  await t.waitFor('[Job]')
  await t.type(name)
  if (mode === 'full') {
    await t.press(KEYS.down, KEYS.right)
    await t.waitFor('Full: the whole VM at every run')
  }
  await t.press(KEYS.enter)
  await t.waitFor('Matches')
  await t.press(KEYS.enter)
  await t.waitFor('[Where]')
}

test('wizard: the Job step says what each mode does to remotes and to SRs, in XO words', async () => {
  const t = await renderApp(fullDaemon())
  await t.waitFor('nightly')
  await t.press('n')
  let frame = await t.waitFor('[Job]')
  assert.match(frame.replace(/\s+/g, ' '), /Delta: the whole disks once, then only the changed blocks\. To remotes: VHD chains \(Delta backup\); to SRs: Continuous Replication\./)
  await t.press(KEYS.down, KEYS.right)
  frame = await t.waitFor('‹ full ›')
  assert.match(frame.replace(/\s+/g, ' '), /Full: the whole VM at every run\. To remotes: one XVA file \(Full backup\); to SRs: Disaster Recovery\./)
  t.unmount()
})

test('wizard: the Where step names the job by what is picked: rolling snapshot, backup, replication, both', async () => {
  const t = await renderApp(fullDaemon())
  await toWhere(t, 'modes', 'delta')
  let frame = t.frame()
  assert.match(frame, /Rolling snapshot \(no target\): nothing is sent anywhere/)
  assert.match(frame, /SR DR storage +pool dr-site · nfs · 900 GiB free/)
  // The DR pool's SR: continuous replication.
  await t.press(KEYS.down, KEYS.down, KEYS.down, ' ')
  frame = await t.waitFor('Continuous Replication (1 SR)')
  assert.match(frame, /clone the replica to start it/)
  assert.doesNotMatch(frame, /Rolling snapshot/)
  // And a remote: both, one line each.
  await t.press(KEYS.up, KEYS.up, KEYS.up, ' ')
  frame = await t.waitFor('Delta backup (1 remote)')
  assert.match(frame, /Continuous Replication \(1 SR\)/)
  assert.match(frame, /\(1 remote, 1 SR\)/)
  t.unmount()
})

test('wizard: a full job to an SR only is Disaster Recovery; When asks for replicas, not backups', async () => {
  const client = fullDaemon().answer('job.create', data.jobs(1)[0]!)
  const t = await renderApp(client)
  await toWhere(t, 'dr-copy', 'full')
  await t.press(KEYS.down, KEYS.down, KEYS.down, ' ')
  let frame = await t.waitFor('Disaster Recovery (1 SR): every run copies the whole VM onto each SR')
  await t.press(KEYS.enter)
  frame = await t.waitFor('[When]')
  assert.doesNotMatch(frame, /Keep backups/)
  assert.match(frame, /Keep replicas +replica VMs per SR \(empty: 1\)/)
  // Name, cron, timezone, then the replicas: 0 is refused at once, 2 is kept.
  await t.press(KEYS.down, KEYS.down, KEYS.down)
  await t.type('0')
  frame = await t.waitFor('✖ Keep replicas: the job replicates to 1 SR: keep at least 1 replica per SR')
  await t.press(KEYS.backspace)
  await t.type('2')
  await t.waitFor('Keep replicas      2')
  assert.doesNotMatch(t.frame(), /✖/)
  await t.press(KEYS.enter, KEYS.enter)
  frame = await t.waitFor('Press enter to save')
  assert.match(frame, /Does: Disaster Recovery \(1 SR\)/)
  assert.match(frame, /To: SR DR storage \(pool dr-site\)/)
  assert.match(frame, /Keep: 2 replicas per SR/)
  await t.press(KEYS.enter)
  await t.waitFor('create dr-copy: done')
  const [params] = client.callsOf('job.create') as Array<{ job: CreatedJob }>
  assert.equal(params!.job.mode, 'full')
  assert.deepEqual(params!.job.remotes, [])
  assert.deepEqual(params!.job.srs, ['sr-dr'])
  // The 7 backups the draft starts with are not kept for a job without remotes.
  assert.deepEqual(params!.job.schedules[0]!.retention, { replicas: 2 })
  t.unmount()
})

test('wizard: continuous replication with memory is named so on the review', async () => {
  const client = fullDaemon().answer('job.create', data.jobs(1)[0]!)
  const t = await renderApp(client)
  await toWhere(t, 'cr-ram', 'delta')
  await t.press(KEYS.down, KEYS.down, KEYS.down, ' ', KEYS.enter)
  await t.waitFor('[When]')
  await t.press(KEYS.down, KEYS.down, KEYS.down)
  await t.type('3')
  await t.press(KEYS.enter)
  let frame = await t.waitFor('[How]')
  assert.match(frame, /With memory +\[ \] RAM in the snapshot: a CR replica resumes, no boot/)
  assert.doesNotMatch(frame, /Distribute/, 'the daemon refuses distributed backups: the wizard does not offer them')
  await t.press(KEYS.down, KEYS.down, KEYS.down, KEYS.down, ' ')
  await t.waitFor('With memory        [x]')
  await t.press(KEYS.enter)
  frame = await t.waitFor('Press enter to save')
  assert.match(frame, /Does: Continuous Replication with memory \(1 SR\)/)
  assert.match(frame, /snapshot with memory/)
  await t.press(KEYS.enter)
  await t.waitFor('create cr-ram: done')
  const [params] = client.callsOf('job.create') as Array<{ job: CreatedJob }>
  assert.equal(params!.job.mode, 'delta')
  assert.equal(params!.job.settings.checkpointSnapshot, true)
  assert.deepEqual(params!.job.schedules[0]!.retention, { replicas: 3 })
  t.unmount()
})

test('wizard: with no target the job is a rolling snapshot, and it must keep at least 1 snapshot', async () => {
  const client = fullDaemon().answer('job.create', data.jobs(1)[0]!)
  const t = await renderApp(client)
  await toWhere(t, 'rolling', 'delta')
  await t.press(KEYS.enter)
  let frame = await t.waitFor('✖ Keep snapshots: with no remote and no SR this is a rolling-snapshot job: keep')
  assert.doesNotMatch(frame, /Keep backups|Keep replicas/)
  assert.match(frame, /Next runs/, 'the next runs do not wait for the retention')
  await t.press(KEYS.enter, KEYS.enter)
  frame = await t.waitFor('[Review]')
  assert.match(frame, /Does: Rolling snapshot \(no target\)/)
  assert.match(frame, /To: nowhere: snapshots only/)
  await t.press(KEYS.enter)
  assert.equal(client.callsOf('job.create').length, 0, 'refused in the wizard, not sent')
  await t.press(KEYS.pageUp, KEYS.pageUp)
  await t.waitFor('[When]')
  await t.press(KEYS.down, KEYS.down, KEYS.down)
  await t.type('4')
  await t.waitFor('Keep snapshots     4')
  assert.doesNotMatch(t.frame(), /✖/)
  await t.press(KEYS.enter, KEYS.enter)
  frame = await t.waitFor('Press enter to save')
  assert.match(frame, /Keep: 4 snapshots on the source/)
  await t.press(KEYS.enter)
  await t.waitFor('create rolling: done')
  const [params] = client.callsOf('job.create') as Array<{ job: CreatedJob }>
  assert.deepEqual([params!.job.remotes, params!.job.srs], [[], []])
  assert.deepEqual(params!.job.schedules[0]!.retention, { snapshots: 4 })
  t.unmount()
})

test("wizard: the daemon's refusal of a field shows at that field's step too, in the daemon's words", async () => {
  const sentence = 'The SR "DR storage" is on the pool dr-site, which has no licence for replication; pick another SR.'
  const client = fullDaemon().answer('job.create', () => {
    throw Object.assign(new Error(`The job is not valid:\n- srs.0: ${sentence}`), { code: 'JOB_INVALID', data: { problems: [{ path: 'srs.0', message: sentence }] } })
  })
  const t = await renderApp(client)
  await toWhere(t, 'refused-sr', 'delta')
  await t.press(KEYS.down, KEYS.down, KEYS.down, ' ', KEYS.enter)
  await t.waitFor('[When]')
  await t.press(KEYS.down, KEYS.down, KEYS.down)
  await t.type('2')
  await t.press(KEYS.enter, KEYS.enter)
  await t.waitFor('Press enter to save')
  await t.press(KEYS.enter)
  let frame = await t.waitFor('no licence')
  assert.match(frame, /\[Review\]/)
  await t.press(KEYS.pageUp, KEYS.pageUp, KEYS.pageUp)
  frame = await t.waitFor('[Where]')
  assert.match(frame.replace(/\s+/g, ' '), /✖ srs\.0: The SR "DR storage" is on the pool dr-site, which has no licence for replication; pick another SR\./)
  // Picking another SR changes the draft: the daemon's sentence no longer applies until it is asked again.
  await t.press(' ', KEYS.up, ' ')
  frame = await t.waitFor('(0 remotes, 1 SR)')
  assert.doesNotMatch(frame, /no licence/)
  t.unmount()
})

test("wizard: esc at any step goes back to the jobs screen as it was left (cursor and filter)", async () => {
  const t = await renderApp(fullDaemon())
  await t.waitFor('nightly')
  await t.press('/')
  await t.type('job')
  await t.press(KEYS.enter)
  await t.waitFor('/job')
  await t.press('n')
  await t.waitFor('[Job]')
  await t.press(KEYS.esc)
  let frame = await t.waitFor('Next run')
  assert.match(frame, /job-1/)
  assert.doesNotMatch(frame, /nightly/, 'the filter is still on')
  await t.press('n')
  await t.type('x')
  await t.press(KEYS.enter, KEYS.enter)
  await t.waitFor('[Where]')
  await t.press(KEYS.esc)
  await t.waitFor('discard this new job? [y/n]')
  await t.press('y')
  frame = await t.waitFor('Next run')
  assert.match(frame, /job-1/)
  assert.doesNotMatch(frame, /nightly/)
  t.unmount()
})

test("the daemon's per-field sentences cannot drive the terminal either", async () => {
  const evil = 'the SR "dr\u001B[2J" is gone'
  const client = fullDaemon().answer('job.create', () => {
    throw Object.assign(new Error('The job is not valid.'), { code: 'JOB_INVALID', data: { problems: [{ path: 'srs.0', message: evil }] } })
  })
  const t = await renderApp(client)
  await toWhere(t, 'evil', 'delta')
  await t.press(' ', KEYS.enter, KEYS.enter, KEYS.enter)
  await t.waitFor('Press enter to save')
  await t.press(KEYS.enter)
  await t.press(KEYS.pageUp, KEYS.pageUp, KEYS.pageUp)
  const frame = await t.waitFor('is gone')
  assert.match(frame, /✖ srs\.0: the SR "dr\ufffd\[2J" is gone/)
  assert.doesNotMatch(frame, /\u001B\[2J/)
  t.unmount()
})
