// The narrow file access VHD files, chains and merges need, so that a remote handler can stand in for the
// local disk; `localFileSystem` is the fs/promises implementation.
import { readFile, readdir, rename, unlink, writeFile, access, mkdir, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { openRegularFile } from '../../util/files.ts'

export interface RandomAccessFile {
  /** Bytes read; fewer than buffer.length only at the end of the file. */
  read(buffer: Buffer, position: number): Promise<number>
  write(buffer: Buffer, position: number): Promise<void>
  size(): Promise<number>
  truncate(size: number): Promise<void>
  close(): Promise<void>
}

export interface FileSystemAccess {
  open(path: string, mode: 'r' | 'r+'): Promise<RandomAccessFile>
  readFile(path: string): Promise<Buffer>
  /** Atomic: a temporary file renamed over the target. */
  writeFile(path: string, data: Buffer | string): Promise<void>
  rename(from: string, to: string): Promise<void>
  unlink(path: string): Promise<void>
  exists(path: string): Promise<boolean>
  /** Names in a folder; only `resumeVhdMergeIfAny` needs it. */
  list?(dir: string): Promise<string[]>
  /** Creates a folder and its parents; absent where a name's prefix is enough (object stores). */
  mkdir?(path: string): Promise<void>
  /** Removes a folder and everything in it, a missing one being no error; merging a VhdDirectory needs it. */
  rmtree?(path: string): Promise<void>
  /** True for a folder (or an object store's prefix); without it a VhdDirectory is told by its `footer`. */
  isDirectory?(path: string): Promise<boolean>
  /** rename() is native and cheap (no copy): a VhdDirectory merge then moves a child's blocks instead of copying them. */
  nativeRename?: boolean
}

export const localFileSystem: FileSystemAccess = {
  async open(path, mode) {
    const handle = await openRegularFile(path, mode)
    return {
      async read(buffer, position) {
        let done = 0
        while (done < buffer.length) {
          const { bytesRead } = await handle.read(buffer, done, buffer.length - done, position + done)
          if (bytesRead === 0) break
          done += bytesRead
        }
        return done
      },
      async write(buffer, position) {
        let done = 0
        while (done < buffer.length) {
          const { bytesWritten } = await handle.write(buffer, done, buffer.length - done, position + done)
          done += bytesWritten
        }
      },
      async size() {
        return (await handle.stat()).size
      },
      truncate: size => handle.truncate(size),
      close: () => handle.close(),
    }
  },
  readFile: path => readFile(path),
  async writeFile(path, data) {
    const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`)
    try {
      await writeFile(temporary, data)
      await rename(temporary, path)
    } catch (error) {
      await unlink(temporary).catch(() => {})
      throw error
    }
  },
  rename: (from, to) => rename(from, to),
  unlink: path => unlink(path),
  async exists(path) {
    try {
      await access(path)
      return true
    } catch {
      return false
    }
  },
  list: dir => readdir(dir),
  mkdir: path => mkdir(path, { recursive: true }).then(() => {}),
  rmtree: path => rm(path, { recursive: true, force: true }),
  async isDirectory(path) {
    try {
      return (await stat(path)).isDirectory()
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw error
    }
  },
  nativeRename: true,
}

/** Reads exactly `length` bytes at `position`, or fewer only at the end of the file. */
export async function readAt(file: RandomAccessFile, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length)
  const read = await file.read(buffer, position)
  return read === length ? buffer : buffer.subarray(0, read)
}
