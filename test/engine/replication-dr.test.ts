// Disaster recovery through the engine against the lab's two pools: a full job with a remote and the DR pool's
// SR, whose replicas equal the snapshot byte for byte and carry XO's marks (name, tags, HA off, start blocked,
// other_config with the completion key), replica retention per schedule, the debris of an interrupted import
// destroyed by the next run, and imports that fail (SR full, toolstack restart, cancel) leaving no replica while
// the remote backup and the replica on another SR of the same run are still written.
import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, test } from 'node:test'
import { startBackupRun } from '../../source/engine/index.ts'
import { DR_TAG, HA_DISABLED_TAG, listReplicas, REPLICA_KEY, REPLICA_START_BLOCKED } from '../../source/engine/targets/replicas.ts'
import { listVmBackups } from '../../source/repository/index.ts'
import { errorCode } from '../../source/util/errors.ts'
import { destroyVmAndDisks, vmDisks, type PoolConnection, type XapiRecord } from '../../source/xapi/index.ts'
import { describeFailure, job, newestJobSnapshot, restoredDigests, runToEnd, startEngineLab, tasksOf, vmByName, vmDigests, type EngineLab } from './helpers.ts'

const SCHEDULE = 'schedule-1'

describe('disaster recovery (full backup imported onto an SR of another pool)', () => {
  let env: EngineLab
  let source: PoolConnection
  let dr: PoolConnection
  let sr: XapiRecord
  let vm: XapiRecord

  /** Smart selection on the tag the replicas inherit: the job must still never pick up its own replicas. */
  const drJob = (srs = [sr.uuid]) => job({
    mode: 'full', vms: { smart: { tags: ['prod'] } }, remotes: ['a'], srs,
    schedules: [{ id: SCHEDULE, name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 2, replicas: 2, snapshots: 1 } }],
  })

  const drControl = () => env.lab.pools[1]!.control

  async function replicas(): Promise<XapiRecord[]> {
    await dr.sync()
    return listReplicas(dr, { jobOrScheduleId: SCHEDULE, vmUuid: vm.uuid, srUuid: sr.uuid })
  }

  /** What is on the DR pool besides complete replicas (half-imported VMs, debris). */
  async function strays(): Promise<XapiRecord[]> {
    await dr.sync()
    return dr.all('VM').filter(v => v.is_control_domain !== true && (v.other_config as Record<string, string>)[REPLICA_KEY.sr] === undefined)
  }

  async function srVdis(): Promise<string[]> {
    await dr.sync()
    return dr.all('VDI').filter(vdi => vdi.SR === sr.$ref).map(vdi => vdi.uuid).sort()
  }

  function exportTask(tree: ReturnType<typeof tasksOf>[number], type: 'SR' | 'remote') {
    return tasksOf(tree).find(t => t.message === 'export' && t.data?.type === type)
  }

  /** Starts a run, waits for the replica's VM to appear on the DR pool (mid-import), then does `during`. */
  async function runWithFaultMidImport(during: (cancel: () => void) => Promise<void>, srs?: string[]) {
    const run = startBackupRun(drJob(srs), env.context)
    await dr.waitFor(() => dr.all('VM').find(v => Object.values((v.current_operations ?? {}) as Record<string, string>).includes('import')), { what: 'the replica import to start', timeoutMs: 120_000 })
    await during(() => run.cancel())
    return run.done
  }

  before(async () => {
    env = await startEngineLab({ fixture: 'pair', remotes: ['a'] })
    ;[source, dr] = env.conns as [PoolConnection, PoolConnection]
    sr = dr.all('SR').find(s => s.name_label === 'DR storage')!
    vm = vmByName(source, 'tiny-running')
  })
  after(async () => env.cleanup())
  beforeEach(() => env.lab.control.setKnobs({ exportPerStreamMiBs: null }))

  test('3 runs with a remote and the SR: each replica equals its snapshot, with XO\'s marks; it refuses to start; retention keeps 2; the job never backs up its own replicas', async () => {
    assert.equal(vm.ha_restart_priority, 'restart', 'the fixture VM has HA on (the replica must not)')
    const made: string[] = []
    for (let runNumber = 0; runNumber < 3; runNumber++) {
      if (runNumber > 0) await env.lab.control.writeVdi(vmDisks(source, source.get('VM', vm.uuid))[0]!.vdi.uuid, { offset: (runNumber * 3 + 1) * 1024 * 1024, length: 2 * 1024 * 1024, seed: 40 + runNumber })
      // The second run's export is compressed by the host (zstd): XAPI reads it as it imports.
      const tree = await runToEnd(env, runNumber === 1 ? job({ ...drJob(), settings: { compression: 'zstd' } }) : drJob())
      assert.equal(tree.status, 'success', describeFailure(tree))
      assert.deepEqual((tree.infos ?? []).find(i => i.message === 'vms')?.data, { vms: [vm.uuid] }, 'only the source VM is selected, never a replica tagged like it')
      const srExport = exportTask(tree, 'SR')!
      assert.deepEqual(srExport.data, { type: 'SR', id: sr.uuid, name_label: 'DR storage', isFull: true })
      assert.equal(srExport.status, 'success')
      assert.ok(Number((srExport.tasks?.find(t => t.message === 'transfer')?.result as { size?: number }).size) > 0, 'the transfer task of the SR export reports a size above 0')

      const snapshot = await newestJobSnapshot(env, vm)
      const replica = (await replicas()).at(-1)!
      made.push(replica.uuid)
      assert.deepEqual(await vmDigests(dr, replica), await vmDigests(source, snapshot), `run ${runNumber + 1}: the replica's disks equal the snapshot's`)
      const date = String((snapshot.other_config as Record<string, string>)[REPLICA_KEY.datetime])
      assert.equal(replica.name_label, `tiny-running - test job - (${date.replaceAll(':', '')})`)
      assert.ok((replica.tags as string[]).includes(DR_TAG) && (replica.tags as string[]).includes(HA_DISABLED_TAG), JSON.stringify(replica.tags))
      assert.equal(replica.ha_restart_priority, '')
      assert.deepEqual(replica.blocked_operations, { start: REPLICA_START_BLOCKED, start_on: REPLICA_START_BLOCKED })
      const config = replica.other_config as Record<string, string>
      assert.deepEqual([config[REPLICA_KEY.job], config[REPLICA_KEY.schedule], config[REPLICA_KEY.vm], config[REPLICA_KEY.sr], config[REPLICA_KEY.datetime]], ['job-1', SCHEDULE, vm.uuid, sr.uuid, date])
      for (const { vdi } of vmDisks(dr, replica)) assert.equal((vdi.other_config as Record<string, string>)[REPLICA_KEY.sr], sr.uuid, 'the disks carry the marks too')
      await new Promise(resolve => setTimeout(resolve, 1100)) // one backup per second: the names carry seconds
    }
    const kept = await replicas()
    assert.deepEqual(kept.map(r => r.uuid), made.slice(1), 'retention keeps the 2 newest replicas')
    assert.equal((await strays()).length, 0)
    await assert.rejects(dr.call('VM.start', kept[0]!.$ref, false, false), (error: unknown) => errorCode(error) === 'XAPI_OPERATION_BLOCKED')
    assert.equal((await listVmBackups(env.remotes.get('a')!, vm.uuid)).length, 2, 'the remote kept its own retention')
  })

  test('an interrupted import (a replica without xo:backup:sr) is destroyed by the next run; another schedule\'s is not', async () => {
    const [complete] = await replicas()
    const debris = await fakeInterrupted(complete!, SCHEDULE)
    const otherSchedule = await fakeInterrupted(complete!, 'another-schedule')
    const debrisDisks = vmDisks(dr, dr.byRef(debris)!).map(d => d.vdi.uuid)
    const tree = await runToEnd(env, drJob())
    assert.equal(tree.status, 'success', describeFailure(tree))
    assert.deepEqual((tree.infos ?? []).find(i => i.message === 'vms')?.data, { vms: [vm.uuid] }, 'debris of the job is never selected')
    await dr.sync()
    assert.equal(dr.byRef(debris), undefined, 'the debris of this schedule is destroyed')
    for (const uuid of debrisDisks) assert.equal(dr.byUuid(uuid), undefined, 'with its disks')
    assert.ok(dr.byRef(otherSchedule) !== undefined, 'the debris of another schedule stays')
    assert.ok(tasksOf(tree).some(t => (t.infos ?? []).some(i => i.message.startsWith('the unfinished replica of an earlier run removed'))), describeFailure(tree))
    assert.equal((await replicas()).length, 2)
    await dr.call('VM.destroy', otherSchedule)
  })

  test('retention leaves a replica that is running (in use after a disaster) in place, and never takes the source VM for a replica', async () => {
    const [oldest, newest] = await replicas()
    await dr.call('VM.remove_from_blocked_operations', oldest!.$ref, 'start')
    await dr.callAsync(undefined, 'VM.start', oldest!.$ref, false, false)
    await dr.call('VM.add_to_blocked_operations', oldest!.$ref, 'start', REPLICA_START_BLOCKED)
    await dr.waitFor(() => (dr.byRef(oldest!.$ref)?.power_state === 'Running' && 'start' in (dr.byRef(oldest!.$ref)!.blocked_operations as object)) || undefined, { what: 'the started replica', timeoutMs: 30_000 })
    const tree = await runToEnd(env, drJob())
    assert.equal(tree.status, 'success', describeFailure(tree))
    assert.ok(tasksOf(tree).some(t => (t.warnings ?? []).some(w => w.message.includes('is running, so it is in use'))), describeFailure(tree))
    const kept = await replicas()
    assert.deepEqual(kept.map(r => r.uuid).slice(0, 2), [oldest!.uuid, newest!.uuid], 'the running replica is kept, the other old one is not removed in its place')
    assert.equal(kept.length, 3)
    await dr.callAsync(undefined, 'VM.hard_shutdown', oldest!.$ref)
    await destroyVmAndDisks(dr, oldest!.$ref)

    // Keys copied onto the source VM by hand (its own uuid as xo:backup:vm) do not make it a replica of itself.
    const live = source.get('VM', vm.uuid)
    const keys = { [REPLICA_KEY.job]: 'job-1', [REPLICA_KEY.schedule]: SCHEDULE, [REPLICA_KEY.vm]: vm.uuid }
    for (const [key, value] of Object.entries(keys)) await source.call('VM.add_to_other_config', live.$ref, key, value)
    await source.call('VM.add_to_blocked_operations', live.$ref, 'start', 'blocked by hand')
    try {
      await source.waitFor(() => ('start' in (source.get('VM', vm.uuid).blocked_operations as object)) || undefined, { what: 'the keys on the source VM', timeoutMs: 10_000 })
      assert.deepEqual(listReplicas(source, { jobOrScheduleId: SCHEDULE, vmUuid: vm.uuid, srUuid: null }), [])
    } finally {
      for (const key of Object.keys(keys)) await source.call('VM.remove_from_other_config', live.$ref, key)
      await source.call('VM.remove_from_blocked_operations', live.$ref, 'start')
    }
  })

  /** A copy of a complete replica with the completion key removed: what an import cut after ova.xml leaves. */
  async function fakeInterrupted(replica: XapiRecord, schedule: string): Promise<string> {
    const ref = (await dr.call('VM.clone', replica.$ref, 'half imported')) as string
    await dr.call('VM.remove_from_other_config', ref, REPLICA_KEY.sr)
    await dr.call('VM.remove_from_other_config', ref, REPLICA_KEY.schedule)
    await dr.call('VM.add_to_other_config', ref, REPLICA_KEY.schedule, schedule)
    await dr.call('VM.remove_from_blocked_operations', ref, 'start')
    await dr.call('VM.add_to_blocked_operations', ref, 'start', REPLICA_START_BLOCKED)
    // The run must see it as the debris it is (start blocked), not as a VM to back up.
    await dr.waitFor(() => {
      const clone = dr.byRef(ref)
      return clone !== undefined && 'start' in (clone.blocked_operations as object) && (clone.other_config as Record<string, string>)[REPLICA_KEY.schedule] === schedule ? true : undefined
    }, { what: 'the half-imported copy', timeoutMs: 10_000 })
    return ref
  }

  for (const fault of ['the SR fills', 'the toolstack of the DR pool restarts'] as const) {
    test(`${fault} mid-import: the half-imported replica is removed, the remote backup and the replica on another SR are written`, async () => {
      const replicasBefore = (await replicas()).map(r => r.uuid)
      const disksBefore = await srVdis()
      const backupsBefore = (await listVmBackups(env.remotes.get('a')!, vm.uuid)).map(b => b.id)
      // A second SR, on the source pool, whose import goes on while the DR pool's fails.
      const localSr = source.all('SR').find(s => s.name_label === 'Local storage')!
      env.lab.control.setKnobs({ exportPerStreamMiBs: 1 })
      const size = drControl().xapi.store.srUsage(sr.uuid)
      const tree = await runWithFaultMidImport(async () => {
        if (fault === 'the SR fills') await drControl().srFull(sr.uuid)
        else await drControl().restart(3000)
      }, [sr.uuid, localSr.uuid])
      env.lab.control.setKnobs({ exportPerStreamMiBs: null })
      if (fault === 'the SR fills') await drControl().xapi.store.addSr({ uuid: sr.uuid, physicalSize: size.physicalSize, thick: false })
      assert.equal(tree.status, 'failure', 'a failed target fails the run, as a failed remote does')
      const exports = tasksOf(tree).filter(t => t.message === 'export')
      assert.deepEqual(exports.map(t => [t.data?.id, t.status]).sort(), [['a', 'success'], [localSr.uuid, 'success'], [sr.uuid, 'failure']].sort(), describeFailure(tree))
      await noStrays()
      assert.deepEqual((await replicas()).map(r => r.uuid), replicasBefore, 'the complete replicas are untouched')
      assert.deepEqual(await srVdis(), disksBefore, 'no disk of the failed import stays on the SR')
      const backups = await listVmBackups(env.remotes.get('a')!, vm.uuid)
      const written = backups.find(b => !backupsBefore.includes(b.id))!
      assert.ok(written !== undefined, 'the remote backup of the run is written')
      const snapshot = await newestJobSnapshot(env, vm)
      assert.equal(written.vmSnapshot.uuid, snapshot.uuid)
      assert.deepEqual(await restoredDigests(env, 'a', written), await vmDigests(source, snapshot), 'and restores to the snapshot\'s bytes')
      await source.sync()
      const [localReplica, ...others] = listReplicas(source, { jobOrScheduleId: SCHEDULE, vmUuid: vm.uuid, srUuid: localSr.uuid })
      assert.equal(others.length, 0)
      assert.deepEqual(await vmDigests(source, localReplica!), await vmDigests(source, snapshot), 'the other SR\'s replica equals the snapshot')
      await destroyVmAndDisks(source, localReplica!.$ref)
    })
  }

  test('an SR on no connected pool is a failed "get SR record" task, and an SR keeping 0 replicas a warning; the remote backup is still written', async () => {
    const missing = '00000000-0000-4000-8000-000000000000'
    const replicasBefore = (await replicas()).map(r => r.uuid)
    const backupsBefore = (await listVmBackups(env.remotes.get('a')!, vm.uuid)).length
    const theJob = job({ ...drJob([missing, sr.uuid]), overrides: { vms: {}, remotes: {}, srs: { [sr.uuid]: { copyRetention: 0 } } } })
    const tree = await runToEnd(env, theJob)
    const lookup = tasksOf(tree).find(t => t.message === 'get SR record')
    assert.equal(lookup?.status, 'failure', describeFailure(tree))
    assert.deepEqual([lookup?.data?.id, (lookup?.result as { code?: string }).code], [missing, 'SR_NOT_FOUND'])
    assert.ok(tasksOf(tree).some(t => (t.warnings ?? []).some(w => w.message.startsWith('nothing is replicated to SR DR storage'))), describeFailure(tree))
    assert.deepEqual(tasksOf(tree).filter(t => t.message === 'export').map(t => [t.data?.type, t.status]), [['remote', 'success']])
    assert.equal((await listVmBackups(env.remotes.get('a')!, vm.uuid)).length, Math.min(2, backupsBefore + 1))
    assert.deepEqual((await replicas()).map(r => r.uuid), replicasBefore, 'no replica made, none removed')
  })

  test('a cancel during the import leaves no replica', async () => {
    const replicasBefore = (await replicas()).map(r => r.uuid)
    const disksBefore = await srVdis()
    env.lab.control.setKnobs({ exportPerStreamMiBs: 1 })
    const tree = await runWithFaultMidImport(async cancel => cancel())
    assert.equal(tree.status, 'cancelled', describeFailure(tree))
    assert.equal(exportTask(tree, 'SR')!.status, 'cancelled')
    await noStrays()
    assert.deepEqual((await replicas()).map(r => r.uuid), replicasBefore)
    assert.deepEqual(await srVdis(), disksBefore)
  })

  /** Polls (the DR pool may still be coming back from a restart) until no stray VM is left, within a generous bound. */
  async function noStrays(): Promise<void> {
    const deadline = Date.now() + 60_000
    for (;;) {
      const left = await strays().catch(() => undefined)
      if (left?.length === 0) return
      if (Date.now() > deadline) assert.fail(`a half-imported replica stays on the DR pool: ${JSON.stringify(left?.map(v => [v.name_label, v.current_operations, v.other_config, v.blocked_operations]))}`)
      await new Promise(resolve => setTimeout(resolve, 500))
    }
  }
})
