// `lifeboat cr-seed` through a real daemon on the lab's pair of pools: a snapshot of a VM of the "lab" pool,
// exported and imported by hand on the "dr" pool's SR (as XO's procedure says), becomes the job's
// continuous-replication base, and the job's next run sends only the blocks changed since; every mismatch is
// refused with what differs, and nothing is marked then.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { exportVmXva, importVmXva, PoolConnection, vmDisks, type XapiRecord } from '../../source/xapi/index.ts'
import { formatFilenameDate, formatOtherConfigDate, parseBackupDate } from '../../source/repository/index.ts'
import { jobSnapshots, selectBase } from '../../source/engine/run/snapshots.ts'
import { CR_TAG, listReplicas, REPLICA_START_BLOCKED } from '../../source/engine/targets/replicas.ts'
import { tempDir } from '../helpers/tools.ts'
import { cli, cliJson, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'
import { describeFailure, tasksOf, vmDigests } from '../engine/helpers.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let daemon: DaemonProcess
let source: PoolConnection
let dr: PoolConnection
let drSrUuid: string
let job: { id: string; schedules: Array<{ id: string }> }

const MiB = 1024 * 1024
const holder = { runId: 'cr-seed-test', vm: 'seed', phase: 'export' }
const vmNamed = (conn: PoolConnection, name: string) => conn.all('VM').find(vm => vm.name_label === name && vm.is_a_snapshot !== true)!
const config = (record: XapiRecord | undefined) => (record?.other_config ?? {}) as Record<string, string>

before(async () => {
  dir = await tempDir('lifeboat-cr-seed-')
  lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'pair' })
  daemon = await startDaemon(join(dir.path, 'daemon'))
  for (const pool of lab.pools) await cliJson(daemon.socket, ['pool', 'add', pool.url, '--user', pool.username, '--password-env', 'LAB_PASSWORD'], { LAB_PASSWORD: pool.password })
  ;[source, dr] = await Promise.all(lab.pools.map(pool => PoolConnection.connect({ url: pool.url, username: pool.username, password: pool.password })))
  drSrUuid = dr.all('SR')[0]!.uuid
  const file = join(dir.path, 'job.json')
  await writeFile(file, JSON.stringify({ name: 'cr', mode: 'delta', vms: { uuids: [vmNamed(source, 'tiny-halted').uuid] }, srs: [drSrUuid], schedules: [{ name: 'hourly', cron: '0 * * * *', timezone: 'UTC', retention: { replicas: 2 } }] }))
  job = (await cliJson(daemon.socket, ['job', 'create', '--file', file])).job
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await Promise.all([source.disconnect(), dr.disconnect()])
  await lab.stop()
  await dir.cleanup()
})

/** A snapshot of the VM, as an administrator takes it by hand. */
async function snapshotOf(name: string): Promise<XapiRecord> {
  const ref = (await source.call('VM.snapshot', vmNamed(source, name).$ref, `${name} seed`)) as string
  const disks = vmDisks(source, vmNamed(source, name)).length
  return source.waitFor(() => (vmDisks(source, source.byRef(ref) ?? ({ VBDs: [] } as never)).length === disks ? source.byRef(ref) : undefined), { what: 'the snapshot and its disks', timeoutMs: 20_000 })
}

/** The snapshot exported as an XVA and imported on the dr pool's SR: the seed copy. */
async function importedCopy(snapshot: XapiRecord): Promise<XapiRecord> {
  const exported = await exportVmXva(source, snapshot.$ref, { holder })
  const ref = await importVmXva(dr, exported.stream, undefined, dr.all('SR')[0]!.$ref)
  await exported.task
  const disks = vmDisks(source, snapshot).length
  return dr.waitFor(() => (vmDisks(dr, dr.byRef(ref) ?? ({ VBDs: [] } as never)).length === disks ? dr.byRef(ref) : undefined), { what: 'the imported VM and its disks', timeoutMs: 20_000 })
}

const seed = (snapshot: XapiRecord, target: XapiRecord, vm = 'tiny-halted', jobId = 'cr') => cli(daemon.socket, ['cr-seed', '--job', jobId, '--vm', vm, '--snapshot', snapshot.uuid, '--target-vm', target.uuid])

test('cr-seed marks the snapshot as the job\'s exported base and the imported VM as its replica on the SR, as XO does', async () => {
  const snapshot = await snapshotOf('tiny-halted')
  const target = await importedCopy(snapshot)
  assert.deepEqual(await vmDigests(dr, target), await vmDigests(source, snapshot), 'the seed copy holds the snapshot\'s bytes')
  const human = await seed(snapshot, target)
  assert.equal(human.code, 0, human.stderr)
  assert.match(human.stdout, new RegExp(`^seeded: snapshot ${snapshot.uuid} is the base, VM ${target.uuid} its replica on SR ${drSrUuid}`))
  assert.match(human.stdout, /DISK +SIZE +SNAPSHOT VDI +REPLICA VDI\n0 +16 MiB/)

  const vm = vmNamed(source, 'tiny-halted')
  const timestamp = parseBackupDate(String(snapshot.snapshot_time))!
  const marks = { 'xo:backup:job': job.id, 'xo:backup:schedule': job.schedules[0]!.id, 'xo:backup:vm': vm.uuid, 'xo:backup:datetime': formatOtherConfigDate(timestamp), 'xo:backup:exported': 'true', 'xo:backup:deltaChainLength': '0' }
  // The VM and each of its disks are separate records, whose events may come apart: wait for all of them.
  const marked = (record: XapiRecord) => config(record)['xo:backup:exported'] === 'true'
  const base = await source.waitFor(() => {
    const record = source.byUuid(snapshot.uuid)
    return record !== undefined && marked(record) && vmDisks(source, record).every(disk => marked(disk.vdi)) ? record : undefined
  }, { what: 'the marks on the snapshot and its disks', timeoutMs: 20_000 })
  for (const record of [base, ...vmDisks(source, base).map(disk => disk.vdi)]) assert.deepEqual(Object.fromEntries(Object.keys(marks).map(key => [key, config(record)[key]])), marks, record.$type)
  // The engine's base selection picks it: the next run of the job goes delta from it.
  const selection = selectBase(source, vm, vmDisks(source, vm).map(disk => disk.vdi), job.id)
  assert.equal(selection.snapshot?.record.uuid, snapshot.uuid)
  assert.equal(selection.bases.size, 1)

  const replicas = await dr.waitFor(() => {
    const found = listReplicas(dr, { jobOrScheduleId: job.id, vmUuid: vm.uuid, srUuid: drSrUuid })
    return found.length === 1 ? found : undefined
  }, { what: 'the replica', timeoutMs: 20_000 })
  const replica = replicas[0]!
  assert.equal(replica.uuid, target.uuid)
  assert.equal(replica.name_label, `tiny-halted - cr - (${formatFilenameDate(timestamp)})`)
  assert.ok((replica.tags as string[]).includes(CR_TAG), 'the replica made by cr-seed carries the CR tag')
  assert.deepEqual(replica.blocked_operations, { start: REPLICA_START_BLOCKED, start_on: REPLICA_START_BLOCKED })
  assert.equal(replica.is_a_template, false, 'the imported snapshot (a template) is a VM now')
  assert.equal(config(replica)['xo:copy_of'], snapshot.uuid)
  assert.equal(config(replica)['xo:backup:datetime'], formatOtherConfigDate(timestamp))
  const snapshotVdis = new Map(vmDisks(source, base).map(disk => [disk.vbd.userdevice, disk.vdi.uuid]))
  for (const disk of vmDisks(dr, replica)) assert.equal(config(disk.vdi)['xo:copy_of'], snapshotVdis.get(disk.vbd.userdevice))
  await assert.rejects(dr.call('VM.start', replica.$ref, false, false), /OPERATION_BLOCKED/)
})

test('after cr-seed, the first run of the job sends only the blocks changed since the seed snapshot', async () => {
  const vm = vmNamed(source, 'tiny-halted')
  const live = vmDisks(source, vm)[0]!.vdi
  await lab.pools[0]!.control.writeVdi(live.uuid, { offset: 4 * MiB + 4096, length: 64 * 1024, seed: 7 })
  const activity = lab.pools[1]!.control.xapi.activity
  activity.reset()
  const run = await cliJson(daemon.socket, ['job', 'run', 'cr', '--wait'])
  assert.equal(run.status, 'success', describeFailure(run.tree))
  const exports = tasksOf(run.tree).filter(task => task.message === 'export')
  assert.deepEqual(exports.map(task => [task.data?.type, task.data?.id, task.data?.isFull]), [['SR', drSrUuid, false]], 'one export, to the SR, a delta')
  const written = activity.snapshot().imported
  assert.equal(written.blocks, 1, `only the changed 2 MiB block was written on the replica: ${JSON.stringify(written)}`)
  const replicas = listReplicas(dr, { jobOrScheduleId: job.id, vmUuid: vm.uuid, srUuid: drSrUuid })
  assert.equal(replicas.length, 2, 'the seed and the new replica (2 kept)')
  const snapshot = jobSnapshots(source, source.byUuid(vm.uuid)!, job.id).at(-1)!.record
  assert.deepEqual(await vmDigests(dr, replicas.at(-1)!), await vmDigests(source, snapshot), "the new replica holds the new snapshot's bytes")
})

test('cr-seed refuses, saying what differs, and marks nothing: other disks, a snapshot of another VM, a full-mode job, a started copy', async () => {
  const snapshot = await snapshotOf('tiny-halted')
  const target = await importedCopy(snapshot)
  const unmarked = async () => {
    assert.equal(config(source.byUuid(snapshot.uuid))['xo:backup:exported'], undefined, 'the snapshot is not marked')
    assert.equal(config(dr.byUuid(target.uuid))['xo:backup:sr'], undefined, 'the target is not marked')
  }
  const refusal = async (result: Promise<{ code: number; stdout: string; stderr: string }>, code: string, sentence: RegExp) => {
    const { code: exit, stdout, stderr } = await result
    assert.equal(exit, 1, stdout)
    assert.match(stderr, new RegExp(`^lifeboat: ${code}: `))
    assert.match(stderr, sentence)
    await unmarked()
  }

  const disk = vmDisks(dr, target)[0]!
  await dr.call('VDI.resize', disk.vdi.$ref, String(32 * 1024 * 1024))
  const extra = (await dr.call('VDI.create', { SR: dr.all('SR')[0]!.$ref, virtual_size: String(8 * 1024 * 1024), name_label: 'extra', type: 'user', sharable: false, read_only: false, other_config: {} })) as string
  await dr.call('VBD.create', { VM: target.$ref, VDI: extra, userdevice: '1', bootable: false, mode: 'RW', type: 'Disk', empty: false, other_config: {} })
  await dr.waitFor(() => (vmDisks(dr, dr.byUuid(target.uuid)!).length === 2 && Number(dr.byRef(disk.vdi.$ref)!.virtual_size) === 32 * 1024 * 1024 ? true : undefined), { what: 'the changed disks', timeoutMs: 20_000 })
  await refusal(seed(snapshot, target), 'CR_SEED_DISKS_DIFFER', /disk 0: 16 MiB \(16777216 bytes\) on the snapshot, 32 MiB \(33554432 bytes\) on the target VM; disk 1: the target VM has one of 8\.0 MiB \(8388608 bytes\), the snapshot none\. Import this very snapshot/)

  const copy = await importedCopy(snapshot)
  await refusal(seed(snapshot, copy, 'tiny-running'), 'CR_SEED_VM_NOT_IN_JOB', /does not back up the VM "tiny-running"/)
  const smart = join(dir.path, 'smart.json')
  await writeFile(smart, JSON.stringify({ name: 'cr-prod', mode: 'delta', vms: { smart: { tags: ['prod'] } }, srs: [drSrUuid], schedules: [{ name: 'hourly', cron: '0 * * * *', timezone: 'UTC' }] }))
  await cliJson(daemon.socket, ['job', 'create', '--file', smart])
  await refusal(seed(snapshot, copy, 'tiny-halted', 'cr-prod'), 'CR_SEED_VM_NOT_IN_JOB', /does not back up the VM "tiny-halted" .*; change the job's smart selection first/)
  const other = await snapshotOf('tiny-running')
  await refusal(cli(daemon.socket, ['cr-seed', '--job', 'cr', '--vm', 'tiny-halted', '--snapshot', other.uuid, '--target-vm', copy.uuid]), 'CR_SEED_NOT_A_SNAPSHOT', new RegExp(`The seed must be a snapshot of the VM "tiny-halted": ${other.uuid} is a snapshot of another VM`))

  const file = join(dir.path, 'full.json')
  await writeFile(file, JSON.stringify({ name: 'dr-full', mode: 'full', vms: { uuids: [vmNamed(source, 'tiny-halted').uuid] }, srs: [drSrUuid], schedules: [{ name: 'daily', cron: '0 3 * * *', timezone: 'UTC' }] }))
  await cliJson(daemon.socket, ['job', 'create', '--file', file])
  await refusal(seed(snapshot, copy, 'tiny-halted', 'dr-full'), 'CR_SEED_NOT_DELTA', /is in full mode \(disaster recovery/)

  await dr.call('VM.set_is_a_template', copy.$ref, false)
  await dr.call('VM.start', copy.$ref, false, false)
  await dr.waitFor(() => (dr.byRef(copy.$ref)?.power_state === 'Running' ? true : undefined), { what: 'the copy to run', timeoutMs: 20_000 })
  await refusal(seed(snapshot, copy), 'CR_SEED_TARGET_INVALID', /is running; a seed must never have been started since its import/)

  const usage = await cli(daemon.socket, ['cr-seed', '--job', 'cr', '--vm', 'tiny-halted', '--snapshot', snapshot.uuid])
  assert.equal(usage.code, 2)
  assert.match(usage.stderr, /--target-vm TARGET_VM_UUID is required/)
})
