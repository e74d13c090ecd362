// Backups through the engine API against the lab over HTTP: full and delta jobs to one and to three
// local remotes, guest writes between runs, retention that merges, and every restore point restored
// onto the pool with its disks' bytes equal to the snapshot's raw export at backup time.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { restoreBackup } from '../../source/engine/index.ts'
import { VhdFile } from '../../source/formats/vhd/index.ts'
import { listRestorePoints, listVmBackups, type VmBackup } from '../../source/repository/index.ts'
import { fileSystemAccess } from '../../source/storage/index.ts'
import { destroyVmAndDisks, vmDisks, type XapiRecord } from '../../source/xapi/index.ts'
import { describeFailure, job, runToEnd, startEngineLab, vmByName, vmDigests, type EngineLab } from './helpers.ts'

const MiB = 1024 * 1024

async function newestJobSnapshot(env: EngineLab, vm: XapiRecord): Promise<XapiRecord> {
  const conn = env.conns[0]!
  const fresh = conn.get('VM', vm.uuid)
  const config = (record: XapiRecord) => (record.other_config ?? {}) as Record<string, string>
  const snapshots = (fresh.snapshots as string[]).map(ref => conn.byRef(ref)!).filter(s => s !== undefined && config(s)['xo:backup:job'] === 'job-1')
  snapshots.sort((a, b) => String(config(a)['xo:backup:datetime']).localeCompare(String(config(b)['xo:backup:datetime'])))
  return snapshots.at(-1)!
}

/** Restores a backup onto the pool's SR, returns the restored disks' digests, and removes the restored VM. */
async function restoredDigests(env: EngineLab, remote: string, backup: VmBackup): Promise<string[]> {
  const conn = env.conns[0]!
  const sr = conn.all('SR').find(s => s.content_type !== 'iso')!
  const restored = await restoreBackup(env.remotes.get(remote)!, backup.id, conn, sr.uuid)
  const vm = await conn.waitFor(() => conn.byRef(restored.vmRef), { what: 'the restored VM', timeoutMs: 10_000 })
  await conn.waitFor(() => vmDisks(conn, vm).length > 0 || undefined, { what: 'the restored disks', timeoutMs: 10_000 })
  try {
    return await vmDigests(conn, conn.byRef(restored.vmRef)!)
  } finally {
    await destroyVmAndDisks(conn, restored.vmRef)
  }
}

for (const mode of ['delta', 'full'] as const) {
  for (const remoteCount of [1, 3]) {
    describe(`${mode} backups to ${remoteCount} remote(s)`, () => {
      let env: EngineLab
      const remotes = ['a', 'b', 'c'].slice(0, remoteCount)
      before(async () => {
        env = await startEngineLab({ remotes })
      })
      after(async () => env.cleanup())

      test('several runs with guest writes between them; retention keeps 2; every restore point restores to the snapshot bytes', async () => {
        const conn = env.conns[0]!
        const vm = vmByName(conn, 'tiny-running')
        const theJob = job({ mode, vms: { uuids: [vm.uuid] }, remotes, schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 2, snapshots: 1 } }] })
        /** Snapshot digests by the snapshot's uuid, taken right after each run (the snapshot is gone later). */
        const expected = new Map<string, string[]>()
        for (let runNumber = 0; runNumber < 4; runNumber++) {
          if (runNumber > 0) {
            const disk = vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi
            await env.lab.control.writeVdi(disk.uuid, { offset: (runNumber * 5 + 1) * MiB, length: 3 * MiB, seed: runNumber })
          }
          const tree = await runToEnd(env, theJob)
          assert.equal(tree.status, 'success', describeFailure(tree))
          const snapshot = await newestJobSnapshot(env, vm)
          expected.set(snapshot.uuid, await vmDigests(conn, snapshot))
          if (mode === 'delta' && runNumber > 0) {
            const exportTasks = tree.tasks![0]!.tasks!.filter(t => t.message === 'export')
            assert.ok(exportTasks.every(t => t.data?.isFull === false), 'later runs are deltas')
          }
        }
        for (const remote of remotes) {
          const backups = await listVmBackups(env.remotes.get(remote)!, vm.uuid)
          assert.equal(backups.length, 2, `retention keeps 2 backups on ${remote}`)
          for (const backup of backups) {
            assert.equal(backup.mode, mode)
            const snapshotUuid = backup.vmSnapshot.uuid
            assert.ok(expected.has(snapshotUuid), 'the metadata names the exported snapshot')
            if (backup.mode === 'delta') {
              for (const [ref, path] of Object.entries(backup.vhds)) {
                const file = await VhdFile.open(`xo-vm-backups/${vm.uuid}/${path}`, { fs: fileSystemAccess(env.remotes.get(remote)!) })
                assert.equal(file.footer.uuid, backup.vdis[ref]!.uuid, 'VHD footer uuid = the snapshot VDI uuid')
                await file.close()
              }
            }
            assert.deepEqual(await restoredDigests(env, remote, backup), expected.get(snapshotUuid), `restore of ${backup.id} from ${remote}`)
          }
          const points = await listRestorePoints(env.remotes.get(remote)!)
          assert.equal(points.length, 2)
        }
      })
    })
  }
}
