// Backups stopped on purpose or given up: cancel at each phase and while queued, the job timeout, a stalled
// export, VM retries, offline snapshots, a remote the run cannot open. Each run ends settled with a clear status,
// leaves nothing partial visible on the remotes or the pool, and the next run succeeds; a migration block a
// toolstack restart kept in place is lifted. The faults themselves (pool, remotes, processes) are test/faults/'s matrix.
import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, beforeEach, describe, test } from 'node:test'
import { cleanupAfterCrash, startBackupRun } from '../../source/engine/index.ts'
import { DEFAULT_POOL_LIMITS, PoolConnection, TEMPORARY_SNAPSHOT_NAME, type XapiRecord } from '../../source/xapi/index.ts'
import { describeFailure, job, liveDiskUuid, runToEnd, startEngineLab, tasksOf, vmByName, type EngineLab } from './helpers.ts'

const MiB = 1024 * 1024

/** Every file under a folder (relative paths), hidden ones included. */
async function filesUnder(root: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (dir: string, prefix: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) await walk(join(dir, entry.name), `${prefix}${entry.name}/`)
      else out.push(`${prefix}${entry.name}`)
    }
  }
  await walk(root, '')
  return out.sort()
}

/** Files that would make a backup look present or that a failed run must not leave: data, metadata, temp files, locks. */
function backupFiles(files: string[]): string[] {
  return files.filter(f => /\.(vhd|xva|json|tmp)$/.test(f) || f.includes('.lock/'))
}

function snapshotsOf(env: EngineLab, vm: XapiRecord): XapiRecord[] {
  const conn = env.conns[0]!
  return (conn.get('VM', vm.uuid).snapshots as string[]).map(ref => conn.byRef(ref)).filter((s): s is XapiRecord => s !== undefined)
}

function temporarySnapshots(env: EngineLab): XapiRecord[] {
  return env.conns[0]!.all('VM').filter(vm => vm.is_a_snapshot === true && vm.name_label === TEMPORARY_SNAPSHOT_NAME)
}

describe('failures during a delta backup', () => {
  let env: EngineLab
  let vm: XapiRecord
  const theJob = () => job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a'] })
  before(async () => {
    env = await startEngineLab({ remotes: ['a'] })
    vm = vmByName(env.conns[0]!, 'tiny-running')
  })
  after(async () => env.cleanup())
  beforeEach(() => {
    env.lab.control.xapi.faults.clear()
    env.lab.control.setKnobs({ exportPerStreamMiBs: null, snapshotMs: 0 })
  })

  test('nRetriesVmBackupFailures: a VM that fails once is retried within the run, and the run succeeds', async () => {
    env.lab.control.snapshotFailure(1)
    const retried = job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a'], settings: { nRetriesVmBackupFailures: 1 } })
    const tree = await runToEnd(env, retried)
    assert.equal(tree.status, 'success', describeFailure(tree))
    assert.deepEqual(tree.tasks!.map(t => t.status), ['failure', 'success'], 'the failed attempt stays in the log')
    assert.ok(tree.warnings?.some(w => w.message === 'Retry the VM backup due to an error'), 'the run tree warns that the VM backup was retried after an error')
  })

  test('an export that stalls is given up after the stall timeout with XAPI_EXPORT_STALLED', async () => {
    const pool = env.lab.pools[0]!
    const conn = await PoolConnection.connect({ url: pool.url, username: pool.username, password: pool.password }, { stallTimeoutMs: 1500 })
    try {
      await env.lab.control.writeVdi(liveDiskUuid(env, vm), { offset: 12 * MiB, length: 4 * MiB, seed: 23 })
      env.lab.control.addFault({ match: { endpoint: '/export_raw_vdi/' }, action: { type: 'stall', ms: 30_000, afterBytes: 1 * MiB } })
      const started = Date.now()
      const tree = await startBackupRun(theJob(), { ...env.context, pools: new Map([[conn.poolUuid, conn]]) }).done
      assert.equal(tree.status, 'failure')
      assert.ok(tasksOf(tree).some(t => (t.result as { code?: string } | undefined)?.code === 'XAPI_EXPORT_STALLED'), describeFailure(tree))
      assert.ok(Date.now() - started < 25_000, 'given up long before the stall ends')
    } finally {
      env.lab.control.xapi.faults.clear()
      await conn.disconnect()
    }
  })

  for (const phase of ['snapshot', 'transfer'] as const) {
    test(`cancel during the ${phase}: the run is cancelled, nothing is left, the next run succeeds`, async () => {
      const filesBefore = backupFiles(await filesUnder(env.remoteDirs.get('a')!))
      const snapshotsBefore = snapshotsOf(env, vm).map(s => s.uuid).sort()
      env.lab.control.setKnobs(phase === 'snapshot' ? { snapshotMs: 5000 } : { exportPerStreamMiBs: 2 })
      await env.lab.control.writeVdi(liveDiskUuid(env, vm), { offset: 8 * MiB, length: 6 * MiB, seed: 11 })
      const run = startBackupRun(theJob(), env.context)
      await waitForTask(run.log.events, phase)
      await new Promise(resolve => setTimeout(resolve, 300))
      run.cancel('test')
      const tree = await run.done
      assert.equal(tree.status, 'cancelled', describeFailure(tree))
      assert.deepEqual(backupFiles(await filesUnder(env.remoteDirs.get('a')!)), filesBefore)
      // The run's own snapshot is gone (unexported debris of earlier failed runs may be gone too: runs remove it).
      await eventually(() => assert.deepEqual(snapshotsOf(env, vm).map(s => s.uuid).filter(uuid => !snapshotsBefore.includes(uuid)), [], 'the run snapshot is removed'))
      await eventually(() => assert.deepEqual(temporarySnapshots(env).map(s => s.uuid), []))
      env.lab.control.setKnobs({ snapshotMs: 0, exportPerStreamMiBs: null })
      const next = await runToEnd(env, theJob())
      assert.equal(next.status, 'success', describeFailure(next))
    })
  }

  test('offlineSnapshot: the VM is shut down for the snapshot and started again, also when the run is cancelled during it', async () => {
    const conn = env.conns[0]!
    const offline = job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a'], settings: { offlineSnapshot: true } })
    const tree = await runToEnd(env, offline)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const snapshotUuid = tasksOf(tree).find(t => t.message === 'snapshot')!.result as string
    const snapshot = conn.byUuid(snapshotUuid)!
    assert.equal((snapshot.snapshot_info as Record<string, string>)['power-state-at-snapshot'], 'Halted', 'the snapshot was taken with the VM shut down')
    await eventually(() => assert.equal(conn.get('VM', vm.uuid).power_state, 'Running'))

    env.lab.control.setKnobs({ snapshotMs: 4000 })
    const run = startBackupRun(offline, env.context)
    await waitForTask(run.log.events, 'snapshot')
    await eventually(() => assert.equal(conn.get('VM', vm.uuid).power_state, 'Halted'))
    run.cancel()
    const cancelled = await run.done
    env.lab.control.setKnobs({ snapshotMs: 0 })
    assert.equal(cancelled.status, 'cancelled')
    await eventually(() => assert.equal(conn.get('VM', vm.uuid).power_state, 'Running', 'started again after the cancel'))
  })

  test('the job timeout stops the run for real and fails it with TIMEOUT', async () => {
    env.lab.control.setKnobs({ exportPerStreamMiBs: 1 })
    await env.lab.control.writeVdi(liveDiskUuid(env, vm), { offset: 16 * MiB, length: 8 * MiB, seed: 13 })
    const filesBefore = backupFiles(await filesUnder(env.remoteDirs.get('a')!))
    const slow = job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a'], settings: { timeout: 1500 } })
    const tree = await runToEnd(env, slow)
    assert.equal(tree.status, 'failure', describeFailure(tree))
    assert.equal((tree.result as { code: string }).code, 'TIMEOUT')
    assert.deepEqual(backupFiles(await filesUnder(env.remoteDirs.get('a')!)), filesBefore)
    env.lab.control.setKnobs({ exportPerStreamMiBs: null })
  })
})

test('a job timeout longer than node timers allow (25d, 600h) does not stop the run', async () => {
  const env = await startEngineLab({ remotes: ['a'] })
  try {
    const vm = vmByName(env.conns[0]!, 'tiny-running')
    for (const timeout of ['25d', '600h']) {
      const tree = await runToEnd(env, job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a'], settings: { timeout } }))
      assert.equal(tree.status, 'success', `${timeout}: ${describeFailure(tree)}`)
    }
  } finally {
    await env.cleanup()
  }
})

describe('a cancel while queued', () => {
  let env: EngineLab
  before(async () => {
    env = await startEngineLab({ remotes: ['a'] })
  })
  after(async () => env.cleanup())

  test('cancel while VMs wait for a snapshot slot: every VM is cancelled, the queued one never snapshotted', async () => {
    const conn = env.conns[0]!
    conn.limits.configure({ snapshots: 1 })
    env.lab.control.setKnobs({ snapshotMs: 3000 })
    const vms = ['tiny-running', 'tiny-halted'].map(name => vmByName(conn, name))
    const run = startBackupRun(job({ mode: 'delta', vms: { uuids: vms.map(vm => vm.uuid) }, remotes: ['a'], settings: { concurrency: 0 } }), env.context)
    await eventually(() => assert.equal(conn.limits.snapshots.waiting.length, 1))
    run.cancel()
    const tree = await run.done
    env.lab.control.setKnobs({ snapshotMs: 0 })
    conn.limits.configure(DEFAULT_POOL_LIMITS)
    assert.equal(tree.status, 'cancelled')
    assert.deepEqual(tree.tasks!.map(t => t.status), ['cancelled', 'cancelled'])
    assert.equal(conn.limits.snapshots.waiting.length, 0)
    await eventually(() => assert.deepEqual(vms.flatMap(vm => snapshotsOf(env, vm)).map(s => s.uuid), []))
    assert.deepEqual(backupFiles(await filesUnder(env.remoteDirs.get('a')!)), [])
  })
})

describe('a remote the run cannot open', () => {
  let env: EngineLab
  let vm: XapiRecord
  before(async () => {
    env = await startEngineLab({ remotes: ['a', 'b'] })
    vm = vmByName(env.conns[0]!, 'tiny-running')
  })
  after(async () => env.cleanup())

  test('a remote the run cannot open is a failed task of the run: the run fails, the other remote gets the backup', async () => {
    const remotes = new Map([['a', env.remotes.get('a')!]])
    const tree = await startBackupRun(job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a', 'b'] }), { ...env.context, remotes }).done
    assert.equal(tree.status, 'failure', describeFailure(tree))
    assert.deepEqual(tasksOf(tree).filter(t => t.status === 'failure').map(t => t.message), ['backup run', 'get remote adapter'])
    assert.equal((tree.tasks!.find(t => t.message === 'get remote adapter')!.result as { code: string }).code, 'REMOTE_NOT_FOUND')
    assert.equal(tree.tasks!.find(t => t.message === 'backup VM')!.status, 'success')
  })
})

describe('a cancel is recorded cancelled at every level', () => {
  let env: EngineLab
  before(async () => {
    env = await startEngineLab({ remotes: ['a', 'b'] })
  })
  after(async () => env.cleanup())

  for (const mode of ['full', 'delta'] as const) {
    test(`${mode}: the run, the VM in flight, each export and transfer are cancelled (never a raw ABORT_ERR); the queued VM is cancelled under its name`, async () => {
      const conn = env.conns[0]!
      const vms = ['tiny-running', 'tiny-halted'].map(name => vmByName(conn, name))
      env.lab.control.setKnobs({ exportPerStreamMiBs: 2 })
      try {
        const run = startBackupRun(job({ mode, vms: { uuids: vms.map(vm => vm.uuid) }, remotes: ['a', 'b'], settings: { concurrency: 1 } }), env.context)
        await waitForTask(run.log.events, 'transfer')
        await new Promise(resolve => setTimeout(resolve, 300))
        run.cancel()
        const tree = await run.done
        assert.equal(tree.status, 'cancelled', describeFailure(tree))
        assert.deepEqual(tasksOf(tree).filter(t => t.status === 'failure').map(t => t.message), [], describeFailure(tree))
        const exports = tasksOf(tree).filter(t => t.message === 'export' || t.message === 'transfer')
        assert.equal(exports.length, 4, 'an export and a transfer per remote')
        for (const t of exports) assert.deepEqual([t.message, t.status, (t.result as { code?: string }).code], [t.message, 'cancelled', 'CANCELLED'])
        assert.doesNotMatch(JSON.stringify(tree), /ABORT_ERR|The operation was aborted/)
        const vmTasks = tree.tasks!.filter(t => t.message === 'backup VM')
        assert.deepEqual(vmTasks.map(t => [t.data?.name_label, t.status]).sort(), [['tiny-halted', 'cancelled'], ['tiny-running', 'cancelled']])
      } finally {
        env.lab.control.setKnobs({ exportPerStreamMiBs: null })
      }
    })
  }
})

describe('a toolstack restart as the run lifts its migration block', () => {
  let env: EngineLab
  let vm: XapiRecord
  const theJob = () => job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a'] })
  before(async () => {
    env = await startEngineLab({ remotes: ['a'] })
    vm = vmByName(env.conns[0]!, 'tiny-running')
  })
  after(async () => env.cleanup())

  test('a toolstack restart that keeps migration blocked: the next run of the VM, or the crash clean-up, lifts the block', async () => {
    const conn = env.conns[0]!
    const migrationBlocks = async () => {
      await eventually(() => conn.sync(), 30_000) // the toolstack may still be restarting
      const record = conn.get('VM', vm.uuid)
      const blocked = record.blocked_operations as Record<string, string>
      return { pool_migrate: blocked.pool_migrate, migrate_send: blocked.migrate_send, recorded: (record.other_config as Record<string, string>)['lifeboat:blocked_operations'] }
    }
    const none = { pool_migrate: undefined, migrate_send: undefined, recorded: undefined }
    const restartedRun = async () => {
      // Once the run's blocks are set, its next VM.remove_from_blocked_operations is the lift: that call hangs
      // and the toolstack restarts under it (waiting for a task instead raced the lift on a loaded machine).
      const hangs = () => env.lab.control.faultLog().filter(entry => entry.fault === 'hang').length
      const hung = hangs()
      // A slow export start as well: the lift and the restart come whatever the transfer's pace.
      env.lab.control.addFault({ match: { endpoint: '/export_raw_vdi/' }, action: { type: 'stall', ms: 2000 } })
      const run = startBackupRun(theJob(), env.context)
      await eventually(async () => {
        const blocks = await migrationBlocks()
        // With a message: node 20 would build one by parsing this file, and under tsx that can loop forever.
        assert.ok(blocks.pool_migrate !== undefined && blocks.migrate_send !== undefined, 'the run blocked migration')
      })
      env.lab.control.addFault({ match: { method: 'VM.remove_from_blocked_operations' }, action: { type: 'hang' } })
      await eventually(() => assert.ok(hangs() > hung, 'the lift reached the toolstack'), 60_000)
      await env.lab.control.restart(3000)
      const tree = await run.done
      assert.ok(tasksOf(tree).some(t => t.warnings?.some(w => w.message === 'could not restore the blocked operations of the VM')), describeFailure(tree))
      assert.equal((await migrationBlocks()).pool_migrate, 'VM migration is blocked during backup', 'the block outlived the run')
    }
    assert.deepEqual(await migrationBlocks(), none)
    await restartedRun()
    const next = await runToEnd(env, theJob())
    assert.equal(next.status, 'success', describeFailure(next))
    assert.deepEqual(await migrationBlocks(), none, 'lifted by the next run of the VM')

    await restartedRun()
    // A run of this job going on elsewhere (a proxy's, taken up again by a restarted daemon) holds the block: spared.
    const spared = await cleanupAfterCrash(env.context, { spareJobs: new Set([theJob().id!]) })
    assert.ok(!spared.some(line => line.includes(vm.uuid) && /migration/.test(line)), spared.join('\n'))
    assert.equal((await migrationBlocks()).pool_migrate, 'VM migration is blocked during backup', 'the block of a spared job stays')
    const lines = await cleanupAfterCrash(env.context)
    assert.ok(lines.some(line => line.includes(vm.uuid) && /migration/.test(line)), lines.join('\n'))
    assert.deepEqual(await migrationBlocks(), none, 'lifted by the crash clean-up')
  })})

/** Retries an assertion while the pool's event feed catches up (the client's cache lags XAPI by an event batch). */
async function eventually(check: () => void | Promise<void>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await check()
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
}

async function waitForTask(events: Array<{ type: string; properties?: { name: string } }>, name: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (events.some(e => e.type === 'start' && e.properties?.name === name)) return
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  throw new Error(`no task ${name} started`)
}
