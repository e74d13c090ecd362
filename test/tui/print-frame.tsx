// Prints one frame of the runs screen (for the NO_COLOR test, which needs a fresh process per environment).
import { renderApp, KEYS } from './render.tsx'
import { fullDaemon } from './setup.ts'

const t = await renderApp(fullDaemon())
await t.press(':')
await t.type('runs')
await t.press(KEYS.enter)
await t.waitFor('run-00001')
process.stdout.write(t.frame())
t.unmount()
