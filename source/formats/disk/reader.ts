// Random access to a disk's bytes at any offset: the one reader a restore point's disk is browsed through
// (partition tables, LVM, file systems, the FUSE view), with a bounded cache of whole blocks in front of the
// chain, so that the many small reads of a file system cost one chain read per block.
import { LifeboatError } from '../../util/errors.ts'

export interface DiskReader {
  readonly size: number
  /** Exactly `length` bytes at `offset`; the range must lie inside the disk. */
  read(offset: number, length: number): Promise<Buffer>
}

/** What the cache reads from: a VhdChain fits (blocks of the newest data, unallocated ones zeros). */
export interface BlockSource {
  readonly size: number
  readonly blockSize: number
  isAllocated(index: number): boolean
  readBlock(index: number): Promise<Buffer>
}

export const DEFAULT_CACHE_BLOCKS = 32

function checkRange(size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new LifeboatError('DISK_BAD_RANGE', `The range ${offset}+${length} lies outside the disk (${size} bytes); the partition table or volume metadata is damaged.`)
  }
}

/** A reader over a block source with an LRU of at most `cacheBlocks` blocks (2 MiB each for a VHD): memory stays bounded whatever the disk. */
export function cachedBlockReader(source: BlockSource, options: { cacheBlocks?: number } = {}): DiskReader {
  const limit = Math.max(1, options.cacheBlocks ?? DEFAULT_CACHE_BLOCKS)
  const { blockSize, size } = source
  // Promises, so that concurrent reads of one block share one chain read.
  const cache = new Map<number, Promise<Buffer>>()
  const block = (index: number): Promise<Buffer> => {
    const hit = cache.get(index)
    if (hit !== undefined) {
      cache.delete(index)
      cache.set(index, hit)
      return hit
    }
    const loading = source.readBlock(index)
    cache.set(index, loading)
    loading.catch(() => cache.delete(index))
    while (cache.size > limit) cache.delete(cache.keys().next().value!)
    return loading
  }
  return {
    size,
    async read(offset, length) {
      checkRange(size, offset, length)
      const out = Buffer.alloc(length)
      for (let at = offset; at < offset + length; ) {
        const index = Math.floor(at / blockSize)
        const within = at - index * blockSize
        const count = Math.min(blockSize - within, offset + length - at)
        if (source.isAllocated(index)) (await block(index)).copy(out, at - offset, within, within + count)
        at += count
      }
      return out
    },
  }
}

/** The bytes `offset…offset+size` of a disk as a disk of their own (a partition, a volume's extent). */
export function sliceReader(disk: DiskReader, offset: number, size: number): DiskReader {
  checkRange(disk.size, offset, size)
  return {
    size,
    read(at, length) {
      checkRange(size, at, length)
      return disk.read(offset + at, length)
    },
  }
}
