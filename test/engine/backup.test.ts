// Backups through the engine API against the lab over HTTP: full and delta jobs to one and to three
// local remotes, guest writes between runs, retention that merges, and every restore point restored
// onto the pool with its disks' bytes equal to the snapshot's raw export at backup time.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { VhdFile } from '../../source/formats/vhd/index.ts'
import { listRestorePoints, listVmBackups, type VmBackup } from '../../source/repository/index.ts'
import { fileSystemAccess } from '../../source/storage/index.ts'
import { vmDisks } from '../../source/xapi/index.ts'
import { describeFailure, job, newestJobSnapshot, restoredDigests, runToEnd, startEngineLab, vmByName, vmDigests, type EngineLab } from './helpers.ts'

const MiB = 1024 * 1024

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
        // Full backups to 3 remotes also ask XAPI for zstd: the stored XVA is compressed, and restores as is.
        const settings = mode === 'full' && remoteCount === 3 ? { compression: 'zstd' as const } : {}
        const theJob = job({ mode, vms: { uuids: [vm.uuid] }, remotes, settings, schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 2, snapshots: 1 } }] })
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
          await checkXoLayout(env.remoteDirs.get(remote)!, vm.uuid, backups, settings)
        }
        const jobSnapshots = (conn.get('VM', vm.uuid).snapshots as string[]).map(ref => conn.byRef(ref)).filter(snapshot => snapshot?.other_config && (snapshot.other_config as Record<string, string>)['xo:backup:job'] === 'job-1')
        assert.equal(jobSnapshots.length, 1, 'snapshot retention keeps 1 snapshot on the source')
      })
    })
  }
}

/** The files and JSON fields Xen Orchestra writes (reference/xo-backups.md §2), checked on what the engine wrote. */
async function checkXoLayout(root: string, vmUuid: string, backups: VmBackup[], settings: { compression?: string }): Promise<void> {
  const vmFolder = join(root, 'xo-vm-backups', vmUuid)
  const names = await readdir(vmFolder)
  assert.ok(names.includes('cache.json.gz'), 'the VM folder holds cache.json.gz')
  for (const backup of backups) {
    const date = basename(backup._filename, '.json')
    assert.match(date, /^\d{8}T\d{6}Z$/, 'file names are UTC YYYYMMDDTHHmmssZ')
    const json = JSON.parse(await readFile(join(vmFolder, `${date}.json`), 'utf8'))
    for (const field of ['version', 'jobId', 'scheduleId', 'mode', 'timestamp', 'vm', 'vmSnapshot', 'size']) assert.ok(field in json, `metadata field ${field}`)
    assert.equal(json.version, '2.0.0')
    assert.equal(json.jobId, 'job-1')
    assert.equal(json.scheduleId, 'schedule-1')
    assert.equal(json.vm.uuid, vmUuid)
    assert.equal(typeof json.timestamp, 'number')
    if (json.mode === 'full') {
      assert.equal(json.xva, `./${date}.xva`)
      const xva = await readFile(join(vmFolder, `${date}.xva`))
      assert.equal(json.size, xva.length)
      const checksum = await readFile(join(vmFolder, `${date}.xva.checksum`), 'utf8')
      assert.equal(checksum, `$1$$${createHash('md5').update(xva).digest('hex')}`, "XO's <date>.xva.checksum: $1$$ and the XVA's md5")
      if (settings.compression === 'zstd') assert.deepEqual([...xva.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], 'zstd magic: compressed by XAPI')
      else assert.equal(xva.subarray(0, 7).toString(), 'ova.xml', 'a plain tar starting with ova.xml')
    } else {
      for (const field of ['vdis', 'vbds', 'vifs', 'vhds', 'isVhdDifferencing']) assert.ok(field in json, `delta metadata field ${field}`)
      for (const [ref, vdi] of Object.entries(json.vdis as Record<string, Record<string, unknown>>)) {
        assert.match(ref, /^OpaqueRef:/, 'vdis keyed by the snapshot VDI ref')
        assert.equal(typeof vdi.$snapshot_of$uuid, 'string')
        assert.equal(typeof vdi.$SR$uuid, 'string')
        assert.equal(json.vhds[ref], `vdis/job-1/${vdi.$snapshot_of$uuid}/${date}.vhd`, 'VHDs under vdis/<job>/<source VDI>/<date>.vhd')
      }
      for (const vif of Object.values(json.vifs as Record<string, Record<string, unknown>>)) assert.equal(typeof vif.$network$uuid, 'string')
    }
  }
}

describe('delta chains: fullInterval and two jobs on the same remote', () => {
  let env: EngineLab
  before(async () => {
    env = await startEngineLab({ remotes: ['a'] })
  })
  after(async () => env.cleanup())

  test('fullInterval counts the chain on the snapshot: with 3, every third backup is a full', async () => {
    const conn = env.conns[0]!
    const vm = vmByName(conn, 'tiny-halted')
    const theJob = job({ id: 'interval-job', mode: 'delta', vms: { uuids: [vm.uuid] }, schedules: [{ id: 's', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 10, snapshots: 1 }, fullInterval: 3 }] })
    const kinds: boolean[] = []
    for (let i = 0; i < 5; i++) {
      const tree = await runToEnd(env, theJob)
      assert.equal(tree.status, 'success', describeFailure(tree))
      kinds.push(tree.tasks![0]!.tasks!.find(t => t.message === 'export')!.data!.isFull as boolean)
    }
    assert.deepEqual(kinds, [true, false, false, true, false])
  })

  test('long-term retention in the schedule timezone keeps the day\'s first backup; the rate cap is carried out without a warning', async () => {
    const conn = env.conns[0]!
    const vm = vmByName(conn, 'tiny-halted')
    const theJob = job({
      id: 'ltr-job', mode: 'delta', vms: { uuids: [vm.uuid] }, settings: { longTermRetention: { daily: { retention: 2 } }, maxExportRate: 1_000_000_000 },
      schedules: [{ id: 'ltr', name: 'daily', cron: '0 3 * * *', timezone: 'Europe/Paris', retention: { backups: 1, snapshots: 1 } }],
    })
    const trees = []
    for (let i = 0; i < 3; i++) trees.push(await runToEnd(env, theJob))
    for (const tree of trees) assert.equal(tree.status, 'success', describeFailure(tree))
    assert.ok(!trees[0]!.warnings?.some(w => w.message.includes('maxExportRate')), 'the rate cap is carried out: no warning')
    const backups = (await listVmBackups(env.remotes.get('a')!, vm.uuid)).filter(b => b.jobId === 'ltr-job')
    const snapshotsOfRuns = trees.map(tree => tree.tasks![0]!.tasks!.find(t => t.message === 'snapshot')!.result)
    assert.deepEqual(backups.map(b => b.vmSnapshot.uuid), [snapshotsOfRuns[0], snapshotsOfRuns[2]], 'the newest, plus the oldest of today')
  })

  test('two jobs backing up the same VM to the same remote at once take turns on its folder and both succeed', async () => {
    const conn = env.conns[0]!
    const vm = vmByName(conn, 'tiny-running')
    const jobs = ['first', 'second'].map(id => job({ id, name: id, mode: 'delta', vms: { uuids: [vm.uuid] } }))
    const trees = await Promise.all(jobs.map(j => runToEnd(env, j)))
    for (const tree of trees) assert.equal(tree.status, 'success', describeFailure(tree))
    const waited = trees.flatMap(tree => tree.tasks![0]!.infos ?? []).filter(entry => entry.message.startsWith('waiting for the VM'))
    assert.equal(waited.length, 1, 'one of the runs waited for the other to release the folder')
    const backups = await listVmBackups(env.remotes.get('a')!, vm.uuid)
    assert.deepEqual(backups.map(b => b.jobId).sort(), ['first', 'second'])
  })
})
