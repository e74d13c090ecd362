// The fault matrix (issue 11 and the seed's resilience list): each row injects one fault into a delta (or full) job
// of the tiny lab and says how that run must end; runFaultRow then checks that the next run succeeds, that no
// interrupted merge, temporary file, unexported snapshot or migration block is left, and that EVERY restore point
// listed on every remote restores to the bytes its snapshot had. One table, one harness (bench.ts); two test files run its halves on the two cores.
import assert from 'node:assert/strict'
import { mkdir, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { LocalHandler, type RandomAccessFile } from '../../source/storage/index.ts'
import { LifeboatError } from '../../source/util/errors.ts'
import { vmDisks, TEMPORARY_SNAPSHOT_NAME } from '../../source/xapi/index.ts'
import { LIFEBOAT } from '../daemon/helpers.ts'
import { tasksOf } from '../engine/helpers.ts'
import { Bench, MiB, untilStep, type BenchOptions, type RunOutcome } from './bench.ts'

export interface FaultRow {
  fault: string
  bench?: BenchOptions
  /** Successful runs before the fault: a chain to extend, and with retention 2 a merge for the next run. */
  runsBefore?: number
  /** The run with the fault (or the fault between runs, then a run); its outcome. */
  inject(bench: Bench): Promise<RunOutcome>
  /**
   * How the faulty run must end: its status, a code among its failed tasks', a warning among its tasks', and per
   * remote the status of its export (a target that fails is dropped, the others finish).
   */
  expected: { status: string; code?: string; warning?: RegExp; exports?: Record<string, string> }
  /** Remotes the faulty run must leave as they were: no new data, metadata, temporary file or lock. */
  unchanged?: string[]
  /** Puts the world back (the remote emptied, the SR enlarged…) before the next run, when the fault outlives its run. */
  repair?(bench: Bench): Promise<void>
  /** Further checks after the next run (its outcome given). */
  after?(bench: Bench, next: RunOutcome): Promise<void>
}

/** Exports slow enough for a fault to land mid-transfer (4 MiB written before each run, at 4 MiB/s). */
async function midTransfer(bench: Bench, fault: () => Promise<void>): Promise<RunOutcome> {
  bench.control.setKnobs({ exportPerStreamMiBs: 4 })
  try {
    const run = bench.start()
    await untilStep(run, 'transfer')
    await fault()
    const outcome = await run.done
    await bench.record()
    return outcome
  } finally {
    bench.control.setKnobs({ exportPerStreamMiBs: null })
  }
}

/** A local remote whose file system fills up after `limit` bytes of data (what ENOSPC on a real disk gives). */
class FillsUpAfter extends LocalHandler {
  #written = 0
  constructor(root: string, public limit: number) {
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

/** A local remote whose disk writes fail with an I/O error from the Nth on (a merge writes blocks into the VHDs it keeps). */
class WritesFailFrom extends LocalHandler {
  #writes = 0
  constructor(root: string, public failFrom: number) {
    super(root)
  }

  override async openFile(path: string, mode: 'r' | 'r+'): Promise<RandomAccessFile> {
    const file = await super.openFile(path, mode)
    const write = file.write.bind(file)
    file.write = (buffer, position) => (++this.#writes >= this.failFrom
      ? Promise.reject(Object.assign(new Error(`EIO: i/o error, write '${path}'`), { code: 'EIO' }))
      : write(buffer, position))
    return file
  }
}

function srOf(bench: Bench) {
  return bench.conn.byRef(vmDisks(bench.conn, bench.conn.get('VM', bench.vm.uuid as string))[0]!.vdi.SR as string)!
}

/** Faults of the pool and of the remotes, with the engine in this process. */
export const POOL_AND_REMOTE_FAULTS: FaultRow[] = [
  {
    fault: 'network loss (the export cut by a TCP reset mid-stream)',
    inject: async bench => {
      bench.control.exportCut({ afterBytes: 3 * MiB, mode: 'rst' })
      const outcome = await bench.run()
      assert.ok(bench.control.faultLog().some(entry => entry.fault === 'truncate'), 'the lab cut the export')
      return outcome
    },
    expected: { status: 'failure' },
    unchanged: ['a'],
  },
  {
    fault: 'toolstack restart during the transfer',
    inject: bench => midTransfer(bench, () => bench.control.restart(1500)),
    expected: { status: 'failure' },
    unchanged: ['a'],
  },
  {
    fault: 'host reboot during the transfer (the VM comes back halted)',
    inject: bench => midTransfer(bench, () => bench.control.restart(1500, { reboot: true })),
    expected: { status: 'failure' },
    unchanged: ['a'],
  },
  {
    fault: 'the base snapshot removed by hand (the next delta falls back to a full)',
    inject: async bench => {
      const conn = bench.conn
      for (const ref of conn.get('VM', bench.vm.uuid as string).snapshots as string[]) {
        const snapshot = conn.byRef(ref)
        const vdis = ((snapshot?.VBDs ?? []) as string[]).map(vbd => conn.byRef(vbd)?.VDI as string | undefined)
        await conn.call('VM.destroy', ref).catch(() => {})
        for (const vdi of vdis) if (vdi !== undefined) await conn.call('VDI.destroy', vdi).catch(() => {})
      }
      const outcome = await bench.run()
      const vmTask = outcome.tree!.tasks!.find(t => t.message === 'backup VM')!
      assert.equal(vmTask.tasks!.find(t => t.message === 'export')!.data?.isFull, true, 'backed up in full')
      assert.ok([...(vmTask.infos ?? []), ...(vmTask.warnings ?? [])].some(entry => /backed up in full: .*(no earlier exported snapshot|no longer exists)/.test(entry.message)),
        'the log says why')
      return outcome
    },
    expected: { status: 'success' },
  },
  {
    fault: 'SR full (the snapshot fails)',
    inject: bench => bench.control.srFull(srOf(bench).uuid as string).then(() => bench.run()),
    expected: { status: 'failure', code: 'XAPI_SR_BACKEND_FAILURE_44' },
    unchanged: ['a'],
    repair: async bench => {
      const sr = srOf(bench)
      await bench.control.xapi.store.addSr({ uuid: sr.uuid as string, physicalSize: 64 * 1024 * MiB, thick: false })
    },
  },
  {
    fault: 'remote full (one of two remotes fills up mid-transfer; the other gets the backup)',
    bench: { remotes: ['a', 'b'] },
    inject: async bench => {
      const full = new FillsUpAfter(bench.env.remoteDirs.get('b')!, 1 * MiB)
      bench.env.remotes.set('b', full)
      await bench.write(20)
      return bench.run()
    },
    expected: { status: 'failure', code: 'REMOTE_FULL', exports: { a: 'success', b: 'failure' } },
    unchanged: ['b'],
    repair: async bench => void ((bench.env.remotes.get('b') as FillsUpAfter).limit = Infinity),
  },
  {
    fault: 'remote gone mid-run (its folder deleted during the transfer)',
    bench: { remotes: ['a', 'b'] },
    inject: bench => midTransfer(bench, () => rm(bench.env.remoteDirs.get('b')!, { recursive: true, force: true })),
    expected: { status: 'failure', exports: { a: 'success', b: 'failure' } },
    repair: bench => mkdir(bench.env.remoteDirs.get('b')!, { recursive: true }).then(() => {}),
  },
  ...(['delta', 'full'] as const).map((mode): FaultRow => ({
    fault: `remote missing at the start of a ${mode} run (a failed export: the VM and the run fail, the other remote gets the backup)`,
    bench: { remotes: ['a', 'b'], mode },
    inject: bench => rm(bench.env.remoteDirs.get('b')!, { recursive: true, force: true }).then(() => bench.run()),
    expected: { status: 'failure', code: 'REMOTE_UNAVAILABLE', exports: { a: 'success', b: 'failure' } },
    repair: bench => mkdir(bench.env.remoteDirs.get('b')!, { recursive: true }).then(() => {}),
  })),
  {
    fault: 'snapshot failure (SR_BACKEND_FAILURE_82, as SM gives when it cannot pause a disk)',
    inject: bench => { bench.control.snapshotFailure(1); return bench.run() },
    expected: { status: 'failure', code: 'XAPI_SR_BACKEND_FAILURE_82' },
    unchanged: ['a'],
  },
  {
    fault: 'merge failure (an I/O error half-way through the merge retention starts)',
    bench: { retention: 2 },
    runsBefore: 2,
    inject: async bench => {
      bench.env.remotes.set('a', new WritesFailFrom(bench.env.remoteDirs.get('a')!, 2))
      return bench.run()
    },
    // The backup is made, the failed merge fails the run, and the chain stays readable for the next run to merge.
    expected: { status: 'failure', code: 'EIO' },
    repair: async bench => void ((bench.env.remotes.get('a') as WritesFailFrom).failFrom = Infinity),
  },
  {
    fault: 'merge on a full remote (refused before it writes, with REMOTE_FULL naming the space it needs)',
    bench: { retention: 2 },
    runsBefore: 2,
    inject: async bench => {
      const handler = bench.env.remotes.get('a')!
      // The free space the remote reports; the refusal, its message and the repository are real.
      handler.getInfo = async () => ({ size: 64 * MiB, used: 64 * MiB - 4096, available: 4096 })
      const outcome = await bench.run()
      const merge = tasksOf(outcome.tree!).find(t => t.message === 'merge')
      assert.match((merge?.result as { message?: string } | undefined)?.message ?? '', /^The remote file:\/\/.* is full: merging 1 old backup of .* needs \d+(\.\d)? MiB and 0 MiB are free/)
      return outcome
    },
    expected: { status: 'failure', code: 'REMOTE_FULL' },
    repair: async bench => void (bench.env.remotes.get('a')!.getInfo = LocalHandler.prototype.getInfo),
    after: async (_bench, next) => assert.ok(tasksOf(next.tree!).some(t => t.message === 'merge' && t.status === 'success'), 'the merge is done by the next run'),
  },
  {
    fault: 'session invalidated while the export streams (the client logs in again)',
    inject: bench => midTransfer(bench, async () => {
      // Once the pool serves the export: a session lost before the GET is another case (the GET is refused).
      while (bench.control.xapi.activity.current.vdiExport === 0) await new Promise(resolve => setTimeout(resolve, 10))
      bench.control.invalidateSessions()
    }),
    expected: { status: 'success' },
  },
  {
    fault: 'VDI_IN_USE (the old snapshot\'s disk still attached to dom0 when retention destroys it)',
    inject: async bench => {
      const conn = bench.conn
      const old = conn.get('VM', bench.vm.uuid as string).snapshots as string[]
      for (const ref of old) for (const { vdi } of vmDisks(conn, conn.byRef(ref)!)) bench.control.vdiInUse(vdi.uuid as string, 3000)
      const outcome = await bench.run()
      await conn.sync()
      assert.deepEqual((conn.get('VM', bench.vm.uuid as string).snapshots as string[]).filter(ref => old.includes(ref)), [], 'the old snapshot was destroyed after the retries')
      return outcome
    },
    expected: { status: 'success' },
  },
]

/** Faults of the processes: the daemon restarted, killed or doubled; an engine killed at a chosen step. */
export const PROCESS_FAULTS: FaultRow[] = [
  {
    fault: 'kill -9 during the transfer (the daemon; restarted, the run is interrupted and cleaned up)',
    bench: { daemon: true },
    inject: bench => midTransfer(bench, async () => {
      assert.equal(await bench.stopDaemon('SIGKILL'), 'SIGKILL')
      await bench.startDaemon()
    }),
    expected: { status: 'interrupted' },
    after: async bench => {
      assert.match(bench.daemonProcess.log(), /marked interrupted/)
      assert.deepEqual(bench.conn.all('VM').filter(vm => vm.name_label === TEMPORARY_SNAPSHOT_NAME).map(vm => vm.uuid), [])
    },
  },
  {
    fault: 'daemon restart (SIGTERM) during the transfer: the run is cancelled',
    bench: { daemon: true },
    inject: bench => midTransfer(bench, async () => {
      assert.equal(await bench.stopDaemon('SIGTERM'), 0)
      await bench.startDaemon()
    }),
    expected: { status: 'cancelled' },
  },
  {
    fault: 'two daemons on one data directory (the second refuses to start, the first runs on)',
    bench: { daemon: true },
    inject: async bench => {
      const second = spawn(process.execPath, [LIFEBOAT, 'daemon', '--data', bench.daemonDir, '--socket', join(bench.daemonDir, 'second.sock')], { stdio: ['ignore', 'ignore', 'pipe'] })
      let stderr = ''
      second.stderr.on('data', (data: Buffer) => (stderr += data.toString()))
      const code = await new Promise(resolve => second.on('exit', resolve))
      assert.equal(code, 1)
      assert.match(stderr, /DAEMON_ALREADY_RUNNING/)
      return bench.run()
    },
    expected: { status: 'success' },
  },
  ...[1, 2].map((write): FaultRow => ({
    fault: `kill -9 during the merge (at merge-state write #${write}; the next run resumes it)`,
    bench: { retention: 2 },
    runsBefore: 2,
    inject: async bench => {
      const outcome = await bench.runKilledAt({ mergeStateWrite: write })
      assert.ok((await leftovers(bench.env.remoteDirs.get('a')!)).some(path => path.endsWith('.merge.json')), 'an interrupted merge is left')
      return outcome
    },
    expected: { status: 'killed' },
  })),
  {
    fault: 'kill -9 during the clean-up (retention deleting the oldest full backup)',
    bench: { mode: 'full', retention: 2 },
    runsBefore: 2,
    inject: bench => bench.runKilledAt({ removal: 1 }),
    expected: { status: 'killed' },
  },
]

/** Files that would make a backup look present, or that a failed run must not leave: data, metadata, temporary files, locks. */
async function backupFiles(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true }).catch(() => [])).filter(path => /\.(vhd|xva|json|tmp)$/.test(path) || path.includes('.lock/')).sort()
}

/** Files a finished run must not leave on a remote: interrupted merge states and temporary files. */
async function leftovers(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true })).filter(path => /\.merge\.json$|\.tmp$/.test(path))
}

export async function runFaultRow(row: FaultRow): Promise<void> {
  const bench = await Bench.open(row.bench)
  try {
    let seed = 1
    for (let i = 0; i < (row.runsBefore ?? 1); i++) {
      await bench.write(seed++)
      await bench.runOk(`run ${i + 1} before the fault`)
    }
    await bench.write(seed++)
    const before = new Map(await Promise.all((row.unchanged ?? []).map(async name => [name, await backupFiles(bench.env.remoteDirs.get(name)!)] as const)))
    const outcome = await row.inject(bench)
    assert.equal(outcome.status, row.expected.status, `the faulty run: ${JSON.stringify(outcome.codes)}`)
    if (row.expected.code !== undefined) assert.ok(outcome.codes.includes(row.expected.code), `the faulty run's codes ${JSON.stringify(outcome.codes)} include ${row.expected.code}`)
    if (row.expected.warning !== undefined) assert.ok(outcome.warnings.some(warning => row.expected.warning!.test(warning)), `the faulty run's warnings ${JSON.stringify(outcome.warnings)}`)
    for (const code of outcome.codes) assert.notEqual(code, 'UNKNOWN', 'every failure is coded')
    if (row.expected.exports !== undefined) {
      const exports = Object.fromEntries(tasksOf(outcome.tree!).filter(t => t.message === 'export').map(t => [t.data?.id, t.status]))
      assert.deepEqual(exports, row.expected.exports, 'each remote\'s export')
    }
    for (const [name, files] of before) assert.deepEqual(await backupFiles(bench.env.remoteDirs.get(name)!), files, `the faulty run left ${name} as it was`)
    bench.control.xapi.faults.clear()
    await row.repair?.(bench)
    await bench.write(seed++)
    const next = await bench.runOk('the run after the fault')
    await row.after?.(bench, next)
    await bench.conn.sync()
    const snapshots = bench.conn.all('VM').filter(vm => vm.is_a_snapshot === true && vm.snapshot_of === bench.conn.get('VM', bench.vm.uuid as string).$ref)
    assert.deepEqual(snapshots.filter(vm => vm.name_label === TEMPORARY_SNAPSHOT_NAME || (vm.other_config as Record<string, string>)['xo:backup:exported'] !== 'true').map(vm => vm.name_label), [],
      'no temporary or unexported snapshot is left')
    const blocked = Object.keys(bench.conn.get('VM', bench.vm.uuid as string).blocked_operations as Record<string, string>)
    assert.deepEqual(blocked.filter(operation => operation === 'pool_migrate' || operation === 'migrate_send'), [], 'the migrations the runs blocked are unblocked')
    for (const name of bench.options.remotes) assert.deepEqual(await leftovers(bench.env.remoteDirs.get(name)!), [], `nothing interrupted is left on ${name}`)
    const restored = await bench.verifyEveryPoint()
    assert.ok(restored >= 2, `restore points were listed and compared (${restored})`)
  } finally {
    await bench.close()
  }
}
