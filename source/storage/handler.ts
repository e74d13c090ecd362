// The file-level view of a remote the repository works with, built on any backend's core by capability:
// atomic writes from the core, rename native or copied, random access native or by ranged reads, folders
// real or implied, locks native (a lock folder, a lease) or a lock object. And the adapter that gives the
// VHD library its file-system access through any remote.
import type { Readable } from 'node:stream'
import type { FileSystemAccess, RandomAccessFile } from '../formats/vhd/index.ts'
import { LifeboatError } from '../util/errors.ts'
import { listAll, type Backend, type Capabilities, type EntryStat, type LockOptions, type RemoteLock, type RemoteSpace } from './backend.ts'
import { takeObjectLock } from './object-lock.ts'

export type { FileSystemAccess, RandomAccessFile, RemoteSpace, RemoteLock, LockOptions, Capabilities }
export type RemoteEntryStat = EntryStat

export interface OutputStreamOptions {
  /** Expected byte count: checked before the commit, and needed by object stores to size their parts. */
  length?: number
  signal?: AbortSignal
}

/**
 * A backup remote. Paths are relative to the remote's root, '/'-separated; '..' never leaves the root.
 * Missing files fail with ENOENT; a remote that is full fails with REMOTE_FULL, one that is gone
 * (unmounted, deleted, unreachable) with REMOTE_UNAVAILABLE.
 */
export interface RemoteHandler {
  /** The remote's URL with secrets redacted: for logs and messages. */
  readonly label: string
  readonly capabilities: Capabilities
  /** Makes the remote ready (mount, check the root); call before anything else. */
  sync(): Promise<void>
  close(): Promise<void>
  getInfo(): Promise<RemoteSpace>
  /** Entry names of a folder, sorted; [] for a missing or empty folder (an object store cannot tell them apart). */
  list(dir: string, options?: { ignoreMissing?: boolean }): Promise<string[]>
  stat(path: string): Promise<RemoteEntryStat>
  /** Bytes start..end of a file (end inclusive, like node's fs streams). Opening errors reject here, not on the stream. */
  createReadStream(path: string, range?: { start?: number; end?: number }): Promise<Readable>
  /** Writes a stream atomically (nothing visible under the name until it is whole). Returns the bytes written. */
  outputStream(path: string, source: AsyncIterable<Buffer | Uint8Array>, options?: OutputStreamOptions): Promise<number>
  readFile(path: string): Promise<Buffer>
  /** Atomic like outputStream; flag 'wx' refuses (EEXIST) to replace an existing file. */
  writeFile(path: string, data: Buffer | string, options?: { flag?: 'w' | 'wx' }): Promise<void>
  /** Atomic where capabilities.atomicRename; a copy then a delete elsewhere (as XO does on S3). */
  rename(from: string, to: string): Promise<void>
  /** A missing file is not an error. */
  unlink(path: string): Promise<void>
  /** Removes an empty folder (ENOTEMPTY otherwise); nothing to do where folders are only name prefixes. */
  rmdir(path: string): Promise<void>
  /** Removes a folder and everything in it; a missing folder is not an error. */
  rmtree(path: string): Promise<void>
  /** Creates a folder and its parents (mkdir -p); nothing to do where folders are only name prefixes. */
  mkdir(path: string): Promise<void>
  /** 'r' everywhere (by ranged reads on object stores); 'r+' only where capabilities.randomWrite. */
  openFile(path: string, mode: 'r' | 'r+'): Promise<RandomAccessFile>
  /** Takes the lock `<path>.lock`; a second holder is refused with REMOTE_LOCKED. */
  lock(path: string, options?: LockOptions): Promise<RemoteLock>
  /** Removes the hidden leftovers of writes interrupted more than `olderThanMs` ago (S3's multipart uploads); returns how many. */
  abortStaleUploads(olderThanMs: number): Promise<number>
}

export class BackendHandler implements RemoteHandler {
  readonly backend: Backend

  constructor(backend: Backend) {
    this.backend = backend
  }

  get label(): string {
    return this.backend.label
  }

  get capabilities(): Capabilities {
    return this.backend.capabilities
  }

  sync(): Promise<void> {
    return this.backend.sync()
  }

  close(): Promise<void> {
    return this.backend.close()
  }

  getInfo(): Promise<RemoteSpace> {
    return this.backend.info()
  }

  async list(dir: string): Promise<string[]> {
    return (await listAll(this.backend, dir)).map(entry => entry.name)
  }

  stat(path: string): Promise<RemoteEntryStat> {
    return this.backend.stat(path)
  }

  createReadStream(path: string, range: { start?: number; end?: number } = {}): Promise<Readable> {
    return this.backend.read(path, range.start === undefined && range.end === undefined ? undefined : { start: range.start ?? 0, ...(range.end !== undefined && { end: range.end }) })
  }

  outputStream(path: string, source: AsyncIterable<Buffer | Uint8Array>, options: OutputStreamOptions = {}): Promise<number> {
    return this.backend.write(path, source, options)
  }

  async readFile(path: string): Promise<Buffer> {
    const chunks: Buffer[] = []
    for await (const chunk of await this.backend.read(path)) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks)
  }

  async writeFile(path: string, data: Buffer | string, options: { flag?: 'w' | 'wx' } = {}): Promise<void> {
    await this.backend.write(path, data, { ifAbsent: options.flag === 'wx' })
  }

  async rename(from: string, to: string): Promise<void> {
    if (this.backend.rename !== undefined) return this.backend.rename(from, to)
    const { size } = await this.backend.stat(from)
    await this.backend.write(to, await this.backend.read(from), { length: size })
    await this.backend.delete([from])
  }

  unlink(path: string): Promise<void> {
    return this.backend.delete([path])
  }

  async rmdir(path: string): Promise<void> {
    if (this.backend.rmdir !== undefined) return this.backend.rmdir(path)
    const page = await this.backend.list(path, { limit: 1 })
    if (page.entries.length > 0) throw Object.assign(new Error(`${path} on ${this.label} is not empty`), { code: 'ENOTEMPTY' })
  }

  async rmtree(path: string): Promise<void> {
    if (this.backend.rmtree !== undefined) return this.backend.rmtree(path)
    // A page at a time, files deleted in one call, folders emptied depth first.
    let cursor: string | undefined
    do {
      const page = await this.backend.list(path, cursor === undefined ? {} : { cursor })
      const files = page.entries.filter(entry => !entry.isDirectory).map(entry => `${path}/${entry.name}`)
      if (files.length > 0) await this.backend.delete(files)
      for (const folder of page.entries.filter(entry => entry.isDirectory)) await this.rmtree(`${path}/${folder.name}`)
      cursor = page.next
    } while (cursor !== undefined)
    await this.backend.rmdir?.(path).catch(error => {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    })
  }

  async mkdir(path: string): Promise<void> {
    await this.backend.mkdir?.(path)
  }

  async openFile(path: string, mode: 'r' | 'r+'): Promise<RandomAccessFile> {
    if (this.backend.open !== undefined && (mode === 'r' || this.capabilities.randomWrite)) return this.backend.open(path, mode)
    if (mode === 'r+') {
      throw new LifeboatError('NOT_SUPPORTED', `${this.label} cannot change a file in place (an object store): its disks are stored as VhdDirectory, merged by block copies.`)
    }
    return rangedFile(this.backend, path, (await this.backend.stat(path)).size)
  }

  lock(path: string, options?: LockOptions): Promise<RemoteLock> {
    if (this.backend.lock !== undefined) return this.backend.lock(path, options)
    return takeObjectLock(this.backend, path, options)
  }

  // Elsewhere an interrupted write leaves nothing the store keeps (local temporary files are the cleaner's).
  async abortStaleUploads(olderThanMs: number): Promise<number> {
    return (await this.backend.abortStaleUploads?.(olderThanMs)) ?? 0
  }
}

/** A file read by ranged reads (one request per read): what VhdFile needs to read a VHD on an object store. */
function rangedFile(backend: Backend, path: string, size: number): RandomAccessFile {
  const readOnly = () => new LifeboatError('NOT_SUPPORTED', `${path} on ${backend.label} was opened for reading only.`)
  return {
    async read(buffer, position) {
      const length = Math.min(buffer.length, size - position)
      if (length <= 0) return 0
      let done = 0
      for await (const chunk of await backend.read(path, { start: position, end: position + length - 1 })) {
        done += (chunk as Buffer).copy(buffer, done)
      }
      return done
    },
    write: () => Promise.reject(readOnly()),
    truncate: () => Promise.reject(readOnly()),
    size: () => Promise.resolve(size),
    close: () => Promise.resolve(),
  }
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
    nativeRename: handler.capabilities.atomicRename,
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
