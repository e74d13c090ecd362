// Continuous replication through the engine against the lab's `pair` fixture (a source pool and an empty "dr"
// pool): runs with guest writes between them, each making a new replica whose disks equal, byte for byte, the
// snapshot they came from; later runs write only the changed blocks onto clones of the previous replica's disks;
// replica retention; the blocked start and the clone that starts; a replica started by hand breaking the chain;
// replication with memory (a Suspended replica whose clone resumes, and a backup of it that restores Suspended); the target SR filling up and a cancel mid-import.
import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, test } from 'node:test'
import { vhdStreamLength } from '../../source/formats/vhd/index.ts'
import { restoreBackup } from '../../source/engine/restore/index.ts'
import { listVmBackups } from '../../source/repository/index.ts'
import { CR_TAG, HA_DISABLED_TAG, listReplicas, REPLICA_KEY, REPLICA_START_BLOCKED } from '../../source/engine/targets/replicas.ts'
import { destroyVmAndDisks, vmDisks, type PoolConnection, type XapiRecord } from '../../source/xapi/index.ts'
import { errorCode } from '../../source/util/errors.ts'
import type { TaskNode } from '../../source/tasks/index.ts'
import { describeFailure, diskDigest, job, newestJobSnapshot, runToEnd, startEngineLab, tasksOf, vmByName, vmDigests, type EngineLab } from './helpers.ts'

const MiB = 1024 * 1024
const BLOCK = 2 * MiB

const otherConfig = (record: XapiRecord): Record<string, string> => (record.other_config as Record<string, string> | undefined) ?? {}

/** The SR's export task of a run's (only) VM. */
function srExport(tree: TaskNode): TaskNode {
  const task = tasksOf(tree).find(t => t.message === 'export' && t.data?.type === 'SR')
  assert.ok(task !== undefined, `no SR export task: ${describeFailure(tree)}`)
  return task
}

/** Every message the VM's task logged (infos and warnings), to find a reason in. */
function messages(tree: TaskNode): string[] {
  return tasksOf(tree).flatMap(t => [...(t.infos ?? []), ...(t.warnings ?? [])].map(entry => entry.message))
}

describe('continuous replication', () => {
  let env: EngineLab
  let source: PoolConnection
  let target: PoolConnection
  let sr: XapiRecord
  let vm: XapiRecord
  /** Digests of each job snapshot's disks by the snapshot's uuid, taken right after its run (snapshot retention removes it later). */
  const expected = new Map<string, string[]>()

  before(async () => {
    env = await startEngineLab({ fixture: 'pair', remotes: ['a'] })
    source = env.conns[0]!
    target = env.conns[1]!
    sr = target.all('SR').find(s => s.name_label === 'DR storage')!
    vm = vmByName(source, 'tiny-running')
  })
  after(async () => env.cleanup())
  beforeEach(() => {
    for (const pool of env.lab.pools) pool.control.xapi.faults.clear()
    env.lab.control.setKnobs({ exportPerStreamMiBs: null })
  })

  const crJob = (options: { remotes?: string[]; replicas?: number; settings?: Record<string, unknown> } = {}) => job({
    mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: options.remotes ?? [], srs: [sr.uuid], settings: options.settings ?? {},
    schedules: [{ id: 'schedule-1', name: 'hourly', cron: '0 * * * *', timezone: 'UTC', retention: { replicas: options.replicas ?? 3, snapshots: 1 } }],
  })

  async function replicas(): Promise<XapiRecord[]> {
    await target.sync()
    return listReplicas(target, { jobOrScheduleId: 'job-1', vmUuid: vm.uuid, srUuid: sr.uuid })
  }

  /** Runs the job and records the digests of the snapshot it made. */
  async function replicate(theJob = crJob()): Promise<TaskNode> {
    const tree = await runToEnd(env, theJob)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const snapshot = await newestJobSnapshot(env, vm)
    expected.set(snapshot.uuid, await vmDigests(source, snapshot))
    return tree
  }

  /** Resolves once a disk of the target SR is plugged into the control domain: an upload onto it has started. */
  async function importInFlight(): Promise<void> {
    await target.waitFor(() => target.all('VBD').find(vbd => {
      const vdi = target.byRef(String(vbd.VDI))
      return vbd.currently_attached === true && target.byRef(String(vbd.VM))?.is_control_domain === true && vdi?.SR === sr.$ref ? vbd : undefined
    }), { what: 'an import onto the target SR', timeoutMs: 60_000 })
  }

  async function assertReplicaIsItsSnapshot(replica: XapiRecord): Promise<void> {
    const copyOf = otherConfig(replica)[REPLICA_KEY.copyOf]!
    assert.ok(expected.has(copyOf), `replica ${String(replica.name_label)} is a copy of a snapshot of this test`)
    assert.deepEqual(await vmDigests(target, replica), expected.get(copyOf), `the disks of ${String(replica.name_label)} equal its snapshot's`)
  }

  test('4 runs with guest writes between them: a full, then deltas of the changed blocks only; every replica equals its snapshot; 3 kept', async () => {
    const disk = vmDisks(source, source.get('VM', vm.uuid))[0]!.vdi
    for (let runNumber = 0; runNumber < 4; runNumber++) {
      let written = new Set<number>()
      if (runNumber > 0) {
        const offset = (runNumber * 5 + 1) * MiB
        await env.lab.control.writeVdi(disk.uuid, { offset, length: 3 * MiB, seed: 40 + runNumber })
        written = new Set([Math.floor(offset / BLOCK), Math.floor((offset + 3 * MiB - 1) / BLOCK)])
      }
      env.lab.pools[1]!.control.xapi.activity.reset()
      const tree = await replicate()
      const imported = env.lab.pools[1]!.control.xapi.activity.snapshot().imported
      const exported = srExport(tree)
      assert.equal(exported.data?.isFull, runNumber === 0, `run ${runNumber + 1}: ${runNumber === 0 ? 'a full' : 'a delta'}`)
      if (runNumber > 0) {
        const transfer = exported.tasks!.find(t => t.message === 'transfer')!
        assert.equal((transfer.result as { size: number }).size, vhdStreamLength(Number(disk.virtual_size), written.size), 'only the changed blocks are sent')
        assert.deepEqual({ blocks: imported.blocks, bytes: imported.bytes }, { blocks: written.size, bytes: written.size * BLOCK }, 'the target pool wrote only the changed blocks')
      }
    }
    const kept = await replicas()
    assert.equal(kept.length, 3, 'copyRetention 3: the oldest replica is destroyed')
    for (const replica of kept) await assertReplicaIsItsSnapshot(replica)
    const newest = kept.at(-1)!
    assert.equal(newest.power_state, 'Halted')
    assert.match(String(newest.name_label), /^tiny-running - test job - \(\d{8}T\d{6}Z\)$/)
    assert.match(String(newest.name_description), / -- last replication: \d{8}T\d{6}Z /)
    assert.ok((newest.tags as string[]).includes(CR_TAG), 'the newest replica carries the CR tag')
    assert.ok((newest.tags as string[]).includes(HA_DISABLED_TAG), 'the source has HA on: the replica has it off, and says so')
    assert.equal(newest.ha_restart_priority, '')
    assert.equal((newest.blocked_operations as Record<string, string>).start, REPLICA_START_BLOCKED)
    const config = otherConfig(newest)
    assert.equal(config[REPLICA_KEY.job], 'job-1')
    assert.equal(config[REPLICA_KEY.schedule], 'schedule-1')
    assert.equal(config[REPLICA_KEY.vm], vm.uuid)
    assert.equal(config[REPLICA_KEY.sr], sr.uuid)
    const snapshot = await newestJobSnapshot(env, vm)
    assert.equal(config[REPLICA_KEY.copyOf], snapshot.uuid, 'the newest replica is a copy of the newest snapshot')
    const snapshotDisks = vmDisks(source, snapshot).map(d => d.vdi.uuid)
    assert.deepEqual(vmDisks(target, newest).map(d => otherConfig(d.vdi)[REPLICA_KEY.copyOf]), snapshotDisks, 'each disk names the snapshot VDI it equals')
    const vif = target.byRef((newest.VIFs as string[])[0]!)!
    assert.equal(vif.MAC, source.byRef((source.get('VM', vm.uuid).VIFs as string[])[0]!)!.MAC, 'MACs kept')
    assert.equal(target.byRef(vif.network as string)?.name_label, 'Pool-wide network associated with eth0')
  })

  test('with newMacAddresses the replica\'s interfaces get new MAC addresses', async () => {
    const tree = await replicate(crJob({ settings: { newMacAddresses: true } }))
    assert.equal(srExport(tree).status, 'success', describeFailure(tree))
    const newest = (await replicas()).at(-1)!
    const mac = target.byRef((newest.VIFs as string[])[0]!)!.MAC as string
    assert.match(mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'XAPI gave the interface a MAC')
    assert.notEqual(mac, source.byRef((source.get('VM', vm.uuid).VIFs as string[])[0]!)!.MAC, 'not the source VM\'s MAC')
  })

  test('the replica refuses VM.start; a clone of it starts', async () => {
    const replica = (await replicas()).at(-1)!
    await assert.rejects(target.callAsync(undefined, 'VM.start', replica.$ref, false, false), (error: unknown) => errorCode(error) === 'XAPI_OPERATION_BLOCKED')
    const clone = (await target.callAsync(undefined, 'VM.clone', replica.$ref, 'clone of the replica')) as string
    try {
      await target.callAsync(undefined, 'VM.start', clone, false, false)
      assert.equal(await target.call('VM.get_power_state', clone), 'Running')
    } finally {
      await destroyVmAndDisks(target, clone)
    }
    await assertReplicaIsItsSnapshot((await replicas()).at(-1)!)
  })

  test('a replica started by hand breaks the chain: the next run sends a full, with the reason in the log', async () => {
    const replica = (await replicas()).at(-1)!
    await target.call('VM.remove_from_blocked_operations', replica.$ref, 'start')
    await target.callAsync(undefined, 'VM.start', replica.$ref, false, false)
    await target.callAsync(undefined, 'VM.hard_shutdown', replica.$ref)
    // Blocked again as if nothing happened: only its start time tells.
    await target.call('VM.add_to_blocked_operations', replica.$ref, 'start', REPLICA_START_BLOCKED)
    const tree = await replicate()
    assert.equal(srExport(tree).data?.isFull, true)
    assert.ok(messages(tree).some(m => m.includes('was started by hand')), `the reason is logged: ${JSON.stringify(messages(tree))}`)
    await assertReplicaIsItsSnapshot((await replicas()).at(-1)!)
  })

  test('a replica disk resized on the target is no base: that disk goes full, with the reason', async () => {
    const replica = (await replicas()).at(-1)!
    const disk = vmDisks(target, replica)[0]!.vdi
    await target.callAsync(undefined, 'VDI.resize', disk.$ref, Number(disk.virtual_size) + 2 * MiB)
    const tree = await replicate()
    assert.equal(srExport(tree).data?.isFull, true)
    assert.ok(messages(tree).some(m => m.includes('it was resized on the target')), JSON.stringify(messages(tree)))
    await assertReplicaIsItsSnapshot((await replicas()).at(-1)!)
  })

  test('the target SR fills up mid-import: the partial replica is removed, the remote target of the run finishes, the next run sends a full', async () => {
    const before = await replicas()
    const vdisBefore = new Set(target.all('VDI').map(v => v.uuid))
    await env.lab.control.writeVdi(vmDisks(source, source.get('VM', vm.uuid))[0]!.vdi.uuid, { offset: 0, length: 16 * MiB, seed: 77 })
    const drControl = env.lab.pools[1]!.control
    const physicalSize = Number(sr.physical_size)
    env.lab.control.setKnobs({ exportPerStreamMiBs: 4 })
    const run = runToEnd(env, crJob({ remotes: ['a'] }))
    await importInFlight()
    await drControl.srFull(sr.uuid)
    const tree = await run
    await drControl.xapi.store.addSr({ uuid: sr.uuid, physicalSize, thick: false })
    env.lab.control.setKnobs({ exportPerStreamMiBs: null })
    assert.equal(srExport(tree).status, 'failure', describeFailure(tree))
    const remoteExport = tasksOf(tree).find(t => t.message === 'export' && t.data?.type === 'remote')!
    assert.equal(remoteExport.status, 'success', describeFailure(tree))
    assert.deepEqual((await replicas()).map(r => r.uuid), before.map(r => r.uuid), 'the replicas are the same as before the run')
    assert.deepEqual(target.all('VM').filter(v => String(v.name_label).startsWith('[Importing…]')), [], 'no partial replica')
    assert.deepEqual(target.all('VDI').filter(v => !vdisBefore.has(v.uuid)).map(v => v.name_label), [], 'no VDI of the partial replica')
    // The remote took the backup, so its snapshot is the next base (XO's rule); the SR has no replica of it.
    const next = await replicate(crJob({ remotes: ['a'] }))
    assert.equal(srExport(next).data?.isFull, true)
    assert.ok(messages(next).some(m => m.includes('has no disk copied from the base snapshot')), JSON.stringify(messages(next)))
    await assertReplicaIsItsSnapshot((await replicas()).at(-1)!)
  })

  test('the target pool\'s toolstack restarts mid-import: the partial replica is removed, the remote target finishes', async () => {
    const before = await replicas()
    const vdisBefore = new Set(target.all('VDI').map(v => v.uuid))
    await env.lab.control.writeVdi(vmDisks(source, source.get('VM', vm.uuid))[0]!.vdi.uuid, { offset: 2 * MiB, length: 12 * MiB, seed: 80 })
    env.lab.control.setKnobs({ exportPerStreamMiBs: 2 })
    const run = runToEnd(env, crJob({ remotes: ['a'] }))
    await importInFlight()
    await env.lab.pools[1]!.control.restart(3000)
    const tree = await run
    env.lab.control.setKnobs({ exportPerStreamMiBs: null })
    assert.equal(srExport(tree).status, 'failure', describeFailure(tree))
    assert.equal(tasksOf(tree).find(t => t.message === 'export' && t.data?.type === 'remote')!.status, 'success', describeFailure(tree))
    assert.deepEqual((await replicas()).map(r => r.uuid), before.map(r => r.uuid), 'the complete replicas are untouched')
    assert.deepEqual(target.all('VM').filter(v => String(v.name_label).startsWith('[Importing…]')).map(v => v.name_label), [], 'no partial replica')
    assert.deepEqual(target.all('VDI').filter(v => !vdisBefore.has(v.uuid) && v.managed !== false).map(v => v.name_label), [], 'no VDI of the partial replica')
    const snapshot = await newestJobSnapshot(env, vm)
    expected.set(snapshot.uuid, await vmDigests(source, snapshot))
  })

  test('a cancel during the import removes the partial replica; the last good replica is untouched', async () => {
    const before = await replicas()
    const digestsBefore = await vmDigests(target, before.at(-1)!)
    const vdisBefore = new Set(target.all('VDI').map(v => v.uuid))
    await env.lab.control.writeVdi(vmDisks(source, source.get('VM', vm.uuid))[0]!.vdi.uuid, { offset: 4 * MiB, length: 12 * MiB, seed: 78 })
    env.lab.control.setKnobs({ exportPerStreamMiBs: 2 })
    let cancel: ((reason?: string) => void) | undefined
    const run = runToEnd(env, crJob(), { onStart: c => (cancel = c) })
    await importInFlight()
    cancel!('test cancel')
    const tree = await run
    env.lab.control.setKnobs({ exportPerStreamMiBs: null })
    assert.notEqual(tree.status, 'success')
    await target.sync()
    assert.deepEqual((await replicas()).map(r => r.uuid), before.map(r => r.uuid))
    assert.deepEqual(target.all('VM').filter(v => String(v.name_label).startsWith('[Importing…]')), [], 'no partial replica')
    assert.deepEqual(target.all('VDI').filter(v => !vdisBefore.has(v.uuid)).map(v => v.name_label), [], 'no VDI of the partial replica')
    assert.deepEqual(await vmDigests(target, (await replicas()).at(-1)!), digestsBefore)
  })

  test('a replica its run could not remove (cut short, then VM.destroy failing) is destroyed by the next run, disks included', async () => {
    const vdisBefore = new Set(target.all('VDI').map(v => v.uuid))
    await env.lab.control.writeVdi(vmDisks(source, source.get('VM', vm.uuid))[0]!.vdi.uuid, { offset: 6 * MiB, length: 12 * MiB, seed: 79 })
    env.lab.control.setKnobs({ exportPerStreamMiBs: 2 })
    // Failing for longer than the run keeps trying.
    env.lab.pools[1]!.control.addFault({ match: { method: 'VM.destroy' }, times: 100, action: { type: 'error', code: 'INTERNAL_ERROR', params: ['injected'] } })
    let cancel: ((reason?: string) => void) | undefined
    const run = runToEnd(env, crJob(), { onStart: c => (cancel = c) })
    await importInFlight()
    cancel!('test cancel')
    await run
    env.lab.pools[1]!.control.xapi.faults.clear()
    env.lab.control.setKnobs({ exportPerStreamMiBs: null })
    await target.sync()
    const debris = target.all('VM').filter(v => String(v.name_label).startsWith('[Importing…]'))
    assert.equal(debris.length, 1, 'the half-built replica is left')
    assert.equal(otherConfig(debris[0]!)[REPLICA_KEY.sr], undefined, 'without the completion key')
    assert.equal((debris[0]!.blocked_operations as Record<string, string>).start, 'Importing…', 'and its start blocked')
    const tree = await replicate()
    assert.ok(messages(tree).some(m => m.startsWith('the unfinished replica of an earlier run removed')), JSON.stringify(messages(tree)))
    await target.sync()
    assert.equal(target.byRef(debris[0]!.$ref), undefined)
    const replicaVdis = new Set((await replicas()).flatMap(r => vmDisks(target, r).map(d => d.vdi.uuid)))
    assert.deepEqual(target.all('VDI').filter(v => !vdisBefore.has(v.uuid) && !replicaVdis.has(v.uuid) && v.managed !== false).map(v => v.name_label), [], 'no VDI of the debris left')
    await assertReplicaIsItsSnapshot((await replicas()).at(-1)!)
  })
})

describe('continuous replication with memory', () => {
  let env: EngineLab
  before(async () => {
    env = await startEngineLab({ fixture: 'pair', remotes: ['a'] })
  })
  after(async () => env.cleanup())

  test('the replica of a checkpoint is Suspended on a copy of the checkpoint\'s memory, refuses resume, and its clone resumes; VIFs on a default network with a warning; its delta backup restores Suspended', async () => {
    const [source, target] = [env.conns[0]!, env.conns[1]!]
    const sr = target.all('SR').find(s => s.name_label === 'DR storage')!
    const vm = vmByName(source, 'tiny-running')
    // A small memory keeps the image (sized as XAPI sizes it) quick to compare.
    await source.callAsync(undefined, 'VM.clean_shutdown', vm.$ref)
    await source.call('VM.set_memory_limits', vm.$ref, 64 * MiB, 64 * MiB, 64 * MiB, 64 * MiB)
    await source.callAsync(undefined, 'VM.start', vm.$ref, false, false)
    // No network of the source's name on the target: the VIFs go on its first network, with a warning.
    const drNetwork = target.all('network')[0]!
    await target.call('network.set_name_label', drNetwork.$ref, 'DR network')
    // XAPI clones a suspended VM only where the pool allows it (xapi_vm_lifecycle.ml).
    await target.call('pool.add_to_other_config', target.pool.$ref, 'allow_clone_suspended_vm', 'true')
    const theJob = job({
      mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a'], srs: [sr.uuid], settings: { checkpointSnapshot: true },
      schedules: [{ id: 'schedule-1', name: 'hourly', cron: '0 * * * *', timezone: 'UTC', retention: { replicas: 2, snapshots: 1 } }],
    })
    for (let runNumber = 0; runNumber < 2; runNumber++) {
      if (runNumber > 0) await env.lab.control.writeVdi(vmDisks(source, source.get('VM', vm.uuid))[0]!.vdi.uuid, { offset: 3 * MiB, length: MiB, seed: 90 })
      const tree = await runToEnd(env, theJob)
      assert.equal(tree.status, 'success', describeFailure(tree))
      const checkpoint = await newestJobSnapshot(env, vm)
      await target.sync()
      const replica = listReplicas(target, { jobOrScheduleId: 'job-1', vmUuid: vm.uuid, srUuid: sr.uuid }).at(-1)!
      assert.equal(otherConfig(replica)[REPLICA_KEY.copyOf], checkpoint.uuid)
      assert.equal(replica.power_state, 'Suspended')
      assert.equal(await diskDigest(target, replica.suspend_VDI as string), await diskDigest(source, checkpoint.suspend_VDI as string), 'the memory is the checkpoint\'s')
      assert.deepEqual(await vmDigests(target, replica), await vmDigests(source, checkpoint))
      if (runNumber > 0) assert.equal(srExport(tree).data?.isFull, false, 'the disks go as deltas; the memory goes whole')
      assert.ok(messages(tree).some(m => m.includes('is put on network "DR network"')), JSON.stringify(messages(tree)))
      assert.equal(target.byRef((replica.VIFs as string[])[0]!)?.network, drNetwork.$ref)
      await assert.rejects(target.callAsync(undefined, 'VM.resume', replica.$ref, false, false), (error: unknown) => errorCode(error) === 'XAPI_OPERATION_BLOCKED')
      const clone = (await target.callAsync(undefined, 'VM.clone', replica.$ref, 'clone of the replica')) as string
      try {
        assert.equal(await target.call('VM.get_power_state', clone), 'Suspended')
        await target.callAsync(undefined, 'VM.resume', clone, false, false)
        assert.equal(await target.call('VM.get_power_state', clone), 'Running')
      } finally {
        await destroyVmAndDisks(target, clone)
      }
    }
    const checkpoint = await newestJobSnapshot(env, vm)
    const backup = (await listVmBackups(env.remotes.get('a')!, vm.uuid)).at(-1)!
    const restored = await restoreBackup(env.remotes.get('a')!, backup.id, target, sr.uuid)
    try {
      const record = await target.waitFor(() => target.byRef(restored.vmRef), { what: 'the restored VM', timeoutMs: 10_000 })
      assert.equal(record.power_state, 'Suspended', 'a backup with memory restores Suspended')
      assert.equal(await diskDigest(target, record.suspend_VDI as string), await diskDigest(source, checkpoint.suspend_VDI as string))
      assert.deepEqual(await vmDigests(target, record), await vmDigests(source, checkpoint))
      await target.callAsync(undefined, 'VM.resume', restored.vmRef, false, false)
      assert.equal(await target.call('VM.get_power_state', restored.vmRef), 'Running')
    } finally {
      await destroyVmAndDisks(target, restored.vmRef)
    }
  })
})
