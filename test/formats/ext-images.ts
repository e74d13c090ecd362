// ext2/3/4 images made by the real e2fsprogs (mkfs -d, no root), the folder they were filled from, and the
// comparison of a file system read by Lifeboat with that folder: names, types, modes, owners, mtimes, link
// targets and every file's bytes.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { lstat, mkdir, open, readdir, readlink, symlink, utimes, chmod, writeFile } from 'node:fs/promises'
import { join, posix } from 'node:path'
import type { Readable } from 'node:stream'
import type { DiskReader } from '../../source/formats/disk/index.ts'
import { byteOrder, entryType, type BrowsableFileSystem } from '../../source/engine/file-restore/filesystem.ts'
import { requireTool, run } from '../helpers/tools.ts'

export const MiB = 1024 * 1024
export const GiB = 1024 * MiB
export const WIDE_ENTRIES = 3000
export const FRAGMENTS = 1500

export function requireE2fsprogs(): void {
  for (const tool of ['mkfs.ext2', 'mkfs.ext3', 'mkfs.ext4', 'e2fsck', 'debugfs']) requireTool(tool, 'e2fsprogs')
  requireTool('mkfifo', 'coreutils')
}

async function sparse(path: string, size: number, pieces: Array<{ at: number; data: Buffer }>): Promise<void> {
  const handle = await open(path, 'w')
  try {
    await handle.truncate(size)
    for (const piece of pieces) await handle.write(piece.data, 0, piece.data.length, piece.at)
  } finally {
    await handle.close()
  }
}

/**
 * The folder every image is filled from: files of the sizes around the inline and block limits, a sparse
 * file, one of FRAGMENTS data pieces between holes (as many extents: a tree of depth 2), fast and slow
 * symbolic links, a folder of WIDE_ENTRIES names (several blocks; an htree after e2fsck -D), a FIFO, odd modes;
 * with `huge`, a sparse file of 5 GiB whose last bytes lie past 4 GiB.
 */
export async function sourceTree(root: string, options: { huge?: boolean } = {}): Promise<void> {
  await mkdir(join(root, 'dir', 'sub', 'deeper'), { recursive: true })
  await mkdir(join(root, 'dir', 'empty'))
  await mkdir(join(root, 'wide'))
  await mkdir(join(root, 'links'))
  for (const [name, size] of [['empty.txt', 0], ['tiny.txt', 1], ['sixty.bin', 60], ['inline.bin', 100], ['block.bin', 4096], ['odd.bin', 4097], ['mid.bin', 300_000], ['big.bin', 3 * MiB + 17]] as const) {
    await writeFile(join(root, name), randomBytes(size))
  }
  await writeFile(join(root, 'dir', 'sub', 'deeper', 'ünïcødé €.txt'), 'unicode\n')
  await writeFile(join(root, 'dir', `${'long-name-'.repeat(25)}end`), 'a 253-byte name\n')
  await sparse(join(root, 'sparse.bin'), 20 * MiB + 100, [{ at: 0, data: randomBytes(5000) }, { at: 8 * MiB + 512, data: randomBytes(4096) }, { at: 20 * MiB, data: randomBytes(100) }])
  // It ends with data: mkfs.ext4 1.47.0 -O inline_data drops a file's trailing hole from its size.
  await sparse(join(root, 'fragmented.bin'), FRAGMENTS * 8192 - 4096, Array.from({ length: FRAGMENTS }, (_, k) => ({ at: k * 8192, data: randomBytes(4096) })))
  if (options.huge === true) await sparse(join(root, 'huge.bin'), 5 * GiB, [{ at: 0, data: randomBytes(4096) }, { at: 4 * GiB + 12345, data: randomBytes(70_000) }, { at: 5 * GiB - 10, data: randomBytes(10) }])
  await symlink('../tiny.txt', join(root, 'links', 'fast'))
  await symlink(`${'x'.repeat(59)}`, join(root, 'links', 'fast59'))
  await symlink(`${'y'.repeat(60)}`, join(root, 'links', 'slow60'))
  await symlink(`${'component/'.repeat(20)}end`, join(root, 'links', 'slow'))
  await symlink(`${`${'d'.repeat(200)}/`.repeat(4)}end`, join(root, 'links', 'longest'))
  for (let k = 0; k < WIDE_ENTRIES; k++) await writeFile(join(root, 'wide', `w${String(k).padStart(5, '0')}`), k % 100 === 0 ? randomBytes(k) : '')
  await run('mkfifo', [join(root, 'dir', 'fifo')])
  await chmod(join(root, 'tiny.txt'), 0o640)
  await chmod(join(root, 'mid.bin'), 0o4755)
  await utimes(join(root, 'tiny.txt'), new Date('2026-03-15T02:00:00Z'), new Date('2026-03-15T02:00:00Z'))
  await utimes(join(root, 'dir', 'sub'), new Date('2001-09-09T01:46:40Z'), new Date('2001-09-09T01:46:40Z'))
}

/** `mkfs.<kind> -d source` on a sparse image of `size` bytes, with the options given; `index` runs e2fsck -D (htree folders). */
export async function extImage(path: string, kind: 'ext2' | 'ext3' | 'ext4', size: number, source: string, options: { mkfs?: string[]; index?: boolean } = {}): Promise<void> {
  const handle = await open(path, 'w')
  await handle.truncate(size)
  await handle.close()
  await run(`mkfs.${kind}`, ['-q', '-F', '-E', 'root_owner=0:0', '-N', '8192', ...(options.mkfs?.includes('-b') === true ? [] : ['-b', '4096']), ...(options.mkfs ?? []), '-d', source, path])
  if (options.index === true) await e2fsck(path, ['-fyD'])
  await e2fsck(path, ['-fn'])
}

/** e2fsck, whose exit 1 means "errors corrected" (what -D does when it rebuilds folders). */
async function e2fsck(path: string, flags: string[]): Promise<void> {
  try {
    await run('e2fsck', [...flags, path])
  } catch (error) {
    if (!/exited 1:/.test((error as Error).message)) throw error
  }
}

export async function fileReader(path: string): Promise<{ reader: DiskReader; close: () => Promise<void> }> {
  const handle = await open(path, 'r')
  const size = (await handle.stat()).size
  return {
    reader: { size, async read(offset, length) { const buffer = Buffer.alloc(length); await handle.read(buffer, 0, length, offset); return buffer } },
    close: () => handle.close(),
  }
}

/** The stream gives exactly the bytes of the file at `path`, compared as they come (a 5 GiB file is never held). */
export async function sameBytes(stream: Readable, path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    let at = 0
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const expected = Buffer.alloc(chunk.length)
      const { bytesRead } = await handle.read(expected, 0, chunk.length, at)
      assert.equal(bytesRead, chunk.length, `${path}: more bytes than the file holds at ${at}`)
      if (!chunk.equals(expected)) assert.fail(`${path}: the bytes differ in ${at}…${at + chunk.length}`)
      at += chunk.length
    }
    assert.equal(at, (await handle.stat()).size, `${path}: ${at} bytes read`)
  } finally {
    await handle.close()
  }
}

/** Compares the whole tree under `path` with the folder it was made from; returns how many entries it checked. */
export async function compareTree(fs: BrowsableFileSystem, source: string, path = '/'): Promise<number> {
  const expected = (await readdir(join(source, path))).sort(byteOrder)
  const names = (await fs.names(path)).filter(name => !(path === '/' && name === 'lost+found'))
  assert.deepEqual(names, expected, `the names in ${path}`)
  let checked = 0
  for (const name of names) {
    const child = posix.join(path, name)
    const local = join(source, child)
    const stats = await lstat(local)
    const entry = await fs.stat(child)
    const type = entryType(stats.mode)
    assert.deepEqual(
      [entry.name, entry.type, entry.mode, entry.uid, entry.gid, Math.floor(entry.mtime / 1000)],
      [name, type, stats.mode & 0o7777, stats.uid, stats.gid, Math.floor(stats.mtimeMs / 1000)],
      child,
    )
    if (type === 'file') {
      assert.equal(entry.size, stats.size, `${child}: size`)
      await sameBytes(fs.createReadStream(child), local)
    }
    if (type === 'symlink') assert.equal(entry.target, await readlink(local), `${child}: target`)
    checked++
    if (type === 'directory') checked += await compareTree(fs, source, child)
  }
  return checked
}

export const MANY = 100_000

/**
 * An ext4 image holding /many, a folder of MANY empty files f000000…, and /many/data.bin (`data`). Made through a
 * loop mount (root): mkfs -d and debugfs insert each name after a scan of the folder, over 20 minutes for 100 000.
 * The kernel makes the folder an htree.
 */
export async function manyEntriesImage(path: string, scratch: string, data: Buffer): Promise<void> {
  assert.equal(process.getuid?.(), 0, 'a folder of 100 000 entries is made through a loop mount, which needs root')
  const handle = await open(path, 'w')
  await handle.truncate(256 * MiB)
  await handle.close()
  await run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-N', String(MANY + 1000), path])
  const mountPoint = join(scratch, 'mnt-many')
  await mkdir(mountPoint, { recursive: true })
  await run('mount', ['-o', 'loop', path, mountPoint])
  try {
    await mkdir(join(mountPoint, 'many'))
    await run('sh', ['-c', `cd '${join(mountPoint, 'many')}' && seq -f 'f%06g' 0 ${MANY - 1} | xargs touch`])
    await writeFile(join(mountPoint, 'many', 'data.bin'), data)
  } finally {
    await run('umount', [mountPoint])
  }
}
