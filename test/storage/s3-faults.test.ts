// s3rver killed (SIGKILL, as a crash) in the middle of a multipart upload: the write fails as an unavailable
// remote, nothing of that name is visible once the server is back, and a new write succeeds.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { listAll } from '../../source/storage/backend.ts'
import { S3Backend, type S3Remote } from '../../source/storage/s3.ts'
import { parseRemoteUrl, redactRemoteUrl } from '../../source/storage/url.ts'
import { startS3rver } from '../helpers/s3rver.ts'

test('s3: s3rver killed mid-upload fails the write REMOTE_UNAVAILABLE, leaves no object, and a write after its restart succeeds', async () => {
  const server = await startS3rver()
  try {
    const backend = new S3Backend(parseRemoteUrl(server.url) as S3Remote, redactRemoteUrl(server.url))
    await backend.sync()
    await backend.write('kept.json', '{}')

    const chunk = Buffer.alloc(1024 * 1024, 7)
    let killed = false
    async function* export_() {
      for (let i = 0; i < 40; i++) {
        // Two 5 MiB parts are uploaded or on their way when the server dies.
        if (i === 13) {
          await server.kill()
          killed = true
        }
        yield chunk
      }
    }
    await assert.rejects(backend.write('xo-vm-backups/vm/disk.vhd', export_(), { length: 40 * chunk.length }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'REMOTE_UNAVAILABLE', error.message)
      assert.match(error.message, /is unavailable/)
      return true
    })
    assert.ok(killed, 'the server was killed during the upload')

    await server.restart()
    await assert.rejects(backend.stat('xo-vm-backups/vm/disk.vhd'), { code: 'ENOENT' })
    assert.deepEqual(await listAll(backend, 'xo-vm-backups/vm'), [])
    assert.deepEqual(await listAll(backend, ''), [{ name: 'kept.json', isDirectory: false }])

    const bytes = Buffer.alloc(12 * 1024 * 1024 + 3, 9)
    async function* again() {
      for (let i = 0; i < bytes.length; i += chunk.length) yield bytes.subarray(i, i + chunk.length)
    }
    assert.equal(await backend.write('xo-vm-backups/vm/disk.vhd', again(), { length: bytes.length }), bytes.length)
    const read: Buffer[] = []
    for await (const part of await backend.read('xo-vm-backups/vm/disk.vhd')) read.push(part as Buffer)
    assert.equal(createHash('sha256').update(Buffer.concat(read)).digest('hex'), createHash('sha256').update(bytes).digest('hex'))
    await backend.close()
  } finally {
    await server.stop()
  }
})

test('s3: s3rver killed while an object is read fails the read stream REMOTE_UNAVAILABLE, never a short success', async () => {
  const server = await startS3rver()
  try {
    const backend = new S3Backend(parseRemoteUrl(server.url) as S3Remote, redactRemoteUrl(server.url))
    await backend.sync()
    const chunk = Buffer.alloc(1024 * 1024, 5)
    async function* big() {
      for (let i = 0; i < 64; i++) yield chunk
    }
    await backend.write('xo-vm-backups/vm/disk.vhd', big(), { length: 64 * chunk.length })
    const stream = await backend.read('xo-vm-backups/vm/disk.vhd')
    let read = 0
    let killed = false
    await assert.rejects(
      (async () => {
        for await (const part of stream) {
          read += (part as Buffer).length
          if (read >= chunk.length && !killed) {
            killed = true
            await server.kill()
          }
        }
      })(),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'REMOTE_UNAVAILABLE', error.message)
        return true
      },
    )
    assert.ok(read < 64 * chunk.length, `the read stopped short (${read} B), and failed`)
    await backend.close()
  } finally {
    await server.stop()
  }
})
