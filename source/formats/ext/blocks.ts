// Where a file's blocks lie: ext4's extent trees (any depth) and ext2/3's direct and indirect block pointers,
// both answered as runs (a stretch of contiguous blocks, or a hole that reads as zeros). Each answer descends
// the tree afresh from the inode, so that a damaged tree can neither loop (depths strictly decrease, keys
// strictly increase) nor make a run that does not move forward.
import { LifeboatError } from '../../util/errors.ts'
import { INODE_FLAGS, badInode, type Inode } from './inode.ts'

export interface BlockDevice {
  readonly blockSize: number
  readonly blocksCount: number
  /** One file-system block; a block number outside the file system is refused. */
  readBlock(block: number): Promise<Buffer>
}

/** `length` blocks from the asked one: at `physical` on the disk, or a hole (unwritten, or never allocated). */
export interface BlockRun {
  length: number
  physical: number | undefined
}

/** The run that starts at logical block `block`, at most `limit` (≥ 1) blocks long. */
export type BlockMap = (block: number, limit: number) => Promise<BlockRun>

const EXTENT_MAGIC = 0xf30a
const MAX_EXTENT_DEPTH = 5
const UNWRITTEN = 32768
const DIRECT = 12

export function blockMap(device: BlockDevice, inode: Inode): BlockMap {
  return (inode.flags & INODE_FLAGS.extents) !== 0 ? extentMap(device, inode) : indirectMap(device, inode)
}

function badExtents(inode: Inode, detail: string): LifeboatError {
  return new LifeboatError('EXT_BAD_EXTENTS', `The extent tree of the ext file system's inode ${inode.number} is damaged (${detail}); run e2fsck on a copy of the disk, or restore the whole VM.`)
}

function data(device: BlockDevice, inode: Inode, physical: number, length: number): BlockRun {
  if (physical + length > device.blocksCount) throw badInode(inode.number, `its blocks ${physical}…${physical + length - 1} lie outside the file system`)
  return { physical, length }
}

function extentMap(device: BlockDevice, inode: Inode): BlockMap {
  return async (block, limit) => {
    const hole = (length: number): BlockRun => ({ physical: undefined, length: Math.min(length, limit) })
    let node = inode.block
    let expectedDepth: number | undefined
    // The first logical block past the subtree being searched: a hole at a leaf's end reaches no further.
    let bound = Infinity
    for (;;) {
      if (node.length < 12 || node.readUInt16LE(0) !== EXTENT_MAGIC) throw badExtents(inode, 'a node without the extent magic number')
      const entries = node.readUInt16LE(2)
      const max = node.readUInt16LE(4)
      const depth = node.readUInt16LE(6)
      if (entries > max || 12 + max * 12 > node.length) throw badExtents(inode, `${entries} entries of at most ${max} in a node of ${node.length} bytes`)
      if (depth > MAX_EXTENT_DEPTH || (expectedDepth !== undefined && depth !== expectedDepth)) throw badExtents(inode, `a node of depth ${depth} where ${expectedDepth ?? `at most ${MAX_EXTENT_DEPTH}`} was due`)
      if (depth === 0) {
        let previousEnd = 0
        for (let k = 0; k < entries; k++) {
          const at = 12 + 12 * k
          const start = node.readUInt32LE(at)
          const raw = node.readUInt16LE(at + 4)
          const length = raw > UNWRITTEN ? raw - UNWRITTEN : raw
          if (length === 0 || start < previousEnd) throw badExtents(inode, `extent ${k} of a leaf overlaps the one before or is empty`)
          previousEnd = start + length
          if (block < start) return hole(Math.min(start, bound) - block)
          if (block < start + length) {
            const count = Math.min(Math.min(start + length, bound) - block, limit)
            if (raw > UNWRITTEN) return hole(count)
            return data(device, inode, node.readUInt16LE(at + 6) * 2 ** 32 + node.readUInt32LE(at + 8) + (block - start), count)
          }
        }
        return hole(bound - block)
      }
      let chosen = -1
      let previous = -1
      for (let k = 0; k < entries; k++) {
        const start = node.readUInt32LE(12 + 12 * k)
        if (start <= previous) throw badExtents(inode, 'index entries out of order')
        previous = start
        if (start > block) {
          bound = Math.min(bound, start)
          break
        }
        chosen = k
      }
      if (chosen === -1) return hole(bound - block)
      const at = 12 + 12 * chosen
      node = await device.readBlock(node.readUInt16LE(at + 8) * 2 ** 32 + node.readUInt32LE(at + 4))
      expectedDepth = depth - 1
    }
  }
}

function indirectMap(device: BlockDevice, inode: Inode): BlockMap {
  const perBlock = device.blockSize / 4
  /** The run of pointers from `index` of a pointer table: consecutive blocks, or zeros (a hole). */
  const scan = (table: Buffer, index: number, count: number, limit: number): BlockRun => {
    const first = table.readUInt32LE(index * 4)
    let length = 1
    const most = Math.min(count - index, limit)
    while (length < most && table.readUInt32LE((index + length) * 4) === (first === 0 ? 0 : first + length)) length++
    return first === 0 ? { physical: undefined, length } : data(device, inode, first, length)
  }
  return async (block, limit) => {
    if (block < DIRECT) return scan(inode.block, block, DIRECT, limit)
    let rest = block - DIRECT
    for (const [slot, levels] of [[12, 1], [13, 2], [14, 3]] as const) {
      const capacity = perBlock ** levels
      if (rest >= capacity) {
        rest -= capacity
        continue
      }
      // `pointer` covers `covers` blocks, of which the asked one is the `rest`-th.
      let pointer = inode.block.readUInt32LE(slot * 4)
      let covers = capacity
      for (let level = levels; ; level--) {
        if (pointer === 0) return { physical: undefined, length: Math.min(covers - rest, limit) }
        const table = await device.readBlock(pointer)
        if (level === 1) return scan(table, rest, perBlock, limit)
        covers = perBlock ** (level - 1)
        pointer = table.readUInt32LE(Math.floor(rest / covers) * 4)
        rest %= covers
      }
    }
    throw badInode(inode.number, `block ${block} lies beyond what block pointers reach`)
  }
}
