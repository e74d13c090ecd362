// What a partition or volume holds, told by its superblock's magic: the file systems file-level restore reads,
// an LVM physical volume, and the ones it can only name (swap, LUKS, btrfs, FAT).
import type { DiskReader } from './reader.ts'

export type ContentKind = 'ext' | 'xfs' | 'ntfs' | 'lvm' | 'swap' | 'luks' | 'btrfs' | 'fat' | 'unknown'

const PROBE_BYTES = 0x10100

export async function probeContent(disk: DiskReader): Promise<ContentKind> {
  const head = await disk.read(0, Math.min(disk.size, PROBE_BYTES))
  const text = (at: number, length: number) => (head.length >= at + length ? head.toString('latin1', at, at + length) : '')
  if (text(0, 4) === 'XFSB') return 'xfs'
  if (text(3, 8) === 'NTFS    ') return 'ntfs'
  if (head.length >= 0x43a && head.readUInt16LE(0x438) === 0xef53) return 'ext'
  for (let sector = 0; sector < 4; sector++) if (text(sector * 512, 8) === 'LABELONE' && text(sector * 512 + 24, 8) === 'LVM2 001') return 'lvm'
  if (text(0, 6) === 'LUKS\xba\xbe') return 'luks'
  if (text(4086, 10) === 'SWAPSPACE2') return 'swap'
  if (text(0x10040, 8) === '_BHRfS_M') return 'btrfs'
  if (text(82, 5) === 'FAT32' || text(54, 3) === 'FAT') return 'fat'
  return 'unknown'
}

/** The file system label (ext and XFS keep it in the superblock), for the lists an administrator picks from. */
export async function fileSystemLabel(disk: DiskReader, kind: ContentKind): Promise<string | undefined> {
  const read = async (at: number, length: number) => (await disk.read(at, length)).toString('utf8').replace(/\0.*$/s, '')
  const label = kind === 'ext' ? await read(1024 + 0x78, 16) : kind === 'xfs' ? await read(0x6c, 12) : ''
  return label === '' ? undefined : label
}
