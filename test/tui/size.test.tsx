import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, frameFits, KEYS, type Terminal, goTo } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'

// Ink clears the whole terminal when a frame is as tall as the window: every frame must stay within it.
async function assertFits(t: Terminal, where: string, columns = 80, rows = 24) {
  await t.press()
  const problem = frameFits(t.frame(), columns, rows)
  assert.equal(problem, undefined, `${where}: ${problem}\n${t.frame()}`)
}

test('80×24 with 1000 rows of data: no frame taller or wider than the terminal, on any screen', async () => {
  const client = fullDaemon(1000).answer('lanes.get', data.lanes(40))
  const t = await renderApp(client)
  await t.waitFor('job-999').catch(() => t.waitFor('1000 jobs'))
  await assertFits(t, 'jobs')
  await t.press('G')
  await t.waitFor('job-999')
  await assertFits(t, 'jobs, last row')
  await t.press(KEYS.enter)
  await assertFits(t, 'job detail')
  await t.press('?')
  await assertFits(t, 'help')
  await t.press('x', KEYS.esc, 'n')
  await assertFits(t, 'wizard')
  await t.press(KEYS.enter)
  await t.waitFor('Matches 1000 VMs')
  await assertFits(t, 'wizard: smart selection with 1000 pools and VMs')
  await t.press('p')
  await assertFits(t, 'wizard: pick list')
  await t.press(KEYS.enter)
  await assertFits(t, 'wizard: targets')
  for (const screen of ['runs', 'lanes', 'remotes', 'pools', 'vms', 'srs', 'restore']) {
    await goTo(t, screen)
    await assertFits(t, screen)
    await t.press(KEYS.pageDown, KEYS.pageDown)
    await assertFits(t, `${screen} after paging`)
  }
  await goTo(t, 'runs')
  // The list drawn first: an enter that comes before the screen listens is lost (seen under a loaded CI).
  await t.waitFor('1000 runs')
  await t.press()
  await t.press(KEYS.enter)
  await t.waitFor('REMOTE_FULL')
  await assertFits(t, 'task tree')
  await t.press(':')
  await t.type('re')
  await assertFits(t, 'palette')
  t.unmount()
})

test('a larger terminal is used whole, and a narrow one still fits', async () => {
  for (const [columns, rows] of [
    [132, 43],
    [60, 16],
  ] as const) {
    const t = await renderApp(fullDaemon(1000), { columns, rows })
    await t.waitFor('job-')
    await assertFits(t, `${columns}×${rows} jobs`, columns, rows)
    assert.equal(t.frame().split('\n').length, rows - 1)
    await goTo(t, 'runs')
    await t.waitFor('1000 runs')
    await assertFits(t, `${columns}×${rows} runs`, columns, rows)
    t.unmount()
  }
})
