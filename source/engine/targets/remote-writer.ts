// One remote as the target of one VM's backup (XO's FullRemoteWriter / IncrementalRemoteWriter): it
// holds the VM folder's lock from before the transfer to after its retention, checks the delta bases
// it can chain onto, writes the data files then the metadata, and merges what retention released.
import { posix } from 'node:path'
import type { Readable } from 'node:stream'
import type { Task } from '../../tasks/index.ts'
import { errorCode } from '../../util/errors.ts'
import { sleep } from '../../util/abort.ts'
import { fileSystemAccess, type RemoteHandler, type RemoteLock } from '../../storage/index.ts'
import type { TargetProgress } from '../../xapi/index.ts'
import { createVhdStream, VhdFile, vhdTimestamp, type VhdFooter, type VhdHeader } from '../../formats/vhd/index.ts'
import {
  allocateBackupDate, applyRetention, cleanVm, resolveInVmDir, vdiDirRef, vhdRef, vmDir, writeBackupFile, writeBackupMetadata, xvaRef,
  type BackupMetadata, type VmBackup,
} from '../../repository/index.ts'
import type { Settings } from '../jobs/index.ts'

export interface DiskBlock {
  index: number
  data: Buffer
}

/** One disk of a delta backup as every writer receives it (its blocks come through a fork). */
export interface DiskExport {
  /** The live VDI's uuid: the chain folder's name. */
  liveVdiUuid: string
  /** The exported snapshot VDI's uuid: the VHD footer uuid (XO's rule, base lookup depends on it). */
  snapshotVdiUuid: string
  snapshotVdiRef: string
  footer: VhdFooter
  header: VhdHeader
  blockIndexes: number[]
  /** The base snapshot VDI's uuid when this disk is a delta. */
  baseUuid: string | undefined
}

const LOCK_RETRY_MS = 1000

export type ProgressReporter = (name: string, progress: TargetProgress) => void

export class RemoteWriter {
  readonly name: string
  readonly handler: RemoteHandler
  readonly settings: Settings
  failed: unknown = undefined
  #lock: RemoteLock | undefined
  /** Live VDI uuid → the chain tip's path (relative to the VM folder) a delta of that disk chains onto. */
  readonly #parents = new Map<string, string>()
  /** Data files written for the backup in progress, by snapshot VDI ref. */
  readonly #vhds: Record<string, string> = {}
  #size = 0
  #date: { timestamp: number; date: string } | undefined

  constructor(name: string, handler: RemoteHandler, settings: Settings, readonly vmUuid: string, readonly jobId: string, readonly scheduleId: string, readonly timezone: string) {
    this.name = name
    this.handler = handler
    this.settings = settings
  }

  get alive(): boolean {
    return this.failed === undefined
  }

  /** Takes the VM folder's lock; for deltas, repairs the folder first (an interrupted merge must finish before a new chain link). */
  async prepare(mode: 'full' | 'delta', task: Task, signal: AbortSignal): Promise<void> {
    await this.handler.mkdir(vmDir(this.vmUuid))
    this.#lock = await this.#waitForLock(task, signal)
    if (mode === 'delta') await task.child('clean-vm', { remote: this.name }).run(async clean => summarize(await cleanVm(this.handler, this.vmUuid, { signal, task: clean })), { signal })
    if (this.settings.deleteFirst) await this.#retention(mode, task, 1)
  }

  /**
   * The VM folder's lock, waiting while another run, merge or clean holds it (two jobs of the same VM
   * on the same remote at 02:00 take turns instead of failing); the run's cancel or timeout ends the wait.
   */
  async #waitForLock(task: Task, signal: AbortSignal): Promise<RemoteLock> {
    let told = false
    for (;;) {
      try {
        return await this.handler.lock(vmDir(this.vmUuid))
      } catch (error) {
        if (errorCode(error) !== 'REMOTE_LOCKED') throw error
        if (!told) task.info(`waiting for the VM's folder on remote ${this.name}: another backup, merge or clean holds it`)
        told = true
        await sleep(LOCK_RETRY_MS, signal)
      }
    }
  }

  /**
   * Keeps, of the proposed bases (live VDI uuid → base snapshot VDI uuid), those whose chain on this
   * remote ends with that snapshot (footer uuid); returns why each other disk must go full here.
   */
  async checkBases(bases: Map<string, string>): Promise<Map<string, string>> {
    const refused = new Map<string, string>()
    for (const [liveVdiUuid, baseUuid] of bases) {
      const dir = `${vmDir(this.vmUuid)}/${vdiDirRef(this.jobId, liveVdiUuid)}`
      const vhds = (await this.handler.list(dir, { ignoreMissing: true })).filter(name => name.endsWith('.vhd') && !name.startsWith('.')).sort()
      const tip = vhds.at(-1)
      if (tip === undefined) {
        refused.set(liveVdiUuid, `no earlier backup of this disk on remote ${this.name}`)
        continue
      }
      const footer = await this.#readFooter(`${dir}/${tip}`).catch(() => undefined)
      if (footer?.uuid !== baseUuid) {
        refused.set(liveVdiUuid, `the newest backup of this disk on remote ${this.name} (${tip}) is not of the base snapshot ${baseUuid}`)
        continue
      }
      this.#parents.set(liveVdiUuid, `${vdiDirRef(this.jobId, liveVdiUuid)}/${tip}`)
    }
    return refused
  }

  async #readFooter(path: string): Promise<VhdFooter> {
    const file = await VhdFile.open(path, { fs: fileSystemAccess(this.handler) })
    try {
      return file.footer
    } finally {
      await file.close()
    }
  }

  async #allocateDate(timestamp: number): Promise<{ timestamp: number; date: string }> {
    this.#date ??= await allocateBackupDate(this.handler, this.vmUuid, timestamp)
    return this.#date
  }

  /** Writes a full backup's XVA (atomically); the backup exists once `commit` writes its metadata. */
  async writeXva(source: AsyncIterable<Buffer>, timestamp: number, report: ProgressReporter, signal: AbortSignal): Promise<number> {
    const { date } = await this.#allocateDate(timestamp)
    const size = await writeBackupFile(this.handler, this.vmUuid, { ref: xvaRef(date), source: counted(source, this.name, report), options: { signal } })
    this.#size += size
    return size
  }

  /** Writes one disk of a delta backup as a VHD: differencing onto its chain tip, or dynamic (a new chain). */
  async writeDisk(disk: DiskExport, blocks: AsyncIterable<DiskBlock>, timestamp: number, report: ProgressReporter, signal: AbortSignal): Promise<number> {
    const { date } = await this.#allocateDate(timestamp)
    const ref = vhdRef(this.jobId, disk.liveVdiUuid, date)
    const parent = disk.baseUuid === undefined ? undefined : this.#parents.get(disk.liveVdiUuid)
    if (disk.baseUuid !== undefined && parent === undefined) {
      throw new Error(`BUG: disk ${disk.liveVdiUuid} is exported as a delta but remote ${this.name} has no chain tip for it`)
    }
    const vhd = createVhdStream({
      size: disk.footer.currentSize,
      uuid: disk.snapshotVdiUuid,
      blockIndexes: disk.blockIndexes,
      blocks,
      timestamp: vhdTimestamp(new Date(timestamp)),
      ...(parent !== undefined && { parent: { uuid: disk.baseUuid!, unicodeName: posix.basename(parent) } }),
    })
    const size = await writeBackupFile(this.handler, this.vmUuid, { ref, source: counted(vhd.stream, this.name, report), options: { length: vhd.length, signal } })
    this.#vhds[disk.snapshotVdiRef] = ref
    this.#size += size
    return size
  }

  /** Writes the metadata (the commit marker) for what was written, then the cache. */
  async commit(metadata: MetadataWithoutFiles): Promise<VmBackup> {
    const { timestamp, date } = this.#date!
    const files =
      metadata.mode === 'full'
        ? { xva: xvaRef(date) }
        : { vhds: { ...this.#vhds }, isVhdDifferencing: Object.fromEntries(Object.keys(this.#vhds).map(ref => [ref, metadata.vdis?.[ref]?.other_config?.['xo:base_delta_vdi'] !== undefined])) }
    return writeBackupMetadata(this.handler, { ...metadata, timestamp, size: this.#size, ...files } as BackupMetadata)
  }

  /** After the transfer: retention of this schedule's backups, then the merges it makes necessary. */
  async finish(mode: 'full' | 'delta', task: Task): Promise<void> {
    if (!this.settings.deleteFirst) await this.#retention(mode, task, 0)
  }

  async #retention(mode: 'full' | 'delta', task: Task, extraRoom: number): Promise<void> {
    const keep = Math.max(0, this.settings.exportRetention - extraRoom)
    // The clean's task takes its warnings and one 'merge' task per merge: a merge that fails fails the run.
    await task.child('clean-vm', { remote: this.name }).run(async clean => {
      const deleted = await applyRetention(this.handler, this.vmUuid, { jobId: this.jobId, scheduleId: this.scheduleId, keep, longTerm: this.settings.longTermRetention, timezone: this.timezone })
      const cleaned = mode === 'delta' || deleted.length > 0 ? summarize(await cleanVm(this.handler, this.vmUuid, { task: clean })) : { merge: false }
      return { ...cleaned, deleted: deleted.length }
    })
  }

  /** Removes what a failed transfer left under its final name (nothing normally: writes are atomic). */
  async discard(): Promise<void> {
    for (const ref of Object.values(this.#vhds)) await this.handler.unlink(resolveInVmDir(this.vmUuid, ref)).catch(() => {})
    if (this.#date !== undefined) await this.handler.unlink(resolveInVmDir(this.vmUuid, xvaRef(this.#date.date))).catch(() => {})
  }

  async release(): Promise<void> {
    const lock = this.#lock
    this.#lock = undefined
    await lock?.release()
  }
}

/** A backup's metadata before the writer adds its date, size and file names. */
export type MetadataWithoutFiles = Record<string, unknown> & { mode: 'full' | 'delta'; vdis?: Record<string, { other_config?: Record<string, string> }> }

function summarize(result: { merged: number; mergedBytes: number; removed: string[] }): { merge: boolean; size?: number; removed?: number } {
  return { merge: result.merged > 0, ...(result.merged > 0 && { size: result.mergedBytes }), ...(result.removed.length > 0 && { removed: result.removed.length }) }
}

/** Counts the bytes a writer took, for the lanes view (throttled by the reporter's consumer). */
async function* counted(source: AsyncIterable<Buffer | Uint8Array> | Readable, name: string, report: ProgressReporter): AsyncGenerator<Buffer> {
  let done = 0
  let last = 0
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      done += chunk.length
      const now = Date.now()
      if (now - last > 250) {
        last = now
        report(name, { done, state: 'writing' })
      }
      yield chunk
    }
    report(name, { done, state: 'done' })
  } catch (error) {
    report(name, { done, state: 'failed' })
    throw error
  }
}
