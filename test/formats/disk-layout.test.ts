// The disk layout readers on images built here: MBR with logical partitions, GPT, no table; the bounded block
// cache; LVM text metadata; and ext4 read in user space through the browser (test/formats/ext.test.ts has the rest).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cachedBlockReader, parseLvmText, readPartitionTable, sliceReader, probeContent, volumeGroupOf, type DiskReader } from '../../source/formats/disk/index.ts'
import { openExt } from '../../source/engine/file-restore/ext.ts'
import { FileSystemBrowser } from '../../source/engine/file-restore/browse.ts'
import { requireTool, run, tempDir } from '../helpers/tools.ts'

const MiB = 1024 * 1024

async function fileReader(path: string): Promise<{ reader: DiskReader; close: () => Promise<void> }> {
  const handle = await open(path, 'r')
  const size = (await handle.stat()).size
  return {
    reader: { size, async read(offset, length) { const buffer = Buffer.alloc(length); await handle.read(buffer, 0, length, offset); return buffer } },
    close: () => handle.close(),
  }
}

test('MBR: primary, extended and logical partitions numbered as Linux does; GPT; a disk without a table', async () => {
  requireTool('sfdisk', 'fdisk')
  const dir = await tempDir()
  try {
    const mbr = join(dir.path, 'mbr.img')
    await run('truncate', ['-s', '64M', mbr])
    await run('sfdisk', ['-q', mbr], { input: Buffer.from('label: dos\nstart=2048, size=8192, type=83\nstart=10240, size=100000, type=5\nstart=12288, size=8192, type=8e\nstart=22528, size=8192, type=82\n') })
    const { reader, close } = await fileReader(mbr)
    const table = await readPartitionTable(reader)
    await close()
    assert.equal(table.scheme, 'mbr')
    assert.deepEqual(table.partitions.map(p => [p.number, p.offset / 512, p.size / 512, p.kind]), [[1, 2048, 8192, 'Linux'], [5, 12288, 8192, 'LVM'], [6, 22528, 8192, 'Linux swap']])

    const gpt = join(dir.path, 'gpt.img')
    await run('truncate', ['-s', '64M', gpt])
    await run('sfdisk', ['-q', gpt], { input: Buffer.from('label: gpt\nstart=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"\nstart=10240, size=20480, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\n') })
    const g = await fileReader(gpt)
    const gptTable = await readPartitionTable(g.reader)
    await g.close()
    assert.deepEqual(gptTable.partitions.map(p => [p.number, p.offset / 512, p.size / 512, p.kind, p.name ?? '']), [[1, 2048, 8192, 'EFI system', 'EFI'], [2, 10240, 20480, 'LVM', '']])

    const bare = join(dir.path, 'bare.img')
    await run('truncate', ['-s', '16M', bare])
    await run('mkfs.ext4', ['-q', '-F', bare])
    const b = await fileReader(bare)
    assert.deepEqual(await readPartitionTable(b.reader), { scheme: 'none', partitions: [] })
    assert.equal(await probeContent(b.reader), 'ext')
    await b.close()
  } finally {
    await dir.cleanup()
  }
})

test('the block cache reads each block once while it is held, and holds no more than its limit', async () => {
  const blockSize = 4096
  const reads: number[] = []
  const source = {
    size: 64 * blockSize, blockSize,
    isAllocated: (index: number) => index !== 7,
    async readBlock(index: number) { reads.push(index); return Buffer.alloc(blockSize, index) },
  }
  const reader = cachedBlockReader(source, { cacheBlocks: 2 })
  assert.deepEqual([...(await reader.read(blockSize - 2, 4))], [0, 0, 1, 1])
  await reader.read(10, 100)
  await reader.read(blockSize + 5, 1)
  assert.deepEqual(reads, [0, 1], 'blocks 0 and 1 are read once')
  await reader.read(2 * blockSize, 1)
  await reader.read(0, 1)
  assert.deepEqual(reads, [0, 1, 2, 0], 'block 0 was evicted (limit 2), block 1 is still held')
  assert.deepEqual([...(await reader.read(7 * blockSize, 3))], [0, 0, 0], 'an unallocated block reads as zeros without a read')
  assert.equal(reads.length, 4)
  await assert.rejects(reader.read(63 * blockSize, blockSize + 1), { code: 'DISK_BAD_RANGE' })
  assert.throws(() => sliceReader(reader, 60 * blockSize, 5 * blockSize), { code: 'DISK_BAD_RANGE' })
})

test('LVM text metadata: comments, escapes, lists; hidden volumes left out; a thin volume named and refused', () => {
  const text = `# comment\nvg1 {\n id = "x"\n extent_size = 8192 # 4 MiB\n physical_volumes { pv0 { id = "aaaa-bb" pe_start = 2048 } }\n logical_volumes {\n` +
    ` root { status = ["READ", "VISIBLE"] segment_count = 1 segment1 { start_extent = 0 extent_count = 2 type = "striped" stripe_count = 1 stripes = ["pv0", 3] } }\n` +
    ` pool { status = ["READ"] segment_count = 1 segment1 { start_extent = 0 extent_count = 1 type = "thin-pool" } }\n` +
    ` thin { status = ["VISIBLE"] segment_count = 1 segment1 { start_extent = 0 extent_count = 1 type = "thin" } }\n }\n description = "a \\"quoted\\" word"\n}\n`
  assert.equal((parseLvmText(text).vg1 as Record<string, unknown>).description, 'a "quoted" word')
  const vg = volumeGroupOf(text)
  assert.equal(vg.extentSize, 4 * MiB)
  assert.deepEqual(vg.lvs.map(lv => [lv.name, lv.size, lv.unsupported ?? '']), [['root', 8 * MiB, ''], ['thin', 0, 'its segment 1 is of type "thin" (only linear and striped volumes are read)']])
  assert.deepEqual(vg.pvs.get('pv0'), { uuid: 'aaaabb', peStart: MiB })
  assert.throws(() => parseLvmText('vg { a = '), { code: 'LVM_BAD_METADATA' })
})

test('ext4 read in user space (no root): pages, a symbolic link, binary bytes as written', async () => {
  const dir = await tempDir()
  try {
    const root = join(dir.path, 'root')
    await mkdir(join(root, 'd'), { recursive: true })
    const blob = randomBytes(300_000)
    await writeFile(join(root, 'd', 'blob.bin'), blob)
    for (let k = 0; k < 30; k++) await writeFile(join(root, 'd', `f${String(k).padStart(2, '0')}`), String(k))
    await run('ln', ['-s', 'blob.bin', join(root, 'd', 'link')])
    const image = join(dir.path, 'fs.img')
    await run('truncate', ['-s', '16M', image])
    await run('mkfs.ext4', ['-q', '-F', '-d', root, image])
    const { reader, close } = await fileReader(image)
    const browser = new FileSystemBrowser(await openExt(reader))
    try {
      const first = await browser.list('/d', { limit: 20 })
      assert.equal(first.total, 32)
      assert.equal(first.entries.length, 20)
      const second = await browser.list('/d', { limit: 20, after: first.next! })
      assert.deepEqual(second.entries.map(e => e.name), ['f19', ...Array.from({ length: 10 }, (_, k) => `f${20 + k}`), 'link'].slice(0, 12))
      assert.equal(second.next, undefined)
      assert.deepEqual((await browser.stat('/d/link')).target, 'blob.bin')
      await assert.rejects(browser.list('/d/link/x'), { code: 'FILE_RESTORE_BAD_PATH' })
      const hash = createHash('sha256')
      for await (const chunk of browser.fs.createReadStream('/d/blob.bin')) hash.update(chunk as Buffer)
      assert.equal(hash.digest('hex'), createHash('sha256').update(blob).digest('hex'))
    } finally {
      await browser.fs.close()
      await close()
    }
  } finally {
    await dir.cleanup()
  }
})
