// Writes an XVA as XAPI does: ova.xml, then each disk's 1 MiB chunks with their XXH64 checksum entries,
// all-zero chunks left out except each disk's first and last.
import { Readable } from 'node:stream'
import { LifeboatError } from '../../util/errors.ts'
import { compressStream } from '../compression.ts'
import type { Compression } from '../compression.ts'
import { xxh64Hex } from '../xxhash.ts'
import { renderTarHeader, tarPadding, TAR_END } from './tar.ts'

export const XVA_CHUNK_SIZE = 1024 * 1024

/** A disk to write: chunks not yielded are all-zero; ascending index; a short chunk is zero-filled to its length. */
export interface XvaDisk {
  ref: string
  size: number
  chunks: AsyncIterable<{ index: number; data: Buffer }>
}

export function createXvaStream(options: { ovaXml: string; disks: XvaDisk[]; compression?: Compression }): Readable {
  const refs = new Set<string>()
  for (const disk of options.disks) {
    if (!/^[^/\0]{1,80}$/.test(disk.ref) || refs.has(disk.ref)) throw badDisk(disk.ref, 'its reference is empty, too long, repeated or holds "/"')
    if (!Number.isSafeInteger(disk.size) || disk.size < 0) throw badDisk(disk.ref, `its size ${disk.size} is not a byte count`)
    refs.add(disk.ref)
  }
  const tar = Readable.from(xvaEntries(options.ovaXml, options.disks), { objectMode: false })
  return options.compression === undefined ? tar : compressStream(tar, options.compression)
}

async function* xvaEntries(ovaXml: string, disks: XvaDisk[]): AsyncGenerator<Buffer> {
  const mtime = Date.now() / 1000
  yield* tarFile('ova.xml', Buffer.from(ovaXml), mtime)
  // XAPI sorts disks by their directory name, and its import expects that order.
  const sorted = [...disks].sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0))
  for (const disk of sorted) {
    for await (const chunk of diskChunks(disk)) {
      const name = `${disk.ref}/${String(chunk.index).padStart(8, '0')}`
      yield* tarFile(name, chunk.data, mtime)
      yield* tarFile(`${name}.xxhash`, Buffer.from(await xxh64Hex(chunk.data)), mtime)
    }
  }
  yield TAR_END
}

function* tarFile(name: string, data: Buffer, mtime: number): Generator<Buffer> {
  yield renderTarHeader(name, data.length, mtime)
  if (data.length > 0) yield data
  const padding = tarPadding(data.length)
  if (padding.length > 0) yield padding
}

/** The chunks that go into the archive: the disk's own, minus all-zero ones, plus zero first/last chunks if missing. */
async function* diskChunks(disk: XvaDisk): AsyncGenerator<{ index: number; data: Buffer }> {
  const count = Math.ceil(disk.size / XVA_CHUNK_SIZE)
  const last = count - 1
  const lengthOf = (index: number) => Math.min(XVA_CHUNK_SIZE, disk.size - index * XVA_CHUNK_SIZE)
  let next = 0
  for await (const { index, data } of disk.chunks) {
    if (!Number.isSafeInteger(index) || index < next || index > last) throw badDisk(disk.ref, `chunk ${index} is out of order or beyond the disk's ${count} chunks`)
    const length = lengthOf(index)
    if (data.length > length) throw badDisk(disk.ref, `chunk ${index} holds ${data.length} bytes, more than its ${length}`)
    if (index > 0 && next === 0) yield { index: 0, data: Buffer.alloc(lengthOf(0)) }
    next = index + 1
    if (index !== 0 && index !== last && isZero(data)) continue
    yield { index, data: data.length === length ? data : Buffer.concat([data, Buffer.alloc(length - data.length)]) }
  }
  if (count > 0 && next === 0) yield { index: 0, data: Buffer.alloc(lengthOf(0)) }
  if (last > 0 && next <= last) yield { index: last, data: Buffer.alloc(lengthOf(last)) }
}

const ZERO_CHUNK = Buffer.alloc(XVA_CHUNK_SIZE)

function isZero(data: Buffer): boolean {
  return data.equals(ZERO_CHUNK.subarray(0, data.length))
}

function badDisk(ref: string, detail: string): LifeboatError {
  return new LifeboatError('XVA_BAD_DISK_CHUNK', `Disk ${ref} cannot be written to the XVA: ${detail}. This is a bug in the code that feeds the export.`)
}
