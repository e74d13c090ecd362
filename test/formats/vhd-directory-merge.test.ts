// VhdDirectory merges through aliases (XO's way): every remaining restore point keeps its disk, a merge killed
// at any file operation resumes to the same bytes (blocks copied or moved, on a local folder or a store of
// names only, as an object store), and what XO refuses is refused.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { cp, readFile, readdir, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import {
  VHD_BLOCK_SIZE, VhdChain, localFileSystem, mergeVhdChain, resumeVhdMergeIfAny, writeVhdAlias, writeVhdDirectory, type FileSystemAccess, type VhdCompression,
} from '../../source/formats/vhd/index.ts'
import { isLifeboatError } from '../../source/util/errors.ts'
import { tempDir } from '../helpers/tools.ts'
import { patternBlock, rawOfLayers, writeVhd, writeVhdDir, type BlockMap } from './fixtures/vhd/disks.ts'
import { assertRestorePoint, crashingFileSystem, ensureDir, historyArbitrary, writeHistory } from './fixtures/vhd/history.ts'

const MiB = 1024 * 1024
const compressionArbitrary = fc.constantFrom<VhdCompression>('brotli', 'gzip', 'none')

/** Every file under `dir` with its bytes, by relative path. */
async function tree(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>()
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.set(relative(dir, join(entry.parentPath, entry.name)), await readFile(join(entry.parentPath, entry.name)))
  }
  return out
}

test('merging the oldest VhdDirectories keeps the disk of every remaining restore point; the newest alias names the merged folder', async () => {
  const dir = await tempDir()
  let run = 0
  try {
    await fc.assert(
      fc.asyncProperty(historyArbitrary, fc.nat(), compressionArbitrary, fc.boolean(), async (history, pick, compression, nativeRename) => {
        const runDir = await ensureDir(join(dir.path, String(run++)))
        const { names, layers } = await writeHistory(runDir, history, { format: 'directory', compression })
        const merged = 1 + (pick % (names.length - 1)) // how many deltas fold into the full
        const { fs } = crashingFileSystem(Number.MAX_SAFE_INTEGER, { nativeRename })
        const result = await mergeVhdChain(names.slice(0, merged + 1).map(n => join(runDir, n)), { fs })
        assert.equal(result.path, join(runDir, names[merged]!))
        assert.deepEqual((await readdir(runDir)).sort(), ['data', ...names.slice(merged)].sort())
        assert.deepEqual((await readdir(join(runDir, 'data'))).sort(), ['t0.vhd', ...names.slice(merged + 1).map(n => n.replace('.alias', ''))].sort(), 'the merged-away folders are removed')
        assert.equal(await readFile(join(runDir, names[merged]!), 'utf8'), 'data/t0.vhd', 'the newest alias names the merged folder')
        for (let point = merged; point < names.length; point++) await assertRestorePoint(join(runDir, names[point]!), layers, point)
      }),
      { numRuns: 15, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    )
  } finally {
    await dir.cleanup()
  }
})

test('a VhdDirectory merge killed after any number of file operations resumes and ends with the same bytes', async () => {
  const dir = await tempDir()
  let run = 0
  try {
    await fc.assert(
      fc.asyncProperty(historyArbitrary, fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), compressionArbitrary, fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(),
        async (history, when, compression, nativeRename, oneChild, saveOften, viaResume) => {
          const base = await ensureDir(join(dir.path, `r${run++}`))
          const written = await writeHistory(await ensureDir(join(base, 'source')), history, { format: 'directory', compression })
          // One child: blocks moved where rename is native; several: always copied.
          const names = oneChild ? written.names.slice(0, 2) : written.names
          const chainIn = (d: string) => names.map(n => join(d, n))
          const reference = join(base, 'reference')
          const crashed = join(base, 'crashed')
          await cp(join(base, 'source'), reference, { recursive: true })
          await cp(join(base, 'source'), crashed, { recursive: true })
          const counting = crashingFileSystem(Number.MAX_SAFE_INTEGER, { nativeRename })
          await mergeVhdChain(chainIn(reference), { fs: counting.fs })
          const budget = Math.floor(when * counting.used())
          const interval = saveOften ? 0 : undefined
          await assert.rejects(mergeVhdChain(chainIn(crashed), { fs: crashingFileSystem(budget, { nativeRename }).fs, stateInterval: interval }), /simulated crash/)
          const { fs } = crashingFileSystem(Number.MAX_SAFE_INTEGER, { nativeRename })
          const resumed = viaResume ? await resumeVhdMergeIfAny(crashed, { fs }) : []
          assert.ok(resumed.length === 0 || (resumed.length === 1 && resumed[0] === chainIn(crashed).at(-1)), 'resuming finds no merge, or just the one of the crashed chain')
          if (resumed.length === 0) await mergeVhdChain(chainIn(crashed), { fs, stateInterval: interval })
          const [expected, actual] = await Promise.all([tree(reference), tree(crashed)])
          assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `different files after a crash at operation ${budget}`)
          for (const [name, bytes] of expected) assert.ok(actual.get(name)!.equals(bytes), `${name} differs after a crash at operation ${budget}`)
          await assertRestorePoint(chainIn(crashed).at(-1)!, written.layers, names.length - 1)
        }),
      { numRuns: 20, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    )
  } finally {
    await dir.cleanup()
  }
})

test('a delta merged into a parent of another compression is recompressed; a disk that grew keeps its new blocks', async () => {
  const dir = await tempDir()
  try {
    const parentUuid = randomUUID()
    const childUuid = randomUUID()
    await writeVhdDir(join(dir.path, 'data/p.vhd'), { size: 8 * MiB, uuid: parentUuid, blocks: new Map([[0, patternBlock(0, 1)], [3, patternBlock(3, 1)]]), compression: 'gzip' })
    await writeVhdDir(join(dir.path, 'data/c.vhd'), { size: 12 * MiB, uuid: childUuid, blocks: new Map([[3, patternBlock(3, 2)], [5, patternBlock(5, 2)]]), parent: { uuid: parentUuid, unicodeName: 'p.alias.vhd' }, compression: 'brotli' })
    await writeVhdAlias(localFileSystem, join(dir.path, 'p.alias.vhd'), join(dir.path, 'data/p.vhd'))
    await writeVhdAlias(localFileSystem, join(dir.path, 'c.alias.vhd'), join(dir.path, 'data/c.vhd'))
    const before = await VhdChain.open(join(dir.path, 'c.alias.vhd'))
    const expected = await before.read(0, 12 * MiB)
    await before.close()
    const result = await mergeVhdChain([join(dir.path, 'p.alias.vhd'), join(dir.path, 'c.alias.vhd')])
    assert.equal(result.mergedBytes, 2 * VHD_BLOCK_SIZE)
    const after = await VhdChain.open(join(dir.path, 'c.alias.vhd'))
    assert.deepEqual([after.paths.length, after.uuid, after.size, after.footer.diskType], [1, childUuid, 12 * MiB, 3])
    assert.equal(after.header.maxTableEntries, 6, 'the header names the grown table')
    assert.deepEqual(after.allocatedBlocks(), [0, 3, 5])
    assert.ok((await after.read(0, 12 * MiB)).equals(expected), 'the merged disk reads as the chain did')
    await after.close()
    assert.equal(await readFile(join(dir.path, 'data/p.vhd/chunk-filters.json'), 'utf8'), '["gzip"]', 'the merged folder keeps its compression')
    assert.deepEqual((await readdir(join(dir.path, 'data'))), ['p.vhd'])
  } finally {
    await dir.cleanup()
  }
})

test('blocks moved just before a crash are found in the ancestor when the merge resumes', async () => {
  const dir = await tempDir()
  try {
    const { names, layers } = await writeHistory(await ensureDir(join(dir.path, 'source')), { baseBlocks: 10, layers: [0, 1].map(g => ({ growBy: 0, writes: [1, 2, 3, 4 + g], partial: [false, false, false, false], bitmapSeed: g })) }, { format: 'directory', compression: 'brotli' })
    await cp(join(dir.path, 'source'), join(dir.path, 'reference'), { recursive: true })
    await mergeVhdChain(names.map(n => join(dir.path, 'reference', n)))
    const crashed = join(dir.path, 'source')
    let renames = 0
    const crashAfterSecondMove = { ...localFileSystem, rename: async (from: string, to: string) => {
      await localFileSystem.rename(from, to)
      if (++renames === 2) throw new Error('simulated crash')
    } }
    await assert.rejects(mergeVhdChain(names.map(n => join(crashed, n)), { fs: crashAfterSecondMove }), /simulated crash/)
    assert.equal(existsSync(join(crashed, 'data/t1.vhd/blocks/0/1')) || existsSync(join(crashed, 'data/t1.vhd/blocks/0/2')), false, 'two blocks left the child')
    await mergeVhdChain(names.map(n => join(crashed, n)))
    const [expected, actual] = await Promise.all([tree(join(dir.path, 'reference')), tree(crashed)])
    assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort())
    for (const [name, bytes] of expected) assert.ok(actual.get(name)!.equals(bytes), `${name} differs`)
    await assertRestorePoint(join(crashed, names[1]!), layers, 1)
  } finally {
    await dir.cleanup()
  }
})

test('what XO refuses to merge is refused: a VhdDirectory without its alias, a chain mixing files and folders, an alias to a file', async () => {
  const dir = await tempDir()
  try {
    const parentUuid = randomUUID()
    const blocks = new Map([[0, patternBlock(0, 1)], [1, patternBlock(1, 1)]])
    await writeVhdDir(join(dir.path, 'data/p.vhd'), { size: 4 * MiB, uuid: parentUuid, blocks })
    await writeVhdDir(join(dir.path, 'data/c.vhd'), { size: 4 * MiB, uuid: randomUUID(), blocks, parent: { uuid: parentUuid, unicodeName: 'p.alias.vhd' } })
    await writeVhd(join(dir.path, 'f.vhd'), { size: 4 * MiB, uuid: parentUuid, blocks })
    await writeVhdAlias(localFileSystem, join(dir.path, 'p.alias.vhd'), join(dir.path, 'data/p.vhd'))
    await writeVhdAlias(localFileSystem, join(dir.path, 'c.alias.vhd'), join(dir.path, 'data/c.vhd'))
    await writeVhdAlias(localFileSystem, join(dir.path, 'f.alias.vhd'), join(dir.path, 'f.vhd'))
    const refused = async (chain: string[], what: string) => {
      await assert.rejects(mergeVhdChain(chain.map(n => join(dir.path, n))), (e: unknown) => isLifeboatError(e, 'NOT_SUPPORTED'), what)
    }
    await refused(['data/p.vhd', 'data/c.vhd'], 'folders named without their aliases')
    await refused(['data/p.vhd', 'c.alias.vhd'], 'an ancestor folder named without its alias')
    await refused(['p.alias.vhd', 'data/c.vhd'], 'a child folder named without its alias')
    await refused(['f.vhd', 'c.alias.vhd'], 'a VHD file ancestor with a VhdDirectory child')
    await refused(['f.alias.vhd', 'c.alias.vhd'], 'an alias to a VHD file as the ancestor')
    const noRmtree = { ...localFileSystem, rmtree: undefined }
    await assert.rejects(mergeVhdChain([join(dir.path, 'p.alias.vhd'), join(dir.path, 'c.alias.vhd')], { fs: noRmtree }), (e: unknown) => isLifeboatError(e, 'NOT_SUPPORTED'), 'a storage that cannot remove folders')
    assert.deepEqual((await readdir(dir.path)).sort(), ['c.alias.vhd', 'data', 'f.alias.vhd', 'f.vhd', 'p.alias.vhd'], 'nothing was changed, no state file left')
    // A cancelled merge leaves every VhdDirectory readable as before, and resumes.
    const controller = new AbortController()
    await assert.rejects(mergeVhdChain([join(dir.path, 'p.alias.vhd'), join(dir.path, 'c.alias.vhd')], { signal: controller.signal, onProgress: () => controller.abort() }),
      (e: unknown) => isLifeboatError(e, 'CANCELLED'), 'a bare abort is a coded cancellation')
    assert.ok(existsSync(join(dir.path, '.p.alias.vhd.merge.json')), 'the state file stays for the resume')
    assert.deepEqual(await resumeVhdMergeIfAny(dir.path), [join(dir.path, 'c.alias.vhd')])
    assert.deepEqual((await readdir(join(dir.path, 'data'))), ['p.vhd'])
    // An orphan state (its ancestor's alias gone before the blocks were merged) is dropped.
    await writeFile(join(dir.path, '.gone.alias.vhd.merge.json'), JSON.stringify({ child: { uuid: parentUuid }, parent: { uuid: parentUuid }, chain: ['gone.alias.vhd', 'c.alias.vhd'], currentBlock: 0, mergedDataSize: 0, step: 'mergeBlocks', diskSize: 1, remove: ['data/c.vhd'] }))
    assert.deepEqual(await resumeVhdMergeIfAny(dir.path), [])
    assert.equal(existsSync(join(dir.path, '.gone.alias.vhd.merge.json')), false, 'the orphan state is removed')
    assert.ok(existsSync(join(dir.path, 'data/p.vhd/footer')), 'and the folder it named is left alone')
  } finally {
    await dir.cleanup()
  }
})

/** An object store's shape in memory: names only (no folders, a prefix exists when a name is under it), rename a copy then a delete. */
function memoryObjectStore(): { fs: FileSystemAccess; names: () => string[]; operations: () => number } {
  const objects = new Map<string, Buffer>()
  let operations = 0
  const missing = (path: string) => Object.assign(new Error(`${path}: no such object`), { code: 'ENOENT' })
  const under = (prefix: string) => [...objects.keys()].filter(name => name.startsWith(`${prefix}/`))
  const fs: FileSystemAccess = {
    async open(path) {
      operations++
      const bytes = objects.get(path)
      if (bytes === undefined) throw missing(path)
      return {
        read: async (buffer, position) => bytes.copy(buffer, 0, position, position + buffer.length),
        write: async () => { throw new Error('an object store has no random writes') },
        size: async () => bytes.length,
        truncate: async () => { throw new Error('an object store has no random writes') },
        close: async () => {},
      }
    },
    async readFile(path) {
      operations++
      const bytes = objects.get(path)
      if (bytes === undefined) throw missing(path)
      return Buffer.from(bytes)
    },
    async writeFile(path, data) {
      operations++
      objects.set(path, Buffer.from(data))
    },
    async rename(from, to) {
      operations++
      const bytes = objects.get(from)
      if (bytes === undefined) throw missing(from)
      objects.set(to, bytes)
      objects.delete(from)
    },
    async unlink(path) {
      operations++
      if (!objects.delete(path)) throw missing(path)
    },
    exists: async path => (operations++, objects.has(path) || under(path).length > 0),
    list: async dir => (operations++, [...new Set(under(dir).map(name => name.slice(dir.length + 1).split('/')[0]!))].sort()),
    async rmtree(path) {
      operations++
      for (const name of under(path)) objects.delete(name)
    },
  }
  return { fs, names: () => [...objects.keys()].sort(), operations: () => operations }
}

test('on a store of names only (no folders, rename by copy: an object store), VhdDirectories are written, read, merged and resumed after a crash', async () => {
  const size = 10 * VHD_BLOCK_SIZE
  const layers: BlockMap[] = [new Map([0, 1, 5].map(i => [i, patternBlock(i, 1)])), new Map([1, 2].map(i => [i, patternBlock(i, 2)])), new Map([2, 5, 9].map(i => [i, patternBlock(i, 3)]))]
  const write = async (fs: FileSystemAccess) => {
    for (const [k, blocks] of layers.entries()) {
      const blockIndexes = [...blocks.keys()]
      async function* source() {
        for (const index of blockIndexes) yield { index, data: blocks.get(index)! }
      }
      const parent = k === 0 ? undefined : { uuid: `00000000-0000-4000-8000-00000000000${k - 1}`, unicodeName: `t${k - 1}.alias.vhd` }
      await writeVhdDirectory(`vdi/data/t${k}.vhd`, { fs, size, uuid: `00000000-0000-4000-8000-00000000000${k}`, blockIndexes, blocks: source(), parent, timestamp: 840_000_000 + k })
      await writeVhdAlias(fs, `vdi/t${k}.alias.vhd`, `vdi/data/t${k}.vhd`)
    }
  }
  const chain = ['vdi/t0.alias.vhd', 'vdi/t1.alias.vhd', 'vdi/t2.alias.vhd']
  const reference = memoryObjectStore()
  await write(reference.fs)
  const before = await VhdChain.open(chain[2]!, { fs: reference.fs })
  assert.ok((await before.read(0, size)).equals(rawOfLayers(size, layers)), 'the chain reads as the layers on a store of names')
  await before.close()
  const start = reference.operations()
  await mergeVhdChain(chain, { fs: reference.fs })
  const mergeOperations = reference.operations() - start
  for (const fraction of [0.1, 0.3, 0.5, 0.7, 0.9, 0.99]) {
    const store = memoryObjectStore()
    await write(store.fs)
    await assert.rejects(mergeVhdChain(chain, { fs: crashingFileSystem(Math.floor(fraction * mergeOperations), { base: store.fs }).fs, stateInterval: 0 }), /simulated crash/)
    const resumed = await resumeVhdMergeIfAny('vdi', { fs: store.fs })
    if (resumed.length === 0) await mergeVhdChain(chain, { fs: store.fs })
    assert.deepEqual(store.names(), reference.names(), `the objects after a crash at ${fraction} of the merge`)
    for (const name of reference.names()) assert.ok((await store.fs.readFile(name)).equals(await reference.fs.readFile(name)), `${name} after a crash at ${fraction} of the merge`)
  }
  assert.ok(reference.names().every(name => name === 'vdi/t2.alias.vhd' || name.startsWith('vdi/data/t0.vhd/')), `only the newest alias and the merged folder are left: ${reference.names().join(', ')}`)
  const after = await VhdChain.open(chain[2]!, { fs: reference.fs })
  assert.ok((await after.read(0, size)).equals(rawOfLayers(size, layers)), 'the merged disk reads as the chain did')
  await after.close()
})
