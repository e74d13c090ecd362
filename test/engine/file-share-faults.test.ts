// Faults of a file share under a real backup, the same suite on SMB (Samba) and NFS (nfs-ganesha): the server
// killed in the middle of a delta upload (the run fails cleanly, the next one succeeds and its clean removes what
// the killed one left) and a share that fills up (REMOTE_FULL there, the run's local remote gets a restorable backup).
import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { listVmBackups, vmDir } from '../../source/repository/index.ts'
import { TEMPORARY_FILE } from '../../source/storage/index.ts'
import type { ShareServer } from '../helpers/share-server.ts'
import { describeFailure, eventually, guestWrite, job, newestJobSnapshot, restoredDigests, runToEnd, SHARE_SERVERS, startEngineLab, tasksOf, vmByName, vmDigests, type EngineLab } from './helpers.ts'

const MiB = 1024 * 1024
const schedules = (backups: number) => [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups, snapshots: 1 } }]
// Room for the metadata and a little data, not for the 8 MiB of guest writes of the first backup.
const SMALL_SHARE = 4 * MiB

/** Every file under a folder of the share, as the server stored it (relative paths). */
async function filesOnShare(root: string): Promise<string[]> {
  return ((await readdir(root, { recursive: true, withFileTypes: true }).catch(() => [])) as Array<{ name: string; parentPath?: string; path?: string; isFile(): boolean }>)
    .filter(entry => entry.isFile())
    .map(entry => join(entry.parentPath ?? entry.path ?? '', entry.name).slice(root.length + 1))
    .sort()
}

/** Each remote's export task status by remote name. */
function exportStatuses(tree: Parameters<typeof tasksOf>[0]): Record<string, string> {
  return Object.fromEntries(tasksOf(tree).filter(t => t.message === 'export').map(t => [String(t.data?.id), t.status]))
}

const codes = (tree: Parameters<typeof tasksOf>[0]) => tasksOf(tree).map(t => (t.result as { code?: string } | undefined)?.code).filter(code => code !== undefined)

for (const { name, start } of SHARE_SERVERS) {
  describe(`faults of ${name}`, () => {
    let server: ShareServer
    let small: ShareServer
    let env: EngineLab

    before(async () => {
      server = await start()
      small = await start({ sizeLimitBytes: SMALL_SHARE })
      env = await startEngineLab({ remoteUrls: { share: server.urlFor('stopped'), small: small.urlFor('full') }, remotes: ['local'] })
    })

    after(async () => {
      await env?.cleanup()
      await server?.cleanup()
      await small?.cleanup()
    })

    test('the server killed mid-upload: the run fails with REMOTE_UNAVAILABLE and shows no backup; restarted, the next run succeeds, no temporary file is left and it restores', async () => {
      const conn = env.conns[0]!
      const vm = vmByName(conn, 'tiny-running')
      const handler = env.remotes.get('share')!
      const folder = join(server.root, 'stopped')
      const theJob = job({ id: `stopped-${server.kind}`, mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['share'], schedules: schedules(3) })
      const first = await runToEnd(env, theJob)
      assert.equal(first.status, 'success', describeFailure(first))
      const before = new Set(await filesOnShare(folder))

      await guestWrite(env, 3)
      // The export pauses once a block or two are through: the server dies in that pause, the upload resumes into it.
      env.lab.control.addFault({ match: { endpoint: '/export_raw_vdi/' }, times: 1, action: { type: 'stall', ms: 6000, afterBytes: 2.5 * MiB } })
      const running = runToEnd(env, theJob)
      await eventually('the delta being written on the share', async () => ((await filesOnShare(folder)).some(path => path.includes('/vdis/') && !before.has(path)) ? true : undefined))
      await server.stop()
      const failed = await running
      await server.restart()
      assert.equal(failed.status, 'failure', describeFailure(failed))
      assert.ok(codes(failed).includes('REMOTE_UNAVAILABLE'), describeFailure(failed))
      assert.equal((await listVmBackups(handler, vm.uuid)).length, 1, 'the failed run left no backup')
      assert.ok((await filesOnShare(folder)).some(path => TEMPORARY_FILE.test(basename(path))), 'the killed upload left its temporary file, for the clean to remove')

      await guestWrite(env, 4)
      const next = await runToEnd(env, theJob)
      assert.equal(next.status, 'success', describeFailure(next))
      const backups = await listVmBackups(handler, vm.uuid)
      assert.equal(backups.length, 2, 'the first backup and the last one')
      const now = await filesOnShare(folder)
      assert.deepEqual(now.filter(path => TEMPORARY_FILE.test(basename(path))), [], 'the clean removed the temporary files of the killed upload')
      // What the failed run wrote is gone: every file is the first backup's or the last one's.
      const last = backups.at(-1)!
      const lastName = basename(last.id).replace('.json', '')
      assert.deepEqual(now.filter(path => !before.has(path) && !path.includes(lastName) && !path.endsWith('cache.json.gz')), [], 'files of the failed run are left')
      assert.ok(now.every(path => !path.startsWith(vmDir(vm.uuid)) || !path.endsWith('.merge.json')), 'no merge state is left')
      assert.deepEqual(await restoredDigests(env, 'share', last), await vmDigests(conn, await newestJobSnapshot(env, vm, theJob.id)), 'the next backup restores to its snapshot')
    })

    test('the share fills up: its export fails with REMOTE_FULL, the local remote of the same run gets a backup that restores', async () => {
      const conn = env.conns[0]!
      const vm = vmByName(conn, 'tiny-running')
      const theJob = job({ id: `full-${small.kind}`, mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['small', 'local'], schedules: schedules(2) })
      await guestWrite(env, 5)
      await guestWrite(env, 6)
      const tree = await runToEnd(env, theJob)
      assert.equal(tree.status, 'failure', describeFailure(tree))
      assert.ok(codes(tree).includes('REMOTE_FULL'), describeFailure(tree))
      assert.deepEqual(exportStatuses(tree), { small: 'failure', local: 'success' }, "each remote's export")
      assert.equal((await listVmBackups(env.remotes.get('small')!, vm.uuid)).length, 0, 'the full share shows no backup')
      const [backup, ...others] = await listVmBackups(env.remotes.get('local')!, vm.uuid)
      assert.ok(backup !== undefined && others.length === 0, 'the local remote has the backup')
      assert.deepEqual(await restoredDigests(env, 'local', backup), await vmDigests(conn, await newestJobSnapshot(env, vm, theJob.id)), 'the local backup restores to its snapshot')
    })
  })
}
