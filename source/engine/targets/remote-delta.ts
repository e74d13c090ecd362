// A delta backup onto a remote (XO's IncrementalRemoteWriter): each disk a VHD file, or a VhdDirectory behind
// an alias, in its chain folder — differencing onto the chain's tip when the tip is the base snapshot and of
// the same format, dynamic otherwise — then the metadata JSON, then retention of this schedule's delta
// backups and the merges it releases.
import { posix } from 'node:path'
import { chainRefusal, findBaseDisk, METADATA_VERSION, usesVhdDirectory, vdiDirRef, vhdAliasRef, vhdRef, vmDir, writeBackupMetadata, writeBackupVhdDirectory, writeBackupVhdFile, type BackupMetadata } from '../../repository/index.ts'
import type { DeltaVmExport, DiskBlock, ExportedDisk, ProgressReporter } from '../sources/vm-export.ts'
import { KEY } from '../run/snapshots.ts'
import { exportedDiskVhdOptions } from './disk-vhd.ts'
import { countedForLanes } from './progress.ts'
import { RemoteTarget } from './remote-target.ts'
import type { DeltaBackupTarget, TargetStep } from './target.ts'

export class RemoteDeltaTarget extends RemoteTarget implements DeltaBackupTarget {
  readonly mode = 'delta'
  /** Live VDI uuid → the path (relative to the VM folder) of the disk a delta of that disk chains onto. */
  readonly #parents = new Map<string, string>()
  /** Data files written for the backup in progress, by snapshot VDI ref. */
  readonly #vhds: Record<string, string> = {}

  /** VhdDirectories behind aliases (object stores, `?useVhdDirectory=true`), else VHD files. */
  get #directories(): boolean {
    return usesVhdDirectory(this.handler)
  }

  /**
   * Keeps the bases this remote holds a disk of (footer uuid) whose chain is of the format this remote writes
   * (XO's isMergeableParent); says why each other disk goes full. The disk is looked for among all the VHDs of
   * the chain folder, newest first (XO's search): a mirror of two source jobs of one VM files both jobs' chains
   * in the same folder, so a delta's parent is not always its newest VHD. A disk that is already the parent of
   * another is refused: a second child would fork the chain, which no clean could merge.
   */
  async checkBases(bases: ReadonlyMap<string, string>): Promise<Map<string, string>> {
    const { handler, vmUuid, jobId, name } = this.options
    const refused = new Map<string, string>()
    for (const [liveVdiUuid, baseUuid] of bases) {
      const folder = `${vmDir(vmUuid)}/${vdiDirRef(jobId, liveVdiUuid)}`
      const found = await findBaseDisk(handler, folder, baseUuid, name)
      if ('refusal' in found) {
        refused.set(liveVdiUuid, found.refusal)
        continue
      }
      const reason = await chainRefusal(handler, `${folder}/${found.disk}`, baseUuid).catch((error: Error) => `cannot be read with its chain (${error.message})`)
      if (reason !== undefined) {
        refused.set(liveVdiUuid, `the backup of the base snapshot on remote ${name} (${found.disk}) ${reason}`)
        continue
      }
      this.#parents.set(liveVdiUuid, `${vdiDirRef(jobId, liveVdiUuid)}/${found.disk}`)
    }
    return refused
  }

  async prepare(): Promise<void> {}

  async transferDisk(backup: DeltaVmExport, disk: ExportedDisk, blocks: AsyncIterable<DiskBlock>, report: ProgressReporter, step: TargetStep): Promise<number> {
    const { date } = await this.date(backup.timestamp)
    const { jobId, vmUuid } = this.options
    const parent = disk.baseUuid === undefined ? undefined : this.#parents.get(disk.liveVdiUuid)
    if (disk.baseUuid !== undefined && parent === undefined) {
      throw new Error(`BUG: disk ${disk.liveVdiUuid} is exported as a delta but remote ${this.name} has no parent for it`)
    }
    // The parent is named relative to the new disk's name (the alias for a VhdDirectory), in the same folder.
    const parentName = parent === undefined ? undefined : posix.basename(parent)
    let ref: string
    let size: number
    if (this.#directories) {
      ref = vhdAliasRef(jobId, disk.liveVdiUuid, date)
      this.written.push(ref)
      const counted = countedForLanes(blocks, this.name, report, block => block.data.length)
      size = await writeBackupVhdDirectory(this.handler, vmUuid, ref, exportedDiskVhdOptions(disk, counted, backup.timestamp, parentName), { signal: step.signal })
    } else {
      ref = vhdRef(jobId, disk.liveVdiUuid, date)
      this.written.push(ref)
      size = await writeBackupVhdFile(this.handler, vmUuid, ref, exportedDiskVhdOptions(disk, blocks, backup.timestamp, parentName), {
        signal: step.signal, through: stream => countedForLanes(stream, this.name, report),
      })
    }
    this.#vhds[disk.ref] = ref
    this.size += size
    return size
  }

  async commit(backup: DeltaVmExport): Promise<void> {
    const { timestamp } = this.committedDate
    const { vm, vmSnapshot, vdis, vbds, vifs, vtpms } = backup.records
    const isVhdDifferencing = Object.fromEntries(Object.keys(this.#vhds).map(ref => [ref, vdis[ref]?.other_config !== undefined && (vdis[ref]!.other_config as Record<string, string>)[KEY.baseDeltaVdi] !== undefined]))
    const metadata: BackupMetadata = {
      version: METADATA_VERSION, mode: 'delta', jobId: backup.jobId, scheduleId: backup.scheduleId, timestamp, size: this.size,
      vm, vmSnapshot, vdis, vbds, vifs, vtpms, vhds: { ...this.#vhds }, isVhdDifferencing,
    }
    await writeBackupMetadata(this.options.handler, metadata)
  }
}
