// Backups that keep their restore points on the pool: a rolling-snapshot job (no remote, no SR), and the
// memory of a checkpoint exported with the disks of a delta backup.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { listVmBackups } from '../../source/repository/index.ts'
import { VhdChain } from '../../source/formats/vhd/index.ts'
import { fileSystemAccess } from '../../source/storage/index.ts'
import { NULL_REF } from '../../source/xapi/index.ts'
import { jobSnapshots } from '../../source/engine/run/snapshots.ts'
import { describeFailure, diskDigest, job, runToEnd, startEngineLab, tasksOf, vmByName, type EngineLab } from './helpers.ts'
import { createHash } from 'node:crypto'

describe('rolling snapshots and memory', () => {
  let env: EngineLab
  before(async () => {
    env = await startEngineLab()
  })
  after(async () => env.cleanup())

  test('a job with no remote and no SR keeps its N newest snapshots and exports nothing', async () => {
    const conn = env.conns[0]!
    const vm = vmByName(conn, 'tiny-running')
    const rolling = job({ id: 'rolling', mode: 'full', vms: { uuids: [vm.uuid] }, remotes: [], schedules: [{ id: 'hourly', name: 'hourly', cron: '0 * * * *', timezone: 'UTC', retention: { snapshots: 2 } }] })
    const made: string[] = []
    for (let run = 0; run < 3; run++) {
      const tree = await runToEnd(env, rolling)
      assert.equal(tree.status, 'success', describeFailure(tree))
      assert.equal(tasksOf(tree).filter(t => t.message === 'export').length, 0, 'nothing is exported')
      await conn.sync()
      made.push(jobSnapshots(conn, conn.get('VM', vm.uuid), 'rolling').at(-1)!.record.uuid as string)
    }
    await conn.sync()
    const kept = jobSnapshots(conn, conn.get('VM', vm.uuid), 'rolling').map(s => s.record.uuid)
    assert.deepEqual(kept, made.slice(1), 'the two newest snapshots are kept, the oldest is destroyed')
    for (const uuid of kept) assert.notEqual(conn.byUuid(uuid as string)!.name_label, 'xo-backup-temp-snapshot-name', 'each snapshot is named')
  })

  test('a job with no target that keeps no snapshot fails each VM with NO_TARGET and a sentence', async () => {
    const conn = env.conns[0]!
    const vm = vmByName(conn, 'tiny-halted')
    const nothing = job({ id: 'nothing', mode: 'full', vms: { uuids: [vm.uuid] }, remotes: [], schedules: [{ id: 's', name: 's', cron: '0 * * * *', timezone: 'UTC', retention: { snapshots: 0 } }] })
    const tree = await runToEnd(env, nothing)
    assert.equal(tree.status, 'failure')
    const vmTask = tasksOf(tree).find(t => t.message === 'backup VM')!
    assert.equal((vmTask.result as { code?: string }).code, 'NO_TARGET')
    assert.match(String((vmTask.result as { message?: string }).message), /nothing to do/)
    await conn.sync()
    assert.equal(jobSnapshots(conn, conn.get('VM', vm.uuid), 'nothing').length, 0, 'no snapshot is taken')
  })

  test('a delta backup with memory (checkpoint) writes the suspend VDI beside the disks, byte for byte', async () => {
    const conn = env.conns[0]!
    const vm = vmByName(conn, 'tiny-running')
    const withMemory = job({ id: 'memory', mode: 'delta', vms: { uuids: [vm.uuid] }, settings: { checkpointSnapshot: true }, schedules: [{ id: 's', name: 's', cron: '0 * * * *', timezone: 'UTC', retention: { backups: 2, snapshots: 1 } }] })
    const tree = await runToEnd(env, withMemory)
    assert.equal(tree.status, 'success', describeFailure(tree))
    await conn.sync()
    const checkpoint = jobSnapshots(conn, conn.get('VM', vm.uuid), 'memory').at(-1)!.record
    assert.notEqual(checkpoint.suspend_VDI, NULL_REF, 'the snapshot is a checkpoint with memory')
    const suspend = conn.byRef(checkpoint.suspend_VDI as string)!
    const [backup] = await listVmBackups(env.remotes.get('a')!, vm.uuid).then(all => all.filter(b => b.jobId === 'memory'))
    assert.ok(backup !== undefined && backup.mode === 'delta', 'the backup is a delta')
    assert.equal(backup.vmSnapshot.suspend_VDI, checkpoint.suspend_VDI, 'the metadata names the memory by its ref')
    const path = backup.vhds[checkpoint.suspend_VDI as string]
    assert.ok(path !== undefined, 'the memory has its VHD')
    assert.equal(path.split('/')[2], suspend.uuid, "the memory's folder is its own uuid (XO's rule)")
    assert.equal(backup.vdis[checkpoint.suspend_VDI as string]!.type, 'suspend')
    assert.equal(Object.values(backup.vbds).some(vbd => vbd.VDI === checkpoint.suspend_VDI), false, 'the memory has no VBD')
    const chain = await VhdChain.open(`xo-vm-backups/${vm.uuid}/${path}`, { fs: fileSystemAccess(env.remotes.get('a')!) })
    const hash = createHash('sha256')
    try {
      for await (const chunk of chain.rawStream()) hash.update(chunk as Buffer)
    } finally {
      await chain.close()
    }
    assert.equal(hash.digest('hex'), await diskDigest(conn, suspend.$ref), 'the stored memory equals the checkpoint’s suspend VDI')
  })
})
