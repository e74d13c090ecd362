import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { xxh64Hex } from '../../source/formats/xxhash.ts'
import { requireTool, run } from '../helpers/tools.ts'

test('XXH64 seed 0 matches the published vectors, as 16 upper-case hex digits', async () => {
  // From the xxHash project and its Python binding's test suite.
  assert.equal(await xxh64Hex(new Uint8Array()), 'EF46DB3751D8E999')
  assert.equal(await xxh64Hex(Buffer.from('a')), 'D24EC4F1A98C6E5B')
  assert.equal(await xxh64Hex(Buffer.from('abc')), '44BC2CF5AD770999')
})

test('XXH64 agrees with the content checksum the zstd program stores (its low 32 bits)', async () => {
  requireTool('zstd', 'zstd')
  for (const length of [0, 1, 31, 32, 33, 1000, 65537, 1024 * 1024]) {
    const data = randomBytes(length)
    const { stdout } = await run('zstd', ['-c', '-q', '--check'], { input: data })
    const stored = stdout.readUInt32LE(stdout.length - 4)
    const ours = await xxh64Hex(data)
    assert.match(ours, /^[0-9A-F]{16}$/)
    assert.equal(parseInt(ours.slice(8), 16), stored, `length ${length}`)
  }
})

test('XXH64 keeps leading zeros (XAPI prints %016LX)', async () => {
  let found = 0
  for (let i = 0; found < 3 && i < 2000; i++) {
    const hex = await xxh64Hex(Buffer.from(`lifeboat-${i}`))
    assert.equal(hex.length, 16)
    if (hex.startsWith('0')) found++
  }
  assert.equal(found, 3)
})
