// The local handler: a remote that is a folder of this machine (`file:///path`); NFS and SMB handlers
// will be this plus a mount.
import { createWriteStream } from 'node:fs'
import { link, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, statfs, unlink, type FileHandle } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { dirname, join, posix } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { Readable } from 'node:stream'
import { LifeboatError } from '../util/errors.ts'
import { remoteUnavailable, toRemoteError } from './errors.ts'
import { temporaryName, type LockOptions, type OutputStreamOptions, type RandomAccessFile, type RemoteEntryStat, type RemoteHandler, type RemoteLock, type RemoteSpace } from './handler.ts'
import { takeDirectoryLock } from './lock.ts'
import { once } from 'node:events'

// Backups hold whole VM disks: no access for others; the group may read (a restore host, an XO in the same group).
const FILE_MODE = 0o640
const FOLDER_MODE = 0o750

export class LocalHandler implements RemoteHandler {
  readonly root: string
  readonly label: string

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

  getInfo(): Promise<RemoteSpace> {
    return this.#guard(async () => {
      const fs = await statfs(this.root)
      return { size: fs.blocks * fs.bsize, used: (fs.blocks - fs.bfree) * fs.bsize, available: fs.bavail * fs.bsize }
    })
  }

  list(dir: string, options: { ignoreMissing?: boolean } = {}): Promise<string[]> {
    return this.#guard(async () => {
      try {
        return (await readdir(this.#resolve(dir))).sort()
      } catch (error) {
        if (options.ignoreMissing === true && (error as NodeJS.ErrnoException).code === 'ENOENT') return []
        throw error
      }
    })
  }

  stat(path: string): Promise<RemoteEntryStat> {
    return this.#guard(async () => {
      const stats = await stat(this.#resolve(path))
      return { size: stats.size, mtimeMs: stats.mtimeMs, isDirectory: stats.isDirectory() }
    })
  }

  createReadStream(path: string, range: { start?: number; end?: number } = {}): Promise<Readable> {
    return this.#guard(async () => {
      const file = await open(this.#resolve(path), 'r')
      return file.createReadStream({ ...(range.start !== undefined && { start: range.start }), ...(range.end !== undefined && { end: range.end }) })
    })
  }

  outputStream(path: string, source: AsyncIterable<Buffer | Uint8Array>, options: OutputStreamOptions = {}): Promise<number> {
    return this.#guard(() =>
      this.#commit(path, 'w', async temporary => {
        let size = 0
        const file = createWriteStream(this.#resolve(temporary), { flags: 'wx', flush: true, mode: FILE_MODE })
        try {
          await pipeline(
            async function* () {
              for await (const chunk of source) {
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
        if (options.length !== undefined && size !== options.length) {
          throw new LifeboatError('REMOTE_WRITE_INCOMPLETE', `Writing ${path} on ${this.label} received ${size} bytes instead of ${options.length}: the source stopped early; nothing was committed.`)
        }
        await options.validator?.(temporary)
        return size
      }),
    )
  }

  readFile(path: string): Promise<Buffer> {
    return this.#guard(() => readFile(this.#resolve(path)))
  }

  writeFile(path: string, data: Buffer | string, options: { flag?: 'w' | 'wx' } = {}): Promise<void> {
    return this.#guard(() =>
      this.#commit(path, options.flag ?? 'w', async temporary => {
        const file = await open(this.#resolve(temporary), 'wx', FILE_MODE)
        try {
          await file.writeFile(data)
          await file.sync()
        } finally {
          await file.close()
        }
      }),
    )
  }

  rename(from: string, to: string): Promise<void> {
    return this.#guard(() => rename(this.#resolve(from), this.#resolve(to)))
  }

  unlink(path: string): Promise<void> {
    return this.#guard(() => unlink(this.#resolve(path)))
  }

  rmdir(path: string): Promise<void> {
    return this.#guard(() => rmdir(this.#resolve(path)))
  }

  rmtree(path: string): Promise<void> {
    return this.#guard(() => rm(this.#resolve(path), { recursive: true, force: true }))
  }

  mkdir(path: string): Promise<void> {
    return this.#guard(() => this.#mkdirp(this.#resolve(path)))
  }

  openFile(path: string, mode: 'r' | 'r+'): Promise<RandomAccessFile> {
    return this.#guard(async () => new LocalFile(await open(this.#resolve(path), mode), fn => this.#guard(fn)))
  }

  lock(path: string, options?: LockOptions): Promise<RemoteLock> {
    return this.#guard(async () => {
      const target = this.#resolve(path)
      await this.#mkdirp(dirname(target))
      return takeDirectoryLock(target, `${normalize(path)} on ${this.label}`, options)
    })
  }

  /**
   * The commit protocol: write `<dir>/.<name>.<random>.tmp`, then rename (or link, for 'wx', which fails
   * when the target exists) into place. A failure removes the temporary file; a crash leaves only it.
   */
  async #commit<T>(path: string, flag: 'w' | 'wx', write: (temporary: string) => Promise<T>): Promise<T> {
    const relative = normalize(path)
    const temporary = posix.join(posix.dirname(relative), temporaryName(posix.basename(relative), randomBytes(4).toString('hex')))
    await this.#mkdirp(dirname(this.#resolve(relative)))
    try {
      const result = await write(temporary)
      if (flag === 'wx') {
        await link(this.#resolve(temporary), this.#resolve(relative))
        await unlink(this.#resolve(temporary))
      } else await rename(this.#resolve(temporary), this.#resolve(relative))
      return result
    } catch (error) {
      await unlink(this.#resolve(temporary)).catch(() => {})
      throw error
    }
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
    return join(this.root, normalize(path))
  }

  async #guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (error) {
      throw await toRemoteError(error, this.label, async () => !(await this.#rootExists()))
    }
  }
}

/** A path inside the remote: '/'-separated, relative, and never above the root ('..' stops there, as in XO). */
function normalize(path: string): string {
  return posix.normalize(`/${path}`).slice(1)
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

