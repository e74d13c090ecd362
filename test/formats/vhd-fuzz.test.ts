// Thousands of mutated and truncated VHDs through the stream parser and the file reader: each must end in
// success or a coded LifeboatError, quickly and without large allocations.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { randomUUID } from 'node:crypto'
import { buffer as streamToBuffer } from 'node:stream/consumers'
import { VhdFile, createVhdStream, openVhdStream, type FileSystemAccess } from '../../source/formats/vhd/index.ts'
import { batSize, encodeFooter, encodeHeader, newFooterAndHeader, vhdChecksum } from '../../source/formats/vhd/structures.ts'
import { LifeboatError } from '../../source/util/errors.ts'
import { patternBlock } from './fixtures/vhd/disks.ts'

/** A valid dynamic VHD with small (4 KiB) blocks, so that each mutated input is tiny. */
function smallBlockVhd(parent: boolean): Buffer {
  const blockSize = 4096
  const size = 16 * blockSize
  const { footer, header } = newFooterAndHeader({ size, uuid: randomUUID(), blockSize, parent: parent ? { uuid: randomUUID(), unicodeName: 'parent.vhd' } : undefined })
  const allocated = [0, 3, 4, 9, 15]
  const firstBlock = header.tableOffset + batSize(header.maxTableEntries)
  const bat = Buffer.alloc(batSize(header.maxTableEntries), 0xff)
  const blocks = allocated.map((index, k) => {
    bat.writeUInt32BE(firstBlock / 512 + k * 9, index * 4)
    const block = Buffer.alloc(512 + blockSize, index + 1)
    block.fill(k % 2 === 0 ? 0xff : 0x5a, 0, 512)
    return block
  })
  const footerBytes = encodeFooter(footer)
  return Buffer.concat([footerBytes, encodeHeader(header), bat, ...blocks, footerBytes])
}

async function bigBlockVhd(): Promise<Buffer> {
  async function* blocks() {
    yield { index: 1, data: patternBlock(1, 1) }
  }
  return streamToBuffer(createVhdStream({ size: 5 * 1024 * 1024, uuid: randomUUID(), blockIndexes: [1], blocks: blocks() }).stream)
}

function random(seed: number) {
  let x = seed | 1
  return (max: number) => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    return (x >>> 0) % max
  }
}

const INTERESTING = [0, 1, 0x1ff, 0x200, 0x600, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 4096, 2 ** 21, 2 ** 25]

/** Flips bytes, writes odd 32-bit values into the structures, truncates; half the time fixes the checksums so checks behind them run. */
function mutate(seed: Buffer, rng: (max: number) => number): Buffer {
  let out = Buffer.from(seed)
  const structureEnd = Math.min(out.length, 4096)
  for (let n = 1 + rng(4); n > 0; n--) {
    const kind = rng(3)
    if (kind === 0) out[rng(out.length)] ^= 1 << rng(8)
    else if (kind === 1) {
      const at = rng(structureEnd - 4) & ~3
      out.writeUInt32BE(INTERESTING[rng(INTERESTING.length)]!, at)
    } else out[rng(structureEnd)] = rng(256)
  }
  if (rng(2) === 0) {
    out.writeUInt32BE(vhdChecksum(out.subarray(0, 512), 64), 64)
    out.writeUInt32BE(vhdChecksum(out.subarray(512, 1536), 36), 512 + 36)
    out.subarray(0, 512).copy(out, out.length - 512)
  }
  if (rng(4) === 0) out = out.subarray(0, rng(out.length))
  return out
}

function memoryFileSystem(files: Map<string, Buffer>): FileSystemAccess {
  const get = (path: string) => {
    const data = files.get(path)
    if (data === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' })
    return data
  }
  return {
    async open(path) {
      const data = get(path)
      return {
        read: async (buffer, position) => (position >= data.length ? 0 : data.copy(buffer, 0, position, Math.min(data.length, position + buffer.length))),
        write: async () => { throw new Error('read-only') },
        size: async () => data.length,
        truncate: async () => { throw new Error('read-only') },
        close: async () => {},
      }
    },
    readFile: async path => get(path),
    writeFile: async () => { throw new Error('read-only') },
    rename: async () => { throw new Error('read-only') },
    unlink: async () => { throw new Error('read-only') },
    exists: async path => files.has(path),
  }
}

async function parseAsStream(input: Buffer, chunkSize: number): Promise<void> {
  const chunks: Buffer[] = []
  for (let at = 0; at < input.length; at += chunkSize) chunks.push(input.subarray(at, at + chunkSize))
  const reader = await openVhdStream(Readable.from(chunks))
  for await (const block of reader.blocks()) assert.equal(block.data.length, reader.header.blockSize)
}

async function readAsFile(input: Buffer): Promise<void> {
  const file = await VhdFile.open('/fuzz/disk.vhd', { fs: memoryFileSystem(new Map([['/fuzz/disk.vhd', input]])) })
  try {
    for (const index of file.allocatedBlocks()) await file.readBlock(index)
  } finally {
    await file.close()
  }
}

test('mutated and truncated VHDs end in success or a coded error, quickly, through both readers', async () => {
  const seeds = [smallBlockVhd(false), smallBlockVhd(true), await bigBlockVhd()]
  const outcomes = new Map<string, number>()
  const rssBefore = process.memoryUsage().rss
  let slowest = 0
  const inputs = 4000
  for (let i = 0; i < inputs; i++) {
    const rng = random(0x9e3779b9 ^ (i * 2654435761))
    const seed = seeds[i % 40 === 0 ? 2 : i % 2]!
    const input = mutate(seed, rng)
    for (const reader of [() => parseAsStream(input, 1 + rng(3000)), () => readAsFile(input)]) {
      const started = performance.now()
      let outcome = 'ok'
      try {
        await reader()
      } catch (error) {
        if (!(error instanceof LifeboatError)) throw new Error(`input ${i} escaped with a non-Lifeboat error: ${String(error)}`, { cause: error })
        outcome = error.code
      }
      const elapsed = performance.now() - started
      slowest = Math.max(slowest, elapsed)
      assert.ok(elapsed < 2000, `input ${i} took ${elapsed.toFixed(0)} ms`)
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
    }
  }
  const rssGrowth = process.memoryUsage().rss - rssBefore
  assert.ok(rssGrowth < 512 * 1024 * 1024, `memory grew by ${rssGrowth} bytes`)
  // The mutations must reach past the checksums: several distinct checks fire, and some inputs still parse.
  assert.ok((outcomes.get('ok') ?? 0) > 0, 'no input parsed')
  for (const code of ['VHD_BAD_COOKIE', 'VHD_BAD_FOOTER_CHECKSUM', 'VHD_TRUNCATED', 'VHD_BAD_BLOCK_OFFSET', 'VHD_BAD_TABLE']) {
    assert.ok((outcomes.get(code) ?? 0) > 0, `no input triggered ${code}: ${JSON.stringify([...outcomes])}`)
  }
  console.log(`fuzz outcomes ${JSON.stringify(Object.fromEntries(outcomes))}, slowest ${slowest.toFixed(1)} ms`)
})
