// A distributed job through the CLI and a real daemon on the lab: the job file takes distributeBackups, a
// job pooling a remote that tells its free space with one that cannot (S3) is refused at create and update
// with the reason, and a run sends each VM to one remote, which `run show` names with why.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DaemonClient } from '../../source/client/index.ts'
import { startLab, type Lab } from '../../source/lab/index.ts'
import type { TaskNode } from '../../source/protocol/methods.ts'
import { startS3rver, type S3rver } from '../helpers/s3rver.ts'
import { tempDir } from '../helpers/tools.ts'
import { cli, cliJson, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'
import { describeFailure, tasksOf } from '../engine/helpers.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let s3: S3rver
let daemon: DaemonProcess
let vmUuids: string[]

before(async () => {
  dir = await tempDir('lifeboat-distributed-')
  ;[lab, s3, daemon] = await Promise.all([startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' }), startS3rver(), startDaemon(join(dir.path, 'daemon'))])
  const pool = lab.pools[0]!
  await cliJson(daemon.socket, ['pool', 'add', pool.url, '--user', pool.username, '--password-env', 'LAB_PASSWORD'], { LAB_PASSWORD: pool.password })
  for (const name of ['a', 'b']) {
    await mkdir(join(dir.path, name))
    await cliJson(daemon.socket, ['remote', 'add', name, `file://${join(dir.path, name)}`])
  }
  await cliJson(daemon.socket, ['remote', 'add', 'bucket', s3.urlFor('distributed')])
  vmUuids = (await cliJson<Array<{ uuid: string; name: string }>>(daemon.socket, ['vm', 'list'])).filter(vm => vm.name.startsWith('tiny-')).map(vm => vm.uuid)
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await lab.stop()
  await s3.stop()
  await dir.cleanup()
})

const jobOver = (remotes: string[]) => ({
  name: 'spread', mode: 'delta', vms: { uuids: vmUuids }, remotes, settings: { distributeBackups: true, concurrency: 1 },
  schedules: [{ name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 2 } }],
})

async function jobFile(job: unknown): Promise<string> {
  const file = join(dir.path, 'job.json')
  await writeFile(file, JSON.stringify(job))
  return file
}

test('the job file takes distributeBackups; a remote that cannot tell its free space is refused beside ones that can, at create and update', async () => {
  const mixed = await cli(daemon.socket, ['job', 'create', '--file', await jobFile(jobOver(['a', 'bucket']))])
  assert.equal(mixed.code, 1)
  assert.match(mixed.stderr.replace(/\n/g, ' '), /- settings\.distributeBackups: A distributed job picks the remote with the most free space, but "a" tells its free space and "bucket" cannot \(object stores\): they cannot be pooled\./)
  const created = await cliJson(daemon.socket, ['job', 'create', '--file', await jobFile(jobOver(['a', 'b']))])
  assert.equal(created.job.settings.distributeBackups, true)
  const shown = await cliJson(daemon.socket, ['job', 'show', created.job.id])
  assert.deepEqual([shown.settings.distributeBackups, shown.remotes], [true, ['a', 'b']])
  // An update (the wizard's way) is checked the same.
  const client = await DaemonClient.connect(daemon.socket)
  try {
    await assert.rejects(client.call('job.update', { id: created.job.id, job: jobOver(['a', 'b', 'bucket']) as never }), (error: Error & { code: string; data?: { problems?: Array<{ path: string; message: string }> } }) => {
      assert.equal(error.code, 'JOB_INVALID')
      assert.deepEqual(error.data?.problems?.map(p => p.path), ['settings.distributeBackups'])
      assert.match(error.data!.problems![0]!.message, /"a", "b" tell their free space and "bucket" cannot/)
      return true
    })
  } finally {
    client.close()
  }
  const single = await cli(daemon.socket, ['job', 'create', '--file', await jobFile({ ...jobOver(['a']), name: 'single' })])
  assert.match(single.stderr, /- settings\.distributeBackups: distributing backups needs at least 2 remotes to spread them over; the job has 1/)

  // Each VM goes to one remote, and run show says which and why: two folders of one file system have the same free space, a tie.
  const run = await cli(daemon.socket, ['job', 'run', created.job.id, '--wait', '--json'])
  const { tree } = JSON.parse(run.stdout) as { tree: TaskNode }
  assert.equal(run.code, 0, describeFailure(tree))
  const vmTasks = tasksOf(tree).filter(task => task.message === 'backup VM')
  assert.equal(vmTasks.length, 2)
  for (const vmTask of vmTasks) {
    const exports = tasksOf(vmTask).filter(task => task.message === 'export')
    assert.equal(exports.length, 1, 'one remote per VM')
    assert.equal((exports[0]!.data?.distributed as { reason: string }).reason, 'tie')
  }
  const shownRun = await cli(daemon.socket, ['run', 'show', tree.id])
  assert.equal(shownRun.code, 0, shownRun.stderr)
  assert.equal(shownRun.stdout.match(/^[│ ]* i distributed: (a|b), chosen at random among the 2 with the most free space \(a [\d.]+ \w+ free, b [\d.]+ \w+ free\)$/gm)?.length, 2, shownRun.stdout)
})
