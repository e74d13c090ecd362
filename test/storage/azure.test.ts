// The Azure Blob backend against azurite: block blobs whole and staged, ranges, paged lists, prefixes as
// folders, conditional creates, the error codes the engine acts on, and leases as locks.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import type { Readable } from 'node:stream'
import { BlobServiceClient, BlockBlobClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { AzureBackend } from '../../source/storage/azure.ts'
import { listAll, type RemoteLock } from '../../source/storage/backend.ts'
import { parseRemoteUrl } from '../../source/storage/url.ts'
import { serializeError } from '../../source/util/errors.ts'
import { AZURITE_KEY, azureBackendOf, startAzurite, type Azurite } from '../helpers/azurite.ts'

let azurite: Azurite
let folders = 0

before(async () => {
  azurite = await startAzurite()
})

after(async () => {
  await azurite?.stop()
})

/** A backend on a fresh folder of the container, and that folder's URL. */
async function freshBackend(): Promise<AzureBackend & { url: string }> {
  const url = azurite.urlFor(`test-${++folders}`)
  const backend = Object.assign(azureBackendOf(url), { url })
  await backend.sync()
  return backend
}

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** `size` pseudo-random bytes in uneven chunks, and their sha256 once consumed. */
function source(size: number, seed = 1): { chunks: AsyncIterable<Buffer>; sha256: () => string } {
  const hash = createHash('sha256')
  const block = randomBytes(1 << 20)
  return {
    chunks: (async function* () {
      for (let done = 0, i = seed; done < size; i++) {
        const length = Math.min(size - done, 65_536 + ((i * 7919) % 300_000))
        const chunk = Buffer.from(block.subarray(i % 1000, (i % 1000) + Math.min(length, block.length - 1000)))
        hash.update(chunk)
        done += chunk.length
        yield chunk
      }
    })(),
    sha256: () => hash.digest('hex'),
  }
}

test('azure: the helper URL is one parseRemoteUrl reads as azurite over http with the well-known account', () => {
  const remote = parseRemoteUrl(azurite.url)
  assert.equal(remote.type, 'azurite')
  assert.ok(remote.type === 'azurite', 'an azurite remote')
  assert.equal(remote.protocol, 'http')
  assert.equal(remote.username, 'devstoreaccount1')
  assert.equal(remote.password, AZURITE_KEY)
  assert.equal(remote.path, '/backups/lifeboat')
})

test('azure: buffers and strings round-trip, stat gives their size, an empty one too', async () => {
  const backend = await freshBackend()
  assert.equal(await backend.write('a/one.json', '{"a":1}'), 7)
  const bytes = randomBytes(100_000)
  assert.equal(await backend.write('a/two.bin', bytes), bytes.length)
  assert.equal(await backend.write('a/empty', Buffer.alloc(0)), 0)
  assert.equal((await bytesOf(await backend.read('a/one.json'))).toString(), '{"a":1}')
  assert.deepEqual(await bytesOf(await backend.read('a/two.bin')), bytes)
  assert.equal((await bytesOf(await backend.read('a/empty'))).length, 0)
  const stat = await backend.stat('a/two.bin')
  assert.equal(stat.size, bytes.length)
  assert.equal(stat.isDirectory, false)
  assert.ok(Math.abs(stat.mtimeMs - Date.now()) < 10 * 60_000, 'the mtime is the upload time')
  // A plain write replaces.
  await backend.write('a/one.json', 'replaced')
  assert.equal((await bytesOf(await backend.read('a/one.json'))).toString(), 'replaced')
})

test('azure: a 20 MiB + 12345 B stream round-trips (staged blocks), with and without its length', async () => {
  const backend = await freshBackend()
  const size = 20 * 1024 * 1024 + 12_345
  for (const [name, length] of [['with-length.vhd', size], ['without-length.vhd', undefined]] as const) {
    const data = source(size)
    assert.equal(await backend.write(name, data.chunks, length === undefined ? {} : { length }), size)
    const written = data.sha256()
    assert.equal((await backend.stat(name)).size, size)
    assert.equal(createHash('sha256').update(await bytesOf(await backend.read(name))).digest('hex'), written)
  }
})

test('azure: a stream is staged a few blocks at a time (memory flat), blocks sized from its length', async () => {
  const backend = await freshBackend()
  const original = BlockBlobClient.prototype.stageBlock
  const sizes: number[] = []
  let inFlight = 0
  let maxInFlight = 0
  let staged = 0
  let produced = 0
  let maxAhead = 0
  BlockBlobClient.prototype.stageBlock = async function (this: BlockBlobClient, ...args: Parameters<typeof original>) {
    sizes.push(args[2])
    maxInFlight = Math.max(maxInFlight, ++inFlight)
    try {
      return await original.apply(this, args)
    } finally {
      inFlight--
      staged += args[2]
    }
  }
  try {
    async function* counted(size: number) {
      for await (const chunk of source(size).chunks) {
        produced += chunk.length
        maxAhead = Math.max(maxAhead, produced - staged)
        yield chunk
      }
    }
    await backend.write('flat.vhd', counted(40 * 1024 * 1024 + 5))
    const MiB = 1024 * 1024
    assert.deepEqual(sizes, [...Array(10).fill(4 * MiB), 5])
    assert.ok(maxInFlight <= 3, `at most 3 blocks staged at once (${maxInFlight})`)
    assert.ok(maxAhead <= 5 * 4 * MiB, `the source is read at most a few blocks ahead of what is staged (${maxAhead} bytes)`)
    // 300 GiB announced: 50,000 blocks must hold it, so each is bigger than 4 MiB.
    sizes.length = 0
    await assert.rejects(backend.write('big.vhd', source(14 * MiB).chunks, { length: 300 * 1024 * MiB }), { code: 'REMOTE_WRITE_INCOMPLETE' })
    assert.deepEqual(sizes.slice(0, 2), [Math.ceil((300 * 1024 * MiB) / 50_000), Math.ceil((300 * 1024 * MiB) / 50_000)])
  } finally {
    BlockBlobClient.prototype.stageBlock = original
  }
})

test('azure: ranged reads give exactly those bytes, across block boundaries and at the end', async () => {
  const backend = await freshBackend()
  const bytes = randomBytes(9 * 1024 * 1024 + 17)
  async function* chunks() {
    for (let i = 0; i < bytes.length; i += 1_000_000) yield bytes.subarray(i, i + 1_000_000)
  }
  await backend.write('disk.vhd', chunks(), { length: bytes.length })
  const blockEdge = 4 * 1024 * 1024
  for (const [start, end] of [[0, 0], [0, 511], [blockEdge - 7, blockEdge + 9], [9_437_177, 9_437_177 + 4095], [bytes.length - 1, bytes.length - 1], [100, undefined], [bytes.length - 5, bytes.length + 100]] as const) {
    const read = await bytesOf(await backend.read('disk.vhd', end === undefined ? { start } : { start, end }))
    assert.deepEqual(read, bytes.subarray(start, end === undefined ? undefined : end + 1), `range ${start}..${end}`)
  }
  assert.equal((await bytesOf(await backend.read('disk.vhd', { start: bytes.length }))).length, 0)
})

test('azure: reading a missing blob rejects with ENOENT before any stream', async () => {
  const backend = await freshBackend()
  await assert.rejects(backend.read('missing'), { code: 'ENOENT' })
  await assert.rejects(backend.read('missing', { start: 10, end: 20 }), { code: 'ENOENT' })
})

test('azure: a folder of 1100 blobs lists in pages past 1000, sorted, with sub-prefixes as folders', async () => {
  const backend = await freshBackend()
  const names = Array.from({ length: 1100 }, (_, i) => `f${String(i).padStart(4, '0')}`)
  for (let i = 0; i < names.length; i += 50) await Promise.all(names.slice(i, i + 50).map(name => backend.write(`many/${name}`, name)))
  await backend.write('many/sub/deep/x', 'x')
  await backend.write('many/zz/y', 'y')
  const expected = [...names.map(name => ({ name, isDirectory: false })), { name: 'sub', isDirectory: true }, { name: 'zz', isDirectory: true }]
  const pages: number[] = []
  const seen = []
  let cursor: string | undefined
  do {
    const page = await backend.list('many', { limit: 400, ...(cursor !== undefined && { cursor }) })
    pages.push(page.entries.length)
    seen.push(...page.entries)
    cursor = page.next
  } while (cursor !== undefined)
  assert.deepEqual(seen, expected)
  assert.ok(pages.length >= 3, `three pages or more of at most 400 (got ${pages.join(', ')})`)
  assert.ok(pages.every(n => n <= 400), `no page over its limit (got ${pages.join(', ')})`)
  assert.deepEqual(await listAll(backend, 'many/'), expected)
  assert.deepEqual(await listAll(backend, 'many/sub'), [{ name: 'deep', isDirectory: true }])
  assert.deepEqual(await listAll(backend, ''), [{ name: 'many', isDirectory: true }])
  assert.deepEqual(await backend.list('nothing/here'), { entries: [] })
})

test('azure: stat tells blobs, prefixes (folders), the root and missing names apart', async () => {
  const backend = await freshBackend()
  await backend.write('dir/sub/file', 'abc')
  assert.deepEqual(await backend.stat('dir/sub/file').then(s => [s.size, s.isDirectory]), [3, false])
  assert.equal((await backend.stat('dir')).isDirectory, true)
  assert.equal((await backend.stat('dir/sub/')).isDirectory, true)
  assert.equal((await backend.stat('')).isDirectory, true)
  await assert.rejects(backend.stat('dir/su'), { code: 'ENOENT' })
  await assert.rejects(backend.stat('missing'), { code: 'ENOENT' })
  // '..' never leaves the remote's folder.
  assert.equal((await backend.stat('../../dir/sub/file')).size, 3)
})

test('azure: delete removes many at once (past a batch of 256), missing ones are not an error', async () => {
  const backend = await freshBackend()
  const names = Array.from({ length: 300 }, (_, i) => `d/${i}`)
  for (let i = 0; i < names.length; i += 50) await Promise.all(names.slice(i, i + 50).map(name => backend.write(name, 'x')))
  await backend.write('d/kept', 'kept')
  await backend.delete([...names, 'd/missing', 'never/was'])
  assert.deepEqual(await listAll(backend, 'd'), [{ name: 'kept', isDirectory: false }])
  await backend.delete([])
  await backend.delete(['d/kept', 'd/kept'])
  assert.deepEqual(await listAll(backend, 'd'), [])
})

test('azure: rmtree removes a folder and everything under it, and nothing beside it', async () => {
  const backend = await freshBackend()
  await Promise.all(['t/a', 't/b/c', 't/b/d/e', 'tx', 't2/a'].map(name => backend.write(name, name)))
  await backend.rmtree('t')
  assert.deepEqual(await listAll(backend, ''), [{ name: 't2', isDirectory: true }, { name: 'tx', isDirectory: false }])
  await backend.rmtree('t')
})

test('azure: ifAbsent refuses an existing name (buffer and staged stream) and leaves it unchanged; of two racers exactly one wins', async () => {
  const backend = await freshBackend()
  await backend.write('lock.json', 'first', { ifAbsent: true })
  await assert.rejects(backend.write('lock.json', 'second', { ifAbsent: true }), { code: 'EEXIST' })
  await assert.rejects(backend.write('lock.json', source(9 * 1024 * 1024).chunks, { ifAbsent: true }), { code: 'EEXIST' })
  assert.equal((await bytesOf(await backend.read('lock.json'))).toString(), 'first')
  const results = await Promise.allSettled(['a', 'b', 'c', 'd'].map(who => backend.write('race.json', who, { ifAbsent: true })))
  assert.equal(results.filter(r => r.status === 'fulfilled').length, 1)
  assert.deepEqual(results.filter(r => r.status === 'rejected').map(r => (r.reason as { code?: string }).code), ['EEXIST', 'EEXIST', 'EEXIST'])
})

test('azure: a stream that delivers another byte count than its length leaves no blob (REMOTE_WRITE_INCOMPLETE)', async () => {
  const backend = await freshBackend()
  const cases = [
    ['small.json', 1000, 2000],
    ['staged.vhd', 9 * 1024 * 1024, 10 * 1024 * 1024],
    ['longer.vhd', 5 * 1024 * 1024, 4 * 1024 * 1024 + 1],
  ] as const
  for (const [name, delivered, length] of cases) {
    await assert.rejects(backend.write(`part/${name}`, source(delivered).chunks, { length }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'REMOTE_WRITE_INCOMPLETE')
      assert.match(error.message, /nothing was committed/)
      return true
    })
    await assert.rejects(backend.stat(`part/${name}`), { code: 'ENOENT' })
  }
  assert.deepEqual(await listAll(backend, 'part'), [])
  // An existing blob is not replaced by a short write.
  await backend.write('part/kept', 'kept')
  await assert.rejects(backend.write('part/kept', source(100).chunks, { length: 200 }), { code: 'REMOTE_WRITE_INCOMPLETE' })
  assert.equal((await bytesOf(await backend.read('part/kept'))).toString(), 'kept')
})

test('azure: a source that fails mid-stream leaves no blob and fails with its own error', async () => {
  const backend = await freshBackend()
  async function* failing() {
    yield Buffer.alloc(6 * 1024 * 1024, 1)
    throw new Error('the export broke')
  }
  await assert.rejects(backend.write('broken.vhd', failing()), /the export broke/)
  await assert.rejects(backend.stat('broken.vhd'), { code: 'ENOENT' })
})

test('azure: a wrong account key is REMOTE_AUTH, and no error carries the key', async () => {
  const wrongKey = Buffer.from('not the account key of devstoreaccount1, 64 bytes long for the hmac!!').toString('base64')
  const url = azurite.urlFor('auth').replace(encodeURIComponent(AZURITE_KEY), encodeURIComponent(wrongKey))
  const backend = azureBackendOf(url)
  const errors: unknown[] = []
  for (const operation of [() => backend.sync(), () => backend.write('x', 'x'), () => backend.read('x'), () => backend.list('')]) {
    await assert.rejects(operation(), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'REMOTE_AUTH')
      assert.match(error.message, /check the account name and the account key/)
      errors.push(error)
      return true
    })
  }
  for (const error of errors) {
    const shown = `${inspect(error, { depth: Infinity, showHidden: true })}${JSON.stringify(serializeError(error))}`
    assert.ok(!shown.includes(wrongKey) && !shown.includes(encodeURIComponent(wrongKey)), 'the key is in no error')
  }
  assert.ok(!backend.label.includes(wrongKey), 'the label is redacted')
})

test('azure: a missing container is REMOTE_UNAVAILABLE saying to create it', async () => {
  const backend = azureBackendOf(azurite.urlFor('dir', 'nosuchcontainer'))
  await assert.rejects(backend.sync(), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'REMOTE_UNAVAILABLE')
    assert.match(error.message, /container nosuchcontainer does not exist \(create it/)
    return true
  })
  await assert.rejects(backend.list('x'), { code: 'REMOTE_UNAVAILABLE' })
  await assert.rejects(backend.read('x'), { code: 'REMOTE_UNAVAILABLE' })
})

test('azure: a stopped server is REMOTE_UNAVAILABLE, and the backend works again once it is back', async () => {
  const other = await startAzurite({ container: 'stopping' })
  try {
    const backend = azureBackendOf(other.urlFor('dir', 'stopping'))
    await backend.sync()
    await backend.write('before', 'x')
    await other.kill()
    for (const operation of [() => backend.sync(), () => backend.write('x', 'x'), () => backend.read('before'), () => backend.stat('before'), () => backend.delete(['before'])]) {
      await assert.rejects(operation(), { code: 'REMOTE_UNAVAILABLE' })
    }
    await other.restart()
    await backend.write('after', 'y')
    assert.equal((await bytesOf(await backend.read('after'))).toString(), 'y')
  } finally {
    await other.stop()
  }
})

test('azure: a remote at the root of its container (no folder in the URL) lists, writes and deletes there', async () => {
  const url = azurite.urlFor('', 'rooted')
  await new BlobServiceClient(`http://127.0.0.1:${azurite.port}/devstoreaccount1`, new StorageSharedKeyCredential('devstoreaccount1', AZURITE_KEY)).getContainerClient('rooted').create()
  const backend = azureBackendOf(url)
  await backend.sync()
  assert.deepEqual(await backend.list(''), { entries: [] })
  await backend.write('top.json', '{}')
  await backend.write('xo-vm-backups/vm/a', 'a')
  assert.deepEqual(await listAll(backend, '/'), [{ name: 'top.json', isDirectory: false }, { name: 'xo-vm-backups', isDirectory: true }])
  assert.equal((await backend.stat('')).isDirectory, true)
  await backend.delete(['', 'top.json'])
  await backend.rmtree('xo-vm-backups')
  assert.deepEqual(await backend.list(''), { entries: [] })
})

test('azure: capabilities say an object store with conditional creates, free space unknown', async () => {
  const backend = await freshBackend()
  assert.deepEqual(await backend.info(), {})
  assert.equal(backend.capabilities.atomicRename, false)
  assert.equal(backend.capabilities.randomWrite, false)
  assert.equal(backend.capabilities.freeSpaceKnown, false)
  assert.equal(backend.capabilities.conditionalCreate, true)
  assert.equal(backend.capabilities.folders, false)
  assert.equal(backend.capabilities.maxObjectSize, 50_000 * 4000 * 1024 * 1024)
})

test('azure: two lease lockers exclude each other; release lets the other in and leaves no lock blob', async () => {
  const backend = await freshBackend()
  const other = azureBackendOf(backend.url)
  const first = await backend.lock('xo-vm-backups/vm1', { staleMs: 20_000 })
  assert.equal(first.compromised, false)
  await assert.rejects(other.lock('xo-vm-backups/vm1', { staleMs: 20_000 }), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'REMOTE_LOCKED')
    assert.match(error.message, /is locked by another backup, merge or clean.*expires and is taken over/)
    return true
  })
  // Another path is another lock.
  const beside = await other.lock('xo-vm-backups/vm2')
  await first.release()
  const second = await other.lock('xo-vm-backups/vm1')
  assert.equal(second.compromised, false)
  await assert.rejects(backend.lock('xo-vm-backups/vm1'), { code: 'REMOTE_LOCKED' })
  await second.release()
  await beside.release()
  await first.release()
  assert.deepEqual(await listAll(backend, 'xo-vm-backups'), [])
})

test('azure: a lease its holder stops renewing expires on the server, is taken over, and the old holder sees compromised', async () => {
  const backend = await freshBackend()
  // Leases last 15 s at least; a holder renewing every 18 s lets its lease lapse.
  const lapsing = await backend.lock('vm', { staleMs: 15_000, refreshMs: 18_000 })
  await assert.rejects(backend.lock('vm', { staleMs: 15_000 }), { code: 'REMOTE_LOCKED' })
  const deadline = Date.now() + 120_000
  let taker: RemoteLock | undefined
  while (taker === undefined) {
    taker = await backend.lock('vm', { staleMs: 15_000 }).catch((error: { code?: string }) => {
      if (error.code !== 'REMOTE_LOCKED' || Date.now() > deadline) throw error
      return new Promise<undefined>(resolve => setTimeout(() => resolve(undefined), 500))
    })
  }
  while (!lapsing.compromised) {
    assert.ok(Date.now() < deadline, 'the old holder sees its lease lost at its next renewal')
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  assert.equal(taker.compromised, false)
  await lapsing.release()
  // The old holder's release does not end the new holder's lease.
  await assert.rejects(backend.lock('vm'), { code: 'REMOTE_LOCKED' })
  await taker.release()
})
