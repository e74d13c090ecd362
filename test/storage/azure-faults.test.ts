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

test('azure: a read whose server goes silent mid-body fails REMOTE_UNAVAILABLE once no byte came for the deadline; a slow reader is not a stall', { timeout: 120_000 }, async () => {
  const azurite = await startAzurite({ container: 'faults' })
  try {
    const backend = azureBackendOf(azurite.urlFor('silent-read', 'faults'), { requestTimeoutMs: 8000 })
    const size = 64 * 1024 * 1024
    async function* data() {
      for (let i = 0; i < 64; i++) yield Buffer.alloc(1024 * 1024, i)
    }
    await backend.write('disk.vhd', data(), { length: size })

    // A reader that pauses longer than the deadline between its reads still gets every byte.
    let slowBytes = 0
    let paused = false
    for await (const chunk of await backend.read('disk.vhd')) {
      if (!paused) {
        paused = true
        await new Promise(resolve => setTimeout(resolve, 9000))
      }
      slowBytes += (chunk as Buffer).length
    }
    assert.equal(slowBytes, size)

    let read = 0
    await assert.rejects(
      (async () => {
        for await (const chunk of await backend.read('disk.vhd')) {
          read += (chunk as Buffer).length
          if (read >= 4 * 1024 * 1024) azurite.freeze()
        }
      })(),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'REMOTE_UNAVAILABLE')
        assert.match(error.message, /no byte came for 8 s during a read/)
        return true
      },
    )
    assert.ok(read < size, `the read stopped before the end (${read} bytes)`)
  } finally {
    azurite.thaw()
    await azurite.stop()
  }
})

test('azure: a server that accepts the connection and goes silent fails the write REMOTE_UNAVAILABLE once a request passes its deadline', { timeout: 120_000 }, async () => {
  const azurite = await startAzurite({ container: 'faults' })
  try {
    const backend = azureBackendOf(azurite.urlFor('hung', 'faults'), { requestTimeoutMs: 8000 })
    await backend.sync()
    const chunk = Buffer.alloc(1024 * 1024, 5)
    let frozen = false
    async function* export_() {
      for (let i = 0; i < 20; i++) {
        // A block or two staged, then the server stops answering (SIGSTOP: its sockets stay open).
        if (i === 9) {
          azurite.freeze()
          frozen = true
        }
        yield chunk
      }
    }
    await assert.rejects(backend.write('xo-vm-backups/vm/disk.vhd', export_(), { length: 20 * chunk.length }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'REMOTE_UNAVAILABLE')
      assert.match(error.message, /got no answer within 8 s/)
      return true
    })
    assert.ok(frozen, 'the server went silent during the upload')
    azurite.thaw()
    await assert.rejects(backend.stat('xo-vm-backups/vm/disk.vhd'), { code: 'ENOENT' }, 'nothing committed')

    // The run's own cancel stays a cancel, not an unavailable remote.
    const cancel = new AbortController()
    async function* cancelled() {
      yield chunk
      cancel.abort(new Error('cancelled by the administrator'))
      yield chunk
    }
    await assert.rejects(backend.write('cancelled.vhd', cancelled(), { length: 2 * chunk.length, signal: cancel.signal }), (error: Error & { code?: string }) => error.code !== 'REMOTE_UNAVAILABLE')
  } finally {
    azurite.thaw()
    await azurite.stop()
  }
})
