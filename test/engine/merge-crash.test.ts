// A backup process killed (SIGKILL) in the middle of the merge that retention starts: the next run,
// in another process, resumes the merge before anything else, succeeds, and every kept restore point
// still restores to its snapshot's bytes. The kill lands at a chosen write of the merge state (the
// first: nothing merged yet; the second: blocks merged, the clean-up not done).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, test } from 'node:test'
import { restoreBackup } from '../../source/engine/index.ts'
import { listVmBackups } from '../../source/repository/index.ts'
import { destroyVmAndDisks } from '../../source/xapi/index.ts'
import { describeFailure, job, liveDiskUuid, newestJobSnapshot, runToEnd, startEngineLab, vmByName, vmDigests } from './helpers.ts'

const MiB = 1024 * 1024
const JOB = { id: 'job-1', mode: 'delta' as const, schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 2, snapshots: 1 } }] }

/** The child: one run of the job whose remote hangs (and says so) at the Nth write of a merge state. */
const childScript = `
  import { LocalHandler } from './source/storage/index.ts'
  import { PoolConnection } from './source/xapi/index.ts'
  import { startBackupRun } from './source/engine/index.ts'
  import { parseJob } from './source/engine/jobs/index.ts'
  const { pool, remote, job, hangAt } = JSON.parse(process.argv.at(-1))
  let stateWrites = 0
  class HangsInMerge extends LocalHandler {
    writeFile(path, data, options) {
      if (/\\.merge\\.json$/.test(path) && ++stateWrites === hangAt) {
        return super.writeFile(path, data, options).then(() => {
          process.stdout.write('MERGING\\n')
          return new Promise(() => {})
        })
      }
      return super.writeFile(path, data, options)
    }
  }
  const handler = new HangsInMerge(remote)
  await handler.sync()
  const conn = await PoolConnection.connect(pool)
  const tree = await startBackupRun(parseJob(job), { pools: new Map([[conn.poolUuid, conn]]), remotes: new Map([['a', handler]]) }).done
  process.stdout.write('FINISHED ' + tree.status + '\\n')
`

async function filesOf(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) out.push(entry.name)
  return out
}

describe('a process killed during a merge', () => {
  for (const hangAt of [1, 2]) {
    test(`killed at merge-state write #${hangAt}: the next run resumes the merge and every kept point restores`, async () => {
      const env = await startEngineLab({ remotes: ['a'] })
      try {
        const conn = env.conns[0]!
        const vm = vmByName(conn, 'tiny-running')
        const theJob = job({ ...JOB, vms: { uuids: [vm.uuid] } })
        const digests = new Map<string, string[]>()
        const write = (seed: number) => env.lab.control.writeVdi(liveDiskUuid(env, vm), { offset: seed * 3 * MiB, length: 4 * MiB, seed })
        for (let i = 1; i <= 2; i++) {
          if (i > 1) await write(i)
          const tree = await runToEnd(env, theJob)
          assert.equal(tree.status, 'success', describeFailure(tree))
          const snapshot = await newestJobSnapshot(env, vm)
          digests.set(snapshot.uuid, await vmDigests(conn, snapshot))
        }

        await write(3)
        const pool = env.lab.pools[0]!
        const request = { pool: { url: pool.url, username: pool.username, password: pool.password }, remote: env.remoteDirs.get('a'), job: { ...JOB, name: 'test job', remotes: ['a'], vms: { uuids: [vm.uuid] } }, hangAt }
        const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', childScript, JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'inherit'] })
        const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string]
        assert.equal(line, 'MERGING', 'the child reached the merge')
        child.kill('SIGKILL')
        await once(child, 'exit')
        const third = await newestJobSnapshot(env, vm)
        digests.set(third.uuid, await vmDigests(conn, third))
        const vmFolder = join(env.remoteDirs.get('a')!, 'xo-vm-backups', vm.uuid)
        assert.ok((await filesOf(vmFolder)).some(name => name.endsWith('.merge.json')), 'an interrupted merge is left')

        await write(4)
        const next = await runToEnd(env, theJob)
        assert.equal(next.status, 'success', describeFailure(next))
        const fourth = await newestJobSnapshot(env, vm)
        digests.set(fourth.uuid, await vmDigests(conn, fourth))
        assert.deepEqual((await filesOf(vmFolder)).filter(name => name.endsWith('.merge.json')), [], 'the merge was finished')

        const backups = await listVmBackups(env.remotes.get('a')!, vm.uuid)
        assert.equal(backups.length, 2)
        const sr = conn.all('SR')[0]!
        for (const backup of backups) {
          const restored = await restoreBackup(env.remotes.get('a')!, backup.id, conn, sr.uuid as string)
          const restoredVm = await conn.waitFor(() => conn.byRef(restored.vmRef), { what: 'the restored VM', timeoutMs: 10_000 })
          try {
            assert.deepEqual(await vmDigests(conn, restoredVm), digests.get(backup.vmSnapshot.uuid), `restore of ${backup.id}`)
          } finally {
            await destroyVmAndDisks(conn, restored.vmRef)
          }
        }
      } finally {
        await env.cleanup()
      }
    })
  }
})
