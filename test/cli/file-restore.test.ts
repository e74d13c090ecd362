// `lifeboat file-restore` through a real daemon on the lab: an ext4 partition written into a VM's disk, backed
// up twice (a chain of two VhdDirectories behind aliases), then its disks and volumes listed, a folder paged, a name found, and files
// fetched as tar to a file and as zip to stdout, which the system's tar and unzip unpack to the bytes written.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { run, tempDir } from '../helpers/tools.ts'
import { LIFEBOAT, cli, cliJson, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'
import { MiB, ext4Image, partitionedDisk, place, requireDiskTools } from '../engine/file-restore/disk-image.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let daemon: DaemonProcess
let backupId: string
const files = () => join(dir.path, 'files')

before(async () => {
  requireDiskTools()
  dir = await tempDir('lifeboat-cli-file-restore-')
  lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
  daemon = await startDaemon(join(dir.path, 'daemon'))
  const pool = lab.pools[0]!
  await cliJson(daemon.socket, ['pool', 'add', pool.url, '--user', pool.username, '--password-env', 'LAB_PASSWORD'], { LAB_PASSWORD: pool.password })
  await mkdir(join(dir.path, 'remote'))
  // VhdDirectory behind aliases (what XO writes on object stores): the engine's test reads VHD files.
  await cliJson(daemon.socket, ['remote', 'add', 'r', `file://${join(dir.path, 'remote')}?useVhdDirectory=true`])
  const vms = await cliJson(daemon.socket, ['vm', 'list'])
  const vm = vms.find((v: { name: string }) => v.name === 'tiny-halted')
  await mkdir(join(files(), 'etc', 'ssh'), { recursive: true })
  await writeFile(join(files(), 'etc', 'ssh', 'sshd_config'), 'PermitRootLogin no\n')
  await writeFile(join(files(), 'etc', 'blob.bin'), randomBytes(700_000))
  for (let k = 0; k < 5; k++) await writeFile(join(files(), 'etc', `conf-${k}.conf`), `${k}\n`)
  const disk = join(dir.path, 'disk.img')
  await partitionedDisk(disk, 16, 'dos', [{ startMiB: 1, sizeMiB: 14, type: '83' }])
  await ext4Image(join(dir.path, 'p1.img'), 14 * MiB, files(), { label: 'root' })
  await place(disk, MiB, join(dir.path, 'p1.img'))
  const content = await readFile(disk)
  for (let at = 0; at < content.length; at += MiB) {
    const chunk = content.subarray(at, at + MiB)
    if (chunk.some(b => b !== 0)) await lab.control.writeVdi(vm.disks[0].uuid, { offset: at, data: chunk.toString('base64') })
  }
  await cliJson(daemon.socket, ['job', 'create', '--name', 'fr', '--mode', 'delta', '--vm', vm.uuid, '--remote', 'r', '--retention', '3'])
  for (let k = 0; k < 2; k++) assert.equal((await cli(daemon.socket, ['job', 'run', 'fr', '--wait'])).code, 0, 'the backup runs')
  const points = await cliJson(daemon.socket, ['backup', 'list', '--remote', 'r'])
  assert.equal(points.length, 2, 'two restore points')
  backupId = points.sort((a: { timestamp: number }, b: { timestamp: number }) => b.timestamp - a.timestamp)[0].id
  const aliases = (await run('find', [join(dir.path, 'remote'), '-name', '*.alias.vhd'])).stdout.toString().trim().split('\n')
  assert.equal(aliases.length, 2, `the chain is two aliases to VhdDirectories: ${aliases.join(', ')}`)
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await lab.stop()
  await dir.cleanup()
})

const point = () => ['--remote', 'r', '--backup', backupId]

test('file-restore disks, ls page by page, find', async () => {
  const listed = await cliJson(daemon.socket, ['file-restore', 'disks', ...point()])
  assert.deepEqual(listed.disks[0].volumes.map((v: { id: string; content: string; label?: string }) => [v.id, v.content, v.label]), [['1', 'ext', 'root']])
  const first = await cliJson(daemon.socket, ['file-restore', 'ls', ...point(), '--volume', '1', '/etc', '--limit', '3'])
  assert.deepEqual(first.entries.map((e: { name: string }) => e.name), ['blob.bin', 'conf-0.conf', 'conf-1.conf'])
  assert.equal(first.total, 7)
  const rest = await cliJson(daemon.socket, ['file-restore', 'ls', ...point(), '--volume', '1', '/etc', '--after', first.next])
  assert.deepEqual(rest.entries.map((e: { name: string }) => e.name), ['conf-2.conf', 'conf-3.conf', 'conf-4.conf', 'ssh'])
  const found = await cliJson(daemon.socket, ['file-restore', 'find', ...point(), '--volume', '1', '*.CONF'])
  assert.equal(found.matches.length, 5)
  const human = await cli(daemon.socket, ['file-restore', 'ls', ...point(), '--volume', '1', '/etc/ssh'])
  assert.match(human.stdout, /-rw-r--r-- +19 B .* sshd_config/)
})

test('file-restore get: tar to a file, zip to stdout, byte for byte; an existing file is never overwritten', async () => {
  const tarFile = join(dir.path, 'etc.tar')
  const got = await cli(daemon.socket, ['file-restore', 'get', ...point(), '--volume', '1', '/etc/ssh', '/etc/blob.bin', '--output', tarFile])
  assert.equal(got.code, 0, got.stderr)
  const fromTar = join(dir.path, 'from-tar')
  await mkdir(fromTar)
  await run('tar', ['-xf', tarFile, '-C', fromTar])
  await run('diff', ['-r', join(files(), 'etc', 'ssh'), join(fromTar, 'ssh')])
  await run('cmp', [join(files(), 'etc', 'blob.bin'), join(fromTar, 'blob.bin')])

  const zipFile = join(dir.path, 'etc.zip')
  await run('sh', ['-c', `'${process.execPath}' '${LIFEBOAT}' file-restore get --socket '${daemon.socket}' --remote r --backup '${backupId}' --volume 1 /etc --format zip --output - > '${zipFile}'`])
  const fromZip = join(dir.path, 'from-zip')
  await run('unzip', ['-q', zipFile, '-d', fromZip])
  await run('diff', ['-r', join(files(), 'etc'), join(fromZip, 'etc')])

  const again = await cli(daemon.socket, ['file-restore', 'get', ...point(), '--volume', '1', '/etc/ssh', '--output', tarFile])
  assert.equal(again.code, 1, 'refused')
  assert.match(again.stderr, /FILE_RESTORE_DESTINATION_EXISTS/)
  const missing = await cli(daemon.socket, ['file-restore', 'ls', ...point(), '--volume', '1', '/nowhere'])
  assert.equal(missing.code, 1, 'a missing folder fails')
  assert.match(missing.stderr, /FILE_RESTORE_NOT_FOUND: \/nowhere is not in this backup/)
})
