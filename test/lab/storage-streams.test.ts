// The lab disk's transfers: VHD export (full and delta) checked by qemu-img and our parser, VHD/raw/XVA imports
// round-tripped between two stores, and a cut upload.
import assert from 'node:assert/strict'
import { createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { after, before, describe, it } from 'node:test'
import { openVhdStream } from '../../source/formats/vhd/index.ts'
import { createXvaStream, readXva, renderOvaXml } from '../../source/formats/xva/index.ts'
import {
  DiskStore, LAB_BLOCK_SIZE, exportRaw, exportVhd, fillPattern, importRaw, importVhd, importXvaChunks, xvaDisk,
} from '../../source/lab/storage/index.ts'
import { isLifeboatError } from '../../source/util/errors.ts'
import { requireTool, run, tempDir } from '../helpers/tools.ts'

const MiB = 1024 * 1024
const SR = 'sr'
const SIZE = 24 * MiB + 512 * 3 // a last block that is partial

let folder: { path: string; cleanup: () => Promise<void> }
let count = 0
before(async () => (folder = await tempDir('lifeboat-lab-streams-')))
after(async () => folder.cleanup())

async function freshStore(): Promise<DiskStore> {
  const store = await DiskStore.open(`${folder.path}/store-${count++}`)
  await store.addSr({ uuid: SR, physicalSize: 1024 * MiB, thick: false })
  return store
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of stream) parts.push(part)
  return Buffer.concat(parts)
}

async function* streamOf(...parts: Buffer[]): AsyncGenerator<Buffer> {
  yield* parts
}

async function toFile(stream: Readable, name: string): Promise<string> {
  const path = `${folder.path}/${name}`
  await pipeline(stream, createWriteStream(path))
  return path
}

/** A disk with patterned data in some blocks, a snapshot, then more writes. */
async function diskWithHistory(store: DiskStore) {
  const disk = await store.createLayer({ sr: SR, size: SIZE })
  await fillPattern(store, disk, { offset: 0, length: 5 * MiB, seed: 11 })
  await fillPattern(store, disk, { offset: 12 * MiB + 77 * 512, length: 3 * MiB, seed: 12 })
  await store.write(disk, SIZE - 512, Buffer.alloc(512, 0x33))
  const first = await store.snapshot(disk)
  await store.write(first.leaf, 3 * MiB, Buffer.alloc(4096, 0x44)) // block 1, partly
  await fillPattern(store, first.leaf, { offset: 18 * MiB, length: 2 * MiB, seed: 13 }) // block 9
  const second = await store.snapshot(first.leaf)
  return { disk, first, second }
}

describe('lab disk transfers', () => {
  it('exports a full VHD that qemu-img reads as the raw export', async () => {
    requireTool('qemu-img', 'qemu-utils')
    const store = await freshStore()
    const { second } = await diskWithHistory(store)
    const vhd = exportVhd(store, second.copy, { uuid: '0a6b9e2c-1111-4222-8333-944455556666' })
    const path = await toFile(vhd.stream, 'full.vhd')
    assert.equal((await readFile(path)).length, vhd.length)
    const raw = `${folder.path}/full.raw`
    await run('qemu-img', ['convert', '-O', 'raw', '--image-opts', `driver=vpc,force_size_calc=current_size,file.filename=${path}`, raw])
    const expected = await collect(exportRaw(store, second.copy))
    assert.equal(expected.length, SIZE)
    assert.ok((await readFile(raw)).equals(expected), 'the raw file reads back as the expected disk')

    const parsed = await openVhdStream(streamOf(await readFile(path)))
    assert.equal(parsed.footer.diskType, 3)
    assert.equal(parsed.footer.creatorApplication, 'caml')
    assert.equal(parsed.footer.timestamp, 0)
    assert.equal(parsed.footer.currentSize, SIZE)
    assert.equal(parsed.header.tableOffset, 2048)
    assert.deepEqual(parsed.blockIndexes, store.allocatedBlocks(second.copy))
    await store.close()
  })

  it('exports a delta holding exactly the blocks written since the base, with the leaf data', async () => {
    const store = await freshStore()
    const { first, second } = await diskWithHistory(store)
    const delta = exportVhd(store, second.copy, { base: first.copy })
    const parsed = await openVhdStream(delta.stream)
    assert.equal(parsed.footer.diskType, 4)
    assert.equal(parsed.header.parentUuid, store.layer(first.copy).vhdUid)
    assert.deepEqual(parsed.blockIndexes, [1, 9])
    assert.deepEqual(parsed.blockIndexes, store.deltaBlocks(second.copy, first.copy))
    for await (const { index, data, bitmap } of parsed.blocks()) {
      assert.ok(bitmap.equals(Buffer.alloc(512, 0xff)), 'every sector of a delta block is marked present in its bitmap')
      assert.ok(data.equals(await store.readBlock(second.copy, index)), `block ${index} holds the leaf's data`)
    }
    await store.close()
  })

  it('applies a full then a delta export onto another store and gets the same disk', async () => {
    const source = await freshStore()
    const target = await freshStore()
    const { first, second } = await diskWithHistory(source)
    const replica = await target.createLayer({ sr: SR, size: SIZE })
    const full = await importVhd(target, replica, exportVhd(source, first.copy).stream)
    assert.equal(full.bytesWritten, source.allocatedBlocks(first.copy).length * LAB_BLOCK_SIZE - (LAB_BLOCK_SIZE - (SIZE % LAB_BLOCK_SIZE)))
    assert.ok((await collect(exportRaw(target, replica))).equals(await collect(exportRaw(source, first.copy))), 'the replica reads back as the first copy')

    // the replica's base is a clone of the source's base: apply the delta onto a new leaf of it
    const { leaf } = await target.snapshot(replica)
    await importVhd(target, leaf, exportVhd(source, second.copy, { base: first.copy }).stream)
    assert.ok((await collect(exportRaw(target, leaf))).equals(await collect(exportRaw(source, second.copy))), 'the leaf reads back as the second copy')
    assert.deepEqual(target.layer(leaf).ownAllocatedBlocks, 2)
    await source.close()
    await target.close()
  })

  it('keeps the blocks written when an upload is cut short and fails with VDI_IO_ERROR', async () => {
    const source = await freshStore()
    const target = await freshStore()
    const { second } = await diskWithHistory(source)
    const whole = await collect(exportVhd(source, second.copy).stream)
    const cut = whole.subarray(0, 2048 + 512 + 2 * (LAB_BLOCK_SIZE + 512) + 1000) // two blocks and a bit
    const disk = await target.createLayer({ sr: SR, size: SIZE })
    await assert.rejects(importVhd(target, disk, streamOf(cut)), (e: unknown) => isLifeboatError(e, 'VDI_IO_ERROR'))
    assert.deepEqual(target.allocatedBlocks(disk), source.allocatedBlocks(second.copy).slice(0, 2))
    const garbage = await target.createLayer({ sr: SR, size: SIZE })
    await assert.rejects(importVhd(target, garbage, streamOf(Buffer.alloc(4096, 1))), (e: unknown) => isLifeboatError(e, 'VDI_IO_ERROR'))
    await source.close()
    await target.close()
  })

  it('imports a raw upload sparsely and refuses one longer than the disk', async () => {
    const source = await freshStore()
    const target = await freshStore()
    const { second } = await diskWithHistory(source)
    const disk = await target.createLayer({ sr: SR, size: SIZE })
    const { bytesWritten } = await importRaw(target, disk, exportRaw(source, second.copy))
    assert.ok((await collect(exportRaw(target, disk))).equals(await collect(exportRaw(source, second.copy))), 'the disk on the target reads back as the second copy')
    assert.deepEqual(target.allocatedBlocks(disk), source.allocatedBlocks(second.copy))
    assert.ok(bytesWritten < SIZE / 2, `zero runs were skipped (${bytesWritten} bytes written)`)
    const small = await target.createLayer({ sr: SR, size: MiB })
    await assert.rejects(importRaw(target, small, streamOf(Buffer.alloc(MiB + 1))), (e: unknown) => isLifeboatError(e, 'VDI_IO_ERROR'))
    await source.close()
    await target.close()
  })

  it('round-trips a disk through an XVA with only allocated chunks', async () => {
    const source = await freshStore()
    const target = await freshStore()
    const { second } = await diskWithHistory(source)
    const ovaXml = renderOvaXml({ version: { export_vsn: 2 }, objects: [] })
    const xva = await collect(createXvaStream({ ovaXml, disks: [xvaDisk(source, second.copy, 'Ref:1')] }))
    assert.ok(xva.length < SIZE / 2, `unallocated chunks are not in the archive (${xva.length} bytes)`)
    const disk = await target.createLayer({ sr: SR, size: SIZE })
    async function* chunks() {
      for await (const entry of readXva([xva])) if (entry.type === 'chunk' && entry.ref === 'Ref:1') yield entry
    }
    await importXvaChunks(target, disk, chunks())
    assert.ok((await collect(exportRaw(target, disk))).equals(await collect(exportRaw(source, second.copy))), 'the disk on the target reads back as the second copy')
    await source.close()
    await target.close()
  })
})
