#!/usr/bin/env node
// `npm test`: installs the Debian packages the tests need (as root), type-checks, then runs every
// test file with node's own test runner. `npm test -- test/formats` runs the tests under a folder.
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureSystemDeps } from './system-deps.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const args = process.argv.slice(2)
const skipTypecheck = args.includes('--no-typecheck')
const roots = args.filter(a => !a.startsWith('--'))

function collect(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (name === 'node_modules' || name.startsWith('.')) continue
    if (statSync(path).isDirectory()) collect(path, out)
    else if (/\.test\.tsx?$/.test(name)) out.push(relative(root, path))
  }
  return out
}

const problem = ensureSystemDeps()
if (problem !== undefined) {
  console.error(`npm test: ${problem}`)
  process.exit(1)
}

if (!skipTypecheck) {
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit'], { cwd: root, stdio: 'inherit' })
  if (tsc.status !== 0) {
    console.error('npm test: type errors (above); fix them first.')
    process.exit(1)
  }
}

const files = (roots.length === 0 ? ['test'] : roots).flatMap(r => (statSync(join(root, r)).isDirectory() ? collect(join(root, r)) : [r])).sort()
if (files.length === 0) {
  console.error('npm test: no test files found')
  process.exit(1)
}
const concurrency = process.env.LIFEBOAT_TEST_CONCURRENCY ?? '2'
// --test-force-exit: a file whose tests have all ended exits even if a failed test left a handle open (an Ink
// app not unmounted, a timer): in CI such a file hung the run for good instead of reporting its failure.
const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-force-exit', `--test-concurrency=${concurrency}`, ...files], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, LIFEBOAT_REPO: root },
})
process.exit(run.status ?? 1)
