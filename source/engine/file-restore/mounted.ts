// File systems mounted by the kernel, for the ones without a user-space reader here (XFS, NTFS): the volume is
// shown as a FUSE file (read from the chain on demand, never copied), then mounted read-only — XFS on a
// read-only loop device without replaying its log (`norecovery`), NTFS by ntfs-3g `ro` — and unmounted on every
// path out. ext is read by Lifeboat's own reader (formats/ext), root or not.
import { createReadStream } from 'node:fs'
import { lstat, mkdir, mkdtemp, readdir, readlink, rm } from 'node:fs/promises'
import { join, posix } from 'node:path'
import type { DiskReader } from '../../formats/disk/index.ts'
import { LifeboatError } from '../../util/errors.ts'
import { byteOrder, entryType, type BrowsableFileSystem, type FileEntry } from './filesystem.ts'
import { mountFuseFile, run, unmount, type FuseFile } from './fuse.ts'

export type MountedKind = 'xfs' | 'ntfs'

const NEEDS: Record<MountedKind, string> = {
  xfs: 'the kernel\'s xfs module, util-linux (losetup, mount) and /dev/fuse',
  ntfs: 'ntfs-3g (Debian package ntfs-3g) and /dev/fuse',
}

/** Whether this process may mount (root); without it XFS and NTFS cannot be read. */
export function canMount(): boolean {
  return process.getuid?.() === 0
}

/** Mounts the volume read-only under `workDir` (a folder of its own is made in it). */
export async function openMounted(kind: MountedKind, reader: DiskReader, workDir: string): Promise<BrowsableFileSystem> {
  if (!canMount()) throw needsRoot(kind)
  await mkdir(workDir, { recursive: true, mode: 0o700 })
  const dir = await mkdtemp(join(workDir, `${kind}-`))
  const undo: Array<() => Promise<unknown>> = [() => rm(dir, { recursive: true, force: true })]
  const cleanUp = async () => {
    for (const step of undo.splice(0).reverse()) await step().catch(() => {})
  }
  try {
    const view = join(dir, 'view')
    const root = join(dir, 'root')
    await mkdir(view)
    await mkdir(root)
    const fuse: FuseFile = await mountFuseFile(view, 'disk', reader)
    undo.push(() => fuse.close())
    if (kind === 'xfs') {
      const loop = (await run('losetup', ['--read-only', '--find', '--show', fuse.path])).trim()
      undo.push(() => run('losetup', ['-d', loop]))
      await run('mount', ['-t', 'xfs', '-o', 'ro,norecovery,nouuid', loop, root])
    } else {
      await run('ntfs-3g', ['-o', 'ro', fuse.path, root])
    }
    undo.push(() => unmount(root))
    return mountedFileSystem(kind, root, cleanUp)
  } catch (error) {
    await cleanUp()
    if (error instanceof LifeboatError && error.code === 'FILE_RESTORE_SYSTEM_COMMAND') {
      throw new LifeboatError('FILE_RESTORE_MOUNT_FAILED', `The ${kind.toUpperCase()} file system could not be mounted read-only: ${error.message}. It needs ${NEEDS[kind]}.`, { cause: error })
    }
    throw error
  }
}

function mountedFileSystem(kind: MountedKind, root: string, cleanUp: () => Promise<void>): BrowsableFileSystem {
  // Paths are the browser's, always absolute and normalised; they never leave the mount.
  const local = (path: string) => join(root, posix.normalize(`/${path}`))
  return {
    kind,
    async names(dir) {
      return (await readdir(local(dir))).sort(byteOrder)
    },
    async stat(path) {
      const stats = await lstat(local(path))
      const type = entryType(stats.mode)
      const entry: FileEntry = { name: posix.basename(path), type, size: type === 'directory' ? 0 : stats.size, mtime: stats.mtimeMs, mode: stats.mode & 0o7777, uid: stats.uid, gid: stats.gid }
      if (type === 'symlink') entry.target = await readlink(local(path))
      return entry
    },
    createReadStream: path => createReadStream(local(path)),
    close: cleanUp,
  }
}

export function needsRoot(kind: MountedKind): LifeboatError {
  return new LifeboatError('FILE_RESTORE_NEEDS_ROOT', `Reading ${kind.toUpperCase()} needs root: the daemon shows the disk to the kernel through FUSE and mounts it read-only, which needs ${NEEDS[kind]}. Run the Lifeboat daemon as root (ext2/3/4 is read without root), or restore the whole VM.`)
}
