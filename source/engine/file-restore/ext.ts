// ext2/3/4 read in user space with ext2fs (libext2fs in wasm) over the restore point's disk: no root, no mount.
import { posix } from 'node:path'
import ext2fs, { type Ext2Fs } from 'ext2fs'
import { Disk, type ReadResult, type WriteResult } from 'file-disk'
import type { DiskReader } from '../../formats/disk/index.ts'
import { LifeboatError } from '../../util/errors.ts'
import { byteOrder, entryType, type BrowsableFileSystem, type FileEntry } from './filesystem.ts'

/** file-disk's Disk over our reader: read-only; the few writes a mount makes stay in memory (recordWrites). */
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
    throw new LifeboatError('NOT_SUPPORTED', 'A backup is read-only.')
  }

  protected async _flush(): Promise<void> {}
}

export async function openExt(reader: DiskReader): Promise<BrowsableFileSystem> {
  let fs: Ext2Fs
  try {
    fs = await ext2fs.mount(new ReaderDisk(reader))
  } catch (error) {
    throw new LifeboatError('FILE_RESTORE_BAD_FILESYSTEM', `The ext file system cannot be opened (${(error as Error).message}); it may be damaged or use a feature ext2fs does not read.`, { cause: error })
  }
  return {
    kind: 'ext',
    async names(dir) {
      return (await fs.promises.readdir(dir)).filter(name => name !== '.' && name !== '..').sort(byteOrder)
    },
    async stat(path) {
      const stats = await fs.promises.lstat(path)
      const type = entryType(stats.mode)
      const entry: FileEntry = { name: posix.basename(path), type, size: type === 'directory' ? 0 : stats.size, mtime: stats.mtime.getTime(), mode: stats.mode & 0o7777, uid: stats.uid, gid: stats.gid }
      if (type === 'symlink') entry.target = await fs.promises.readlink(path)
      return entry
    },
    createReadStream: path => fs.createReadStream(path),
    close: () => ext2fs.umount(fs),
  }
}
