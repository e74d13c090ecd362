// A daemon killed with -9 while file-restore sessions hold an XFS volume (FUSE view → loop device → kernel mount)
// and an NTFS volume (FUSE view → ntfs-3g) open: the FUSE connections are left without their server. The next
// start-up aborts them, unmounts and detaches everything under its work folder without blocking, and a new
// session on the same restore point reads the same files, byte for byte.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { PoolConnection, vmDisks } from '../../source/xapi/index.ts'
import { DaemonClient } from '../../source/client/index.ts'
import { cleanFileRestoreLeftovers } from '../../source/engine/index.ts'
import { run, tempDir } from '../helpers/tools.ts'
import { addLabPoolAndRemote, cli, cliJson, startDaemon, type DaemonProcess } from './helpers.ts'
import { MiB, mountedImage, partitionedDisk, place, requireDiskTools } from '../engine/file-restore/disk-image.ts'

const BASIC_DATA = 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7'
const LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4'
const DISK_MiB = 400
// mkfs.xfs refuses less than 300 MiB.
const PARTS = [{ startMiB: 1, sizeMiB: 320, type: LINUX }, { startMiB: 321, sizeMiB: 40, type: BASIC_DATA }]

let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let daemon: DaemonProcess
let dataDir: string
let backupId: string
const blob = randomBytes(900_000)
const workDir = () => join(dataDir, 'file-restore')

/** Mount points and loop devices that lie under the daemon's file-restore folder. */
async function leftovers(): Promise<{ mounts: string[]; loops: string[] }> {
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map(line => line.split(' ')[4] ?? '').filter(point => point.startsWith(`${workDir()}/`))
  const loops = (await run('timeout', ['10', 'losetup', '--list', '--noheadings', '--output', 'NAME,BACK-FILE'])).stdout.toString()
    .split('\n').filter(line => line.includes(`${workDir()}/`)).map(line => line.trim().split(/\s+/)[0]!)
  return { mounts, loops }
}

before(async () => {
  requireDiskTools()
  dir = await tempDir('lifeboat-daemon-fr-crash-')
  dataDir = join(dir.path, 'daemon')
  lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
  daemon = await startDaemon(dataDir)
  const vms = await addLabPoolAndRemote(daemon.socket, lab, dir.path)
  const files = join(dir.path, 'files')
  await mkdir(join(files, 'etc'), { recursive: true })
  await writeFile(join(files, 'etc', 'blob.bin'), blob)
  await writeFile(join(files, 'etc', 'motd'), 'welcome\n')
  const disk = join(dir.path, 'disk.img')
  await partitionedDisk(disk, DISK_MiB, 'gpt', PARTS)
  for (const [k, kind] of [[0, 'xfs'], [1, 'ntfs']] as const) {
    const image = join(dir.path, `${kind}.img`)
    await mountedImage(kind, image, PARTS[k]!.sizeMiB * MiB, files, dir.path)
    await place(disk, PARTS[k]!.startMiB * MiB, image)
  }
  const pool = lab.pools[0]!
  const conn = await PoolConnection.connect({ url: pool.url, username: pool.username, password: pool.password })
  const vdi = vmDisks(conn, conn.get('VM', vms['tiny-halted']!))[0]!.vdi
  await conn.call('VDI.resize', vdi.$ref, String(DISK_MiB * MiB))
  await conn.disconnect()
  const content = await readFile(disk)
  for (let at = 0; at < content.length; at += MiB) {
    const chunk = content.subarray(at, at + MiB)
    if (chunk.some(b => b !== 0)) await lab.control.writeVdi(vdi.uuid, { offset: at, data: chunk.toString('base64') })
  }
  await cliJson(daemon.socket, ['job', 'create', '--name', 'fr', '--mode', 'delta', '--vm', vms['tiny-halted']!, '--remote', 'local', '--retention', '3'])
  assert.equal((await cli(daemon.socket, ['job', 'run', 'fr', '--wait'])).code, 0, 'the backup runs')
  backupId = (await cliJson(daemon.socket, ['backup', 'list', '--remote', 'local']))[0].id
})

after(async () => {
  if (daemon.child.exitCode === null && daemon.child.signalCode === null) {
    daemon.child.kill('SIGTERM')
    await daemon.exited
  }
  // Whatever a failure left: a wedged FUSE connection would hang the next test that touches the folder.
  await cleanFileRestoreLeftovers(workDir())
  await lab.stop()
  await dir.cleanup()
})

/** Opens a session and reads a file of each volume through it (which mounts both); returns the session. */
async function openBoth(client: DaemonClient): Promise<string> {
  const opened = await client.call('fileRestore.open', { remote: 'local', backupId })
  const volumes = await client.call('fileRestore.volumes', { session: opened.session, disk: '0' })
  assert.deepEqual(volumes.map(v => [v.id, v.content]), [['1', 'xfs'], ['2', 'ntfs']])
  for (const volume of ['1', '2']) {
    const listed = await client.call('fileRestore.list', { session: opened.session, disk: '0', volume, path: '/etc' })
    assert.deepEqual(listed.entries.map(e => [e.name, e.size]), [['blob.bin', blob.length], ['motd', 8]])
  }
  return opened.session
}

test('a daemon killed -9 with XFS and NTFS sessions open: the next start-up removes the stale FUSE views, loops and mounts; a new session works', { timeout: 600_000 }, async () => {
  const client = await DaemonClient.connect(daemon.socket)
  await openBoth(client)
  client.close()
  const held = await leftovers()
  assert.equal(held.mounts.length, 4, `two FUSE views, the XFS mount and ntfs-3g's: ${held.mounts.join(', ')}`)
  assert.equal(held.loops.length, 1, 'the XFS volume is on a loop device')

  daemon.child.kill('SIGKILL')
  await daemon.exited
  // startDaemon gives up after 90 s: a start-up that blocked on a mount without its server fails here.
  daemon = await startDaemon(dataDir)
  assert.deepEqual(await leftovers(), { mounts: [], loops: [] }, 'nothing of the killed sessions is left')
  const log = daemon.log()
  assert.match(log, /file restore clean-up: aborted the FUSE connection \d+/)
  assert.match(log, /file restore clean-up: detached \/dev\/loop\d+/)
  assert.match(log, /file restore clean-up: unmounted .*\/root/)

  const again = await DaemonClient.connect(daemon.socket)
  try {
    const session = await openBoth(again)
    await again.call('fileRestore.close', { session })
  } finally {
    again.close()
  }
  for (const volume of ['1', '2']) {
    const tar = join(dir.path, `etc-${volume}.tar`)
    const got = await cli(daemon.socket, ['file-restore', 'get', '--remote', 'local', '--backup', backupId, '--volume', volume, '/etc/blob.bin', '--output', tar])
    assert.equal(got.code, 0, got.stderr)
    const out = join(dir.path, `out-${volume}`)
    await mkdir(out)
    await run('tar', ['-xf', tar, '-C', out])
    assert.ok((await readFile(join(out, 'blob.bin'))).equals(blob), `volume ${volume}: the file fetched after the restart is the one written`)
  }
  assert.deepEqual(await leftovers(), { mounts: [], loops: [] }, 'the closed sessions left nothing either')
})
