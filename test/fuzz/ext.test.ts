// Mutated ext2/3/4 images through Lifeboat's ext reader, as file-level restore drives it (the cached block reader,
// every folder listed, every entry stat'ed, every file read): superblocks, group descriptors, inodes, extent
// nodes, block pointers and folder blocks changed at random must end in a result or a coded error, never a crash,
// a hang or an allocation the size of a mutated number.
import { test } from 'node:test'
import { mkdir, open, readFile, symlink, utimes, writeFile } from 'node:fs/promises'
import { join, posix } from 'node:path'
import fc from 'fast-check'
import { cachedBlockReader } from '../../source/formats/disk/index.ts'
import { openExt } from '../../source/engine/file-restore/ext.ts'
import { run, tempDir } from '../helpers/tools.ts'
import { requireE2fsprogs } from '../formats/ext-images.ts'
import { assertReached, fuzz } from './harness.ts'

const KiB = 1024
const IMAGE_BYTES = 2 * 1024 * KiB
/** File data is this byte, so that the blocks holding anything else are the metadata the mutations aim at. */
const DATA = 0xa5
const FILE_READ_LIMIT = 4 * 1024 * KiB
const ENTRY_BUDGET = 5000

/** Small images with 1 KiB blocks: extents (a tree of depth 1), ext2 block pointers (double indirect), inline data. */
async function seedImages(): Promise<Buffer[]> {
  requireE2fsprogs()
  const dir = await tempDir('lifeboat-fuzz-ext-')
  try {
    const source = join(dir.path, 'source')
    await mkdir(join(source, 'dir', 'sub'), { recursive: true })
    await writeFile(join(source, 'small.bin'), Buffer.alloc(40, DATA))
    await writeFile(join(source, 'medium.bin'), Buffer.alloc(5000, DATA))
    await writeFile(join(source, 'dir', 'indirect.bin'), Buffer.alloc(300 * KiB, DATA))
    const fragmented = await open(join(source, 'fragmented.bin'), 'w')
    for (let k = 0; k < 120; k++) await fragmented.write(Buffer.alloc(KiB, DATA), 0, KiB, k * 2 * KiB)
    await fragmented.close()
    for (let k = 0; k < 40; k++) await writeFile(join(source, 'dir', `entry-${k}`), '')
    await symlink('../small.bin', join(source, 'dir', 'fast'))
    await symlink('s'.repeat(300), join(source, 'dir', 'slow'))
    for (const path of ['small.bin', 'medium.bin', 'dir', 'dir/sub', 'fragmented.bin']) await utimes(join(source, path), 1_800_000_000, 1_800_000_000)
    const images: Buffer[] = []
    for (const [kind, options] of [['ext4', []], ['ext2', []], ['ext4', ['-O', 'inline_data']]] as const) {
      const image = join(dir.path, `${kind}-${images.length}.img`)
      const handle = await open(image, 'w')
      await handle.truncate(IMAGE_BYTES)
      await handle.close()
      // Fixed uuid, hash seed and time: the same fuzz seed gives the same inputs.
      await run('env', ['E2FSPROGS_FAKE_TIME=1800000000', `mkfs.${kind}`, '-q', '-F', '-b', '1024', '-N', '128', '-U', '6c1e7f0a-1b2c-4d3e-8f90-a1b2c3d4e5f6',
        '-E', 'root_owner=0:0,hash_seed=0f9e8d7c-6b5a-4433-8211-00ffeeddccbb', ...options, '-d', source, image])
      images.push(await readFile(image))
    }
    return images
  } finally {
    await dir.cleanup()
  }
}

/** The 1 KiB blocks of an image that hold metadata: neither zeros nor file data. */
function metadataBlocks(image: Buffer): number[] {
  const out: number[] = []
  for (let block = 0; block * KiB < image.length; block++) {
    const bytes = image.subarray(block * KiB, (block + 1) * KiB)
    if (bytes.some(b => b !== 0) && bytes.some(b => b !== DATA)) out.push(block)
  }
  return out
}

const INTERESTING = [0, 1, 2, 3, 4, 11, 12, 0x7f, 0x80, 0xff, 0xf30a, 0xef53, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 1024, 4096, 60]

type Mutation = { kind: 'flip'; block: number; at: number; bit: number } | { kind: 'word'; block: number; at: number; value: number } | { kind: 'half'; block: number; at: number; value: number }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), block: fc.nat(), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('word' as const), block: fc.nat(), at: fc.nat(), value: fc.constantFrom(...INTERESTING) }),
  fc.record({ kind: fc.constant('half' as const), block: fc.nat(), at: fc.nat(), value: fc.integer({ min: 0, max: 0xffff }) }),
)

interface ExtInput { seed: number; mutations: Mutation[] }

const extInput: fc.Arbitrary<ExtInput> = fc.record({ seed: fc.nat(2), mutations: fc.array(mutation, { minLength: 1, maxLength: 4 }) })

function mutate(seed: Buffer, blocks: number[], input: ExtInput): Buffer {
  const out = Buffer.from(seed)
  for (const m of input.mutations) {
    const base = blocks[m.block % blocks.length]! * KiB
    if (m.kind === 'flip') out[base + (m.at % KiB)]! ^= 1 << m.bit
    else if (m.kind === 'word') out.writeUInt32LE(m.value >>> 0, base + ((m.at % (KiB - 4)) & ~3))
    else out.writeUInt16LE(m.value, base + ((m.at % (KiB - 2)) & ~1))
  }
  return out
}

/** Everything file-level restore would do with the image: open, list every folder, stat every entry, read every file. */
async function browseAll(image: Buffer): Promise<void> {
  const blockSize = 64 * KiB
  const reader = cachedBlockReader({ size: image.length, blockSize, isAllocated: () => true, readBlock: async index => Buffer.from(image.subarray(index * blockSize, (index + 1) * blockSize)) })
  const fs = await openExt(reader)
  let budget = ENTRY_BUDGET
  const walk = async (dir: string): Promise<void> => {
    for (const name of await fs.names(dir)) {
      if (--budget < 0) return
      const path = posix.join(dir, name)
      const entry = await fs.stat(path)
      if (entry.type === 'directory') await walk(path)
      if (entry.type === 'file') {
        let read = 0
        for await (const chunk of fs.createReadStream(path)) {
          read += (chunk as Buffer).length
          if (read >= FILE_READ_LIMIT) break
        }
      }
    }
  }
  await walk('/')
}

const seeds = seedImages()

test('the ext fuzz seeds read cleanly', async () => {
  for (const seed of await seeds) await browseAll(seed)
})

test('fuzz: mutated ext2/3/4 metadata through the ext reader', async () => {
  const all = await seeds
  const blocks = all.map(metadataBlocks)
  const outcomes = await fuzz('ext', extInput, input => browseAll(mutate(all[input.seed]!, blocks[input.seed]!, input)), 2000)
  assertReached(outcomes, ['ok', 'EXT_BAD_SUPERBLOCK', 'EXT_BAD_INODE', 'EXT_BAD_EXTENTS', 'EXT_BAD_DIRECTORY'])
})
