// The NFS backend: NFSv3 spoken from user space (source/storage/nfs/), so the daemon needs neither root
// nor a kernel NFS client. It is the local backend over the network: writes go to a temporary file renamed
// (or linked, for write-if-absent) into place, random writes keep their file handle, locks are lock folders.
import { randomBytes } from 'node:crypto'
import { posix } from 'node:path'
import { Readable } from 'node:stream'
import { normalizePath, pageOf, type Backend, type Capabilities, type EntryStat, type ListPage, type LockOptions, type RemoteLock, type RemoteSpace, type WriteData, type WriteOptions } from './backend.ts'
import { alreadyRetried, remoteFull, remoteUnavailable, wasRetried, writeIncomplete } from './errors.ts'
import { takeDirectoryLock, type LockFolderOps } from './lock.ts'
import { IN_FLIGHT, NfsFile, readFully, UnstableWrites } from './nfs/file.ts'
import { FileType, Nfs3Client, NfsError, type FileHandle } from './nfs/nfs3.ts'
import { AUTH_TOOWEAK, CONNECTION_LOST, type RpcError } from './nfs/rpc.ts'
import type { RemoteUrl } from './url.ts'
import type { RandomAccessFile } from '../formats/vhd/index.ts'
import { LifeboatError } from '../util/errors.ts'
import { terminalSafeLine } from '../util/terminal-text.ts'

const FILE_MODE = 0o640
const FOLDER_MODE = 0o750
// READ and WRITE sizes are the server's maxima bounded by this; with IN_FLIGHT of them at once, a
// transfer keeps the connection busy and its memory bounded whatever the file's size.
const MAX_TRANSFER = 1024 * 1024
// Folder handles remembered (a cache past this is dropped whole: it refills on the next lookups).
const MAX_CACHED_FOLDERS = 10_000

export type NfsRemote = Extract<RemoteUrl, { type: 'nfs' }>

export interface NfsBackendOptions {
  /** Bound on each RPC call (default 60 s): past it the connection is considered dead. */
  timeoutMs?: number
  /** Waits before resending calls after a lost connection (their count bounds the retries). */
  retryDelaysMs?: number[]
  /** The portmapper's port: 111 everywhere but in tests. */
  portmapperPort?: number
}

export class NfsBackend implements Backend {
  readonly label: string
  readonly capabilities: Capabilities = { atomicRename: true, randomWrite: true, freeSpaceKnown: true, conditionalCreate: true, folders: true, connections: 10 }
  readonly #remote: NfsRemote
  readonly #uid: number
  readonly #gid: number
  readonly #client: Nfs3Client
  #mounted: { exportPath: string; root: FileHandle } | undefined
  #mounting: Promise<FileHandle> | undefined
  // Folder path (relative to the root) → its handle. Files are looked up each time: another client may
  // replace one by a rename, and only a folder's handle is safe to keep.
  readonly #folders = new Map<string, FileHandle>()
  #rsize = MAX_TRANSFER
  #wsize = MAX_TRANSFER

  constructor(remote: NfsRemote, label: string, options: NfsBackendOptions = {}) {
    this.#remote = remote
    this.label = label
    const version = remote.options['version']
    if (version !== undefined && Number(version) !== 3) throw new LifeboatError('REMOTE_BAD_URL', `Lifeboat speaks NFS version 3, not ${JSON.stringify(version)}: set version=3 in the remote's URL, or remove the option.`)
    this.#uid = numberOption(remote, 'uid', process.getuid?.() ?? 0)
    this.#gid = numberOption(remote, 'gid', process.getgid?.() ?? 0)
    const mountPort = remote.options['mountPort']
    this.#client = new Nfs3Client({
      host: remote.host,
      ...(remote.port !== undefined && { port: Number(remote.port) }),
      ...(mountPort !== undefined && { mountPort: numberOption(remote, 'mountPort', 0) }),
      credentials: { uid: this.#uid, gid: this.#gid },
      ...options,
    })
  }

  /** Mounts the export and checks the remote's folder (never creates it: a wrong path must not become a new folder). */
  sync(): Promise<void> {
    return this.#guard('mount', async () => {
      this.#mounted = undefined
      this.#folders.clear()
      await this.#root()
    })
  }

  async close(): Promise<void> {
    const mounted = this.#mounted
    this.#mounted = undefined
    try {
      if (mounted !== undefined) await this.#client.umnt(mounted.exportPath).catch(() => {})
    } finally {
      this.#client.close()
    }
  }

  info(): Promise<RemoteSpace> {
    return this.#guard('info', async () => {
      const space = await this.#client.fsstat(await this.#root())
      return { size: space.totalBytes, used: space.totalBytes - space.freeBytes, available: space.availableBytes }
    })
  }

  list(dir: string, options: { cursor?: string; limit?: number } = {}): Promise<ListPage> {
    const relative = normalizePath(dir)
    return this.#guard(operation('list', relative), async () => {
      let handle: FileHandle
      try {
        handle = await this.#folder(relative, false)
      } catch (error) {
        if ((error as NfsError).code === 'ENOENT') return { entries: [] }
        throw error
      }
      const entries = await this.#client.readdirplus(handle, `READDIRPLUS ${relative}`)
      const listed = await Promise.all(
        entries.map(async entry => {
          const type = entry.attributes?.type ?? (await this.#client.lookup(handle, entry.name)).attributes?.type
          if (type === FileType.directory && entry.handle !== undefined) this.#remember(posix.join(relative, entry.name), entry.handle)
          return { name: entry.name, isDirectory: type === FileType.directory }
        }),
      )
      return pageOf(listed, options)
    })
  }

  stat(path: string): Promise<EntryStat> {
    const relative = normalizePath(path)
    return this.#guard(operation('stat', relative), async () => {
      const attributes = await this.#client.getattr(await this.#resolve(relative), `GETATTR ${relative}`)
      return { size: attributes.size, mtimeMs: attributes.mtimeMs, isDirectory: attributes.type === FileType.directory }
    })
  }

  read(path: string, range?: { start: number; end?: number }): Promise<Readable> {
    const relative = normalizePath(path)
    return this.#guard(`read ${relative}`, async () => {
      const handle = await this.#resolve(relative)
      const { size, type } = await this.#client.getattr(handle, `GETATTR ${relative}`)
      if (type === FileType.directory) throw Object.assign(new Error(`${relative} on ${this.label} is a folder`), { code: 'EISDIR' })
      const start = range?.start ?? 0
      const end = Math.min(size, range?.end === undefined ? size : range.end + 1)
      return this.#readStream(handle, relative, start, end)
    })
  }

  /** A temporary `<dir>/.<name>.<random>.tmp` renamed (or linked, for ifAbsent) into place: a crash leaves only it. */
  write(path: string, data: WriteData, options: WriteOptions = {}): Promise<number> {
    const relative = normalizePath(path)
    return this.#guard(`write ${relative}`, async () => {
      const dirPath = posix.dirname(relative) === '.' ? '' : posix.dirname(relative)
      const name = posix.basename(relative)
      const dir = await this.#folder(dirPath, true)
      const temporary = `.${name}.${randomBytes(4).toString('hex')}.tmp`
      const handle = await this.#client.create(dir, temporary, FILE_MODE, true, `CREATE ${posix.join(dirPath, temporary)}`)
      try {
        const size = await this.#writeAll(handle, relative, data, options.signal)
        if (options.length !== undefined && size !== options.length) throw writeIncomplete(relative, this.label, size, options.length)
        if (options.ifAbsent === true) {
          const { fileid } = await this.#client.getattr(handle, `GETATTR ${relative}`)
          await this.#client.link(handle, dir, name, fileid, `LINK ${relative}`)
          await this.#client.remove(dir, temporary, `REMOVE ${posix.join(dirPath, temporary)}`)
        } else await this.#client.rename(dir, temporary, dir, name, `RENAME to ${relative}`)
        return size
      } catch (error) {
        await this.#client.remove(dir, temporary).catch(() => {})
        throw error
      }
      // A stream is read once: it cannot be written again after a stale handle.
    }, typeof data === 'string' || Buffer.isBuffer(data))
  }

  async #writeAll(handle: FileHandle, relative: string, data: WriteData, signal: AbortSignal | undefined): Promise<number> {
    const writes = new UnstableWrites(this.#client, handle, relative)
    if (typeof data === 'string' || Buffer.isBuffer(data)) {
      const buffer = typeof data === 'string' ? Buffer.from(data) : data
      for (let offset = 0; offset < buffer.length; offset += this.#wsize) await writes.write(offset, buffer.subarray(offset, offset + this.#wsize))
      await writes.commit()
      return buffer.length
    }
    // Chunks are gathered into blocks of the write size: few large WRITEs, several in flight.
    let block = Buffer.allocUnsafe(this.#wsize)
    let filled = 0
    let offset = 0
    for await (const chunk of data) {
      signal?.throwIfAborted()
      let used = 0
      while (used < chunk.length) {
        const n = Math.min(chunk.length - used, block.length - filled)
        block.set(chunk.subarray(used, used + n), filled)
        filled += n
        used += n
        if (filled === block.length) {
          await writes.write(offset, block)
          offset += filled
          block = Buffer.allocUnsafe(this.#wsize)
          filled = 0
        }
      }
    }
    signal?.throwIfAborted()
    if (filled > 0) await writes.write(offset, block.subarray(0, filled))
    await writes.commit()
    return offset + filled
  }

  #readStream(handle: FileHandle, relative: string, start: number, end: number): Readable {
    const queue: Array<Promise<Buffer>> = []
    let next = start
    let pumping = false
    const fill = () => {
      while (queue.length < IN_FLIGHT && next < end) {
        const count = Math.min(this.#rsize, end - next)
        const reading = readFully(this.#client, handle, next, count, `READ ${relative}`)
        reading.catch(() => {})
        queue.push(reading)
        next += count
      }
    }
    const stream = new Readable({
      highWaterMark: this.#rsize,
      read: () => {
        if (pumping) return
        pumping = true
        void (async () => {
          try {
            for (;;) {
              fill()
              const reading = queue.shift()
              if (reading === undefined) return void stream.push(null)
              const data = await reading
              if (stream.destroyed) return
              // The file is shorter than it was: what is there has been given.
              if (data.length === 0) return void stream.push(null)
              if (!stream.push(data)) return
            }
          } catch (error) {
            stream.destroy(this.#mapError(error, `read ${relative}`) as Error)
          } finally {
            pumping = false
          }
        })()
      },
      destroy: (error, callback) => {
        next = end
        queue.length = 0
        callback(error)
      },
    })
    return stream
  }

  delete(paths: string[]): Promise<void> {
    return this.#guard(operation('delete', paths[0] ?? ''), async () => {
      for (const path of paths) {
        const relative = normalizePath(path)
        if (relative === '') continue
        try {
          const { dir, name } = await this.#parent(relative, false)
          await this.#client.remove(dir, name, `REMOVE ${relative}`)
        } catch (error) {
          if ((error as NfsError).code !== 'ENOENT') throw error
        }
      }
    })
  }

  rename(from: string, to: string): Promise<void> {
    const source = normalizePath(from)
    const target = normalizePath(to)
    return this.#guard(`rename ${source}`, async () => {
      const a = await this.#parent(source, false)
      const b = await this.#parent(target, false)
      this.#forget(source)
      this.#forget(target)
      await this.#client.rename(a.dir, a.name, b.dir, b.name, `RENAME ${source} to ${target}`)
    })
  }

  /** The file's handle is kept for every block: looking it up again per block is what made XO's NFS merges slow. */
  open(path: string, mode: 'r' | 'r+'): Promise<RandomAccessFile> {
    const relative = normalizePath(path)
    return this.#guard(`open ${relative}`, async () => {
      const handle = await this.#resolve(relative)
      const { type } = await this.#client.getattr(handle, `GETATTR ${relative}`)
      if (type === FileType.directory) throw Object.assign(new Error(`${relative} on ${this.label} is a folder`), { code: 'EISDIR' })
      // A stale handle here is a file deleted or replaced under us: the same path would be another file.
      return new NfsFile(this.#client, handle, relative, mode, { read: this.#rsize, write: this.#wsize }, (what, operation) => this.#guard(what, operation, false))
    })
  }

  mkdir(path: string): Promise<void> {
    const relative = normalizePath(path)
    return this.#guard(operation('mkdir', relative), async () => void (await this.#folder(relative, true)))
  }

  rmdir(path: string): Promise<void> {
    const relative = normalizePath(path)
    return this.#guard(`rmdir ${relative}`, async () => {
      const { dir, name } = await this.#parent(relative, false)
      this.#forget(relative)
      await this.#client.rmdir(dir, name, `RMDIR ${relative}`)
    })
  }

  /** Removes a folder and everything under it (a file too); a missing one is not an error. */
  rmtree(path: string): Promise<void> {
    const relative = normalizePath(path)
    return this.#guard(operation('rmtree', relative), async () => {
      let target: { dir: FileHandle; name: string }
      let type: number | undefined
      try {
        target = await this.#parent(relative, false)
        type = (await this.#client.lookup(target.dir, target.name, `LOOKUP ${relative}`)).attributes?.type
      } catch (error) {
        if ((error as NfsError).code === 'ENOENT') return
        throw error
      }
      if (type !== FileType.directory) return void (await this.#client.remove(target.dir, target.name, `REMOVE ${relative}`).catch(ignoreMissing))
      await this.#empty(relative)
      this.#forget(relative)
      await this.#client.rmdir(target.dir, target.name, `RMDIR ${relative}`).catch(ignoreMissing)
    })
  }

  async #empty(relative: string): Promise<void> {
    const handle = await this.#folder(relative, false)
    const entries = await this.#client.readdirplus(handle, `READDIRPLUS ${relative}`)
    for (let i = 0; i < entries.length; i += IN_FLIGHT * 2) {
      await Promise.all(
        entries.slice(i, i + IN_FLIGHT * 2).map(async entry => {
          const child = posix.join(relative, entry.name)
          const type = entry.attributes?.type ?? (await this.#client.lookup(handle, entry.name)).attributes?.type
          if (type === FileType.directory) {
            if (entry.handle !== undefined) this.#remember(child, entry.handle)
            await this.#empty(child)
            this.#forget(child)
            await this.#client.rmdir(handle, entry.name, `RMDIR ${child}`).catch(ignoreMissing)
          } else await this.#client.remove(handle, entry.name, `REMOVE ${child}`).catch(ignoreMissing)
        }),
      )
    }
  }

  lock(path: string, options?: LockOptions): Promise<RemoteLock> {
    const relative = normalizePath(path)
    return this.#guard(`lock ${relative}`, async () => {
      await this.#folder(posix.dirname(relative) === '.' ? '' : posix.dirname(relative), true)
      return takeDirectoryLock(this.#lockFolder(), relative, `${relative} on ${this.label}`, options)
    })
  }

  // The lock folder is looked up afresh each time: another holder may have renamed it aside.
  #lockFolder(): LockFolderOps {
    const fresh = async (path: string) => {
      const { dir, name } = await this.#parent(path, false)
      return (await this.#client.lookup(dir, name, `LOOKUP ${path}`)).handle
    }
    return {
      mkdir: path =>
        this.#guard(`mkdir ${path}`, async () => {
          const { dir, name } = await this.#parent(path, false)
          await this.#client.mkdir(dir, name, FOLDER_MODE, true, `MKDIR ${path}`)
        }),
      mtimeMs: path =>
        this.#guard(`stat ${path}`, async () => {
          try {
            return (await this.#client.getattr(await fresh(path), `GETATTR ${path}`)).mtimeMs
          } catch (error) {
            if ((error as NfsError).code === 'ENOENT') return undefined
            throw error
          }
        }),
      touch: path => this.#guard(`touch ${path}`, async () => this.#client.setattr(await fresh(path), { mtimeToServerTime: true }, `SETATTR ${path}`)),
      rename: (from, to) => this.rename(from, to),
      rmtree: path => this.rmtree(path),
      writeFile: async (path, data) => void (await this.write(path, data)),
      readFile: async path => {
        const chunks: Buffer[] = []
        for await (const chunk of await this.read(path)) chunks.push(chunk as Buffer)
        return Buffer.concat(chunks).toString('utf8')
      },
    }
  }

  // Paths and handles.

  /** The handle of the remote's folder, mounting on first use. */
  #root(): Promise<FileHandle> {
    if (this.#mounted !== undefined) return Promise.resolve(this.#mounted.root)
    this.#mounting ??= this.#mount().finally(() => (this.#mounting = undefined))
    return this.#mounting
  }

  // MNT the export the URL's path lies in (EXPORT tells which prefix it is), then LOOKUP the rest.
  async #mount(): Promise<FileHandle> {
    const path = posix.normalize(this.#remote.path).replace(/\/+$/, '') || '/'
    const exports = await this.#client.exports().catch(() => [] as string[])
    const within = (exported: string) => exported === '/' || path === exported || path.startsWith(`${exported.replace(/\/+$/, '')}/`)
    const exportPath = exports.filter(within).sort((a, b) => b.length - a.length)[0] ?? path
    let handle: FileHandle
    try {
      handle = await this.#client.mnt(exportPath)
    } catch (error) {
      // Some servers list only part of their exports: the path was tried anyway.
      if (exports.length === 0 || exports.some(within) || !(error instanceof NfsError)) throw error
      throw remoteUnavailable(this.label, error, `${path} is in none of the exports of ${this.#remote.host} (${exports.slice(0, 10).map(e => terminalSafeLine(e)).join(', ')}): correct the remote's path`)
    }
    const rest = path.slice(exportPath.length).split('/').filter(Boolean)
    try {
      for (const name of rest) handle = (await this.#client.lookup(handle, name, `LOOKUP ${name}`)).handle
    } catch (error) {
      if ((error as NfsError).code !== 'ENOENT') throw error
      throw remoteUnavailable(this.label, error, `its folder ${path} does not exist in the export ${exportPath} (create it on the server)`)
    }
    const { type } = await this.#client.getattr(handle, `GETATTR ${path}`)
    if (type !== FileType.directory) throw remoteUnavailable(this.label, undefined, `${path} on the NFS server is not a folder`)
    const info = await this.#client.fsinfo(handle)
    this.#rsize = Math.min(MAX_TRANSFER, info.rtmax || MAX_TRANSFER)
    this.#wsize = Math.min(MAX_TRANSFER, info.wtmax || MAX_TRANSFER)
    this.#mounted = { exportPath, root: handle }
    return handle
  }

  /** A folder's handle; with `create`, missing folders on the way are made (mkdir -p). */
  async #folder(relative: string, create: boolean): Promise<FileHandle> {
    if (relative === '') return this.#root()
    const cached = this.#folders.get(relative)
    if (cached !== undefined) return cached
    const parentPath = posix.dirname(relative) === '.' ? '' : posix.dirname(relative)
    const parent = await this.#folder(parentPath, create)
    const name = posix.basename(relative)
    const handle = create ? await this.#lookupOrCreate(parent, name, relative) : (await this.#client.lookup(parent, name, `LOOKUP ${relative}`)).handle
    this.#remember(relative, handle)
    return handle
  }

  async #lookupOrCreate(dir: FileHandle, name: string, relative: string): Promise<FileHandle> {
    try {
      const found = await this.#client.lookup(dir, name, `LOOKUP ${relative}`)
      if (found.attributes !== undefined && found.attributes.type !== FileType.directory) throw Object.assign(new Error(`${relative} on ${this.label} is a file, not a folder`), { code: 'ENOTDIR' })
      return found.handle
    } catch (error) {
      if ((error as NfsError).code !== 'ENOENT') throw error
    }
    try {
      return await this.#client.mkdir(dir, name, FOLDER_MODE, false, `MKDIR ${relative}`)
    } catch (error) {
      // Made meanwhile by another writer.
      if ((error as NfsError).code === 'EEXIST') return (await this.#client.lookup(dir, name, `LOOKUP ${relative}`)).handle
      throw error
    }
  }

  async #parent(relative: string, create: boolean): Promise<{ dir: FileHandle; name: string }> {
    const dirPath = posix.dirname(relative) === '.' ? '' : posix.dirname(relative)
    return { dir: await this.#folder(dirPath, create), name: posix.basename(relative) }
  }

  /** Any entry's handle: folders from the cache, files looked up. */
  async #resolve(relative: string): Promise<FileHandle> {
    if (relative === '') return this.#root()
    const cached = this.#folders.get(relative)
    if (cached !== undefined) return cached
    const { dir, name } = await this.#parent(relative, false)
    const found = await this.#client.lookup(dir, name, `LOOKUP ${relative}`)
    if (found.attributes?.type === FileType.directory) this.#remember(relative, found.handle)
    return found.handle
  }

  #remember(relative: string, handle: FileHandle): void {
    if (this.#folders.size >= MAX_CACHED_FOLDERS) this.#folders.clear()
    this.#folders.set(relative, handle)
  }

  #forget(relative: string): void {
    for (const key of this.#folders.keys()) if (key === relative || key.startsWith(`${relative}/`)) this.#folders.delete(key)
  }

  // A stale handle (the export was re-created, a folder replaced by another client) gets one more try
  // with every handle looked up again; the errors left become the storage errors.
  async #guard<T>(what: string, operation: () => Promise<T>, again = true): Promise<T> {
    try {
      try {
        return await operation()
      } catch (error) {
        if ((error as NfsError).code !== 'ESTALE' || !again) throw error
        this.#folders.clear()
        this.#mounted = undefined
        return await operation()
      }
    } catch (error) {
      throw this.#mapError(error, what)
    }
  }

  #mapError(error: unknown, what: string): unknown {
    if (error instanceof LifeboatError) return error
    const code = (error as { code?: string } | undefined)?.code
    const message = (error as Error | undefined)?.message ?? String(error)
    if (code === 'ENOSPC' || code === 'EDQUOT') return remoteFull(this.label, error)
    if (code === 'ESTALE') return remoteUnavailable(this.label, error, `the NFS server no longer knows the files Lifeboat was using (stale file handle during ${what}, even after looking them up again): the export was probably replaced or re-created`)
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'EAUTH') return this.#refused(what, message, error)
    if (code === 'EBADRPC') return remoteUnavailable(this.label, error, `the NFS server sent a reply that does not decode as NFSv3 (${message})`)
    if (code !== undefined && (CONNECTION_LOST.has(code) || code === 'EPROGUNAVAIL' || code === 'EIO' || code === 'ESERVERFAULT' || code === 'EJUKEBOX' || code === 'EBADHANDLE')) {
      const unavailable = remoteUnavailable(this.label, error, message)
      return wasRetried(error) ? alreadyRetried(unavailable) : unavailable
    }
    if (error instanceof NfsError && (code === 'ENOENT' || code === 'EEXIST' || code === 'ENOTEMPTY' || code === 'ENOTDIR' || code === 'EISDIR')) {
      return Object.assign(new Error(`${message} on ${this.label}`, { cause: error }), { code })
    }
    return error
  }

  // One cause, one change: the sentence says which option of the export (or of the URL) refused.
  #refused(what: string, message: string, cause: unknown): LifeboatError {
    const code = (cause as { code?: string }).code
    const ids = `uid ${this.#uid} and gid ${this.#gid}${this.#uid === 0 ? ' (root)' : ''}`
    let change: string
    if (cause instanceof NfsError && cause.protocol === 'mount') {
      change = `The server does not export ${terminalSafeLine(this.#remote.path)} to this machine: add this machine's address to the export's client list (Linux: the host in /etc/exports; ganesha: Clients in the export's CLIENT block); ` +
        'a Linux export marked `secure` also refuses the mount, as Lifeboat connects from a port above 1023: add `insecure` there.'
    } else if (code === 'EAUTH' && (cause as RpcError).authStatus === AUTH_TOOWEAK) {
      change = 'The export accepts only a privileged source port (`secure`; ganesha: PrivilegedPort = true), and Lifeboat runs unprivileged and connects from a port above 1023: ' +
        'mark the export `insecure` (ganesha: PrivilegedPort = false).'
    } else if (code === 'EAUTH') {
      change = 'Lifeboat sends AUTH_SYS credentials (a uid and a gid) only: allow them on the export (Linux: sec=sys; ganesha: SecType = sys).'
    } else if (code === 'EROFS') {
      change = 'The export is read-only: export it read-write to this machine (Linux: `rw` in /etc/exports; ganesha: Access_Type = RW).'
    } else {
      change = `Lifeboat sends ${ids}; with root squash (the default) root becomes the export's anonuid, with all_squash every user does, and that user may not write here: ` +
        "set ?uid= and ?gid= in the remote's URL to the owner of the exported folder, or give the anonuid write access to it (or export it with no_root_squash)."
    }
    return new LifeboatError('REMOTE_AUTH', `The NFS server ${this.#remote.host} refused ${what} on ${this.label} (${message}). ${change}`, { cause })
  }
}

// What a sentence says was refused: the remote's own folder is the path ''.
function operation(verb: string, relative: string): string {
  return relative === '' ? verb : `${verb} ${relative}`
}

function ignoreMissing(error: unknown): void {
  if ((error as NfsError).code !== 'ENOENT') throw error
}

function numberOption(remote: NfsRemote, name: string, fallback: number): number {
  const value = remote.options[name]
  if (value === undefined) return fallback
  const number = Number(value)
  if (!Number.isInteger(number) || number < 0) throw new LifeboatError('REMOTE_BAD_URL', `The NFS remote's option ${name} must be a whole number, not ${JSON.stringify(value)}.`)
  return number
}
