// Lists and long texts: the pools screen opens its own pool's VMs and SRs, `e` unfolds the whole tree,
// hidden rows are counted, the cursor is a glyph, and a message too long for its line can be read whole.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS, goTo } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'
import { until } from '../helpers/tmux.ts'

test("pools: enter lists the selected pool's VMs only, s its SRs only", async () => {
  const client = fullDaemon()
  const t = await renderApp(client)
  await goTo(t, 'pools')
  await t.waitFor('dr-site')
  await t.press(KEYS.down, 's')
  let frame = await t.waitFor('Pools ▸ SRs of dr-site')
  await t.waitFor('DR storage')
  assert.doesNotMatch(t.frame(), /Local storage/)
  assert.deepEqual(client.callsOf('sr.list').at(-1), { pool: 'pool-dr' })
  await t.press(KEYS.esc, KEYS.enter)
  frame = await t.waitFor('Pools ▸ VMs of dr-site')
  frame = await t.waitFor('2 VMs')
  assert.match(frame, /mail/)
  assert.doesNotMatch(frame, /web-01|db-01/)
  t.unmount()
})

test('log tree: e unfolds every level at once, down to the warnings of folded grandchildren', async () => {
  const t = await renderApp(fullDaemon())
  await goTo(t, 'runs')
  await t.waitFor('run-00000')
  await t.press(KEYS.enter)
  let frame = await t.waitFor('▸ ✔ VM web-01')
  assert.doesNotMatch(frame, /reference snapshot is gone/)
  await t.press('e')
  frame = await t.waitFor('⚠ the reference snapshot is gone')
  assert.match(frame, /▾ ✔ VM web-01/)
  assert.match(frame, /▾ ✔ export to site-a/)
  t.unmount()
})

test('log tree: enter on an error line shows it whole; the cursor is a glyph, not only inverse video', async () => {
  const long = `The remote site-a is full: ${'0 bytes left on /srv/backups after the merge of the delta chain; '.repeat(3)}free space or add a remote.`
  const client = fullDaemon()
  const base = (await client.call('run.get', { runId: 'run-00001' })) as { summary: unknown; tree: { tasks: Array<{ result: unknown }> } }
  base.tree.tasks[1]!.result = { code: 'REMOTE_FULL', message: long }
  client.answer('run.get', base as never)
  const t = await renderApp(client)
  await goTo(t, 'runs')
  await t.waitFor('run-00001')
  await t.press(KEYS.down, KEYS.enter)
  let frame = await t.waitFor('REMOTE_FULL')
  assert.match(frame, /^›/m, 'the selected line starts with the cursor glyph')
  assert.ok(!frame.replace(/\n/g, '').includes('free space or add a remote.'), 'cut in the tree')
  // root, web-01, db-01, its error line.
  await t.press(KEYS.down, KEYS.down, KEYS.down)
  assert.match(t.frame(), /^› +✖ REMOTE_FULL/m)
  await t.press(KEYS.enter)
  frame = await t.waitFor('any key closes')
  assert.ok(frame.replace(/\s+/g, ' ').includes(long.replace(/\s+/g, ' ')), frame)
  await t.press('x')
  await t.waitFor('▾ ✖ VM db-01')
  t.unmount()
})

test('a status message longer than the line says so and is read whole in the help overlay', async () => {
  const reason = 'The pool master xcp-new refused the login: the account root is locked after 5 failed attempts; unlock it on the host with "pam_tally2 --reset".'
  const client = fullDaemon().answer('job.run', () => {
    throw Object.assign(new Error(reason), { code: 'XAPI_SESSION_AUTHENTICATION_FAILED' })
  })
  const t = await renderApp(client)
  await t.waitFor('nightly')
  await t.press('r')
  const frame = await t.waitFor('(?: read all)')
  assert.match(frame, /✖ run nightly failed: The pool master/)
  await t.press('?')
  const help = await t.waitFor('Last message')
  assert.ok(help.replace(/\s+/g, ' ').includes(reason), help)
  t.unmount()
})

test('pools: a refused form keeps what was typed, the password too (still hidden): enter sends it again', async () => {
  let attempts = 0
  const client = fullDaemon().answer('pool.add', () => {
    attempts++
    throw Object.assign(new Error('The host xcp-new does not answer on port 443: check the URL and that the pool master is up.'), { code: 'POOL_UNREACHABLE' })
  })
  const t = await renderApp(client)
  await goTo(t, 'pools')
  await t.waitFor('dr-site')
  await t.press('a')
  await t.type('https://xcp-new')
  await t.press(KEYS.down, KEYS.down)
  await t.type('s3cret')
  await t.press(KEYS.enter)
  // The sentence wraps where the terminal ends it: wait for its last words, then read it whole.
  const frame = await t.waitFor('pool master is up.')
  assert.match(frame.replace(/\s+/g, ' '), /POOL_UNREACHABLE: The host xcp-new does not answer .* check the URL and that the pool master is up\./)
  assert.equal(attempts, 1)
  assert.match(frame, /Connect a pool/)
  assert.match(frame, /URL +https:\/\/xcp-new/)
  assert.match(frame, /User +root/)
  assert.match(frame, /Password +•{6}/, 'the password is kept, hidden')
  assert.doesNotMatch(frame, /s3cret|cleared/)
  await t.press(KEYS.enter)
  await until('the second try', () => (attempts === 2 ? true : undefined))
  assert.deepEqual(client.callsOf('pool.add').at(-1), { url: 'https://xcp-new', username: 'root', password: 's3cret' }, 'the second try sends the same password')
  t.unmount()
})

test('80×24 lists say how many rows they hide', async () => {
  const t = await renderApp(fullDaemon(1000))
  await t.waitFor('1000 jobs')
  assert.match(t.frame(), /… 983 more\n/)
  await t.press(KEYS.pageDown)
  assert.match(t.frame(), /… 983 more \(\d+ above, \d+ below\)/)
  await goTo(t, 'runs')
  await t.waitFor('1000 runs')
  assert.match(t.frame(), /… 983 more/)
  await goTo(t, 'vms')
  await t.waitFor('1000 VMs')
  assert.match(t.frame(), /… 983 more/)
  t.unmount()
  const lanes = await renderApp(fullDaemon().answer('lanes.get', data.lanes(30)))
  await goTo(lanes, 'lanes')
  await lanes.waitFor('VDI exports')
  assert.match(lanes.frame(), /… 18 more\n/)
  lanes.unmount()
})
