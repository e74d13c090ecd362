// Backups that go wrong, against the lab's real faults: an export cut short, a toolstack restart, a
// snapshot failure, the base snapshot deleted by hand, a remote that fills up or disappears mid-run,
// cancel and timeout at each phase. Each run ends settled with a clear status, leaves nothing partial
// visible on the remotes or the pool, and the next run succeeds.
import assert from 'node:assert/strict'
import { mkdir, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, beforeEach, describe, test } from 'node:test'
import { startBackupRun } from '../../source/engine/index.ts'
import { listVmBackups } from '../../source/repository/index.ts'
import { LocalHandler } from '../../source/storage/index.ts'
import { LifeboatError } from '../../source/util/errors.ts'
import { DEFAULT_POOL_LIMITS, PoolConnection, poolLimits, TEMPORARY_SNAPSHOT_NAME, vmDisks, type XapiRecord } from '../../source/xapi/index.ts'
import { describeFailure, job, liveDiskUuid, newestJobSnapshot, restoredDigests, runToEnd, vmDigests, startEngineLab, tasksOf, vmByName, type EngineLab } from './helpers.ts'
import { tempDir } from '../helpers/tools.ts'

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

  test('an export cut short mid-stream fails the run cleanly, leaves nothing visible, and the next run succeeds', async () => {
    const good = await runToEnd(env, theJob())
    assert.equal(good.status, 'success', describeFailure(good))
    const before = backupFiles(await filesUnder(env.remoteDirs.get('a')!))
    await env.lab.control.writeVdi(liveDiskUuid(env, vm), { offset: 2 * MiB, length: 4 * MiB, seed: 7 })
    env.lab.control.exportCut({ afterBytes: 3 * MiB, mode: 'rst' })
    const cut = await runToEnd(env, theJob())
    assert.equal(cut.status, 'failure')
    assert.deepEqual(backupFiles(await filesUnder(env.remoteDirs.get('a')!)), before, 'no new data, metadata, temp file or lock is left')
    await eventually(() => assert.deepEqual(temporarySnapshots(env).map(s => [s.uuid, s.name_label]), []))
    assert.ok(env.lab.control.faultLog().some(entry => JSON.stringify(entry).includes('truncate')), 'the lab cut the export')
    env.lab.control.xapi.faults.clear()
    const next = await runToEnd(env, theJob())
    assert.equal(next.status, 'success', describeFailure(next))
    assert.equal((await listVmBackups(env.remotes.get('a')!, vm.uuid)).length, 2)
  })

  test('a failed snapshot fails the VM with its XAPI code, and the next run succeeds', async () => {
    env.lab.control.snapshotFailure(1)
    const failed = await runToEnd(env, theJob())
    assert.equal(failed.status, 'failure')
    const snapshotTask = tasksOf(failed).find(t => t.message === 'snapshot')!
    assert.equal((snapshotTask.result as { code: string }).code, 'XAPI_SR_BACKEND_FAILURE_82')
    const next = await runToEnd(env, theJob())
    assert.equal(next.status, 'success', describeFailure(next))
  })

  test('nRetriesVmBackupFailures: a VM that fails once is retried within the run, and the run succeeds', async () => {
    env.lab.control.snapshotFailure(1)
    const retried = job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a'], settings: { nRetriesVmBackupFailures: 1 } })
    const tree = await runToEnd(env, retried)
    assert.equal(tree.status, 'success', describeFailure(tree))
    assert.deepEqual(tree.tasks!.map(t => t.status), ['failure', 'success'], 'the failed attempt stays in the log')
    assert.ok(tree.warnings?.some(w => w.message === 'Retry the VM backup due to an error'))
  })

  test('the base snapshot deleted by hand: the next run falls back to a full and says why', async () => {
    const first = await runToEnd(env, theJob())
    assert.equal(first.status, 'success', describeFailure(first))
    const conn = env.conns[0]!
    for (const snapshot of snapshotsOf(env, vm)) {
      for (const vbd of snapshot.VBDs as string[]) {
        const vdi = conn.byRef(vbd)?.VDI as string | undefined
        await conn.call('VM.destroy', snapshot.$ref).catch(() => {})
        if (vdi !== undefined) await conn.call('VDI.destroy', vdi).catch(() => {})
      }
    }
    await conn.waitFor(() => (snapshotsOf(env, vm).length === 0 ? true : undefined), { what: 'the snapshots to go', timeoutMs: 5000 })
    const fallback = await runToEnd(env, theJob())
    assert.equal(fallback.status, 'success', describeFailure(fallback))
    const vmTask = fallback.tasks!.find(t => t.message === 'backup VM')!
    const exportTask = vmTask.tasks!.find(t => t.message === 'export')!
    assert.equal(exportTask.data?.isFull, true)
    assert.ok([...(vmTask.infos ?? []), ...(vmTask.warnings ?? [])].some(entry => /backed up in full: .*(no earlier exported snapshot|no longer exists)/.test(entry.message)), JSON.stringify(vmTask, null, 1))
  })

  test('a toolstack restart during the export fails the run with a coded error, and the next run succeeds', async () => {
    env.lab.control.setKnobs({ exportPerStreamMiBs: 4 })
    const run = startBackupRun(theJob(), env.context)
    await waitForTask(run.log.events, 'transfer')
    await env.lab.control.restart(1500)
    const tree = await run.done
    assert.equal(tree.status, 'failure')
    const failed = tasksOf(tree).find(t => t.status === 'failure' && t.tasks === undefined)!
    assert.match((failed.result as { code: string }).code, /^[A-Z_0-9]+$/, 'a coded error')
    env.lab.control.setKnobs({ exportPerStreamMiBs: null })
    const next = await runToEnd(env, theJob())
    assert.equal(next.status, 'success', describeFailure(next))
    assert.equal(temporarySnapshots(env).length, 0)
    await eventually(() => assert.ok(snapshotsOf(env, vm).every(s => (s.other_config as Record<string, string>)['xo:backup:exported'] === 'true'), 'no unexported snapshot of the failed run is left'))
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

test('a merge the remote has no room for fails the run with REMOTE_FULL naming the space; the backup stays restorable and the next run merges', async () => {
  const env = await startEngineLab({ remotes: ['a'] })
  try {
    const vm = vmByName(env.conns[0]!, 'tiny-running')
    const handler = env.remotes.get('a')!
    const keepOne = job({ mode: 'delta', vms: { uuids: [vm.uuid] }, schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 1 } }] })
    assert.equal((await runToEnd(env, keepOne)).status, 'success')
    await env.lab.control.writeVdi(liveDiskUuid(env, vm), { offset: 28 * MiB, length: 4 * MiB, seed: 21 })
    const { getInfo } = handler
    // The free space the remote reports; the refusal, its message and the repository are real.
    handler.getInfo = async () => ({ size: 64 * MiB, used: 64 * MiB - 4096, available: 4096 })
    const tree = await runToEnd(env, keepOne)
    handler.getInfo = getInfo
    const merge = tasksOf(tree).find(t => t.message === 'merge')
    assert.equal(tree.status, 'failure', describeFailure(tree))
    assert.equal((merge?.result as { code?: string } | undefined)?.code, 'REMOTE_FULL', describeFailure(tree))
    assert.match((merge!.result as { message: string }).message, /^The remote file:\/\/.* is full: merging 1 old backup of .* needs \d+(\.\d)? MiB and 0 MiB are free/)
    const [kept] = await listVmBackups(handler, vm.uuid)
    assert.equal((await listVmBackups(handler, vm.uuid)).length, 1)
    assert.deepEqual(await restoredDigests(env, 'a', kept!), await vmDigests(env.conns[0]!, await newestJobSnapshot(env, vm)))
    const next = await runToEnd(env, keepOne)
    assert.equal(next.status, 'success', describeFailure(next))
    assert.ok(tasksOf(next).some(t => t.message === 'merge' && t.status === 'success'), 'the merge is done by the next run')
  } finally {
    await env.cleanup()
  }
})

describe('a full SR and a cancel while queued', () => {
  let env: EngineLab
  before(async () => {
    env = await startEngineLab({ remotes: ['a'] })
  })
  after(async () => {
    for (const conn of env.conns) poolLimits(conn.poolUuid).configure(DEFAULT_POOL_LIMITS)
    await env.cleanup()
  })

  test('cancel while VMs wait for a snapshot slot: every VM is cancelled, the queued one never snapshotted', async () => {
    const conn = env.conns[0]!
    poolLimits(conn.poolUuid).configure({ snapshots: 1 })
    env.lab.control.setKnobs({ snapshotMs: 3000 })
    const vms = ['tiny-running', 'tiny-halted'].map(name => vmByName(conn, name))
    const run = startBackupRun(job({ mode: 'delta', vms: { uuids: vms.map(vm => vm.uuid) }, remotes: ['a'], settings: { concurrency: 0 } }), env.context)
    await eventually(() => assert.equal(poolLimits(conn.poolUuid).snapshots.waiting.length, 1))
    run.cancel()
    const tree = await run.done
    env.lab.control.setKnobs({ snapshotMs: 0 })
    poolLimits(conn.poolUuid).configure(DEFAULT_POOL_LIMITS)
    assert.equal(tree.status, 'cancelled')
    assert.deepEqual(tree.tasks!.map(t => t.status), ['cancelled', 'cancelled'])
    assert.equal(poolLimits(conn.poolUuid).snapshots.waiting.length, 0)
    await eventually(() => assert.deepEqual(vms.flatMap(vm => snapshotsOf(env, vm)).map(s => s.uuid), []))
    assert.deepEqual(backupFiles(await filesUnder(env.remoteDirs.get('a')!)), [])
  })

  test('an SR that is full fails the snapshot with SR_BACKEND_FAILURE_44 and leaves nothing', async () => {
    const conn = env.conns[0]!
    const vm = vmByName(conn, 'tiny-running')
    const sr = conn.byRef(conn.byRef(vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi.$ref)!.SR as string)!
    await env.lab.control.srFull(sr.uuid as string)
    const tree = await runToEnd(env, job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a'] }))
    assert.equal(tree.status, 'failure')
    const codes = tasksOf(tree).map(t => (t.result as { code?: string } | undefined)?.code)
    assert.ok(codes.includes('XAPI_SR_BACKEND_FAILURE_44'), describeFailure(tree))
    await eventually(() => assert.deepEqual(snapshotsOf(env, vm).map(s => [s.name_label, s.other_config]), []))
    assert.deepEqual(backupFiles(await filesUnder(env.remoteDirs.get('a')!)), [])
  })
})

describe('a remote that fails mid-run while the others finish', () => {
  let env: EngineLab
  let vm: XapiRecord
  const extra: Array<{ cleanup(): Promise<void> }> = []
  before(async () => {
    env = await startEngineLab({ remotes: ['a', 'b'] })
    vm = vmByName(env.conns[0]!, 'tiny-running')
  })
  after(async () => {
    await env.cleanup()
    for (const dir of extra) await dir.cleanup()
  })

  test('a remote that fills up is dropped with REMOTE_FULL, the others get the backup', async () => {
    const dir = await tempDir('lifeboat-remote-full-')
    extra.push(dir)
    const full = new FillsUpAfter(dir.path, 1 * MiB)
    await full.sync()
    const remotes = new Map([...env.remotes, ['full', full]])
    const theJob = job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a', 'full', 'b'] })
    const tree = await startBackupRun(theJob, { ...env.context, remotes }).done
    const exports = tasksOf(tree).filter(t => t.message === 'export')
    assert.deepEqual(exports.map(t => [t.data?.id, t.status]).sort(), [['a', 'success'], ['b', 'success'], ['full', 'failure']])
    assert.equal((exports.find(t => t.data?.id === 'full')!.result as { code: string }).code, 'REMOTE_FULL')
    for (const name of ['a', 'b']) assert.equal((await listVmBackups(env.remotes.get(name)!, vm.uuid)).length, 1)
    assert.deepEqual(backupFiles(await filesUnder(dir.path)).filter(f => !f.endsWith('cache.json.gz')), [], 'nothing partial on the full remote')
  })

  test('a remote whose folder disappears mid-transfer is dropped, the others get the backup', async () => {
    env.lab.control.setKnobs({ exportPerStreamMiBs: 4 })
    await env.lab.control.writeVdi(liveDiskUuid(env, vm), { offset: 20 * MiB, length: 6 * MiB, seed: 17 })
    const theJob = job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a', 'b'] })
    const run = startBackupRun(theJob, env.context)
    await waitForTask(run.log.events, 'transfer')
    await rm(env.remoteDirs.get('b')!, { recursive: true, force: true })
    const tree = await run.done
    env.lab.control.setKnobs({ exportPerStreamMiBs: null })
    const exports = tasksOf(tree).filter(t => t.message === 'export')
    assert.deepEqual(exports.map(t => [t.data?.id, t.status]).sort(), [['a', 'success'], ['b', 'failure']])
    assert.equal((await listVmBackups(env.remotes.get('a')!, vm.uuid)).length, 2)
  })

  test('a remote missing at the start of the run is a failed export: the VM and the run fail, the other remote gets the backup', async () => {
    const gone = env.remoteDirs.get('b')!
    await rm(gone, { recursive: true, force: true })
    try {
      for (const mode of ['full', 'delta'] as const) {
        const before = (await listVmBackups(env.remotes.get('a')!, vm.uuid)).map(b => b.id)
        const tree = await startBackupRun(job({ mode, vms: { uuids: [vm.uuid] }, remotes: ['a', 'b'] }), env.context).done
        assert.equal(tree.status, 'failure', describeFailure(tree))
        const vmTask = tree.tasks!.find(t => t.message === 'backup VM')!
        assert.equal(vmTask.status, 'failure')
        const exports = vmTask.tasks!.filter(t => t.message === 'export')
        assert.deepEqual(exports.map(t => [t.data?.id, t.status]).sort(), [['a', 'success'], ['b', 'failure']])
        assert.equal((exports.find(t => t.data?.id === 'b')!.result as { code: string }).code, 'REMOTE_UNAVAILABLE')
        assert.equal((await listVmBackups(env.remotes.get('a')!, vm.uuid)).filter(b => !before.includes(b.id)).length, 1, 'a new backup on the remote that is there')
      }
    } finally {
      await mkdir(gone, { recursive: true })
    }
  })

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

/** Retries an assertion while the pool's event feed catches up (the client's cache lags XAPI by an event batch). */
async function eventually(check: () => void, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return check()
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

/** A local remote whose file system fills up after `limit` bytes of data (what ENOSPC on a real disk gives). */
class FillsUpAfter extends LocalHandler {
  #written = 0
  constructor(root: string, readonly limit: number) {
    super(root)
  }

  override outputStream(path: string, source: AsyncIterable<Buffer | Uint8Array>, options?: Parameters<LocalHandler['outputStream']>[2]): Promise<number> {
    const self = this
    return super.outputStream(path, (async function* () {
      for await (const chunk of source) {
        self.#written += chunk.length
        if (self.#written > self.limit) throw new LifeboatError('REMOTE_FULL', 'The remote is full; free space or add a larger remote.')
        yield chunk
      }
    })(), options)
  }
}
