// Mirror backups (remote → remote, XO's VmsRemote): 4 delta backups of the lab's VM to a local remote of VHD
// files, mirrored to an encrypted VhdDirectory remote and to a second remote of VHD files, and from the
// encrypted one back to VHD files: every restore point restores from each target with the snapshot's bytes,
// timestamps kept, the chains differencing on the targets, nothing copied twice; a filter by tag; full mode;
// a delta whose base no target holds fails the VM with XO's reason; two source jobs of one VM whose copies share
// a chain folder, each delta chained onto its own parent, merged on the target by retention.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { cachePath, listBackedUpVms, listVmBackups, metadataPath, formatFilenameDate, type VmBackup } from '../../source/repository/index.ts'
import { LocalHandler, openRemote, type RemoteHandler } from '../../source/storage/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { checkRestores, describeFailure, job, mirrorJob, mirrorToEnd, runWithWrites, startEngineLab, tasksOf, vmByName, type EngineLab } from './helpers.ts'

const KEY = '0123456789abcdefghijklmnopqrstuv'

function dates(backups: VmBackup[]): string[] {
  return backups.map(backup => formatFilenameDate(backup.timestamp))
}

function differencing(backup: VmBackup): boolean[] {
  return backup.mode === 'delta' ? Object.values(backup.isVhdDifferencing ?? {}) : []
}

describe('mirror backups', () => {
  let env: EngineLab
  let vault: RemoteHandler
  const dirs: Array<Awaited<ReturnType<typeof tempDir>>> = []
  let expected: Map<string, string[]>
  let vmUuid: string

  async function localRemote(name: string, query = ''): Promise<RemoteHandler> {
    const dir = await tempDir(`lifeboat-mirror-${name}-`)
    dirs.push(dir)
    const handler = query.includes('encryptionKey') ? openRemote(`file://${dir.path}${query}`) : new LocalHandler(dir.path, `file://${dir.path}${query}`)
    await handler.sync()
    env.remotes.set(name, handler)
    return handler
  }

  before(async () => {
    env = await startEngineLab({ remotes: ['src'] })
    vault = await localRemote('vault', `?useVhdDirectory=true&encryptionKey=${encodeURIComponent(JSON.stringify(KEY))}`)
    await localRemote('files')
    await localRemote('files-2')
    vmUuid = vmByName(env.conns[0]!, 'tiny-running').uuid as string
    const halted = vmByName(env.conns[0]!, 'tiny-halted').uuid as string
    const backup = job({ mode: 'delta', vms: { uuids: [vmUuid, halted] }, remotes: ['src'], schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 10, snapshots: 1 } }] })
    expected = await runWithWrites(env, backup, 4, 70)
  })
  after(async () => {
    await env.cleanup()
    for (const dir of dirs) await dir.cleanup()
  })

  test('4 delta runs mirrored to an encrypted VhdDirectory remote and a VHD-file remote: each point restores byte-exact from each, timestamps kept', async () => {
    const tree = await mirrorToEnd(env, mirrorJob({ sourceRemote: 'src', remotes: ['vault', 'files'], vms: { uuids: [vmUuid] } }))
    assert.equal(tree.status, 'success', describeFailure(tree))
    const source = await listVmBackups(env.remotes.get('src')!, vmUuid)
    assert.equal(source.length, 4)
    for (const name of ['vault', 'files']) {
      const copies = await listVmBackups(env.remotes.get(name)!, vmUuid)
      assert.deepEqual(dates(copies), dates(source), `${name} holds every source backup under its date`)
      for (const copy of copies) {
        assert.equal(copy.jobId, 'mirror-1', 'a copy belongs to the mirror job (XO writes the mirror job and schedule)')
        assert.equal(copy.scheduleId, 'mirror-schedule')
      }
      assert.deepEqual(copies.map(differencing), [[false], [true], [true], [true]], `${name}: a key, then deltas that chain on it`)
      await checkRestores(env, name, copies, expected)
    }
    const vaultCopy = (await listVmBackups(vault, vmUuid))[0]!
    assert.match(Object.values(vaultCopy.mode === 'delta' ? vaultCopy.vhds : {})[0]!, /\.alias\.vhd$/, 'the encrypted remote stores VhdDirectories behind aliases')
    // The copy took the one VM of the filter: the other VM's backups stay on the source only.
    assert.deepEqual(await listBackedUpVms(env.remotes.get('files')!), [vmUuid])
  })

  test('the next mirror copies nothing; after a 5th backup it copies that delta alone', async () => {
    const theJob = mirrorJob({ sourceRemote: 'src', remotes: ['vault', 'files'], vms: { uuids: [vmUuid] } })
    const idle = await mirrorToEnd(env, theJob)
    assert.equal(idle.status, 'success', describeFailure(idle))
    assert.ok(tasksOf(idle).some(task => task.message === 'backup VM' && JSON.stringify(task).includes('No new data to upload for this VM')), 'the VM task says there was nothing new')
    assert.equal(tasksOf(idle).filter(task => task.message === 'export').length, 0)

    const backup = job({ mode: 'delta', vms: { uuids: [vmUuid] }, remotes: ['src'], schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 10, snapshots: 1 } }] })
    for (const [uuid, digests] of await runWithWrites(env, backup, 1, 90)) expected.set(uuid, digests)
    const tree = await mirrorToEnd(env, theJob)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const exports = tasksOf(tree).filter(task => task.message === 'export')
    assert.equal(exports.length, 2, 'one export per target')
    assert.ok(exports.every(task => task.data?.isFull === false), 'the 5th backup goes as a delta')
    for (const name of ['vault', 'files']) {
      const copies = await listVmBackups(env.remotes.get(name)!, vmUuid)
      assert.equal(copies.length, 5)
      await checkRestores(env, name, copies.slice(-1), expected)
    }
  })

  test('from the encrypted VhdDirectory remote to VHD files, with the target retention merging: the kept points restore', async () => {
    const theJob = mirrorJob({ id: 'mirror-2', sourceRemote: 'vault', remotes: ['files-2'], schedules: [{ id: 'keep-3', name: 'keep 3', cron: '0 6 * * *', timezone: 'UTC', retention: { backups: 3 } }] })
    const tree = await mirrorToEnd(env, theJob)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const copies = await listVmBackups(env.remotes.get('files-2')!, vmUuid)
    const source = await listVmBackups(vault, vmUuid)
    assert.deepEqual(dates(copies), dates(source).slice(-3), 'the newest 3 kept, the older merged away')
    assert.deepEqual(copies.map(differencing), [[false], [true], [true]])
    assert.ok(Object.values(copies[0]!.mode === 'delta' ? copies[0]!.vhds : {}).every(path => path.endsWith('.vhd') && !path.endsWith('.alias.vhd')), 'VHD files on a remote without useVhdDirectory')
    await checkRestores(env, 'files-2', copies, expected)
    // Retention keeps 3 while the source holds 5: the next run copies nothing back.
    const again = await mirrorToEnd(env, theJob)
    assert.equal(tasksOf(again).filter(task => task.message === 'export').length, 0)
  })

  test('a tag filter matches one VM; backups of a distributed job are skipped with a warning', async () => {
    await localRemote('dev-only')
    const theJob = mirrorJob({ id: 'mirror-3', sourceRemote: 'src', remotes: ['dev-only'], vms: { smart: { tags: ['dev'] } } })
    const tree = await mirrorToEnd(env, theJob)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const halted = vmByName(env.conns[0]!, 'tiny-halted').uuid as string
    assert.deepEqual(await listBackedUpVms(env.remotes.get('dev-only')!), [halted])
    assert.equal((await listVmBackups(env.remotes.get('dev-only')!, halted)).length, 4)
    assert.ok(tasksOf(tree).some(task => JSON.stringify(task).includes('This VM is excluded by the job filter')), 'the other VM is said to be filtered out')

    await localRemote('none')
    const skipped = await mirrorToEnd(env, mirrorJob({ id: 'mirror-4', sourceRemote: 'src', remotes: ['none'] }), new Set(['job-1']))
    assert.equal(skipped.status, 'success', describeFailure(skipped))
    assert.ok(JSON.stringify(skipped).includes('a distributed job cannot be a mirror source'), 'the skip is said with its reason')
    assert.equal(tasksOf(skipped).filter(task => task.message === 'export').length, 0)
  })

  test('two source jobs of one VM share the chain folder of the copies: each delta finds its own parent; every point restores, before and after retention merges both chains', async () => {
    await localRemote('pair-src')
    const pairTarget = await localRemote('pair-dst')
    const sourceJob = (id: string) => ({ ...job({ mode: 'delta', vms: { uuids: [vmUuid] }, remotes: ['pair-src'], schedules: [{ id: `${id}-schedule`, name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 10, snapshots: 1 } }] }), id })
    const pairExpected = new Map<string, string[]>()
    // A full of each job, then a delta of each, interleaved: the copies' folder holds A1, B1, A2, B2 by date.
    let seed = 130
    const backUp = async (...ids: string[]) => {
      for (const id of ids) for (const [uuid, digests] of await runWithWrites(env, sourceJob(id), 1, seed++)) pairExpected.set(uuid, digests)
    }
    await backUp('job-a', 'job-b', 'job-a', 'job-b')
    const pairJob = (keep: number) => mirrorJob({ id: 'mirror-pair', sourceRemote: 'pair-src', remotes: ['pair-dst'], schedules: [{ id: 'pair-schedule', name: 'hourly', cron: '0 * * * *', timezone: 'UTC', retention: { backups: keep } }] })
    const tree = await mirrorToEnd(env, pairJob(10))
    assert.equal(tree.status, 'success', describeFailure(tree))
    const source = await listVmBackups(env.remotes.get('pair-src')!, vmUuid)
    let copies = await listVmBackups(pairTarget, vmUuid)
    assert.deepEqual(dates(copies), dates(source), 'the four backups of both jobs are copied')
    assert.deepEqual(source.map(backup => backup.jobId), ['job-a', 'job-b', 'job-a', 'job-b'])
    assert.deepEqual(copies.map(differencing), [[false], [false], [true], [true]], 'two keys, then a delta on each')
    const chainFolders = new Set(copies.flatMap(copy => (copy.mode === 'delta' ? Object.values(copy.vhds) : [])).map(path => path.split('/').slice(0, 3).join('/')))
    assert.equal(chainFolders.size, 1, 'both chains are in the one folder of the mirror job\'s disk')
    await checkRestores(env, 'pair-dst', copies, pairExpected)

    // Two more of each; the mirror now keeps 3: the oldest of both chains go, each merged into its own next.
    await backUp('job-a', 'job-b', 'job-a', 'job-b')
    const merged = await mirrorToEnd(env, pairJob(3))
    assert.equal(merged.status, 'success', describeFailure(merged))
    assert.ok(tasksOf(merged).some(task => task.message === 'merge' && task.status === 'success'), 'merges ran on the target')
    copies = await listVmBackups(pairTarget, vmUuid)
    const all = await listVmBackups(env.remotes.get('pair-src')!, vmUuid)
    assert.deepEqual(dates(copies), dates(all).slice(-3), 'the newest 3 of both jobs together are kept (the mirror schedule\'s retention)')
    assert.deepEqual(copies.map(differencing), [[false], [false], [true]], 'each chain starts again at a key: its old links merged into it')
    await checkRestores(env, 'pair-dst', copies, pairExpected)
    const again = await mirrorToEnd(env, pairJob(3))
    assert.equal(tasksOf(again).filter(task => task.message === 'export').length, 0, 'nothing is copied back: each job\'s newest backup is on the target')
  })

  test('full mode copies the XVAs; a delta whose base no target holds fails the VM with XO\'s reason', async () => {
    await localRemote('full-src')
    await localRemote('full-dst')
    const full = job({ mode: 'full', vms: { uuids: [vmUuid] }, remotes: ['full-src'], schedules: [{ id: 'schedule-f', name: 'weekly', cron: '0 3 * * 0', timezone: 'UTC', retention: { backups: 5, snapshots: 1 } }] })
    const fullExpected = await runWithWrites(env, { ...full, id: 'job-full' }, 2, 110)
    const tree = await mirrorToEnd(env, mirrorJob({ id: 'mirror-full', mode: 'full', sourceRemote: 'full-src', remotes: ['full-dst'] }))
    assert.equal(tree.status, 'success', describeFailure(tree))
    const copies = await listVmBackups(env.remotes.get('full-dst')!, vmUuid)
    assert.deepEqual(dates(copies), dates(await listVmBackups(env.remotes.get('full-src')!, vmUuid)))
    await checkRestores(env, 'full-dst', copies, fullExpected)

    // The source's oldest backup made invisible (its JSON gone, its VHD kept): the first pending one is a delta.
    const src = env.remotes.get('src')!
    const oldest = (await listVmBackups(src, vmUuid))[0]!
    await src.unlink(metadataPath(vmUuid, formatFilenameDate(oldest.timestamp)))
    await src.unlink(cachePath(vmUuid)).catch(() => {})
    await localRemote('fresh')
    const failed = await mirrorToEnd(env, mirrorJob({ id: 'mirror-5', sourceRemote: 'src', remotes: ['fresh'], vms: { uuids: [vmUuid] } }))
    const vmTask = tasksOf(failed).find(task => task.message === 'backup VM' && task.data?.id === vmUuid)!
    assert.equal(vmTask.status, 'failure')
    assert.match(String((vmTask.result as { message?: string }).message), /^Missing vdi [0-9a-f-]{36} which is a base for a delta/)
    assert.equal((await listVmBackups(env.remotes.get('fresh')!, vmUuid)).length, 0, 'nothing half-made stays on the target')
  })
})
