// Retention of delta chains: deleted backups' VHDs are merged into the oldest kept backup, every kept
// restore point reads the same bytes before and after (also through qemu-img and libvhdi), names and
// uuids are XO's, and other schedules' backups are never touched.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { VhdFile } from '../../source/formats/vhd/index.ts'
import { applyRetention, cleanVm, deleteBackups, listVmBackups, readCache, vmDir } from '../../source/repository/index.ts'
import { LocalHandler, openRemote } from '../../source/storage/index.ts'
import { TaskLog, type TaskEvent } from '../../source/tasks/index.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'
import { libvhdiRaw, qemuRaw } from '../formats/fixtures/vhd/disks.ts'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { mkdir, readdir } from 'node:fs/promises'
import fc from 'fast-check'
import { JOB, DISKS, OTHER_SCHEDULE, SCHEDULE, VM, chainHash, chainRaw, jsonPath, modelHash, newDisks, random, snapshotVdiUuid, vhdPath, writeDeltaBackup } from './clean-fixtures.ts'

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex')

test('retention keeps 2 of 6 backups: the 4 old deltas are merged into the oldest kept, every kept point is unchanged', async () => {
  requireTool('qemu-img', 'qemu-utils')
  requireTool('vhdimount', 'libvhdi-utils')
  const dir = await tempDir('lifeboat-merge-')
  try {
    const handler = openRemote(`file://${dir.path}`) // as the engine opens it: with retries
    await handler.sync()
    const disks = newDisks(2, 6) // 12 MiB each
    const rand = random(42)
    for (let g = 0; g < 6; g++) await writeDeltaBackup(handler, disks, g, rand)
    // Another schedule of the same job, on its own chain: retention of SCHEDULE must not touch it.
    const otherDisks = newDisks(1, 6)
    const other = await writeDeltaBackup(handler, otherDisks, 10, rand, { scheduleId: OTHER_SCHEDULE, full: true })

    const before = new Map<string, string>()
    for (let g = 0; g < 6; g++) {
      for (const d of [0, 1]) {
        const hash = await chainHash(dir.path, vhdPath(d, g))
        assert.equal(hash, modelHash(disks[d]!, g), `the writer's chain of disk ${d} at generation ${g}`)
        before.set(vhdPath(d, g), hash)
      }
    }

    const deleted = await applyRetention(handler, VM, { jobId: JOB, scheduleId: SCHEDULE, keep: 2 })
    assert.deepEqual(deleted.map(b => b._filename), [0, 1, 2, 3].map(g => `/${jsonPath(g)}`))

    const events: TaskEvent[] = []
    const task = TaskLog.start({ name: 'clean-vm' }, { onEvent: event => events.push(event) })
    const result = await cleanVm(handler, VM, { task })
    task.end()
    assert.equal(result.merged, 8)
    assert.ok(result.mergedBytes > 0, 'the merge reports merged bytes')
    assert.deepEqual(result.removed, [])
    assert.deepEqual(result.warnings, [])

    // Names as XO: the kept backup's file name, its footer uuid, no longer differencing; the old files gone.
    for (const d of [0, 1]) {
      const names = (d === 0 ? [4, 5, 10] : [4, 5]).map(g => vhdPath(d, g).split('/').pop())
      assert.deepEqual(await readdir(join(dir.path, vmDir(VM), 'vdis', JOB, DISKS[d]!)), names)
      const merged = await VhdFile.open(join(dir.path, vhdPath(d, 4)))
      assert.equal(merged.footer.uuid, snapshotVdiUuid(d, 4))
      assert.equal(merged.footer.diskType, 3)
      await merged.close()
      for (const g of [4, 5]) assert.equal(await chainHash(dir.path, vhdPath(d, g)), before.get(vhdPath(d, g)), `disk ${d} of the kept backup ${g}`)
      // Independent readers: qemu-img reads the merged (now dynamic) disk, libvhdi the chain above it.
      // (qemu sizes a disk from its CHS geometry, which rounds 12 MiB down a little: compare what it reads.)
      const viaQemu = await qemuRaw(join(dir.path, vhdPath(d, 4)), dir.path)
      const raw = await chainRaw(dir.path, vhdPath(d, 4))
      assert.ok(viaQemu.length > raw.length - 64 * 1024 && viaQemu.equals(raw.subarray(0, viaQemu.length)), 'qemu-img reads the merged disk differently')
      assert.equal(sha(await libvhdiRaw(join(dir.path, vhdPath(d, 5)), dir.path)), before.get(vhdPath(d, 5)))
    }

    const backups = await listVmBackups(handler, VM)
    assert.deepEqual(backups.map(b => b._filename), [`/${jsonPath(4)}`, `/${jsonPath(5)}`, other._filename])
    const [oldest, newest] = backups
    assert.ok(oldest?.mode === 'delta' && newest?.mode === 'delta', 'the oldest and the newest backups are deltas')
    assert.deepEqual(Object.values(oldest.isVhdDifferencing ?? {}), [false, false])
    assert.deepEqual(Object.values(newest.isVhdDifferencing ?? {}), [true, true])
    let size = 0
    for (const d of [0, 1]) size += (await handler.stat(vhdPath(d, 4))).size
    assert.equal(oldest.size, size)
    assert.deepEqual(Object.keys((await readCache(handler, VM))!).sort(), backups.map(b => b.id).sort())

    // One 'merge' task per disk chain, with its progress and size.
    const merges = events.filter(e => e.type === 'start' && e.properties.name === 'merge').map(e => e.id)
    assert.equal(merges.length, 2)
    for (const id of merges) {
      assert.ok(events.some(e => e.id === id && e.type === 'property' && e.name === 'progress' && e.value === 100), 'the merge task reports a progress of 100')
      assert.ok(events.some(e => e.id === id && e.type === 'end' && e.status === 'success'), 'the merge task ends in success')
    }

    // A second round: two more backups, keep 2 again; the merged disk is merged into again.
    for (let g = 6; g < 8; g++) await writeDeltaBackup(handler, disks, g, rand)
    for (const g of [6, 7]) for (const d of [0, 1]) before.set(vhdPath(d, g), await chainHash(dir.path, vhdPath(d, g)))
    assert.equal((await applyRetention(handler, VM, { jobId: JOB, scheduleId: SCHEDULE, keep: 2 })).length, 2)
    assert.equal((await cleanVm(handler, VM)).merged, 4)
    for (const d of [0, 1]) {
      for (const g of [6, 7]) assert.equal(await chainHash(dir.path, vhdPath(d, g)), before.get(vhdPath(d, g)))
      assert.equal(await chainHash(dir.path, vhdPath(d, 7)), modelHash(disks[d]!, 7))
    }
    assert.equal((await listVmBackups(handler, VM)).length, 3)
    assert.equal(await chainHash(dir.path, vhdPath(0, 10)), modelHash(otherDisks[0]!, 10))
  } finally {
    await dir.cleanup()
  }
})

test('retention never deletes backups of other jobs or schedules, and keep 0 with merge off leaves the VHDs', async () => {
  const dir = await tempDir('lifeboat-merge-')
  try {
    const handler = new LocalHandler(dir.path)
    const disks = newDisks(1, 4)
    const rand = random(7)
    for (let g = 0; g < 3; g++) await writeDeltaBackup(handler, disks, g, rand)
    await writeDeltaBackup(handler, newDisks(1, 4), 5, rand, { scheduleId: OTHER_SCHEDULE, full: true })
    assert.deepEqual(await applyRetention(handler, VM, { jobId: 'another-job', scheduleId: SCHEDULE, keep: 0 }), [])
    assert.deepEqual(await applyRetention(handler, VM, { jobId: JOB, scheduleId: OTHER_SCHEDULE, keep: 1 }), [])
    assert.equal((await applyRetention(handler, VM, { jobId: JOB, scheduleId: SCHEDULE, keep: 1 })).length, 2)
    const result = await cleanVm(handler, VM, { merge: false })
    assert.equal(result.merged, 0)
    assert.deepEqual(result.removed, [], 'the unreferenced ancestors of a kept backup are not orphans')
    for (let g = 0; g < 3; g++) assert.ok((await handler.stat(vhdPath(0, g))).size > 0, 'the unreferenced ancestors of the kept backup are still on the remote')
    assert.equal(await chainHash(dir.path, vhdPath(0, 2)), modelHash(disks[0]!, 2))
    assert.equal((await cleanVm(handler, VM)).merged, 2)
    assert.equal(await chainHash(dir.path, vhdPath(0, 2)), modelHash(disks[0]!, 2))
  } finally {
    await dir.cleanup()
  }
})

test('property: whatever backups are deleted (oldest, middle, whole chains), the clean leaves exactly the kept backups, each unchanged', async () => {
  const dir = await tempDir('lifeboat-merge-')
  let run = 0
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.boolean(), { minLength: 2, maxLength: 7 }), // per generation: starts a new chain (the first always does)
        fc.array(fc.boolean(), { minLength: 7, maxLength: 7 }), // per generation: deleted
        fc.integer(),
        async (fulls, deleted, seed) => {
          const root = join(dir.path, String(run++))
          await mkdir(root)
          const handler = new LocalHandler(root)
          const disks = newDisks(1, 4)
          const rand = random(seed)
          const generations = fulls.length
          for (let g = 0; g < generations; g++) await writeDeltaBackup(handler, disks, g, rand, { full: fulls[g] })
          const kept = [...Array(generations).keys()].filter(g => !deleted[g])
          await deleteBackups(handler, (await listVmBackups(handler, VM)).filter((_, g) => deleted[g]))
          const result = await cleanVm(handler, VM)
          assert.deepEqual(result.warnings, [])
          const expectedFiles = kept.map(g => vhdPath(0, g).split('/').pop()).sort()
          const folder = join(root, vmDir(VM), 'vdis', JOB, DISKS[0]!)
          assert.deepEqual(kept.length === 0 ? [] : await readdir(folder), expectedFiles)
          for (const g of kept) assert.equal(await chainHash(root, vhdPath(0, g)), modelHash(disks[0]!, g), `backup ${g}`)
          assert.deepEqual((await listVmBackups(handler, VM)).map(b => b._filename), kept.map(g => `/${jsonPath(g)}`))
        },
      ),
      { numRuns: 25, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    )
  } finally {
    await dir.cleanup()
  }
})
