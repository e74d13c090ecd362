// The local backend: a remote that is a folder of this machine (`file:///path`); nfs.ts and smb.ts give the
// same over their protocols. It has everything an object store lacks: atomic rename, random writes, folders, free space.
import { createWriteStream } from 'node:fs'
import { link, mkdir, open, readdir, rename, rm, rmdir, stat, statfs, unlink, type FileHandle } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { dirname, join, posix } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { normalizePath, pageOf, type Backend, type Capabilities, type EntryStat, type ListPage, type LockOptions, type RemoteLock, type RemoteSpace, type WriteData, type WriteOptions } from './backend.ts'
import { remoteUnavailable, toRemoteError, writeIncomplete } from './errors.ts'
import { BackendHandler } from './handler.ts'
import { localLockFolder, takeDirectoryLock } from './lock.ts'
import type { RandomAccessFile } from '../formats/vhd/index.ts'

// Backups hold whole VM disks: no access for others; the group may read (a restore host, an XO in the same group).
const FILE_MODE = 0o640
const FOLDER_MODE = 0o750
const READ_CHUNK = 1024 * 1024
const MIN_READ_CHUNK = 16 * 1024
/**
 * Bytes a file being written accepts ahead of the disk: two VHD blocks. With node's 16 KiB the stream refuses
 * every 2 MiB chunk until it is on disk, so a block's bitmap and its data were two writes, each waited for,
 * and the source stood still meanwhile; with room for two blocks, what arrives during a write goes down
 * together in one writev (a VHD file written 2.5 times as fast here). Memory: this much per file written.
 */
export const WRITE_WINDOW = 4 * 1024 * 1024

/** Temporary files of a write: what a crash leaves behind, for the cleaner to remove. */
export const TEMPORARY_FILE = /^\..+\.[0-9a-f]{8}\.tmp$/

export class LocalBackend implements Backend {
  readonly root: string
  readonly label: string
  readonly capabilities: Capabilities = { atomicRename: true, randomWrite: true, freeSpaceKnown: true, conditionalCreate: true, folders: true, connections: 10 }

  constructor(root: string, label = `file://${root}`) {
    this.root = root
    this.label = label
  }

  async sync(): Promise<void> {
    let isDirectory: boolean
    try {
      isDirectory = (await stat(this.root)).isDirectory()
    } catch (error) {
      throw remoteUnavailable(this.label, error, `its folder ${this.root} does not exist or cannot be read`)
    }
    if (!isDirectory) throw remoteUnavailable(this.label, undefined, `${this.root} is not a folder`)
  }

  async close(): Promise<void> {}

  info(): Promise<RemoteSpace> {
    return this.#guard(async () => {
      const fs = await statfs(this.root)
      return { size: fs.blocks * fs.bsize, used: (fs.blocks - fs.bfree) * fs.bsize, available: fs.bavail * fs.bsize }
    })
  }

  list(dir: string, options: { cursor?: string; limit?: number } = {}): Promise<ListPage> {
    return this.#guard(async () => {
      let entries
      try {
        entries = await readdir(this.#resolve(dir), { withFileTypes: true })
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        if (code === 'ENOENT' && (await this.#rootExists())) return { entries: [] }
        throw error
      }
      return pageOf(entries.map(entry => ({ name: entry.name, isDirectory: entry.isDirectory() })), options)
    })
  }

  stat(path: string): Promise<EntryStat> {
    return this.#guard(async () => {
      const stats = await stat(this.#resolve(path))
      return { size: stats.size, mtimeMs: stats.mtimeMs, isDirectory: stats.isDirectory() }
    })
  }

  read(path: string, range?: { start: number; end?: number }): Promise<Readable> {
    return this.#guard(async () => {
      const file = await open(this.#resolve(path), 'r')
      // 1 MiB reads, not node's 64 KiB: a restore or a merge reads whole disks (2.5 to 5 times the rate here).
      // No more than the file holds: each read allocates its whole buffer, and a clean reads hundreds of small
      // JSONs (1 MiB each, twice with the read that finds the end, was a third of a clean's time in GC).
      const left = (range?.end ?? Infinity) + 1 - (range?.start ?? 0)
      const highWaterMark = Math.max(MIN_READ_CHUNK, Math.min(READ_CHUNK, left, (await file.stat()).size - (range?.start ?? 0) + 1))
      return file.createReadStream({ highWaterMark, ...(range !== undefined && { start: range.start }), ...(range?.end !== undefined && { end: range.end }) })
    })
  }

  /** A temporary `<dir>/.<name>.<random>.tmp` renamed (or linked, for ifAbsent) into place: a crash leaves only it. */
  write(path: string, data: WriteData, options: WriteOptions = {}): Promise<number> {
    return this.#guard(async () => {
      const relative = normalizePath(path)
      const temporary = posix.join(posix.dirname(relative), `.${posix.basename(relative)}.${randomBytes(4).toString('hex')}.tmp`)
      await this.#mkdirp(dirname(this.#resolve(relative)))
      try {
        const size = await this.#writeTemporary(this.#resolve(temporary), data, options)
        if (options.length !== undefined && size !== options.length) throw writeIncomplete(relative, this.label, size, options.length)
        if (options.ifAbsent === true) {
          await link(this.#resolve(temporary), this.#resolve(relative))
          await unlink(this.#resolve(temporary))
        } else await rename(this.#resolve(temporary), this.#resolve(relative))
        return size
      } catch (error) {
        await unlink(this.#resolve(temporary)).catch(() => {})
        throw error
      }
    })
  }

  async #writeTemporary(temporary: string, data: WriteData, options: WriteOptions): Promise<number> {
    if (typeof data === 'string' || Buffer.isBuffer(data)) {
      const file = await open(temporary, 'wx', FILE_MODE)
      try {
        await file.writeFile(data)
        await file.sync()
      } finally {
        await file.close()
      }
      return Buffer.byteLength(data)
    }
    let size = 0
    const file = createWriteStream(temporary, { flags: 'wx', flush: true, mode: FILE_MODE, highWaterMark: WRITE_WINDOW })
    try {
      await pipeline(
        async function* () {
          for await (const chunk of data) {
            size += chunk.length
            yield chunk
          }
        },
        file,
        ...(options.signal !== undefined ? [{ signal: options.signal }] : []),
      )
    } catch (error) {
      // The file may still be opening: wait until it is closed, or the clean-up would run before it exists.
      if (!file.closed) await once(file, 'close').catch(() => {})
      throw error
    }
    return size
  }

  delete(paths: string[]): Promise<void> {
    return this.#guard(async () => {
      for (const path of paths) {
        try {
          await unlink(this.#resolve(path))
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
        }
      }
    })
  }

  rename(from: string, to: string): Promise<void> {
    return this.#guard(() => rename(this.#resolve(from), this.#resolve(to)))
  }

  open(path: string, mode: 'r' | 'r+'): Promise<RandomAccessFile> {
    return this.#guard(async () => new LocalFile(await open(this.#resolve(path), mode), fn => this.#guard(fn)))
  }

  mkdir(path: string): Promise<void> {
    return this.#guard(() => this.#mkdirp(this.#resolve(path)))
  }

  rmdir(path: string): Promise<void> {
    return this.#guard(() => rmdir(this.#resolve(path)))
  }

  /** Faster than deleting file by file; a missing folder is not an error. */
  rmtree(path: string): Promise<void> {
    return this.#guard(() => rm(this.#resolve(path), { recursive: true, force: true }))
  }

  lock(path: string, options?: LockOptions): Promise<RemoteLock> {
    return this.#guard(async () => {
      const target = this.#resolve(path)
      await this.#mkdirp(dirname(target))
      return takeDirectoryLock(localLockFolder, target, `${normalizePath(path)} on ${this.label}`, options)
    })
  }

  // Never recreate the root: an unmounted share would silently fill the disk under its mount point.
  async #mkdirp(path: string): Promise<void> {
    if (!(await this.#rootExists())) throw remoteUnavailable(this.label, undefined, `its folder ${this.root} no longer exists`)
    await mkdir(path, { recursive: true, mode: FOLDER_MODE })
  }

  #rootExists(): Promise<boolean> {
    return stat(this.root).then(s => s.isDirectory(), () => false)
  }

  #resolve(path: string): string {
    return join(this.root, normalizePath(path))
  }

  async #guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (error) {
      throw await toRemoteError(error, this.label, async () => !(await this.#rootExists()))
    }
  }
}

/** A local folder as a remote handler (what tests and tools open directly, without retries). */
export class LocalHandler extends BackendHandler {
  readonly root: string

  constructor(root: string, label = `file://${root}`) {
    super(new LocalBackend(root, label))
    this.root = root
  }
}

class LocalFile implements RandomAccessFile {
  readonly #file: FileHandle
  readonly #guard: <T>(operation: () => Promise<T>) => Promise<T>

  constructor(file: FileHandle, guard: <T>(operation: () => Promise<T>) => Promise<T>) {
    this.#file = file
    this.#guard = guard
  }

  read(buffer: Buffer, position: number): Promise<number> {
    return this.#guard(async () => {
      let done = 0
      while (done < buffer.length) {
        const { bytesRead } = await this.#file.read(buffer, done, buffer.length - done, position + done)
        if (bytesRead === 0) break
        done += bytesRead
      }
      return done
    })
  }

  write(buffer: Buffer, position: number): Promise<void> {
    return this.#guard(async () => {
      let done = 0
      while (done < buffer.length) {
        const { bytesWritten } = await this.#file.write(buffer, done, buffer.length - done, position + done)
        done += bytesWritten
      }
    })
  }

  size(): Promise<number> {
    return this.#guard(async () => (await this.#file.stat()).size)
  }

  truncate(size: number): Promise<void> {
    return this.#guard(() => this.#file.truncate(size))
  }

  close(): Promise<void> {
    return this.#guard(() => this.#file.close())
  }
}
