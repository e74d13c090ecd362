// Reads an XVA the way XAPI imports one (`stream_vdi.ml` recv_all_vdi): ova.xml, then each disk's chunks placed
// by the offset rule, every chunk checked against its inline checksum. Holds one chunk at a time.
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { LifeboatError, isLifeboatError } from '../../util/errors.ts'
import { decompressStream, detectCompression } from '../compression.ts'
import { xxh64Hex } from '../xxhash.ts'
import { ByteReader } from './byte-reader.ts'
import { parseOvaXml, vdiSizes } from './ova-xml.ts'
import type { OvaXml } from './ova-xml.ts'
import { TarReader } from './tar.ts'

export type XvaEntry = { type: 'ova.xml'; xml: string; ova: OvaXml } | { type: 'chunk'; ref: string; offset: number; data: Buffer }

/** XAPI writes 1 MiB chunks; other writers may differ, but a chunk is held in memory, so it is bounded. */
const MAX_CHUNK_SIZE = 16 * 1024 * 1024
const MAX_OVA_XML_SIZE = 64 * 1024 * 1024
const MAX_CHECKSUM_SIZE = 128

const CHUNK_NAME = /^(.+)\/(\d{1,15})$/

interface DiskCursor {
  ref: string
  lastCounter: number
  firstChunkLength: number
  offset: number
  size: number | undefined
}

export async function* readXva(source: AsyncIterable<Buffer> | Iterable<Buffer>, options: { verifyChecksums?: boolean } = {}): AsyncGenerator<XvaEntry> {
  const verify = options.verifyChecksums ?? true
  const raw = new ByteReader(source)
  let decompressed: Readable | undefined
  try {
    const kind = detectCompression(await raw.peek(4))
    if (kind !== undefined) decompressed = decompressStream(Readable.from(raw.rest(), { objectMode: false }), kind)
    const tar = new TarReader(decompressed === undefined ? raw : new ByteReader(decompressed))

    const first = await tar.next()
    if (first?.name !== 'ova.xml') {
      throw new LifeboatError('XVA_NO_OVA_XML', 'The archive does not start with ova.xml, so it is not an XVA (or it is damaged). Check the file.')
    }
    if (first.size > MAX_OVA_XML_SIZE) throw new LifeboatError('XVA_BAD_OVA_XML', `The XVA's ova.xml claims ${first.size} bytes, far more than any VM's metadata; the file is damaged.`)
    const xml = (await tar.readData()).toString('utf8')
    const ova = parseOvaXml(xml)
    yield { type: 'ova.xml', xml, ova }

    const sizes = vdiSizes(ova)
    const finishedRefs = new Set<string>()
    let disk: DiskCursor | undefined
    for (let entry = await tar.next(); entry !== undefined; entry = await tar.next()) {
      const match = CHUNK_NAME.exec(entry.name)
      if (match === null) {
        const orphan = /\.(xxhash|checksum)$/.test(entry.name)
        throw new LifeboatError(
          orphan ? 'XVA_BAD_CHUNK_ORDER' : 'XVA_UNEXPECTED_ENTRY',
          orphan
            ? `The checksum entry "${printable(entry.name)}" does not follow its chunk; the XVA is damaged.`
            : `The XVA holds an entry "${printable(entry.name)}" that is neither a disk chunk nor a checksum; the file is damaged or not an XVA.`,
        )
      }
      const [, ref, digits] = match as unknown as [string, string, string]
      const counter = Number(digits)
      if (disk?.ref !== ref) {
        if (disk !== undefined) finishedRefs.add(disk.ref)
        if (finishedRefs.has(ref)) throw badOrder(`the chunks of disk ${printable(ref)} are split in two runs`)
        disk = { ref, lastCounter: -1, firstChunkLength: -1, offset: 0, size: sizes.get(ref) }
      }
      if (counter <= disk.lastCounter) throw badOrder(`chunk ${digits} of disk ${printable(ref)} comes after chunk ${disk.lastCounter}`)
      if (entry.size > MAX_CHUNK_SIZE) throw new LifeboatError('XVA_CHUNK_TOO_LARGE', `Chunk ${printable(entry.name)} claims ${entry.size} bytes (at most ${MAX_CHUNK_SIZE} are accepted); the XVA is damaged.`)
      // XAPI measures every gap in units of the first chunk's length (it keeps one length for the whole import;
      // per disk gives the same result for XAPI's 1 MiB chunks and stays right for a small first disk).
      if (disk.firstChunkLength < 0) disk.firstChunkLength = entry.size
      const offset = disk.offset + (counter - disk.lastCounter - 1) * disk.firstChunkLength
      const end = offset + entry.size
      if (!Number.isSafeInteger(end) || (disk.size !== undefined && end > disk.size)) {
        throw new LifeboatError('XVA_CHUNK_OUT_OF_RANGE', `Chunk ${printable(entry.name)} would end at byte ${end}, beyond disk ${printable(ref)}'s size ${disk.size ?? 'limit'}; the XVA is damaged.`)
      }
      const data = await tar.readData()
      await checkChunk(tar, entry.name, data, verify)
      disk.offset = end
      disk.lastCounter = counter
      // 0-byte keep-alive chunks only advance the counter.
      if (data.length > 0) yield { type: 'chunk', ref, offset, data }
    }
  } catch (error) {
    throw isLifeboatError(error) ? error : new LifeboatError('XVA_READ_FAILED', `Reading the XVA failed: ${error instanceof Error ? error.message : String(error)}.`, { cause: error })
  } finally {
    decompressed?.destroy()
    await raw.close()
  }
}

async function checkChunk(tar: TarReader, chunkName: string, data: Buffer, verify: boolean): Promise<void> {
  const entry = await tar.next()
  const algorithm = entry?.name === `${chunkName}.xxhash` ? 'xxhash' : entry?.name === `${chunkName}.checksum` ? 'sha1' : undefined
  if (entry === undefined || algorithm === undefined) {
    throw new LifeboatError('XVA_MISSING_CHECKSUM', `Chunk ${printable(chunkName)} is not followed by its checksum entry; the XVA is damaged, or was written by a XAPI older than XenServer 8.1 / XCP-ng 8.1.`)
  }
  if (entry.size > MAX_CHECKSUM_SIZE) throw badChecksum(chunkName, `its checksum entry is ${entry.size} bytes long`)
  const stored = (await tar.readData()).toString('latin1')
  if (!verify) return
  const computed = algorithm === 'xxhash' ? await xxh64Hex(data) : createHash('sha1').update(data).digest('hex')
  if (stored !== computed) throw badChecksum(chunkName, `the file says ${printable(stored)}, the data hashes to ${computed}`)
}

function badChecksum(chunkName: string, detail: string): LifeboatError {
  return new LifeboatError('XVA_BAD_CHECKSUM', `Chunk ${printable(chunkName)} fails its checksum (${detail}); the XVA is corrupt. Use another copy or export again.`)
}

function badOrder(detail: string): LifeboatError {
  return new LifeboatError('XVA_BAD_CHUNK_ORDER', `The XVA's disk chunks are out of order: ${detail}. The file is damaged.`)
}

/** Names come from untrusted input: keep messages short and printable. */
function printable(text: string): string {
  return text.slice(0, 120).replace(/[^\x20-\x7e]/g, '?')
}
