// Health checks from the command line against a real daemon and the tiny lab: a job created with --health-check-sr
// checks its backups (run list says "success, health check passed"); one whose VM never gets an agent stays a
// successful run, says its check failed, and `job run --wait` exits 3; `backup check ID --sr SR` checks a restore
// point by hand as a run of its own, exit 0 when it passes and 1 when it does not. A mirror job with --health-check-sr
// checks the copy its target received the same way: passed, exit 3 when the copy does not boot, no check when nothing was copied.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { cli, cliJson, addLabPoolAndRemote, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let daemon: DaemonProcess
const vms: Record<string, string> = {}

before(async () => {
  dir = await tempDir('lifeboat-cli-check-')
  lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
  daemon = await startDaemon(join(dir.path, 'daemon'))
  Object.assign(vms, await addLabPoolAndRemote(daemon.socket, lab, dir.path))
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await lab.stop()
  await dir.cleanup()
})

const newestRun = async () => (await cliJson(daemon.socket, ['run', 'list', '--limit', '1']))[0]

test('a job with --health-check-sr checks its backup; the run list shows the check beside the status', async () => {
  const created = await cliJson(daemon.socket, ['job', 'create', '--name', 'checked', '--mode', 'delta', '--vm', vms['tiny-running']!, '--remote', 'local', '--retention', '2',
    '--health-check-sr', 'Local storage', '--health-check-timeout', '2m'])
  assert.equal(created.job.settings.healthCheckTimeout, 120_000)
  assert.match(created.job.settings.healthCheckSr, /^[0-9a-f-]{36}$/, 'the SR given by name is stored as its uuid')
  const run = await cli(daemon.socket, ['job', 'run', 'checked', '--wait'])
  assert.equal(run.code, 0, run.stderr)
  assert.match(run.stdout, /health check {2}\[success\]/)
  const summary = await newestRun()
  assert.equal(summary.status, 'success')
  assert.equal(summary.healthCheck, 'success')
  const list = await cli(daemon.socket, ['run', 'list'])
  assert.match(list.stdout, /success, health check passed/)
})

test('a check that fails leaves the run successful, says so, and job run --wait exits 3', async () => {
  await cliJson(daemon.socket, ['job', 'create', '--name', 'no-agent', '--mode', 'full', '--vm', vms['tiny-halted']!, '--remote', 'local', '--retention', '2',
    '--health-check-sr', 'Local storage', '--health-check-timeout', '3s'])
  const run = await cli(daemon.socket, ['job', 'run', 'no-agent', '--wait'])
  assert.equal(run.code, 3, run.stderr)
  assert.match(run.stderr, /the run succeeded, but its health check failed: its backup exists and is not verified/)
  assert.match(run.stdout, /backup VM.*\[success, health check failed\]/)
  assert.match(run.stdout, /health check {2}\[failure\].*HEALTH_CHECK_TIMEOUT/)
  const list = await cli(daemon.socket, ['run', 'list', '--limit', '1'])
  assert.match(list.stdout, /success, health check failed/)
})

test('backup check ID --sr SR checks a restore point by hand, as a run of its own', async () => {
  const points = await cliJson(daemon.socket, ['backup', 'list', '--remote', 'local'])
  const good = points.find((p: { vmUuid: string }) => p.vmUuid === vms['tiny-running'])
  const silent = points.find((p: { vmUuid: string }) => p.vmUuid === vms['tiny-halted'])
  const passed = await cli(daemon.socket, ['backup', 'check', good.id, '--remote', 'local', '--sr', 'Local storage', '--wait'])
  assert.equal(passed.code, 0, passed.stderr)
  assert.match(passed.stdout, /^health check \(local, [0-9a-f-]+\) {2}\[success\]/)
  const summary = await newestRun()
  assert.deepEqual([summary.kind, summary.status, summary.healthCheck], ['health check', 'success', 'success'])
  const failed = await cli(daemon.socket, ['backup', 'check', silent.id, '--remote', 'local', '--sr', 'Local storage', '--timeout', '3s', '--wait'])
  assert.equal(failed.code, 1)
  assert.match(failed.stderr, /HEALTH_CHECK_TIMEOUT: The health check timed out after 3 s waiting for the guest agent/)
  const started = await cliJson(daemon.socket, ['backup', 'check', good.id, '--remote', 'local', '--sr', 'Local storage'])
  assert.match(started.runId, /^[0-9a-z]+-[0-9a-f]+$/)
  const bad = await cli(daemon.socket, ['backup', 'check', good.id, '--remote', 'local', '--sr', 'Local storage', '--timeout', 'soon'])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /"soon" is not a duration/)
  const unbounded = await cli(daemon.socket, ['backup', 'check', good.id, '--remote', 'local', '--sr', 'Local storage', '--timeout', 'none'])
  assert.equal(unbounded.code, 1)
  assert.match(unbounded.stderr, /healthCheckTimeout must be a duration above 0/)
})

test('a mirror job with --health-check-sr checks the copy on its target: passed, exit 3 when the copy does not boot, none when nothing is copied', async () => {
  await mkdir(join(dir.path, 'copies'))
  await cliJson(daemon.socket, ['remote', 'add', 'copies', `file://${join(dir.path, 'copies')}`])
  // The delta backups are of tiny-running (it boots), the full ones of tiny-halted (no guest agent).
  const mirror = (name: string, mode: string, timeout: string) => cliJson(daemon.socket, ['job', 'create', '--name', name, '--mode', mode, '--source-remote', 'local', '--remote', 'copies', '--retention', '3',
    '--health-check-sr', 'Local storage', '--health-check-timeout', timeout])
  await mirror('copy-deltas', 'delta', '2m')
  const passed = await cli(daemon.socket, ['job', 'run', 'copy-deltas', '--wait'])
  assert.equal(passed.code, 0, passed.stderr)
  assert.match(passed.stdout, /health check {2}\[success\]/)
  assert.equal((await newestRun()).healthCheck, 'success')

  const idle = await cliJson(daemon.socket, ['job', 'run', 'copy-deltas', '--wait'])
  assert.equal(idle.status, 'success')
  assert.equal(idle.healthCheck, undefined, 'nothing copied, nothing checked')
  const vmTask = idle.tree.tasks.find((task: { message: string }) => task.message === 'backup VM')
  assert.ok(vmTask.infos.some((info: { message: string }) => info.message === 'no health check: no backup was copied (nothing to check on the targets)'), 'the VM says why it was not checked')

  await mirror('copy-fulls', 'full', '3s')
  const failed = await cli(daemon.socket, ['job', 'run', 'copy-fulls', '--wait'])
  assert.equal(failed.code, 3, failed.stderr)
  assert.match(failed.stderr, /the run succeeded, but its health check failed: its backup exists and is not verified/)
  assert.match(failed.stdout, /health check {2}\[failure\].*HEALTH_CHECK_TIMEOUT/)
  const list = await cli(daemon.socket, ['run', 'list', '--limit', '1'])
  assert.match(list.stdout, /success, health check failed/)
})
