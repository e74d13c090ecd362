// DESIGN.md's import rules, read from the code itself: a client that loads the daemon's or the engine's
// modules, or a format that reaches into the rest, fails here rather than in a review.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const source = join(root, 'source')

function files(dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? files(path) : /\.tsx?$/.test(name) ? [path] : []
  })
}

/** Each file's local imports, as folders under source/ ("daemon", "engine/run", …). */
function localImports(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"\n]*?from\s+['"](\.[^'"]+)['"]/g)].map(match => match[1]!)
  return specifiers.map(specifier => relative(source, resolve(dirname(file), specifier)))
}

const RULES: Array<{ from: string; never: string[] }> = [
  { from: 'tui', never: ['engine', 'daemon', 'lab', 'repository', 'storage', 'xapi'] },
  { from: 'cli', never: ['engine', 'daemon', 'lab'] },
  { from: 'client', never: ['engine', 'daemon', 'lab'] },
  { from: 'protocol', never: ['engine', 'daemon', 'lab', 'tui', 'cli', 'client'] },
  { from: 'engine', never: ['daemon', 'tui', 'cli'] },
  { from: 'lab', never: ['engine'] },
  { from: 'formats', never: ['engine', 'daemon', 'lab', 'tui', 'cli', 'client', 'protocol', 'repository', 'storage', 'xapi', 'tasks'] },
]

test('no part imports what DESIGN.md forbids it', () => {
  const broken: string[] = []
  for (const file of files(source)) {
    const part = relative(source, file).split('/')[0]!
    for (const rule of RULES.filter(r => r.from === part)) {
      for (const target of localImports(file)) {
        const targetPart = target.split('/')[0]!
        if (rule.never.includes(targetPart)) broken.push(`${relative(root, file)} imports source/${target}`)
      }
    }
  }
  assert.deepEqual(broken, [])
})

test('the rule reader sees imports (a rule that reads nothing cannot fail)', () => {
  const seen = localImports(join(source, 'daemon', 'scheduler.ts'))
  assert.ok(seen.includes('protocol/cron.ts'), seen.join(', '))
})
