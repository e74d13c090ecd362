// TUI redraw costs (aim: under 16 ms each): one progress update on the lanes screen with 12 active
// exports, and the logs screen with 1000 runs (cursor move, and a fresh list arriving).
// Run: node --import tsx test/bench/tui.ts (React's production build, as the installed TUI should run;
// NODE_ENV=development to compare).
import { performance } from 'node:perf_hooks'

process.env.NODE_ENV ??= 'production'
const { renderApp, KEYS } = await import('../tui/render.tsx')
const { fullDaemon } = await import('../tui/setup.ts')
const data = await import('../tui/data.ts')
type Terminal = Awaited<ReturnType<typeof renderApp>>

const ROUNDS = 200

/** Time from the trigger to the next frame written, in ms. */
async function timeRedraw(t: Terminal, trigger: () => void): Promise<number> {
  const before = t.stdout.frames.length
  const start = performance.now()
  trigger()
  while (t.stdout.frames.length === before) await new Promise(resolve => setImmediate(resolve))
  return performance.now() - start
}

function report(name: string, samples: number[]): void {
  const sorted = [...samples].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(2)
  console.log(`${name.padEnd(48)} median ${at(0.5)} ms   p95 ${at(0.95)} ms   max ${at(1)} ms   (${samples.length} redraws)`)
}

async function go(t: Terminal, screen: string): Promise<void> {
  await t.press(':')
  await t.type(screen)
  await t.press(KEYS.enter)
}

const client = fullDaemon(1000).answer('lanes.get', data.lanes(12))
const t = await renderApp(client)
await t.waitFor('job-')

await go(t, 'lanes')
await t.waitFor('12/12')
const lanes: number[] = []
for (let i = 0; i < ROUNDS; i++) {
  const snapshot = { ...data.lanes(12, (i % 100) / 100 + 0.001), at: data.NOW + i + 1 }
  lanes.push(await timeRedraw(t, () => client.notify('lanes', { snapshot })))
}
report('lanes: one progress update, 12 exports', lanes)

await go(t, 'runs')
await t.waitFor('1000 runs')
const moves: number[] = []
for (let i = 0; i < ROUNDS; i++) moves.push(await timeRedraw(t, () => t.write(KEYS.down)))
report('logs: cursor move through 1000 runs', moves)

const fresh: number[] = []
for (let i = 0; i < 50; i++) {
  const runs = data.runs(1000).map(r => ({ ...r, size: (r.size ?? 0) + i }))
  client.answer('run.list', runs)
  fresh.push(await timeRedraw(t, () => client.notify('state.changed', { kind: 'runs' })))
}
report('logs: 1000 runs refetched and redrawn', fresh)
t.unmount()
