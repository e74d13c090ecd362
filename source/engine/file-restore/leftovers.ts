// What a crash can leave of file-level restore: kernel mounts, loop devices and FUSE views under the work
// folder. Removed at the daemon's start, innermost first.
import { readFile, rm } from 'node:fs/promises'
import { run, unmount } from './fuse.ts'

/** Unmounts and detaches what lies under `workDir`, then empties it; returns one line per thing removed. */
export async function cleanFileRestoreLeftovers(workDir: string): Promise<string[]> {
  const lines: string[] = []
  // Loop devices first, while their backing FUSE file still has its path.
  const loops = (await run('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE']).catch(() => ''))
    .split('\n').map(line => line.trim().split(/\s+/, 2)).filter(([, file]) => file?.startsWith(`${workDir}/`) === true).map(([device]) => device!)
  const mounts = await readFile('/proc/mounts', 'utf8').catch(() => '')
  const points = mounts.split('\n').map(line => line.split(' ')[1]?.replace(/\\040/g, ' ')).filter((point): point is string => point?.startsWith(`${workDir}/`) === true)
  for (const point of points.sort((a, b) => b.length - a.length)) {
    await unmount(point).then(() => lines.push(`unmounted ${point}`), error => lines.push(`could not unmount ${point}: ${(error as Error).message}`))
  }
  for (const device of loops) await run('losetup', ['-d', device]).then(() => lines.push(`detached ${device}`), () => {})
  await rm(workDir, { recursive: true, force: true }).catch(() => {})
  return lines
}
