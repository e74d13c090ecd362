// azurite killed (SIGKILL, as a crash) in the middle of a staged upload: the write fails as an unavailable
// remote, nothing of that name is visible once the server is back, and a new write succeeds.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { listAll } from '../../source/storage/backend.ts'
import { azureBackendOf, startAzurite } from '../helpers/azurite.ts'

test('azure: azurite killed mid-upload fails the write REMOTE_UNAVAILABLE, leaves no blob, and a write after its restart succeeds', async () => {
  const azurite = await startAzurite({ container: 'faults' })
  try {
    const backend = azureBackendOf(azurite.urlFor('dir', 'faults'))
    await backend.sync()
    await backend.write('kept.json', '{}')

    const chunk = Buffer.alloc(1024 * 1024, 7)
    let killed = false
    async function* export_() {
      for (let i = 0; i < 40; i++) {
        // Three 4 MiB blocks are staged or on their way when the server dies.
        if (i === 13) {
          await azurite.kill()
          killed = true
        }
        yield chunk
      }
    }
    await assert.rejects(backend.write('xo-vm-backups/vm/disk.vhd', export_(), { length: 40 * chunk.length }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'REMOTE_UNAVAILABLE')
      assert.match(error.message, /is unavailable/)
      return true
    })
    assert.ok(killed, 'the server was killed during the upload')

    await azurite.restart()
    await assert.rejects(backend.stat('xo-vm-backups/vm/disk.vhd'), { code: 'ENOENT' })
    assert.deepEqual(await listAll(backend, 'xo-vm-backups/vm'), [])

    const bytes = Buffer.alloc(9 * 1024 * 1024 + 3, 9)
    async function* again() {
      for (let i = 0; i < bytes.length; i += chunk.length) yield bytes.subarray(i, i + chunk.length)
    }
    assert.equal(await backend.write('xo-vm-backups/vm/disk.vhd', again(), { length: bytes.length }), bytes.length)
    const read: Buffer[] = []
    for await (const part of await backend.read('xo-vm-backups/vm/disk.vhd')) read.push(part as Buffer)
    assert.equal(createHash('sha256').update(Buffer.concat(read)).digest('hex'), createHash('sha256').update(bytes).digest('hex'))
  } finally {
    await azurite.stop()
  }
})

test('azure: azurite killed mid-read fails the read stream REMOTE_UNAVAILABLE', async () => {
  const azurite = await startAzurite({ container: 'faults' })
  try {
    const backend = azureBackendOf(azurite.urlFor('dir', 'faults'))
    const size = 48 * 1024 * 1024
    async function* data() {
      for (let i = 0; i < 48; i++) yield Buffer.alloc(1024 * 1024, i)
    }
    await backend.write('disk.vhd', data(), { length: size })
    const stream = await backend.read('disk.vhd')
    let read = 0
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) {
          if (read === 0) await azurite.kill()
          read += (chunk as Buffer).length
        }
      })(),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'REMOTE_UNAVAILABLE')
        return true
      },
    )
    assert.ok(read < size, `the read stopped short (${read} of ${size} bytes)`)
  } finally {
    await azurite.stop()
  }
})
