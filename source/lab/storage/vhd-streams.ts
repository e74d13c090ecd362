// VHD transfers of a lab disk as XAPI's vhd-tool does them (xapi.md §3.1): the export_raw_vdi?format=vhd body,
// full or delta, generated lazily block by block, and the import that applies an uploaded VHD to a disk.
import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import { createVhdStream, openVhdStream, VHD_SECTOR_SIZE } from '../../formats/vhd/index.ts'
import { LifeboatError, isLifeboatError } from '../../util/errors.ts'
import type { DiskStore } from './disk-store.ts'
import type { OnWrite } from './raw-streams.ts'

const VHD_EPOCH_MS = Date.UTC(2000, 0, 1)

/**
 * The disk as XAPI streams it: dynamic with every allocated block, or differencing against `base` with the blocks
 * of the two chains' symmetric difference; each block is the full 2 MiB as the exported disk sees it.
 */
export function exportVhd(store: DiskStore, leaf: string, options: { base?: string; uuid?: string } = {}): { length: number; stream: Readable } {
  const disk = store.layer(leaf)
  const base = options.base === undefined ? undefined : store.layer(options.base)
  const blockIndexes = base === undefined ? store.allocatedBlocks(leaf) : store.deltaBlocks(leaf, base.uuid)
  async function* blocks(): AsyncGenerator<{ index: number; data: Buffer }> {
    for (const index of blockIndexes) yield { index, data: await store.readBlock(leaf, index) }
  }
  return createVhdStream({
    size: disk.size,
    uuid: options.uuid ?? randomUUID(),
    blockIndexes,
    blocks: blocks(),
    creator: 'caml',
    timestamp: 0,
    tableOffset: 2048,
    parent: base === undefined ? undefined : {
      uuid: base.vhdUid,
      unicodeName: `/var/run/sr-mount/${base.sr}/${base.uuid}.vhd`,
      timestamp: Math.max(0, Math.floor((base.createdAt - VHD_EPOCH_MS) / 1000)),
      locator: true,
    },
  })
}

/**
 * Applies an uploaded VHD (dynamic or differencing; the parent is not checked, as vhd-tool does not) to the disk:
 * only the sectors whose bitmap bit is set are written. A stream cut short or malformed keeps the blocks already
 * written and fails with VDI_IO_ERROR. `onWrite` hears of each write (the pool's import counters).
 */
export async function importVhd(store: DiskStore, leaf: string, source: AsyncIterable<Buffer>, onWrite: OnWrite = () => {}): Promise<{ bytesWritten: number }> {
  const size = store.layer(leaf).size
  let bytesWritten = 0
  try {
    const vhd = await openVhdStream(source)
    const sectorsPerBlock = vhd.header.blockSize / VHD_SECTOR_SIZE
    for await (const { index, bitmap, data } of vhd.blocks()) {
      const blockStart = index * vhd.header.blockSize
      if (blockStart >= size) {
        throw new LifeboatError('VHD_BAD_BLOCK_OFFSET', `The VHD has block ${index}, past the end of the disk (${size} bytes).`)
      }
      for (let sector = 0; sector < sectorsPerBlock;) {
        if (!sectorPresent(bitmap, sector)) {
          sector++
          continue
        }
        let end = sector + 1
        while (end < sectorsPerBlock && sectorPresent(bitmap, end)) end++
        const length = Math.min(end * VHD_SECTOR_SIZE, size - blockStart) - sector * VHD_SECTOR_SIZE
        if (length > 0) {
          await store.write(leaf, blockStart + sector * VHD_SECTOR_SIZE, data.subarray(sector * VHD_SECTOR_SIZE, sector * VHD_SECTOR_SIZE + length))
          onWrite(blockStart + sector * VHD_SECTOR_SIZE, length)
          bytesWritten += length
        }
        sector = end
      }
    }
  } catch (error) {
    if (isLifeboatError(error) && error.code.startsWith('VHD_')) {
      throw new LifeboatError('VDI_IO_ERROR', `The VHD upload failed after ${bytesWritten} bytes were written: ${error.message}`, {
        cause: error,
        data: { params: ['Device I/O errors'] },
      })
    }
    throw error
  }
  return { bytesWritten }
}

const sectorPresent = (bitmap: Buffer, sector: number): boolean => (bitmap[sector >> 3]! & (0x80 >> (sector & 7))) !== 0
