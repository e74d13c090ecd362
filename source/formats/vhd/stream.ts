// VHD as a stream: parse one front to back (an XAPI export, an upload) and write one whose exact length is
// known before the first byte (what XAPI imports and remotes store). Memory stays at one block.
import { Readable } from 'node:stream'
import { LifeboatError } from '../../util/errors.ts'
import {
  DISK_TYPE_FIXED, VHD_BLOCK_SIZE, VHD_DEFAULT_TABLE_OFFSET, VHD_FOOTER_SIZE, VHD_HEADER_SIZE, VHD_SECTOR_SIZE, batSize, bitmapSize,
  checkBlockTable, decodeFooter, decodeHeader, encodeFooter, encodeHeader, fullBitmap, macxLocator, newFooterAndHeader,
  type VhdFooter, type VhdHeader,
} from './structures.ts'

export interface VhdStreamReader {
  footer: VhdFooter
  header: VhdHeader
  /** Allocated blocks, in the order blocks() yields them (file order). */
  blockIndexes: number[]
  blocks(): AsyncGenerator<{ index: number; bitmap: Buffer; data: Buffer }>
}

/** Sequential reads of exact lengths from chunks of any size. */
class ByteReader {
  position = 0
  private chunk: Buffer = Buffer.alloc(0)
  private readonly iterator: AsyncIterator<Buffer>

  constructor(source: AsyncIterable<Buffer>) {
    this.iterator = source[Symbol.asyncIterator]()
  }

  private async next(): Promise<boolean> {
    const { value, done } = await this.iterator.next()
    if (done === true) return false
    this.chunk = Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array)
    return true
  }

  /** Exactly `length` bytes; VHD_TRUNCATED when the stream ends first. */
  async read(length: number, what: string): Promise<Buffer> {
    if (this.chunk.length >= length) return this.take(length)
    const parts: Buffer[] = []
    let missing = length
    while (missing > 0) {
      if (this.chunk.length === 0 && !(await this.next())) {
        throw new LifeboatError('VHD_TRUNCATED', `The VHD stream ended in the middle of ${what} (offset ${this.position}); the export or upload was cut short.`)
      }
      const part = this.take(Math.min(missing, this.chunk.length))
      parts.push(part)
      missing -= part.length
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length)
  }

  async skipTo(position: number, what: string): Promise<void> {
    if (position < this.position) {
      throw new LifeboatError('VHD_BAD_STREAM_ORDER', `The VHD places ${what} at offset ${position}, before data already read (${this.position}); it cannot be read as a stream.`)
    }
    while (this.position < position) {
      if (this.chunk.length === 0 && !(await this.next())) {
        throw new LifeboatError('VHD_TRUNCATED', `The VHD stream ended before ${what} (offset ${position}); the export or upload was cut short.`)
      }
      this.take(Math.min(position - this.position, this.chunk.length))
    }
  }

  /** Reads to the end and returns the last `length` bytes (or fewer). */
  async tail(length: number): Promise<Buffer> {
    let kept = this.chunk
    this.position += kept.length
    this.chunk = Buffer.alloc(0)
    while (await this.next()) {
      this.position += this.chunk.length
      kept = Buffer.concat([kept, this.chunk])
      kept = kept.subarray(Math.max(0, kept.length - length))
      this.chunk = Buffer.alloc(0)
    }
    return kept.subarray(Math.max(0, kept.length - length))
  }

  private take(length: number): Buffer {
    const part = this.chunk.subarray(0, length)
    this.chunk = this.chunk.subarray(length)
    this.position += length
    return part
  }
}

export async function openVhdStream(source: AsyncIterable<Buffer>): Promise<VhdStreamReader> {
  const reader = new ByteReader(source)
  const footer = decodeFooter(await reader.read(VHD_FOOTER_SIZE, 'the footer'))
  if (footer.diskType === DISK_TYPE_FIXED) {
    throw new LifeboatError('VHD_BAD_DISK_TYPE', 'A fixed VHD cannot be read as a stream (its footer is at the end); send a dynamic or differencing VHD.')
  }
  await reader.skipTo(footer.dataOffset, 'the header')
  const header = decodeHeader(await reader.read(VHD_HEADER_SIZE, 'the header'), footer)
  await reader.skipTo(header.tableOffset, 'the block table')
  const tableBytes = batSize(header.maxTableEntries)
  const bat = await reader.read(tableBytes, 'the block table')
  const blockIndexes = checkBlockTable(bat, header, Number.MAX_SAFE_INTEGER)
  const bitmapBytes = bitmapSize(header.blockSize)
  let started = false
  async function* blocks(): AsyncGenerator<{ index: number; bitmap: Buffer; data: Buffer }> {
    if (started) throw new LifeboatError('VHD_STREAM_CONSUMED', 'The blocks of a VHD stream can be read only once.')
    started = true
    for (const index of blockIndexes) {
      await reader.skipTo(bat.readUInt32BE(index * 4) * VHD_SECTOR_SIZE, `block ${index}`)
      const bitmap = await reader.read(bitmapBytes, `the bitmap of block ${index}`)
      const data = await reader.read(header.blockSize, `block ${index}`)
      yield { index, bitmap, data }
    }
    const trailer = await reader.tail(VHD_FOOTER_SIZE)
    if (trailer.length < VHD_FOOTER_SIZE) {
      throw new LifeboatError('VHD_TRUNCATED', 'The VHD stream ended before its closing footer; the export or upload was cut short.')
    }
    decodeFooter(trailer)
  }
  return { footer, header, blockIndexes, blocks }
}

export interface VhdStreamOptions {
  size: number
  uuid: string
  blockIndexes: number[]
  blocks: AsyncIterable<{ index: number; data: Buffer }>
  /** `locator`: XAPI's layout (a MacX entry whose sector at 1536 stays zero); XO writes no locator entries, so backups leave it unset. */
  parent?: { uuid: string; unicodeName: string; timestamp?: number; locator?: boolean }
  creator?: string
  timestamp?: number
  tableOffset?: number
}

function layout(size: number, options: { tableOffset?: number; locator?: boolean }) {
  const tableOffset = options.tableOffset ?? (options.locator === true ? 2048 : VHD_DEFAULT_TABLE_OFFSET)
  if (tableOffset % VHD_SECTOR_SIZE !== 0 || tableOffset < VHD_FOOTER_SIZE + VHD_HEADER_SIZE + (options.locator === true ? VHD_SECTOR_SIZE : 0)) {
    throw new LifeboatError('VHD_BAD_TABLE', `A block table offset of ${tableOffset} leaves no room for the header${options.locator === true ? ' and the parent locator' : ''}.`)
  }
  const entries = Math.ceil(size / VHD_BLOCK_SIZE)
  return { tableOffset, entries, firstBlock: tableOffset + batSize(entries), blockBytes: bitmapSize(VHD_BLOCK_SIZE) + VHD_BLOCK_SIZE }
}

export function vhdStreamLength(size: number, allocatedBlockCount: number, options: { tableOffset?: number } = {}): number {
  const { firstBlock, blockBytes } = layout(size, options)
  return firstBlock + allocatedBlockCount * blockBytes + VHD_FOOTER_SIZE
}

/** The announced blocks of a new VHD: inside a disk of `entries` blocks, ascending. */
export function checkBlockIndexes(indexes: number[], entries: number): void {
  for (let k = 0; k < indexes.length; k++) {
    const index = indexes[k]!
    if (!Number.isInteger(index) || index < 0 || index >= entries || (k > 0 && index <= indexes[k - 1]!)) {
      throw new LifeboatError('VHD_BAD_BLOCK_LIST', `Block ${index} is out of range (0…${entries - 1}) or out of ascending order; the VHD cannot be written.`)
    }
  }
}

/** A block coming to a writer: the one announced at that place, whole. */
export function checkArrivingBlock(index: number, data: Buffer, expected: number | undefined): void {
  if (index !== expected) {
    throw new LifeboatError('VHD_BAD_BLOCK_LIST', `Block ${index} came where block ${expected ?? '(none)'} was announced; the VHD being written would be inconsistent.`)
  }
  if (data.length !== VHD_BLOCK_SIZE) throw new LifeboatError('VHD_BAD_BLOCK_LIST', `Block ${index} has ${data.length} bytes instead of ${VHD_BLOCK_SIZE}.`)
}

export function checkAllArrived(count: number, announced: number): void {
  if (count !== announced) throw new LifeboatError('VHD_BAD_BLOCK_LIST', `Only ${count} of the ${announced} announced blocks came; the VHD being written is incomplete.`)
}

export function createVhdStream(options: VhdStreamOptions): { length: number; stream: Readable } {
  const useLocator = options.parent?.locator === true
  const { tableOffset, entries, firstBlock, blockBytes } = layout(options.size, { tableOffset: options.tableOffset, locator: useLocator })
  const expected = options.blockIndexes
  checkBlockIndexes(expected, entries)
  const { footer, header } = newFooterAndHeader({
    size: options.size, uuid: options.uuid, tableOffset, creator: options.creator, timestamp: options.timestamp,
    parent: options.parent === undefined ? undefined
      : { ...options.parent, locator: useLocator ? macxLocator(options.parent.unicodeName, VHD_FOOTER_SIZE + VHD_HEADER_SIZE) : undefined },
  })
  const footerBytes = encodeFooter(footer)
  const bat = Buffer.alloc(batSize(entries), 0xff)
  expected.forEach((index, k) => bat.writeUInt32BE((firstBlock + k * blockBytes) / VHD_SECTOR_SIZE, index * 4))
  const gap = Buffer.alloc(tableOffset - VHD_FOOTER_SIZE - VHD_HEADER_SIZE)
  const bitmap = fullBitmap(VHD_BLOCK_SIZE)

  async function* generate(): AsyncGenerator<Buffer> {
    yield Buffer.concat([footerBytes, encodeHeader(header), gap, bat])
    let k = 0
    for await (const { index, data } of options.blocks) {
      checkArrivingBlock(index, data, expected[k])
      yield bitmap
      yield data
      k++
    }
    checkAllArrived(k, expected.length)
    yield footerBytes
  }
  return { length: firstBlock + expected.length * blockBytes + VHD_FOOTER_SIZE, stream: Readable.from(generate(), { objectMode: false, highWaterMark: 2 }) }
}
