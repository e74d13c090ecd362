// The CLI's contract with scripts, without a daemon: exit codes, usage on stderr, nothing on stdout for errors.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { tempDir } from '../helpers/tools.ts'
import { cli } from '../daemon/helpers.ts'

test('usage mistakes exit 2 with the usage; a missing daemon exits 1 with one line; stdout stays empty', async () => {
  const dir = await tempDir()
  const socket = join(dir.path, 'none.sock')
  try {
    for (const args of [['job'], ['job', 'nope'], ['job', 'show'], ['pool', 'list', 'extra'], ['run', 'list', '--status', 'weird'], ['remote', 'add', 'x'], ['pool', 'list', '--bogus'], ['job', 'create', '--mode', 'full']]) {
      const result = await cli(socket, args)
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
      assert.match(result.stderr, /usage: lifeboat/)
      assert.equal(result.stdout, '')
    }
    for (const args of [['pool', 'list', '--json'], ['logs'], ['job', 'run', 'x', '--wait']]) {
      const result = await cli(socket, args)
      assert.equal(result.code, 1)
      assert.equal(result.stdout, '')
      const lines = result.stderr.trimEnd().split('\n')
      assert.equal(lines.length, 1)
      assert.match(lines[0]!, /^lifeboat: DAEMON_NOT_RUNNING: .*lifeboat daemon/)
    }
    const help = await cli(socket, ['job', '--help'])
    assert.equal(help.code, 0)
    assert.match(help.stdout, /lifeboat job create/)
  } finally {
    await dir.cleanup()
  }
})

test('job create --file quotes no byte of a file that is not a job: JSON errors give the line and column only', async () => {
  const dir = await tempDir()
  const socket = join(dir.path, 'none.sock')
  try {
    const cases: Array<[string, RegExp]> = [
      ['root:$6$s3cr3tHash:19000:0:99999:7:::\n', /line 1, column 1\b/],
      ['{\n  "name": "nightly",\n  "mode": s3cr3t\n}\n', /line 3, column 11\b/],
      ['{ "name": "s3cr3t" ', /line 1, column 20\b/],
      ['{"name": "a"} s3cr3t', /line 1, column 15\b/],
    ]
    for (const [content, position] of cases) {
      const file = join(dir.path, 'job.json')
      await writeFile(file, content, { mode: 0o600 })
      const result = await cli(socket, ['job', 'create', '--file', file])
      assert.equal(result.code, 2, result.stderr)
      assert.doesNotMatch(result.stderr, /s3cr3t|root:/, 'nothing of the file is quoted')
      assert.match(result.stderr, /is not valid JSON/)
      assert.match(result.stderr, position)
    }
    const folder = await cli(socket, ['job', 'create', '--file', dir.path])
    assert.equal(folder.code, 1)
    assert.match(folder.stderr, /^lifeboat: NOT_A_REGULAR_FILE: /)
  } finally {
    await dir.cleanup()
  }
})
