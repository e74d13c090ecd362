// One VM's backup within a run (XO's _AbstractXapi.run): lock the targets, block migration, snapshot
// (offline or with memory when asked), export once and feed every target in lock-step, commit on each,
// mark the snapshot exported, then retention on the targets and on the source. Whatever happens, the
// VM is started again if it was shut down for the snapshot, and nothing half-written stays visible.
import type { Readable } from 'node:stream'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import { abortReason, throwIfAborted, withTimeout } from '../../util/abort.ts'
import type { RemoteHandler } from '../../storage/index.ts'
import type { Task, TaskData } from '../../tasks/index.ts'
import { openVhdStream, vhdStreamLength } from '../../formats/vhd/index.ts'
import { formatOtherConfigDate, METADATA_VERSION } from '../../repository/index.ts'
import {
  blockOperations, destroyVmAndDisks, exportVdiVhd, exportVmXva, NULL_REF, removeOtherConfigKeys, setOtherConfigKey, snapshotVm, vmDisks,
  type ExportStream, type PoolConnection, type SlotHolder, type XapiRecord,
} from '../../xapi/index.ts'
import { resolveSettings, type Job, type Schedule, type Settings } from '../jobs/index.ts'
import { RemoteWriter, type DiskExport, type MetadataWithoutFiles, type ProgressReporter } from '../targets/remote-writer.ts'
import { forkAsyncIterable } from './fanout.ts'
import type { RateLimit } from './rate-limit.ts'
import { KEY, removeOldSnapshots, removeUnexportedSnapshots, selectBase } from './snapshots.ts'

/** A snapshot that takes longer is given up (XAPI's own snapshot can hang on a sick SR). */
const SNAPSHOT_TIMEOUT_MS = 15 * 60_000

export interface VmBackupContext {
  conn: PoolConnection
  job: Job & { id: string }
  schedule: Schedule & { id: string }
  runId: string
  remotes: ReadonlyMap<string, RemoteHandler>
  signal: AbortSignal
}

export async function backupVm(context: VmBackupContext, vmUuid: string, runTask: Task, rate?: RateLimit): Promise<void> {
  const task = runTask.child('backup VM', vmTaskData(context.conn.get('VM', vmUuid)))
  await task.run(async () => {
    // Snapshots are judged on their other_config: the cache must show what the last run wrote.
    await context.conn.sync(context.signal)
    await new VmBackup(context, context.conn.get('VM', vmUuid), task, rate).run()
  }, { signal: context.signal })
}

/** A `backup VM` task's data (XO's): the VM's name is there from the start, also for a VM cancelled before its turn. */
export function vmTaskData(vm: XapiRecord): TaskData {
  return { type: 'VM', id: vm.uuid, name_label: vm.name_label }
}

class VmBackup {
  readonly settings: Settings
  readonly writers: RemoteWriter[] = []
  readonly holder: SlotHolder
  snapshotRef: string | undefined
  exported = false

  constructor(
    readonly context: VmBackupContext,
    readonly vm: XapiRecord,
    readonly task: Task,
    readonly rate: RateLimit | undefined,
  ) {
    const { job, schedule } = context
    this.settings = resolveSettings(job, schedule, { vmUuid: vm.uuid })
    this.holder = { runId: context.runId, jobId: job.id, vm: vm.uuid, vmName: String(vm.name_label), phase: 'snapshot' }
  }

  get conn(): PoolConnection {
    return this.context.conn
  }

  get signal(): AbortSignal {
    return this.context.signal
  }

  get mode(): 'full' | 'delta' {
    return this.context.job.mode
  }

  async run(): Promise<void> {
    this.#createWriters()
    const disks = vmDisks(this.conn, this.vm)
    if (disks.length === 0) throw new LifeboatError('NO_DISKS', 'no disks found')
    await this.#forEachWriter('prepare', writer => writer.prepare(this.mode, this.task, this.signal))
    const restoreOperations = await blockOperations(this.conn, this.vm, { pool_migrate: 'VM migration is blocked during backup', migrate_send: 'VM migration is blocked during backup' })
    try {
      await this.#backup(disks.map(d => d.vdi))
      for (const writer of this.writers.filter(w => w.alive)) {
        const exportTask = this.#exportTasks.get(writer)!
        await writer.finish(this.mode, exportTask).then(() => exportTask.end(), error => this.#drop(writer, error))
      }
    } catch (error) {
      const reason = this.#reason(error)
      for (const { task } of this.#transfers.values()) if (!task.ended) task.fail(reason)
      for (const task of this.#exportTasks.values()) if (!task.ended) task.fail(reason)
      for (const writer of this.writers) await writer.discard()
      if (this.snapshotRef !== undefined && !this.exported) await this.#destroySnapshot(this.snapshotRef)
      throw error
    } finally {
      for (const writer of this.writers) await writer.release().catch(() => {})
      await restoreOperations().catch(error => this.task.warning('could not restore the blocked operations of the VM', { error: String(error) }))
    }
    await this.conn.sync(this.signal)
    const destroyed = await removeOldSnapshots(this.conn, this.conn.get('VM', this.vm.uuid), { jobId: this.context.job.id, scheduleId: this.context.schedule.id, keep: this.settings.snapshotRetention, mode: this.mode, signal: this.signal })
    if (destroyed.length > 0) this.task.info('old snapshots removed', { snapshots: destroyed })
    if (this.writers.every(w => !w.alive)) throw allTargetsFailed(this.writers)
  }

  /** The run's own snapshot after a failure; the pool may be restarting, so a few tries before leaving it to the next run. */
  async #destroySnapshot(ref: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await destroyVmAndDisks(this.conn, ref)
      } catch (error) {
        if (attempt >= 3) {
          this.task.warning('the snapshot of this run could not be removed; the next run of the job removes it', { error: errorCode(error) })
          return
        }
        await new Promise(resolve => setTimeout(resolve, 2000))
      }
    }
  }

  #createWriters(): void {
    const { job, schedule, remotes } = this.context
    for (const name of job.remotes) {
      const handler = remotes.get(name)
      if (handler === undefined) continue
      const settings = resolveSettings(job, schedule, { vmUuid: this.vm.uuid, target: { remote: name } })
      if (settings.exportRetention === 0) {
        this.task.warning(`nothing is written to remote ${name}: the schedule "${schedule.name}" keeps 0 backups there (set retention.backups)`)
        continue
      }
      this.writers.push(new RemoteWriter(name, handler, settings, this.vm.uuid, job.id, schedule.id, schedule.timezone))
    }
    if (this.writers.length === 0) {
      throw new LifeboatError('NO_TARGET', `The VM has no target in this run: none of the job's remotes (${job.remotes.join(', ') || 'none'}) is available with a retention above 0. Check the remotes and the schedule's retention.`)
    }
  }

  readonly #exportTasks = new Map<RemoteWriter, Task>()
  readonly #transfers = new Map<RemoteWriter, { task: Task; size: number }>()

  /** Why a step failed: once the run is cancelled (or timed out), that, whatever broke on the way out. */
  #reason(error: unknown): unknown {
    return this.signal.aborted ? abortReason(this.signal) : error
  }

  /** A writer that fails is dropped, and its failure is its `export` task's, even before that task would have started (a remote gone before the run). */
  #drop(writer: RemoteWriter, error: unknown): void {
    if (!writer.alive) return
    writer.failed = error
    const exportTask = this.#exportTasks.get(writer) ?? this.#startExport(writer)
    if (!exportTask.ended) exportTask.fail(this.#reason(error))
  }

  /** Runs one step on every live writer; a writer that fails is dropped; all failing fails the VM. */
  async #forEachWriter(step: string, body: (writer: RemoteWriter) => Promise<unknown>): Promise<void> {
    await Promise.all(this.writers.filter(w => w.alive).map(writer => body(writer).catch(error => this.#drop(writer, error))))
    if (this.writers.every(w => !w.alive)) throw allTargetsFailed(this.writers, step)
  }

  async #backup(liveDisks: XapiRecord[]): Promise<void> {
    const { conn, vm } = this
    await removeOtherConfigKeys(conn, 'VM', vm.$ref, Object.values(KEY).filter(key => key in ((vm.other_config as object) ?? {})))
    const debris = await removeUnexportedSnapshots(conn, vm, this.context.job.id, this.signal)
    if (debris.length > 0) this.task.info('unfinished snapshots of earlier runs removed', { snapshots: debris })
    const base = this.mode === 'delta' ? await this.#selectBases(liveDisks) : undefined

    let restart = false
    if (this.settings.offlineSnapshot && vm.power_state === 'Running') {
      await conn.callAsync(this.signal, 'VM.clean_shutdown', vm.$ref)
      restart = true
    }
    const timestamp = Date.now()
    try {
      await this.task.child('snapshot').run(async () => {
        const bound = withTimeout(this.signal, SNAPSHOT_TIMEOUT_MS, 'the snapshot')
        try {
          const result = await snapshotVm(conn, vm, {
            name: `[XO Backup ${this.context.job.name}] ${vm.name_label}`,
            checkpoint: this.settings.checkpointSnapshot,
            otherConfig: { [KEY.datetime]: formatOtherConfigDate(timestamp), [KEY.job]: this.context.job.id, [KEY.schedule]: this.context.schedule.id, [KEY.vm]: vm.uuid },
            holder: this.holder,
            signal: bound.signal,
          })
          this.snapshotRef = result.ref
          if (result.fallback !== undefined) this.task.warning(result.fallback)
        } finally {
          bound.dispose()
        }
        return conn.byRef(this.snapshotRef!)?.uuid ?? (await conn.call('VM.get_uuid', this.snapshotRef))
      })
    } finally {
      if (restart) await conn.callAsync(undefined, 'VM.start', vm.$ref, false, false).catch(error => this.task.warning('the VM was shut down for the snapshot and could not be started again', { error: errorCode(error) }))
    }
    const snapshot = await conn.waitFor(() => conn.byRef(this.snapshotRef!), { signal: this.signal, timeoutMs: 60_000, what: 'the snapshot record' })

    if (this.mode === 'full') await this.#transferFull(snapshot, timestamp)
    else await this.#transferDelta(snapshot, liveDisks, base!, timestamp)

    const chainLength = base === undefined || base.bases.size < liveDisks.length ? 0 : base.deltaChainLength + 1
    const marks: Record<string, string> = { [KEY.exported]: 'true', [KEY.deltaChainLength]: String(chainLength) }
    for (const [key, value] of Object.entries(marks)) {
      await setOtherConfigKey(conn, 'VM', snapshot.$ref, key, value)
      for (const vdi of this.#snapshotDisks(snapshot)) await setOtherConfigKey(conn, 'VDI', vdi.$ref, key, value)
    }
    this.exported = true
  }

  /** The bases each disk can use on every target (XO's intersection), and why the others go full. */
  async #selectBases(liveDisks: XapiRecord[]): Promise<{ bases: Map<string, XapiRecord>; deltaChainLength: number }> {
    const selection = selectBase(this.conn, this.vm, liveDisks, this.context.job.id)
    const bases = selection.bases
    const reasons = new Map(selection.fullReasons)
    const forceFull = this.settings.forceFull
      ? 'a full backup was asked (forceFull)'
      : this.settings.fullInterval !== 0 && selection.snapshot !== undefined && this.settings.fullInterval <= selection.snapshot.deltaChainLength + 1
        ? `the chain reached fullInterval (${this.settings.fullInterval} backups)`
        : undefined
    if (bases.size > 0) {
      await this.#forEachWriter('checkBases', async writer => {
        const refused = await writer.checkBases(new Map([...bases].map(([live, vdi]) => [live, vdi.uuid as string])))
        for (const [live, reason] of refused) {
          bases.delete(live)
          reasons.set(live, reason)
        }
      })
    }
    if (forceFull !== undefined) {
      for (const live of bases.keys()) reasons.set(live, forceFull)
      bases.clear()
    }
    for (const disk of liveDisks) {
      const reason = reasons.get(disk.uuid)
      if (reason === undefined) continue
      const message = `disk ${disk.name_label} (${disk.uuid}) is backed up in full: ${reason}`
      if (selection.snapshot !== undefined && forceFull === undefined) this.task.warning(message)
      else this.task.info(message)
    }
    return { bases, deltaChainLength: selection.snapshot?.deltaChainLength ?? 0 }
  }

  #snapshotDisks(snapshot: XapiRecord): XapiRecord[] {
    return vmDisks(this.conn, snapshot).map(d => d.vdi)
  }

  /** One export task per live writer, each with its transfer task. */
  #startExports(isFull: boolean): void {
    for (const writer of this.writers.filter(w => w.alive)) this.#transfers.set(writer, { task: this.#startExport(writer, isFull).child('transfer'), size: 0 })
  }

  #startExport(writer: RemoteWriter, isFull?: boolean): Task {
    const exportTask = this.task.child('export', { type: 'remote', id: writer.name, name_label: writer.handler.label, ...(isFull !== undefined && { isFull }) })
    this.#exportTasks.set(writer, exportTask)
    return exportTask
  }

  async #transferFull(snapshot: XapiRecord, timestamp: number): Promise<void> {
    this.#startExports(true)
    const compression = this.settings.compression === 'none' ? undefined : this.settings.compression
    const expectedSize = this.#snapshotDisks(snapshot).reduce((sum, vdi) => sum + Number(vdi.virtual_size), 0)
    const source = await exportVmXva(this.conn, snapshot.$ref, { holder: { ...this.holder, phase: 'export' }, signal: this.signal, compression, expectedSize })
    await this.#feed(source, source.stream, (writer, fork, report) => writer.writeXva(fork, timestamp, report, this.signal))
    await this.#commitAll({ version: METADATA_VERSION, mode: 'full', jobId: this.context.job.id, scheduleId: this.context.schedule.id, vm: plainRecord(this.vm), vmSnapshot: plainRecord(snapshot) })
  }

  async #transferDelta(snapshot: XapiRecord, liveDisks: XapiRecord[], base: { bases: Map<string, XapiRecord> }, timestamp: number): Promise<void> {
    const isFull = base.bases.size < liveDisks.length
    this.#startExports(isFull)
    const snapshotDisks = this.#snapshotDisks(snapshot)
    const vdis: Record<string, Record<string, unknown>> = {}
    await Promise.all(
      snapshotDisks.map(async vdi => {
        const live = liveDisks.find(d => d.$ref === vdi.snapshot_of)
        if (live === undefined) throw new LifeboatError('SNAPSHOT_DISK_UNKNOWN', `The snapshot disk ${vdi.uuid} is not a snapshot of a disk of the VM; the VM changed during the backup. Run the backup again.`)
        const baseVdi = base.bases.get(live.uuid)
        const holder = { ...this.holder, phase: 'export', disk: String(live.name_label) }
        const source = await exportVdiVhd(this.conn, vdi.$ref, { holder, signal: this.signal, baseRef: baseVdi?.$ref, expectedSize: Number(vdi.virtual_size) })
        const reader = await openVhdStream(source.stream)
        source.setExpectedSize(vhdStreamLength(reader.footer.currentSize, reader.blockIndexes.length, { tableOffset: reader.header.tableOffset }))
        const disk: DiskExport = {
          liveVdiUuid: live.uuid, snapshotVdiUuid: vdi.uuid, snapshotVdiRef: vdi.$ref,
          footer: reader.footer, header: reader.header, blockIndexes: reader.blockIndexes, baseUuid: baseVdi?.uuid,
        }
        const sr = this.conn.byRef(vdi.SR as string)
        vdis[vdi.$ref] = {
          ...plainRecord(vdi),
          $snapshot_of$uuid: live.uuid,
          $SR$uuid: sr?.uuid,
          other_config: { ...(vdi.other_config as Record<string, string>), ...(baseVdi !== undefined && { [KEY.baseDeltaVdi]: baseVdi.uuid }) },
        }
        await this.#feed(source, reader.blocks(), (writer, fork, report) => writer.writeDisk(disk, fork, timestamp, report, this.signal))
      }),
    )
    const vbds: Record<string, unknown> = {}
    for (const vbdRef of snapshot.VBDs as string[]) {
      const vbd = this.conn.byRef(vbdRef)
      if (vbd !== undefined && vbd.type === 'Disk' && vbd.VDI !== NULL_REF) vbds[vbdRef] = plainRecord(vbd)
    }
    const vifs: Record<string, unknown> = {}
    for (const vifRef of (this.vm.VIFs as string[]) ?? []) {
      const vif = this.conn.byRef(vifRef)
      if (vif === undefined) continue
      const network = this.conn.byRef(vif.network as string)
      vifs[vifRef] = { ...plainRecord(vif), $network$uuid: network?.uuid, $network$name_label: network?.name_label, $network$VLAN: -1 }
    }
    await this.#commitAll({
      version: METADATA_VERSION, mode: 'delta', jobId: this.context.job.id, scheduleId: this.context.schedule.id,
      vm: plainRecord(this.vm), vmSnapshot: plainRecord(snapshot), vdis, vbds, vifs, vtpms: [],
    })
  }

  /**
   * Feeds one export to every live writer in lock-step. A writer that fails is dropped (its fork
   * released so the others go on); an error of the export itself fails the VM.
   */
  async #feed<T>(
    source: ExportStream,
    items: AsyncIterable<T> | Readable,
    write: (writer: RemoteWriter, fork: AsyncIterable<T>, report: ProgressReporter) => Promise<number>,
  ): Promise<void> {
    let sourceError: unknown
    const { rate, signal } = this
    const guarded = (async function* () {
      try {
        for await (const item of items as AsyncIterable<T>) {
          await rate?.take(byteLength(item), signal)
          yield item
        }
      } catch (error) {
        sourceError = error
        throw error
      }
    })()
    const writers = this.writers.filter(w => w.alive)
    const forks = forkAsyncIterable(guarded, writers.length)
    const report: ProgressReporter = (name, progress) => source.lease.reportTarget(name, progress)
    await Promise.all(
      writers.map(async (writer, i) => {
        const fork = forks[i]!
        try {
          this.#transfers.get(writer)!.size += await write(writer, fork, report)
        } catch (error) {
          await fork[Symbol.asyncIterator]().return?.()
          if (sourceError === undefined) this.#failTransfer(writer, error)
        }
      }),
    )
    source.stream.destroy()
    throwIfAborted(this.signal)
    if (sourceError === undefined) await source.task.catch(error => (sourceError = error))
    if (sourceError !== undefined) throw sourceError
  }

  #failTransfer(writer: RemoteWriter, error: unknown): void {
    const transfer = this.#transfers.get(writer)
    if (transfer !== undefined && !transfer.task.ended) transfer.task.fail(this.#reason(error))
    this.#drop(writer, error)
  }

  async #commitAll(metadata: MetadataWithoutFiles): Promise<void> {
    await this.#forEachWriter('commit', async writer => {
      const transfer = this.#transfers.get(writer)!
      try {
        await writer.commit(metadata)
        transfer.task.end({ size: transfer.size })
      } catch (error) {
        this.#failTransfer(writer, error)
        await writer.discard()
      }
    })
  }
}

function byteLength(item: unknown): number {
  if (Buffer.isBuffer(item)) return item.length
  return (item as { data?: Buffer }).data?.length ?? 0
}

function allTargetsFailed(writers: RemoteWriter[], step?: string): Error {
  const errors = writers.map(w => w.failed)
  if (errors.length === 1) return errors[0] as Error
  return new AggregateError(errors, `all targets have failed${step === undefined ? '' : `, step: ${step}`}`)
}

/** A XAPI record as metadata keeps it: its fields, without the client's `$` helpers. */
function plainRecord(record: XapiRecord): Record<string, unknown> & { uuid: string } {
  const plain: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(record)) if (!key.startsWith('$') && typeof value !== 'function') plain[key] = value
  return JSON.parse(JSON.stringify(plain)) as Record<string, unknown> & { uuid: string }
}
