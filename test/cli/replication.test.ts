// A job with 2 remotes and 2 SRs on two pools (the lab's pair: an SR of each pool), through the CLI and a real
// daemon: one snapshot per VM per run feeds every target; in delta mode (continuous replication) the second
// run sends only the changed blocks to the SRs; in full mode (disaster recovery) each SR gets a whole copy.
// Every replica's disks equal the snapshot they came from, byte for byte.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { PoolConnection, vmDisks, type XapiRecord } from '../../source/xapi/index.ts'
import { jobSnapshots } from '../../source/engine/run/snapshots.ts'
import { DR_TAG, CR_TAG, listReplicas } from '../../source/engine/targets/replicas.ts'
import type { TaskNode } from '../../source/protocol/methods.ts'
import { tempDir } from '../helpers/tools.ts'
import { cli, cliJson, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'
import { describeFailure, tasksOf, vmDigests } from '../engine/helpers.ts'

const MiB = 1024 * 1024
let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let daemon: DaemonProcess
let conns: PoolConnection[]
let vms: XapiRecord[]
let srs: Array<{ uuid: string; conn: PoolConnection }>

before(async () => {
  dir = await tempDir('lifeboat-replication-')
  lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'pair' })
  daemon = await startDaemon(join(dir.path, 'daemon'))
  for (const pool of lab.pools) await cliJson(daemon.socket, ['pool', 'add', pool.url, '--user', pool.username, '--password-env', 'LAB_PASSWORD'], { LAB_PASSWORD: pool.password })
  for (const name of ['a', 'b']) {
    await mkdir(join(dir.path, name))
    await cliJson(daemon.socket, ['remote', 'add', name, `file://${join(dir.path, name)}`])
  }
  conns = await Promise.all(lab.pools.map(pool => PoolConnection.connect({ url: pool.url, username: pool.username, password: pool.password })))
  vms = conns[0]!.all('VM').filter(vm => vm.is_a_snapshot !== true && vm.is_control_domain !== true && vm.is_a_template !== true)
  assert.equal(vms.length, 2)
  srs = conns.map(conn => ({ uuid: conn.all('SR')[0]!.uuid, conn }))
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await Promise.all(conns.map(conn => conn.disconnect()))
  await lab.stop()
  await dir.cleanup()
})

async function createJob(name: string, mode: 'full' | 'delta', retention: Record<string, number>): Promise<{ id: string }> {
  const file = join(dir.path, `${name}.json`)
  await writeFile(file, JSON.stringify({ name, mode, vms: { uuids: vms.map(vm => vm.uuid) }, remotes: ['a', 'b'], srs: srs.map(sr => sr.uuid), schedules: [{ name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention }] }))
  return (await cliJson(daemon.socket, ['job', 'create', '--file', file])).job
}

/** Runs the job; checks one snapshot per VM and an export to each of the 4 targets per VM, all of one kind (full or delta). */
async function runEverywhere(job: string, isFull: boolean): Promise<TaskNode> {
  const run = await cliJson(daemon.socket, ['job', 'run', job, '--wait'])
  assert.equal(run.status, 'success', describeFailure(run.tree))
  for (const vm of vms) {
    const vmTask = (run.tree as TaskNode).tasks!.find(task => task.message === 'backup VM' && task.data?.id === vm.uuid)!
    assert.equal(tasksOf(vmTask).filter(task => task.message === 'snapshot').length, 1, `one snapshot of ${vm.name_label}`)
    const exports = tasksOf(vmTask).filter(task => task.message === 'export').map(task => `${task.data?.type} ${task.data?.id} ${task.data?.isFull} ${task.status}`).sort()
    assert.deepEqual(exports, [...['a', 'b'].map(remote => `remote ${remote} ${isFull} success`), ...srs.map(sr => `SR ${sr.uuid} ${isFull} success`)].sort(), `${vm.name_label}'s exports`)
  }
  return run.tree
}

/** Each SR holds `count` replicas of each VM, the newest equal byte for byte to the job's newest snapshot. */
async function checkReplicas(jobId: string, count: number, tag: string): Promise<void> {
  for (const vm of vms) {
    const snapshot = jobSnapshots(conns[0]!, conns[0]!.byUuid(vm.uuid)!, jobId).at(-1)!.record
    const expected = await vmDigests(conns[0]!, snapshot)
    for (const sr of srs) {
      await sr.conn.sync()
      const replicas = listReplicas(sr.conn, { jobOrScheduleId: jobId, vmUuid: vm.uuid, srUuid: sr.uuid })
      assert.equal(replicas.length, count, `${vm.name_label} on ${sr.uuid}`)
      assert.ok((replicas.at(-1)!.tags as string[]).includes(tag), 'the newest replica carries the job tag')
      assert.deepEqual(await vmDigests(sr.conn, replicas.at(-1)!), expected, `${vm.name_label}'s replica on ${sr.uuid} holds its snapshot's bytes`)
    }
  }
}

async function backupsOn(remote: string, jobId: string): Promise<Array<{ vmUuid: string; mode: string }>> {
  return (await cliJson(daemon.socket, ['backup', 'list', '--remote', remote])).filter((point: { jobId: string }) => point.jobId === jobId)
}

test('continuous replication and delta backups in one job: 2 remotes and an SR on each of two pools, one snapshot per run, the second run sends only deltas', async () => {
  const job = await createJob('everywhere-delta', 'delta', { backups: 3, replicas: 2 })
  assert.match((await cli(daemon.socket, ['job', 'list'])).stdout, /everywhere-delta +delta backup \+ continuous replication +a,b +2 /)
  await runEverywhere('everywhere-delta', true)
  await checkReplicas(job.id, 1, CR_TAG)

  const running = vms.find(vm => vm.name_label === 'tiny-running')!
  await lab.pools[0]!.control.writeVdi(vmDisks(conns[0]!, running)[0]!.vdi.uuid, { offset: 6 * MiB + 512, length: 128 * 1024, seed: 11 })
  for (const pool of lab.pools) pool.control.xapi.activity.reset()
  await runEverywhere('everywhere-delta', false)
  await checkReplicas(job.id, 2, CR_TAG)
  // The lab's count of what imports wrote: one 2 MiB block per SR (tiny-running's write), nothing for the unchanged VM.
  for (const pool of lab.pools) assert.equal(pool.control.xapi.activity.snapshot().imported.blocks, 1, `pool ${pool.name}: ${JSON.stringify(pool.control.xapi.activity.snapshot().imported)}`)
  for (const remote of ['a', 'b']) {
    const points = await backupsOn(remote, job.id)
    for (const vm of vms) assert.equal(points.filter(point => point.vmUuid === vm.uuid).length, 2, `${vm.name_label} on ${remote}`)
  }
})

test('disaster recovery and full backups in one job: every remote gets an XVA and every SR a whole copy, from one snapshot', async () => {
  const job = await createJob('everywhere-full', 'full', { backups: 2, replicas: 2, snapshots: 1 })
  assert.match((await cli(daemon.socket, ['job', 'list'])).stdout, /everywhere-full +full backup \+ disaster recovery +a,b +2 /)
  await runEverywhere('everywhere-full', true)
  await checkReplicas(job.id, 1, DR_TAG)
  for (const remote of ['a', 'b']) {
    const points = await backupsOn(remote, job.id)
    assert.deepEqual(points.map(point => [point.vmUuid, point.mode]).sort(), vms.map(vm => [vm.uuid, 'full']).sort(), remote)
  }
})
