// An ext inode as a reader of files needs it: type and permissions, owner, size (64-bit), mtime (with the
// extra epoch bits and nanoseconds of large inodes), flags, the 60 bytes of i_block, and the in-inode
// extended attribute that holds the rest of an inline file or folder (system.data).
import { LifeboatError } from '../../util/errors.ts'
import type { Superblock } from './superblock.ts'

export const ROOT_INODE = 2
export const I_BLOCK_BYTES = 60

export const INODE_FLAGS = { encrypted: 0x800, index: 0x1000, hugeFile: 0x40000, extents: 0x80000, inlineData: 0x10000000 } as const

const S_IFMT = 0o170000
export const S_IFDIR = 0o040000
export const S_IFREG = 0o100000
export const S_IFLNK = 0o120000

const XATTR_MAGIC = 0xea020000
const XATTR_SYSTEM = 7

export interface Inode {
  number: number
  /** Type and permission bits, as stat's st_mode. */
  mode: number
  uid: number
  gid: number
  size: number
  mtimeMs: number
  flags: number
  /** i_block: extent tree root, block pointers, a fast symbolic link's target or the start of inline data. */
  block: Buffer
  /** Sectors (or blocks, for huge inodes) held, extended attribute block included. */
  blocks: number
  /** The extended attribute block, 0 for none. */
  xattrBlock: number
  /** The in-inode system.data attribute: the part of inline data past i_block (undefined when there is none). */
  inlineTail: Buffer | undefined
}

export function badInode(number: number, detail: string): LifeboatError {
  return new LifeboatError('EXT_BAD_INODE', `The ext file system's inode ${number} is damaged (${detail}); run e2fsck on a copy of the disk, or restore the whole VM.`)
}

export const isDirectory = (inode: Inode): boolean => (inode.mode & S_IFMT) === S_IFDIR
export const isRegular = (inode: Inode): boolean => (inode.mode & S_IFMT) === S_IFREG
export const isSymlink = (inode: Inode): boolean => (inode.mode & S_IFMT) === S_IFLNK
export const hasInlineData = (inode: Inode): boolean => (inode.flags & INODE_FLAGS.inlineData) !== 0

/** Parses the `sb.inodeSize` bytes of inode `number`. */
export function parseInode(sb: Superblock, number: number, raw: Buffer): Inode {
  const flags = raw.readUInt32LE(0x20)
  const size = raw.readUInt32LE(0x04) + raw.readUInt32LE(0x6c) * 2 ** 32
  // ext4's logical block numbers are 32-bit: nothing larger can be mapped (and an absurd size is damage).
  if (size > 2 ** 32 * sb.blockSize) throw badInode(number, `a size of ${size} bytes`)
  const extraSize = raw.length > 128 ? raw.readUInt16LE(0x80) : 0
  if (128 + extraSize > raw.length || extraSize % 4 !== 0) throw badInode(number, `${extraSize} extra bytes in an inode of ${raw.length}`)
  let mtime = raw.readInt32LE(0x10) * 1000
  if (extraSize >= 12) {
    const extra = raw.readUInt32LE(0x88)
    mtime += (extra & 3) * 2 ** 32 * 1000 + Math.floor((extra >>> 2) / 1e6)
  }
  const hugeBlocks = sb.hugeFile && (flags & INODE_FLAGS.hugeFile) !== 0
  const blocks = (raw.readUInt32LE(0x1c) + (sb.hugeFile ? raw.readUInt16LE(0x74) * 2 ** 32 : 0)) * (hugeBlocks ? sb.blockSize / 512 : 1)
  return {
    number,
    mode: raw.readUInt16LE(0x00),
    uid: raw.readUInt16LE(0x02) + raw.readUInt16LE(0x78) * 0x10000,
    gid: raw.readUInt16LE(0x18) + raw.readUInt16LE(0x7a) * 0x10000,
    size,
    mtimeMs: mtime,
    flags,
    block: Buffer.from(raw.subarray(0x28, 0x28 + I_BLOCK_BYTES)),
    blocks,
    xattrBlock: raw.readUInt32LE(0x68) + raw.readUInt16LE(0x76) * 2 ** 32,
    inlineTail: (flags & INODE_FLAGS.inlineData) !== 0 ? systemData(number, raw.subarray(128 + extraSize)) : undefined,
  }
}

/** The value of the in-inode attribute system.data, from the attribute area after the inode's extra fields. */
function systemData(number: number, area: Buffer): Buffer | undefined {
  if (area.length < 4 || area.readUInt32LE(0) !== XATTR_MAGIC) return undefined
  const entries = area.subarray(4)
  for (let at = 0; at + 16 <= entries.length && entries.readUInt32LE(at) !== 0; ) {
    const nameLength = entries[at]!
    const index = entries[at + 1]!
    const valueOffset = entries.readUInt16LE(at + 2)
    const valueInode = entries.readUInt32LE(at + 4)
    const valueSize = entries.readUInt32LE(at + 8)
    if (at + 16 + nameLength > entries.length) throw badInode(number, 'an extended attribute runs past the inode')
    if (index === XATTR_SYSTEM && entries.toString('latin1', at + 16, at + 16 + nameLength) === 'data') {
      if (valueInode !== 0 || valueOffset + valueSize > entries.length) throw badInode(number, 'its inline data lies outside the inode')
      return Buffer.from(entries.subarray(valueOffset, valueOffset + valueSize))
    }
    at += (16 + nameLength + 3) & ~3
  }
  return undefined
}
