// Chains we write (a full and two deltas) read the same through libvhdi's vhdimount as through VhdChain,
// and broken chains are refused with coded errors.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { buffer as streamToBuffer } from 'node:stream/consumers'
import { VhdChain, VhdFile, checkVhdChain, VHD_BLOCK_SIZE } from '../../source/formats/vhd/index.ts'
import { isLifeboatError } from '../../source/util/errors.ts'
import { requireTool, run, tempDir } from '../helpers/tools.ts'
import { libvhdiRaw, patternBlock, qemuRaw, rawOfLayers, writeVhd, type BlockMap } from './fixtures/vhd/disks.ts'

const MiB = 1024 * 1024

async function writeChain(dir: string, size: number) {
  const uuids = [randomUUID(), randomUUID(), randomUUID()]
  const layers: BlockMap[] = [
    new Map([0, 1, 2, 5, 7].map(i => [i, patternBlock(i, 1)])),
    new Map([1, 3].map(i => [i, patternBlock(i, 2)])),
    new Map([2, 3, 6, 7].map(i => [i, patternBlock(i, 3)])),
  ]
  const names = ['20260301T020000Z.vhd', '20260302T020000Z.vhd', '20260303T020000Z.vhd']
  for (let k = 0; k < 3; k++) {
    const parent = k === 0 ? undefined : { uuid: uuids[k - 1]!, unicodeName: names[k - 1]! }
    await writeVhd(join(dir, names[k]!), { size, uuid: uuids[k]!, blocks: layers[k]!, parent })
  }
  return { paths: names.map(n => join(dir, n)), layers, uuids }
}

test('a full and two deltas read the same through vhdimount (libvhdi) as through VhdChain', async () => {
  requireTool('vhdimount', 'libvhdi-utils')
  requireTool('vhdiinfo', 'libvhdi-utils')
  requireTool('fusermount3', 'fuse3')
  const dir = await tempDir()
  try {
    const size = 16 * MiB
    const { paths, layers, uuids } = await writeChain(dir.path, size)
    const expected = rawOfLayers(size, layers)
    const info = (await run('vhdiinfo', [paths[2]!])).stdout.toString()
    assert.match(info, /Differential/)
    assert.ok(info.toLowerCase().includes(uuids[1]!), 'vhdiinfo shows the parent identifier')
    const oracle = await libvhdiRaw(paths[2]!, dir.path)
    assert.equal(oracle.length, size)
    assert.ok(oracle.equals(expected), 'libvhdi reads the chain differently')
    const chain = await VhdChain.open(paths[2]!)
    assert.deepEqual(chain.paths, [...paths].reverse())
    assert.equal(chain.uuid, uuids[2])
    assert.deepEqual(chain.allocatedBlocks(), [0, 1, 2, 3, 5, 6, 7])
    // XO's conventions for a delta (xo-backups.md §2): relative parent name, no parent locator entries, 2 MiB blocks.
    const delta = await VhdFile.open(paths[2]!)
    assert.deepEqual([delta.footer.creatorApplication, delta.footer.diskType, delta.header.blockSize], ['xo  ', 4, VHD_BLOCK_SIZE])
    assert.deepEqual([delta.header.parentUuid, delta.header.parentUnicodeName], [uuids[1], '20260302T020000Z.vhd'])
    assert.ok(delta.header.parentLocators.every(locator => locator.platformCode === 0 && locator.dataOffset === 0), 'the delta has no parent locators left (platform code and data offset 0)')
    await delta.close()
    assert.ok((await streamToBuffer(chain.rawStream())).equals(expected), 'the raw stream of the chain equals the expected disk')
    assert.ok((await chain.read(3 * VHD_BLOCK_SIZE - 100, 300)).equals(expected.subarray(3 * VHD_BLOCK_SIZE - 100, 3 * VHD_BLOCK_SIZE + 200)), 'a read across block boundaries equals the same range of the expected disk')
    // The chain synthesized as one dynamic VHD holds the same disk (qemu-img reads dynamic disks).
    const single = join(dir.path, 'single.vhd')
    const { length, stream } = chain.toVhdStream()
    const bytes = await streamToBuffer(stream)
    assert.equal(bytes.length, length)
    await writeFile(single, bytes)
    await chain.close()
    assert.ok((await libvhdiRaw(single, dir.path)).equals(expected), 'libvhdi reads the single VHD as the expected disk')
    // qemu-img sizes an 'xo  ' VHD by its CHS geometry, a little under 16 MiB.
    const fromQemu = await qemuRaw(single, dir.path)
    assert.ok(fromQemu.length > 15 * MiB && fromQemu.equals(expected.subarray(0, fromQemu.length)), 'qemu-img reads over 15 MiB of the single VHD, equal to the start of the expected disk')
  } finally {
    await dir.cleanup()
  }
})

test('a chain with a missing or mismatched parent is refused with a coded error', async () => {
  const dir = await tempDir()
  try {
    const { paths } = await writeChain(dir.path, 16 * MiB)
    assert.deepEqual((await checkVhdChain(paths[2]!)).paths, [...paths].reverse())
    await rename(paths[1]!, paths[1]! + '.moved')
    await assert.rejects(checkVhdChain(paths[2]!), (e: unknown) => isLifeboatError(e, 'VHD_PARENT_MISSING'))
    await writeVhd(paths[1]!, { size: 16 * MiB, uuid: randomUUID(), blocks: new Map(), parent: { uuid: randomUUID(), unicodeName: '20260301T020000Z.vhd' } })
    await assert.rejects(checkVhdChain(paths[2]!), (e: unknown) => isLifeboatError(e, 'VHD_PARENT_MISMATCH'))
  } finally {
    await dir.cleanup()
  }
})
