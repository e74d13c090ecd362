import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LocalBackend, openRemote } from '../../source/storage/index.ts'
import { requireTool, run, tempDir } from '../helpers/tools.ts'
import { runConformanceSuite } from './conformance.ts'

runConformanceSuite('local', async () => {
  const dir = await tempDir('lifeboat-remote-')
  const url = `file://${dir.path}`
  return { backend: new LocalBackend(dir.path, url), url, cleanup: dir.cleanup }
})

test('local: a remote that fills up fails with REMOTE_FULL and leaves nothing behind', async () => {
  requireTool('unshare', 'util-linux')
  const dir = await tempDir('lifeboat-full-')
  // A 1 MiB tmpfs in a private mount namespace (no root needed, gone when the child exits).
  const storage = fileURLToPath(new URL('../../source/storage/index.ts', import.meta.url))
  const script = `
    import { symlink } from 'node:fs/promises'
    import { openRemote } from ${JSON.stringify(storage)}
    const remote = openRemote('file://' + process.env.REMOTE_DIR, { retry: false })
    await remote.sync()
    const result = {}
    async function* big() { for (let i = 0; i < 64; i++) yield Buffer.alloc(65536, 1) }
    try { await remote.outputStream('xo-vm-backups/vm/a.xva', big()) } catch (error) { result.stream = { code: error.code, message: error.message } }
    result.left = await remote.list('xo-vm-backups/vm')
    // Random access writes map the same way (a VHD merge on a full remote).
    await symlink('/dev/full', process.env.REMOTE_DIR + '/full.vhd')
    const file = await remote.openFile('full.vhd', 'r+')
    try { await file.write(Buffer.alloc(512), 0) } catch (error) { result.write = error.code }
    await file.close()
    console.log(JSON.stringify(result))`
  try {
    const { stdout } = await run('unshare', ['-rm', 'sh', '-c', `mount -t tmpfs -o size=1m tmpfs "$0" && REMOTE_DIR="$0" exec "$1" --import tsx --input-type=module -e "$2"`, dir.path, process.execPath, script])
    const result = JSON.parse(stdout.toString()) as { stream?: { code: string; message: string }; left: string[]; write?: string }
    assert.equal(result.stream?.code, 'REMOTE_FULL')
    assert.match(result.stream.message, /is full/)
    assert.deepEqual(result.left, [])
    assert.equal(result.write, 'REMOTE_FULL')
  } finally {
    await dir.cleanup()
  }
})

test('local: a remote whose folder disappears fails with REMOTE_UNAVAILABLE, a missing file stays ENOENT', async () => {
  const dir = await tempDir('lifeboat-gone-')
  const root = join(dir.path, 'remote')
  await mkdir(root)
  try {
    const remote = openRemote(`file://${root}`, { retry: false })
    await remote.sync()
    await assert.rejects(remote.readFile('nothing'), { code: 'ENOENT' })
    await rm(root, { recursive: true })
    await assert.rejects(remote.readFile('nothing'), { code: 'REMOTE_UNAVAILABLE' })
    await assert.rejects(remote.writeFile('xo-vm-backups/a.json', '{}'), { code: 'REMOTE_UNAVAILABLE' })
    await assert.rejects(remote.sync(), { code: 'REMOTE_UNAVAILABLE' })
  } finally {
    await dir.cleanup()
  }
})

test('local: backup files are 0640 and folders 0750 on the remote, whatever the umask lets through', async () => {
  const dir = await tempDir('lifeboat-modes-')
  const umask = process.umask(0o022)
  try {
    const remote = openRemote(`file://${dir.path}`, { retry: false })
    await remote.sync()
    await remote.outputStream('xo-vm-backups/vm/a.xva', (async function* () { yield Buffer.alloc(10) })())
    await remote.writeFile('xo-vm-backups/vm/a.json', '{}')
    await remote.mkdir('xo-vm-backups/vm/vdis/job')
    const mode = async (path: string) => (await stat(join(dir.path, path))).mode & 0o777
    assert.equal(await mode('xo-vm-backups/vm/a.xva'), 0o640)
    assert.equal(await mode('xo-vm-backups/vm/a.json'), 0o640)
    for (const folder of ['xo-vm-backups', 'xo-vm-backups/vm', 'xo-vm-backups/vm/vdis/job']) assert.equal(await mode(folder), 0o750, folder)
  } finally {
    process.umask(umask)
    await dir.cleanup()
  }
})

