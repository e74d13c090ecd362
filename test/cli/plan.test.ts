// `lifeboat job plan` against a real daemon and the tiny lab: the text names what the run will do and exits 0,
// --json is the documented shape; a remote whose last test failed (its folder gone) is a problem that stops the
// run, with its remedy, and the command exits 1; a passing test clears it. Planning changes nothing.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { startLab, type Lab } from '../../source/lab/index.ts'
import type { JobPlan } from '../../source/protocol/plan.ts'
import { tempDir } from '../helpers/tools.ts'
import { cli, cliJson, addLabPoolAndRemote, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let daemon: DaemonProcess

before(async () => {
  dir = await tempDir('lifeboat-cli-plan-')
  lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
  daemon = await startDaemon(join(dir.path, 'daemon'))
  await addLabPoolAndRemote(daemon.socket, lab, dir.path)
  await cliJson(daemon.socket, ['job', 'create', '--name', 'nightly', '--mode', 'delta', '--tag', 'prod', '--remote', 'local', '--timezone', 'UTC'])
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await lab.stop()
  await dir.cleanup()
})

test('job plan prints what the next run will do, exits 0, changes nothing; --json is the plan', async () => {
  const result = await cli(daemon.socket, ['job', 'plan', 'nightly'])
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stdout, /^Plan of job "nightly" \(delta\), schedule "default"; next run \d{4}-\d\d-\d\d 03:00:00/)
  assert.match(result.stdout, /VMs: 1 backed up, 1 left out/)
  assert.match(result.stdout, /full {2}tiny-running disk 0 \(32 MiB\): no earlier exported snapshot of this job: first backup of the chain/)
  assert.match(result.stdout, /tiny-halted \(lab\): it has none of the tags "prod"/)
  assert.match(result.stdout, /remote local: .* free; receives/)
  assert.deepEqual(await readdir(join(dir.path, 'remote')), [], 'a plan writes nothing on the remote')
  const plan = await cliJson<JobPlan>(daemon.socket, ['job', 'plan', 'nightly'])
  assert.equal(plan.jobName, 'nightly')
  assert.equal(plan.vms.length, 1)
  assert.deepEqual(plan.targets.map(target => [target.kind, target.id]), [['remote', 'local']])
  assert.deepEqual(plan.problems, [])
})

test('a remote whose last test failed stops the plan (exit 1) with its reason and remedy; a passing test clears it', async () => {
  const remote = join(dir.path, 'remote')
  await rename(remote, `${remote}.away`)
  const failed = await cli(daemon.socket, ['remote', 'test', 'local'])
  assert.equal(failed.code, 1, failed.stdout)
  const planned = await cli(daemon.socket, ['job', 'plan', 'nightly'])
  assert.equal(planned.code, 1, 'a problem that stops the run: exit 1')
  assert.match(planned.stdout, /2 problems would stop it/, 'the failed test, and the folder that does not answer now')
  assert.match(planned.stdout, /error REMOTE_TEST_FAILED: The remote "local" failed in its last test \(.* UTC\): The remote "local" failed the test while/)
  assert.match(planned.stdout, /→ Fix it, then check it with 'npx lifeboat remote test local' \(a passing test clears this\)\./)
  await rename(`${remote}.away`, remote)
  assert.equal((await cli(daemon.socket, ['remote', 'test', 'local'])).code, 0)
  assert.equal((await cli(daemon.socket, ['job', 'plan', 'nightly'])).code, 0, 'the passing test cleared it')
})
