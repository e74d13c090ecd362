// Mirror backups to real servers, as the issue asks: 4 delta backups of the lab's VM on a local remote, mirrored
// in one run to an S3 bucket (s3rver: VhdDirectory behind aliases, as XO forces on object stores) and to an SMB
// share (Samba: VHD files), then back from S3 to a second SMB folder; every restore point restores byte-exact
// from each target, under the source's dates, and a second run copies nothing.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { formatFilenameDate, listVmBackups, type VmBackup } from '../../source/repository/index.ts'
import { openRemote } from '../../source/storage/index.ts'
import { parseJob } from '../../source/engine/jobs/index.ts'
import { startMirrorRun } from '../../source/engine/index.ts'
import { startS3rver, type S3rver } from '../helpers/s3rver.ts'
import { startSamba } from '../helpers/samba.ts'
import type { ShareServer } from '../helpers/share-server.ts'
import { checkRestores, describeFailure, job, runWithWrites, startEngineLab, tasksOf, vmByName, type EngineLab } from './helpers.ts'

const mirrorJob = (id: string, sourceRemote: string, remotes: string[]) =>
  parseJob({ id, name: id, type: 'mirror', mode: 'delta', sourceRemote, remotes, schedules: [{ id: `${id}-schedule`, name: 'nightly', cron: '0 5 * * *', timezone: 'UTC', retention: { backups: 10 } }] })

const dates = (backups: VmBackup[]) => backups.map(backup => formatFilenameDate(backup.timestamp))

describe('mirror to S3 and SMB', () => {
  let env: EngineLab
  let s3: S3rver
  let smb: ShareServer
  let expected: Map<string, string[]>
  let vmUuid: string

  before(async () => {
    s3 = await startS3rver()
    smb = await startSamba()
    env = await startEngineLab({ remotes: ['src'] })
    for (const [name, url] of [['bucket', s3.urlFor('mirror')], ['share', smb.urlFor('mirror')], ['share-2', smb.urlFor('back')]] as const) {
      const handler = openRemote(url)
      await handler.sync()
      env.remotes.set(name, handler)
    }
    vmUuid = vmByName(env.conns[0]!, 'tiny-running').uuid as string
    const backup = job({ mode: 'delta', vms: { uuids: [vmUuid] }, remotes: ['src'], schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 10, snapshots: 1 } }] })
    expected = await runWithWrites(env, backup, 4, 310)
  })
  after(async () => {
    await env?.cleanup()
    await s3?.stop()
    await smb?.cleanup()
  })

  test('4 delta backups mirrored to S3 and SMB in lock-step: each point restores byte-exact from each target; a second run copies nothing', async () => {
    const theJob = mirrorJob('to-stores', 'src', ['bucket', 'share'])
    const tree = await startMirrorRun(theJob, env.context).done
    assert.equal(tree.status, 'success', describeFailure(tree))
    const source = await listVmBackups(env.remotes.get('src')!, vmUuid)
    assert.equal(source.length, 4)
    for (const name of ['bucket', 'share']) {
      const copies = await listVmBackups(env.remotes.get(name)!, vmUuid)
      assert.deepEqual(dates(copies), dates(source), `${name} holds every source backup under its date`)
      await checkRestores(env, name, copies, expected)
    }
    const onS3 = (await listVmBackups(env.remotes.get('bucket')!, vmUuid))[0]!
    assert.ok(onS3.mode === 'delta' && Object.values(onS3.vhds).every(path => path.endsWith('.alias.vhd')), 'S3 holds VhdDirectories behind aliases')
    const onSmb = (await listVmBackups(env.remotes.get('share')!, vmUuid))[0]!
    assert.ok(onSmb.mode === 'delta' && Object.values(onSmb.vhds).every(path => path.endsWith('.vhd') && !path.endsWith('.alias.vhd')), 'SMB holds VHD files')
    const again = await startMirrorRun(theJob, env.context).done
    assert.equal(again.status, 'success', describeFailure(again))
    assert.equal(tasksOf(again).filter(task => task.message === 'export').length, 0, 'nothing new: nothing sent')
  })

  test('from S3 (VhdDirectory) back to an SMB folder (VHD files): every point restores byte-exact', async () => {
    const tree = await startMirrorRun(mirrorJob('back', 'bucket', ['share-2']), env.context).done
    assert.equal(tree.status, 'success', describeFailure(tree))
    const copies = await listVmBackups(env.remotes.get('share-2')!, vmUuid)
    assert.equal(copies.length, 4)
    await checkRestores(env, 'share-2', copies, expected)
  })
})
