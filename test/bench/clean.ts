// The clean phase with nothing to merge: cleaning a VM folder of 30 restore points against the same VM with
// 3 (two disks each, delta chains as the backup writer lands them). With nothing to merge a clean reads
// JSONs, VHD headers, footers and block tables only, so its cost should follow the number of files, not
// their data. Run: node --import tsx test/bench/clean.ts
import { cleanVm } from '../../source/repository/index.ts'
import { LocalHandler } from '../../source/storage/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { VM, newDisks, random, writeDeltaBackup } from '../repository/clean-fixtures.ts'
import { isMain, median, printFigures, type Figure } from './measure.ts'

const RUNS = 5

/** Median time (ms) of cleaning a VM folder holding `points` delta restore points; every run finds nothing to do. */
async function cleanTime(points: number): Promise<{ ms: number; files: number }> {
  const dir = await tempDir('lifeboat-bench-clean-')
  try {
    const handler = new LocalHandler(dir.path)
    // 64 blocks a disk (128 MiB): a full of half of them, then 1–3 changed blocks a point.
    const disks = newDisks(2, 64)
    const rand = random(7)
    for (let g = 0; g < points; g++) await writeDeltaBackup(handler, disks, g, rand)
    const times: number[] = []
    for (let run = 0; run < RUNS; run++) {
      const started = performance.now()
      const result = await cleanVm(handler, VM, { merge: true, remove: true })
      times.push(performance.now() - started)
      if (result.merged !== 0 || result.removed.length !== 0) throw new Error(`the clean found work: ${JSON.stringify(result)}`)
    }
    return { ms: median(times), files: points * 3 }
  } finally {
    await dir.cleanup()
  }
}

export async function cleanFigures(): Promise<Figure[]> {
  const three = await cleanTime(3)
  const thirty = await cleanTime(30)
  console.log(`clean with nothing to merge (median of ${RUNS}): 3 points ${three.ms.toFixed(1)} ms (${three.files} files), 30 points ${thirty.ms.toFixed(1)} ms (${thirty.files} files)`)
  return [{ id: 'clean', name: 'clean, 30 points vs 3 points, nothing to merge', today: '—', goal: { atMost: 2 }, value: thirty.ms / three.ms, baseline: `${thirty.ms.toFixed(0)} vs ${three.ms.toFixed(0)} ms` }]
}

if (isMain(import.meta)) printFigures(await cleanFigures())
