// Encryption at rest (XO's layout: nonce 12 ‖ ciphertext ‖ tag 16, one AEAD per object): round trips, ranged
// reads, what is stored, and sync()'s refusals. The stored bytes are checked with node's crypto directly, an
// implementation independent of the decorator's stream code; XO's own code is in encryption-xo.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { inspect } from 'node:util'
import type { Backend, EntryStat, ListEntry, WriteData, WriteOptions } from '../../source/storage/backend.ts'
import { ENCRYPTION_OVERHEAD, remoteEncryptionKey, withEncryption } from '../../source/storage/encryption.ts'
import { parseRemoteUrl, redactRemoteUrl } from '../../source/storage/url.ts'
import { serializeError } from '../../source/util/errors.ts'

const KEY = '73c1838d7d8a6088ca2317fb5f29cd91'
const OTHER_KEY = '0123456789abcdef0123456789abcdef'
const MARKER = Buffer.from('LIFEBOAT-PLAINTEXT-MARKER')

/** A Backend over a Map: objects by name, folders implied by prefixes; counts writes. */
class MemoryBackend implements Backend {
  readonly label = 'memory://test'
  readonly capabilities = { atomicRename: false, randomWrite: true, freeSpaceKnown: false, conditionalCreate: true, folders: false, maxObjectSize: 1000, connections: 4 }
  readonly objects = new Map<string, Buffer>()
  writes = 0
  /** Chunks handed to write(), as they arrive (to see that a stream is not gathered first). */
  onChunk: (chunk: Buffer) => void = () => {}

  async sync(): Promise<void> {}
  async close(): Promise<void> {}
  async info() {
    return {}
  }

  async list(dir: string) {
    const prefix = dir === '' ? '' : `${dir}/`
    const children = new Map<string, ListEntry>()
    for (const name of this.objects.keys()) {
      if (!name.startsWith(prefix)) continue
      const [child = '', ...rest] = name.slice(prefix.length).split('/')
      children.set(child, { name: child, isDirectory: rest.length > 0 })
    }
    return { entries: [...children.values()].sort((a, b) => (a.name < b.name ? -1 : 1)) }
  }

  async stat(path: string): Promise<EntryStat> {
    const data = this.objects.get(path)
    if (data !== undefined) return { size: data.length, mtimeMs: 0, isDirectory: false }
    if ([...this.objects.keys()].some(name => name.startsWith(`${path}/`))) return { size: 0, mtimeMs: 0, isDirectory: true }
    throw enoent(path)
  }

  async read(path: string, range?: { start: number; end?: number }): Promise<Readable> {
    const data = this.objects.get(path)
    if (data === undefined) throw enoent(path)
    const slice = range === undefined ? data : data.subarray(range.start, range.end === undefined ? undefined : range.end + 1)
    // Odd chunk sizes, so the decryption sees the tag split across chunks.
    const chunks: Buffer[] = []
    for (let i = 0, size = 1; i < slice.length; i += size, size = (size * 7) % 23 + 1) chunks.push(slice.subarray(i, i + size))
    return Readable.from(chunks)
  }

  async write(path: string, data: WriteData, options: WriteOptions = {}): Promise<number> {
    this.writes++
    if (options.ifAbsent === true && this.objects.has(path)) throw Object.assign(new Error(`${path} exists`), { code: 'EEXIST' })
    let bytes: Buffer
    if (typeof data === 'string' || Buffer.isBuffer(data)) bytes = Buffer.from(data)
    else {
      const chunks: Buffer[] = []
      for await (const chunk of data) {
        this.onChunk(Buffer.from(chunk))
        chunks.push(Buffer.from(chunk))
      }
      bytes = Buffer.concat(chunks)
    }
    if (options.length !== undefined && options.length !== bytes.length) throw Object.assign(new Error(`length ${bytes.length} is not ${options.length}`), { code: 'ERR_STREAM_LENGTH' })
    this.objects.set(path, bytes)
    return bytes.length
  }

  async delete(paths: string[]): Promise<void> {
    for (const path of paths) this.objects.delete(path)
  }

  async rmtree(path: string): Promise<void> {
    for (const name of [...this.objects.keys()]) if (name.startsWith(`${path}/`)) this.objects.delete(name)
  }

  async open(): Promise<never> {
    throw new Error('not used')
  }

  snapshot(): Map<string, Buffer> {
    return new Map([...this.objects].map(([name, data]) => [name, Buffer.from(data)]))
  }
}

function enoent(path: string): Error {
  return Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' })
}

async function collect(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk))
  return Buffer.concat(chunks)
}

async function* chunked(data: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  for (let i = 0, k = 0; i < data.length; k++) {
    const size = sizes[k % sizes.length] ?? 1
    yield data.subarray(i, i + size)
    i += size
  }
}

/** Independent of the decorator: node's AEAD on the whole stored object. */
function open(stored: Buffer, key = KEY, algorithm: 'chacha20-poly1305' | 'aes-256-gcm' = 'chacha20-poly1305'): Buffer {
  const decipher = createDecipheriv(algorithm as 'aes-256-gcm', Buffer.from(key), stored.subarray(0, 12), { authTagLength: 16 })
  decipher.setAuthTag(stored.subarray(stored.length - 16))
  return Buffer.concat([decipher.update(stored.subarray(12, stored.length - 16)), decipher.final()])
}

function seal(plain: Buffer, key = KEY, algorithm: 'chacha20-poly1305' | 'aes-256-gcm' = 'chacha20-poly1305'): Buffer {
  const nonce = randomBytes(12)
  const cipher = createCipheriv(algorithm as 'aes-256-gcm', Buffer.from(key), nonce, { authTagLength: 16 })
  return Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()])
}

function plaintextWithMarkers(size: number): Buffer {
  const data = randomBytes(size)
  for (let at = 0; at + MARKER.length <= size; at += 4096) MARKER.copy(data, at)
  return data
}

async function encryptedRemote(key = KEY): Promise<{ inner: MemoryBackend; backend: Backend }> {
  const inner = new MemoryBackend()
  const backend = withEncryption(inner, key)
  await backend.sync()
  return { inner, backend }
}

test('sync on an empty remote writes encryption.json in plaintext and metadata.json encrypted, as XO', async () => {
  const { inner } = await encryptedRemote()
  assert.deepEqual(JSON.parse(inner.objects.get('encryption.json')!.toString()), { algorithm: 'chacha20-poly1305' })
  const check = JSON.parse(open(inner.objects.get('metadata.json')!).toString()) as { random: string }
  assert.match(check.random, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
  assert.deepEqual([...inner.objects.keys()].sort(), ['encryption.json', 'metadata.json'])
})

test('buffers, strings, streams and empty objects round-trip; the stored bytes are nonce ‖ ciphertext ‖ tag, without the plaintext', async () => {
  const { inner, backend } = await encryptedRemote()
  const big = plaintextWithMarkers(300_000)
  const cases: Array<[string, WriteData, Buffer]> = [
    ['a/buffer.bin', big, big],
    ['a/string.json', `{"marker":"${MARKER}"}`, Buffer.from(`{"marker":"${MARKER}"}`)],
    ['a/stream.bin', chunked(big, [1, 15, 17, 65536, 3]), big],
    ['a/empty', Buffer.alloc(0), Buffer.alloc(0)],
    ['a/empty-stream', chunked(Buffer.alloc(0), [1]), Buffer.alloc(0)],
  ]
  for (const [path, data, plain] of cases) {
    assert.equal(await backend.write(path, data), plain.length, `${path}: write returns the plaintext size`)
    const stored = inner.objects.get(path)!
    assert.equal(stored.length, plain.length + ENCRYPTION_OVERHEAD, `${path}: stored size`)
    assert.equal(stored.indexOf(MARKER), -1, `${path}: the stored bytes hold no plaintext marker`)
    assert.ok(open(stored).equals(plain), `${path}: node's AEAD opens the stored object to the plaintext`)
    assert.ok((await collect(await backend.read(path))).equals(plain), `${path}: read gives the plaintext back`)
    assert.equal((await backend.stat(path)).size, plain.length, `${path}: stat reports the plaintext size`)
  }
  const nonces = new Set(cases.map(([path]) => inner.objects.get(path)!.subarray(0, 12).toString('hex')))
  assert.equal(nonces.size, cases.length, 'every object has its own nonce')
})

test('a ranged read returns exactly the requested plaintext bytes', async () => {
  const { backend } = await encryptedRemote()
  const plain = plaintextWithMarkers(10_000)
  await backend.write('blocks/1', plain)
  const ranges = [{ start: 0, end: 0 }, { start: 0, end: 99 }, { start: 1, end: 1 }, { start: 4095, end: 4200 }, { start: 9999, end: 9999 }, { start: 5000 }, { start: 9000, end: 20_000 }, { start: 10_000 }, { start: 12_000, end: 13_000 }]
  for (const range of ranges) {
    const got = await collect(await backend.read('blocks/1', range))
    const expected = plain.subarray(range.start, range.end === undefined ? undefined : range.end + 1)
    assert.ok(got.equals(expected), `range ${JSON.stringify(range)}: ${got.length} bytes, expected ${expected.length}`)
  }
})

test('a changed byte, a truncated object or an object from another key fails to read with REMOTE_DECRYPT_FAILED, ranged reads included', async () => {
  const { inner, backend } = await encryptedRemote()
  const plain = plaintextWithMarkers(5000)
  await backend.write('x', plain)
  const stored = inner.objects.get('x')!
  const flipped = Buffer.from(stored)
  flipped[2500] = flipped[2500]! ^ 1
  inner.objects.set('flipped', flipped)
  inner.objects.set('truncated', stored.subarray(0, 20))
  inner.objects.set('short-tag', stored.subarray(0, stored.length - 1))
  inner.objects.set('other-key', seal(plain, OTHER_KEY))
  for (const path of ['flipped', 'truncated', 'short-tag', 'other-key']) {
    await assert.rejects(collect(await backend.read(path)), { code: 'REMOTE_DECRYPT_FAILED' }, path)
    await assert.rejects(collect(await backend.read(path, { start: 0, end: 10 })), { code: 'REMOTE_DECRYPT_FAILED' }, `${path}, ranged`)
  }
  await assert.rejects(backend.stat('truncated'), { code: 'REMOTE_DECRYPT_FAILED' })
  await assert.rejects(backend.read('missing'), { code: 'ENOENT' })
})

test('streams stay streams: decrypted bytes come before the stored object is all read, encrypted ones before the source ends', async () => {
  const { inner, backend } = await encryptedRemote()
  const plain = plaintextWithMarkers(200_000)
  await backend.write('big', plain)
  // Reading: the inner stream waits for a signal that only the first decrypted chunk gives.
  let release!: () => void
  const released = new Promise<void>(resolve => (release = resolve))
  const stored = inner.objects.get('big')!
  inner.read = async () =>
    Readable.from(
      (async function* () {
        yield stored.subarray(0, 100_000)
        await released
        yield stored.subarray(100_000)
      })(),
    )
  const reading = await backend.read('big')
  const chunks: Buffer[] = []
  for await (const chunk of reading) {
    if (chunks.length === 0) release()
    chunks.push(chunk as Buffer)
  }
  assert.ok(Buffer.concat(chunks).equals(plain), 'the gated stream decrypts whole')
  // Writing: the source's last chunk waits until the inner backend has received encrypted bytes.
  let received!: () => void
  const receivedSome = new Promise<void>(resolve => (received = resolve))
  inner.onChunk = () => received()
  await backend.write('streamed', (async function* () {
    yield plain.subarray(0, 1000)
    await receivedSome
    yield plain.subarray(1000)
  })())
  assert.ok(open(inner.objects.get('streamed')!).equals(plain), 'the gated write stores the whole object')
})

test('a length given with a stream is the plaintext length: the inner backend is asked for 28 more, a short stream fails', async () => {
  const { inner, backend } = await encryptedRemote()
  const plain = randomBytes(500)
  let asked: number | undefined
  const write = inner.write.bind(inner)
  inner.write = (path, data, options) => ((asked = options?.length), write(path, data, options))
  assert.equal(await backend.write('sized', chunked(plain, [100]), { length: 500 }), 500)
  assert.equal(asked, 500 + ENCRYPTION_OVERHEAD)
  await assert.rejects(backend.write('short', chunked(plain.subarray(0, 400), [100]), { length: 500 }), { code: 'ERR_STREAM_LENGTH' })
  assert.equal(inner.objects.has('short'), false, 'nothing is stored for a short stream')
})

test('capabilities: those of the inner backend but no random write (no open) and a largest object 28 bytes smaller', async () => {
  const { backend } = await encryptedRemote()
  assert.equal(backend.capabilities.randomWrite, false)
  assert.equal(backend.capabilities.maxObjectSize, 1000 - ENCRYPTION_OVERHEAD)
  assert.equal(backend.capabilities.conditionalCreate, true)
  assert.equal(backend.capabilities.connections, 4)
  assert.equal(backend.open, undefined)
  assert.equal(backend.rename, undefined, 'the inner backend has no rename, neither has the decorator')
  await backend.write('tree/a', 'x')
  await backend.rmtree!('tree')
  await assert.rejects(backend.stat('tree/a'), { code: 'ENOENT' }, 'rmtree goes through to the inner backend')
})

test('a key that does not match is refused (REMOTE_BAD_KEY) before any write: the remote is unchanged, byte for byte', async () => {
  const { inner, backend } = await encryptedRemote()
  await backend.write('xo-vm-backups/vm/backup.json', '{"a":1}')
  const before = inner.snapshot()
  const writes = inner.writes
  const wrong = withEncryption(inner, OTHER_KEY)
  const error = await wrong.sync().then(() => undefined, (e: unknown) => e)
  assert.equal((error as { code?: string }).code, 'REMOTE_BAD_KEY')
  assert.match((error as Error).message, /does not match the key this remote was encrypted with/)
  assert.equal(inner.writes, writes, 'no write was attempted')
  assert.deepEqual(inner.snapshot(), before)
  await assert.rejects(wrong.write('y', 'z'), { code: 'REMOTE_NOT_SYNCED' })
})

test('on a remote empty but for the encryption files, another key re-makes them (XO: the remote takes the new settings)', async () => {
  const { inner } = await encryptedRemote()
  const other = withEncryption(inner, OTHER_KEY)
  await other.sync()
  assert.doesNotThrow(() => open(inner.objects.get('metadata.json')!, OTHER_KEY), 'metadata.json is now under the new key')
})

test('a non-empty unencrypted remote is refused (REMOTE_NOT_EMPTY) and left unchanged', async () => {
  for (const files of [{ 'xo-vm-backups/vm/a.json': '{}' }, { 'encryption.json': '{"algorithm":"none"}', 'xo-vm-backups/vm/a.json': '{}' }, { 'encryption.json': '{"algorithm":"chacha20-poly1305"}', 'xo-vm-backups/vm/a.json': '{}' }]) {
    const inner = new MemoryBackend()
    for (const [name, text] of Object.entries(files)) inner.objects.set(name, Buffer.from(text))
    const before = inner.snapshot()
    await assert.rejects(withEncryption(inner, KEY).sync(), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'REMOTE_NOT_EMPTY')
      assert.match(error.message, /empty/)
      return true
    })
    assert.deepEqual(inner.snapshot(), before, JSON.stringify(Object.keys(files)))
    assert.equal(inner.writes, 0)
  }
})

test('an unencrypted remote with only dot-files is empty: it becomes encrypted', async () => {
  const inner = new MemoryBackend()
  inner.objects.set('.keeper_1', Buffer.alloc(0))
  await withEncryption(inner, KEY).sync()
  assert.ok(inner.objects.has('metadata.json'), 'metadata.json written')
})

test('without a key, an encrypted remote is refused (REMOTE_ENCRYPTED); an unencrypted one passes through unchanged', async () => {
  const { inner } = await encryptedRemote()
  await assert.rejects(withEncryption(inner, undefined).sync(), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'REMOTE_ENCRYPTED')
    assert.match(error.message, /add its key/)
    return true
  })
  const plain = new MemoryBackend()
  const passing = withEncryption(plain, undefined)
  await passing.sync()
  await passing.write('a', 'plain text')
  assert.equal(plain.objects.get('a')!.toString(), 'plain text')
  assert.equal(typeof passing.open, 'function', 'open is kept when nothing is encrypted')
  assert.equal(plain.objects.has('encryption.json'), false, 'XO writes no encryption file on an unencrypted remote, neither does Lifeboat')
})

test('encryption.json naming an unknown algorithm or not JSON is refused with REMOTE_BAD_ENCRYPTION on a non-empty remote', async () => {
  for (const text of ['{"algorithm":"aes-256-cbc"}', 'not json']) {
    const inner = new MemoryBackend()
    inner.objects.set('encryption.json', Buffer.from(text))
    inner.objects.set('metadata.json', Buffer.from('whatever'))
    inner.objects.set('xo-vm-backups/x', Buffer.from('data'))
    await assert.rejects(withEncryption(inner, KEY).sync(), { code: 'REMOTE_BAD_ENCRYPTION' }, text)
  }
})

test('an aes-256-gcm remote (XO before 5.103) is read and written with aes-256-gcm', async () => {
  const inner = new MemoryBackend()
  inner.objects.set('encryption.json', Buffer.from('{"algorithm":"aes-256-gcm"}'))
  inner.objects.set('metadata.json', seal(Buffer.from('{"random":"3f0c7d1e-0000-4000-8000-000000000000"}'), KEY, 'aes-256-gcm'))
  const plain = plaintextWithMarkers(9000)
  inner.objects.set('xo-vm-backups/old.bin', seal(plain, KEY, 'aes-256-gcm'))
  const backend = withEncryption(inner, KEY)
  await backend.sync()
  assert.ok((await collect(await backend.read('xo-vm-backups/old.bin'))).equals(plain), 'an aes-256-gcm object reads')
  assert.ok((await collect(await backend.read('xo-vm-backups/old.bin', { start: 100, end: 8000 }))).equals(plain.subarray(100, 8001)), 'a range of it too')
  await backend.write('xo-vm-backups/new.bin', plain)
  assert.ok(open(inner.objects.get('xo-vm-backups/new.bin')!, KEY, 'aes-256-gcm').equals(plain), 'new objects are aes-256-gcm too')
  assert.equal(inner.objects.get('encryption.json')!.toString(), '{"algorithm":"aes-256-gcm"}', 'encryption.json unchanged')
})

test('the key is in no error message, label, inspected object or redacted URL', async () => {
  const { inner, backend } = await encryptedRemote()
  const errors: unknown[] = []
  await backend.write('xo-vm-backups/a', 'x')
  await withEncryption(inner, OTHER_KEY).sync().catch(e => errors.push(e))
  await inner.write('flipped', Buffer.alloc(40))
  await collect(await backend.read('flipped')).catch(e => errors.push(e))
  await withEncryption(inner, undefined).sync().catch(e => errors.push(e))
  for (const url of [`file:///b?encryptionKey=${encodeURIComponent(JSON.stringify(KEY))}`, `file:///b?encryptionKey=${encodeURIComponent(JSON.stringify('short'))}&useVhdDirectory=true`]) {
    try {
      remoteEncryptionKey(parseRemoteUrl(url))
    } catch (error) {
      errors.push(error)
    }
  }
  assert.equal(errors.length, 5, 'every case failed')
  const texts = [...errors.map(e => JSON.stringify(serializeError(e)) + inspect(e)), backend.label, inspect(backend, { depth: 5, showHidden: true }), JSON.stringify(backend)]
  texts.push(redactRemoteUrl(`file:///b?useVhdDirectory=true&encryptionKey=${encodeURIComponent(JSON.stringify(KEY))}`))
  for (const text of texts) {
    assert.equal(text.includes(KEY), false, `the key leaks in: ${text.slice(0, 200)}`)
    assert.equal(text.includes(OTHER_KEY), false, `the other key leaks in: ${text.slice(0, 200)}`)
    assert.equal(text.includes(Buffer.from(KEY).toString('hex')), false, 'the key leaks in hex')
  }
})

test('remoteEncryptionKey: XO\'s rules (32 ASCII characters; VhdDirectory, which S3 and Azure always use)', () => {
  const q = (key: unknown) => `encryptionKey=${encodeURIComponent(JSON.stringify(key))}`
  assert.equal(remoteEncryptionKey(parseRemoteUrl('file:///b?useVhdDirectory=true')), undefined)
  assert.equal(remoteEncryptionKey(parseRemoteUrl(`file:///b?useVhdDirectory=true&${q(KEY)}`)), KEY)
  assert.equal(remoteEncryptionKey(parseRemoteUrl(`nfs://h:/e?useVhdDirectory=true&${q(KEY)}`)), KEY)
  assert.equal(remoteEncryptionKey(parseRemoteUrl(`s3://k:s@host/bucket/dir?${q(KEY)}`)), KEY)
  assert.equal(remoteEncryptionKey(parseRemoteUrl(`azure://a:k@a.blob.core.windows.net/c/p?${q(KEY)}`)), KEY)
  for (const url of [`file:///b?${q(KEY)}`, `file:///b?useVhdDirectory=false&${q(KEY)}`, `smb://u:p@D\\\\h\\s\0?${q(KEY)}`, `nfs://h:/e?${q(KEY)}`]) {
    assert.throws(() => remoteEncryptionKey(parseRemoteUrl(url)), (error: Error & { code?: string }) => error.code === 'REMOTE_BAD_URL' && /useVhdDirectory=true/.test(error.message), url)
  }
  for (const key of ['short', `${KEY}x`, 'é'.repeat(32), 12345678901234567890, '']) {
    assert.throws(() => remoteEncryptionKey(parseRemoteUrl(`file:///b?useVhdDirectory=true&${q(key)}`)), (error: Error & { code?: string }) => error.code === 'REMOTE_BAD_URL' && /32 ASCII characters/.test(error.message), String(key))
  }
  assert.throws(() => withEncryption(new MemoryBackend(), 'short'), { code: 'REMOTE_BAD_URL' })
})
