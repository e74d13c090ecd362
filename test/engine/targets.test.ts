// The run's side of the writer protocol: a target that fails is dropped, the others finish, and what the
// dropped one had written of this backup is taken back (a VM with two disks: the first disk's VHD must not
// stay on the remote whose second disk failed).
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { listVmBackups } from '../../source/repository/index.ts'
import { LocalHandler, type OutputStreamOptions } from '../../source/storage/index.ts'
import { NULL_REF, vmDisks, type XapiRecord } from '../../source/xapi/index.ts'
import { describeFailure, job, restoredDigests, runToEnd, startEngineLab, tasksOf, vmByName, vmDigests, type EngineLab } from './helpers.ts'
import { jobSnapshots } from '../../source/engine/run/snapshots.ts'
import { readdir } from 'node:fs/promises'
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
    await conn.sync()
    const snapshot = jobSnapshots(conn, conn.get('VM', vm.uuid), 'job-1').at(-1)!.record
    assert.notEqual(snapshot.$ref, NULL_REF)
    assert.deepEqual(await restoredDigests(env, 'a', backup), await vmDigests(conn, snapshot), 'the backup on a restores to the snapshot bytes')
  })
})
