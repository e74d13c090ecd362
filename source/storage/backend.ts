// The core every storage backend implements (restic's backend as the model): operations an object store
// can meet, and capabilities saying what more a backend does natively. The file-level operations the
// repository needs (commit, locks, random access) are built on this core, chosen by capability.
import type { Readable } from 'node:stream'
import type { RandomAccessFile } from '../formats/vhd/index.ts'

/** Free space; empty when the backend cannot tell (S3, Azure), which distributed mode relies on. */
export type RemoteSpace = { size: number; used: number; available: number } | Record<string, never>

export interface Capabilities {
  /** rename() exists and replaces its target atomically (POSIX folders); elsewhere a commit writes the final name last. */
  atomicRename: boolean
  /** open() exists and gives random read-write access (in-place VHD merges); elsewhere merges copy blocks of a VhdDirectory. */
  randomWrite: boolean
  /** info() knows the free space. */
  freeSpaceKnown: boolean
  /** write({ ifAbsent }) is decided by the server: of two concurrent writers exactly one succeeds. */
  conditionalCreate: boolean
  /** Folders are things of their own (mkdir, rmdir, lock folders), not just prefixes of object names. */
  folders: boolean
  /** Largest object in bytes (S3: 5 TiB); undefined when the backend sets no bound. */
  maxObjectSize?: number
  /** Parallel requests the backend serves well (XO: 10 per remote). */
  connections: number
}

/** What an object store (S3, Azure Blob) can do: the core and write-if-absent, nothing more. */
export const OBJECT_STORE_CAPABILITIES: Capabilities = { atomicRename: false, randomWrite: false, freeSpaceKnown: false, conditionalCreate: true, folders: false, connections: 16 }

export interface EntryStat {
  size: number
  mtimeMs: number
  isDirectory: boolean
}

export interface ListEntry {
  name: string
  isDirectory: boolean
}

export interface ListPage {
  /** Direct children of the folder, sorted by name (a prefix's sub-prefixes are folders). */
  entries: ListEntry[]
  /** Pass it back as `cursor` for the next page; undefined on the last page. */
  next?: string
}

export interface WriteOptions {
  /** Byte count when known: checked before the object becomes visible, and sizes an object store's parts. */
  length?: number
  /** Refuse (EEXIST) when an object of that name exists. */
  ifAbsent?: boolean
  signal?: AbortSignal
}

export type WriteData = Buffer | string | AsyncIterable<Buffer | Uint8Array>

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
 * A storage backend. Paths are relative to the remote's root, '/'-separated; '..' never leaves the root.
 * A missing object fails with ENOENT; a full remote with REMOTE_FULL; a remote that is gone (unmounted,
 * deleted, unreachable) with REMOTE_UNAVAILABLE; refused credentials with REMOTE_AUTH.
 */
export interface Backend {
  /** The remote's URL with secrets redacted: for logs and messages. */
  readonly label: string
  readonly capabilities: Capabilities
  /** Makes the remote ready (mount, check the root or the bucket); call before anything else. */
  sync(): Promise<void>
  close(): Promise<void>
  info(): Promise<RemoteSpace>
  /** One page of a folder's children; a missing folder is an empty last page. */
  list(dir: string, options?: { cursor?: string; limit?: number }): Promise<ListPage>
  /** ENOENT when nothing has that name; a prefix with objects under it is a directory. */
  stat(path: string): Promise<EntryStat>
  /** An object's bytes, whole or start..end (end inclusive, like node's fs streams). ENOENT rejects here, not on the stream. */
  read(path: string, range?: { start: number; end?: number }): Promise<Readable>
  /**
   * Writes an object whole and atomically: until it is complete nothing of that name is visible, and a write
   * that fails or is interrupted leaves none (at most hidden leftovers the cleaner removes). Returns its size.
   */
  write(path: string, data: WriteData, options?: WriteOptions): Promise<number>
  /** Deletes objects (many at once where the backend can); a missing one is not an error. */
  delete(paths: string[]): Promise<void>

  // Native operations, present when the capabilities say so.
  /** capabilities.atomicRename */
  rename?(from: string, to: string): Promise<void>
  /** capabilities.randomWrite ('r' may exist without it) */
  open?(path: string, mode: 'r' | 'r+'): Promise<RandomAccessFile>
  /** capabilities.folders: creates a folder and its parents. */
  mkdir?(path: string): Promise<void>
  /** capabilities.folders: removes an empty folder (ENOTEMPTY otherwise). */
  rmdir?(path: string): Promise<void>
  /** Removes a folder and everything under it faster than object by object; a missing folder is not an error. */
  rmtree?(path: string): Promise<void>
  /**
   * A lock the backend keeps natively on `<path>.lock`: a lock folder on local, NFS and SMB (proper-lockfile's,
   * which XO uses), a lease on Azure. A second holder is refused with REMOTE_LOCKED. Without it, the handler
   * keeps a lock object built on the core.
   */
  lock?(path: string, options?: LockOptions): Promise<RemoteLock>
  /** Removes the hidden leftovers of writes interrupted more than `olderThanMs` ago (S3's multipart uploads); returns how many. */
  abortStaleUploads?(olderThanMs: number): Promise<number>
}

/** Every entry of a folder, page after page. */
export async function listAll(backend: Backend, dir: string): Promise<ListEntry[]> {
  const entries: ListEntry[] = []
  let cursor: string | undefined
  do {
    const page = await backend.list(dir, cursor === undefined ? {} : { cursor })
    entries.push(...page.entries)
    cursor = page.next
  } while (cursor !== undefined)
  return entries
}

/** One page of a folder's entries, sorted by name, from after `cursor`: for backends that read a folder whole. */
export function pageOf(entries: ListEntry[], options: { cursor?: string; limit?: number }, pageSize = 1000): ListPage {
  const sorted = entries.slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const from = options.cursor === undefined ? 0 : sorted.findIndex(entry => entry.name > options.cursor!)
  const start = from === -1 ? sorted.length : from
  const page = sorted.slice(start, start + (options.limit ?? pageSize))
  const more = start + page.length < sorted.length
  return { entries: page, ...(more && { next: page.at(-1)!.name }) }
}

/** A path inside the remote: '/'-separated, relative, and never above the root ('..' stops there, as in XO). */
export function normalizePath(path: string): string {
  const parts: string[] = []
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') parts.pop()
    else parts.push(part)
  }
  return parts.join('/')
}
