// Delta backups to a local remote with `?useVhdDirectory=true` (XO's layout for object stores): each disk a
// VhdDirectory under data/ behind a `<date>.alias.vhd`, chains through aliases, retention that merges
// directories, and every restore point restored with the snapshot's bytes; a file chain switched to
// directories starts a new full and says why, and both kinds restore.
import assert from 'node:assert/strict'
import { readdir, readFile, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { listRestorePoints, listVmBackups, type VmBackup } from '../../source/repository/index.ts'
import { LocalHandler } from '../../source/storage/index.ts'
import { vmDisks, type XapiRecord } from '../../source/xapi/index.ts'
import { describeFailure, job, newestJobSnapshot, restoredDigests, runToEnd, startEngineLab, tasksOf, vmByName, vmDigests, type EngineLab } from './helpers.ts'

const MiB = 1024 * 1024
const SCHEDULES = [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 2, snapshots: 1 } }]

/** Writes into the VM's first disk, runs the job, and records the snapshot's digests. */
async function runWithWrites(env: EngineLab, theJob: ReturnType<typeof job>, vm: XapiRecord, runNumber: number, expected: Map<string, string[]>) {
  const conn = env.conns[0]!
  if (runNumber > 0) {
    const disk = vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi
    await env.lab.control.writeVdi(disk.uuid, { offset: (runNumber * 5 + 1) * MiB, length: 3 * MiB, seed: 40 + runNumber })
  }
  const tree = await runToEnd(env, theJob)
  assert.equal(tree.status, 'success', describeFailure(tree))
  const snapshot = await newestJobSnapshot(env, vm, theJob.id)
  expected.set(snapshot.uuid, await vmDigests(conn, snapshot))
  return tree
}

function exportsAreFull(tree: Awaited<ReturnType<typeof runToEnd>>): boolean[] {
  return tasksOf(tree).filter(t => t.message === 'export').map(t => t.data?.isFull as boolean)
}

/** XO's VhdDirectory layout: the alias a relative path to data/<date>.vhd/, holding header, footer, bat, brotli chunks. */
async function checkDirectoryLayout(root: string, vmUuid: string, backup: VmBackup): Promise<void> {
  assert.equal(backup.mode, 'delta')
  if (backup.mode !== 'delta') return
  const date = basename(backup._filename, '.json')
  for (const [ref, vhd] of Object.entries(backup.vhds)) {
    const vdi: Record<string, unknown> = backup.vdis[ref]!
    assert.equal(vhd, `vdis/job-1/${vdi.$snapshot_of$uuid}/${date}.alias.vhd`, 'metadata vhds name the alias')
    const folder = join(root, 'xo-vm-backups', vmUuid, 'vdis', 'job-1', String(vdi.$snapshot_of$uuid))
    // A merged backup's alias names its oldest ancestor's folder (XO's merge keeps the ancestor's data).
    const target = (await readFile(join(folder, `${date}.alias.vhd`), 'utf8')).trim()
    assert.match(target, /^data\/\d{8}T\d{6}Z\.vhd$/, 'the alias names a data folder by date, relative to itself')
    assert.ok(target <= `data/${date}.vhd`, 'its own or an older backup\'s')
    const data = join(folder, target)
    assert.ok((await stat(data)).isDirectory(), 'the VhdDirectory is a folder named by the date')
    const names = await readdir(data)
    for (const name of ['header', 'footer', 'bat', 'chunk-filters.json']) assert.ok(names.includes(name), `the VhdDirectory holds ${name}`)
    assert.deepEqual(JSON.parse(await readFile(join(data, 'chunk-filters.json'), 'utf8')), ['brotli'], 'chunks compressed with brotli, XO\'s default')
    assert.ok(!(await readdir(folder)).includes(`${date}.vhd`), 'no VHD file of that date beside the alias')
  }
}

describe('delta backups to a remote with useVhdDirectory', () => {
  let env: EngineLab
  before(async () => {
    env = await startEngineLab({ remotes: ['a'], remoteQuery: '?useVhdDirectory=true' })
  })
  after(async () => env.cleanup())

  test('4 runs with guest writes, retention 2 (merges of directories): every restore point restores to the snapshot bytes', async () => {
    const vm = vmByName(env.conns[0]!, 'tiny-running')
    const theJob = job({ mode: 'delta', vms: { uuids: [vm.uuid] }, schedules: SCHEDULES })
    const expected = new Map<string, string[]>()
    for (let runNumber = 0; runNumber < 4; runNumber++) {
      const tree = await runWithWrites(env, theJob, vm, runNumber, expected)
      assert.deepEqual(exportsAreFull(tree), [runNumber === 0], `run ${runNumber}: ${runNumber === 0 ? 'a full' : 'a delta'}`)
      if (runNumber >= 2) assert.ok(tasksOf(tree).some(t => t.message === 'merge' && t.status === 'success'), `run ${runNumber} merges the released delta`)
    }
    const backups = await listVmBackups(env.remotes.get('a')!, vm.uuid)
    assert.equal(backups.length, 2, 'retention keeps 2 backups')
    const points = await listRestorePoints(env.remotes.get('a')!)
    assert.deepEqual(points.map(p => p.id), backups.map(b => b.id), 'backup list shows both')
    assert.ok(points.every(p => p.mode === 'delta' && (p.size ?? 0) > 0), 'as deltas with their sizes')
    for (const backup of backups) {
      await checkDirectoryLayout(env.remoteDirs.get('a')!, vm.uuid, backup)
      assert.deepEqual(await restoredDigests(env, 'a', backup), expected.get(backup.vmSnapshot.uuid), `restore of ${backup.id}`)
    }
    const oldest = backups[0]!
    assert.ok(oldest.mode === 'delta' && Object.values(oldest.isVhdDifferencing ?? {}).every(differencing => !differencing), 'the merged backup is no longer differencing')
  })
})

describe('a remote switched from VHD files to VhdDirectory', () => {
  let env: EngineLab
  before(async () => {
    env = await startEngineLab({ remotes: ['a'] })
  })
  after(async () => env.cleanup())

  test('the next backup is a full that says why, then deltas chain on it; files and directories both restore', async () => {
    const vm = vmByName(env.conns[0]!, 'tiny-running')
    const theJob = job({ mode: 'delta', vms: { uuids: [vm.uuid] }, schedules: [{ ...SCHEDULES[0]!, retention: { backups: 3, snapshots: 1 } }] })
    const expected = new Map<string, string[]>()
    await runWithWrites(env, theJob, vm, 0, expected)
    const dir = env.remoteDirs.get('a')!
    env.remotes.set('a', new LocalHandler(dir, `file://${dir}?useVhdDirectory=true`))
    const switched = await runWithWrites(env, theJob, vm, 1, expected)
    assert.deepEqual(exportsAreFull(switched), [true], 'the first backup as a VhdDirectory is a full')
    const said = tasksOf(switched).flatMap(t => [...(t.infos ?? []), ...(t.warnings ?? [])]).map(entry => entry.message)
    assert.ok(said.some(message => message.includes('backed up in full') && message.includes('VhdDirector')), `the log says why (${said.join(' | ')})`)
    const next = await runWithWrites(env, theJob, vm, 2, expected)
    assert.deepEqual(exportsAreFull(next), [false], 'the next one is a delta onto the directory')
    const backups = await listVmBackups(env.remotes.get('a')!, vm.uuid)
    assert.equal(backups.length, 3)
    assert.deepEqual(backups.map(b => (b.mode === 'delta' ? Object.values(b.vhds)[0]!.endsWith('.alias.vhd') : undefined)), [false, true, true], 'a VHD file, then aliases')
    for (const backup of backups.slice(1)) await checkDirectoryLayout(dir, vm.uuid, backup)
    const points = await listRestorePoints(env.remotes.get('a')!)
    assert.deepEqual(points.map(p => p.id), backups.map(b => b.id), 'backup list shows all three')
    assert.ok(points.every(p => p.mode === 'delta' && (p.size ?? 0) > 0), 'as deltas with their sizes')
    for (const backup of backups) assert.deepEqual(await restoredDigests(env, 'a', backup), expected.get(backup.vmSnapshot.uuid), `restore of ${backup.id}`)
  })
})
