// The CLI's contract with scripts, without a daemon: exit codes, usage on stderr, nothing on stdout for errors.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
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
