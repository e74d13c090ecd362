// Interop with Xen Orchestra's own code: @xen-orchestra/fs 4.9.3 from npm (installed by the test into a scratch
// folder, with test-infra.md §5's xo-remote-parser override) writes and reads an encrypted folder remote in a
// child process; Lifeboat's LocalBackend with the encryption decorator reads and writes the same folder.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Backend } from '../../source/storage/backend.ts'
import { withEncryption } from '../../source/storage/encryption.ts'
import { LocalBackend } from '../../source/storage/local.ts'
import { tempDir } from '../helpers/tools.ts'
import { xoFs as xo, type XoFsResult as XoResult } from '../helpers/xo-npm.ts'

const KEY = '73c1838d7d8a6088ca2317fb5f29cd91'
const OTHER_KEY = '0123456789abcdef0123456789abcdef'
const MARKER = Buffer.from('LIFEBOAT-XO-PLAINTEXT-MARKER')

function marked(size: number): Buffer {
  const data = randomBytes(size)
  for (let at = 0; at + MARKER.length <= size; at += 1000) MARKER.copy(data, at)
  return data
}

async function collect(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk))
  return Buffer.concat(chunks)
}

async function* chunks(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size)
}

/** Every file under root with its bytes. */
async function tree(root: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>()
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) files.set(join(entry.parentPath, entry.name).slice(root.length + 1), await readFile(join(entry.parentPath, entry.name)))
  }
  return files
}

async function lifeboat(root: string, key: string | undefined): Promise<Backend> {
  const backend = withEncryption(new LocalBackend(root), key)
  await backend.sync()
  return backend
}

function ok(results: XoResult[]): XoResult[] {
  for (const [i, result] of results.entries()) assert.ok(result.ok, `XO op ${i} failed: ${result.code} ${result.message}`)
  return results
}

test('a remote XO made encrypted and wrote reads in Lifeboat, whole and in ranges; none of it is stored in plaintext', async () => {
  const dir = await tempDir()
  try {
    const file = marked(5000)
    const stream = marked(3_000_000)
    const [synced] = ok(await xo(dir.path, KEY, [
      { op: 'sync' },
      { op: 'writeFile', path: 'xo-vm-backups/vm/backup.json', data: file.toString('base64') },
      { op: 'writeStream', path: 'xo-vm-backups/vm/vdis/blocks/0/1', data: stream.toString('base64'), chunk: 65_537 },
    ]))
    assert.deepEqual([synced?.encrypted, synced?.algorithm], [true, 'chacha20-poly1305'])
    for (const [name, bytes] of await tree(dir.path)) assert.equal(bytes.indexOf(MARKER), -1, `${name} holds plaintext`)
    const backend = await lifeboat(dir.path, KEY)
    assert.ok((await collect(await backend.read('xo-vm-backups/vm/backup.json'))).equals(file), 'XO\'s outputFile reads back')
    assert.ok((await collect(await backend.read('xo-vm-backups/vm/vdis/blocks/0/1'))).equals(stream), 'XO\'s outputStream reads back')
    assert.ok((await collect(await backend.read('xo-vm-backups/vm/vdis/blocks/0/1', { start: 1_000_000, end: 1_065_536 }))).equals(stream.subarray(1_000_000, 1_065_537)), 'a range of it')
    assert.equal((await backend.stat('xo-vm-backups/vm/vdis/blocks/0/1')).size, stream.length)
    await backend.close()
  } finally {
    await dir.cleanup()
  }
})

test('a remote Lifeboat made encrypted and wrote reads in XO (outputFile\'s readFile, outputStream\'s createReadStream)', async () => {
  const dir = await tempDir()
  try {
    const backend = await lifeboat(dir.path, KEY)
    const small = marked(700)
    const big = marked(2_500_000)
    await backend.write('xo-vm-backups/vm/backup.json', small)
    await backend.write('xo-vm-backups/vm/vdis/blocks/0/1', chunks(big, 100_003), { length: big.length })
    await backend.close()
    for (const [name, bytes] of await tree(dir.path)) assert.equal(bytes.indexOf(MARKER), -1, `${name} holds plaintext`)
    const [synced, file, stream] = ok(await xo(dir.path, KEY, [{ op: 'sync' }, { op: 'readFile', path: 'xo-vm-backups/vm/backup.json' }, { op: 'readStream', path: 'xo-vm-backups/vm/vdis/blocks/0/1' }]))
    assert.deepEqual([synced?.encrypted, synced?.algorithm], [true, 'chacha20-poly1305'])
    assert.ok(Buffer.from(file!.data!, 'base64').equals(small), 'XO reads the small object')
    assert.ok(Buffer.from(stream!.data!, 'base64').equals(big), 'XO reads the streamed object')
  } finally {
    await dir.cleanup()
  }
})

test('an aes-256-gcm remote (made by XO\'s encryptor, as XO before 5.103 did) is read and written by both', async () => {
  const dir = await tempDir()
  try {
    const fromXo = marked(4000)
    ok(await xo(dir.path, KEY, [{ op: 'makeAesRemote' }, { op: 'sync' }, { op: 'writeFile', path: 'xo-vm-backups/a.json', data: fromXo.toString('base64') }]))
    const backend = await lifeboat(dir.path, KEY)
    assert.ok((await collect(await backend.read('xo-vm-backups/a.json'))).equals(fromXo), 'Lifeboat reads XO\'s aes-256-gcm object')
    const fromLifeboat = marked(6000)
    await backend.write('xo-vm-backups/b.json', chunks(fromLifeboat, 1000))
    await backend.close()
    const [synced, read] = ok(await xo(dir.path, KEY, [{ op: 'sync' }, { op: 'readFile', path: 'xo-vm-backups/b.json' }]))
    assert.equal(synced?.algorithm, 'aes-256-gcm')
    assert.ok(Buffer.from(read!.data!, 'base64').equals(fromLifeboat), 'XO reads Lifeboat\'s aes-256-gcm object')
    assert.equal((await readFile(join(dir.path, 'encryption.json'), 'utf8')), '{"algorithm":"aes-256-gcm"}')
  } finally {
    await dir.cleanup()
  }
})

test('a key that does not match: Lifeboat refuses XO\'s remote without changing a byte, XO refuses Lifeboat\'s', async () => {
  const dir = await tempDir()
  try {
    ok(await xo(dir.path, KEY, [{ op: 'sync' }, { op: 'writeFile', path: 'xo-vm-backups/a.json', data: marked(100).toString('base64') }]))
    const before = await tree(dir.path)
    await assert.rejects(lifeboat(dir.path, OTHER_KEY), { code: 'REMOTE_BAD_KEY' })
    await assert.rejects(lifeboat(dir.path, undefined), { code: 'REMOTE_ENCRYPTED' })
    assert.deepEqual(await tree(dir.path), before)
  } finally {
    await dir.cleanup()
  }
  const mine = await tempDir()
  try {
    const backend = await lifeboat(mine.path, KEY)
    await backend.write('xo-vm-backups/a.json', '{}')
    await backend.close()
    const [synced] = await xo(mine.path, OTHER_KEY, [{ op: 'sync' }])
    assert.equal(synced?.ok, false, 'XO refuses another key')
    assert.match(synced?.message ?? '', /unable to authenticate|not valid JSON/)
  } finally {
    await mine.cleanup()
  }
})
