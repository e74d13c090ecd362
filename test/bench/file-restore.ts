// The first page of a folder of 100 000 entries (an htree made by the kernel): Lifeboat's own ext reader against
// the ext2fs package (libext2fs in wasm, what file-level restore used before) and against `ls` of the same folder
// mounted on the host, as ratios. Both readers go through the cached block reader over the image (2 MiB blocks,
// as a VHD chain gives them). Needs root (the folder is made, and `ls` run, through a loop mount).
// Run: node --import tsx test/bench/file-restore.ts [--skip-ext2fs]
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, open } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import ext2fs from 'ext2fs'
import { Disk, type ReadResult, type WriteResult } from 'file-disk'
import { cachedBlockReader, type DiskReader } from '../../source/formats/disk/index.ts'
import { openExt } from '../../source/engine/file-restore/ext.ts'
import { FileSystemBrowser } from '../../source/engine/file-restore/browse.ts'
import { byteOrder, entryType, type BrowsableFileSystem } from '../../source/engine/file-restore/filesystem.ts'
import { MANY, manyEntriesImage } from '../formats/ext-images.ts'
import { tempDir } from '../helpers/tools.ts'

const PAGE = 200
const BLOCK = 2 * 1024 * 1024
const { values } = parseArgs({ options: { 'skip-ext2fs': { type: 'boolean', default: false } } })

async function imageReader(path: string): Promise<{ reader: DiskReader; close: () => Promise<void> }> {
  const handle = await open(path, 'r')
  const size = (await handle.stat()).size
  const source = {
    size, blockSize: BLOCK, isAllocated: () => true,
    async readBlock(index: number) {
      const block = Buffer.alloc(BLOCK)
      await handle.read(block, 0, Math.min(BLOCK, size - index * BLOCK), index * BLOCK)
      return block
    },
  }
  return { reader: cachedBlockReader(source), close: () => handle.close() }
}

/** The old path: ext2fs over file-disk over the same reader (as source/engine/file-restore/ext.ts was). */
class ReaderDisk extends Disk {
  constructor(private readonly reader: DiskReader) {
    super(true, true, false, false)
  }

  protected async _getCapacity(): Promise<number> {
    return this.reader.size
  }

  protected async _read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<ReadResult> {
    const count = Math.max(0, Math.min(length, this.reader.size - fileOffset))
    if (count > 0) (await this.reader.read(fileOffset, count)).copy(buffer, bufferOffset)
    return { bytesRead: count, buffer }
  }

  protected async _write(): Promise<WriteResult> {
    throw new Error('read-only')
  }

  protected async _flush(): Promise<void> {}
}

async function openExt2fs(reader: DiskReader): Promise<BrowsableFileSystem> {
  const fs = await ext2fs.mount(new ReaderDisk(reader))
  return {
    kind: 'ext',
    names: async dir => (await fs.promises.readdir(dir)).filter(name => name !== '.' && name !== '..').sort(byteOrder),
    async stat(path) {
      const stats = await fs.promises.lstat(path)
      return { name: path.slice(path.lastIndexOf('/') + 1), type: entryType(stats.mode), size: stats.size, mtime: stats.mtime.getTime(), mode: stats.mode & 0o7777, uid: stats.uid, gid: stats.gid }
    },
    createReadStream: path => fs.createReadStream(path),
    close: () => ext2fs.umount(fs),
  }
}

/** Seconds from opening the file system to the first page of /many. */
async function firstPage(image: string, openFs: (reader: DiskReader) => Promise<BrowsableFileSystem>): Promise<number> {
  const { reader, close } = await imageReader(image)
  try {
    const start = process.hrtime.bigint()
    const fs = await openFs(reader)
    const page = await new FileSystemBrowser(fs).list('/many', { limit: PAGE })
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    if (page.total !== MANY + 1 || page.entries.length !== PAGE) throw new Error(`the first page holds ${page.entries.length} of ${page.total} entries`)
    await fs.close()
    return seconds
  } finally {
    await close()
  }
}

function lsSeconds(image: string, mountPoint: string): number {
  execFileSync('mount', ['-o', 'loop,ro,noload', image, mountPoint])
  try {
    const start = process.hrtime.bigint()
    const names = execFileSync('ls', [join(mountPoint, 'many')], { maxBuffer: 64 * 1024 * 1024 }).toString().split('\n').filter(Boolean).length
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    if (names !== MANY + 1) throw new Error(`ls listed ${names} names`)
    return seconds
  } finally {
    execFileSync('umount', [mountPoint])
  }
}

async function main(): Promise<void> {
  const dir = await tempDir('lifeboat-bench-file-restore-')
  try {
    const image = join(dir.path, 'many.img')
    await manyEntriesImage(image, dir.path, randomBytes(4096))
    const mountPoint = join(dir.path, 'mnt')
    await mkdir(mountPoint)
    const ours = await firstPage(image, openExt)
    const ls = lsSeconds(image, mountPoint)
    const old = values['skip-ext2fs'] === true ? undefined : await firstPage(image, openExt2fs)
    const row = (name: string, seconds: number) => console.log(`  ${name.padEnd(44)}${seconds.toFixed(3).padStart(9)} s${(seconds / ours).toFixed(1).padStart(9)}×`)
    console.log(`first page (${PAGE} entries, with their stats) of a folder of ${MANY + 1} entries, an htree; time, and ratio to Lifeboat's reader:`)
    row("Lifeboat's ext reader (formats/ext)", ours)
    if (old !== undefined) row('ext2fs 4.2.5 (libext2fs in wasm, the old path)', old)
    row('ls of the folder, mounted on the host (all names)', ls)
    console.log(`  Lifeboat / ls: ${(ours / ls).toFixed(1)}×${old === undefined ? '' : `; ext2fs / Lifeboat: ${(old / ours).toFixed(0)}×`}`)
  } finally {
    await dir.cleanup()
  }
}

await main()
