// `lifeboat lab serve --json`: one line with the URL and credentials once listening, both pools listed, a clean stop on SIGTERM.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/tools.ts'
import { connect, vmNamed } from './helpers.ts'

const cli = fileURLToPath(new URL('../../source/lab/cli.ts', import.meta.url))

test('lab serve --json prints where to connect, serves, and stops on SIGTERM', async () => {
  const dir = await tempDir()
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
    `await (await import(${JSON.stringify(cli)})).main(process.argv.slice(1))`, 'serve', '--data', dir.path, '--fixture', 'tiny', '--json'],
  { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string]
    const printed = JSON.parse(line)
    assert.match(printed.url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(printed.username, 'root')
    assert.equal(printed.pools.length, 1)
    const xapi = await connect({ ...printed.pools[0], control: undefined as never })
    assert.equal(vmNamed(xapi, 'tiny-running').power_state, 'Running')
    await xapi.disconnect()
    child.kill('SIGTERM')
    const [code] = await once(child, 'exit')
    assert.equal(code, 0)
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
    await dir.cleanup()
  }
})
