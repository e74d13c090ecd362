// The cleaner's repairs, one crash leftover at a time: orphan VHDs, broken chains, interrupted and orphan
// merge states, temporary files, incomplete backups (missing VHD or XVA), stray XVAs, unreadable JSON.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, truncate, utimes, writeFile, mkdir } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { applyRetention, cleanVm, formatFilenameDate, listVmBackups, readCache, vhdRef, vmDir, type CleanVmResult } from '../../source/repository/index.ts'
import { LocalHandler, type RemoteHandler } from '../../source/storage/index.ts'
import { TaskLog, type TaskEvent } from '../../source/tasks/index.ts'
import { run, tempDir } from '../helpers/tools.ts'
import { DISKS, JOB, SCHEDULE, START, VM, chainHash, crashingRemote, jsonPath, modelHash, newDisks, random, vhdPath, writeDeltaBackup, writeFullBackup, type DiskHistory } from './clean-fixtures.ts'

async function withRemote(fn: (handler: RemoteHandler, root: string) => Promise<void>): Promise<void> {
  const dir = await tempDir('lifeboat-clean-')
  try {
    await fn(new LocalHandler(dir.path), dir.path)
  } finally {
    await dir.cleanup()
  }
}

async function history(handler: RemoteHandler, generations: number, fulls: number[] = []): Promise<DiskHistory[]> {
  const disks = newDisks(2, 4)
  const rand = random(99)
  for (let g = 0; g < generations; g++) await writeDeltaBackup(handler, disks, g, rand, { full: fulls.includes(g) })
  return disks
}

async function assertPointsIntact(root: string, disks: DiskHistory[], generations: number[]): Promise<void> {
  for (const g of generations) for (const d of [0, 1]) assert.equal(await chainHash(root, vhdPath(d, g)), modelHash(disks[d]!, g), `disk ${d} of backup ${g}`)
}

async function backupFiles(handler: RemoteHandler): Promise<string[]> {
  return (await listVmBackups(handler, VM)).map(b => b._filename.slice(1))
}

const vmFile = (name: string) => `${vmDir(VM)}/${name}`

test('nothing to do: a healthy folder is left as it is, and a missing VM folder is fine', async () => {
  await withRemote(async (handler, root) => {
    assert.deepEqual(await cleanVm(handler, VM), { merged: 0, mergedBytes: 0, removed: [], warnings: [] })
    const disks = await history(handler, 3)
    const result = await cleanVm(handler, VM)
    assert.deepEqual(result, { merged: 0, mergedBytes: 0, removed: [], warnings: [] })
    await assertPointsIntact(root, disks, [0, 1, 2])
  })
})

test('orphan VHDs (data written, metadata never) are removed, with an orphan chain folder', async () => {
  await withRemote(async (handler, root) => {
    const disks = await history(handler, 4)
    await handler.unlink(jsonPath(3)) // the run died between its VHDs and its JSON
    const stray = `${vmDir(VM)}/${vhdRef(JOB, 'eeeeeeee-5555-4a2b-8c3d-000000000009', formatFilenameDate(START))}`
    await handler.writeFile(stray, await handler.readFile(vhdPath(0, 0)))
    const result = await cleanVm(handler, VM)
    assert.deepEqual(result.removed.sort(), [vhdPath(0, 3), vhdPath(1, 3), stray].sort())
    assert.deepEqual(result.warnings, [])
    assert.equal(result.merged, 0)
    assert.deepEqual(await readdir(join(root, vmDir(VM), 'vdis', JOB)), [...DISKS].sort(), 'the emptied chain folder is removed')
    assert.deepEqual(await backupFiles(handler), [0, 1, 2].map(jsonPath))
    await assertPointsIntact(root, disks, [0, 1, 2])
  })
})

test('a broken chain (missing parent, truncated VHD) makes its backups incomplete: JSON and disks removed, others kept', async () => {
  await withRemote(async (handler, root) => {
    const disks = await history(handler, 6, [3]) // chains 0←1←2 and 3←4←5
    await handler.unlink(vhdPath(0, 1))
    await truncate(join(root, vhdPath(1, 5)), 3 * 1024 * 1024)
    const result = await cleanVm(handler, VM)
    assert.deepEqual(await backupFiles(handler), [0, 3, 4].map(jsonPath))
    for (const g of [1, 2, 5]) assert.ok(result.removed.includes(jsonPath(g)), `JSON ${g} removed`)
    for (const path of [vhdPath(0, 2), vhdPath(1, 1), vhdPath(1, 2), vhdPath(0, 5), vhdPath(1, 5)]) assert.ok(result.removed.includes(path), `${path} removed`)
    assert.equal(result.warnings.filter(w => w.startsWith('incomplete backup')).length, 3)
    assert.ok(result.warnings.some(w => w.startsWith('broken VHD') && w.includes(vhdPath(1, 5))), 'clean warns of the broken VHD of disk 1, generation 5')
    await assertPointsIntact(root, disks, [0, 3, 4])
    assert.deepEqual(Object.keys((await readCache(handler, VM))!).sort(), [0, 3, 4].map(g => `/${jsonPath(g)}`))
    assert.deepEqual((await cleanVm(handler, VM)).removed, [], 'a second clean finds nothing left')
  })
})

test('an interrupted merge is finished first (its half-merged files are not taken for orphans); an orphan merge state is dropped', async () => {
  await withRemote(async (handler, root) => {
    const disks = await history(handler, 4)
    await handler.unlink(jsonPath(0))
    await handler.unlink(jsonPath(1))
    // Crash after the merge of disk 0 has written a few blocks and its state file.
    const { handler: crashing } = crashingRemote(root, 6, () => {
      throw new Error('simulated crash')
    })
    await cleanVm(crashing, VM).catch(() => {})
    const folder = (d: number) => join(root, vhdPath(d, 0), '..')
    assert.ok((await readdir(folder(0))).some(name => name.endsWith('.merge.json')), 'the crash left a merge state')
    await writeFile(join(folder(1), '.gone.vhd.merge.json'), JSON.stringify({ child: { uuid: 'x' }, parent: { uuid: 'y' }, chain: ['gone.vhd', 'other.vhd'], currentBlock: 1, mergedDataSize: 0, step: 'mergeBlocks', diskSize: 1 }))

    const events: TaskEvent[] = []
    const task = TaskLog.start({ name: 'clean-vm' }, { onEvent: event => events.push(event) })
    const result = await cleanVm(handler, VM, { task })
    task.end()
    assert.equal(result.merged, 4, 'two children folded into disk 0 (resumed) and disk 1')
    assert.deepEqual(result.warnings, [])
    for (const d of [0, 1]) assert.deepEqual(await readdir(folder(d)), [2, 3].map(g => `${formatFilenameDate(START + g * 3_600_000)}.vhd`))
    await assertPointsIntact(root, disks, [2, 3])
    const backup = (await listVmBackups(handler, VM))[0]!
    assert.ok(backup.mode === 'delta', 'the backup is a delta')
    assert.deepEqual(Object.values(backup.isVhdDifferencing ?? {}), [false, false], 'the resumed merge updated the metadata too')
    assert.ok(events.some(e => e.type === 'start' && e.properties.name === 'merge' && e.properties.resumed === true), 'the interrupted merge is started again, marked resumed')
  })
})

test('an unreadable merge state leaves its folder untouched, with a warning', async () => {
  await withRemote(async (handler, root) => {
    const disks = await history(handler, 3)
    await handler.unlink(jsonPath(0))
    await writeFile(join(root, vhdPath(0, 0), '..', `.${formatFilenameDate(START)}.vhd.merge.json`), '{ not json')
    const result = await cleanVm(handler, VM)
    assert.ok(result.warnings.some(w => w.startsWith('an interrupted merge could not be finished')), 'clean warns that the interrupted merge could not be finished')
    assert.ok((await handler.stat(vhdPath(0, 0))).size > 0, 'nothing removed or merged in that folder')
    assert.equal(result.merged, 1, 'the other disk is merged')
    await assertPointsIntact(root, disks, [1, 2])
  })
})

test('temporary files older than the clean are removed; newer ones (a write in progress) are kept', async () => {
  await withRemote(async (handler, root) => {
    await history(handler, 2)
    const old = [vmFile('.20260101T020000Z.json.0123abcd.tmp'), `${posix.dirname(vhdPath(0, 1))}/.20260101T030000Z.vhd.89abcdef.tmp`]
    const fresh = vmFile('.cache.json.gz.fedcba98.tmp')
    const notOurs = vmFile('.notes.tmp')
    for (const path of [...old, fresh, notOurs]) await writeFile(join(root, path), 'partial')
    const hourAgo = new Date(Date.now() - 3_600_000)
    for (const path of old) await utimes(join(root, path), hourAgo, hourAgo)
    const result = await cleanVm(handler, VM, { temporaryFilesBefore: Date.now() - 60_000 })
    assert.deepEqual(result.removed.sort(), [...old].sort())
    assert.equal(result.warnings.filter(w => w.startsWith('temporary file')).length, 2)
    for (const path of [fresh, notOurs]) assert.ok((await handler.stat(path)).size > 0, `${path} kept`)
  })
})

test('incomplete and stray backups: JSON with a missing VHD or XVA, an XVA without JSON, unreadable JSON', async () => {
  await withRemote(async handler => {
    await history(handler, 2)
    await writeFullBackup(handler, 10)
    const full = await writeFullBackup(handler, 11)
    const deltaWithoutVhd = await writeDeltaBackup(handler, newDisks(1, 4), 12, random(5), { full: true })
    await handler.unlink(vhdPath(0, 12))
    const fullJson = jsonPath(11)
    assert.equal(full._filename, `/${fullJson}`)
    await handler.unlink(`${vmDir(VM)}/${formatFilenameDate(START + 11 * 3_600_000)}.xva`) // JSON without XVA
    await handler.unlink(jsonPath(10)) // XVA without JSON
    await handler.writeFile(`${vmDir(VM)}/${formatFilenameDate(START + 10 * 3_600_000)}.xva.checksum`, 'x')
    await handler.writeFile(vmFile('20260101T230000Z.json'), '{ "mode": "delta"') // unreadable

    const warnings: string[] = []
    const result: CleanVmResult = await cleanVm(handler, VM, { warn: message => warnings.push(message) })
    const xva10 = `${vmDir(VM)}/${formatFilenameDate(START + 10 * 3_600_000)}.xva`
    assert.deepEqual(
      result.removed.sort(),
      [deltaWithoutVhd._filename.slice(1), fullJson, `${vmDir(VM)}/${formatFilenameDate(START + 11 * 3_600_000)}.xva.checksum`, xva10, `${xva10}.checksum`, vmFile('20260101T230000Z.json')].sort(),
    )
    assert.ok(warnings.includes('incomplete backup') && warnings.includes('XVA without backup metadata') && warnings.includes('unreadable backup metadata'), 'clean warns of the incomplete backup, the XVA without metadata and the unreadable metadata')
    assert.equal(result.warnings.length, warnings.length)
    assert.deepEqual(await backupFiles(handler), [0, 1].map(jsonPath))
  })
})

test("a full backup's XO checksum: the XVA's md5 written beside it, checked by the clean (a mismatch is reported, the backup kept), removed with it by retention", async () => {
  await withRemote(async (handler, root) => {
    await writeFullBackup(handler, 10)
    await writeFullBackup(handler, 11)
    const xva = (g: number) => `${vmDir(VM)}/${formatFilenameDate(START + g * 3_600_000)}.xva`
    for (const g of [10, 11]) {
      const { stdout } = await run('md5sum', [join(root, xva(g))])
      assert.equal((await handler.readFile(`${xva(g)}.checksum`)).toString(), `$1$$${stdout.toString().split(' ')[0]}`)
    }
    const healthy: Array<{ message: string; data: unknown }> = []
    await cleanVm(handler, VM, { warn: (message, data) => healthy.push({ message, data }) })
    assert.deepEqual(healthy, [])

    const file = await handler.openFile(xva(11), 'r+')
    await file.write(Buffer.from('damaged'), 100)
    await file.close()
    const warnings: Array<{ message: string; data: unknown }> = []
    const result = await cleanVm(handler, VM, { warn: (message, data) => warnings.push({ message, data }) })
    assert.equal(warnings.length, 1)
    assert.match(warnings[0]!.message, /does not match its checksum .* it is kept/)
    assert.equal((warnings[0]!.data as { path: string }).path, xva(11))
    assert.deepEqual(result.removed, [])
    assert.deepEqual(await backupFiles(handler), [jsonPath(10), jsonPath(11)])

    await applyRetention(handler, VM, { jobId: JOB, scheduleId: SCHEDULE, keep: 1 })
    assert.deepEqual((await handler.list(vmDir(VM))).filter(name => name.includes('.xva')), [`${formatFilenameDate(START + 11 * 3_600_000)}.xva`, `${formatFilenameDate(START + 11 * 3_600_000)}.xva.checksum`])
  })
})

test('remove: false reports every problem and removes nothing, an alias without its VhdDirectory too', async () => {
  await withRemote(async (handler, root) => {
    await history(handler, 3)
    await handler.unlink(vhdPath(0, 1))
    await writeFile(join(root, vmFile('20260102T000000Z.xva')), 'stray')
    const xoFolder = join(root, vmDir(VM), 'vdis', JOB, 'ffffffff-6666-4a2b-8c3d-000000000001')
    await mkdir(join(xoFolder, 'data'), { recursive: true })
    await writeFile(join(xoFolder, '20260101T020000Z.alias.vhd'), 'data/20260101T020000Z.vhd')
    const before = await readdir(join(root, vmDir(VM)), { recursive: true })
    const result = await cleanVm(handler, VM, { remove: false })
    assert.deepEqual(result.removed, [])
    assert.ok(result.warnings.some(w => w.startsWith('incomplete backup')), 'clean warns of the incomplete backup')
    assert.ok(result.warnings.some(w => w.startsWith('XVA without backup metadata')), 'clean warns of the XVA without backup metadata')
    assert.ok(result.warnings.some(w => w.startsWith('broken VHD') && w.includes('20260101T020000Z.alias.vhd')), 'clean warns of the alias without its VhdDirectory')
    const files = async () => (await readdir(join(root, vmDir(VM)), { recursive: true })).filter(name => name !== 'cache.json.gz').sort()
    assert.deepEqual(await files(), before.filter(name => name !== 'cache.json.gz').sort(), 'only the cache is (re)written')
    const removed = await cleanVm(handler, VM)
    assert.ok(removed.removed.includes(vmFile('20260102T000000Z.xva')), 'clean removes the XVA of 20260102T000000Z')
    assert.ok(removed.removed.includes(`${vmDir(VM)}/vdis/${JOB}/ffffffff-6666-4a2b-8c3d-000000000001/20260101T020000Z.alias.vhd`), 'clean removes the alias without its VhdDirectory')
    await assert.rejects(readdir(xoFolder), { code: 'ENOENT' }, 'and its emptied chain folder')
  })
})

test('a clean cancelled in the middle of a merge stops there (merge task cancelled) and the next clean finishes it', async () => {
  await withRemote(async (handler, root) => {
    const disks = await history(handler, 3)
    await handler.unlink(jsonPath(0))
    const controller = new AbortController()
    const events: TaskEvent[] = []
    const task = TaskLog.start({ name: 'clean-vm' }, {
      onEvent: event => {
        events.push(event)
        if (event.type === 'property' && event.name === 'progress') controller.abort()
      },
    })
    await assert.rejects(cleanVm(handler, VM, { task, signal: controller.signal }))
    const merge = events.find(e => e.type === 'start' && e.properties.name === 'merge')!
    assert.ok(events.some(e => e.id === merge.id && e.type === 'end' && e.status === 'cancelled'), 'the merge task ends cancelled')
    assert.equal(events.filter(e => e.type === 'start' && e.properties.name === 'merge').length, 1, 'the second disk was not started')
    const result = await cleanVm(handler, VM)
    assert.equal(result.merged, 2)
    await assertPointsIntact(root, disks, [1, 2])
  })
})
