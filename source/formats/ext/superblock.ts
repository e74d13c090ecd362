// The ext2/3/4 superblock and group descriptors: the geometry every other structure is found by. Checksums
// (metadata_csum) are not checked: a damaged structure is caught by the bounds checked where it is used.
import type { DiskReader } from '../disk/index.ts'
import { LifeboatError } from '../../util/errors.ts'

export const SUPERBLOCK_OFFSET = 1024
const SUPERBLOCK_SIZE = 1024
const MAGIC = 0xef53

const COMPAT_SPARSE_SUPER2 = 0x200
const RO_COMPAT_SPARSE_SUPER = 0x1
const RO_COMPAT_HUGE_FILE = 0x8
const INCOMPAT = {
  compression: 0x1, filetype: 0x2, recover: 0x4, journalDev: 0x8, metaBg: 0x10, extents: 0x40, bit64: 0x80, mmp: 0x100,
  flexBg: 0x200, eaInode: 0x400, dirData: 0x1000, csumSeed: 0x2000, largeDir: 0x4000, inlineData: 0x8000, encrypt: 0x10000, casefold: 0x20000,
} as const
const KNOWN_INCOMPAT = Object.values(INCOMPAT).reduce((all, bit) => all | bit, 0)
/** What a reader of files and names cannot do without: compressed data, a journal device, data in directory entries. */
const UNREADABLE: Array<[number, string]> = [[INCOMPAT.compression, 'compression'], [INCOMPAT.journalDev, 'it is an external journal, not a file system'], [INCOMPAT.dirData, 'dirdata']]

export interface Superblock {
  blockSize: number
  blocksCount: number
  firstDataBlock: number
  blocksPerGroup: number
  inodesPerGroup: number
  inodesCount: number
  inodeSize: number
  groupCount: number
  /** Bytes of one group descriptor: 32, or s_desc_size with 64bit. */
  descriptorSize: number
  /** Entries carry their type (and a one-byte name length). */
  fileType: boolean
  inlineData: boolean
  /** i_blocks counts file-system blocks (not 512-byte sectors) for inodes flagged huge. */
  hugeFile: boolean
  /** The journal holds transactions not yet written in place (not replayed here: the file system is read as it lies). */
  needsRecovery: boolean
  metaBg: boolean
  firstMetaBg: number
  sparseSuper: boolean
  sparseSuper2: [number, number] | undefined
}

function bad(detail: string): LifeboatError {
  return new LifeboatError('EXT_BAD_SUPERBLOCK', `The ext file system's superblock is damaged (${detail}); run e2fsck on a copy of the disk, or restore the whole VM.`)
}

export async function readSuperblock(disk: DiskReader): Promise<Superblock> {
  if (disk.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) throw bad('the volume is too small to hold one')
  const sb = await disk.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)
  if (sb.readUInt16LE(0x38) !== MAGIC) throw bad('no ext magic number')
  const incompat = sb.readUInt32LE(0x60)
  for (const [bit, name] of UNREADABLE) {
    if ((incompat & bit) !== 0) throw new LifeboatError('EXT_UNSUPPORTED_FEATURE', `The ext file system uses a feature Lifeboat does not read (${name}); restore the whole VM or its disk.`)
  }
  if ((incompat & ~KNOWN_INCOMPAT) !== 0) {
    throw new LifeboatError('EXT_UNSUPPORTED_FEATURE', `The ext file system uses incompatible features unknown to Lifeboat (0x${(incompat & ~KNOWN_INCOMPAT).toString(16)}); restore the whole VM or its disk.`)
  }
  const logBlockSize = sb.readUInt32LE(0x18)
  if (logBlockSize > 6) throw bad(`a block size of 2^${10 + logBlockSize} bytes`)
  const blockSize = 1024 << logBlockSize
  const is64 = (incompat & INCOMPAT.bit64) !== 0
  const revision = sb.readUInt32LE(0x4c)
  const inodeSize = revision === 0 ? 128 : sb.readUInt16LE(0x58)
  if (inodeSize < 128 || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0) throw bad(`an inode size of ${inodeSize} bytes`)
  const descriptorSize = is64 ? sb.readUInt16LE(0xfe) : 32
  if (descriptorSize < 32 || descriptorSize > 1024 || (descriptorSize & (descriptorSize - 1)) !== 0 || (is64 && descriptorSize < 64)) throw bad(`a group descriptor size of ${descriptorSize} bytes`)
  const blocksCount = sb.readUInt32LE(0x04) + (is64 ? sb.readUInt32LE(0x150) * 2 ** 32 : 0)
  const firstDataBlock = sb.readUInt32LE(0x14)
  const blocksPerGroup = sb.readUInt32LE(0x20)
  const inodesPerGroup = sb.readUInt32LE(0x28)
  const inodesCount = sb.readUInt32LE(0x00)
  if (firstDataBlock > 1 || blocksCount <= firstDataBlock) throw bad(`${blocksCount} blocks from block ${firstDataBlock}`)
  if (blocksPerGroup === 0 || blocksPerGroup > 8 * blockSize) throw bad(`${blocksPerGroup} blocks per group`)
  if (inodesPerGroup === 0 || inodesPerGroup > 8 * blockSize) throw bad(`${inodesPerGroup} inodes per group`)
  if (blocksCount * blockSize > disk.size) {
    throw new LifeboatError('EXT_TRUNCATED', `The ext file system says it holds ${blocksCount * blockSize} bytes but its volume holds ${disk.size}; the partition or logical volume is cut short (or the superblock is damaged).`)
  }
  const groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup)
  if (inodesCount < 11 || inodesCount > groupCount * inodesPerGroup) throw bad(`${inodesCount} inodes in ${groupCount} groups of ${inodesPerGroup}`)
  const compat = sb.readUInt32LE(0x5c)
  const roCompat = sb.readUInt32LE(0x64)
  return {
    blockSize, blocksCount, firstDataBlock, blocksPerGroup, inodesPerGroup, inodesCount, inodeSize, groupCount, descriptorSize,
    fileType: (incompat & INCOMPAT.filetype) !== 0,
    inlineData: (incompat & INCOMPAT.inlineData) !== 0,
    hugeFile: (roCompat & RO_COMPAT_HUGE_FILE) !== 0,
    needsRecovery: (incompat & INCOMPAT.recover) !== 0,
    metaBg: (incompat & INCOMPAT.metaBg) !== 0,
    firstMetaBg: sb.readUInt32LE(0x104),
    sparseSuper: (roCompat & RO_COMPAT_SPARSE_SUPER) !== 0,
    sparseSuper2: (compat & COMPAT_SPARSE_SUPER2) !== 0 ? [sb.readUInt32LE(0x24c), sb.readUInt32LE(0x250)] : undefined,
  }
}

function isPowerOf(n: number, base: number): boolean {
  while (n > 1 && n % base === 0) n /= base
  return n === 1
}

/** Whether a group starts with a copy of the superblock (and so of the descriptors in the classic layout). */
function hasSuperblock(sb: Superblock, group: number): boolean {
  if (group === 0) return true
  if (sb.sparseSuper2 !== undefined) return group === sb.sparseSuper2[0] || group === sb.sparseSuper2[1]
  if (!sb.sparseSuper) return true
  return group === 1 || isPowerOf(group, 3) || isPowerOf(group, 5) || isPowerOf(group, 7)
}

/** Where group `group`'s descriptor lies: after the superblock, or with meta_bg in the first group of its meta group. */
export function descriptorOffset(sb: Superblock, group: number): number {
  const perBlock = sb.blockSize / sb.descriptorSize
  if (!sb.metaBg || group < sb.firstMetaBg * perBlock) return (sb.firstDataBlock + 1) * sb.blockSize + group * sb.descriptorSize
  const first = group - (group % perBlock)
  let block = sb.firstDataBlock + first * sb.blocksPerGroup + (hasSuperblock(sb, first) ? 1 : 0)
  // As the kernel: with 1 KiB blocks and no block before the first group, group 0's copy sits one block further.
  if (sb.blockSize === 1024 && first === 0 && sb.firstDataBlock === 0) block++
  return block * sb.blockSize + (group % perBlock) * sb.descriptorSize
}

/** The first block of a group's inode table, read from its descriptor. */
export async function inodeTableBlock(disk: DiskReader, sb: Superblock, group: number): Promise<number> {
  const offset = descriptorOffset(sb, group)
  if (offset + sb.descriptorSize > sb.blocksCount * sb.blockSize) throw bad(`the descriptor of group ${group} lies outside the file system`)
  const descriptor = await disk.read(offset, sb.descriptorSize)
  const block = descriptor.readUInt32LE(0x08) + (sb.descriptorSize >= 64 ? descriptor.readUInt32LE(0x28) * 2 ** 32 : 0)
  const tableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize)
  if (block === 0 || block + tableBlocks > sb.blocksCount) {
    throw new LifeboatError('EXT_BAD_GROUP', `The ext file system's group ${group} says its inode table is at block ${block}, outside the file system; run e2fsck on a copy of the disk, or restore the whole VM.`)
  }
  return block
}
