import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))

function runNode(script: string, args: string[], env: Record<string, string | undefined>) {
  const environment = { ...process.env, ...env }
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete environment[key]
  return spawnSync(process.execPath, ['--import', 'tsx', join(here, script), ...args], { encoding: 'utf8', env: environment, stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000 })
}

test('without a terminal: a message pointing to the CLI, exit code 2, no raw-mode stack trace', () => {
  const result = runNode('start-tui.ts', ['/nonexistent/lifeboat.sock'], {})
  assert.equal(result.status, 2)
  assert.match(result.stderr, /needs an interactive terminal/)
  assert.match(result.stderr, /lifeboat job list --json/)
  assert.doesNotMatch(result.stderr, /Raw mode|at .*\.js:\d+/)
  assert.equal(result.stdout, '')
})

const COLOR = /\u001B\[(3[0-7]|9[0-7])m/

test('NO_COLOR: statuses lose their colour but keep their glyphs', () => {
  const colored = runNode('print-frame.tsx', [], { FORCE_COLOR: '1', NO_COLOR: undefined })
  assert.equal(colored.status, 0, colored.stderr)
  assert.match(colored.stdout, COLOR, 'colours are drawn when allowed')
  const plain = runNode('print-frame.tsx', [], { FORCE_COLOR: '1', NO_COLOR: '1' })
  assert.equal(plain.status, 0, plain.stderr)
  assert.doesNotMatch(plain.stdout, COLOR)
  for (const glyph of ['✔ success', '✖ failure', '⟳ running', '⚠ skipped', '⏸ cancelled']) assert.ok(plain.stdout.includes(glyph), glyph)
})
