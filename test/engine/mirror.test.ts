// Mirror backups (remote → remote, XO's VmsRemote): 4 delta backups of the lab's VM to a local remote of VHD
// files, mirrored to an encrypted VhdDirectory remote and to a second remote of VHD files, and from the
// encrypted one back to VHD files: every restore point restores from each target with the snapshot's bytes,
// timestamps kept, the chains differencing on the targets, nothing copied twice; a filter by tag; full mode;
// a delta whose base no target holds fails the VM with XO's reason.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { cachePath, listBackedUpVms, listVmBackups, metadataPath, formatFilenameDate, type VmBackup } from '../../source/repository/index.ts'
import { LocalHandler, openRemote, type RemoteHandler } from '../../source/storage/index.ts'
import { parseJob, type JobInput } from '../../source/engine/jobs/index.ts'
import { startMirrorRun } from '../../source/engine/index.ts'
import type { TaskNode } from '../../source/tasks/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { checkRestores, describeFailure, job, runWithWrites, startEngineLab, tasksOf, vmByName, type EngineLab } from './helpers.ts'

const KEY = '0123456789abcdefghijklmnopqrstuv'

function mirrorJob(input: Partial<JobInput> & Pick<JobInput, 'sourceRemote' | 'remotes'>): ReturnType<typeof parseJob> {
  return parseJob({
    id: 'mirror-1',
    name: 'offsite',
    type: 'mirror',
    mode: 'delta',
    schedules: [{ id: 'mirror-schedule', name: 'nightly', cron: '0 5 * * *', timezone: 'UTC', retention: { backups: 10 } }],
    ...input,
  })
}

async function mirror(env: EngineLab, theJob: ReturnType<typeof parseJob>, distributedJobs?: Set<string>): Promise<TaskNode> {
  return startMirrorRun(theJob, env.context, { ...(distributedJobs !== undefined && { distributedJobs }) }).done
}

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
    const tree = await mirror(env, mirrorJob({ sourceRemote: 'src', remotes: ['vault', 'files'], vms: { uuids: [vmUuid] } }))
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
    const idle = await mirror(env, theJob)
    assert.equal(idle.status, 'success', describeFailure(idle))
    assert.ok(tasksOf(idle).some(task => task.message === 'backup VM' && JSON.stringify(task).includes('No new data to upload for this VM')), 'the VM task says there was nothing new')
    assert.equal(tasksOf(idle).filter(task => task.message === 'export').length, 0)

    const backup = job({ mode: 'delta', vms: { uuids: [vmUuid] }, remotes: ['src'], schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 10, snapshots: 1 } }] })
    for (const [uuid, digests] of await runWithWrites(env, backup, 1, 90)) expected.set(uuid, digests)
    const tree = await mirror(env, theJob)
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
    const tree = await mirror(env, theJob)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const copies = await listVmBackups(env.remotes.get('files-2')!, vmUuid)
    const source = await listVmBackups(vault, vmUuid)
    assert.deepEqual(dates(copies), dates(source).slice(-3), 'the newest 3 kept, the older merged away')
    assert.deepEqual(copies.map(differencing), [[false], [true], [true]])
    assert.ok(Object.values(copies[0]!.mode === 'delta' ? copies[0]!.vhds : {}).every(path => path.endsWith('.vhd') && !path.endsWith('.alias.vhd')), 'VHD files on a remote without useVhdDirectory')
    await checkRestores(env, 'files-2', copies, expected)
    // Retention keeps 3 while the source holds 5: the next run copies nothing back.
    const again = await mirror(env, theJob)
    assert.equal(tasksOf(again).filter(task => task.message === 'export').length, 0)
  })

  test('a tag filter matches one VM; backups of a distributed job are skipped with a warning', async () => {
    await localRemote('dev-only')
    const theJob = mirrorJob({ id: 'mirror-3', sourceRemote: 'src', remotes: ['dev-only'], vms: { smart: { tags: ['dev'] } } })
    const tree = await mirror(env, theJob)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const halted = vmByName(env.conns[0]!, 'tiny-halted').uuid as string
    assert.deepEqual(await listBackedUpVms(env.remotes.get('dev-only')!), [halted])
    assert.equal((await listVmBackups(env.remotes.get('dev-only')!, halted)).length, 4)
    assert.ok(tasksOf(tree).some(task => JSON.stringify(task).includes('This VM is excluded by the job filter')), 'the other VM is said to be filtered out')

    await localRemote('none')
    const skipped = await mirror(env, mirrorJob({ id: 'mirror-4', sourceRemote: 'src', remotes: ['none'] }), new Set(['job-1']))
    assert.equal(skipped.status, 'success', describeFailure(skipped))
    assert.ok(JSON.stringify(skipped).includes('a distributed job cannot be a mirror source'), 'the skip is said with its reason')
    assert.equal(tasksOf(skipped).filter(task => task.message === 'export').length, 0)
  })

  test('full mode copies the XVAs; a delta whose base no target holds fails the VM with XO\'s reason', async () => {
    await localRemote('full-src')
    await localRemote('full-dst')
    const full = job({ mode: 'full', vms: { uuids: [vmUuid] }, remotes: ['full-src'], schedules: [{ id: 'schedule-f', name: 'weekly', cron: '0 3 * * 0', timezone: 'UTC', retention: { backups: 5, snapshots: 1 } }] })
    const fullExpected = await runWithWrites(env, { ...full, id: 'job-full' }, 2, 110)
    const tree = await mirror(env, mirrorJob({ id: 'mirror-full', mode: 'full', sourceRemote: 'full-src', remotes: ['full-dst'] }))
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
    const failed = await mirror(env, mirrorJob({ id: 'mirror-5', sourceRemote: 'src', remotes: ['fresh'], vms: { uuids: [vmUuid] } }))
    const vmTask = tasksOf(failed).find(task => task.message === 'backup VM' && task.data?.id === vmUuid)!
    assert.equal(vmTask.status, 'failure')
    assert.match(String((vmTask.result as { message?: string }).message), /^Missing vdi [0-9a-f-]{36} which is a base for a delta/)
    assert.equal((await listVmBackups(env.remotes.get('fresh')!, vmUuid)).length, 0, 'nothing half-made stays on the target')
  })
})
