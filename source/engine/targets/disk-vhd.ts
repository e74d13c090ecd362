// One exported disk as the VHD a delta target writes (a remote's chain file or VhdDirectory, an upload onto a
// replica's disk): the snapshot VDI's uuid in its footer (XO's rule: base lookups depend on it), differencing
// onto its base for a delta.
import type { Readable } from 'node:stream'
import { createVhdStream, vhdTimestamp, type VhdStreamOptions } from '../../formats/vhd/index.ts'
import type { DiskBlock, ExportedDisk } from '../sources/vm-export.ts'

/** What the VHD of the disk is made of, for a VHD stream or a VhdDirectory. `parentName`: the base's name, relative to the new disk (a delta only). */
export function exportedDiskVhdOptions(disk: ExportedDisk, blocks: AsyncIterable<DiskBlock>, timestamp: number, parentName: string | undefined): VhdStreamOptions {
  return {
    size: disk.footer.currentSize,
    uuid: disk.snapshotVdiUuid,
    blockIndexes: disk.blockIndexes,
    blocks,
    timestamp: vhdTimestamp(new Date(timestamp)),
    ...(disk.baseUuid !== undefined && parentName !== undefined && { parent: { uuid: disk.baseUuid, unicodeName: parentName } }),
  }
}

export function exportedDiskVhd(disk: ExportedDisk, blocks: AsyncIterable<DiskBlock>, timestamp: number, parentName: string | undefined): { length: number; stream: Readable } {
  return createVhdStream(exportedDiskVhdOptions(disk, blocks, timestamp, parentName))
}
