// The CLI's contract with scripts, without a daemon: exit codes, usage on stderr, nothing on stdout for errors.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { tempDir } from '../helpers/tools.ts'
import { spawnSync } from 'node:child_process'
import { LIFEBOAT, cli } from '../daemon/helpers.ts'

test('usage mistakes exit 2 with the usage; a missing daemon exits 1 with one line; stdout stays empty', async () => {
  const dir = await tempDir()
  const socket = join(dir.path, 'none.sock')
  try {
    for (const args of [['job'], ['job', 'nope'], ['job', 'show'], ['pool', 'list', 'extra'], ['run', 'list', '--status', 'weird'], ['remote', 'add', 'x'], ['pool', 'list', '--bogus'], ['job', 'create', '--mode', 'full']]) {
      const result = await cli(socket, args)
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
      assert.match(result.stderr, /usage:\s+lifeboat/)
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

test('--help works on every command and subcommand, on stdout, from the table the parser uses', async () => {
  const { COMMANDS, commandSpec } = await import('../../source/cli/index.ts')
  const { VHD_COMMANDS } = await import('../../source/cli/vhd.ts')
  const names = [
    [], ['daemon'], ['lab'], ['lab', 'serve'], ['vhd'], ...Object.keys(VHD_COMMANDS).map(name => ['vhd', name]),
    ...Object.entries(COMMANDS).flatMap(([command, group]) => [...(group[''] === undefined ? [[command]] : []), ...Object.keys(group).map(name => (name === '' ? [command] : [command, name]))]),
  ]
  for (const words of names) {
    const result = spawnSync(process.execPath, [LIFEBOAT, ...words, '--help'], { encoding: 'utf8' })
    assert.equal(result.status, 0, `${words.join(' ')} --help: ${result.stderr}`)
    assert.equal(result.stderr, '')
    assert.match(result.stdout, new RegExp(`^usage:\\s+lifeboat ${words.join(' ')}`), words.join(' '))
  }
  // Each option of a subcommand's table is in its help, and what its help shows is accepted.
  const run = commandSpec('job', 'run', COMMANDS.job!.run!)
  const help = spawnSync(process.execPath, [LIFEBOAT, 'job', 'run', '-h'], { encoding: 'utf8' }).stdout
  for (const [name, option] of Object.entries(run.options!)) assert.match(help, new RegExp(`--${name}${option.value === undefined ? '' : ` ${option.value}`}\\s+${option.help.slice(0, 10)}`))
  const version = spawnSync(process.execPath, [LIFEBOAT, '--version'], { encoding: 'utf8' })
  assert.equal(version.status, 0)
  assert.match(version.stdout, /^lifeboat \d+\.\d+\.\d+\n$/)
})

test('command-line mistakes are said in our words, on one line, exit 2: never node:util parseArgs text', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['pool', 'list', '--bogus'], /^lifeboat: 'lifeboat pool list' has no option --bogus; 'npx lifeboat pool list --help' lists them$/],
    [['vhd', 'info', 'x.vhd', '--frob'], /^lifeboat: 'lifeboat vhd info' has no option --frob/],
    [['lab', 'serve', '--frob'], /^lifeboat: 'lifeboat lab serve' has no option --frob/],
    [['daemon', '--frob=1'], /^lifeboat: 'lifeboat daemon' has no option --frob/],
    [['--frob'], /^lifeboat: 'lifeboat' has no option --frob/],
    [['job', 'create', '--name', 'n', '--mode', 'full', '--retention', '-3'], /^lifeboat: --retention must be a whole number of 0 or more, not '-3'$/],
    [['job', 'create', '--name'], /^lifeboat: --name needs a value: --name N$/],
    [['job', 'run', 'j', '--wait=yes'], /^lifeboat: --wait takes no value$/],
    [['job', 'create', '--name', 'a', '--name', 'b'], /^lifeboat: --name is given twice$/],
    [['backup', 'list'], /^lifeboat: --remote R is required$/],
    [['frobnicate'], /^lifeboat: unknown command 'frobnicate'; 'npx lifeboat --help' lists them$/],
  ]
  for (const [args, message] of cases) {
    const result = spawnSync(process.execPath, [LIFEBOAT, ...args], { encoding: 'utf8' })
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`)
    assert.match(result.stderr.split('\n')[0]!, message)
    assert.doesNotMatch(result.stderr, /ambiguous|To specify|ERR_PARSE_ARGS/)
    assert.equal(result.stdout, '')
  }
})
