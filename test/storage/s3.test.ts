// The S3 backend against a real S3 server (s3rver, test-infra.md §1): bytes, ranges, paging, prefixes as
// folders, deletes, write-if-absent, refused keys, a server that is gone, and short streams.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { listAll } from '../../source/storage/backend.ts'
import { S3Backend } from '../../source/storage/s3.ts'
import { parseRemoteUrl, redactRemoteUrl } from '../../source/storage/url.ts'
import { serializeError } from '../../source/util/errors.ts'
import { startS3rver, type S3rver } from '../helpers/s3rver.ts'
import { pattern } from '../helpers/pattern.ts'

// An access key and a secret with the characters a URL must escape ('/' cannot be in an access key: SigV4 splits on it).
const ODD_KEY = 'Odd+Key%41=:@'
const ODD_SECRET = 'se/cr+et%2F=:@'

let server: S3rver
let folders = 0

before(async () => {
  server = await startS3rver({ keys: [[ODD_KEY, ODD_SECRET]] })
})

after(async () => {
  await server?.stop()
})

function backendFor(url: string): S3Backend {
  const remote = parseRemoteUrl(url)
  assert.equal(remote.type, 's3', 'an s3+http URL parses as an S3 remote')
  return new S3Backend(remote as Extract<typeof remote, { type: 's3' }>, redactRemoteUrl(url))
}

/** A backend on a fresh, empty folder of the bucket. */
async function fresh(): Promise<S3Backend> {
  const backend = backendFor(server.urlFor(`test-${++folders}`))
  await backend.sync()
  return backend
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

test('buffers, strings and a 20 MiB + 12345 B stream round trip byte for byte', async () => {
  const s3 = await fresh()
  try {
    assert.equal(await s3.write('a/b.json', '{"x":1}'), 7)
    assert.equal((await collect(await s3.read('a/b.json'))).toString(), '{"x":1}')
    const data = randomBytes(100_000)
    assert.equal(await s3.write('a/c.bin', data), data.length)
    assert.deepEqual(await collect(await s3.read('a/c.bin')), data)
    await s3.write('a/c.bin', Buffer.from('replaced'))
    assert.equal((await collect(await s3.read('a/c.bin'))).toString(), 'replaced')

    const total = 20 * 1024 * 1024 + 12345
    const source = pattern(total)
    assert.equal(await s3.write('xo-vm-backups/vm/disk.vhd', source.chunks(), { length: total }), total)
    const read = createHash('sha256')
    for await (const chunk of await s3.read('xo-vm-backups/vm/disk.vhd')) read.update(chunk)
    assert.equal(read.digest('hex'), source.sha256)
    assert.equal((await s3.stat('xo-vm-backups/vm/disk.vhd')).size, total)

    // Without a length, and empty.
    assert.equal(await s3.write('a/unknown', pattern(300_000).chunks()), 300_000)
    assert.equal((await s3.stat('a/unknown')).size, 300_000)
    assert.equal(await s3.write('a/empty', (async function* () {})()), 0)
    assert.equal((await collect(await s3.read('a/empty'))).length, 0)
  } finally {
    await s3.close()
  }
})

test('ranged reads return exactly the bytes asked for (end inclusive); a missing object rejects with ENOENT', async () => {
  const s3 = await fresh()
  try {
    const data = randomBytes(8 * 1024 * 1024 + 77)
    await s3.write('r/data', data)
    assert.deepEqual(await collect(await s3.read('r/data', { start: 7340029, end: 7341029 })), data.subarray(7340029, 7341030))
    assert.deepEqual(await collect(await s3.read('r/data', { start: 0, end: 0 })), data.subarray(0, 1))
    assert.deepEqual(await collect(await s3.read('r/data', { start: data.length - 10 })), data.subarray(data.length - 10))
    assert.deepEqual(await collect(await s3.read('r/data', { start: 0 })), data)
    assert.equal((await collect(await s3.read('r/data', { start: data.length }))).length, 0)
    await assert.rejects(s3.read('r/none'), { code: 'ENOENT' })
    await assert.rejects(s3.read('r/none', { start: 5, end: 9 }), { code: 'ENOENT' })
  } finally {
    await s3.close()
  }
})

test('a folder of 1005 objects lists in pages with a cursor, sorted; delete removes them in batches, missing keys included', async () => {
  const s3 = await fresh()
  try {
    const names = Array.from({ length: 1005 }, (_, i) => `f${String(i).padStart(4, '0')}`)
    for (let i = 0; i < names.length; i += 50) await Promise.all(names.slice(i, i + 50).map(n => s3.write(`many/${n}`, n)))
    const first = await s3.list('many')
    assert.equal(first.entries.length, 1000)
    assert.ok(first.next !== undefined, 'a folder past 1000 entries has a next page')
    const second = await s3.list('many', { cursor: first.next! })
    assert.deepEqual(second.entries.map(e => e.name), names.slice(1000))
    assert.equal(second.next, undefined)
    assert.deepEqual((await listAll(s3, 'many')).map(e => e.name), names)
    const small = await s3.list('many', { limit: 2 })
    assert.deepEqual(small.entries, [{ name: 'f0000', isDirectory: false }, { name: 'f0001', isDirectory: false }])
    const next = await s3.list('many', { limit: 2, cursor: small.next! })
    assert.deepEqual(next.entries.map(e => e.name), ['f0002', 'f0003'])

    await s3.delete([...names.map(n => `many/${n}`), 'many/missing', 'nowhere/at/all'])
    assert.deepEqual(await s3.list('many'), { entries: [] })
    await s3.delete([])
  } finally {
    await s3.close()
  }
})

test('folders are key prefixes: listed as directories, stat says so, a missing one is an empty page', async () => {
  const s3 = await fresh()
  try {
    await s3.write('vm/vdis/job/disk.vhd', Buffer.alloc(1234, 1))
    await s3.write('vm/20260101T000000Z.json', '{}')
    await s3.write('vm/b', 'b')
    assert.deepEqual((await s3.list('vm')).entries, [
      { name: '20260101T000000Z.json', isDirectory: false },
      { name: 'b', isDirectory: false },
      { name: 'vdis', isDirectory: true },
    ])
    assert.deepEqual((await s3.list('')).entries, [{ name: 'vm', isDirectory: true }])
    assert.deepEqual(await s3.list('vm/nothing'), { entries: [] })

    const file = await s3.stat('vm/vdis/job/disk.vhd')
    assert.equal(file.size, 1234)
    assert.equal(file.isDirectory, false)
    assert.ok(Math.abs(file.mtimeMs - Date.now()) < 3_600_000, 'the object has its modification time')
    assert.equal((await s3.stat('vm/vdis')).isDirectory, true)
    assert.equal((await s3.stat('')).isDirectory, true)
    await assert.rejects(s3.stat('vm/vdis/none'), { code: 'ENOENT' })
    // '..' never climbs above the remote's folder.
    await s3.write('../../escape', 'x')
    assert.equal((await collect(await s3.read('escape'))).toString(), 'x')

    await s3.rmtree('vm')
    await s3.rmtree('vm')
    assert.deepEqual((await s3.list('')).entries, [{ name: 'escape', isDirectory: false }])
    await s3.delete([''])
    assert.deepEqual((await s3.list('')).entries, [{ name: 'escape', isDirectory: false }], "deleting '' deletes nothing")
  } finally {
    await s3.close()
  }
})

test('write with ifAbsent refuses an existing object with EEXIST and leaves it unchanged (buffers and streams)', async () => {
  const s3 = await fresh()
  try {
    await s3.write('locks/vm.lock', 'first', { ifAbsent: true })
    await assert.rejects(s3.write('locks/vm.lock', 'second', { ifAbsent: true }), { code: 'EEXIST' })
    await assert.rejects(s3.write('locks/vm.lock', pattern(1000).chunks(), { ifAbsent: true, length: 1000 }), { code: 'EEXIST' })
    assert.equal((await collect(await s3.read('locks/vm.lock'))).toString(), 'first')
    assert.equal(await s3.write('locks/other', pattern(1000).chunks(), { ifAbsent: true }), 1000)
  } finally {
    await s3.close()
  }
})

test('a stream shorter or longer than its length fails with REMOTE_WRITE_INCOMPLETE and leaves no object', async () => {
  const s3 = await fresh()
  try {
    await assert.rejects(s3.write('v/small.vhd', pattern(4096).chunks(), { length: 8192 }), { code: 'REMOTE_WRITE_INCOMPLETE' })
    // Past one part: a multipart upload that must not be completed.
    await assert.rejects(s3.write('v/large.vhd', pattern(12 * 1024 * 1024).chunks(), { length: 20 * 1024 * 1024 }), { code: 'REMOTE_WRITE_INCOMPLETE' })
    await assert.rejects(s3.write('v/long.vhd', pattern(12 * 1024 * 1024).chunks(), { length: 6 * 1024 * 1024 }), { code: 'REMOTE_WRITE_INCOMPLETE' })
    await assert.rejects(s3.write('v/buffer', Buffer.alloc(10), { length: 11 }), { code: 'REMOTE_WRITE_INCOMPLETE' })
    async function* failing() {
      yield Buffer.alloc(6 * 1024 * 1024, 1)
      throw new Error('export cut short')
    }
    await assert.rejects(s3.write('v/failed.vhd', failing()), /export cut short/)
    const controller = new AbortController()
    async function* endless() {
      for (let i = 0; ; i++) {
        yield Buffer.alloc(1024 * 1024, 2)
        if (i === 7) controller.abort()
      }
    }
    await assert.rejects(s3.write('v/aborted.vhd', endless(), { signal: controller.signal }), { code: 'CANCELLED' })
    assert.deepEqual(await s3.list('v'), { entries: [] })
    for (const name of ['small.vhd', 'large.vhd', 'long.vhd', 'buffer', 'failed.vhd', 'aborted.vhd']) await assert.rejects(s3.stat(`v/${name}`), { code: 'ENOENT' })
  } finally {
    await s3.close()
  }
})

test('abortStaleUploads finds nothing to do on a store that cannot list uploads (s3rver)', async () => {
  const s3 = await fresh()
  try {
    assert.equal(await s3.abortStaleUploads(0), 0)
  } finally {
    await s3.close()
  }
})

test('keys are URI-decoded from the URL: an access key and a secret full of separators work', async () => {
  const url = `s3+http://${encodeURIComponent(ODD_KEY)}:${encodeURIComponent(ODD_SECRET)}@127.0.0.1:${server.port}/${server.bucket}/odd`
  const s3 = backendFor(url)
  try {
    await s3.sync()
    await s3.write('x', 'y')
    assert.equal((await collect(await s3.read('x'))).toString(), 'y')
  } finally {
    await s3.close()
  }
})

test('a wrong access key is REMOTE_AUTH, saying to check the keys and carrying neither of them', async () => {
  const secret = 'wrong/se+cret%'
  const url = `s3+http://NOT-A-KEY:${encodeURIComponent(secret)}@127.0.0.1:${server.port}/${server.bucket}/auth`
  const s3 = backendFor(url)
  try {
    const failures = await Promise.all(
      [s3.sync(), s3.read('x'), s3.write('x', 'y'), s3.write('y', pattern(1000).chunks()), s3.list(''), s3.stat('x'), s3.delete(['x'])].map(p => p.then(() => assert.fail('the server accepted a wrong key'), (e: unknown) => e)),
    )
    for (const error of failures) {
      assert.equal((error as { code?: string }).code, 'REMOTE_AUTH', `refused with REMOTE_AUTH: ${String(error)}`)
      assert.match((error as Error).message, /check the access key and the secret key/)
      // The label (the redacted URL) names the access key, as every message about the remote does; nothing else may.
      const serialized = JSON.stringify(serializeError(error)).replaceAll(s3.label, '<label>')
      assert.ok(!serialized.includes('NOT-A-KEY'), `the error does not carry the access key: ${serialized}`)
      assert.ok(!serialized.includes(secret) && !serialized.includes(encodeURIComponent(secret)), 'the error does not carry the secret')
    }
  } finally {
    await s3.close()
  }
})

test('a bucket that does not exist is REMOTE_UNAVAILABLE saying to create it', async () => {
  const s3 = backendFor(`s3+http://S3RVER:S3RVER@127.0.0.1:${server.port}/no-such-bucket/dir`)
  try {
    await assert.rejects(s3.sync(), (error: Error & { code?: string }) => error.code === 'REMOTE_UNAVAILABLE' && /no-such-bucket does not exist \(create the bucket/.test(error.message))
    await assert.rejects(s3.list(''), { code: 'REMOTE_UNAVAILABLE' })
    await assert.rejects(s3.read('x'), { code: 'REMOTE_UNAVAILABLE' })
  } finally {
    await s3.close()
  }
})

test('a stopped server is REMOTE_UNAVAILABLE for every operation', async () => {
  const own = await startS3rver()
  const s3 = backendFor(own.url)
  try {
    await s3.sync()
    await own.kill()
    const failures = await Promise.all(
      [s3.sync(), s3.read('x'), s3.write('x', 'y'), s3.write('y', pattern(1000).chunks()), s3.list(''), s3.stat('x'), s3.delete(['x'])].map(p => p.then(() => assert.fail('a stopped server answered'), (e: unknown) => e)),
    )
    for (const error of failures) assert.equal((error as { code?: string }).code, 'REMOTE_UNAVAILABLE', `refused with REMOTE_UNAVAILABLE: ${String(error)}`)
  } finally {
    await s3.close()
    await own.stop()
  }
})

test('https with a self-signed certificate: refused with REMOTE_CERTIFICATE unless the URL says allowUnauthorized=true', async () => {
  const own = await startS3rver({ tls: true })
  const strict = backendFor(own.url)
  const trusting = backendFor(`${own.url}?allowUnauthorized=true`)
  try {
    assert.match(own.url, /^s3:\/\//, 'the URL of a TLS server is s3://')
    await assert.rejects(strict.sync(), (error: Error & { code?: string }) => error.code === 'REMOTE_CERTIFICATE' && /allowUnauthorized=true/.test(error.message))
    await assert.rejects(strict.write('x', 'y'), { code: 'REMOTE_CERTIFICATE' })
    await trusting.sync()
    await trusting.write('x', 'over TLS')
    assert.equal((await collect(await trusting.read('x'))).toString(), 'over TLS')
  } finally {
    await strict.close()
    await trusting.close()
    await own.stop()
  }
})
