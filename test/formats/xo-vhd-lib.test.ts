// Interoperability with XO's own vhd-lib (installed into a scratch folder, run in a subprocess): a
// VhdDirectory chain written by XO reads in Lifeboat as in vhd-lib, and one written by Lifeboat reads in
// vhd-lib as in Lifeboat; each side's merge of the other's chain reads the same on both sides.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { buffer as streamToBuffer } from 'node:stream/consumers'
import { VhdChain, VhdDirectory, localFileSystem, mergeVhdChain, writeVhdAlias, type VhdCompression } from '../../source/formats/vhd/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { patternBlock, rawOfLayers, writeVhdDir, type BlockMap } from './fixtures/vhd/disks.ts'
import { runVhdLib, vhdLibScratch } from './fixtures/xo-vhd-lib/scratch.ts'

const MiB = 1024 * 1024
const SIZE = 20 * MiB - 512 // ten blocks, the last one short of a sector
const NAMES = ['20260301T020000Z', '20260302T020000Z']
const aliasOf = (k: number) => `${NAMES[k]}.alias.vhd`
const folderOf = (k: number) => `data/${NAMES[k]}.vhd`

function layers(): BlockMap[] {
  return [
    new Map([0, 1, 4, 9].map(i => [i, patternBlock(i, 1)])),
    new Map([1, 2, 9].map(i => [i, patternBlock(i, 2)])),
  ]
}

async function lifeboatRaw(path: string): Promise<Buffer> {
  const chain = await VhdChain.open(path)
  try {
    return await streamToBuffer(chain.rawStream())
  } finally {
    await chain.close()
  }
}

async function vhdLibRaw(scratch: string, root: string, alias: string): Promise<{ raw: Buffer; compression: string }> {
  const out = join(root, `vhd-lib-${Math.random().toString(36).slice(2)}.raw`)
  const { compression } = JSON.parse(await runVhdLib(scratch, ['raw', root, alias, out])) as { compression: string }
  return { raw: await readFile(out), compression }
}

test("a VhdDirectory chain written by XO's vhd-lib (key and delta through aliases, brotli) reads in Lifeboat as in vhd-lib, also once Lifeboat merged it", async () => {
  const scratch = await vhdLibScratch()
  const dir = await tempDir()
  try {
    const root = join(dir.path, 'vdi')
    await mkdir(join(dir.path, 'in'))
    const disks = layers()
    const uuids = [randomUUID(), randomUUID()]
    const spec = { compression: 'brotli', disks: [] as unknown[] }
    for (const [k, blocks] of disks.entries()) {
      const entries = []
      for (const [index, data] of blocks) {
        const file = join(dir.path, 'in', `${k}-${index}`)
        await writeFile(file, data)
        entries.push({ index, file })
      }
      spec.disks.push({ alias: aliasOf(k), data: folderOf(k), size: SIZE, uuid: uuids[k], timestamp: 830_000_000 + k, blocks: entries, ...(k > 0 && { parent: { uuid: uuids[k - 1], name: aliasOf(k - 1) } }) })
    }
    await mkdir(root)
    await writeFile(join(dir.path, 'spec.json'), JSON.stringify(spec))
    await runVhdLib(scratch, ['write', root, join(dir.path, 'spec.json')])
    const expected = rawOfLayers(SIZE, disks)
    const xo = await vhdLibRaw(scratch, root, aliasOf(1))
    assert.ok(xo.raw.equals(expected), 'vhd-lib reads its own chain as the layers')
    const delta = await VhdDirectory.open(join(root, aliasOf(1)))
    assert.deepEqual([delta.compression, delta.footer.uuid, delta.footer.diskType, delta.header.parentUuid, delta.header.parentUnicodeName], ['brotli', uuids[1], 4, uuids[0], aliasOf(0)])
    assert.equal(delta.dataPath, join(root, folderOf(1)))
    assert.ok((await lifeboatRaw(join(root, aliasOf(1)))).equals(xo.raw), 'Lifeboat reads the chain XO wrote as vhd-lib does')

    const merged = await mergeVhdChain([join(root, aliasOf(0)), join(root, aliasOf(1))])
    assert.equal(merged.path, join(root, aliasOf(1)))
    assert.deepEqual((await readdir(join(root, 'data'))), [`${NAMES[0]}.vhd`])
    const afterMerge = await vhdLibRaw(scratch, root, aliasOf(1))
    assert.ok(afterMerge.raw.equals(expected), 'vhd-lib reads the chain Lifeboat merged as before the merge')
    assert.ok((await lifeboatRaw(join(root, aliasOf(1)))).equals(expected), 'and so does Lifeboat')
  } finally {
    await dir.cleanup()
  }
})

for (const compression of ['brotli', 'gzip', 'none'] as const satisfies VhdCompression[]) {
  test(`a VhdDirectory chain written by Lifeboat (${compression}) reads in vhd-lib with the same bytes, also once vhd-lib merged it`, async () => {
    const scratch = await vhdLibScratch()
    const dir = await tempDir()
    try {
      const root = dir.path
      const disks = layers()
      const uuids = [randomUUID(), randomUUID()]
      for (const [k, blocks] of disks.entries()) {
        const parent = k === 0 ? undefined : { uuid: uuids[k - 1]!, unicodeName: aliasOf(k - 1) }
        await writeVhdDir(join(root, folderOf(k)), { size: SIZE, uuid: uuids[k]!, blocks, parent, compression })
        await writeVhdAlias(localFileSystem, join(root, aliasOf(k)), join(root, folderOf(k)))
      }
      const expected = rawOfLayers(SIZE, disks)
      assert.ok((await lifeboatRaw(join(root, aliasOf(1)))).equals(expected), 'Lifeboat reads its chain as the layers')
      const xo = await vhdLibRaw(scratch, root, aliasOf(1))
      assert.equal(xo.compression, compression === 'none' ? undefined : compression, 'vhd-lib reads the chunk filters')
      assert.ok(xo.raw.equals(expected), 'vhd-lib reads the chain Lifeboat wrote with the same bytes')

      await runVhdLib(scratch, ['merge', root, aliasOf(0), aliasOf(1)])
      assert.deepEqual((await readdir(join(root, 'data'))), [`${NAMES[0]}.vhd`], 'vhd-lib merged the delta into the key folder')
      assert.ok((await lifeboatRaw(join(root, aliasOf(1)))).equals(expected), 'Lifeboat reads the chain vhd-lib merged as before the merge')
      const after = await VhdDirectory.open(join(root, aliasOf(1)))
      assert.deepEqual([after.footer.uuid, after.footer.diskType, after.compression], [uuids[1], 3, compression])
    } finally {
      await dir.cleanup()
    }
  })
}
