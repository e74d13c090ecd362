// The on-disk VHD structures (footer, dynamic header, block allocation table, sector bitmaps): encoding,
// decoding and every sanity check, so that the file reader, the stream parser and the writer share one codec.
import { LifeboatError } from '../../util/errors.ts'

export const VHD_SECTOR_SIZE = 512
export const VHD_BLOCK_SIZE = 2 * 1024 * 1024
export const VHD_FOOTER_SIZE = 512
export const VHD_HEADER_SIZE = 1024
export const VHD_DEFAULT_TABLE_OFFSET = VHD_FOOTER_SIZE + VHD_HEADER_SIZE
export const BAT_UNUSED = 0xffffffff
export const VHD_VERSION = 0x00010000
export const ZERO_UUID = '00000000-0000-0000-0000-000000000000'
const PLATFORM_MACX = 0x4d616358
const PLATFORM_WI2K = 0x5769326b
const NO_OFFSET = 2 ** 64 - 1 // 0xFFFFFFFFFFFFFFFF as a number (fixed disks, header.dataOffset)

// Bounds that keep a malformed input from making us allocate without limit: a BAT of at most 16 MiB,
// blocks of at most 32 MiB, disks of at most 64 TiB.
const MIN_BLOCK_SIZE = VHD_SECTOR_SIZE
const MAX_BLOCK_SIZE = 32 * 1024 * 1024
const MAX_TABLE_ENTRIES = 4 * 1024 * 1024
const MAX_DISK_SIZE = 64 * 1024 ** 4

export type VhdDiskType = 2 | 3 | 4
export const DISK_TYPE_FIXED = 2
export const DISK_TYPE_DYNAMIC = 3
export const DISK_TYPE_DIFFERENCING = 4

export interface VhdFooter {
  features: number
  fileFormatVersion: number
  dataOffset: number
  timestamp: number
  creatorApplication: string
  creatorVersion: number
  creatorHostOs: number
  originalSize: number
  currentSize: number
  geometry: { cylinders: number; heads: number; sectorsPerTrack: number }
  diskType: VhdDiskType
  checksum: number
  uuid: string
  savedState: number
}

export interface VhdParentLocator {
  platformCode: number
  dataSpace: number
  dataLength: number
  dataOffset: number
}

export interface VhdHeader {
  dataOffset: number
  tableOffset: number
  headerVersion: number
  maxTableEntries: number
  blockSize: number
  checksum: number
  parentUuid: string
  parentTimestamp: number
  parentUnicodeName: string
  parentLocators: VhdParentLocator[]
}

function fail(code: string, message: string): never {
  throw new LifeboatError(code, message)
}

/** One's complement of the byte sum, the checksum field itself counted as zero. */
export function vhdChecksum(buffer: Buffer, checksumOffset: number): number {
  let sum = 0
  for (let i = 0; i < buffer.length; i++) {
    if (i < checksumOffset || i >= checksumOffset + 4) sum += buffer[i]!
  }
  return ~sum >>> 0
}

function readU64(buffer: Buffer, offset: number, what: string): number {
  const value = buffer.readBigUInt64BE(offset)
  if (value === 0xffffffffffffffffn) return NO_OFFSET
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) fail('VHD_BAD_OFFSET', `The VHD ${what} (${value}) is out of range; the file is damaged.`)
  return Number(value)
}

function writeU64(buffer: Buffer, value: number, offset: number): void {
  buffer.writeBigUInt64BE(value >= NO_OFFSET ? 0xffffffffffffffffn : BigInt(value), offset)
}

function uuidFromBytes(bytes: Buffer): string {
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`
}

function uuidToBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '')
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) fail('VHD_BAD_UUID', `"${uuid}" is not a UUID; pass a canonical 8-4-4-4-12 UUID.`)
  return Buffer.from(hex, 'hex')
}

/** VHD timestamps count seconds from 2000-01-01T00:00:00Z. */
const VHD_EPOCH_MS = Date.UTC(2000, 0, 1)
export function vhdTimestamp(date = new Date()): number {
  return Math.max(0, Math.floor((date.getTime() - VHD_EPOCH_MS) / 1000)) >>> 0
}
export function dateFromVhdTimestamp(timestamp: number): Date {
  return new Date(VHD_EPOCH_MS + timestamp * 1000)
}

/** CHS geometry from the size, as the VHD specification computes it (Appendix: CHS calculation). */
export function geometryFromSize(size: number): VhdFooter['geometry'] {
  const totalSectors = Math.min(Math.ceil(size / VHD_SECTOR_SIZE), 65535 * 16 * 255)
  let sectorsPerTrack: number
  let heads: number
  let cylinderTimesHeads: number
  if (totalSectors >= 65535 * 16 * 63) {
    sectorsPerTrack = 255
    heads = 16
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack)
  } else {
    sectorsPerTrack = 17
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack)
    heads = Math.max(4, Math.floor((cylinderTimesHeads + 1023) / 1024))
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31
      heads = 16
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack)
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63
      heads = 16
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack)
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack }
}

export function decodeFooter(buffer: Buffer): VhdFooter {
  if (buffer.length < VHD_FOOTER_SIZE) fail('VHD_TRUNCATED', 'The VHD ends before its footer; the file is incomplete.')
  if (buffer.toString('latin1', 0, 8) !== 'conectix') fail('VHD_BAD_COOKIE', 'This is not a VHD file: the footer cookie "conectix" is missing.')
  const checksum = buffer.readUInt32BE(64)
  if (vhdChecksum(buffer.subarray(0, VHD_FOOTER_SIZE), 64) !== checksum) {
    fail('VHD_BAD_FOOTER_CHECKSUM', 'The VHD footer checksum does not match its content; the file is damaged.')
  }
  const fileFormatVersion = buffer.readUInt32BE(12)
  if (fileFormatVersion !== VHD_VERSION) {
    fail('VHD_UNSUPPORTED_VERSION', `The VHD file format version 0x${fileFormatVersion.toString(16)} is not supported (only 1.0 is).`)
  }
  const diskType = buffer.readUInt32BE(60)
  if (diskType !== 2 && diskType !== 3 && diskType !== 4) {
    fail('VHD_BAD_DISK_TYPE', `The VHD disk type ${diskType} is not fixed (2), dynamic (3) or differencing (4).`)
  }
  const footer: VhdFooter = {
    features: buffer.readUInt32BE(8),
    fileFormatVersion,
    dataOffset: readU64(buffer, 16, 'data offset'),
    timestamp: buffer.readUInt32BE(24),
    creatorApplication: buffer.toString('latin1', 28, 32),
    creatorVersion: buffer.readUInt32BE(32),
    creatorHostOs: buffer.readUInt32BE(36),
    originalSize: readU64(buffer, 40, 'original size'),
    currentSize: readU64(buffer, 48, 'size'),
    geometry: { cylinders: buffer.readUInt16BE(56), heads: buffer[58]!, sectorsPerTrack: buffer[59]! },
    diskType,
    checksum,
    uuid: uuidFromBytes(buffer.subarray(68, 84)),
    savedState: buffer[84]!,
  }
  if (footer.currentSize > MAX_DISK_SIZE) fail('VHD_BAD_SIZE', `The VHD claims a size of ${footer.currentSize} bytes, more than Lifeboat supports.`)
  if (diskType !== DISK_TYPE_FIXED && (footer.dataOffset < VHD_FOOTER_SIZE || footer.dataOffset % VHD_SECTOR_SIZE !== 0 || footer.dataOffset >= NO_OFFSET)) {
    fail('VHD_BAD_OFFSET', `The VHD header offset ${footer.dataOffset} is invalid; the file is damaged.`)
  }
  return footer
}

export function encodeFooter(footer: Omit<VhdFooter, 'checksum'>): Buffer {
  const buffer = Buffer.alloc(VHD_FOOTER_SIZE)
  buffer.write('conectix', 0, 'latin1')
  buffer.writeUInt32BE(footer.features, 8)
  buffer.writeUInt32BE(footer.fileFormatVersion, 12)
  writeU64(buffer, footer.dataOffset, 16)
  buffer.writeUInt32BE(footer.timestamp >>> 0, 24)
  buffer.write(footer.creatorApplication.padEnd(4, ' ').slice(0, 4), 28, 'latin1')
  buffer.writeUInt32BE(footer.creatorVersion, 32)
  buffer.writeUInt32BE(footer.creatorHostOs, 36)
  writeU64(buffer, footer.originalSize, 40)
  writeU64(buffer, footer.currentSize, 48)
  buffer.writeUInt16BE(footer.geometry.cylinders, 56)
  buffer[58] = footer.geometry.heads
  buffer[59] = footer.geometry.sectorsPerTrack
  buffer.writeUInt32BE(footer.diskType, 60)
  uuidToBytes(footer.uuid).copy(buffer, 68)
  buffer[84] = footer.savedState
  buffer.writeUInt32BE(vhdChecksum(buffer, 64), 64)
  return buffer
}

/** Decodes and checks the dynamic header against the footer that points at it. */
export function decodeHeader(buffer: Buffer, footer: VhdFooter): VhdHeader {
  if (buffer.length < VHD_HEADER_SIZE) fail('VHD_TRUNCATED', 'The VHD ends before its header; the file is incomplete.')
  if (buffer.toString('latin1', 0, 8) !== 'cxsparse') fail('VHD_BAD_COOKIE', 'The VHD header cookie "cxsparse" is missing; the file is damaged.')
  const checksum = buffer.readUInt32BE(36)
  if (vhdChecksum(buffer.subarray(0, VHD_HEADER_SIZE), 36) !== checksum) {
    fail('VHD_BAD_HEADER_CHECKSUM', 'The VHD header checksum does not match its content; the file is damaged.')
  }
  const headerVersion = buffer.readUInt32BE(24)
  if (headerVersion !== VHD_VERSION) fail('VHD_UNSUPPORTED_VERSION', `The VHD header version 0x${headerVersion.toString(16)} is not supported (only 1.0 is).`)
  const blockSize = buffer.readUInt32BE(32)
  if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    fail('VHD_BAD_BLOCK_SIZE', `The VHD block size ${blockSize} is not a power of two between 512 bytes and 32 MiB.`)
  }
  const maxTableEntries = buffer.readUInt32BE(28)
  const needed = Math.ceil(footer.currentSize / blockSize)
  if (maxTableEntries < needed || maxTableEntries > MAX_TABLE_ENTRIES) {
    fail('VHD_BAD_TABLE', `The VHD block table has ${maxTableEntries} entries where ${needed} are needed (at most ${MAX_TABLE_ENTRIES}); the file is damaged.`)
  }
  const tableOffset = readU64(buffer, 16, 'block table offset')
  if (tableOffset % VHD_SECTOR_SIZE !== 0 || tableOffset < footer.dataOffset + VHD_HEADER_SIZE || tableOffset >= NO_OFFSET) {
    fail('VHD_BAD_TABLE', `The VHD block table offset ${tableOffset} is invalid; the file is damaged.`)
  }
  const nameBytes = buffer.subarray(64, 576)
  let nameEnd = 0
  while (nameEnd + 1 < nameBytes.length && (nameBytes[nameEnd] !== 0 || nameBytes[nameEnd + 1] !== 0)) nameEnd += 2
  const parentLocators: VhdParentLocator[] = []
  for (let i = 0; i < 8; i++) {
    const at = 576 + i * 24
    parentLocators.push({
      platformCode: buffer.readUInt32BE(at),
      dataSpace: buffer.readUInt32BE(at + 4),
      dataLength: buffer.readUInt32BE(at + 8),
      dataOffset: readU64(buffer, at + 16, 'parent locator offset'),
    })
  }
  return {
    dataOffset: readU64(buffer, 8, 'header data offset'),
    tableOffset,
    headerVersion,
    maxTableEntries,
    blockSize,
    checksum,
    parentUuid: uuidFromBytes(buffer.subarray(40, 56)),
    parentTimestamp: buffer.readUInt32BE(56),
    parentUnicodeName: utf16beDecode(nameBytes.subarray(0, nameEnd)),
    parentLocators,
  }
}

export function encodeHeader(header: Omit<VhdHeader, 'checksum'>): Buffer {
  const buffer = Buffer.alloc(VHD_HEADER_SIZE)
  buffer.write('cxsparse', 0, 'latin1')
  writeU64(buffer, header.dataOffset, 8)
  writeU64(buffer, header.tableOffset, 16)
  buffer.writeUInt32BE(header.headerVersion, 24)
  buffer.writeUInt32BE(header.maxTableEntries, 28)
  buffer.writeUInt32BE(header.blockSize, 32)
  uuidToBytes(header.parentUuid).copy(buffer, 40)
  buffer.writeUInt32BE(header.parentTimestamp >>> 0, 56)
  const name = utf16beEncode(header.parentUnicodeName)
  if (name.length > 512) fail('VHD_BAD_PARENT_NAME', `The parent name "${header.parentUnicodeName}" is longer than a VHD header can hold (256 UTF-16 units).`)
  name.copy(buffer, 64)
  header.parentLocators.slice(0, 8).forEach((locator, i) => {
    const at = 576 + i * 24
    buffer.writeUInt32BE(locator.platformCode, at)
    buffer.writeUInt32BE(locator.dataSpace, at + 4)
    buffer.writeUInt32BE(locator.dataLength, at + 8)
    writeU64(buffer, locator.dataOffset, at + 16)
  })
  buffer.writeUInt32BE(vhdChecksum(buffer, 36), 36)
  return buffer
}

function utf16beDecode(bytes: Buffer): string {
  const swapped = Buffer.from(bytes)
  swapped.swap16()
  return swapped.toString('utf16le')
}

function utf16beEncode(text: string): Buffer {
  return Buffer.from(text, 'utf16le').swap16()
}

/**
 * XAPI's MacX parent locator entry (xapi.md §3.1): it declares a `file://` URL of the parent in the one sector at
 * `offset`, but the stream leaves that sector zero, so the entry carries no data of its own.
 */
export function macxLocator(parentName: string, offset: number): VhdParentLocator {
  return { platformCode: PLATFORM_MACX, dataSpace: 1, dataLength: Buffer.byteLength(`file://${parentName}`, 'utf8'), dataOffset: offset }
}

/** Bytes of a block's sector bitmap, padded to whole sectors. */
export function bitmapSize(blockSize: number): number {
  return Math.ceil(blockSize / VHD_SECTOR_SIZE / 8 / VHD_SECTOR_SIZE) * VHD_SECTOR_SIZE
}

export function batSize(maxTableEntries: number): number {
  return Math.ceil((maxTableEntries * 4) / VHD_SECTOR_SIZE) * VHD_SECTOR_SIZE
}

export function isSectorSet(bitmap: Buffer, sector: number): boolean {
  return (bitmap[sector >> 3]! & (0x80 >> (sector & 7))) !== 0
}

/** True when every sector of a block of `sectors` sectors is marked present. */
export function isBitmapFull(bitmap: Buffer, sectors: number): boolean {
  const fullBytes = sectors >> 3
  for (let i = 0; i < fullBytes; i++) if (bitmap[i] !== 0xff) return false
  for (let s = fullBytes * 8; s < sectors; s++) if (!isSectorSet(bitmap, s)) return false
  return true
}

export function fullBitmap(blockSize: number): Buffer {
  return Buffer.alloc(bitmapSize(blockSize), 0xff)
}

/**
 * Checks the allocated entries of a BAT: each block lies after the BAT, before `limit` (end of the data
 * area, or unknown in a stream), and no two blocks overlap. Returns the allocated indexes in file order.
 */
export function checkBlockTable(bat: Buffer, header: VhdHeader, limit: number): number[] {
  const entries = header.maxTableEntries
  const blockBytes = bitmapSize(header.blockSize) + header.blockSize
  const firstData = header.tableOffset + batSize(entries)
  const allocated: number[] = []
  for (let i = 0; i < entries; i++) {
    const sector = bat.readUInt32BE(i * 4)
    if (sector === BAT_UNUSED) continue
    const offset = sector * VHD_SECTOR_SIZE
    if (offset < firstData || offset + blockBytes > limit) {
      fail('VHD_BAD_BLOCK_OFFSET', `VHD block ${i} is at offset ${offset}, outside the data area (${firstData}…${limit}); the file is damaged.`)
    }
    allocated.push(i)
  }
  allocated.sort((a, b) => bat.readUInt32BE(a * 4) - bat.readUInt32BE(b * 4))
  for (let k = 1; k < allocated.length; k++) {
    const previous = bat.readUInt32BE(allocated[k - 1]! * 4) * VHD_SECTOR_SIZE
    const current = bat.readUInt32BE(allocated[k]! * 4) * VHD_SECTOR_SIZE
    if (current < previous + blockBytes) {
      fail('VHD_BAD_BLOCK_OFFSET', `VHD blocks ${allocated[k - 1]} and ${allocated[k]} overlap; the file is damaged.`)
    }
  }
  return allocated
}

/** The footer and header of a new dynamic or differencing VHD, XO conventions by default. */
export function newFooterAndHeader(options: {
  size: number
  uuid: string
  blockSize?: number
  tableOffset?: number
  creator?: string
  timestamp?: number
  parent?: { uuid: string; unicodeName: string; timestamp?: number; locator?: VhdParentLocator }
}): { footer: Omit<VhdFooter, 'checksum'>; header: Omit<VhdHeader, 'checksum'> } {
  const blockSize = options.blockSize ?? VHD_BLOCK_SIZE
  if (!Number.isSafeInteger(options.size) || options.size < 0 || options.size > MAX_DISK_SIZE) {
    fail('VHD_BAD_SIZE', `A VHD cannot be ${options.size} bytes; sizes go from 0 to 64 TiB.`)
  }
  const footer: Omit<VhdFooter, 'checksum'> = {
    features: 2,
    fileFormatVersion: VHD_VERSION,
    dataOffset: VHD_FOOTER_SIZE,
    timestamp: options.timestamp ?? vhdTimestamp(),
    creatorApplication: options.creator ?? 'xo  ',
    creatorVersion: 0,
    creatorHostOs: PLATFORM_WI2K, // what vhd-lib writes ("it looks like everybody is using Wi2k")
    originalSize: options.size,
    currentSize: options.size,
    geometry: geometryFromSize(options.size),
    diskType: options.parent === undefined ? DISK_TYPE_DYNAMIC : DISK_TYPE_DIFFERENCING,
    uuid: options.uuid,
    savedState: 0,
  }
  const emptyLocator = { platformCode: 0, dataSpace: 0, dataLength: 0, dataOffset: 0 }
  const header: Omit<VhdHeader, 'checksum'> = {
    dataOffset: NO_OFFSET,
    tableOffset: options.tableOffset ?? VHD_DEFAULT_TABLE_OFFSET,
    headerVersion: VHD_VERSION,
    maxTableEntries: Math.ceil(options.size / blockSize),
    blockSize,
    parentUuid: options.parent?.uuid ?? ZERO_UUID,
    parentTimestamp: options.parent?.timestamp ?? 0,
    parentUnicodeName: options.parent?.unicodeName ?? '',
    parentLocators: Array.from({ length: 8 }, (_, i) => (i === 0 && options.parent?.locator !== undefined ? options.parent.locator : emptyLocator)),
  }
  return { footer, header }
}
