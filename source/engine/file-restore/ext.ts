// ext2/3/4 browsed with the project's own reader (formats/ext) over the restore point's disk: no root, no mount,
// a folder read in one pass over its blocks.
import { Readable } from 'node:stream'
import type { DiskReader } from '../../formats/disk/index.ts'
import { ExtFileSystem, isSymlink, readSuperblock, type Inode } from '../../formats/ext/index.ts'
import { LifeboatError } from '../../util/errors.ts'
import { byteOrder, entryType, type BrowsableFileSystem, type FileEntry } from './filesystem.ts'

export async function openExt(reader: DiskReader): Promise<BrowsableFileSystem> {
  const fs = await ExtFileSystem.open(reader)
  const find = async (path: string): Promise<Inode> => {
    const inode = await fs.lookup(path)
    if (inode === undefined) throw new LifeboatError('FILE_RESTORE_NOT_FOUND', `${path} is not in this backup; list its folder to see what is there.`)
    return inode
  }
  return {
    kind: 'ext',
    async names(dir) {
      return [...(await fs.folder(await find(dir))).keys()].sort(byteOrder)
    },
    async stat(path) {
      const inode = await find(path)
      const type = entryType(inode.mode)
      const name = path.slice(path.lastIndexOf('/') + 1)
      const entry: FileEntry = { name, type, size: type === 'directory' ? 0 : inode.size, mtime: inode.mtimeMs, mode: inode.mode & 0o7777, uid: inode.uid, gid: inode.gid }
      if (isSymlink(inode)) entry.target = await fs.readLink(inode)
      return entry
    },
    createReadStream: path => Readable.from((async function* () {
      yield* fs.content(await find(path))
    })(), { objectMode: false }),
    async close() {},
  }
}

/** What an administrator browsing the volume should know: a journal not replayed (undefined when nothing, or when the superblock does not read: opening says why). */
export async function extWarning(reader: DiskReader): Promise<string | undefined> {
  const superblock = await readSuperblock(reader).catch(() => undefined)
  if (superblock?.needsRecovery !== true) return undefined
  return 'its journal holds changes not yet written in place (the system was not shut down cleanly); they are not replayed (a backup is read-only), so the newest changes may be missing or half written'
}
