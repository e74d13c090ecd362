// A normal exit prints no stack trace: `lab --no-tui` stopped by Ctrl-C, and a daemon whose pool goes away.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../helpers/tools.ts'
import { LIFEBOAT, cliJson, startDaemon, waitUntil } from '../daemon/helpers.ts'

const STACK = /^\s+at .+:\d+:\d+\)?$/m

function spawnLifeboat(args: string[]) {
  const child = spawn(process.execPath, [LIFEBOAT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<number | string>(resolve => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  return { child, exited, stdout: () => stdout, stderr: () => stderr }
}

test('lab --no-tui stopped with Ctrl-C exits 0 with no stack trace and no xen-api warning', async () => {
  const dir = await tempDir('lifeboat-quiet-')
  try {
    const lab = spawnLifeboat(['lab', '--no-tui', '--data', dir.path])
    await waitUntil('the lab to start', async () => (lab.stdout().includes('Ctrl-C stops') ? true : undefined), 60_000)
    assert.match(lab.stdout(), /^  npx lifeboat job run first --wait --socket /m, "the hints are the README's form")
    lab.child.kill('SIGINT')
    assert.equal(await lab.exited, 0)
    assert.doesNotMatch(lab.stderr(), STACK, lab.stderr())
    assert.doesNotMatch(lab.stderr(), /_watchEvents|SocketError|lost contact/, lab.stderr())
  } finally {
    await dir.cleanup()
  }
})

test('a daemon whose lab pool stops logs one line for it, no stack trace; SIGTERM then exits 0', async () => {
  const dir = await tempDir('lifeboat-quiet-')
  try {
    const serve = spawnLifeboat(['lab', 'serve', '--fixture', 'tiny', '--data', join(dir.path, 'lab'), '--json'])
    const { url, username, password } = await waitUntil('the lab to listen', async () => (serve.stdout().includes('\n') ? JSON.parse(serve.stdout()) : undefined), 60_000)
    const daemon = await startDaemon(join(dir.path, 'daemon'))
    const passwordFile = join(dir.path, 'password')
    await writeFile(passwordFile, password, { mode: 0o600 })
    await cliJson(daemon.socket, ['pool', 'add', url, '--user', username, '--password-file', passwordFile])
    serve.child.kill('SIGINT')
    assert.equal(await serve.exited, 0)
    assert.doesNotMatch(serve.stderr(), STACK, serve.stderr())
    await waitUntil('the daemon to see the pool gone', async () => ((await cliJson(daemon.socket, ['pool', 'list']))[0].status === 'error' ? true : undefined), 60_000)
    daemon.child.kill('SIGTERM')
    assert.equal(await daemon.exited, 0)
    assert.doesNotMatch(daemon.log(), STACK, daemon.log())
    assert.doesNotMatch(daemon.log(), /_watchEvents|SocketError|UND_ERR/, daemon.log())
    assert.match(daemon.log(), /lost contact/)
  } finally {
    await dir.cleanup()
  }
})
