// Run by merge-full.test.ts inside a private tmpfs (unshare): a merge on a remote that is really full,
// refused first, then cut by ENOSPC in the middle, then finished once space is freed. Prints what it saw.
import { cp, open, truncate, unlink } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { localFileSystem, mergeVhdChain, VhdFile, VHD_BLOCK_SIZE } from '../../source/formats/vhd/index.ts'
import { applyRetention, cleanVm, listVmBackups, resolveInVmDir, vmDir, type VmBackup } from '../../source/repository/index.ts'
import { LocalHandler } from '../../source/storage/index.ts'
import { JOB, SCHEDULE, START, VM, chainHash, modelHash, newDisks, random, vhdPath, writeDeltaBackup } from './clean-fixtures.ts'

const root = process.env.REMOTE_DIR!
const out = process.env.OUT_DIR!
const GENERATIONS = 6
const handler = new LocalHandler(root)
const disks = newDisks(1, 12)
const rand = random(Number(process.env.SEED))
for (let g = 0; g < GENERATIONS; g++) await writeDeltaBackup(handler, disks, g, rand)
await applyRetention(handler, VM, { jobId: JOB, scheduleId: SCHEDULE, keep: 2 })
const disk = disks[0]!
const full = new Set(disk.layers[0]!.keys())
const appended = new Set([1, 2, 3, 4].flatMap(g => [...disk.layers[g]!.keys()]).filter(index => !full.has(index)))

// Fill the remote to the last byte, then free a little less than the merge needs.
const filler = join(root, 'filler')
const file = await open(filler, 'w')
let filled = 0
try {
  for (;;) {
    await file.write(Buffer.alloc(1024 * 1024, 1), 0, 1024 * 1024, filled)
    filled += 1024 * 1024
  }
} catch (error) {
  if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error
} finally {
  await file.close()
}
await truncate(filler, Math.max(0, filled - Math.floor(appended.size / 2) * (VHD_BLOCK_SIZE + 512) - 64 * 1024))

/** Every listed restore point read whole through its chain, against the model of its disk. */
async function readAll(): Promise<Array<{ generation: number; same: boolean }>> {
  const backups: VmBackup[] = await listVmBackups(handler, VM)
  const points = []
  for (const backup of backups) {
    const generation = (backup.timestamp - START) / 3_600_000
    const ref = Object.values((backup as { vhds: Record<string, string> }).vhds)[0]!
    points.push({ generation, same: (await chainHash(root, resolveInVmDir(VM, ref))) === modelHash(disk, generation) })
  }
  return points
}
const vhds = async () => (await handler.list(posix.dirname(vhdPath(0, 0)))).filter(name => name.endsWith('.vhd'))
const copy = (name: string) => cp(join(root, vmDir(VM)), join(out, name), { recursive: true })
const result: Record<string, unknown> = { appended: appended.size, info: await handler.getInfo() }

// 1. The clean's merge sees the space is missing and does not start.
const refused: unknown[] = []
await cleanVm(handler, VM, { warn: (message, data) => refused.push({ message, ...(data as object) }) })
result.refused = { warnings: refused, points: await readAll(), vhds: await vhds() }
await copy('refused')

// 2. The same merge without the check (the space taken by someone else meanwhile): ENOSPC in the middle.
const chain = [0, 1, 2, 3, 4].map(g => join(root, vhdPath(0, g)))
const sizeBefore = (await handler.stat(vhdPath(0, 0))).size
try {
  await mergeVhdChain(chain, { fs: localFileSystem })
  result.cut = { error: 'none' }
} catch (error) {
  result.cut = { error: (error as NodeJS.ErrnoException).code }
}
const ancestor = await VhdFile.open(chain[0]!)
await ancestor.close()
Object.assign(result.cut as object, { grewBy: (await handler.stat(vhdPath(0, 0))).size - sizeBefore, points: await readAll(), vhds: await vhds() })
await copy('cut')

// 3. Space freed: the next clean finishes the merge.
await unlink(filler)
const warnings: unknown[] = []
const cleaned = await cleanVm(handler, VM, { warn: (message, data) => warnings.push({ message, ...(data as object) }) })
result.finished = { merged: cleaned.merged, warnings, points: await readAll(), vhds: await vhds() }
await copy('finished')
console.log(JSON.stringify(result))
