// A differencing VHD with its parents, read as the one disk the newest describes: parents found by relative
// name (through aliases) and checked by uuid, sectors taken from the newest that has them. Files and
// VhdDirectories mix freely, as in XO.
import { Readable } from 'node:stream'
import { dirname, join } from 'node:path'
import { LifeboatError } from '../../util/errors.ts'
import { openVhd } from './directory.ts'
import { localFileSystem, type FileSystemAccess } from './fileSystem.ts'
import { DISK_TYPE_DIFFERENCING, VHD_BLOCK_SIZE, VHD_SECTOR_SIZE, isBitmapFull, isSectorSet, type VhdFooter, type VhdHeader } from './structures.ts'
import { createVhdStream } from './stream.ts'
import type { Vhd } from './vhd.ts'

const READ_AHEAD = 4

/** A read started ahead of its consumer: its failure is reported when awaited, never as an unhandled rejection. */
export function ahead<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {})
  return promise
}

/** Opens `path` (a file, a VhdDirectory or an alias) and each parent in turn; they are returned child first. */
export async function openVhdFiles(path: string, options: { fs?: FileSystemAccess; force?: boolean; until?: string } = {}): Promise<Vhd[]> {
  const fs = options.fs ?? localFileSystem
  const files: Vhd[] = []
  // No cap on the length (XO refuses beyond 99): a loop is what must stop the walk.
  const seen = new Set<string>()
  try {
    let current = await openVhd(path, { fs, force: options.force })
    files.push(current)
    seen.add(current.path)
    while (current.footer.diskType === DISK_TYPE_DIFFERENCING && current.path !== options.until) {
      const parentPath = join(dirname(current.path), current.header.parentUnicodeName)
      if (current.header.parentUnicodeName === '' || !(await fs.exists(parentPath))) {
        throw new LifeboatError('VHD_PARENT_MISSING', `${current.path} needs its parent "${current.header.parentUnicodeName}", which is missing; the backup chain is broken.`, { data: { path: current.path } })
      }
      if (seen.has(parentPath)) throw new LifeboatError('VHD_BAD_CHAIN', `${current.path}: the parent chain loops back to ${parentPath}.`)
      const parent = await openVhd(parentPath, { fs, force: options.force })
      files.push(parent)
      seen.add(parent.path)
      if (parent.footer.uuid !== current.header.parentUuid) {
        throw new LifeboatError('VHD_PARENT_MISMATCH', `${current.path} expects parent ${current.header.parentUuid} but ${parentPath} is ${parent.footer.uuid}; the chain was mixed up.`)
      }
      if (parent.header.blockSize !== current.header.blockSize) {
        throw new LifeboatError('VHD_BAD_BLOCK_SIZE', `${current.path} and its parent ${parentPath} have different block sizes.`)
      }
      current = parent
    }
    return files
  } catch (error) {
    await Promise.all(files.map(f => f.close().catch(() => {})))
    throw error
  }
}

/** The newest data of a block across files ordered child first; missing sectors come from older files, else zeros. */
export async function readSyntheticBlock(files: readonly Vhd[], index: number): Promise<{ bitmap: Buffer; data: Buffer } | undefined> {
  let result: { bitmap: Buffer; data: Buffer } | undefined
  const sectors = files[0]!.header.blockSize / VHD_SECTOR_SIZE
  for (const file of files) {
    if (!file.isAllocated(index)) continue
    const block = await file.readBlock(index)
    if (result === undefined) {
      // Taken as read (each read is a new buffer, the bitmap right before the data): a merge writes it in one piece.
      result = block
    } else {
      for (let s = 0; s < sectors; s++) {
        if (isSectorSet(result.bitmap, s) || !isSectorSet(block.bitmap, s)) continue
        block.data.copy(result.data, s * VHD_SECTOR_SIZE, s * VHD_SECTOR_SIZE, (s + 1) * VHD_SECTOR_SIZE)
        result.bitmap[s >> 3]! |= 0x80 >> (s & 7)
      }
    }
    if (isBitmapFull(result.bitmap, sectors)) return result
  }
  if (result === undefined) return undefined
  for (let s = 0; s < sectors; s++) if (!isSectorSet(result.bitmap, s)) result.data.fill(0, s * VHD_SECTOR_SIZE, (s + 1) * VHD_SECTOR_SIZE)
  return result
}

export class VhdChain {
  readonly paths: string[]
  readonly size: number
  readonly uuid: string
  readonly blockCount: number
  /** Child first. */
  readonly vhds: readonly Vhd[]

  private constructor(files: Vhd[]) {
    this.vhds = files
    this.paths = files.map(f => f.path)
    this.size = files[0]!.footer.currentSize
    this.uuid = files[0]!.footer.uuid
    this.blockCount = Math.ceil(this.size / files[0]!.header.blockSize)
  }

  static async open(path: string, options: { fs?: FileSystemAccess } = {}): Promise<VhdChain> {
    return new VhdChain(await openVhdFiles(path, options))
  }

  get footer(): VhdFooter {
    return this.vhds[0]!.footer
  }

  get header(): VhdHeader {
    return this.vhds[0]!.header
  }

  get blockSize(): number {
    return this.vhds[0]!.header.blockSize
  }

  isAllocated(index: number): boolean {
    return index >= 0 && index < this.blockCount && this.vhds.some(f => f.isAllocated(index))
  }

  allocatedBlocks(): number[] {
    const out: number[] = []
    for (let i = 0; i < this.blockCount; i++) if (this.isAllocated(i)) out.push(i)
    return out
  }

  async readBlock(index: number): Promise<Buffer> {
    if (!Number.isInteger(index) || index < 0 || index >= this.blockCount) {
      throw new LifeboatError('VHD_BAD_BLOCK_INDEX', `Block ${index} is outside the disk (0…${this.blockCount - 1}).`)
    }
    return (await readSyntheticBlock(this.vhds, index))?.data ?? Buffer.alloc(this.blockSize)
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new LifeboatError('VHD_BAD_RANGE', `The range ${offset}+${length} is outside the disk (${this.size} bytes).`)
    }
    const out = Buffer.alloc(length)
    const { blockSize } = this
    for (let at = offset; at < offset + length; ) {
      const index = Math.floor(at / blockSize)
      const within = at - index * blockSize
      const count = Math.min(blockSize - within, offset + length - at)
      if (this.isAllocated(index)) (await this.readBlock(index)).copy(out, at - offset, within, within + count)
      at += count
    }
    return out
  }

  /** Exactly `size` bytes, zeros included, with a few blocks read ahead. */
  rawStream(): Readable {
    const { blockSize, size, blockCount } = this
    const read = (index: number): Promise<Buffer> => (this.isAllocated(index) ? this.readBlock(index) : Promise.resolve(Buffer.alloc(blockSize)))
    async function* generate(): AsyncGenerator<Buffer> {
      const pending: Promise<Buffer>[] = []
      let next = 0
      for (let index = 0; index < blockCount; index++) {
        while (next < blockCount && pending.length < READ_AHEAD) pending.push(ahead(read(next++)))
        const data = await pending.shift()!
        yield index === blockCount - 1 ? data.subarray(0, size - index * blockSize) : data
      }
    }
    return Readable.from(generate(), { objectMode: false, highWaterMark: blockSize })
  }

  /** The whole chain as one dynamic VHD (what a restore uploads). */
  toVhdStream(options: { uuid?: string } = {}): { length: number; stream: Readable } {
    if (this.blockSize !== VHD_BLOCK_SIZE) {
      throw new LifeboatError('VHD_BAD_BLOCK_SIZE', `The chain uses ${this.blockSize}-byte blocks; only ${VHD_BLOCK_SIZE}-byte blocks can be streamed as one VHD.`)
    }
    const blockIndexes = this.allocatedBlocks()
    const readBlock = (index: number) => this.readBlock(index)
    async function* blocks() {
      const pending = blockIndexes.slice(0, READ_AHEAD).map(index => ahead(readBlock(index)))
      for (let k = 0; k < blockIndexes.length; k++) {
        const data = await pending.shift()!
        if (k + READ_AHEAD < blockIndexes.length) pending.push(ahead(readBlock(blockIndexes[k + READ_AHEAD]!)))
        yield { index: blockIndexes[k]!, data }
      }
    }
    return createVhdStream({ size: this.size, uuid: options.uuid ?? this.uuid, blockIndexes, blocks: blocks(), timestamp: this.footer.timestamp })
  }

  close(): Promise<void> {
    return Promise.all(this.vhds.map(f => f.close())).then(() => {})
  }
}

export async function checkVhdChain(path: string, options: { fs?: FileSystemAccess } = {}): Promise<{ paths: string[]; footer: VhdFooter; header: VhdHeader }> {
  const chain = await VhdChain.open(path, options)
  try {
    return { paths: chain.paths, footer: chain.footer, header: chain.header }
  } finally {
    await chain.close()
  }
}
