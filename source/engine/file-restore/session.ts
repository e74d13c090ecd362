// One restore point opened for file-level restore: its disks read straight from their chains on the remote
// (one cached random-access reader each, never a copy), their partitions and LVM volumes found, and each
// file system opened when first browsed (ext by Lifeboat's own reader, XFS and NTFS by the kernel). close()
// releases everything (kernel mounts included).
import { VhdChain } from '../../formats/vhd/index.ts'
import {
  cachedBlockReader, fileSystemLabel, logicalVolumeReader, probeContent, readPartitionTable, readPhysicalVolume, sliceReader, volumeGroupOf,
  type ContentKind, type DiskReader, type VolumeGroup,
} from '../../formats/disk/index.ts'
import { fileSystemAccess, type RemoteHandler } from '../../storage/index.ts'
import { resolveInVmDir, type BackupMetadata } from '../../repository/index.ts'
import { LifeboatError } from '../../util/errors.ts'
import { parseBackupId, readMetadata } from '../restore/index.ts'
import { FileSystemBrowser } from './browse.ts'
import { extWarning, openExt } from './ext.ts'
import { canMount, needsRoot, openMounted } from './mounted.ts'
import type { BrowsableFileSystem } from './filesystem.ts'

export interface BackupDisk {
  /** The VDI's position on the VM (its VBD userdevice) when known, else its order in the metadata: what `--disk` takes. */
  id: string
  name: string
  size: number
  /** The chain tip on the remote. */
  path: string
}

export interface Volume {
  /** `1` (partition 1), `1/vg/lv` (a logical volume on partition 1's PV), `0` (the whole disk), `0/vg/lv`. */
  id: string
  offset: number
  size: number
  /** The partition's type ("Linux", "LVM"…), or "logical volume", or "whole disk". */
  kind: string
  content: ContentKind
  label?: string
  /** Whether it can be browsed here, and if not why. */
  browsable: boolean
  reason?: string
  /** Browsable, with a caveat: an ext journal holding changes that are not replayed. */
  warning?: string
}

interface OpenDisk {
  chain: VhdChain
  reader: DiskReader
  volumes?: Promise<Array<{ volume: Volume; reader?: DiskReader }>>
}

const BROWSABLE: ReadonlySet<ContentKind> = new Set(['ext', 'xfs', 'ntfs'])
const WHY_NOT: Partial<Record<ContentKind, string>> = {
  swap: 'it is swap space: it holds no files',
  luks: 'it is encrypted (LUKS): open it on a running system with its passphrase',
  btrfs: 'btrfs is not read yet: restore the whole VM or its disk',
  fat: 'FAT is not read yet: restore the whole VM or its disk',
  unknown: 'no file system Lifeboat reads was found on it (ext2/3/4, XFS, NTFS)',
  lvm: 'it is an LVM physical volume: pick one of its logical volumes',
}

export class FileRestoreSession {
  readonly disks: BackupDisk[]
  readonly metadata: BackupMetadata
  readonly #handler: RemoteHandler
  readonly #workDir: string
  readonly #open = new Map<string, Promise<OpenDisk>>()
  readonly #browsers = new Map<string, Promise<FileSystemBrowser>>()
  #closed = false

  private constructor(handler: RemoteHandler, metadata: BackupMetadata, disks: BackupDisk[], workDir: string) {
    this.#handler = handler
    this.metadata = metadata
    this.disks = disks
    this.#workDir = workDir
  }

  /** Opens a restore point (a delta backup); `workDir` holds the kernel mounts XFS and NTFS need. */
  static async open(handler: RemoteHandler, backupId: string, options: { workDir: string }): Promise<FileRestoreSession> {
    const { path, vmDirUuid } = parseBackupId(backupId)
    const metadata = await readMetadata(handler, path)
    if (metadata.mode !== 'delta') {
      throw new LifeboatError('FILE_RESTORE_FULL_BACKUP', `The backup ${path} is a full backup (one XVA archive), which cannot be read at random; file-level restore reads delta backups. Pick a delta restore point, or restore the whole VM.`)
    }
    const vbdPosition = new Map<string, string>()
    for (const vbd of Object.values(metadata.vbds ?? {}) as Array<Record<string, unknown>>) {
      if (typeof vbd.VDI === 'string' && typeof vbd.userdevice === 'string') vbdPosition.set(vbd.VDI, vbd.userdevice)
    }
    const disks = Object.entries(metadata.vdis).flatMap(([ref, record], k): BackupDisk[] => {
      const vhd = metadata.vhds[ref]
      if (vhd === undefined) return []
      return [{ id: vbdPosition.get(ref) ?? String(k), name: String(record.name_label ?? record.uuid ?? ref), size: Number(record.virtual_size ?? 0), path: resolveInVmDir(vmDirUuid, vhd) }]
    })
    return new FileRestoreSession(handler, metadata, disks.sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true })), options.workDir)
  }

  disk(id: string): BackupDisk {
    const disk = this.disks.find(d => d.id === id)
    if (disk === undefined) throw new LifeboatError('FILE_RESTORE_NO_SUCH_DISK', `The restore point has no disk "${id}"; its disks are ${this.disks.map(d => `${d.id} (${d.name})`).join(', ')}.`)
    return disk
  }

  #openDisk(id: string): Promise<OpenDisk> {
    if (this.#closed) throw new LifeboatError('FILE_RESTORE_SESSION_CLOSED', 'This file-restore session is closed; open the restore point again.')
    const disk = this.disk(id)
    let opening = this.#open.get(id)
    if (opening === undefined) {
      opening = VhdChain.open(disk.path, { fs: fileSystemAccess(this.#handler) }).then(
        chain => ({ chain, reader: cachedBlockReader(chain) }),
        error => {
          this.#open.delete(id)
          throw new LifeboatError('FILE_RESTORE_BROKEN_CHAIN', `The disk ${disk.name} of this restore point cannot be read: ${(error as Error).message}`, { cause: error })
        },
      )
      this.#open.set(id, opening)
    }
    return opening
  }

  /** The disk's partitions (or the whole disk) and the logical volumes of its LVM physical volumes. */
  async volumes(diskId: string): Promise<Volume[]> {
    return (await this.#volumes(diskId)).map(v => v.volume)
  }

  async #volumes(diskId: string): Promise<Array<{ volume: Volume; reader?: DiskReader }>> {
    const open = await this.#openDisk(diskId)
    open.volumes ??= this.#findVolumes(open.reader)
    open.volumes.catch(() => (open.volumes = undefined))
    return open.volumes
  }

  async #findVolumes(disk: DiskReader): Promise<Array<{ volume: Volume; reader?: DiskReader }>> {
    const table = await readPartitionTable(disk)
    const places = table.scheme === 'none' ? [{ id: '0', offset: 0, size: disk.size, kind: 'whole disk' }] : table.partitions.map(p => ({ id: String(p.number), offset: p.offset, size: p.size, kind: p.kind }))
    const out: Array<{ volume: Volume; reader?: DiskReader }> = []
    // A volume group on several PVs is listed once, under the first.
    const groups = new Set<string>()
    for (const place of places) {
      const reader = sliceReader(disk, place.offset, place.size)
      const content = await probeContent(reader)
      const label = await fileSystemLabel(reader, content)
      const warning = content === 'ext' ? await extWarning(reader) : undefined
      out.push({ volume: { ...place, content, ...(label !== undefined && { label }), ...browsability(content), ...(warning !== undefined && { warning }) }, reader })
      if (content === 'lvm') out.push(...(await this.#logicalVolumes(place.id, reader, groups)))
    }
    return out
  }

  async #logicalVolumes(placeId: string, pvReader: DiskReader, groups: Set<string>): Promise<Array<{ volume: Volume; reader?: DiskReader }>> {
    const pv = await readPhysicalVolume(pvReader)
    if (pv?.metadata === undefined) return []
    const vg: VolumeGroup = volumeGroupOf(pv.metadata)
    if (groups.has(vg.name)) return []
    groups.add(vg.name)
    const pvs = await this.#physicalVolumes()
    const out: Array<{ volume: Volume; reader?: DiskReader }> = []
    for (const lv of vg.lvs) {
      const id = `${placeId}/${vg.name}/${lv.name}`
      try {
        const reader = logicalVolumeReader(vg, lv, uuid => pvs.get(uuid))
        const content = await probeContent(reader)
        const label = await fileSystemLabel(reader, content)
        const warning = content === 'ext' ? await extWarning(reader) : undefined
        out.push({ volume: { id, offset: 0, size: lv.size, kind: 'logical volume', content, ...(label !== undefined && { label }), ...browsability(content), ...(warning !== undefined && { warning }) }, reader })
      } catch (error) {
        if (!(error instanceof LifeboatError)) throw error
        out.push({ volume: { id, offset: 0, size: lv.size, kind: 'logical volume', content: 'unknown', browsable: false, reason: error.message } })
      }
    }
    return out
  }

  /** Every LVM physical volume on the restore point's disks, by uuid: a volume group may span the VM's disks. */
  async #physicalVolumes(): Promise<Map<string, DiskReader>> {
    const out = new Map<string, DiskReader>()
    for (const disk of this.disks) {
      const { reader } = await this.#openDisk(disk.id)
      const table = await readPartitionTable(reader)
      const places = table.scheme === 'none' ? [{ offset: 0, size: reader.size }] : table.partitions
      for (const place of places) {
        const slice = sliceReader(reader, place.offset, place.size)
        const pv = await readPhysicalVolume(slice).catch(() => undefined)
        if (pv !== undefined) out.set(pv.uuid, slice)
      }
    }
    return out
  }

  /** The browser of a volume's file system, opened on first use. */
  browser(diskId: string, volumeId: string): Promise<FileSystemBrowser> {
    const key = `${diskId}\u0000${volumeId}`
    let opening = this.#browsers.get(key)
    if (opening === undefined) {
      opening = this.#openBrowser(diskId, volumeId)
      opening.catch(() => this.#browsers.delete(key))
      this.#browsers.set(key, opening)
    }
    return opening
  }

  async #openBrowser(diskId: string, volumeId: string): Promise<FileSystemBrowser> {
    const volumes = await this.#volumes(diskId)
    const found = volumes.find(v => v.volume.id === volumeId)
    if (found === undefined) {
      throw new LifeboatError('FILE_RESTORE_NO_SUCH_VOLUME', `Disk ${diskId} has no partition or volume "${volumeId}"; it has ${volumes.map(v => v.volume.id).join(', ') || 'none'}.`)
    }
    const { volume, reader } = found
    if (!volume.browsable || reader === undefined) throw new LifeboatError('FILE_RESTORE_NOT_BROWSABLE', `Volume ${volumeId} of disk ${diskId} cannot be browsed: ${volume.reason}.`)
    const kind = volume.content as 'ext' | 'xfs' | 'ntfs'
    const fs: BrowsableFileSystem = kind === 'ext' ? await openExt(reader) : await openMounted(kind, reader, this.#workDir)
    if (this.#closed) {
      await fs.close()
      throw new LifeboatError('FILE_RESTORE_SESSION_CLOSED', 'This file-restore session was closed while the volume was being opened.')
    }
    return new FileSystemBrowser(fs)
  }

  /** Closes the file systems (unmounting what the kernel mounted), then the chains; never throws. */
  async close(): Promise<void> {
    this.#closed = true
    const browsers = [...this.#browsers.values()]
    this.#browsers.clear()
    for (const browser of browsers) await browser.then(b => b.fs.close(), () => {}).catch(() => {})
    const disks = [...this.#open.values()]
    this.#open.clear()
    for (const disk of disks) await disk.then(d => d.chain.close(), () => {}).catch(() => {})
  }
}

function browsability(content: ContentKind): { browsable: boolean; reason?: string } {
  if ((content === 'xfs' || content === 'ntfs') && !canMount()) return { browsable: false, reason: needsRoot(content).message }
  if (BROWSABLE.has(content)) return { browsable: true }
  return { browsable: false, reason: WHY_NOT[content] ?? 'it holds nothing Lifeboat reads' }
}
