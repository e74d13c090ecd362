// The clean phase with nothing to merge: cleaning a VM folder of 30 restore points against the same VM with
// 3 (two disks each, delta chains as the backup writer lands them). With nothing to merge a clean reads
// JSONs, VHD headers, footers and block tables only, so its cost should follow the number of files, not
// their data. Run: node --import tsx test/bench/clean.ts
import { readdir, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { cleanVm } from '../../source/repository/index.ts'
import { LocalHandler } from '../../source/storage/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { VM, newDisks, random, writeDeltaBackup } from '../repository/clean-fixtures.ts'
import { isMain, median, printFigures, type Figure } from './measure.ts'

const RUNS = 5

/** Median time (ms) of cleaning a VM folder holding `points` delta restore points; every run finds nothing to do. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true })
  return entries.filter(entry => entry.isFile()).map(entry => join(entry.parentPath, entry.name))
}

async function cleanTime(points: number): Promise<{ ms: number; firstMs: number; files: number }> {
  const dir = await tempDir('lifeboat-bench-clean-')
  try {
    const handler = new LocalHandler(dir.path)
    // 64 blocks a disk (128 MiB): a full of half of them, then 1–3 changed blocks a point.
    const disks = newDisks(2, 64)
    const rand = random(7)
    for (let g = 0; g < points; g++) await writeDeltaBackup(handler, disks, g, rand)
    // Dated an hour back, as the runs before this one left them: the cleaner remembers only settled files.
    const anHourAgo = new Date(Date.now() - 3_600_000)
    for (const file of await filesUnder(dir.path)) await utimes(file, anHourAgo, anHourAgo)
    const times: number[] = []
    for (let run = 0; run <= RUNS; run++) {
      const started = performance.now()
      const result = await cleanVm(handler, VM, { merge: true, remove: true })
      times.push(performance.now() - started)
      if (result.merged !== 0 || result.removed.length !== 0) throw new Error(`the clean found work: ${JSON.stringify(result)}`)
    }
    // The first clean of a process opens every file; the daemon cleans after every run, and those find what they know.
    return { ms: median(times.slice(1)), firstMs: times[0]!, files: points * 3 }
  } finally {
    await dir.cleanup()
  }
}

export async function cleanFigures(): Promise<Figure[]> {
  const three = await cleanTime(3)
  const thirty = await cleanTime(30)
  console.log(`clean with nothing to merge, files left by earlier runs (median of the ${RUNS} cleans after the first): 3 points ${three.ms.toFixed(1)} ms (${three.files} files), 30 points ${thirty.ms.toFixed(1)} ms (${thirty.files} files)`)
  console.log(`  the first clean of the process, which opens every disk: 3 points ${three.firstMs.toFixed(1)} ms, 30 points ${thirty.firstMs.toFixed(1)} ms (ratio ${(thirty.firstMs / three.firstMs).toFixed(2)})`)
  return [{ id: 'clean', name: 'clean, 30 points vs 3 points, nothing to merge', today: '—', goal: { atMost: 2 }, value: thirty.ms / three.ms, baseline: `${thirty.ms.toFixed(0)} vs ${three.ms.toFixed(0)} ms` }]
}

if (isMain(import.meta)) printFigures(await cleanFigures())
