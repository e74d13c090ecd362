// Every command Lifeboat tells a person to type is in the README's form, `npx lifeboat …`, and that form works.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
// `lifeboat <subcommand>` written in a message (after a quote, "with ", ": " or an indent), not as `npx lifeboat`.
const BARE_HINT = /(?<!npx )(?:(?<=['`"(])|(?<=: )|(?<=with )|(?<=  ))lifeboat (?:pool|vm|sr|remote|job|run|logs|backup|restore|daemon|lab|vhd|--help)\b/

async function sources(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true })
  return entries.filter(entry => entry.isFile() && /\.(ts|tsx)$/.test(entry.name)).map(entry => join(entry.parentPath, entry.name))
}

test('hints in messages, the TUI and the README say npx lifeboat', async () => {
  const offenders: string[] = []
  for (const file of [...(await sources(join(ROOT, 'source'))), join(ROOT, 'cli.tsx')]) {
    const lines = (await readFile(file, 'utf8')).split('\n')
    lines.forEach((line, i) => {
      if (/^\s*(\/\/|\*|\/\*\*)/.test(line)) return
      if (BARE_HINT.test(line)) offenders.push(`${relative(ROOT, file)}:${i + 1}: ${line.trim()}`)
    })
  }
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  for (const line of readme.split('\n')) if (/^\| `lifeboat |(?<!npx )`lifeboat (--help|--version|COMMAND)/.test(line)) offenders.push(`README.md: ${line}`)
  assert.deepEqual(offenders, [])
})

test('npx lifeboat runs the project’s own command from its folder', () => {
  // --offline: the project's bin is found locally, nothing is fetched.
  const result = spawnSync('npx', ['--offline', 'lifeboat', '--version'], { cwd: ROOT, encoding: 'utf8' })
  assert.equal(result.status, 0, result.stderr)
  assert.match(result.stdout, /^lifeboat \d+\.\d+\.\d+$/m)
})
