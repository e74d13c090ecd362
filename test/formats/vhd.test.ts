// The VHD codec, stream writer and parser, and file reader, checked against qemu-img as the independent reader.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createReadStream } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { buffer as streamToBuffer } from 'node:stream/consumers'
import { VHD_BLOCK_SIZE, VhdChain, VhdFile, openVhdStream, vhdStreamLength, createVhdStream } from '../../source/formats/vhd/index.ts'
import { decodeFooter, encodeFooter, geometryFromSize } from '../../source/formats/vhd/structures.ts'
import { isLifeboatError } from '../../source/util/errors.ts'
import { requireTool, run, tempDir } from '../helpers/tools.ts'
import { patternBlock, qemuRaw, rawOfLayers, writeVhd, type BlockMap } from './fixtures/vhd/disks.ts'

const MiB = 1024 * 1024
// qemu-img takes the size of a VHD not made by qemu or Windows from its CHS geometry: these sizes are exact in CHS.
const chsSize = (cylinders: number) => cylinders * 4 * 17 * 512

async function streamRaw(path: string): Promise<Buffer> {
  const reader = await openVhdStream(createReadStream(path, { highWaterMark: 64 * 1024 + 17 }))
  const raw = Buffer.alloc(reader.footer.currentSize)
  for await (const { index, data } of reader.blocks()) data.copy(raw, index * reader.header.blockSize)
  return raw
}

async function fileRaw(path: string): Promise<Buffer> {
  const chain = await VhdChain.open(path)
  try {
    return await streamToBuffer(chain.rawStream())
  } finally {
    await chain.close()
  }
}

test('a dynamic VHD we write reads back through qemu-img with the same bytes, and its length is exact', async () => {
  requireTool('qemu-img', 'qemu-utils')
  const dir = await tempDir()
  try {
    const size = chsSize(600) // 19.9 MiB: a last block only partly inside the disk
    const blocks: BlockMap = new Map([[0, patternBlock(0, 1)], [3, patternBlock(3, 1)], [9, patternBlock(9, 1)]])
    const path = join(dir.path, 'disk.vhd')
    const length = await writeVhd(path, { size, uuid: randomUUID(), blocks })
    const bytes = await readFile(path)
    assert.equal(bytes.length, length)
    assert.equal(vhdStreamLength(size, 3), length)
    const expected = rawOfLayers(size, [blocks])
    assert.ok((await qemuRaw(path, dir.path)).equals(expected), 'qemu-img sees other content')
    assert.ok((await streamRaw(path)).equals(expected), 'the VHD stream reads back as the expected disk')
    assert.ok((await fileRaw(path)).equals(expected), 'the VHD file reads back as the expected disk')
    const { stdout } = await run('qemu-img', ['info', '--output=json', '-f', 'vpc', path])
    assert.equal(JSON.parse(stdout.toString())['virtual-size'], size)
  } finally {
    await dir.cleanup()
  }
})

test('an XAPI-style VHD (table at 2048, MacX locator, creator caml) is readable by qemu-img and by us', async () => {
  requireTool('qemu-img', 'qemu-utils')
  const dir = await tempDir()
  try {
    const size = 8 * MiB
    const blocks: BlockMap = new Map([[1, patternBlock(1, 2)]])
    const path = join(dir.path, 'xapi.vhd')
    const parentUuid = randomUUID()
    await writeVhd(path, { size, uuid: randomUUID(), blocks, parent: { uuid: parentUuid, unicodeName: 'base.vhd', locator: true } })
    const file = await VhdFile.open(path)
    assert.equal(file.header.tableOffset, 2048)
    assert.equal(file.header.parentUuid, parentUuid)
    assert.equal(file.header.parentUnicodeName, 'base.vhd')
    assert.deepEqual(file.header.parentLocators[0], { platformCode: 0x4d616358, dataSpace: 1, dataLength: 'file://base.vhd'.length, dataOffset: 1536 })
    assert.equal(file.footer.diskType, 4)
    await file.close()
    const bytes = await readFile(path)
    assert.ok(bytes.subarray(1536, 2048).equals(Buffer.alloc(512)), 'XAPI leaves the locator sector zero')
    assert.ok((await streamRaw(path)).equals(rawOfLayers(size, [blocks])), 'the VHD stream reads back as its blocks laid over zeros')
  } finally {
    await dir.cleanup()
  }
})

test('a VHD made by qemu-img and qemu-io is parsed as a file and as a stream with qemu\'s content', async () => {
  requireTool('qemu-img', 'qemu-utils')
  requireTool('qemu-io', 'qemu-utils')
  const dir = await tempDir()
  try {
    const path = join(dir.path, 'qemu.vhd')
    await run('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic,force_size=on', path, '64M'])
    await run('qemu-io', ['-f', 'vpc', '-c', 'write -P 0xab 0 1M', '-c', 'write -P 0xcd 11M 3M', '-c', 'write -P 0x11 63M 4k', path])
    const expected = await qemuRaw(path, dir.path)
    const file = await VhdFile.open(path)
    assert.equal(file.footer.creatorApplication, 'qem2')
    assert.equal(file.footer.currentSize, 64 * MiB)
    await file.close()
    assert.ok((await fileRaw(path)).equals(expected), 'the VHD file reads back as the expected disk')
    assert.ok((await streamRaw(path)).equals(expected), 'the VHD stream reads back as the expected disk')
  } finally {
    await dir.cleanup()
  }
})

test('a fixed VHD made by qemu-img is read by VhdFile and VhdChain, and refused as a stream', async () => {
  requireTool('qemu-img', 'qemu-utils')
  const dir = await tempDir()
  try {
    const path = join(dir.path, 'fixed.vhd')
    await run('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed,force_size=on', path, '6M'])
    await run('qemu-io', ['-f', 'vpc', '-c', 'write -P 0x5a 2M 1M', path])
    const expected = await qemuRaw(path, dir.path)
    const file = await VhdFile.open(path)
    assert.equal(file.footer.diskType, 2)
    assert.equal(file.blockCount, 3)
    assert.equal((await file.readBlock(1)).data[0], 0x5a)
    await file.close()
    assert.ok((await fileRaw(path)).equals(expected), 'the VHD file reads back as the expected disk')
    await assert.rejects(streamRaw(path), (e: unknown) => isLifeboatError(e))
  } finally {
    await dir.cleanup()
  }
})

test('the stream parser yields blocks in file order when the table lists them out of order, and the chain toVhdStream is a valid dynamic VHD', async () => {
  requireTool('qemu-img', 'qemu-utils')
  const dir = await tempDir()
  try {
    const size = chsSize(301)
    const blocks: BlockMap = new Map([[0, patternBlock(0, 3)], [2, patternBlock(2, 3)], [4, patternBlock(4, 3)]])
    const path = join(dir.path, 'order.vhd')
    await writeVhd(path, { size, uuid: randomUUID(), blocks })
    // Swap where blocks 0 and 4 live: swap their table entries and their bytes.
    const bytes = await readFile(path)
    const table = 1536
    const at0 = bytes.readUInt32BE(table) * 512
    const at4 = bytes.readUInt32BE(table + 16) * 512
    const span = 512 + VHD_BLOCK_SIZE
    const block0 = Buffer.from(bytes.subarray(at0, at0 + span))
    bytes.copy(bytes, at0, at4, at4 + span)
    block0.copy(bytes, at4)
    const e0 = bytes.readUInt32BE(table)
    bytes.writeUInt32BE(bytes.readUInt32BE(table + 16), table)
    bytes.writeUInt32BE(e0, table + 16)
    await writeFile(path, bytes)
    const reader = await openVhdStream(createReadStream(path))
    assert.deepEqual(reader.blockIndexes, [4, 2, 0])
    const expected = rawOfLayers(size, [blocks])
    assert.ok((await streamRaw(path)).equals(expected), 'the VHD stream reads back as the expected disk')
    assert.ok((await qemuRaw(path, dir.path)).equals(expected), 'qemu-img reads the VHD as the expected disk')
    const chain = await VhdChain.open(path)
    const out = join(dir.path, 'restored.vhd')
    const { length, stream } = chain.toVhdStream({ uuid: randomUUID() })
    await writeFile(out, await streamToBuffer(stream))
    await chain.close()
    assert.equal((await readFile(out)).length, length)
    assert.ok((await qemuRaw(out, dir.path)).equals(expected), 'qemu-img reads the converted VHD as the expected disk')
  } finally {
    await dir.cleanup()
  }
})

test('malformed VHDs are refused with coded errors', async () => {
  const dir = await tempDir()
  try {
    const path = join(dir.path, 'good.vhd')
    await writeVhd(path, { size: 4 * MiB, uuid: randomUUID(), blocks: new Map([[1, patternBlock(1, 1)]]) })
    const good = await readFile(path)
    const cases: Array<[string, (b: Buffer) => Buffer, string]> = [
      ['footer checksum', b => (b[70]! ^= 1, b), 'VHD_BAD_FOOTER_CHECKSUM'],
      ['cookie', b => (b.write('xonectix', 0), b), 'VHD_BAD_COOKIE'],
      ['header checksum', b => (b[512 + 40]! ^= 1, b), 'VHD_BAD_HEADER_CHECKSUM'],
      ['truncated', b => b.subarray(0, 1536 + 512 + 1000), 'VHD_TRUNCATED'],
      ['block offset', b => (b.writeUInt32BE(2, 1536 + 4), b), 'VHD_BAD_BLOCK_OFFSET'],
    ]
    for (const [name, mutate, code] of cases) {
      const bad = join(dir.path, `${name}.vhd`)
      await writeFile(bad, mutate(Buffer.from(good)))
      await assert.rejects(VhdFile.open(bad), (e: unknown) => isLifeboatError(e, code), `file: ${name}`)
      await assert.rejects(streamRaw(bad), (e: unknown) => isLifeboatError(e, code), `stream: ${name}`)
    }
  } finally {
    await dir.cleanup()
  }
})

test('footers round-trip and the geometry follows the VHD specification', () => {
  const footer = { features: 2, fileFormatVersion: 0x10000, dataOffset: 512, timestamp: 12345, creatorApplication: 'xo  ', creatorVersion: 0x10000,
    creatorHostOs: 0, originalSize: 64 * MiB, currentSize: 64 * MiB, geometry: geometryFromSize(64 * MiB), diskType: 3 as const, uuid: randomUUID(), savedState: 0 }
  const decoded = decodeFooter(encodeFooter(footer))
  assert.deepEqual({ ...decoded, checksum: 0 }, { ...footer, checksum: 0 })
  assert.deepEqual(geometryFromSize(64 * MiB), { cylinders: 963, heads: 8, sectorsPerTrack: 17 })
  assert.throws(() => createVhdStream({ size: 4 * MiB, uuid: randomUUID(), blockIndexes: [2, 1], blocks: (async function* () {})() }), (e: unknown) => isLifeboatError(e, 'VHD_BAD_BLOCK_LIST'))
})

test('padding and foreign data between the table and the blocks are skipped by the stream parser and the file reader', async () => {
  const dir = await tempDir()
  try {
    const size = 8 * MiB
    const blocks: BlockMap = new Map([[0, patternBlock(0, 4)], [3, patternBlock(3, 4)]])
    const path = join(dir.path, 'padded.vhd')
    await writeVhd(path, { size, uuid: randomUUID(), blocks })
    const bytes = await readFile(path)
    const tableEnd = 1536 + 512
    const padding = Buffer.alloc(4096, 0x77)
    const padded = Buffer.concat([bytes.subarray(0, tableEnd), padding, bytes.subarray(tableEnd)])
    for (const index of [0, 3]) padded.writeUInt32BE(padded.readUInt32BE(1536 + index * 4) + padding.length / 512, 1536 + index * 4)
    await writeFile(path, padded)
    const expected = rawOfLayers(size, [blocks])
    assert.ok((await streamRaw(path)).equals(expected), 'the VHD stream reads back as the expected disk')
    assert.ok((await fileRaw(path)).equals(expected), 'the VHD file reads back as the expected disk')
  } finally {
    await dir.cleanup()
  }
})
