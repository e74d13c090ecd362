// One daemon per data directory, with real processes: a second daemon on the same socket or another one
// exits DAEMON_ALREADY_RUNNING before it touches anything (the first one's run stays pending), and the lock
// of a daemon killed with -9 is taken over by the next start.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { LIFEBOAT, cli, cliJson, startDaemon, waitUntil, type CliResult, type DaemonProcess } from './helpers.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let daemon: DaemonProcess
let dataDir: string
let runId: string

before(async () => {
  dir = await tempDir('lifeboat-lock-')
  dataDir = join(dir.path, 'daemon')
  lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
  daemon = await startDaemon(dataDir)
  const pool = lab.pools[0]!
  await cliJson(daemon.socket, ['pool', 'add', pool.url, '--user', pool.username, '--password-env', 'LAB_PASSWORD'], { LAB_PASSWORD: pool.password })
  await mkdir(join(dir.path, 'remote'))
  await cliJson(daemon.socket, ['remote', 'add', 'local', `file://${join(dir.path, 'remote')}`])
  const vm = (await cliJson(daemon.socket, ['vm', 'list'])).find((v: { name: string }) => v.name === 'tiny-running')
  await cliJson(daemon.socket, ['job', 'create', '--name', 'slow', '--mode', 'full', '--vm', vm.uuid, '--remote', 'local', '--retention', '2'])
  // The export stalls: the run stays pending for as long as the tests need.
  lab.control.addFault({ match: { endpoint: '/export/' }, times: 0, action: { type: 'stall', ms: 600_000, afterBytes: 0 } })
  ;({ runId } = await cliJson(daemon.socket, ['job', 'run', 'slow']))
})

after(async () => {
  if (daemon.child.exitCode === null && daemon.child.signalCode === null) {
    daemon.child.kill('SIGTERM')
    await daemon.exited
  }
  await lab.stop()
  await dir.cleanup()
})

/** A daemon expected to refuse to start: its exit code and what it printed. */
function daemonRun(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LIFEBOAT, 'daemon', '--data', dataDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', code => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

async function storedStatus(): Promise<string> {
  const state = JSON.parse(await readFile(join(dataDir, 'state.json'), 'utf8')) as { runs: Array<{ runId: string; status: string }> }
  return state.runs.find(run => run.runId === runId)!.status
}

for (const [what, args] of [['the same socket', []], ['another socket', ['--socket', 'OTHER']]] as const) {
  test(`a second daemon on the data directory with ${what} exits DAEMON_ALREADY_RUNNING and touches nothing`, async () => {
    const result = await daemonRun(args.map(arg => (arg === 'OTHER' ? join(dir.path, 'other.sock') : arg)))
    assert.equal(result.code, 1)
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
    assert.match(result.stderr, new RegExp(`^lifeboat: DAEMON_ALREADY_RUNNING: .*\\(pid ${daemon.child.pid}\\) uses the data directory`))
    assert.equal(await storedStatus(), 'pending', 'the live daemon’s run is not marked interrupted')
    assert.equal((await cliJson(daemon.socket, ['run', 'show', runId])).summary.status, 'pending')
    const other = await cli(join(dir.path, 'other.sock'), ['job', 'list'])
    assert.match(other.stderr, /DAEMON_NOT_RUNNING/, 'no daemon listens on the other socket')
  })
}

test('the lock of a daemon killed with -9 is taken over by the next one', async () => {
  daemon.child.kill('SIGKILL')
  await daemon.exited
  assert.equal(JSON.parse(await readFile(join(dataDir, 'daemon.lock'), 'utf8')).pid, daemon.child.pid, 'the dead daemon’s lock is left behind')
  daemon = await startDaemon(dataDir, join(dir.path, 'other.sock'))
  assert.equal(JSON.parse(await readFile(join(dataDir, 'daemon.lock'), 'utf8')).pid, daemon.child.pid)
  await waitUntil('the dead run to be marked', async () => ((await storedStatus()) === 'interrupted' ? true : undefined))
  daemon.child.kill('SIGTERM')
  assert.equal(await daemon.exited, 0)
  await assert.rejects(readFile(join(dataDir, 'daemon.lock')), { code: 'ENOENT' }, 'a clean stop removes its lock')
})
