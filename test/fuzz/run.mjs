#!/usr/bin/env node
// `npm run fuzz`: the fuzz tests of test/fuzz/ with a fresh random seed and 10 000 cases per property (`--runs N` to
// change it); a failure prints its seed, and `npm run fuzz -- --seed N` replays exactly that run.
import { spawnSync } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))
const args = process.argv.slice(2)
const option = name => {
  const at = args.indexOf(`--${name}`)
  if (at === -1) return undefined
  const value = Number(args[at + 1])
  if (!Number.isSafeInteger(value) || value < 0) {
    console.error(`npm run fuzz: --${name} needs a whole number (got ${args[at + 1] ?? 'nothing'}).`)
    process.exit(2)
  }
  return value
}
const seed = option('seed') ?? randomInt(2 ** 31)
const runs = option('runs') ?? 10_000
console.log(`npm run fuzz: seed ${seed}, ${runs} cases per property (replay with: npm run fuzz -- --seed ${seed})`)
const run = spawnSync(process.execPath, [fileURLToPath(new URL('../run.mjs', import.meta.url)), '--no-typecheck', 'test/fuzz'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, LIFEBOAT_FUZZ_SEED: String(seed), LIFEBOAT_FUZZ_RUNS: String(runs) },
})
if (run.status !== 0) console.error(`npm run fuzz: a property failed with seed ${seed}; replay it with: npm run fuzz -- --seed ${seed}`)
process.exit(run.status ?? 1)
