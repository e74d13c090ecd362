// One VHD file with random access (fixed, dynamic or differencing): checked on open, read block by block,
// and, opened writable, changed in place by a merge (blocks written, block table grown, footers replaced).
import { LifeboatError, errorCode } from '../../util/errors.ts'
import { localFileSystem, readAt, type FileSystemAccess, type RandomAccessFile } from './fileSystem.ts'
import type { Vhd } from './vhd.ts'
import {
  BAT_UNUSED, DISK_TYPE_FIXED, VHD_BLOCK_SIZE, VHD_FOOTER_SIZE, VHD_HEADER_SIZE, VHD_SECTOR_SIZE, ZERO_UUID, batSize, bitmapSize,
  checkBlockTable, decodeFooter, decodeHeader, encodeFooter, encodeHeader, fullBitmap, type VhdFooter, type VhdHeader,
} from './structures.ts'

/** Bytes read at once when a VHD file is opened: its footer, header and the block table of a disk up to 30 GiB. */
const OPEN_PREFIX = 64 * 1024

/** A block's bitmap and data as one buffer when they lie side by side in memory (a block as read): one write, not two. */
function sideBySide(bitmap: Buffer, data: Buffer): Buffer | undefined {
  if (bitmap.buffer !== data.buffer || bitmap.byteOffset + bitmap.length !== data.byteOffset) return undefined
  return Buffer.from(bitmap.buffer, bitmap.byteOffset, bitmap.length + data.length)
}

export interface VhdFileOptions {
  fs?: FileSystemAccess
  writable?: boolean
  /** Skip the closing-footer check: a merge in progress overwrites it (resume only). */
  force?: boolean
  /** The alias the file was reached through: it becomes `path`, as parents are named relative to the alias. */
  knownAs?: string
}

export class VhdFile implements Vhd {
  readonly path: string
  readonly blockCount: number
  private footerValue: VhdFooter
  private headerValue: VhdHeader
  private readonly file: RandomAccessFile
  /** Undefined for a fixed disk. */
  private bat: Buffer | undefined
  private endOfData: number

  private constructor(path: string, file: RandomAccessFile, footer: VhdFooter, header: VhdHeader, bat: Buffer | undefined, endOfData: number) {
    this.path = path
    this.file = file
    this.footerValue = footer
    this.headerValue = header
    this.bat = bat
    this.endOfData = endOfData
    this.blockCount = Math.ceil(footer.currentSize / header.blockSize)
  }

  get footer(): VhdFooter {
    return this.footerValue
  }

  get header(): VhdHeader {
    return this.headerValue
  }

  static async open(path: string, options: VhdFileOptions = {}): Promise<VhdFile> {
    const fs = options.fs ?? localFileSystem
    let file: RandomAccessFile
    try {
      file = await fs.open(path, options.writable === true ? 'r+' : 'r')
    } catch (error) {
      if (errorCode(error) === 'ENOENT') throw new LifeboatError('FILE_NOT_FOUND', `${path} does not exist; check the path.`, { cause: error, data: { path } })
      throw error
    }
    try {
      return await VhdFile.load(options.knownAs ?? path, file, options.force === true)
    } catch (error) {
      await file.close().catch(() => {})
      if (error instanceof LifeboatError) {
        throw new LifeboatError(error.code, `${path}: ${error.message}`, { cause: error, data: { path } })
      }
      throw error
    }
  }

  private static async load(path: string, file: RandomAccessFile, force: boolean): Promise<VhdFile> {
    const size = await file.size()
    if (size < VHD_FOOTER_SIZE) throw new LifeboatError('VHD_TRUNCATED', `The file has ${size} bytes, too few for a VHD footer.`)
    // The footer, header and block table of most disks lie in the first kibibytes: one read serves them all
    // (a clean opens every VHD of a folder, and each read is a round trip on a share).
    const prefix = await readAt(file, 0, Math.min(size, OPEN_PREFIX))
    const bytesAt = (position: number, length: number) => (position + length <= prefix.length ? Promise.resolve(prefix.subarray(position, position + length)) : readAt(file, position, length))
    const headBytes = await bytesAt(0, VHD_FOOTER_SIZE)
    const tailBytes = await bytesAt(size - VHD_FOOTER_SIZE, VHD_FOOTER_SIZE)
    let footer: VhdFooter
    try {
      footer = decodeFooter(headBytes)
    } catch (headError) {
      // A fixed disk has its only footer at the end; anything else must start with one.
      const tail = (() => {
        try {
          return decodeFooter(tailBytes)
        } catch {
          return undefined
        }
      })()
      if (tail?.diskType !== DISK_TYPE_FIXED) throw headError
      if (tail.currentSize > size - VHD_FOOTER_SIZE) throw new LifeboatError('VHD_TRUNCATED', `The fixed VHD claims ${tail.currentSize} bytes but holds ${size - VHD_FOOTER_SIZE}.`)
      const header: VhdHeader = {
        dataOffset: 0, tableOffset: 0, headerVersion: 0, maxTableEntries: Math.ceil(tail.currentSize / VHD_BLOCK_SIZE), blockSize: VHD_BLOCK_SIZE,
        checksum: 0, parentUuid: ZERO_UUID, parentTimestamp: 0, parentUnicodeName: '', parentLocators: [],
      }
      return new VhdFile(path, file, tail, header, undefined, tail.currentSize)
    }
    if (footer.diskType === DISK_TYPE_FIXED) throw new LifeboatError('VHD_BAD_DISK_TYPE', 'A fixed VHD footer was found at the start of the file, where only dynamic and differencing disks have one.')
    if (!force) {
      if (tailBytes.toString('latin1', 0, 8) !== 'conectix') {
        throw new LifeboatError('VHD_TRUNCATED', 'The VHD has no closing footer: the file is truncated or was not completely written.')
      }
      decodeFooter(tailBytes)
      if (!tailBytes.equals(headBytes)) throw new LifeboatError('VHD_FOOTER_MISMATCH', 'The two copies of the VHD footer differ; the file was changed by an interrupted write.')
    }
    const limit = force ? size : size - VHD_FOOTER_SIZE
    const headerBytes = await bytesAt(footer.dataOffset, VHD_HEADER_SIZE)
    if (footer.dataOffset + VHD_HEADER_SIZE > limit) throw new LifeboatError('VHD_TRUNCATED', 'The VHD ends before its header.')
    const header = decodeHeader(headerBytes, footer)
    const tableEnd = header.tableOffset + batSize(header.maxTableEntries)
    if (tableEnd > limit) throw new LifeboatError('VHD_BAD_TABLE', `The VHD block table (${header.tableOffset}…${tableEnd}) lies outside the file (${size} bytes).`)
    // A copy: the table is changed in place by merges, and must not hold the whole prefix alive.
    const bat = Buffer.from(await bytesAt(header.tableOffset, batSize(header.maxTableEntries)))
    const allocated = checkBlockTable(bat, header, limit)
    const blockBytes = bitmapSize(header.blockSize) + header.blockSize
    let endOfData = tableEnd
    for (const index of allocated) endOfData = Math.max(endOfData, bat.readUInt32BE(index * 4) * VHD_SECTOR_SIZE + blockBytes)
    for (const locator of header.parentLocators) {
      if (locator.platformCode === 0 || locator.dataOffset >= limit) continue
      const space = Math.max(locator.dataLength, locator.dataSpace < VHD_SECTOR_SIZE ? locator.dataSpace * VHD_SECTOR_SIZE : locator.dataSpace)
      endOfData = Math.max(endOfData, Math.min(limit, Math.ceil((locator.dataOffset + space) / VHD_SECTOR_SIZE) * VHD_SECTOR_SIZE))
    }
    return new VhdFile(path, file, footer, header, bat, endOfData)
  }

  isAllocated(index: number): boolean {
    if (this.bat === undefined) return index >= 0 && index < this.blockCount
    return index >= 0 && index < this.headerValue.maxTableEntries && this.bat.readUInt32BE(index * 4) !== BAT_UNUSED
  }

  /** Allocated block indexes, ascending. */
  allocatedBlocks(): number[] {
    const out: number[] = []
    const entries = this.bat === undefined ? this.blockCount : this.headerValue.maxTableEntries
    for (let i = 0; i < entries; i++) if (this.isAllocated(i)) out.push(i)
    return out
  }

  /** A block with its sector bitmap; an unallocated block reads as an empty bitmap and zeros. */
  async readBlock(index: number): Promise<{ bitmap: Buffer; data: Buffer }> {
    const { blockSize } = this.headerValue
    if (!this.isAllocated(index)) return { bitmap: Buffer.alloc(bitmapSize(blockSize)), data: Buffer.alloc(blockSize) }
    if (this.bat === undefined) {
      const data = Buffer.alloc(blockSize)
      const length = Math.min(blockSize, this.footerValue.currentSize - index * blockSize)
      const read = await this.file.read(length === blockSize ? data : data.subarray(0, length), index * blockSize)
      if (read < length) throw new LifeboatError('VHD_TRUNCATED', `${this.path}: the fixed VHD ends inside block ${index}.`)
      return { bitmap: fullBitmap(blockSize), data }
    }
    const bitmapBytes = bitmapSize(blockSize)
    const buffer = Buffer.allocUnsafe(bitmapBytes + blockSize)
    const read = await this.file.read(buffer, this.blockPosition(index))
    if (read < buffer.length) throw new LifeboatError('VHD_TRUNCATED', `${this.path}: the VHD ends inside block ${index}.`)
    return { bitmap: buffer.subarray(0, bitmapBytes), data: buffer.subarray(bitmapBytes) }
  }

  private blockPosition(index: number): number {
    return this.bat!.readUInt32BE(index * 4) * VHD_SECTOR_SIZE
  }

  private dynamicTable(): Buffer {
    if (this.bat === undefined) throw new LifeboatError('VHD_BAD_DISK_TYPE', `${this.path} is a fixed VHD; it cannot be merged into.`)
    return this.bat
  }

  /** Writes a whole block in place, or appends it and records it in the block table right after. */
  async writeBlock(index: number, bitmap: Buffer, data: Buffer): Promise<void> {
    const bat = this.dynamicTable()
    if (index >= this.headerValue.maxTableEntries) throw new LifeboatError('VHD_BAD_TABLE', `${this.path}: block ${index} is beyond the block table; grow it first.`)
    const writeAt = async (position: number) => {
      const whole = sideBySide(bitmap, data)
      if (whole !== undefined) return this.file.write(whole, position)
      await this.file.write(bitmap, position)
      await this.file.write(data, position + bitmap.length)
    }
    if (this.isAllocated(index)) return writeAt(this.blockPosition(index))
    const position = this.endOfData
    await this.extend(position + bitmap.length + data.length, () => writeAt(position))
    bat.writeUInt32BE(position / VHD_SECTOR_SIZE, index * 4)
    await this.writeTableEntry(index)
  }

  /** Bytes the file grows by when its table grows to `entries` and `blocks` are written (what a merge must find free). */
  growth(entries: number, blocks: number[]): number {
    const header = this.headerValue
    const blockBytes = bitmapSize(header.blockSize) + header.blockSize
    const appended = blocks.filter(index => !this.isAllocated(index)).length
    if (entries <= header.maxTableEntries) return appended * blockBytes
    const newTableEnd = header.tableOffset + batSize(entries)
    const moved = this.allocatedBlocks().filter(index => this.blockPosition(index) < newTableEnd).length
    return Math.max(0, newTableEnd - this.endOfData) + (appended + moved) * blockBytes
  }

  /**
   * Grows the file to `end` with `write` filling what lies past the current data. The closing footer is
   * moved to `end` first and the old one stays until `write` covers it, so the file reads as a whole VHD at
   * every step; when `write` fails (a full remote) the file is put back as it was.
   */
  private async extend(end: number, write: () => Promise<void>): Promise<void> {
    const previousEnd = this.endOfData
    const footer = encodeFooter(this.footerValue)
    try {
      await this.file.write(footer, end)
      await write()
    } catch (error) {
      // The old closing footer first (in place: no new space needed), then the grown tail cut off.
      await this.file.write(footer, previousEnd).catch(() => {})
      await this.file.truncate(previousEnd + VHD_FOOTER_SIZE).catch(() => {})
      throw error
    }
    this.endOfData = end
  }

  private async writeTableEntry(index: number): Promise<void> {
    const sectorStart = Math.floor((index * 4) / VHD_SECTOR_SIZE) * VHD_SECTOR_SIZE
    await this.file.write(this.dynamicTable().subarray(sectorStart, sectorStart + VHD_SECTOR_SIZE), this.headerValue.tableOffset + sectorStart)
  }

  /**
   * Grows the block table to `entries`. When the larger table would cover the first data blocks, those
   * blocks are first copied to the end and re-pointed one by one, so an interruption never loses data.
   */
  async growTable(entries: number): Promise<void> {
    const bat = this.dynamicTable()
    const header = this.headerValue
    if (entries <= header.maxTableEntries) return
    const newTableEnd = header.tableOffset + batSize(entries)
    const blockBytes = bitmapSize(header.blockSize) + header.blockSize
    for (const locator of header.parentLocators) {
      if (locator.platformCode !== 0 && locator.dataOffset >= header.tableOffset && locator.dataOffset < newTableEnd) {
        throw new LifeboatError('VHD_UNSUPPORTED_LAYOUT', `${this.path}: a parent locator sits right after the block table, which therefore cannot grow.`)
      }
    }
    const grown = Buffer.alloc(batSize(entries), 0xff)
    // The larger table's room past the data, with the footer moved beyond it; the table is written last.
    if (newTableEnd > this.endOfData) await this.extend(newTableEnd, () => this.file.write(grown.subarray(this.endOfData - header.tableOffset), this.endOfData))
    for (let index = 0; index < header.maxTableEntries; index++) {
      if (!this.isAllocated(index) || this.blockPosition(index) >= newTableEnd) continue
      const buffer = await readAt(this.file, this.blockPosition(index), blockBytes)
      if (buffer.length < blockBytes) throw new LifeboatError('VHD_TRUNCATED', `${this.path}: the VHD ends inside block ${index}.`)
      const position = this.endOfData
      await this.extend(position + blockBytes, () => this.file.write(buffer, position))
      bat.writeUInt32BE(position / VHD_SECTOR_SIZE, index * 4)
      await this.writeTableEntry(index)
    }
    bat.copy(grown, 0, 0, header.maxTableEntries * 4)
    this.bat = grown
    await this.file.write(grown, header.tableOffset)
    this.headerValue = { ...header, maxTableEntries: entries }
    await this.file.write(encodeHeader(this.headerValue), this.footerValue.dataOffset)
  }

  /** Replaces the footer (both copies) and rewrites the header; the file then ends right after the closing footer. */
  async writeFooter(changes: Partial<Omit<VhdFooter, 'checksum'>>): Promise<void> {
    const bytes = encodeFooter({ ...this.footerValue, ...changes })
    this.footerValue = decodeFooter(bytes)
    await this.file.write(encodeHeader(this.headerValue), this.footerValue.dataOffset)
    await this.file.write(bytes, 0)
    await this.file.write(bytes, this.endOfData)
    await this.file.truncate(this.endOfData + VHD_FOOTER_SIZE)
  }

  close(): Promise<void> {
    return this.file.close()
  }
}
