// XO's VhdDirectory written and read back (each compression), chains of them through aliases read as the
// disk libvhdi reads from the same VHD files, and damaged folders or aliases refused with coded errors.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { randomUUID } from 'node:crypto'
import { buffer as streamToBuffer } from 'node:stream/consumers'
import { brotliCompressSync, brotliDecompressSync, gunzipSync } from 'node:zlib'
import fc from 'fast-check'
import {
  VHD_BLOCK_SIZE, VhdChain, VhdDirectory, VhdFile, checkVhdChain, createVhdStream, localFileSystem, openVhd, readVhdAlias, vhdStreamLength, writeVhdAlias,
  writeVhdDirectory, type VhdCompression,
} from '../../source/formats/vhd/index.ts'
import { encodeFooter, decodeFooter } from '../../source/formats/vhd/structures.ts'
import { isLifeboatError, LifeboatError } from '../../source/util/errors.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'
import { libvhdiRaw, patternBlock, rawOfLayers, writeVhd, writeVhdDir, type BlockMap } from './fixtures/vhd/disks.ts'

const MiB = 1024 * 1024
const DECOMPRESS: Record<VhdCompression, (b: Buffer) => Buffer> = { brotli: b => brotliDecompressSync(b), gzip: b => gunzipSync(b), none: b => b }

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(relative(dir, join(entry.parentPath, entry.name)))
  }
  return out.sort()
}

for (const compression of ['brotli', 'gzip', 'none'] as const) {
  test(`a VhdDirectory written with ${compression} reads back byte-exact, laid out as XO lays it out`, async () => {
    const dir = await tempDir()
    try {
      const size = 1002 * VHD_BLOCK_SIZE - 3 * 512 // past block 1000 (blocks/1/…), the last block partial
      const blocks: BlockMap = new Map([0, 3, 9, 1000, 1001].map(i => [i, patternBlock(i, 1)]))
      const uuid = randomUUID()
      const path = join(dir.path, 'disk.vhd')
      const timestamp = 800_000_000
      const blockIndexes = [...blocks.keys()]
      async function* source() {
        for (const index of blockIndexes) yield { index, data: blocks.get(index)! }
      }
      const written = await writeVhdDirectory(path, { size, uuid, blockIndexes, blocks: source(), timestamp, compression })
      assert.equal(written.length, vhdStreamLength(size, blocks.size), 'the length is that of the same VHD as a file (XO\'s metadata size)')
      const files = await filesUnder(path)
      assert.deepEqual(files, [...(compression === 'none' ? [] : ['chunk-filters.json']), 'bat', 'blocks/0/0', 'blocks/0/3', 'blocks/0/9', 'blocks/1/0', 'blocks/1/1', 'footer', 'header'].sort())
      let stored = 0
      for (const name of files) stored += (await stat(join(path, name))).size
      assert.equal(written.storedBytes, stored, 'storedBytes counts every byte stored')
      if (compression !== 'none') assert.equal(await readFile(join(path, 'chunk-filters.json'), 'utf8'), JSON.stringify([compression]))
      // The bat: XO's Buffer.alloc(maxTableEntries), one bit per block, the most significant bit first.
      const bat = DECOMPRESS[compression](await readFile(join(path, 'bat')))
      assert.equal(bat.length, 1002)
      assert.deepEqual([bat[0], bat[1], bat[125]], [0x80 | 0x10, 0x40, 0xc0], 'blocks 0, 3, 9, 1000 and 1001 set, MSB first')
      const block = DECOMPRESS[compression](await readFile(join(path, 'blocks/0/3')))
      assert.ok(block.subarray(0, 512).equals(Buffer.alloc(512, 0xff)) && block.subarray(512).equals(blocks.get(3)!), 'a block file is the full bitmap then the data')
      // The same inputs as a VHD file give the same footer and header.
      const filePath = join(dir.path, 'disk-file.vhd')
      const { stream } = createVhdStream({ size, uuid, blockIndexes, blocks: source(), timestamp })
      await writeFile(filePath, stream)
      const file = await VhdFile.open(filePath)
      assert.ok(DECOMPRESS[compression](await readFile(join(path, 'footer'))).equals((await readFile(filePath)).subarray(0, 512)), 'the footer is the raw 512 bytes')
      const vhd = await VhdDirectory.open(path)
      assert.equal(vhd.compression, compression)
      assert.deepEqual(vhd.footer, file.footer)
      assert.deepEqual(vhd.header, file.header)
      assert.deepEqual(vhd.allocatedBlocks(), blockIndexes)
      assert.equal(vhd.blockCount, 1002)
      for (const index of [...blockIndexes, 5]) {
        const [a, b] = await Promise.all([vhd.readBlock(index), file.readBlock(index)])
        assert.ok(a.bitmap.equals(b.bitmap) && a.data.equals(b.data), `block ${index} reads as in the VHD file`)
      }
      await file.close()
      assert.ok((await openVhd(path)) instanceof VhdDirectory, 'openVhd tells a folder from a file')
      assert.ok((await openVhd(filePath)) instanceof VhdFile, 'and a file from a folder')
    } finally {
      await dir.cleanup()
    }
  })
}

/** Three generations as VHD files t0…t2.vhd and as VhdDirectories behind aliases d0…d2.alias.vhd → data/d<k>.vhd. */
async function writeGenerations(dir: string, size: number, compression: VhdCompression, options: { fileBase?: boolean } = {}) {
  const layers: BlockMap[] = [
    new Map([0, 1, 2, 5, 7].map(i => [i, patternBlock(i, 1)])),
    new Map([1, 3].map(i => [i, patternBlock(i, 2)])),
    new Map([2, 3, 6, 7].map(i => [i, patternBlock(i, 3)])),
  ]
  const uuids = layers.map(() => randomUUID())
  await mkdir(join(dir, 'data'))
  const aliases: string[] = []
  for (let k = 0; k < layers.length; k++) {
    await writeVhd(join(dir, `t${k}.vhd`), { size, uuid: uuids[k]!, blocks: layers[k]!, parent: k === 0 ? undefined : { uuid: uuids[k - 1]!, unicodeName: `t${k - 1}.vhd` } })
    const asFile = k === 0 && options.fileBase === true
    const name = asFile ? 'd0.vhd' : `d${k}.alias.vhd`
    const parent = k === 0 ? undefined : { uuid: uuids[k - 1]!, unicodeName: aliases[k - 1]! }
    if (asFile) await writeVhd(join(dir, name), { size, uuid: uuids[k]!, blocks: layers[k]! })
    else {
      await writeVhdDir(join(dir, `data/d${k}.vhd`), { size, uuid: uuids[k]!, blocks: layers[k]!, parent, compression })
      await writeVhdAlias(localFileSystem, join(dir, name), join(dir, `data/d${k}.vhd`))
    }
    aliases.push(name)
  }
  return { layers, uuids, files: layers.map((_, k) => join(dir, `t${k}.vhd`)), aliases: aliases.map(a => join(dir, a)) }
}

test('a chain of VhdDirectories through aliases (and one mixed with a VHD file) reads as libvhdi reads the same VHD files', async () => {
  requireTool('vhdimount', 'libvhdi-utils')
  requireTool('fusermount3', 'fuse3')
  const dir = await tempDir()
  try {
    const size = 16 * MiB
    const pure = await writeGenerations(await mkdirp(join(dir.path, 'pure')), size, 'brotli')
    const mixed = await writeGenerations(await mkdirp(join(dir.path, 'mixed')), size, 'gzip', { fileBase: true })
    const oracle = await libvhdiRaw(pure.files[2]!, dir.path)
    assert.ok(oracle.equals(rawOfLayers(size, pure.layers)), 'libvhdi reads the VHD files as the layers')
    assert.equal(await readFile(pure.aliases[2]!, 'utf8'), 'data/d2.vhd', 'an alias holds the path relative to itself')
    for (const { aliases, layers, uuids } of [pure, mixed]) {
      const chain = await VhdChain.open(aliases[2]!)
      try {
        assert.deepEqual(chain.paths, [...aliases].reverse(), 'the chain is named by its aliases, child first')
        assert.equal(chain.uuid, uuids[2])
        assert.deepEqual(chain.allocatedBlocks(), [0, 1, 2, 3, 5, 6, 7])
        assert.ok((await streamToBuffer(chain.rawStream())).equals(rawOfLayers(size, layers)), 'the raw disk of the chain equals the layers')
      } finally {
        await chain.close()
      }
    }
    const files = await VhdChain.open(mixed.files[2]!)
    const mixedChain = await VhdChain.open(mixed.aliases[2]!)
    assert.ok((await streamToBuffer(mixedChain.rawStream())).equals(await libvhdiRaw(mixed.files[2]!, dir.path)), 'the mixed chain reads as libvhdi reads the files')
    await Promise.all([files.close(), mixedChain.close()])
    assert.deepEqual((await checkVhdChain(pure.aliases[1]!)).paths, [pure.aliases[1], pure.aliases[0]])
  } finally {
    await dir.cleanup()
  }
})

async function mkdirp(path: string): Promise<string> {
  await mkdir(path, { recursive: true })
  return path
}

async function expectCode(promise: Promise<unknown>, code: string, what: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => isLifeboatError(e, code) || assert.fail(`${what}: got ${String(e)} (${(e as LifeboatError).code}) instead of ${code}`), what)
}

test('damaged VhdDirectories and aliases are refused with coded errors', async () => {
  const dir = await tempDir()
  try {
    const size = 8 * MiB
    const fresh = async (name: string, compression: VhdCompression = 'brotli') => {
      const path = join(dir.path, name)
      await writeVhdDir(path, { size, uuid: randomUUID(), blocks: new Map([[1, patternBlock(1, 1)], [2, patternBlock(2, 1)]]), compression })
      return path
    }
    const brotli = (b: Buffer) => brotliCompressSync(b)
    let path = await fresh('no-footer')
    await rm(join(path, 'footer'))
    await expectCode(VhdDirectory.open(path), 'VHD_DIRECTORY_INCOMPLETE', 'a folder without its footer')
    await expectCode(openVhd(path), 'VHD_DIRECTORY_INCOMPLETE', 'openVhd on a folder without its footer')
    path = await fresh('bad-footer')
    const footer = brotliDecompressSync(await readFile(join(path, 'footer')))
    footer[30] = footer[30]! ^ 1
    await writeFile(join(path, 'footer'), brotli(footer))
    await expectCode(VhdDirectory.open(path), 'VHD_BAD_FOOTER_CHECKSUM', 'a footer whose checksum does not match')
    path = await fresh('fixed-footer')
    await writeFile(join(path, 'footer'), brotli(encodeFooter({ ...decodeFooter(brotliDecompressSync(await readFile(join(path, 'footer')))), diskType: 2 })))
    await expectCode(VhdDirectory.open(path), 'VHD_BAD_DISK_TYPE', 'a footer saying fixed disk')
    path = await fresh('short-footer')
    await writeFile(join(path, 'footer'), brotli(Buffer.alloc(100)))
    await expectCode(VhdDirectory.open(path), 'VHD_TRUNCATED', 'a footer of 100 bytes')
    path = await fresh('bad-header')
    await writeFile(join(path, 'header'), brotli(Buffer.alloc(1024, 7)))
    await expectCode(VhdDirectory.open(path), 'VHD_BAD_COOKIE', 'a header of garbage')
    path = await fresh('short-bat')
    await writeFile(join(path, 'bat'), brotli(Buffer.alloc(0)))
    await expectCode(VhdDirectory.open(path), 'VHD_BAD_TABLE', 'an empty bat')
    path = await fresh('big-bat')
    await writeFile(join(path, 'bat'), brotli(Buffer.alloc(5 * MiB)))
    await expectCode(VhdDirectory.open(path), 'VHD_BAD_CHUNK', 'a bat that inflates far beyond its size')
    path = await fresh('not-brotli')
    await writeFile(join(path, 'header'), Buffer.from('plainly not brotli data at all'))
    await expectCode(VhdDirectory.open(path), 'VHD_BAD_CHUNK', 'a header that is not brotli')
    path = await fresh('zstd')
    await writeFile(join(path, 'chunk-filters.json'), '["zstd"]')
    await expectCode(VhdDirectory.open(path), 'VHD_BAD_CHUNK_FILTERS', 'an unknown chunk filter')
    await writeFile(join(path, 'chunk-filters.json'), '{"not": "json list"')
    await expectCode(VhdDirectory.open(path), 'VHD_BAD_CHUNK_FILTERS', 'a chunk-filters.json that is not JSON')
    path = await fresh('blocks')
    const vhd = await VhdDirectory.open(path)
    await rm(join(path, 'blocks/0/1'))
    await expectCode(vhd.readBlock(1), 'VHD_BLOCK_MISSING', 'a block in the bat whose file is missing')
    await writeFile(join(path, 'blocks/0/2'), brotli(Buffer.alloc(1000)))
    await expectCode(vhd.readBlock(2), 'VHD_BAD_BLOCK', 'a block of the wrong size')
    await writeFile(join(path, 'blocks/0/2'), brotli(Buffer.alloc(4 * MiB)))
    await expectCode(vhd.readBlock(2), 'VHD_BAD_CHUNK', 'a block that inflates beyond a block')
    await expectCode(VhdChain.open(path).then(c => c.readBlock(2)), 'VHD_BAD_CHUNK', 'read through a chain')
    await expectCode(writeVhdDir(path, { size, uuid: randomUUID(), blocks: new Map() }), 'VHD_DIRECTORY_EXISTS', 'writing over a VhdDirectory')
    // A writer fed a block it did not announce leaves nothing behind.
    const broken = join(dir.path, 'broken-write')
    async function* wrong() {
      yield { index: 3, data: patternBlock(3, 1) }
    }
    await expectCode(writeVhdDirectory(broken, { size, uuid: randomUUID(), blockIndexes: [1], blocks: wrong() }), 'VHD_BAD_BLOCK_LIST', 'an unannounced block')
    assert.equal(existsSync(broken), false, 'a failed write removes its folder')

    // Aliases.
    const target = await fresh('target')
    const alias = join(dir.path, 'a.alias.vhd')
    await writeVhdAlias(localFileSystem, alias, target)
    assert.equal(await readVhdAlias(localFileSystem, alias), target)
    assert.ok((await openVhd(alias)) instanceof VhdDirectory, 'an alias opens its VhdDirectory')
    assert.equal((await openVhd(alias)).path, alias, 'opened through an alias, the VHD is named by it')
    await writeFile(alias, Buffer.alloc(1025, 0x61))
    await expectCode(openVhd(alias), 'VHD_BAD_ALIAS', 'an alias of more than 1024 bytes')
    await writeFile(alias, ' \n')
    await expectCode(openVhd(alias), 'VHD_BAD_ALIAS', 'an empty alias')
    await writeFile(alias, '/etc')
    await expectCode(openVhd(alias), 'VHD_BAD_ALIAS', 'an alias with an absolute path')
    await writeFile(alias, 'b.alias.vhd')
    await expectCode(openVhd(alias), 'VHD_ALIAS_TO_ALIAS', 'an alias to an alias')
    await writeFile(alias, 'gone.vhd')
    await expectCode(openVhd(alias), 'FILE_NOT_FOUND', 'an alias whose target is missing')
    await expectCode(openVhd(join(dir.path, 'missing.alias.vhd')), 'FILE_NOT_FOUND', 'a missing alias')
    await expectCode(writeVhdAlias(localFileSystem, join(dir.path, 'x.vhd'), target), 'VHD_BAD_ALIAS', 'an alias not named *.alias.vhd')
    await expectCode(writeVhdAlias(localFileSystem, alias, join(dir.path, 'b.alias.vhd')), 'VHD_ALIAS_TO_ALIAS', 'an alias written to point at an alias')
    // An alias may point at a VHD file (XO's openVhd allows it); the file is then named by the alias.
    await writeVhd(join(dir.path, 'plain.vhd'), { size, uuid: randomUUID(), blocks: new Map() })
    await writeVhdAlias(localFileSystem, alias, join(dir.path, 'plain.vhd'))
    const viaAlias = await openVhd(alias)
    assert.ok(viaAlias instanceof VhdFile && viaAlias.path === alias, 'an alias to a VHD file opens the file, named by the alias')
    await viaAlias.close()
  } finally {
    await dir.cleanup()
  }
})

test('random damage to any part of a VhdDirectory is a coded VHD error or a clean read, never a crash', async () => {
  const dir = await tempDir()
  let run = 0
  try {
    const parts = ['footer', 'header', 'bat', 'chunk-filters.json', 'blocks/0/1']
    await fc.assert(
      fc.asyncProperty(fc.constantFrom<VhdCompression>('brotli', 'gzip', 'none'), fc.constantFrom(...parts), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), fc.option(fc.nat(), { nil: undefined }),
        async (compression, part, flips, cut) => {
          const path = join(dir.path, String(run++))
          await writeVhdDir(path, { size: 4 * MiB, uuid: randomUUID(), blocks: new Map([[1, patternBlock(1, 1)]]), compression })
          const file = join(path, part)
          if (!existsSync(file)) return
          let bytes = await readFile(file)
          for (const [at, xor] of flips) if (bytes.length > 0) bytes[at % bytes.length] = bytes[at % bytes.length]! ^ xor
          if (cut !== undefined) bytes = bytes.subarray(0, cut % (bytes.length + 1))
          await writeFile(file, bytes)
          try {
            const vhd = await openVhd(path)
            for (const index of vhd.allocatedBlocks()) await vhd.readBlock(index)
          } catch (error) {
            assert.ok(error instanceof LifeboatError && error.code.startsWith('VHD_'), `a damaged ${part} gave ${String(error)}`)
          }
        }),
      { numRuns: 150, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    )
  } finally {
    await dir.cleanup()
  }
})
