import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, rm, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { openRemote } from '../../source/storage/index.ts'
import { run, tempDir } from '../helpers/tools.ts'
import { runConformanceSuite } from './conformance.ts'

runConformanceSuite('local', async () => {
  const dir = await tempDir('lifeboat-remote-')
  const url = `file://${dir.path}`
  return { handler: openRemote(url), url, cleanup: dir.cleanup }
})

test('local: a remote that fills up fails with REMOTE_FULL and leaves nothing behind', async () => {
  assert.equal(process.getuid?.(), 0, 'this test mounts a 1 MiB tmpfs and must run as root (npm test runs as root in CI)')
  const dir = await tempDir('lifeboat-full-')
  await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir.path])
  try {
    const remote = openRemote(`file://${dir.path}`, { retry: false })
    await remote.sync()
    async function* big() {
      for (let i = 0; i < 64; i++) yield Buffer.alloc(65536, 1)
    }
    await assert.rejects(remote.outputStream('xo-vm-backups/vm/a.xva', big()), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'REMOTE_FULL')
      assert.match(error.message, /is full/)
      return true
    })
    assert.deepEqual(await remote.list('xo-vm-backups/vm'), [])
    // Random access writes map the same way (a VHD merge on a full remote).
    await symlink('/dev/full', join(dir.path, 'full.vhd'))
    const file = await remote.openFile('full.vhd', 'r+')
    await assert.rejects(file.write(Buffer.alloc(512), 0), { code: 'REMOTE_FULL' })
    await file.close()
  } finally {
    await run('umount', [dir.path])
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

test('other remote types are refused with REMOTE_TYPE_NOT_SUPPORTED and a sentence', () => {
  for (const url of ['nfs://host:/export', 's3://k:s@host/bucket/dir', 'azure://a:k@a.blob.core.windows.net/c/p', 'smb://u:p@D\\\\host\\share\0']) {
    assert.throws(() => openRemote(url), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'REMOTE_TYPE_NOT_SUPPORTED')
      assert.match(error.message, /not supported .* yet/)
      return true
    })
  }
})
