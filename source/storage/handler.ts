// The one interface every remote implements (restic style: a dozen methods, nothing else), and the
// adapter that gives the VHD library its file-system access through any remote.
import type { Readable } from 'node:stream'
import type { FileSystemAccess, RandomAccessFile } from '../formats/vhd/index.ts'

export type { FileSystemAccess, RandomAccessFile }

/** Free space; empty when the backend cannot tell (S3, Azure), which distributed mode relies on. */
export type RemoteSpace = { size: number; used: number; available: number } | Record<string, never>

export interface RemoteEntryStat {
  size: number
  mtimeMs: number
  isDirectory: boolean
}

export interface OutputStreamOptions {
  /** Expected byte count: checked before the commit, and needed by object stores to size their parts. */
  length?: number
  /** Runs on the complete temporary file (its path is given) before the rename; throwing aborts the write. */
  validator?: (temporaryPath: string) => Promise<void>
  signal?: AbortSignal
}

export interface RemoteLock {
  readonly path: string
  /** True when the lock was lost (taken over as stale while we held it): the holder should stop writing. */
  readonly compromised: boolean
  release(): Promise<void>
}

export interface LockOptions {
  /** A lock not refreshed for this long is considered abandoned and is taken over (default 60 s). */
  staleMs?: number
  /** How often the holder refreshes it (default staleMs / 4). */
  refreshMs?: number
}

/**
 * A backup remote. Paths are relative to the remote's root, '/'-separated; '..' never leaves the root.
 * Missing files fail with the usual ENOENT code; a remote that is full fails with REMOTE_FULL, one that
 * is gone (unmounted, deleted, unreachable) with REMOTE_UNAVAILABLE.
 */
export interface RemoteHandler {
  /** The remote's URL with secrets redacted: for logs and messages. */
  readonly label: string
  /** Makes the remote ready (mount, check the root); call before anything else. */
  sync(): Promise<void>
  close(): Promise<void>
  getInfo(): Promise<RemoteSpace>
  /** Entry names of a folder, sorted; [] for a missing folder when ignoreMissing. */
  list(dir: string, options?: { ignoreMissing?: boolean }): Promise<string[]>
  stat(path: string): Promise<RemoteEntryStat>
  /** Bytes start..end of a file (end inclusive, like node's fs streams). Opening errors reject here, not on the stream. */
  createReadStream(path: string, range?: { start?: number; end?: number }): Promise<Readable>
  /** Writes a stream atomically: `<dir>/.<name>.<random>.tmp`, validated, then renamed into place. Returns the bytes written. */
  outputStream(path: string, source: AsyncIterable<Buffer | Uint8Array>, options?: OutputStreamOptions): Promise<number>
  readFile(path: string): Promise<Buffer>
  /** Atomic like outputStream; flag 'wx' refuses (EEXIST) to replace an existing file. */
  writeFile(path: string, data: Buffer | string, options?: { flag?: 'w' | 'wx' }): Promise<void>
  rename(from: string, to: string): Promise<void>
  unlink(path: string): Promise<void>
  /** Removes an empty folder. */
  rmdir(path: string): Promise<void>
  /** Removes a folder and everything in it; a missing folder is not an error. */
  rmtree(path: string): Promise<void>
  /** Creates a folder and its parents (mkdir -p). */
  mkdir(path: string): Promise<void>
  openFile(path: string, mode: 'r' | 'r+'): Promise<RandomAccessFile>
  /** Takes the directory lock `<path>.lock`; a second holder is refused with REMOTE_LOCKED. */
  lock(path: string, options?: LockOptions): Promise<RemoteLock>
}

/** Temporary files of outputStream/writeFile: what a crash leaves behind, for the cleaner to remove. */
export const TEMPORARY_FILE = /^\..+\.[0-9a-f]{8}\.tmp$/

export function temporaryName(name: string, random: string): string {
  return `.${name}.${random}.tmp`
}

/** The VHD library's file-system access on top of a remote. */
export function fileSystemAccess(handler: RemoteHandler): FileSystemAccess {
  return {
    open: (path, mode) => handler.openFile(path, mode),
    readFile: path => handler.readFile(path),
    writeFile: (path, data) => handler.writeFile(path, data),
    rename: (from, to) => handler.rename(from, to),
    unlink: path => handler.unlink(path),
    list: dir => handler.list(dir),
    mkdir: path => handler.mkdir(path),
    rmtree: path => handler.rmtree(path),
    // From the remote's own answer: a VHD file's `<file>/footer` is ENOTDIR on a local folder, not a missing name.
    async isDirectory(path) {
      try {
        return (await handler.stat(path)).isDirectory
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
        throw error
      }
    },
    async exists(path) {
      try {
        await handler.stat(path)
        return true
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
        throw error
      }
    },
  }
}
