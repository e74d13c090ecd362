// Raw and XVA transfers of a lab disk: the export_raw_vdi body, the import_raw_vdi sink, and the disk side of
// an XVA (its 1 MiB chunks out, chunk data in at XAPI's offsets). Streams go block by block: memory stays flat.
import { Readable } from 'node:stream'
import { XVA_CHUNK_SIZE } from '../../formats/xva/index.ts'
import type { XvaDisk } from '../../formats/xva/index.ts'
import { LifeboatError } from '../../util/errors.ts'
import type { DiskStore } from './disk-store.ts'
import { LAB_BLOCK_SIZE } from './layer.ts'

/** Zero detection granularity of imports: a guest's page. */
const ZERO_RUN_UNIT = 4096
const ZEROS = Buffer.alloc(ZERO_RUN_UNIT)

/** The disk's bytes, exactly its virtual size, zeros included. */
export function exportRaw(store: DiskStore, leaf: string): Readable {
  const size = store.layer(leaf).size
  return Readable.from((async function* () {
    for (let index = 0; index * LAB_BLOCK_SIZE < size; index++) {
      const block = await store.readBlock(leaf, index)
      yield block.subarray(0, Math.min(LAB_BLOCK_SIZE, size - index * LAB_BLOCK_SIZE))
    }
  })(), { objectMode: false })
}

/** The disk for createXvaStream: only chunks of allocated blocks (and the first and last chunk, which XAPI always writes). */
export function xvaDisk(store: DiskStore, leaf: string, ref: string): XvaDisk {
  const size = store.layer(leaf).size
  const lastChunk = Math.max(0, Math.ceil(size / XVA_CHUNK_SIZE) - 1)
  const perBlock = LAB_BLOCK_SIZE / XVA_CHUNK_SIZE
  async function* chunks(): AsyncGenerator<{ index: number; data: Buffer }> {
    if (size === 0) return
    const blocks = new Set(store.allocatedBlocks(leaf))
    blocks.add(0).add(Math.floor(lastChunk / perBlock))
    for (const block of [...blocks].sort((a, b) => a - b)) {
      const data = await store.readBlock(leaf, block)
      for (let part = 0; part < perBlock; part++) {
        const index = block * perBlock + part
        if (index > lastChunk) break
        const start = part * XVA_CHUNK_SIZE
        yield { index, data: data.subarray(start, Math.min(start + XVA_CHUNK_SIZE, size - block * LAB_BLOCK_SIZE)) }
      }
    }
  }
  return { ref, size, chunks: chunks() }
}

/** Told of each write an import makes (offset, length). */
export type OnWrite = (offset: number, length: number) => void

/** import_raw_vdi: the body is the disk from byte 0; a body longer than the disk is refused. */
export async function importRaw(store: DiskStore, leaf: string, source: AsyncIterable<Buffer>, onWrite?: OnWrite): Promise<{ bytesWritten: number }> {
  const size = store.layer(leaf).size
  let position = 0
  let bytesWritten = 0
  for await (const chunk of source) {
    if (position + chunk.length > size) {
      throw new LifeboatError('VDI_IO_ERROR', `The raw upload is longer than the disk (${size} bytes); nothing past its end was written.`, {
        data: { params: ['Device I/O errors'] },
      })
    }
    bytesWritten += await writeSkippingZeros(store, leaf, position, chunk, onWrite)
    position += chunk.length
  }
  return { bytesWritten }
}

/** XVA import of one disk: chunk data at the offsets readXva computed; data past the disk's end is dropped, as XAPI stops there. */
export async function importXvaChunks(store: DiskStore, leaf: string, chunks: AsyncIterable<{ offset: number; data: Buffer }>): Promise<{ bytesWritten: number }> {
  const size = store.layer(leaf).size
  let bytesWritten = 0
  for await (const { offset, data } of chunks) {
    if (offset >= size) continue
    bytesWritten += await writeSkippingZeros(store, leaf, offset, data.subarray(0, size - offset))
  }
  return { bytesWritten }
}

/**
 * Writes `data` at `offset` except its all-zero 4 KiB runs over blocks the disk has no data in (they read as
 * zeros already): imports stay as sparse as the source. Returns the bytes written.
 */
export async function writeSkippingZeros(store: DiskStore, leaf: string, offset: number, data: Buffer, onWrite: OnWrite = () => {}): Promise<number> {
  let written = 0
  let runStart = -1
  const flushRun = async (end: number): Promise<void> => {
    if (runStart < 0) return
    await store.write(leaf, offset + runStart, data.subarray(runStart, end))
    onWrite(offset + runStart, end - runStart)
    written += end - runStart
    runStart = -1
  }
  // units follow the disk's 4 KiB grid whatever the chunk boundaries of the upload
  for (let start = 0; start < data.length;) {
    // one write per 2 MiB block: a block the SR has no room for fails alone, the ones before it are written
    if ((offset + start) % LAB_BLOCK_SIZE === 0) await flushRun(start)
    const end = Math.min(data.length, (Math.floor((offset + start) / ZERO_RUN_UNIT) + 1) * ZERO_RUN_UNIT - offset)
    const unit = data.subarray(start, end)
    const skip = unit.equals(ZEROS.subarray(0, unit.length)) && !store.isAllocated(leaf, Math.floor((offset + start) / LAB_BLOCK_SIZE))
    if (skip) await flushRun(start)
    else if (runStart < 0) runStart = start
    start = end
  }
  await flushRun(data.length)
  return written
}
