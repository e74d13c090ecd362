// The cleaner on VhdDirectory chains (XO's layout for object stores: `<date>.alias.vhd` → `data/<date>.vhd/`):
// retention merges through the aliases, and XO's alias rules — an alias with a missing, empty or non-VHD target
// is removed, so is a VhdDirectory named like an alias, and a data/ entry no alias points at; an interrupted
// directory merge is resumed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { BLOCK_HASHES_SUFFIX } from '../../source/formats/vhd/index.ts'
import { applyRetention, cleanVm, formatFilenameDate, listVmBackups } from '../../source/repository/index.ts'
import { LocalHandler, type RemoteHandler } from '../../source/storage/index.ts'
import { TaskLog, type TaskEvent } from '../../source/tasks/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { JOB, SCHEDULE, START, VM, chainHash, crashingRemote, jsonPath, modelHash, newDisks, random, vhdPath, writeDeltaBackup, type DiskHistory } from './clean-fixtures.ts'

async function withRemote(fn: (handler: RemoteHandler, root: string) => Promise<void>): Promise<void> {
  const dir = await tempDir('lifeboat-clean-dir-')
  try {
    await fn(new LocalHandler(dir.path), dir.path)
  } finally {
    await dir.cleanup()
  }
}

async function history(handler: RemoteHandler, generations: number): Promise<DiskHistory[]> {
  const disks = newDisks(2, 4)
  const rand = random(77)
  for (let g = 0; g < generations; g++) await writeDeltaBackup(handler, disks, g, rand, { directory: true })
  return disks
}

const aliasPath = (d: number, g: number) => vhdPath(d, g, true)
const dataPath = (d: number, g: number) => `${posix.dirname(aliasPath(d, g))}/data/${formatFilenameDate(START + g * 3_600_000)}.vhd`
const dates = (generations: number[]) => generations.map(g => formatFilenameDate(START + g * 3_600_000))

async function assertPointsIntact(root: string, disks: DiskHistory[], generations: number[]): Promise<void> {
  for (const g of generations) for (const d of [0, 1]) assert.equal(await chainHash(root, aliasPath(d, g)), modelHash(disks[d]!, g), `disk ${d} of backup ${g}`)
}

/** The chain folder of disk d: its aliases, and the VhdDirectories under data/. */
async function folderOf(root: string, d: number): Promise<{ aliases: string[]; data: string[] }> {
  const folder = join(root, posix.dirname(aliasPath(d, 0)))
  const names = await readdir(folder)
  const aliases = names.filter(name => name !== 'data' && !name.endsWith(BLOCK_HASHES_SUFFIX)).sort()
  // Each alias Lifeboat wrote or merged keeps its block hashes beside it, and no hashes outlive their alias.
  assert.deepEqual(names.filter(name => name.endsWith(BLOCK_HASHES_SUFFIX)).sort(), aliases.map(alias => `${alias}${BLOCK_HASHES_SUFFIX}`), `disk ${d}: one block hash file per alias`)
  return { aliases, data: names.includes('data') ? (await readdir(join(folder, 'data'))).sort() : [] }
}

test('a healthy VhdDirectory chain is left as it is', async () => {
  await withRemote(async (handler, root) => {
    const disks = await history(handler, 3)
    assert.deepEqual(await cleanVm(handler, VM), { merged: 0, mergedBytes: 0, removed: [], warnings: [] })
    await assertPointsIntact(root, disks, [0, 1, 2])
  })
})

test('retention merges the released deltas into the oldest kept VhdDirectory through its alias; metadata rewritten', async () => {
  await withRemote(async (handler, root) => {
    const disks = await history(handler, 5)
    await applyRetention(handler, VM, { jobId: JOB, scheduleId: SCHEDULE, keep: 2 })
    const result = await cleanVm(handler, VM)
    assert.equal(result.merged, 6, 'three deltas of each disk folded into the oldest kept backup')
    assert.deepEqual(result.warnings, [])
    await assertPointsIntact(root, disks, [3, 4])
    for (const d of [0, 1]) {
      const { aliases, data } = await folderOf(root, d)
      assert.deepEqual(aliases, dates([3, 4]).map(date => `${date}.alias.vhd`), `disk ${d}: the kept aliases only`)
      assert.equal(data.length, 2, `disk ${d}: one VhdDirectory per alias, nothing left over (${data.join(', ')})`)
    }
    const [oldest] = await listVmBackups(handler, VM)
    assert.ok(oldest?.mode === 'delta', 'the oldest kept backup is a delta')
    assert.deepEqual(Object.values(oldest.isVhdDifferencing ?? {}), [false, false], 'no longer differencing')
    assert.ok((oldest.size ?? 0) > 0, 'its size rewritten')
    assert.deepEqual(await cleanVm(handler, VM), { merged: 0, mergedBytes: 0, removed: [], warnings: [] }, 'a second clean finds nothing to do')
  })
})

test('an alias whose VhdDirectory is missing is removed, with the backups that need it', async () => {
  await withRemote(async (handler, root) => {
    const disks = await history(handler, 3)
    await rm(join(root, dataPath(0, 2)), { recursive: true })
    const result = await cleanVm(handler, VM)
    assert.ok(result.warnings.some(w => w.startsWith('broken VHD') && w.includes(aliasPath(0, 2))), `the broken alias is reported (${result.warnings.join(' | ')})`)
    for (const path of [aliasPath(0, 2), jsonPath(2), aliasPath(1, 2), dataPath(1, 2)]) assert.ok(result.removed.includes(path), `${path} removed`)
    assert.deepEqual((await folderOf(root, 0)).aliases, dates([0, 1]).map(date => `${date}.alias.vhd`))
    await assertPointsIntact(root, disks, [0, 1])
  })
})

test('an empty alias, and one pointing at no VHD, are removed (with the non-VHD target in data/)', async () => {
  await withRemote(async (handler, root) => {
    const disks = await history(handler, 3)
    await writeFile(join(root, aliasPath(0, 2)), '')
    await writeFile(join(root, aliasPath(1, 2)), 'data/notes.txt')
    await writeFile(join(root, posix.dirname(aliasPath(1, 2)), 'data', 'notes.txt'), 'not a disk')
    const result = await cleanVm(handler, VM)
    for (const path of [aliasPath(0, 2), aliasPath(1, 2), `${posix.dirname(aliasPath(1, 2))}/data/notes.txt`, jsonPath(2)]) assert.ok(result.removed.includes(path), `${path} removed (${result.removed.join(', ')})`)
    for (const d of [0, 1]) assert.deepEqual(await folderOf(root, d), { aliases: dates([0, 1]).map(date => `${date}.alias.vhd`), data: dates([0, 1]).map(date => `${date}.vhd`) }, `disk ${d}: the folder holds backups 0 and 1 only`)
    await assertPointsIntact(root, disks, [0, 1])
  })
})

test('a VhdDirectory named like an alias is removed, as XO does', async () => {
  await withRemote(async (handler, root) => {
    const disks = await history(handler, 2)
    const misnamed = `${posix.dirname(aliasPath(0, 0))}/20251231T000000Z.alias.vhd`
    await mkdir(join(root, misnamed, 'blocks', '0'), { recursive: true })
    await writeFile(join(root, misnamed, 'header'), Buffer.alloc(1024))
    const result = await cleanVm(handler, VM)
    assert.ok(result.removed.includes(misnamed), `the folder is removed (${result.removed.join(', ')})`)
    assert.ok(result.warnings.some(w => w.includes(misnamed)), 'and reported')
    await assertPointsIntact(root, disks, [0, 1])
  })
})

test('a data/ entry no alias points at (a write cut before its alias) is removed; remove: false only reports it', async () => {
  await withRemote(async (handler, root) => {
    const disks = await history(handler, 3)
    await handler.unlink(jsonPath(2))
    await handler.unlink(aliasPath(0, 2)) // the run died after disk 0's VhdDirectory, before its alias
    await handler.unlink(`${aliasPath(0, 2)}${BLOCK_HASHES_SUFFIX}`) // (its block hashes come after the alias)
    const reported = await cleanVm(handler, VM, { remove: false })
    assert.deepEqual(reported.removed, [])
    assert.ok(reported.warnings.some(w => w.includes('orphaned data') && w.includes(dataPath(0, 2))), `the orphan VhdDirectory is reported (${reported.warnings.join(' | ')})`)
    assert.equal((await folderOf(root, 0)).data.length, 3, 'nothing removed without remove')
    const result = await cleanVm(handler, VM)
    assert.ok(result.removed.includes(dataPath(0, 2)), 'the orphan VhdDirectory is removed')
    assert.ok(result.removed.includes(aliasPath(1, 2)) && result.removed.includes(dataPath(1, 2)), 'the other disk of the uncommitted backup goes with its VhdDirectory')
    for (const d of [0, 1]) assert.deepEqual((await folderOf(root, d)).data, dates([0, 1]).map(date => `${date}.vhd`))
    await assertPointsIntact(root, disks, [0, 1])
  })
})

test('a directory merge interrupted by a crash is resumed first by the next clean, with the same bytes', async () => {
  await withRemote(async (handler, root) => {
    const disks = await history(handler, 4)
    await handler.unlink(jsonPath(0))
    await handler.unlink(jsonPath(1))
    // Crash in the middle of the merge of disk 0: after its state file and some of its blocks.
    let crashed = false
    for (let stopAt = 4; !crashed; stopAt++) {
      const { handler: crashing } = crashingRemote(root, stopAt, () => {
        throw new Error('simulated crash')
      })
      await cleanVm(crashing, VM).catch(() => {})
      crashed = (await readdir(join(root, posix.dirname(aliasPath(0, 0))))).some(name => name.endsWith('.merge.json'))
      assert.ok(crashed || stopAt < 40, 'some crash lands in the middle of a merge')
    }
    const events: TaskEvent[] = []
    const task = TaskLog.start({ name: 'clean-vm' }, { onEvent: event => events.push(event) })
    const result = await cleanVm(handler, VM, { task })
    task.end()
    assert.deepEqual(result.warnings, [])
    assert.ok(events.some(e => e.type === 'start' && e.properties.name === 'merge' && e.properties.resumed === true), 'the interrupted merge is started again, marked resumed')
    await assertPointsIntact(root, disks, [2, 3])
    for (const d of [0, 1]) {
      const { aliases, data } = await folderOf(root, d)
      assert.deepEqual(aliases, dates([2, 3]).map(date => `${date}.alias.vhd`), `disk ${d}: the kept aliases only`)
      assert.equal(data.length, 2, `disk ${d}: one VhdDirectory per alias (${data.join(', ')})`)
    }
  })
})
