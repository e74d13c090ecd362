// Merges keep every remaining restore point's disk unchanged (property-based: random guest writes, growing
// disks, partial sector bitmaps), and a merge killed at any file operation resumes to the same bytes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { cp, readFile, readdir, writeFile } from 'node:fs/promises'
import { buffer as streamToBuffer } from 'node:stream/consumers'
import { join } from 'node:path'
import fc from 'fast-check'
import { VHD_BLOCK_SIZE, VhdChain, mergeVhdChain, resumeVhdMergeIfAny } from '../../source/formats/vhd/index.ts'
import { timeoutError } from '../../source/util/abort.ts'
import { isLifeboatError } from '../../source/util/errors.ts'
import { requireTool, run, tempDir } from '../helpers/tools.ts'
import { patternBlock, qemuRaw, writeVhd } from './fixtures/vhd/disks.ts'
import { assertRestorePoint, crashingFileSystem, ensureDir, historyArbitrary, uuidOf, writeHistory } from './fixtures/vhd/history.ts'

test('merging the oldest deltas keeps the disk of every remaining restore point', async () => {
  const dir = await tempDir()
  let run = 0
  try {
    await fc.assert(
      fc.asyncProperty(historyArbitrary, fc.nat(), async (history, pick) => {
        const runDir = join(dir.path, String(run++))
        const { names, layers } = await writeHistory(await ensureDir(runDir), history)
        const merged = 1 + (pick % (names.length - 1)) // how many deltas fold into the full
        const result = await mergeVhdChain(names.slice(0, merged + 1).map(n => join(runDir, n)))
        assert.equal(result.path, join(runDir, names[merged]!))
        assert.deepEqual((await readdir(runDir)).sort(), names.slice(merged).sort())
        for (let point = merged; point < names.length; point++) await assertRestorePoint(join(runDir, names[point]!), layers, point)
      }),
      { numRuns: 20, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    )
  } finally {
    await dir.cleanup()
  }
})

test('a merge killed after any number of file operations resumes and ends with the same bytes', async () => {
  const dir = await tempDir()
  let run = 0
  try {
    await fc.assert(
      fc.asyncProperty(historyArbitrary, fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.boolean(), fc.boolean(), async (history, when, saveOften, viaResume) => {
        const base = await ensureDir(join(dir.path, `r${run++}`))
        const { names, layers } = await writeHistory(base, history)
        const chainIn = (d: string) => names.map(n => join(d, n))
        const reference = await ensureDir(join(base, 'reference'))
        const crashed = await ensureDir(join(base, 'crashed'))
        for (const n of names) {
          await cp(join(base, n), join(reference, n))
          await cp(join(base, n), join(crashed, n))
        }
        const counting = crashingFileSystem(Number.MAX_SAFE_INTEGER)
        await mergeVhdChain(chainIn(reference), { fs: counting.fs })
        const budget = Math.floor(when * counting.used())
        const interval = saveOften ? 0 : undefined
        await assert.rejects(mergeVhdChain(chainIn(crashed), { fs: crashingFileSystem(budget).fs, stateInterval: interval }), /simulated crash/)
        // resumeVhdMergeIfAny finds the merge once its state file exists; before that nothing changed and it is simply run again.
        const resumed = viaResume ? await resumeVhdMergeIfAny(crashed) : []
        assert.ok(resumed.length === 0 || (resumed.length === 1 && resumed[0] === join(crashed, names[names.length - 1]!)), 'resuming finds no merge, or just the one of the crashed chain')
        if (resumed.length === 0) await mergeVhdChain(chainIn(crashed), { stateInterval: interval })
        assert.deepEqual(await readdir(crashed), [names[names.length - 1]!])
        const finalName = names[names.length - 1]!
        assert.ok((await readFile(join(crashed, finalName))).equals(await readFile(join(reference, finalName))), `different bytes after a crash at operation ${budget}`)
        await assertRestorePoint(join(crashed, finalName), layers, names.length - 1)
      }),
      { numRuns: 15, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    )
  } finally {
    await dir.cleanup()
  }
})

test('a delta merged into a qemu-made full (the disk grows past its table) reads back through qemu-img as the chain did', async () => {
  requireTool('qemu-img', 'qemu-utils')
  requireTool('qemu-io', 'qemu-utils')
  const dir = await tempDir()
  try {
    const base = join(dir.path, 'base.vhd')
    await run('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic,force_size=on', base, '250M'])
    await run('qemu-io', ['-f', 'vpc', '-c', 'write -P 0xab 0 3M', '-c', 'write -P 0xcd 100M 1M', '-c', 'write -P 0xef 249M 1M', base])
    const parent = await VhdChain.open(base)
    const parentUuid = parent.uuid
    await parent.close()
    // The child is bigger (300 MiB: 150 entries, beyond the 128 of the parent's one-sector table).
    const child = join(dir.path, 'child.vhd')
    const blocks = new Map([[1, patternBlock(1, 9)], [60, patternBlock(60, 9)], [149, patternBlock(149, 9)]])
    await writeVhd(child, { size: 300 * 1024 * 1024, uuid: uuidOf(42), blocks, parent: { uuid: parentUuid, unicodeName: 'base.vhd' } })
    const before = await VhdChain.open(child)
    const expected = await streamToBuffer(before.rawStream())
    await before.close()
    let progress = 0
    const result = await mergeVhdChain([base, child], { onProgress: (done, total) => (progress = done / total) })
    assert.equal(progress, 1)
    assert.equal(result.mergedBytes, 3 * VHD_BLOCK_SIZE)
    const merged = await VhdChain.open(child)
    assert.equal(merged.uuid, uuidOf(42))
    assert.equal(merged.size, 300 * 1024 * 1024)
    await merged.close()
    assert.ok((await qemuRaw(child, dir.path)).equals(expected), 'qemu-img reads the merged disk differently')
  } finally {
    await dir.cleanup()
  }
})

test('an aborted merge resumes; a state left for other files is refused; an orphan state is dropped', async () => {
  const dir = await tempDir()
  try {
    const { names, layers } = await writeHistory(dir.path, { baseBlocks: 20, layers: [0, 1, 2].map(g => ({ growBy: 0, writes: [g, g + 5, 9], partial: [false, true, false, false], bitmapSeed: g })) })
    const chain = names.map(n => join(dir.path, n))
    const controller = new AbortController()
    await assert.rejects(mergeVhdChain(chain.slice(0, 2), { signal: controller.signal, onProgress: () => controller.abort() }),
      (e: unknown) => isLifeboatError(e, 'CANCELLED'), 'a bare abort is a coded cancellation')
    const timedOut = new AbortController()
    timedOut.abort(timeoutError('the merge', 1000))
    await assert.rejects(mergeVhdChain(chain.slice(0, 2), { signal: timedOut.signal }), (e: unknown) => isLifeboatError(e, 'TIMEOUT'),
      'the signal\'s coded reason is kept')
    assert.ok(names.every(n => existsSync(join(dir.path, n))), 'a cancelled or timed out merge leaves every VHD of the chain in place')
    await assert.rejects(mergeVhdChain(chain), (e: unknown) => isLifeboatError(e, 'VHD_MERGE_STATE_MISMATCH'))
    assert.deepEqual(await resumeVhdMergeIfAny(dir.path), [chain[1]])
    await assertRestorePoint(chain[1]!, layers, 1)
    await assertRestorePoint(chain[2]!, layers, 2)
    await writeFile(join(dir.path, '.gone.vhd.merge.json'), JSON.stringify({ child: { uuid: uuidOf(1) }, parent: { uuid: uuidOf(0) }, chain: ['gone.vhd', 't1.vhd'], currentBlock: 3, mergedDataSize: 0, step: 'mergeBlocks', diskSize: 1 }))
    assert.deepEqual(await resumeVhdMergeIfAny(dir.path), [])
    assert.deepEqual((await readdir(dir.path)).sort(), ['t1.vhd', 't2.vhd'])
  } finally {
    await dir.cleanup()
  }
})
