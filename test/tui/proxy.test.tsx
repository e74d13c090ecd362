// Where a run executes, at 80×24: the runs list's Where column (a proxy's name, blank for the appliance) with
// the job's name keeping its room; a delegated run's header and tree root; a job's proxy in the jobs list and on
// its screen; the wizard's Runs on field (the appliance or a registered proxy; greyed for mirror and verify jobs;
// how to add one when there is none), kept on edit, said on Review and sent on save.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS, goTo, frameFits, type Terminal } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'
import { parseJob } from '../../source/protocol/job.ts'
import { layoutColumns } from '../../source/tui/components/list.tsx'
import { runColumns } from '../../source/tui/screens/runs.tsx'
import type { JobInfo, RunSummary } from '../../source/tui/contract.ts'

/** Runs 0 and 2 ran on the proxy edge, the others on the appliance. */
function delegatedRuns(): RunSummary[] {
  return data.runs(4).map((run, i) => (i % 2 === 0 ? { ...run, proxy: 'edge' } : run))
}

/** The nightly job, run on the proxy edge. */
function edgeJob(): JobInfo {
  const info = data.jobs(1)[0]!
  return { ...info, job: parseJob({ ...info.job, proxy: 'edge' }) }
}

function withProxies(runs: RunSummary[]) {
  return fullDaemon()
    .answer('run.list', runs)
    .answer('run.get', ({ runId }) => {
      const summary = runs.find(r => r.runId === runId) ?? runs[0]!
      const tree = data.runTree(runId, summary.status)
      return { summary, tree: summary.proxy === undefined ? tree : { ...tree, data: { ...tree.data, proxy: summary.proxy } } }
    })
}

/** The job column's width in the header line of a table: from its title to the next title. */
function columnWidth(frame: string, title: string, next: string): number {
  const header = frame.split('\n').find(line => line.includes(title) && line.includes(next))
  assert.ok(header !== undefined, `a header line with ${title} and ${next}:\n${frame}`)
  return header.indexOf(next) - header.indexOf(title) - 1
}

test('runs list at 80×24: a Where column names the proxy a run ran on, blank for the appliance; the job keeps its room', async () => {
  const t = await renderApp(withProxies(delegatedRuns()))
  await goTo(t, 'runs')
  const frame = await t.waitFor('Where')
  assert.equal(frameFits(frame, 80, 24), undefined)
  // Run 0 (success) and run 2 (running) ran on edge; run 1 (failure) and run 3 (skipped) on the appliance.
  const row = (status: string) => frame.split('\n').find(line => line.includes(status)) ?? ''
  assert.match(row('✔ success'), /nightly \(daily\) +edge +11-22 10:00/, 'the run on edge says so')
  assert.match(row('⟳ running'), /nightly \(daily\) +edge +11-20 10:00/)
  assert.match(row('✖ failure'), /nightly \(daily\) {6,}11-21 10:00/, 'a run on the appliance leaves Where blank')
  // Without a proxy the job has 11 columns at 80; with the Where column it has no less (the run id gives way).
  assert.ok(columnWidth(frame, 'Job', 'Where') >= 11, `the job keeps its room:\n${frame}`)
  assert.doesNotMatch(frame, /\bRun\b/, 'the Run column gave way at 80 columns')
  // `/edge` keeps the delegated runs only.
  await t.press('/')
  await t.type('edge')
  const filtered = await t.waitFor('2 runs')
  assert.doesNotMatch(filtered, /✖ failure/, 'the runs on the appliance are filtered out')
  t.unmount()
})

test('runs list: no Where column while no run ran on a proxy; at 120 columns Where and Run both show', async () => {
  const plain = await renderApp(withProxies(data.runs(4)))
  await goTo(plain, 'runs')
  const frame = await plain.waitFor('run-00001')
  assert.doesNotMatch(frame, /Where/)
  assert.match(frame, /Size +Run/)
  plain.unmount()
  const wide = await renderApp(withProxies(delegatedRuns()), { columns: 120 })
  await goTo(wide, 'runs')
  const wideFrame = await wide.waitFor('Where')
  assert.match(wideFrame, /Job +Where +Started .* Size +Run/)
  assert.match(wideFrame, /edge +11-22 10:00 .* run-00000/)
  assert.equal(frameFits(wideFrame, 120, 24), undefined)
  wide.unmount()
})

test('runColumns: the job never has less room than at 80 columns without a proxy; a long proxy name is cut at 12', () => {
  const jobAt80 = layoutColumns(runColumns([], 80), 79).find(c => c.title === 'Job')!.width
  for (const width of [80, 90, 100, 140]) {
    const columns = layoutColumns(runColumns(delegatedRuns(), width), width - 1)
    assert.ok(columns.find(c => c.title === 'Job')!.width >= jobAt80, `the job's room at ${width} columns`)
    assert.ok(columns.reduce((sum, c) => sum + c.width + 1, 0) <= width, `the row fits ${width} columns`)
  }
  const long = runColumns([{ ...data.runs(1)[0]!, proxy: 'a-very-long-proxy-name' }], 80)
  assert.equal(long.find(c => c.title === 'Where')!.width, 12)
})

test("a delegated run's screen: the header and the tree's root say on proxy edge; a local run's do not", async () => {
  const t = await renderApp(withProxies(delegatedRuns()))
  await goTo(t, 'runs')
  await t.waitFor('Where')
  await t.press(KEYS.enter)
  let frame = await t.waitFor('REMOTE_FULL')
  assert.equal(frameFits(frame, 80, 24), undefined)
  assert.match(frame.split('\n').find(line => line.includes('started')) ?? '', /✔ success backup nightly on proxy edge · started 2026-11-22/)
  assert.match(frame, /▾ ✔ backup on proxy edge +10m00s/)
  await t.press(KEYS.esc, KEYS.down, KEYS.enter)
  frame = await t.waitFor('✖ failure backup nightly')
  await t.waitFor('REMOTE_FULL')
  assert.doesNotMatch(t.frame(), /on proxy/, 'a run on the appliance names no proxy')
  t.unmount()
})

test("the jobs list's Targets and a job's screen name the proxy its runs execute on", async () => {
  const client = fullDaemon().answer('job.list', [edgeJob(), data.jobs(2)[1]!]).answer('job.get', ({ id }) => (id === 'job-0' ? edgeJob() : data.jobs(2)[1]!))
  const t = await renderApp(client)
  let frame = await t.waitFor('nightly')
  assert.equal(frameFits(frame, 80, 24), undefined)
  assert.match(frame.split('\n').find(line => line.includes('nightly')) ?? '', / on edge:/, 'cut at 80 columns, the proxy shows first')
  assert.doesNotMatch(frame.split('\n').find(line => line.includes('job-1')) ?? '', /on /, 'a job on the appliance names none')
  await t.press(KEYS.enter)
  frame = await t.waitFor('Runs on: proxy edge')
  assert.equal(frameFits(frame, 80, 24), undefined)
  assert.match(frame, /Targets: remote site-a\n.*Runs on: proxy edge/)
  await t.press(KEYS.esc, KEYS.down, KEYS.enter)
  frame = await t.waitFor('Targets: remote site-a')
  assert.doesNotMatch(frame, /Runs on/)
  t.unmount()
})

/** The wizard's first step, a new job named `name`, the focus on Runs on. */
async function toRunsOn(t: Terminal, name: string): Promise<string> {
  await t.waitFor('nightly')
  await t.press('n')
  await t.waitFor('[Job]')
  await t.type(name)
  await t.press(KEYS.down, KEYS.down, KEYS.down)
  return t.waitFor('› Runs on')
}

test('wizard: Runs on offers the appliance and the registered proxies; the job on edge is said on Review and sent', async () => {
  const client = fullDaemon().answer('job.create', edgeJob())
  const t = await renderApp(client)
  let frame = await toRunsOn(t, 'far')
  assert.equal(frameFits(frame, 80, 24), undefined)
  assert.match(frame, /Runs on +‹ the appliance \(none\) ›/)
  assert.match(frame.replace(/\s+/g, ' '), /Registered: edge \(ssh:\/\/lifeboat@proxy1\.example\.net\), dc2 \(ssh:\/\/lifeboat@10\.0\.2\.15:2222\)/)
  await t.press(KEYS.right)
  await t.waitFor('‹ edge ›')
  await t.press(KEYS.right)
  await t.waitFor('‹ dc2 ›')
  await t.press(KEYS.right)
  await t.waitFor('‹ the appliance (none) ›')
  await t.press(KEYS.left, KEYS.left)
  await t.waitFor('‹ edge ›')
  await t.press(KEYS.enter)
  await t.waitFor('[Which VMs]')
  await t.press(KEYS.enter)
  await t.waitFor('[Where]')
  await t.press(' ', KEYS.enter, KEYS.enter, KEYS.enter)
  frame = await t.waitFor('Press enter to save')
  assert.equal(frameFits(frame, 80, 24), undefined)
  assert.match(frame, /To: remote site-a\n.*Runs on: proxy edge\n/)
  await t.press(KEYS.enter)
  await t.waitFor('create far: done')
  const [params] = client.callsOf('job.create') as Array<{ job: Record<string, unknown> }>
  assert.equal(params!.job.proxy, 'edge')
  t.unmount()
})

test('wizard: on the appliance the job names no proxy; with none registered Runs on says how to add one', async () => {
  const client = fullDaemon().answer('proxy.list', []).answer('job.create', data.jobs(1)[0]!)
  const t = await renderApp(client)
  let frame = await toRunsOn(t, 'local')
  assert.equal(frameFits(frame, 80, 24), undefined)
  assert.match(frame, /Runs on +‹ the appliance \(none\) › +no proxy yet: lifeboat proxy add/)
  assert.match(frame.replace(/\s+/g, ' '), /No proxy is registered: add one with `npx lifeboat proxy add NAME ssh:\/\/user@host`/)
  await t.press(KEYS.right)
  assert.match(t.frame(), /‹ the appliance \(none\) ›/, 'nothing else to choose')
  await t.press(KEYS.enter, KEYS.enter)
  await t.waitFor('[Where]')
  await t.press(' ', KEYS.enter, KEYS.enter, KEYS.enter)
  frame = await t.waitFor('Press enter to save')
  assert.match(frame, /Runs on: the appliance/)
  await t.press(KEYS.enter)
  await t.waitFor('create local: done')
  const [params] = client.callsOf('job.create') as Array<{ job: Record<string, unknown> }>
  assert.equal('proxy' in params!.job, false, 'no proxy is sent')
  t.unmount()
})

test('wizard: Runs on is greyed for a mirror and a verify job, with the reason; a mirror saved from it names no proxy', async () => {
  const client = fullDaemon().answer('job.create', data.jobs(1)[0]!)
  const t = await renderApp(client)
  await toRunsOn(t, 'copy')
  await t.press(KEYS.right)
  await t.waitFor('‹ edge ›')
  // Up to Type: mirror, then down past Source remote to Runs on.
  await t.press(KEYS.up, KEYS.right)
  await t.waitFor('Source remote')
  await t.press(KEYS.down, KEYS.right, KEYS.down)
  let frame = await t.waitFor('mirror jobs run on the appliance')
  assert.equal(frameFits(frame, 80, 24), undefined)
  assert.match(frame, /› Runs on +‹ edge › +mirror jobs run on the appliance/)
  assert.match(frame.replace(/\s+/g, ' '), /Only backup jobs take a proxy: mirror jobs run on the appliance\./)
  await t.press(KEYS.right)
  assert.match(t.frame(), /‹ edge ›/, 'a greyed choice does not turn')
  await t.press(KEYS.up, KEYS.up, KEYS.right)
  frame = await t.waitFor('‹ verify ›')
  assert.match(frame, /Runs on +‹ edge › +verify jobs run on the appliance/)
  // Back to mirror (the source kept), through to the Review: no Runs on line, no proxy sent.
  await t.press(KEYS.left)
  await t.waitFor('‹ mirror ›')
  await t.press(KEYS.enter, KEYS.enter)
  await t.waitFor('[Where]')
  await t.press(' ', KEYS.enter, KEYS.enter, KEYS.enter)
  frame = await t.waitFor('Press enter to save')
  assert.doesNotMatch(frame, /Runs on/)
  await t.press(KEYS.enter)
  await t.waitFor('create copy: done')
  const [params] = client.callsOf('job.create') as Array<{ job: Record<string, unknown> }>
  assert.equal(params!.job.type, 'mirror')
  assert.equal('proxy' in params!.job, false, 'a mirror takes no proxy')
  t.unmount()
})

test('wizard: editing a job on edge keeps its proxy (Review says it, the update sends it); choosing the appliance drops it', async () => {
  const client = fullDaemon().answer('job.list', [edgeJob()]).answer('job.get', () => edgeJob()).answer('job.update', edgeJob())
  const t = await renderApp(client)
  await t.waitFor('nightly')
  await t.press('e')
  let frame = await t.waitFor('[Job]')
  assert.match(frame, /Runs on +‹ edge ›/)
  for (let i = 0; i < 5; i++) await t.press(KEYS.enter)
  frame = await t.waitFor('Press enter to save')
  assert.match(frame, /Runs on: proxy edge/)
  await t.press(KEYS.enter)
  await t.waitFor('save nightly: done')
  const [kept] = client.callsOf('job.update') as Array<{ job: Record<string, unknown> }>
  assert.equal(kept!.job.proxy, 'edge')

  await t.press('e')
  await t.waitFor('[Job]')
  await t.press(KEYS.down, KEYS.down, KEYS.down, KEYS.left)
  await t.waitFor('‹ the appliance (none) ›')
  for (let i = 0; i < 5; i++) await t.press(KEYS.enter)
  frame = await t.waitFor('Press enter to save')
  assert.match(frame, /Runs on: the appliance/)
  await t.press(KEYS.enter)
  await t.waitFor('save nightly: done')
  const dropped = (client.callsOf('job.update') as Array<{ job: Record<string, unknown> }>)[1]
  assert.equal('proxy' in dropped!.job, false, 'the job runs on the appliance again')
  t.unmount()
})

test("wizard: the daemon's refusal of an unknown proxy is shown on Review under Runs on", async () => {
  const client = fullDaemon().answer('job.create', () => {
    throw Object.assign(new Error('The job is invalid:\n- proxy: No proxy is named "edge".'), { code: 'JOB_INVALID', data: { problems: [{ path: 'proxy', message: 'No proxy is named "edge".' }] } })
  })
  const t = await renderApp(client)
  await toRunsOn(t, 'far')
  await t.press(KEYS.right, KEYS.enter, KEYS.enter)
  await t.waitFor('[Where]')
  await t.press(' ', KEYS.enter, KEYS.enter, KEYS.enter)
  await t.waitFor('Press enter to save')
  await t.press(KEYS.enter)
  const frame = await t.waitFor('✖ Runs on: No proxy is named "edge".')
  assert.equal(frameFits(frame, 80, 24), undefined)
  t.unmount()
})
