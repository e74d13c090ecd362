// The cleaner remembers what settled files are (a VHD's identity and parent, a backup's metadata) by their
// size and time: a clean after a clean stats them instead of opening them. A file changed since, whatever
// its size, is read again; a file changed behind the cleaner's back with its time put back is trusted, and
// verify, which reads everything, finds it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { open, readdir, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cleanVm, verifyVm } from '../../source/repository/index.ts'
import { LocalHandler } from '../../source/storage/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { VM, jsonPath, newDisks, random, vhdPath, writeDeltaBackup } from './clean-fixtures.ts'

const anHourAgo = () => new Date(Date.now() - 3_600_000)

/** Three delta restore points of two disks, every file dated an hour back (as earlier runs leave them). */
async function settledHistory(root: string): Promise<LocalHandler> {
  const handler = new LocalHandler(root)
  const disks = newDisks(2, 4)
  const rand = random(5)
  for (let g = 0; g < 3; g++) await writeDeltaBackup(handler, disks, g, rand)
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) await utimes(join(entry.parentPath, entry.name), anHourAgo(), anHourAgo())
  }
  return handler
}

/** Zeros over a file's first sector (a VHD's footer copy), in place: the size stays. */
async function zeroFirstSector(path: string): Promise<void> {
  const file = await open(path, 'r+')
  try {
    await file.write(Buffer.alloc(512), 0, 512, 0)
  } finally {
    await file.close()
  }
}

test('a file changed since the last clean is read again, even at the same size: a VHD broken in place is found', async () => {
  const dir = await tempDir('lifeboat-known-')
  try {
    const handler = await settledHistory(dir.path)
    const first = await cleanVm(handler, VM)
    assert.deepEqual([first.removed, first.warnings], [[], []], 'a healthy folder: nothing to do')
    const broken = join(dir.path, vhdPath(0, 2))
    const before = await stat(broken)
    await zeroFirstSector(broken)
    assert.equal((await stat(broken)).size, before.size, 'the change keeps the size')
    const second = await cleanVm(handler, VM)
    assert.ok(second.removed.includes(jsonPath(2)), `the backup whose disk broke is removed: ${JSON.stringify(second)}`)
  } finally {
    await dir.cleanup()
  }
})

test('metadata rewritten since the last clean is parsed again: an unreadable JSON is found', async () => {
  const dir = await tempDir('lifeboat-known-')
  try {
    const handler = await settledHistory(dir.path)
    await cleanVm(handler, VM)
    await writeFile(join(dir.path, jsonPath(1)), '{ not json')
    const result = await cleanVm(handler, VM)
    assert.ok(result.removed.includes(jsonPath(1)), `the unreadable metadata is removed: ${JSON.stringify(result)}`)
    assert.ok(result.warnings.some(w => w.startsWith('unreadable backup metadata')), 'and said')
  } finally {
    await dir.cleanup()
  }
})

test('a VHD changed with its time put back is trusted by the cleaner, and verify finds it', async () => {
  const dir = await tempDir('lifeboat-known-')
  try {
    const handler = await settledHistory(dir.path)
    await cleanVm(handler, VM)
    const broken = join(dir.path, vhdPath(1, 1))
    const { atime, mtime } = await stat(broken)
    await zeroFirstSector(broken)
    await utimes(broken, atime, mtime)
    const result = await cleanVm(handler, VM)
    assert.deepEqual(result.removed, [], 'the cleaner trusts an unchanged size and time: what it remembers stands')
    const failed = (await verifyVm(handler, VM)).filter(verdict => verdict.findings.length > 0)
    assert.ok(failed.some(verdict => `/${jsonPath(1)}` === verdict.id), `verify reads the file and fails the backup on it: ${JSON.stringify(failed.map(v => v.id))}`)
    // A process that starts afresh (the daemon restarted) reads everything: the clean then finds it too.
    const fresh = await cleanVm(new LocalHandler(dir.path), VM)
    assert.ok(fresh.removed.includes(jsonPath(1)), `a clean without memory finds the broken disk: ${JSON.stringify(fresh)}`)
  } finally {
    await dir.cleanup()
  }
})

test('a file written less than 2 seconds before it was read is not remembered', async () => {
  const dir = await tempDir('lifeboat-known-')
  try {
    const handler = new LocalHandler(dir.path)
    const disks = newDisks(2, 4)
    const rand = random(6)
    for (let g = 0; g < 2; g++) await writeDeltaBackup(handler, disks, g, rand)
    await cleanVm(handler, VM)
    // Broken at once, in the same second it was written, its time kept: a coarse clock could not tell.
    const broken = join(dir.path, vhdPath(0, 1))
    const { atime, mtime } = await stat(broken)
    await zeroFirstSector(broken)
    await utimes(broken, atime, mtime)
    const result = await cleanVm(handler, VM)
    assert.ok(result.removed.includes(jsonPath(1)), `a fresh file is read at every clean: ${JSON.stringify(result)}`)
  } finally {
    await dir.cleanup()
  }
})
