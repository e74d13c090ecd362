// What a crash can leave of file-level restore under the work folder: FUSE views of disks whose server (the daemon)
// is gone or wedged, loop devices over them, kernel and ntfs-3g mounts on top. Removed at the daemon's start in an
// order that never waits on a FUSE server: anything that touches a FUSE mount without its server blocks (umount
// and stat as much as reads), so the connections are aborted first, then the rest comes down outermost first.
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { run, unmount } from './fuse.ts'

const CONNECTIONS = '/sys/fs/fuse/connections'
/** Per command: start-up never hangs on one, even stuck in the kernel. */
const COMMAND_MS = 10_000

interface Mount {
  point: string
  /** The kernel's device number (major << 20 | minor): a FUSE mount's connection in fusectl. */
  device: number
  type: string
}

/** Aborts, unmounts and detaches what lies under `workDir`, then empties it; returns one line per thing done. */
export async function cleanFileRestoreLeftovers(workDir: string): Promise<string[]> {
  const lines: string[] = []
  const attempt = async (done: string, step: () => Promise<unknown>) => {
    await step().then(() => lines.push(done), error => lines.push(`failed: ${(error as Error).message}`))
  }
  const deepestFirst = (a: Mount, b: Mount) => b.point.length - a.point.length
  const mounts = (await mountsUnder(workDir)).sort(deepestFirst)
  const fuse = mounts.filter(mount => mount.type === 'fuse' || mount.type === 'fuseblk' || mount.type.startsWith('fuse.'))
  if (fuse.length > 0 && await controlMounted(lines)) {
    // Every connection here is stale: this daemon has opened none yet (ntfs-3g's may still have a live server,
    // but it reads a view now aborted, and aborting it makes ntfs-3g exit).
    for (const mount of fuse) await attempt(`aborted the FUSE connection ${mount.device} of ${mount.point}`, () => writeFile(`${CONNECTIONS}/${mount.device}/abort`, '1'))
  }
  for (const mount of mounts.filter(mount => !fuse.includes(mount))) await attempt(`unmounted ${mount.point}`, () => unmount(mount.point, { timeoutMs: COMMAND_MS }))
  for (const device of await loopsOver(workDir)) await attempt(`detached ${device}`, () => run('losetup', ['-d', device], { timeoutMs: COMMAND_MS }))
  for (const mount of fuse) await attempt(`unmounted ${mount.point}`, () => unmount(mount.point, { timeoutMs: COMMAND_MS }))
  // rm would walk into whatever is still mounted.
  const left = await mountsUnder(workDir)
  if (left.length === 0) await rm(workDir, { recursive: true, force: true }).catch(() => {})
  else lines.push(`left ${workDir} in place: ${left.map(mount => mount.point).join(', ')} still mounted; reboot the appliance to free them`)
  return lines
}

/** From /proc/self/mountinfo: `id parent major:minor root point options… - type source superoptions`. */
async function mountsUnder(workDir: string): Promise<Mount[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  const mounts: Mount[] = []
  for (const line of text.split('\n')) {
    const fields = line.split(' ')
    const point = fields[4]?.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)))
    if (point === undefined || !point.startsWith(`${workDir}/`)) continue
    const [major, minor] = fields[2]!.split(':').map(Number)
    mounts.push({ point, device: (major! << 20) | minor!, type: fields[fields.indexOf('-') + 1] ?? '' })
  }
  return mounts
}

/** Mounts fusectl where the system did not (containers, minimal systems); false, with a line, when it cannot. */
async function controlMounted(lines: string[]): Promise<boolean> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  if (mountinfo.split('\n').some(line => line.split(' ')[4] === CONNECTIONS)) return true
  try {
    await run('mount', ['-t', 'fusectl', 'fusectl', CONNECTIONS], { timeoutMs: COMMAND_MS })
    lines.push(`mounted fusectl on ${CONNECTIONS}`)
    return true
  } catch (error) {
    lines.push(`could not mount fusectl on ${CONNECTIONS}, so stale FUSE connections cannot be aborted: ${(error as Error).message}`)
    return false
  }
}

/** Loop devices whose backing file lies under `workDir`, from sysfs (no command that could touch the file). */
async function loopsOver(workDir: string): Promise<string[]> {
  const devices: string[] = []
  for (const name of (await readdir('/sys/block').catch(() => [])).filter(name => name.startsWith('loop'))) {
    const backing = (await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => '')).trim()
    if (backing.startsWith(`${workDir}/`)) devices.push(`/dev/${name}`)
  }
  return devices
}
