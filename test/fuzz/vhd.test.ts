// Mutated and truncated VHDs through both readers (the stream parser an export feeds, the file reader a remote's
// chains use): every input ends in a result or a coded error, within the harness's bounds.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { buffer as streamToBuffer } from 'node:stream/consumers'
import fc from 'fast-check'
import { VhdFile, createVhdStream, openVhdStream, type FileSystemAccess } from '../../source/formats/vhd/index.ts'
import { batSize, encodeFooter, encodeHeader, newFooterAndHeader, vhdChecksum } from '../../source/formats/vhd/structures.ts'
import { patternBlock } from '../formats/fixtures/vhd/disks.ts'
import { assertReached, fuzz } from './harness.ts'

// Fixed uuids and timestamps: the same seed must give the same inputs.
const UUID = '6c1e7f0a-1b2c-4d3e-8f90-a1b2c3d4e5f6'
const PARENT_UUID = '0f9e8d7c-6b5a-4433-8211-00ffeeddccbb'

/** A valid dynamic VHD with small (4 KiB) blocks, so that each mutated input is tiny. */
function smallBlockVhd(parent: boolean): Buffer {
  const blockSize = 4096
  const size = 16 * blockSize
  const { footer, header } = newFooterAndHeader({ size, uuid: UUID, blockSize, timestamp: 0,
    parent: parent ? { uuid: PARENT_UUID, unicodeName: 'parent.vhd', timestamp: 0 } : undefined })
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

/** A VHD with XAPI's 2 MiB blocks, as exports are. */
async function bigBlockVhd(): Promise<Buffer> {
  async function* blocks() {
    yield { index: 1, data: patternBlock(1, 1) }
  }
  return streamToBuffer(createVhdStream({ size: 5 * 1024 * 1024, uuid: UUID, timestamp: 0, blockIndexes: [1], blocks: blocks() }).stream)
}

const INTERESTING = [0, 1, 0x1ff, 0x200, 0x600, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 4096, 2 ** 21, 2 ** 25]
const STRUCTURES_END = 4096

type Mutation = { kind: 'flip'; at: number; bit: number } | { kind: 'word'; at: number; value: number } | { kind: 'byte'; at: number; value: number }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('word' as const), at: fc.nat(), value: fc.constantFrom(...INTERESTING) }),
  fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
)

interface VhdInput { seed: number; mutations: Mutation[]; fixChecksums: boolean; truncateAt: number | null; chunkSize: number }

const vhdInput: fc.Arbitrary<VhdInput> = fc.record({
  // Mostly the small seeds (fast); the 2 MiB-block one now and then.
  seed: fc.oneof({ weight: 39, arbitrary: fc.constantFrom(0, 1) }, { weight: 1, arbitrary: fc.constant(2) }),
  mutations: fc.array(mutation, { minLength: 1, maxLength: 4 }),
  // Half the time the checksums are fixed up, so that the checks behind them run.
  fixChecksums: fc.boolean(),
  truncateAt: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat() }),
  chunkSize: fc.integer({ min: 1, max: 3000 }),
})

/** Flips bits anywhere, writes odd 32-bit values and bytes into the structures, maybe fixes checksums, maybe truncates. */
function mutate(seed: Buffer, input: VhdInput): Buffer {
  let out = Buffer.from(seed)
  const structureEnd = Math.min(out.length, STRUCTURES_END)
  for (const m of input.mutations) {
    if (m.kind === 'flip') out[m.at % out.length]! ^= 1 << m.bit
    else if (m.kind === 'word') out.writeUInt32BE(m.value, (m.at % (structureEnd - 4)) & ~3)
    else out[m.at % structureEnd] = m.value
  }
  if (input.fixChecksums) {
    out.writeUInt32BE(vhdChecksum(out.subarray(0, 512), 64), 64)
    out.writeUInt32BE(vhdChecksum(out.subarray(512, 1536), 36), 512 + 36)
    out.subarray(0, 512).copy(out, out.length - 512)
  }
  if (input.truncateAt !== null) out = out.subarray(0, input.truncateAt % out.length)
  return out
}

function memoryFileSystem(files: Map<string, Buffer>): FileSystemAccess {
  const get = (path: string) => {
    const data = files.get(path)
    if (data === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' })
    return data
  }
  const readOnly = async () => { throw new Error('read-only') }
  return {
    async open(path) {
      const data = get(path)
      return {
        read: async (buffer, position) => (position >= data.length ? 0 : data.copy(buffer, 0, position, Math.min(data.length, position + buffer.length))),
        write: readOnly,
        size: async () => data.length,
        truncate: readOnly,
        close: async () => {},
      }
    },
    readFile: async path => get(path),
    writeFile: readOnly,
    rename: readOnly,
    unlink: readOnly,
    exists: async path => files.has(path),
  }
}

async function parseAsStream(input: Buffer, requestedChunkSize: number): Promise<void> {
  // At most a few thousand chunks: a 5 MiB input byte by byte would test the event loop, not the parser.
  const chunkSize = Math.max(requestedChunkSize, Math.ceil(input.length / 4000))
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

const seeds = Promise.all([smallBlockVhd(false), smallBlockVhd(true), bigBlockVhd()])

test('the fuzz seeds themselves read cleanly through both readers', async () => {
  for (const seed of await seeds) {
    await parseAsStream(seed, 1000)
    await readAsFile(seed)
  }
})

// The mutations must reach past the checksums: several distinct checks fire, and some inputs still parse.
const REACHED = ['ok', 'VHD_BAD_COOKIE', 'VHD_BAD_FOOTER_CHECKSUM', 'VHD_TRUNCATED']

test('fuzz: mutated and truncated VHDs through the stream parser', async () => {
  const all = await seeds
  const outcomes = await fuzz('vhd stream', vhdInput, input => parseAsStream(mutate(all[input.seed]!, input), input.chunkSize), 2500)
  assertReached(outcomes, [...REACHED, 'VHD_BAD_TABLE'])
})

test('fuzz: mutated and truncated VHDs through the file reader', async () => {
  const all = await seeds
  const outcomes = await fuzz('vhd file', vhdInput, input => readAsFile(mutate(all[input.seed]!, input)), 2500)
  assertReached(outcomes, [...REACHED, 'VHD_BAD_BLOCK_OFFSET'])
})
