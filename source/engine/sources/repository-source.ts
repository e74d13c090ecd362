// One restore point of a remote as the source of a backup (XO's FullRemote and IncrementalRemote, for mirror
// backups): the XVA read back as it is, or each disk's VHD read alone (a file or a VhdDirectory behind an
// alias, encrypted or not), its base and differencing nature taken from the VHD itself, never from the
// metadata. The targets receive it as any export: they keep its timestamp and chain onto what they hold.
import { LifeboatError } from '../../util/errors.ts'
import { openVhd, VHD_BLOCK_SIZE, type Vhd } from '../../formats/vhd/index.ts'
import { fileSystemAccess, type RemoteHandler } from '../../storage/index.ts'
import { resolveInVmDir, type VmBackup } from '../../repository/index.ts'
import { KEY } from '../run/snapshots.ts'
import type { BaseOffer, VmSource } from './source.ts'
import type { DeltaVmExport, DiskBlock, ExportedDisk, FullVmExport, PlainRecord, ProgressReporter, SourceStream, VmRecords } from './vm-export.ts'

const DISK_TYPE_DIFFERENCING = 4

export interface RepositorySourceOptions {
  handler: RemoteHandler
  /** The source remote's name, for messages. */
  remote: string
  backup: VmBackup
  /** The mirror job's and schedule's ids: the copies belong to the mirror job on the targets (XO's rule). */
  jobId: string
  scheduleId: string
  /** Where the targets' progress goes (the mirror's lane), if anywhere. */
  report?: ProgressReporter
}

interface SourceDisk {
  ref: string
  vhd: Vhd
  /** The chain folder's name on the source: the live VDI's uuid (the memory's own uuid). */
  liveVdiUuid: string
  /** The parent's footer uuid when the VHD is differencing. */
  baseUuid: string | undefined
  label: string
}

export class RepositoryVmSource implements VmSource {
  readonly vmUuid: string
  readonly #options: RepositorySourceOptions
  #disks: SourceDisk[] = []

  constructor(options: RepositorySourceOptions) {
    this.#options = options
    this.vmUuid = options.backup.vm.uuid
  }

  /** Delta: every disk of the backup opened alone (its parent is not read), so that a broken one fails before anything is written. */
  async prepare(): Promise<void> {
    const { backup } = this.#options
    if (backup.mode !== 'delta') return
    const fs = fileSystemAccess(this.#options.handler)
    try {
      for (const [ref, path] of Object.entries(backup.vhds)) {
        const vhd = await openVhd(resolveInVmDir(this.vmUuid, path), { fs })
        const record = backup.vdis[ref]
        const disk: SourceDisk = {
          ref, vhd, liveVdiUuid: chainFolder(path, this.vmUuid),
          baseUuid: vhd.footer.diskType === DISK_TYPE_DIFFERENCING ? vhd.header.parentUuid : undefined,
          label: `${String(record?.name_label ?? ref)} (${chainFolder(path, this.vmUuid)})`,
        }
        this.#disks.push(disk)
        if (vhd.header.blockSize !== VHD_BLOCK_SIZE) {
          throw new LifeboatError('VHD_BLOCK_SIZE_UNSUPPORTED', `The disk ${path} of backup ${backup.id} on remote ${this.#options.remote} has blocks of ${vhd.header.blockSize} bytes; Lifeboat copies VHDs of ${VHD_BLOCK_SIZE}-byte blocks only (Xen Orchestra's).`)
        }
      }
    } catch (error) {
      await this.#closeDisks()
      throw error
    }
  }

  async offerBases(): Promise<BaseOffer> {
    const differencing = this.#disks.filter(disk => disk.baseUuid !== undefined)
    return {
      bases: new Map(differencing.map(disk => [disk.liveVdiUuid, disk.baseUuid!])),
      fullReasons: new Map(),
      forcedFull: undefined,
      labels: new Map(this.#disks.map(disk => [disk.liveVdiUuid, disk.label])),
      continuesChain: differencing.length > 0,
      deltasOnly: true,
    }
  }

  /** The point in time is the backup's own. */
  async capture(): Promise<void> {}

  async openFull(): Promise<{ backup: FullVmExport; xva: SourceStream<Buffer> }> {
    const { backup, handler } = this.#options
    if (backup.mode !== 'full') throw new Error('BUG: a full mirror reads a delta backup')
    const stream = await handler.createReadStream(resolveInVmDir(this.vmUuid, backup.xva))
    const records: VmRecords = { vm: backup.vm as PlainRecord, vmSnapshot: backup.vmSnapshot as PlainRecord, vdis: {}, vbds: {}, vifs: {}, vtpms: [] }
    return { backup: { mode: 'full', ...this.#common(records) }, xva: this.#stream(stream as AsyncIterable<Buffer>, () => stream.destroy()) }
  }

  async openDelta(bases: ReadonlyMap<string, string>): Promise<{ backup: DeltaVmExport; disks: Map<string, SourceStream<DiskBlock>> }> {
    const { backup } = this.#options
    if (backup.mode !== 'delta') throw new Error('BUG: a delta mirror reads a full backup')
    const vdis: Record<string, PlainRecord> = {}
    const disks: ExportedDisk[] = []
    const streams = new Map<string, SourceStream<DiskBlock>>()
    for (const disk of this.#disks) {
      if (disk.baseUuid !== undefined && bases.get(disk.liveVdiUuid) !== disk.baseUuid) throw new Error(`BUG: the delta disk ${disk.label} is sent without its base`)
      const record = backup.vdis[disk.ref] as PlainRecord | undefined
      if (record !== undefined) vdis[disk.ref] = withBase(record, disk.baseUuid)
      disks.push({
        ref: disk.ref, liveVdiUuid: disk.liveVdiUuid, snapshotVdiUuid: disk.vhd.footer.uuid, baseUuid: disk.baseUuid,
        footer: disk.vhd.footer, header: disk.vhd.header, blockIndexes: disk.vhd.allocatedBlocks(),
      })
      streams.set(disk.ref, this.#stream(blocksOf(disk, backup.id), () => {}))
    }
    const records: VmRecords = { vm: backup.vm as PlainRecord, vmSnapshot: backup.vmSnapshot as PlainRecord, vdis, vbds: backup.vbds, vifs: backup.vifs, vtpms: backup.vtpms ?? [] }
    const isFull = this.#disks.some(disk => disk.baseUuid === undefined)
    return { backup: { mode: 'delta', ...this.#common(records), isFull, disks }, disks: streams }
  }

  #common(records: VmRecords): { timestamp: number; jobId: string; scheduleId: string; records: VmRecords } {
    return { timestamp: this.#options.backup.timestamp, jobId: this.#options.jobId, scheduleId: this.#options.scheduleId, records }
  }

  #stream<T>(items: AsyncIterable<T>, close: () => void): SourceStream<T> {
    return { items, report: this.#options.report ?? (() => {}), settled: Promise.resolve(), close }
  }

  /** Nothing to mark: the source backup stays as it is. */
  async complete(): Promise<void> {}

  /** Retention of the source is its own job's. */
  async afterBackup(): Promise<void> {}

  async discard(): Promise<void> {}

  async release(): Promise<void> {
    await this.#closeDisks()
  }

  async #closeDisks(): Promise<void> {
    await Promise.all(this.#disks.map(disk => disk.vhd.close().catch(() => {})))
    this.#disks = []
  }
}

/** The live VDI uuid a `vhds` path is filed under (`vdis/<jobId>/<liveVdiUuid>/<date>.vhd`): the chain folder, whatever the records say. */
function chainFolder(path: string, vmUuid: string): string {
  const parts = path.replace(/^\.\//, '').split('/')
  if (parts.length !== 4 || parts[0] !== 'vdis') throw new LifeboatError('REPOSITORY_BAD_REFERENCE', `The backup metadata of VM ${vmUuid} names the disk "${path}", not in a vdis/<job>/<disk>/ folder; the metadata is corrupt.`)
  return parts[2]!
}

/** The VDI record as the copy's metadata keeps it: its base as the VHD has it (the metadata's is not trusted). */
function withBase(record: PlainRecord, baseUuid: string | undefined): PlainRecord {
  const { [KEY.baseDeltaVdi]: _, ...otherConfig } = (record.other_config as Record<string, string> | undefined) ?? {}
  return { ...record, other_config: { ...otherConfig, ...(baseUuid !== undefined && { [KEY.baseDeltaVdi]: baseUuid }) } }
}

/** The VHD's own blocks, in order; a differencing block must be whole (XO's rule), or its copy would hide the parent's sectors. */
async function* blocksOf(disk: SourceDisk, backupId: string): AsyncGenerator<DiskBlock> {
  for (const index of disk.vhd.allocatedBlocks()) {
    const { bitmap, data } = await disk.vhd.readBlock(index)
    if (disk.baseUuid !== undefined && !bitmap.every(byte => byte === 0xff)) {
      throw new LifeboatError('VHD_PARTIAL_BLOCK', `Block ${index} of disk ${disk.label} in backup ${backupId} is not whole (its sector bitmap is partial); Lifeboat copies deltas of whole blocks only, as Xen Orchestra writes them.`)
    }
    yield { index, data }
  }
}
