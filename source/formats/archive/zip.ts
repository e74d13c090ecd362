// A store-only zip writer, streamed: each entry's sizes known before its bytes (from stat), its CRC in a data
// descriptor after them, ZIP64 fields wherever a size, offset or count outgrows 32 bits, UTF-8 names, unix
// modes and mtimes (extended timestamp), symbolic links as Info-ZIP stores them. `unzip` reads it back.
import { crc32 } from 'node:zlib'
import { entryData, type ArchiveEntry } from './entry.ts'

const MAX32 = 0xffffffff
const FLAGS = 0x0008 | 0x0800
const S_IF = { file: 0o100000, directory: 0o040000, symlink: 0o120000 } as const

interface Written {
  name: Buffer
  crc: number
  size: number
  offset: number
  mtime: number
  external: number
  zip64: boolean
}

function dosTime(ms: number): { time: number; date: number } {
  const d = new Date(Math.max(ms, Date.UTC(1980, 0, 1)))
  return {
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | Math.floor(d.getUTCSeconds() / 2),
    date: ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
  }
}

function timestampExtra(mtime: number): Buffer {
  const extra = Buffer.alloc(9)
  extra.writeUInt16LE(0x5455, 0)
  extra.writeUInt16LE(5, 2)
  extra.writeUInt8(1, 4)
  extra.writeUInt32LE(Math.max(0, Math.min(MAX32, Math.floor(mtime / 1000))), 5)
  return extra
}

function zip64Extra(values: number[]): Buffer {
  const extra = Buffer.alloc(4 + 8 * values.length)
  extra.writeUInt16LE(0x0001, 0)
  extra.writeUInt16LE(8 * values.length, 2)
  values.forEach((value, k) => extra.writeBigUInt64LE(BigInt(value), 4 + 8 * k))
  return extra
}

function localHeader(entry: Written): Buffer {
  const { time, date } = dosTime(entry.mtime)
  const extra = Buffer.concat([...(entry.zip64 ? [zip64Extra([entry.size, entry.size])] : []), timestampExtra(entry.mtime)])
  const header = Buffer.alloc(30)
  header.writeUInt32LE(0x04034b50, 0)
  header.writeUInt16LE(entry.zip64 ? 45 : 20, 4)
  header.writeUInt16LE(FLAGS, 6)
  header.writeUInt16LE(0, 8)
  header.writeUInt16LE(time, 10)
  header.writeUInt16LE(date, 12)
  header.writeUInt32LE(0, 14)
  header.writeUInt32LE(entry.zip64 ? MAX32 : entry.size, 18)
  header.writeUInt32LE(entry.zip64 ? MAX32 : entry.size, 22)
  header.writeUInt16LE(entry.name.length, 26)
  header.writeUInt16LE(extra.length, 28)
  return Buffer.concat([header, entry.name, extra])
}

function dataDescriptor(entry: Written): Buffer {
  const out = Buffer.alloc(entry.zip64 ? 24 : 16)
  out.writeUInt32LE(0x08074b50, 0)
  out.writeUInt32LE(entry.crc, 4)
  if (entry.zip64) {
    out.writeBigUInt64LE(BigInt(entry.size), 8)
    out.writeBigUInt64LE(BigInt(entry.size), 16)
  } else {
    out.writeUInt32LE(entry.size, 8)
    out.writeUInt32LE(entry.size, 12)
  }
  return out
}

function centralHeader(entry: Written): Buffer {
  const { time, date } = dosTime(entry.mtime)
  const large = entry.zip64 || entry.offset >= MAX32
  const wide = [...(entry.zip64 ? [entry.size, entry.size] : []), ...(entry.offset >= MAX32 ? [entry.offset] : [])]
  const extra = Buffer.concat([...(wide.length > 0 ? [zip64Extra(wide)] : []), timestampExtra(entry.mtime)])
  const header = Buffer.alloc(46)
  header.writeUInt32LE(0x02014b50, 0)
  header.writeUInt16LE((3 << 8) | 45, 4)
  header.writeUInt16LE(large ? 45 : 20, 6)
  header.writeUInt16LE(FLAGS, 8)
  header.writeUInt16LE(0, 10)
  header.writeUInt16LE(time, 12)
  header.writeUInt16LE(date, 14)
  header.writeUInt32LE(entry.crc, 16)
  header.writeUInt32LE(entry.zip64 ? MAX32 : entry.size, 20)
  header.writeUInt32LE(entry.zip64 ? MAX32 : entry.size, 24)
  header.writeUInt16LE(entry.name.length, 28)
  header.writeUInt16LE(extra.length, 30)
  header.writeUInt32LE(entry.external >>> 0, 38)
  header.writeUInt32LE(entry.offset >= MAX32 ? MAX32 : entry.offset, 42)
  return Buffer.concat([header, entry.name, extra])
}

function endRecords(count: number, directorySize: number, directoryOffset: number): Buffer {
  const parts: Buffer[] = []
  const zip64 = count >= 0xffff || directorySize >= MAX32 || directoryOffset >= MAX32
  if (zip64) {
    const record = Buffer.alloc(56)
    record.writeUInt32LE(0x06064b50, 0)
    record.writeBigUInt64LE(44n, 4)
    record.writeUInt16LE((3 << 8) | 45, 12)
    record.writeUInt16LE(45, 14)
    record.writeBigUInt64LE(BigInt(count), 24)
    record.writeBigUInt64LE(BigInt(count), 32)
    record.writeBigUInt64LE(BigInt(directorySize), 40)
    record.writeBigUInt64LE(BigInt(directoryOffset), 48)
    const locator = Buffer.alloc(20)
    locator.writeUInt32LE(0x07064b50, 0)
    locator.writeBigUInt64LE(BigInt(directoryOffset + directorySize), 8)
    locator.writeUInt32LE(1, 16)
    parts.push(record, locator)
  }
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(Math.min(count, 0xffff), 8)
  end.writeUInt16LE(Math.min(count, 0xffff), 10)
  end.writeUInt32LE(Math.min(directorySize, MAX32), 12)
  end.writeUInt32LE(Math.min(directoryOffset, MAX32), 16)
  parts.push(end)
  return Buffer.concat(parts)
}

/**
 * The archive of `entries`, in order. The central directory keeps one small record per entry (name, CRC,
 * sizes) until the end, as the format requires; the bytes themselves are never held.
 */
export async function* zipStream(entries: AsyncIterable<ArchiveEntry>, onData?: (bytes: number) => void): AsyncGenerator<Buffer> {
  const written: Written[] = []
  let offset = 0
  const emit = (buffer: Buffer) => {
    offset += buffer.length
    return buffer
  }
  for await (const entry of entries) {
    const content = entry.type === 'symlink' ? Buffer.from(entry.target ?? '') : undefined
    const size = entry.type === 'file' ? entry.size : content?.length ?? 0
    const record: Written = {
      name: Buffer.from(entry.type === 'directory' ? `${entry.path}/` : entry.path),
      crc: 0, size, offset, mtime: entry.mtime,
      external: (((S_IF[entry.type] | (entry.mode & 0o7777)) << 16) | (entry.type === 'directory' ? 0x10 : 0)) >>> 0,
      zip64: size >= MAX32,
    }
    yield emit(localHeader(record))
    if (entry.type === 'file') {
      for await (const chunk of entryData(entry, onData)) {
        record.crc = crc32(chunk, record.crc)
        yield emit(chunk)
      }
    } else if (content !== undefined) {
      record.crc = crc32(content)
      yield emit(content)
    }
    yield emit(dataDescriptor(record))
    written.push(record)
  }
  const directoryOffset = offset
  let directorySize = 0
  for (const record of written) {
    const header = centralHeader(record)
    directorySize += header.length
    yield header
  }
  yield endRecords(written.length, directorySize, directoryOffset)
}
