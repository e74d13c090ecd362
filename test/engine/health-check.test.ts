// Health checks through the engine against the lab: the backup just written (a remote's, full and delta) or the
// replica just made (an SR's) becomes a VM on the health check SR that must start, run its guest agent and, when
// tagged for it, its script; a disk with no boot sector and a guest without tools fail; the checked VM is destroyed
// on every path, a cancel included (it runs without network meanwhile); and the run and the VM stay successful with
// the check's failure beside them. A mirror checks the last copy each target received, and says why it checks
// nothing when nothing was copied.
import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, test } from 'node:test'
import { startBackupRun } from '../../source/engine/index.ts'
import { HEALTH_CHECK_SCRIPT_TAG, HEALTH_CHECK_VM_TAG } from '../../source/engine/restore/health-check.ts'
import { healthCheckMarker, HEALTH_CHECK_MARKER_OFFSET } from '../../source/lab/guest.ts'
import { HEALTH_CHECK_TASK, type TaskNode } from '../../source/tasks/index.ts'
import { listVmBackups } from '../../source/repository/index.ts'
import { vmDisks, type PoolConnection, type XapiRecord } from '../../source/xapi/index.ts'
import { describeFailure, job, mirrorJob, mirrorToEnd, runToEnd, startEngineLab, tasksOf, vmByName, type EngineLab } from './helpers.ts'

const checksOf = (tree: TaskNode) => tasksOf(tree).filter(task => task.message === HEALTH_CHECK_TASK)
const vmTask = (tree: TaskNode) => tasksOf(tree).find(task => task.message === 'backup VM')!
const errorOf = (task: TaskNode) => task.result as { code?: string; message?: string }

/** No VM tagged for a health check is left on the pool, nor any disk it had. */
async function assertNothingLeft(conn: PoolConnection, vdisBefore: Set<string>): Promise<void> {
  await conn.sync()
  const left = conn.all('VM').filter(vm => ((vm.tags as string[]) ?? []).includes(HEALTH_CHECK_VM_TAG))
  assert.deepEqual(left.map(vm => vm.name_label), [], 'the checked VM is destroyed')
  const extra = conn.all('VDI').filter(vdi => !vdiIsBackupState(conn, vdi) && !vdisBefore.has(vdi.uuid))
  assert.deepEqual(extra.map(vdi => vdi.name_label), [], 'no disk of the checked VM is left')
}

/** Disks a backup itself leaves: snapshots and the base copies behind them, and replicas. */
function vdiIsBackupState(conn: PoolConnection, vdi: XapiRecord): boolean {
  if (vdi.is_a_snapshot === true || vdi.managed === false) return true
  return (vdi.VBDs as string[]).some(vbd => {
    const vm = conn.byRef(String(conn.byRef(vbd)?.VM))
    return vm !== undefined && (vm.is_a_snapshot === true || ((vm.tags as string[]) ?? []).some(tag => tag === 'Continuous Replication' || tag === 'Disaster Recovery'))
  })
}

async function liveVdis(conn: PoolConnection): Promise<Set<string>> {
  await conn.sync()
  return new Set(conn.all('VDI').map(vdi => vdi.uuid as string))
}

describe('health check of a remote backup', () => {
  let env: EngineLab
  let conn: PoolConnection
  let sr: XapiRecord

  const checkedJob = (mode: 'full' | 'delta', vm: string, settings: Record<string, unknown> = {}) => job({
    mode, vms: { uuids: [vmByName(conn, vm).uuid] },
    settings: { healthCheckSr: sr.uuid, healthCheckTimeout: '2m', ...settings },
  })

  before(async () => {
    env = await startEngineLab({ fixture: 'tiny' })
    conn = env.conns[0]!
    sr = conn.all('SR').find(s => s.name_label === 'Local storage')!
  })
  after(() => env.cleanup())
  beforeEach(() => env.lab.pools[0]!.control.reset())

  for (const mode of ['delta', 'full'] as const) {
    test(`a good ${mode} backup passes: restored, started, its agent seen, destroyed`, async () => {
      const before = await liveVdis(conn)
      const tree = await runToEnd(env, checkedJob(mode, 'tiny-running'))
      assert.equal(tree.status, 'success')
      const [check] = checksOf(tree)
      assert.ok(check !== undefined, 'one health check, on the remote')
      assert.equal(check.status, 'success', JSON.stringify(check.result))
      assert.ok(tasksOf(check).some(task => task.message === 'restore' && task.status === 'success'), 'the backup just written was restored')
      assert.deepEqual((check.infos ?? []).map(info => info.message), ['the VM is running', 'the guest agent reported', 'the checked VM was destroyed'])
      assert.equal(tree.healthCheck, 'success')
      assert.equal(vmTask(tree).healthCheck, 'success')
      await assertNothingLeft(conn, before)
    })
  }

  test('a backup of a disk with no boot sector fails its check; the backup and the run stay successful', async () => {
    const vm = vmByName(conn, 'tiny-running')
    const disk = vmDisks(conn, vm)[0]!.vdi
    const control = env.lab.pools[0]!.control
    await control.writeVdi(disk.uuid as string, { offset: 0, data: Buffer.alloc(1024).toString('base64') })
    try {
      const before = await liveVdis(conn)
      const tree = await runToEnd(env, checkedJob('delta', 'tiny-running', { healthCheckTimeout: '3s' }))
      const [check] = checksOf(tree)
      assert.equal(check?.status, 'failure')
      assert.equal(errorOf(check!).code, 'HEALTH_CHECK_TIMEOUT')
      assert.match(errorOf(check!).message!, /guest agent/)
      assert.equal(tree.status, 'success', 'not verified is not a failed backup')
      assert.equal(vmTask(tree).status, 'success')
      assert.equal(tasksOf(tree).find(task => task.message === 'export')!.status, 'success', 'the export holds a backup')
      assert.equal(tree.healthCheck, 'failure')
      assert.equal(vmTask(tree).healthCheck, 'failure')
      await assertNothingLeft(conn, before)
    } finally {
      // Back to a bootable disk for the tests after this one.
      await control.writeVdi(disk.uuid as string, { offset: 510, data: Buffer.from([0x55, 0xaa]).toString('base64') })
    }
  })

  test('a VM whose guest agent never starts times out', async () => {
    const before = await liveVdis(conn)
    const tree = await runToEnd(env, checkedJob('delta', 'tiny-halted', { healthCheckTimeout: '3s' }))
    const [check] = checksOf(tree)
    assert.equal(check?.status, 'failure')
    assert.equal(errorOf(check!).code, 'HEALTH_CHECK_TIMEOUT')
    assert.ok((check!.infos ?? []).some(info => info.message === 'the VM is running'), 'it started: what never came is its agent')
    assert.equal(tree.status, 'success')
    await assertNothingLeft(conn, before)
  })

  test('a VM tagged for the script gets its answer from the guest: success, then failure with its message', async () => {
    const vm = vmByName(conn, 'tiny-running')
    const disk = vmDisks(conn, vm)[0]!.vdi
    const control = env.lab.pools[0]!.control
    await conn.call('VM.add_tags', vm.$ref, HEALTH_CHECK_SCRIPT_TAG)
    try {
      await control.writeVdi(disk.uuid as string, { offset: HEALTH_CHECK_MARKER_OFFSET, data: healthCheckMarker('success').toString('base64') })
      const passed = await runToEnd(env, checkedJob('delta', 'tiny-running'))
      const [ok] = checksOf(passed)
      assert.equal(ok?.status, 'success', JSON.stringify(ok?.result))
      assert.ok((ok!.infos ?? []).some(info => info.message === 'the health check script succeeded'), 'the script answered success')

      await control.writeVdi(disk.uuid as string, { offset: HEALTH_CHECK_MARKER_OFFSET, data: healthCheckMarker('failure', 'the database does not open').toString('base64') })
      const failed = await runToEnd(env, checkedJob('delta', 'tiny-running'))
      const [bad] = checksOf(failed)
      assert.equal(bad?.status, 'failure')
      assert.equal(errorOf(bad!).code, 'HEALTH_CHECK_SCRIPT_FAILED')
      assert.match(errorOf(bad!).message!, /the database does not open/)
      assert.equal(failed.status, 'success')
    } finally {
      await conn.call('VM.remove_tags', vm.$ref, HEALTH_CHECK_SCRIPT_TAG)
      await control.writeVdi(disk.uuid as string, { offset: HEALTH_CHECK_MARKER_OFFSET, data: Buffer.alloc(512).toString('base64') })
    }
  })

  test('a cancel during the check stops it and still destroys the checked VM', async () => {
    const before = await liveVdis(conn)
    // A guest without tools: the check waits for its agent until the cancel.
    const run = startBackupRun(checkedJob('delta', 'tiny-halted'), env.context)
    const checked = await conn.waitFor(() => conn.all('VM').find(vm => ((vm.tags as string[]) ?? []).includes(HEALTH_CHECK_VM_TAG) && vm.power_state === 'Running'), { what: 'the checked VM to run', timeoutMs: 120_000 })
    assert.deepEqual(checked.VIFs, [], 'the checked VM runs without network')
    assert.deepEqual(Object.keys(checked.other_config as Record<string, string>).filter(key => key.startsWith('xo:backup:')), [], 'no job takes it for its own')
    run.cancel()
    const tree = await run.done
    assert.equal(tree.status, 'cancelled')
    const [check] = checksOf(tree)
    assert.equal(check?.status, 'cancelled')
    assert.equal(tasksOf(tree).find(task => task.message === 'export')!.status, 'success', 'the backup itself was done before the cancel, and is kept')
    await assertNothingLeft(conn, before)
  })

  test("the VMs the settings leave out are not checked, and the tree says why", async () => {
    const vm = vmByName(conn, 'tiny-running')
    const onlyWeb = await runToEnd(env, checkedJob('delta', 'tiny-running', { healthCheckVmsWithTags: ['web'] }))
    assert.deepEqual(checksOf(onlyWeb), [])
    assert.ok((vmTask(onlyWeb).infos ?? []).some(info => info.message === 'no health check: the VM has none of the tags web'), 'the VM says why it is not checked')
    assert.equal(onlyWeb.healthCheck, undefined)
    await conn.call('VM.add_tags', vm.$ref, 'xo:no-health-check')
    await conn.sync()
    try {
      const tagged = await runToEnd(env, checkedJob('delta', 'tiny-running', { healthCheckVmsWithTags: ['prod'] }))
      assert.deepEqual(checksOf(tagged), [])
      assert.ok((vmTask(tagged).infos ?? []).some(info => info.message === 'no health check: the VM is tagged xo:no-health-check'), 'the VM says it is tagged out')
    } finally {
      await conn.call('VM.remove_tags', vm.$ref, 'xo:no-health-check')
      await conn.sync()
    }
  })

  test('a health check SR on no connected pool fails the check, not the backup', async () => {
    const tree = await runToEnd(env, job({ mode: 'delta', vms: { uuids: [vmByName(conn, 'tiny-running').uuid] }, settings: { healthCheckSr: '00000000-0000-4000-8000-000000000000' } }))
    const [check] = checksOf(tree)
    assert.equal(errorOf(check!).code, 'HEALTH_CHECK_SR_NOT_FOUND')
    assert.equal(tree.status, 'success')
    assert.equal(tree.healthCheck, 'failure')
  })
})

describe('health check of a distributed backup', () => {
  let env: EngineLab
  let conn: PoolConnection
  before(async () => {
    // b has the most free space: each run's backup lands there.
    env = await startEngineLab({ fixture: 'tiny', remotes: ['a', 'b'], remoteCapacities: { a: 1024 ** 3, b: 3 * 1024 ** 3 } })
    conn = env.conns[0]!
  })
  after(() => env.cleanup())

  test('the check restores the backup from the remote that holds it, the other remote holding nothing', async () => {
    const vm = vmByName(conn, 'tiny-running')
    const sr = conn.all('SR').find(s => s.name_label === 'Local storage')!
    const tree = await runToEnd(env, job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a', 'b'], settings: { distributeBackups: true, healthCheckSr: sr.uuid, healthCheckTimeout: '2m' } }))
    assert.equal(tree.status, 'success', describeFailure(tree))
    const checks = checksOf(tree)
    assert.equal(checks.length, 1, 'one check, on the one remote written')
    assert.equal(checks[0]!.status, 'success', JSON.stringify(checks[0]!.result))
    const holder = tasksOf(tree).find(task => task.message === 'export' && (task.tasks ?? []).includes(checks[0]!))
    assert.equal(holder?.data?.id, 'b', 'the check sits under the export to the remote chosen')
    assert.equal((await listVmBackups(env.remotes.get('b')!, vm.uuid)).length, 1)
    assert.equal((await listVmBackups(env.remotes.get('a')!, vm.uuid)).length, 0, 'nothing on the other remote: the check could only read b')
    assert.equal(tree.healthCheck, 'success')
  })
})

describe('health check of mirrored copies', () => {
  let env: EngineLab
  let conn: PoolConnection
  let sr: XapiRecord
  let vmUuid: string

  const backUp = async () => {
    const tree = await runToEnd(env, job({ mode: 'delta', vms: { uuids: [vmUuid] }, remotes: ['src'], schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 10, snapshots: 1 } }] }))
    assert.equal(tree.status, 'success', describeFailure(tree))
  }
  const checkedMirror = (settings: Record<string, unknown> = {}) => mirrorJob({ sourceRemote: 'src', remotes: ['copy-a', 'copy-b'], settings: { healthCheckSr: sr.uuid, healthCheckTimeout: '2m', ...settings } })
  const checkedBackup = (check: TaskNode) => tasksOf(check).find(task => task.message === 'restore')?.data as { remote?: string; backupId?: string } | undefined

  before(async () => {
    env = await startEngineLab({ fixture: 'tiny', remotes: ['src', 'copy-a', 'copy-b'] })
    conn = env.conns[0]!
    sr = conn.all('SR').find(s => s.name_label === 'Local storage')!
    vmUuid = vmByName(conn, 'tiny-running').uuid as string
  })
  after(() => env.cleanup())
  beforeEach(() => env.lab.pools[0]!.control.reset())

  test('each target checks the last copy it received, once: restored from the target, started, passed, destroyed', async () => {
    await backUp()
    await backUp()
    const before = await liveVdis(conn)
    const tree = await mirrorToEnd(env, checkedMirror())
    assert.equal(tree.status, 'success', describeFailure(tree))
    assert.equal(tasksOf(tree).filter(task => task.message === 'export').length, 4, 'two backups copied to each of the two targets')
    const checks = checksOf(tree)
    assert.equal(checks.length, 2, 'one check per target, not per copy')
    for (const check of checks) assert.equal(check.status, 'success', JSON.stringify(check.result))
    for (const name of ['copy-a', 'copy-b']) {
      const newest = (await listVmBackups(env.remotes.get(name)!, vmUuid)).at(-1)!
      assert.ok(checks.some(check => checkedBackup(check)?.remote === name && checkedBackup(check)?.backupId === newest.id), `the newest copy on ${name} is the one checked, from ${name}`)
    }
    const exports = tasksOf(tree).filter(task => task.message === 'export')
    assert.ok(exports.filter(task => (task.tasks ?? []).some(child => child.message === HEALTH_CHECK_TASK)).every(task => exports.indexOf(task) >= 2), 'the checks hang under the exports of the last copy')
    assert.equal(tree.healthCheck, 'success')
    assert.equal(vmTask(tree).healthCheck, 'success')
    await assertNothingLeft(conn, before)
  })

  test('nothing to copy: no check, and the VM says why; the tags the backup recorded pick the VMs checked', async () => {
    const idle = await mirrorToEnd(env, checkedMirror())
    assert.equal(idle.status, 'success', describeFailure(idle))
    assert.deepEqual(checksOf(idle), [])
    assert.ok((vmTask(idle).infos ?? []).some(info => info.message === 'no health check: no backup was copied (nothing to check on the targets)'), 'the VM says it was not checked, and why')
    assert.equal(idle.healthCheck, undefined)

    await backUp()
    const untagged = await mirrorToEnd(env, checkedMirror({ healthCheckVmsWithTags: ['web'] }))
    assert.equal(untagged.status, 'success', describeFailure(untagged))
    assert.equal(tasksOf(untagged).filter(task => task.message === 'export').length, 2, 'the new backup is copied')
    assert.deepEqual(checksOf(untagged), [])
    assert.ok((vmTask(untagged).infos ?? []).some(info => info.message === 'no health check: the VM has none of the tags web'), 'the VM says why it is not checked')
  })

  test('a copy of a disk with no boot sector fails its checks; the copies and the run stay successful', async () => {
    const disk = vmDisks(conn, vmByName(conn, 'tiny-running'))[0]!.vdi
    const control = env.lab.pools[0]!.control
    await control.writeVdi(disk.uuid as string, { offset: 0, data: Buffer.alloc(1024).toString('base64') })
    try {
      await backUp()
    } finally {
      await control.writeVdi(disk.uuid as string, { offset: 510, data: Buffer.from([0x55, 0xaa]).toString('base64') })
    }
    const before = await liveVdis(conn)
    const tree = await mirrorToEnd(env, checkedMirror({ healthCheckTimeout: '3s' }))
    const checks = checksOf(tree)
    assert.equal(checks.length, 2)
    for (const check of checks) {
      assert.equal(check.status, 'failure')
      assert.equal(errorOf(check).code, 'HEALTH_CHECK_TIMEOUT')
      assert.match(errorOf(check).message!, /guest agent/)
    }
    assert.equal(tree.status, 'success', 'not verified is not a failed copy')
    assert.equal(vmTask(tree).status, 'success')
    assert.ok(tasksOf(tree).filter(task => task.message === 'export').every(task => task.status === 'success'), 'each target holds its copy')
    assert.equal(tree.healthCheck, 'failure')
    await assertNothingLeft(conn, before)
  })
})

describe('health check of a replica (SR targets)', () => {
  let env: EngineLab
  let source: PoolConnection
  let dr: PoolConnection
  let drSr: XapiRecord

  before(async () => {
    env = await startEngineLab({ fixture: 'pair' })
    ;[source, dr] = env.conns as [PoolConnection, PoolConnection]
    drSr = dr.all('SR').find(s => s.name_label === 'DR storage')!
  })
  after(() => env.cleanup())

  for (const mode of ['delta', 'full'] as const) {
    test(`the ${mode === 'delta' ? 'continuous' : 'disaster recovery'} replica just made is cloned, started, passes and is destroyed`, async () => {
      const before = await liveVdis(dr)
      const tree = await runToEnd(env, job({
        mode, vms: { uuids: [vmByName(source, 'tiny-running').uuid] }, remotes: [], srs: [drSr.uuid],
        schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { replicas: 2, snapshots: 1 } }],
        settings: { healthCheckSr: drSr.uuid, healthCheckTimeout: '2m' },
      }))
      assert.equal(tree.status, 'success')
      const [check] = checksOf(tree)
      assert.equal(check?.status, 'success', JSON.stringify(check?.result))
      assert.ok(tasksOf(check!).some(task => task.message === 'cloning-vm'), 'the replica is on the health check SR: cloned, not copied')
      assert.equal(tree.healthCheck, 'success')
      await assertNothingLeft(dr, before)
    })
  }

  test('a health check SR on another pool than the replica fails the check with a sentence', async () => {
    const sourceSr = source.all('SR').find(s => s.name_label === 'Local storage')!
    const tree = await runToEnd(env, job({
      mode: 'delta', vms: { uuids: [vmByName(source, 'tiny-running').uuid] }, remotes: [], srs: [drSr.uuid],
      schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { replicas: 2, snapshots: 1 } }],
      settings: { healthCheckSr: sourceSr.uuid },
    }))
    const [check] = checksOf(tree)
    assert.equal(errorOf(check!).code, 'HEALTH_CHECK_SR_OTHER_POOL')
    assert.equal(tree.status, 'success')
  })
})

describe('health check of a replica copied to another SR of its pool', () => {
  let env: EngineLab

  before(async () => {
    env = await startEngineLab({ fixture: 'default' })
  })
  after(() => env.cleanup())

  test('a replica whose disks are not on the health check SR is copied there, checked and destroyed', async () => {
    const [production, dr] = env.conns as [PoolConnection, PoolConnection]
    const replicaSr = dr.all('SR').find(s => s.name_label === 'DR storage')!
    const checkSr = dr.all('SR').find(s => s.name_label === 'DR LVM')!
    const before = await liveVdis(dr)
    const tree = await runToEnd(env, job({
      mode: 'delta', vms: { uuids: [vmByName(production, 'monitoring').uuid] }, remotes: [], srs: [replicaSr.uuid],
      schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { replicas: 2, snapshots: 1 } }],
      settings: { healthCheckSr: checkSr.uuid, healthCheckTimeout: '2m' },
    }))
    const [check] = checksOf(tree)
    assert.equal(check?.status, 'success', JSON.stringify(check?.result))
    assert.ok(tasksOf(check!).some(task => task.message === 'copying-vm' && task.status === 'success'), 'copied onto the health check SR')
    await assertNothingLeft(dr, before)
    await dr.sync()
    assert.deepEqual(dr.all('VDI').filter(vdi => vdi.SR === checkSr.$ref).map(vdi => vdi.name_label), [], 'nothing of the copy is left on the health check SR')
  })
})
