// Lifeboat's own ext2/3/4 reader on images made by the real mkfs.ext2/3/4 (-d, no root), in the layouts that
// change how things are found: ext2 and ext3 block pointers, ext4 extents (trees of depth 2), 32 and 64-bit
// group descriptors, 128 and 256-byte inodes, 1 KiB blocks, meta_bg, inline data, htree folders (e2fsck -D),
// files past 4 GiB and sparse files. Every name, mode, owner, mtime, link target and byte is compared with the
// folder the image was made from.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { extWarning, openExt } from '../../source/engine/file-restore/ext.ts'
import { FileSystemBrowser } from '../../source/engine/file-restore/browse.ts'
import { ExtFileSystem } from '../../source/formats/ext/index.ts'
import { run, tempDir } from '../helpers/tools.ts'
import { FRAGMENTS, MANY, MiB, WIDE_ENTRIES, compareTree, extImage, fileReader, manyEntriesImage, requireE2fsprogs, sourceTree } from './ext-images.ts'

const EXTENTS_FL = 0x80000
const INLINE_DATA_FL = 0x10000000
const INDEX_FL = 0x1000

interface Layout {
  name: string
  kind: 'ext2' | 'ext3' | 'ext4'
  mkfs: string[]
  index?: boolean
  huge?: boolean
  /** What the image must be like, so that the layout is really the one meant. */
  expect: { blockSize: number; inodeSize: number; descriptorSize: number; extents: boolean; inline?: boolean; journal?: boolean }
}

const LAYOUTS: Layout[] = [
  { name: 'ext2 (block pointers, triple indirect for 5 GiB)', kind: 'ext2', mkfs: [], huge: true, expect: { blockSize: 4096, inodeSize: 256, descriptorSize: 32, extents: false } },
  { name: 'ext3, 1 KiB blocks, htree folders', kind: 'ext3', mkfs: ['-b', '1024'], index: true, expect: { blockSize: 1024, inodeSize: 256, descriptorSize: 32, extents: false, journal: true } },
  { name: 'ext4 -O 64bit (extents, metadata_csum), htree folders, 5 GiB sparse file', kind: 'ext4', mkfs: ['-O', '64bit'], index: true, huge: true, expect: { blockSize: 4096, inodeSize: 256, descriptorSize: 64, extents: true, journal: true } },
  { name: 'ext4 -O ^extent,^64bit (block pointers, 32-byte descriptors)', kind: 'ext4', mkfs: ['-O', '^extent,^64bit'], expect: { blockSize: 4096, inodeSize: 256, descriptorSize: 32, extents: false } },
  { name: 'ext4 -O inline_data', kind: 'ext4', mkfs: ['-O', 'inline_data'], index: true, expect: { blockSize: 4096, inodeSize: 256, descriptorSize: 64, extents: true, inline: true } },
  { name: 'ext4 -I 128', kind: 'ext4', mkfs: ['-I', '128'], expect: { blockSize: 4096, inodeSize: 128, descriptorSize: 64, extents: true } },
  { name: 'ext4 -b 1024 -O meta_bg,^resize_inode', kind: 'ext4', mkfs: ['-b', '1024', '-O', 'meta_bg,^resize_inode'], expect: { blockSize: 1024, inodeSize: 256, descriptorSize: 64, extents: true } },
]

for (const layout of LAYOUTS) {
  test(`ext reader, ${layout.name}: every file, folder and link as in the source folder`, { timeout: 600_000 }, async () => {
    requireE2fsprogs()
    const dir = await tempDir('lifeboat-ext-')
    try {
      const source = join(dir.path, 'source')
      await sourceTree(source, { huge: layout.huge })
      const image = join(dir.path, 'fs.img')
      await extImage(image, layout.kind, 96 * MiB, source, { mkfs: layout.mkfs, index: layout.index })
      const { reader, close } = await fileReader(image)
      try {
        const ext = await ExtFileSystem.open(reader)
        const sb = ext.superblock
        assert.deepEqual([sb.blockSize, sb.inodeSize, sb.descriptorSize, sb.inlineData], [layout.expect.blockSize, layout.expect.inodeSize, layout.expect.descriptorSize, layout.expect.inline === true], 'the layout is the one meant')
        const fragmented = (await ext.lookup('/fragmented.bin'))!
        assert.equal((fragmented.flags & EXTENTS_FL) !== 0, layout.expect.extents)
        if (layout.expect.extents) assert.equal(fragmented.block.readUInt16LE(6), 2, `${FRAGMENTS} extents make a tree of depth 2`)
        if (layout.index === true) assert.ok(((await ext.lookup('/wide'))!.flags & INDEX_FL) !== 0, `e2fsck -D made /wide (${WIDE_ENTRIES} entries) an htree`)
        if (layout.expect.inline === true) {
          for (const path of ['/sixty.bin', '/inline.bin', '/dir/empty', '/dir/sub/deeper']) assert.ok(((await ext.lookup(path))!.flags & INLINE_DATA_FL) !== 0, `${path} is inline`)
          assert.equal((await ext.lookup('/inline.bin'))!.inlineTail?.length, 100 - 60, 'past i_block, inline data lies in system.data')
        }
        if (layout.huge === true) assert.equal((await ext.lookup('/huge.bin'))!.size, 5 * 1024 * MiB)
        assert.equal(ext.needsRecovery, false)
        assert.equal(await extWarning(reader), undefined)

        const fs = await openExt(reader)
        const checked = await compareTree(fs, source)
        assert.ok(checked > WIDE_ENTRIES + 20, `${checked} entries compared`)
        assert.equal((await fs.stat('/dir/fifo')).type, 'other')
        await assert.rejects(fs.stat('/dir/nothing'), { code: 'FILE_RESTORE_NOT_FOUND' })
        await assert.rejects(fs.stat('/tiny.txt/x'), { code: 'FILE_RESTORE_NOT_FOUND' })
      } finally {
        await close()
      }
    } finally {
      await dir.cleanup()
    }
  })
}

test('ext reader: a journal that needs recovery is said, and the file system read as it lies (no replay)', async () => {
  requireE2fsprogs()
  const dir = await tempDir('lifeboat-ext-')
  try {
    const source = join(dir.path, 'source')
    await sourceTree(source)
    const image = join(dir.path, 'fs.img')
    await extImage(image, 'ext4', 96 * MiB, source)
    await run('debugfs', ['-w', '-R', 'feature needs_recovery', image])
    const { reader, close } = await fileReader(image)
    try {
      const ext = await ExtFileSystem.open(reader)
      assert.equal(ext.needsRecovery, true)
      assert.match((await extWarning(reader))!, /^its journal holds changes not yet written in place .* they are not replayed/)
      const browser = new FileSystemBrowser(await openExt(reader))
      const page = await browser.list('/wide', { limit: 10 })
      assert.equal(page.total, WIDE_ENTRIES)
    } finally {
      await close()
    }
  } finally {
    await dir.cleanup()
  }
})

test('ext reader: a folder of 100 000 entries (an htree), its first page after one pass over the folder, every page in order', { timeout: 300_000 }, async () => {
  requireE2fsprogs()
  const dir = await tempDir('lifeboat-ext-')
  try {
    const image = join(dir.path, 'many.img')
    const data = randomBytes(2 * MiB + 5)
    await manyEntriesImage(image, dir.path, data)
    const { reader: file, close } = await fileReader(image)
    let bytesRead = 0
    const reader = { size: file.size, read: (offset: number, length: number) => ((bytesRead += length), file.read(offset, length)) }
    try {
      const ext = await ExtFileSystem.open(reader)
      const folder = (await ext.lookup('/many'))!
      assert.ok((folder.flags & INDEX_FL) !== 0, 'the kernel made /many an htree')
      const browser = new FileSystemBrowser(await openExt(reader))
      bytesRead = 0
      const first = await browser.list('/many', { limit: 200 })
      // One pass: the folder's blocks once, then an inode (and its table's descriptor) per entry of the page.
      assert.ok(bytesRead < folder.size + 200 * 2 * 4096, `${bytesRead} bytes read for a folder of ${folder.size}`)
      assert.equal(first.total, MANY + 1)
      assert.deepEqual(first.entries.slice(0, 3).map(e => [e.name, e.type, e.size]), [['data.bin', 'file', data.length], ['f000000', 'file', 0], ['f000001', 'file', 0]])
      const names = first.entries.map(e => e.name)
      for (let after = first.next; after !== undefined; ) {
        const page = await browser.list('/many', { limit: 5000, after })
        names.push(...page.entries.map(e => e.name))
        after = page.next
      }
      assert.deepEqual(names, ['data.bin', ...Array.from({ length: MANY }, (_, k) => `f${String(k).padStart(6, '0')}`)])
      const chunks: Buffer[] = []
      for await (const chunk of browser.fs.createReadStream('/many/data.bin')) chunks.push(chunk as Buffer)
      assert.ok(Buffer.concat(chunks).equals(data), 'a file in the big folder reads as written')
    } finally {
      await close()
    }
  } finally {
    await dir.cleanup()
  }
})
