// No traps: esc leaves the wizard from any field, Ctrl-C always quits, help opens from every screen and
// field, the footer shows only keys that work where the focus is, and the lab asks before cancelling runs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS } from './render.tsx'
import { fullDaemon } from './setup.ts'
import { PALETTE } from '../../source/tui/app.tsx'

const F1 = '\u001BOP'
const CTRL_G = '\u0007'
const CTRL_C = '\u0003'

const footer = (frame: string) => frame.split('\n').at(-1) ?? ''

test('wizard: esc from the untouched name field leaves at once', async () => {
  const t = await renderApp(fullDaemon())
  await t.waitFor('nightly')
  await t.press('n')
  await t.waitFor('[Job]')
  await t.press(KEYS.esc)
  const frame = await t.waitFor('Next run')
  assert.doesNotMatch(frame, /\[Job\]|discard/)
  t.unmount()
})

test('wizard: esc from a field of a later step asks before discarding a changed draft; n stays, y leaves', async () => {
  const t = await renderApp(fullDaemon())
  await t.waitFor('nightly')
  await t.press('n')
  await t.type('half-done')
  await t.press(KEYS.enter, KEYS.enter, KEYS.enter)
  await t.waitFor('[When]')
  await t.press(KEYS.esc)
  await t.waitFor('discard this new job? [y/n]')
  await t.press('n')
  let frame = await t.waitFor('[When]')
  assert.match(frame, /› Schedule name +daily/)
  // pgup steps back, keeping what was typed.
  await t.press(KEYS.pageUp, KEYS.pageUp, KEYS.pageUp)
  frame = await t.waitFor('Name               half-done')
  await t.press(KEYS.esc)
  await t.waitFor('[y/n]')
  await t.press('y')
  frame = await t.waitFor('Next run')
  assert.doesNotMatch(frame, /\[Job\]/)
  t.unmount()
})

test('footer: in a text field it offers only keys that work there; q and ? are typed into the name', async () => {
  const t = await renderApp(fullDaemon())
  await t.waitFor('nightly')
  assert.match(footer(t.frame()), /\? help +q quit/)
  await t.press('n')
  // The footer follows the screen's first frame: wait for it rather than read the frame that first says [Job].
  let frame = await t.waitFor(/\[Job\][^]*F1 help +ctrl-c quit[^\n]*$/)
  assert.doesNotMatch(footer(frame), /\? help|q quit/)
  await t.type('q?:')
  frame = await t.waitFor('Name               q?:')
  assert.match(frame, /\[Job\]/)
  // The mode field is a choice: letters are commands again.
  await t.press(KEYS.down)
  assert.match(footer(await t.waitFor(/\? help +q quit[^\n]*$/)), /\? help +q quit/)
  t.unmount()
})

test('help: F1 and ctrl-g open it from a text field, ? from every screen', async () => {
  const t = await renderApp(fullDaemon())
  await t.waitFor('nightly')
  await t.press('n')
  await t.waitFor('[Job]')
  for (const key of [F1, CTRL_G]) {
    await t.press(key)
    const frame = await t.waitFor('Keys here')
    assert.match(frame, /\? F1 ctrl-g +help/)
    assert.match(frame, /esc +leave/)
    await t.press('x')
    await t.waitFor('[Job]')
  }
  assert.doesNotMatch(t.frame(), /Name +x/, 'the key that closed help was not typed')
  await t.press(KEYS.esc)
  for (const command of Object.keys(PALETTE)) {
    await t.press(':')
    await t.type(command)
    await t.press(KEYS.enter)
    await t.press('?')
    await t.waitFor('Keys here')
    await t.press(KEYS.esc)
  }
  t.unmount()
})

test('ctrl-c quits from a text field and from the palette', async () => {
  for (const open of [['n'], [':', 'j']]) {
    let quit = false
    const t = await renderApp(fullDaemon(), { onQuit: () => (quit = true) })
    await t.waitFor('nightly')
    await t.press(...open)
    await t.press(CTRL_C)
    assert.equal(quit, true, `ctrl-c after ${open.join('')}`)
    t.unmount()
  }
})

test('lab: q with runs in progress says they will be cancelled and asks; n stays, y quits', async () => {
  let quit = false
  const t = await renderApp(fullDaemon(), { onQuit: () => (quit = true), lab: true })
  await t.waitFor('nightly')
  assert.match(footer(t.frame()), /q quit lab/)
  await t.press('?')
  assert.match(await t.waitFor('Keys here'), /quit \(stops the lab: its runs are cancelled\)/)
  await t.press('x', 'q')
  const frame = await t.waitFor('[y/n]')
  assert.match(frame, /cancels 1 run in progress \(nightly\)/)
  await t.press('n')
  assert.equal(quit, false)
  await t.press('q')
  await t.waitFor('[y/n]')
  await t.press('y')
  assert.equal(quit, true)
  t.unmount()
})

test('lab: q with nothing running quits at once', async () => {
  let quit = false
  const client = fullDaemon().answer('run.list', [])
  const t = await renderApp(client, { onQuit: () => (quit = true), lab: true })
  await t.waitFor('nightly')
  await t.press('q')
  assert.equal(quit, true)
  t.unmount()
})

test('footer: help and quit always fit; the screen keys give way', async () => {
  const t = await renderApp(fullDaemon(), { lab: true })
  await t.waitFor('nightly')
  await t.press('n')
  await t.type('x')
  await t.press(KEYS.enter)
  // The footer follows the step's first frame: wait for both.
  const frame = await t.waitFor(/Smart selection[^]*\? help {2}q quit lab$/)
  assert.match(footer(frame), /\? help {2}q quit lab$/)
  t.unmount()
})
