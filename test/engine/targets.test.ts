// The run's side of the writer protocol: one snapshot feeds every target (2 remotes and an SR on each pool);
// a target that fails is dropped, the others finish, and what the dropped one had written of this backup is
// taken back (a VM with two disks: the first disk's VHD must not stay on the remote whose second disk failed).
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { listVmBackups } from '../../source/repository/index.ts'
import { LocalHandler, type OutputStreamOptions } from '../../source/storage/index.ts'
import { NULL_REF, vmDisks, type PoolConnection, type XapiRecord } from '../../source/xapi/index.ts'
import { listReplicas, REPLICA_KEY } from '../../source/engine/targets/replicas.ts'
import { describeFailure, job, restoredDigests, runToEnd, startEngineLab, tasksOf, vmByName, vmDigests, type EngineLab } from './helpers.ts'
import { jobSnapshots } from '../../source/engine/run/snapshots.ts'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'

const MiB = 1024 * 1024

/** A local remote whose writes of one disk's VHD fail, after the bytes went through (a remote that fills up on that file). */
class FailingDiskRemote extends LocalHandler {
  constructor(root: string, readonly failing: () => string | undefined) {
    super(root)
  }

  override async outputStream(path: string, source: AsyncIterable<Buffer | Uint8Array>, options?: OutputStreamOptions): Promise<number> {
    const failing = this.failing()
    if (failing === undefined || !path.includes(failing)) return super.outputStream(path, source, options)
    for await (const _chunk of source);
    throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
  }
}

async function vhdsUnder(root: string): Promise<string[]> {
  const found: string[] = []
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) await walk(join(dir, entry.name))
      else if (entry.name.endsWith('.vhd')) found.push(join(dir, entry.name))
    }
  }
  await walk(root)
  return found
}

describe('targets dropped during a transfer', () => {
  let env: EngineLab
  let vm: XapiRecord
  let secondDisk: string
  before(async () => {
    env = await startEngineLab({ remotes: ['a', 'b'] })
    const conn = env.conns[0]!
    vm = vmByName(conn, 'tiny-halted')
    // A second disk, with data, so that the VM's delta backup writes two VHDs.
    const sr = conn.byRef(vmDisks(conn, vm)[0]!.vdi.SR as string)!
    const vdi = (await conn.call('VDI.create', { name_label: 'data', name_description: '', SR: sr.$ref, virtual_size: 8 * MiB, type: 'user', sharable: false, read_only: false, other_config: {}, xenstore_data: {}, sm_config: {}, tags: [] })) as string
    await conn.call('VBD.create', { VM: vm.$ref, VDI: vdi, userdevice: '1', bootable: false, mode: 'RW', type: 'Disk', unpluggable: true, empty: false, other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} })
    await conn.sync()
    secondDisk = conn.byRef(vdi)!.uuid as string
    await env.lab.control.writeVdi(secondDisk, { offset: 0, length: 3 * MiB, seed: 7 })
    env.remotes.set('b', new FailingDiskRemote(env.remoteDirs.get('b')!, () => secondDisk))
    await env.remotes.get('b')!.sync()
  })
  after(async () => env.cleanup())

  test("a remote whose second disk fails is dropped with its export task failed, keeps nothing of this backup, and the other remote's backup restores", async () => {
    const conn = env.conns[0]!
    const tree = await runToEnd(env, job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a', 'b'] }))
    // One target failing makes the run a failure (XO's): the administrator must see it, even though a copy exists.
    assert.equal(tree.status, 'failure', describeFailure(tree))
    const exports = tasksOf(tree).filter(t => t.message === 'export')
    assert.deepEqual(exports.map(t => [t.data?.id, t.status]).sort(), [['a', 'success'], ['b', 'failure']])
    assert.deepEqual(await vhdsUnder(env.remoteDirs.get('b')!), [], 'the first disk written to b before the second failed is removed')
    assert.equal((await listVmBackups(env.remotes.get('b')!, vm.uuid)).length, 0, 'no backup on b')
    const [backup] = await listVmBackups(env.remotes.get('a')!, vm.uuid)
    assert.ok(backup !== undefined && backup.mode === 'delta', 'remote a has the delta backup')
    assert.equal(Object.keys(backup.vhds).length, 2, 'both disks are in it')
    const files = await vhdsUnder(env.remoteDirs.get('a')!)
    const written = (await Promise.all(files.map(file => stat(file)))).reduce((sum, s) => sum + s.size, 0)
    const transfer = tasksOf(tree).find(t => t.message === 'transfer' && t.status === 'success')!
    assert.equal((transfer.result as { size: number }).size, written, 'the transfer size counts both disks, transferred in parallel')
    await conn.sync()
    const snapshot = jobSnapshots(conn, conn.get('VM', vm.uuid), 'job-1').at(-1)!.record
    assert.notEqual(snapshot.$ref, NULL_REF)
    assert.deepEqual(await restoredDigests(env, 'a', backup), await vmDigests(conn, snapshot), 'the backup on a restores to the snapshot bytes')
  })
})

describe('one snapshot, four targets', () => {
  let env: EngineLab
  before(async () => {
    env = await startEngineLab({ fixture: 'pair', remotes: ['a', 'b'] })
  })
  after(async () => env.cleanup())

  test('a delta job with 2 remotes and an SR on each pool: one snapshot per run, every target written, runs after the first are deltas everywhere, every copy equals the snapshot', async () => {
    const [source, dr] = env.conns as [PoolConnection, PoolConnection]
    const vm = vmByName(source, 'tiny-running')
    const srs = [source.all('SR').find(sr => sr.content_type !== 'iso')!, dr.all('SR').find(sr => sr.name_label === 'DR storage')!]
    const theJob = job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a', 'b'], srs: srs.map(sr => sr.uuid as string), schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 2, replicas: 2, snapshots: 1 } }] })
    for (let run = 0; run < 2; run++) {
      if (run > 0) await env.lab.control.writeVdi(vmDisks(source, source.get('VM', vm.uuid))[0]!.vdi.uuid as string, { offset: 4 * MiB, length: 2 * MiB, seed: 11 })
      const tree = await runToEnd(env, theJob)
      assert.equal(tree.status, 'success', describeFailure(tree))
      assert.equal(tasksOf(tree).filter(t => t.message === 'snapshot').length, 1, 'one snapshot for the four targets')
      const exports = tasksOf(tree).filter(t => t.message === 'export')
      assert.deepEqual(exports.map(t => String(t.data?.id)).sort(), ['a', 'b', ...srs.map(sr => sr.uuid as string)].sort(), 'one export per target')
      assert.ok(exports.every(t => t.status === 'success' && t.data?.isFull === (run === 0)), `run ${run + 1}: ${run === 0 ? 'full' : 'deltas'} everywhere`)
      await source.sync()
      const snapshot = jobSnapshots(source, source.get('VM', vm.uuid), 'job-1').at(-1)!.record
      const expected = await vmDigests(source, snapshot)
      for (const remote of ['a', 'b']) {
        const backup = (await listVmBackups(env.remotes.get(remote)!, vm.uuid)).at(-1)!
        assert.equal(backup.vmSnapshot.uuid, snapshot.uuid, `remote ${remote} has this run's backup`)
        assert.deepEqual(await restoredDigests(env, remote, backup), expected, `the backup on ${remote} restores to the snapshot's bytes`)
      }
      for (const [index, sr] of srs.entries()) {
        const conn = index === 0 ? source : dr
        await conn.sync()
        const replica = listReplicas(conn, { jobOrScheduleId: 'job-1', vmUuid: vm.uuid, srUuid: sr.uuid as string }).at(-1)!
        assert.equal((replica.other_config as Record<string, string>)[REPLICA_KEY.copyOf], snapshot.uuid, `the newest replica on ${String(sr.name_label)} is of this run's snapshot`)
        assert.deepEqual(await vmDigests(conn, replica), expected, `the replica on ${String(sr.name_label)} equals the snapshot`)
      }
    }
  })
})
