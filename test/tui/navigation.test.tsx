import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS, tick, goTo } from './render.tsx'
import { fullDaemon } from './setup.ts'

async function eventually(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`${what} did not happen within 2 s`)
    await tick(10)
  }
}

test('palette: each command opens its screen, an unknown one says which exist', async () => {
  const t = await renderApp(fullDaemon())
  await t.waitFor('nightly')
  for (const [command, crumb] of [['lanes', 'Lanes'], ['logs', 'Runs'], ['remotes', 'Remotes'], ['pools', 'Pools'], ['vms', 'VMs'], ['srs', 'SRs'], ['restore', 'Restore'], ['jo', 'Jobs']] as const) {
    await goTo(t, command)
    await t.waitFor(`Lifeboat ▸ ${crumb}`)
  }
  await goTo(t, 'nowhere')
  await t.waitFor('No screen "nowhere"')
  t.unmount()
})

test('help overlay lists the keys of the current screen and closes on any key; esc goes back', async () => {
  const t = await renderApp(fullDaemon())
  await t.waitFor('nightly')
  await t.press('?')
  let frame = await t.waitFor('Keys here')
  assert.match(frame, /space +enable\/disable/)
  assert.match(frame, /d +delete/)
  await t.press('x')
  await t.waitFor('Schedule')
  await t.press(KEYS.enter)
  // The breadcrumb comes before the job's answer: wait for the screen itself.
  frame = await t.waitFor(/Jobs ▸ nightly[^]*Recent runs/)
  await t.press(KEYS.esc)
  frame = await t.waitFor('Next run')
  assert.doesNotMatch(frame, /▸ nightly/)
  t.unmount()
})

test('read-only: every change is refused with the reason, nothing reaches the daemon', async () => {
  const client = fullDaemon()
  const t = await renderApp(client, { readonly: true })
  await t.waitFor('nightly')
  await t.press('r')
  await t.waitFor('Read-only')
  await t.press(' ', 'd', 'n', 'e')
  assert.equal(client.calls.filter(c => /^job\.(run|setEnabled|delete|create|update)$/.test(c.method)).length, 0)
  assert.doesNotMatch(t.frame(), /Type "nightly"|Which VMs/)
  t.unmount()
})

test('daemon down: a screen says how to start it; when it is back the data is fetched again', async () => {
  const client = fullDaemon()
  const t = await renderApp(client)
  await t.waitFor('nightly')
  client.setConnection({ status: 'down', reason: 'connect ENOENT /run/lifeboat/test.sock' })
  let frame = await t.waitFor('not running')
  assert.match(frame, /lifeboat daemon/)
  assert.match(frame, /systemctl start lifeboat/)
  assert.match(frame, /reconnects by itself/)
  const before = client.callsOf('job.list').length
  client.setConnection({ status: 'connected' })
  frame = await t.waitFor('nightly')
  await eventually('jobs fetched again after the reconnection', () => client.callsOf('job.list').length > before)
  await eventually('state subscription restored', () => client.callsOf('subscribe').length >= 2)
  t.unmount()
})

test('resync notification: everything is fetched again', async () => {
  const client = fullDaemon()
  const t = await renderApp(client)
  await t.waitFor('nightly')
  const before = client.callsOf('job.list').length
  client.notify('resync', { reason: 'queue full' })
  await eventually('jobs fetched again after a resync', () => client.callsOf('job.list').length > before)
  t.unmount()
})

test('state.changed refreshes the list that changed', async () => {
  const client = fullDaemon()
  const t = await renderApp(client)
  await t.waitFor('nightly')
  const before = client.callsOf('job.list').length
  client.notify('state.changed', { kind: 'remotes' })
  await t.press()
  assert.equal(client.callsOf('job.list').length, before)
  client.notify('state.changed', { kind: 'jobs' })
  await eventually('jobs fetched again when they changed', () => client.callsOf('job.list').length === before + 1)
  t.unmount()
})

test('q quits', async () => {
  let quit = false
  const t = await renderApp(fullDaemon(), { onQuit: () => (quit = true) })
  await t.waitFor('nightly')
  await t.press('q')
  assert.equal(quit, true)
  t.unmount()
})
