// The SMB backend: a share spoken to from user space by our own SMB 2.1/3.x client (./smb/), so the daemon
// needs no mount, no root and no kernel CIFS. Why our own client and not an npm one — measured on Samba
// 4.17 with its default settings (aio on, `ntlm auth = ntlmv2-only`), test-infra.md §3, reproduced on
// 2026-12-01: v9u-smb2 1.0.6 (the only NTLMv2 one) fails every write with STATUS_PENDING (it treats the
// interim answer of an asynchronous write as the final one) and, without --openssl-legacy-provider, fails
// before that with ERR_OSSL_EVP_UNSUPPORTED (MD4 in ntlm2); @marsaud/smb2, smb2, @awo00/smb2 and node-smb2
// speak NTLMv1 only, which default Samba refuses (LOGON_FAILURE), and @awo00/smb2 returns wrong bytes once
// aio is on; their streams close twice on node 20. Fixing them would mean rewriting their transport anyway
// (credits, STATUS_PENDING, signing) and running the daemon with OpenSSL's legacy provider.
// Like the local backend it has folders, atomic rename and random writes: writes go to `.<name>.<8 hex>.tmp`
// and are renamed into place on the same handle (ReplaceIfExists false for write-if-absent).
import { randomBytes } from 'node:crypto'
import { posix } from 'node:path'
import { Readable } from 'node:stream'
import { LifeboatError } from '../util/errors.ts'
import { normalizePath, pageOf, type Backend, type Capabilities, type EntryStat, type ListPage, type LockOptions, type RemoteLock, type RemoteSpace, type WriteData, type WriteOptions } from './backend.ts'
import { remoteFull, remoteUnavailable, writeIncomplete } from './errors.ts'
import { takeDirectoryLock, type LockFolderOps } from './lock.ts'
import type { RemoteUrl } from './url.ts'
import type { RandomAccessFile } from '../formats/vhd/index.ts'
import { Access, Disposition, SmbClient, type Attributes, type OpenSpec, type SmbHandle } from './smb/client.ts'
import { SmbConnectionError, SmbRefusedError } from './smb/connection.ts'
import { AUTH_FAILURES, SmbStatusError, Status, statusName } from './smb/status.ts'

export type SmbRemote = Extract<RemoteUrl, { type: 'smb' }>

// Requests of one stream in flight at once, each of at most CHUNK bytes: latency hidden, memory bounded.
const DEPTH = 4
const CHUNK = 1024 * 1024
const DEFAULT_PORT = 445

const NOT_FOUND = new Set<number>([Status.OBJECT_NAME_NOT_FOUND, Status.OBJECT_PATH_NOT_FOUND, Status.NO_SUCH_FILE, Status.DELETE_PENDING])
const FULL = new Set<number>([Status.DISK_FULL, Status.QUOTA_EXCEEDED])

const READ: OpenSpec = { access: Access.READ_DATA | Access.READ_ATTRIBUTES, disposition: Disposition.OPEN, directory: false }
const ATTRIBUTES: OpenSpec = { access: Access.READ_ATTRIBUTES, disposition: Disposition.OPEN }
const FOLDER: OpenSpec = { access: Access.READ_DATA | Access.READ_ATTRIBUTES, disposition: Disposition.OPEN, directory: true }
const DELETE_FILE: OpenSpec = { access: Access.DELETE | Access.READ_ATTRIBUTES, disposition: Disposition.OPEN, directory: false }
const DELETE_FOLDER: OpenSpec = { access: Access.DELETE | Access.READ_DATA | Access.READ_ATTRIBUTES, disposition: Disposition.OPEN, directory: true }

export interface SmbBackendOptions {
  /** Bound on a request without an answer (default 60 s). */
  timeoutMs?: number
  /** Bound on a request the server said is pending (default 10 min). */
  pendingTimeoutMs?: number
  /** Reconnects for an idempotent request after a dropped connection (default 3). */
  retries?: number
}

/** `host[:port]\share` as XO stores it (an IPv6 address in brackets). */
export function parseSmbTarget(target: string): { host: string; port: number; share: string } {
  const separator = target.indexOf('\\')
  const address = separator === -1 ? target : target.slice(0, separator)
  const share = separator === -1 ? '' : target.slice(separator + 1).replace(/\\+$/, '')
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(address)
  if (match === null || share === '' || share.includes('\\')) {
    throw new LifeboatError('REMOTE_BAD_URL', 'The SMB remote URL is not valid: the form is smb://user:password@DOMAIN\\\\host[:port]\\share\\0sub\\dir.')
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port: match[2] === undefined ? DEFAULT_PORT : Number(match[2]), share }
}

export class SmbBackend implements Backend {
  readonly label: string
  readonly capabilities: Capabilities = { atomicRename: true, randomWrite: true, freeSpaceKnown: true, conditionalCreate: true, folders: true, connections: 10 }
  readonly #client: SmbClient
  readonly #root: string
  readonly #share: string
  readonly #host: string
  readonly #user: string

  constructor(remote: SmbRemote, label: string, options: SmbBackendOptions = {}) {
    const { host, port, share } = parseSmbTarget(remote.host)
    // XO's form puts a NUL before the sub-folder: shown as \0, as `remote list` shows it and a shell types it, never raw in a log line.
    this.label = label.replaceAll('\0', '\\0')
    this.#share = share
    this.#host = host
    this.#user = remote.domain === '' ? remote.username : `${remote.domain}\\${remote.username}`
    this.#root = normalizePath(remote.path.replaceAll('\\', '/'))
    this.#client = new SmbClient({ host, port, share, credentials: { username: remote.username, password: remote.password, domain: remote.domain }, ...options })
  }

  /** Logs on and connects the share; the sub-folder of the URL may not exist yet (the first write creates it). */
  sync(): Promise<void> {
    return this.#guard('connect to', '', async () => {
      await this.#client.connection()
    })
  }

  close(): Promise<void> {
    return this.#client.close()
  }

  info(): Promise<RemoteSpace> {
    return this.#guard('read the free space of', '', async () => {
      const { size, available } = await this.#client.space()
      return { size, used: size - available, available }
    })
  }

  list(dir: string, options: { cursor?: string; limit?: number } = {}): Promise<ListPage> {
    return this.#guard('list', dir, async () => {
      let entries
      try {
        entries = await this.#client.with(this.#resolve(dir), FOLDER, handle => handle.entries())
      } catch (error) {
        if (error instanceof SmbStatusError && (NOT_FOUND.has(error.status) || error.status === Status.NOT_A_DIRECTORY)) return { entries: [] }
        throw error
      }
      return pageOf(entries.map(entry => ({ name: entry.name, isDirectory: entry.isDirectory })), options)
    })
  }

  stat(path: string): Promise<EntryStat> {
    return this.#guard('stat', path, async () => {
      const { size, mtimeMs, isDirectory } = await this.#attributes(this.#resolve(path))
      return { size, mtimeMs, isDirectory }
    })
  }

  read(path: string, range?: { start: number; end?: number }): Promise<Readable> {
    return this.#guard('read', path, async () => {
      const handle = await this.#client.open(this.#resolve(path), READ)
      const end = Math.min(handle.attributes.size, range?.end === undefined ? Infinity : range.end + 1)
      const chunk = Math.min(CHUNK, (await this.#client.connection()).maxRead)
      return Readable.from(this.#chunks(handle, range?.start ?? 0, end, chunk, path), { objectMode: false })
    })
  }

  // In-order chunks with DEPTH reads ahead; Readable.from pulls only as fast as the consumer reads.
  async *#chunks(handle: SmbHandle, start: number, end: number, chunk: number, path: string): AsyncGenerator<Buffer> {
    const ahead: Array<Promise<Buffer>> = []
    let next = start
    try {
      for (;;) {
        while (ahead.length < DEPTH && next < end) {
          const read = handle.read(next, Math.min(chunk, end - next))
          read.catch(() => {}) // awaited below in order; never an unhandled rejection if the reader stops early
          ahead.push(read)
          next += chunk
        }
        if (ahead.length === 0) return
        const data = await ahead.shift()!
        if (data.length === 0) return
        yield data
      }
    } catch (error) {
      throw this.#map(error, 'read', path)
    } finally {
      await Promise.allSettled(ahead)
      await handle.close().catch(() => {})
    }
  }

  write(path: string, data: WriteData, options: WriteOptions = {}): Promise<number> {
    return this.#guard('write', path, async () => {
      const target = this.#resolve(path)
      const dir = posix.dirname(target)
      const temporary = posix.join(dir, `.${posix.basename(target)}.${randomBytes(4).toString('hex')}.tmp`)
      const spec: OpenSpec = { access: Access.WRITE_DATA | Access.READ_ATTRIBUTES | Access.WRITE_ATTRIBUTES | Access.DELETE, disposition: Disposition.CREATE, directory: false }
      const handle = await this.#createFile(temporary, spec)
      let committed = false
      try {
        const size = await this.#writeAll(handle, data, options.signal)
        if (options.length !== undefined && size !== options.length) throw writeIncomplete(normalizePath(path), this.label, size, options.length)
        await handle.flush()
        await handle.rename(target, options.ifAbsent !== true)
        committed = true
        return size
      } finally {
        if (!committed) await handle.markDeleted().catch(() => {})
        await handle.close().catch(() => {})
      }
    })
  }

  // A missing parent folder is created on the first write into it (one CREATE per write otherwise).
  async #createFile(path: string, spec: OpenSpec): Promise<SmbHandle> {
    try {
      return await this.#client.open(path, spec, false)
    } catch (error) {
      if (!(error instanceof SmbStatusError && error.status === Status.OBJECT_PATH_NOT_FOUND)) throw error
      await this.#mkdirp(posix.dirname(path))
      return this.#client.open(path, spec, false)
    }
  }

  async #writeAll(handle: SmbHandle, data: WriteData, signal: AbortSignal | undefined): Promise<number> {
    const chunk = Math.min(CHUNK, (await this.#client.connection()).maxWrite)
    const inFlight = new Set<Promise<void>>()
    let failure: unknown
    let offset = 0
    const send = async (block: Buffer) => {
      while (inFlight.size >= DEPTH) await Promise.race(inFlight)
      if (failure !== undefined) throw failure
      const write: Promise<void> = handle.write(block, offset).then(
        () => void inFlight.delete(write),
        error => {
          failure ??= error
          inFlight.delete(write)
        },
      )
      inFlight.add(write)
      offset += block.length
    }
    try {
      if (typeof data === 'string' || Buffer.isBuffer(data)) {
        const buffer = typeof data === 'string' ? Buffer.from(data) : data
        for (let at = 0; at < buffer.length; at += chunk) await send(buffer.subarray(at, at + chunk))
      } else {
        let block = Buffer.allocUnsafe(chunk)
        let filled = 0
        for await (const piece of data) {
          signal?.throwIfAborted()
          for (let used = 0; used < piece.length; ) {
            // Whole chunks of the source go as they are; only the remainders are gathered (one copy).
            if (filled === 0 && piece.length - used >= chunk) {
              await send(Buffer.from(piece.buffer, piece.byteOffset + used, chunk))
              used += chunk
              continue
            }
            const n = Math.min(chunk - filled, piece.length - used)
            block.set(piece.subarray(used, used + n), filled)
            filled += n
            used += n
            if (filled === chunk) {
              await send(block)
              block = Buffer.allocUnsafe(chunk)
              filled = 0
            }
          }
        }
        signal?.throwIfAborted()
        if (filled > 0) await send(block.subarray(0, filled))
      }
    } finally {
      await Promise.allSettled(inFlight)
    }
    if (failure !== undefined) throw failure
    return offset
  }

  delete(paths: string[]): Promise<void> {
    return this.#guard('delete', paths[0] ?? '', async () => {
      for (let i = 0; i < paths.length; i += DEPTH * 2) await Promise.all(paths.slice(i, i + DEPTH * 2).map(path => this.#deleteFile(this.#resolve(path))))
    })
  }

  async #deleteFile(path: string): Promise<void> {
    try {
      await this.#client.with(path, DELETE_FILE, handle => handle.markDeleted())
    } catch (error) {
      if (!(error instanceof SmbStatusError && NOT_FOUND.has(error.status))) throw error
    }
  }

  rename(from: string, to: string): Promise<void> {
    return this.#guard('rename', from, () => this.#rename(this.#resolve(from), this.#resolve(to), true))
  }

  #rename(from: string, to: string, replace: boolean): Promise<void> {
    return this.#client.with(from, { access: Access.DELETE | Access.READ_ATTRIBUTES, disposition: Disposition.OPEN }, handle => handle.rename(to, replace), false)
  }

  open(path: string, mode: 'r' | 'r+'): Promise<RandomAccessFile> {
    return this.#guard('open', path, async () => {
      const spec: OpenSpec = mode === 'r' ? READ : { access: READ.access | Access.WRITE_DATA | Access.WRITE_ATTRIBUTES, disposition: Disposition.OPEN, directory: false }
      const handle = await this.#client.open(this.#resolve(path), spec)
      const connection = await this.#client.connection()
      return new SmbFile(handle, mode, Math.min(CHUNK, connection.maxRead), Math.min(CHUNK, connection.maxWrite), (what, fn) => this.#guard(what, path, fn))
    })
  }

  mkdir(path: string): Promise<void> {
    return this.#guard('create the folder', path, () => this.#mkdirp(this.#resolve(path)))
  }

  async #mkdirp(path: string): Promise<void> {
    if (path === '' || path === '.') return
    const create = () => this.#client.with(path, { access: Access.READ_ATTRIBUTES, disposition: Disposition.OPEN_IF, directory: true }, async () => {})
    try {
      await create()
    } catch (error) {
      if (!(error instanceof SmbStatusError && error.status === Status.OBJECT_PATH_NOT_FOUND)) throw error
      await this.#mkdirp(posix.dirname(path))
      await create()
    }
  }

  rmdir(path: string): Promise<void> {
    return this.#guard('remove the folder', path, () => this.#client.with(this.#resolve(path), DELETE_FOLDER, handle => handle.markDeleted(), false))
  }

  rmtree(path: string): Promise<void> {
    return this.#guard('remove the folder', path, () => this.#rmtree(this.#resolve(path)))
  }

  async #rmtree(path: string): Promise<void> {
    let entries
    try {
      entries = await this.#client.with(path, FOLDER, handle => handle.entries())
    } catch (error) {
      if (error instanceof SmbStatusError && NOT_FOUND.has(error.status)) return
      if (error instanceof SmbStatusError && error.status === Status.NOT_A_DIRECTORY) return this.#deleteFile(path)
      throw error
    }
    const files = entries.filter(entry => !entry.isDirectory)
    for (let i = 0; i < files.length; i += DEPTH * 2) await Promise.all(files.slice(i, i + DEPTH * 2).map(entry => this.#deleteFile(posix.join(path, entry.name))))
    for (const entry of entries) if (entry.isDirectory) await this.#rmtree(posix.join(path, entry.name))
    try {
      await this.#client.with(path, DELETE_FOLDER, handle => handle.markDeleted())
    } catch (error) {
      if (!(error instanceof SmbStatusError && NOT_FOUND.has(error.status))) throw error
    }
  }

  lock(path: string, options?: LockOptions): Promise<RemoteLock> {
    return this.#guard('lock', path, async () => {
      const target = this.#resolve(path)
      await this.#mkdirp(posix.dirname(target))
      return takeDirectoryLock(this.#lockFolder(), target, `${normalizePath(path)} on ${this.label}`, options)
    })
  }

  // The lock folder's operations on share paths, errors mapped as every other operation's.
  #lockFolder(): LockFolderOps {
    const guard = <T>(what: string, path: string, fn: () => Promise<T>) => this.#guard(what, path, fn)
    return {
      mkdir: path => guard('create the lock', path, () => this.#client.with(path, { access: Access.READ_ATTRIBUTES, disposition: Disposition.CREATE, directory: true }, async () => {}, false)),
      mtimeMs: path => this.#attributes(path).then(a => a.mtimeMs, () => undefined),
      touch: path => guard('refresh the lock', path, () => this.#client.with(path, { access: Access.WRITE_ATTRIBUTES | Access.READ_ATTRIBUTES, disposition: Disposition.OPEN }, handle => handle.setModified(Date.now()))),
      rename: (from, to) => guard('move the lock', from, () => this.#rename(from, to, false)),
      rmtree: path => guard('remove the lock', path, () => this.#rmtree(path)),
      writeFile: (path, data) => this.write(this.#unresolve(path), data).then(() => {}),
      readFile: async path => {
        const chunks: Buffer[] = []
        for await (const chunk of await this.read(this.#unresolve(path))) chunks.push(chunk as Buffer)
        return Buffer.concat(chunks).toString('utf8')
      },
    }
  }

  #attributes(path: string): Promise<Attributes> {
    return this.#client.with(path, ATTRIBUTES, async handle => handle.attributes)
  }

  #resolve(path: string): string {
    return posix.join(this.#root, normalizePath(path)).replace(/^\.$/, '')
  }

  #unresolve(path: string): string {
    return this.#root === '' ? path : path.slice(this.#root.length + 1)
  }

  async #guard<T>(what: string, path: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (error) {
      throw this.#map(error, what, path)
    }
  }

  /** An SMB failure as the storage error the engine acts on, with a sentence for the administrator. */
  #map(error: unknown, what: string, path: string): unknown {
    if (error instanceof LifeboatError || (error as Error | undefined)?.name === 'AbortError') return error
    const where = path === '' ? this.label : `${normalizePath(path)} on ${this.label}`
    if (error instanceof SmbRefusedError) {
      if (error.kind === 'auth' || error.kind === 'guest') return new LifeboatError('REMOTE_AUTH', `The SMB remote ${this.label} refused the credentials: ${error.message}; check the user name, the domain and the password of the remote.`)
      if (error.kind === 'encryption') return new LifeboatError('NOT_SUPPORTED', `The SMB remote ${this.label} cannot be used: ${error.message}; set smb encrypt = desired (or off) for the share.`)
      if (error.kind === 'dialect') return new LifeboatError('NOT_SUPPORTED', `The SMB remote ${this.label} cannot be used: ${error.message}.`)
      if (error.status === Status.ACCESS_DENIED) return new LifeboatError('REMOTE_AUTH', `The SMB remote ${this.label} cannot be used: ${error.message}.`)
      return new LifeboatError('REMOTE_BAD_URL', `The SMB remote ${this.label} cannot be used: ${error.message}.`)
    }
    if (error instanceof SmbConnectionError) {
      return remoteUnavailable(this.label, error, error.code === 'ETIMEDOUT' || error.code === 'EPROTO' ? error.message : `the server ${this.#host} cannot be reached (${error.message})`)
    }
    if (error instanceof SmbStatusError) {
      const { status } = error
      if (NOT_FOUND.has(status)) return new LifeboatError('ENOENT', `${where} does not exist.`)
      if (status === Status.OBJECT_NAME_COLLISION) return new LifeboatError('EEXIST', `${where} already exists.`)
      if (status === Status.DIRECTORY_NOT_EMPTY) return new LifeboatError('ENOTEMPTY', `The folder ${where} is not empty.`)
      if (status === Status.NOT_A_DIRECTORY) return new LifeboatError('ENOTDIR', `A part of ${where} is a file, not a folder.`)
      if (status === Status.FILE_IS_A_DIRECTORY) return new LifeboatError('EISDIR', `${where} is a folder, not a file.`)
      if (FULL.has(status)) return remoteFull(this.label, error)
      if (AUTH_FAILURES.has(status)) return new LifeboatError('REMOTE_AUTH', `The SMB remote ${this.label} refused the credentials of ${this.#user} (${statusName(status)}); check the user name, the domain and the password.`)
      if (status === Status.ACCESS_DENIED) {
        return new LifeboatError('EACCES', `The user ${this.#user} may not ${what} ${where} (STATUS_ACCESS_DENIED); check the permissions of the share ${this.#share} for ${this.#user} on ${this.#host} (read only, write list, valid users) and those of its folder on the server.`)
      }
      return new LifeboatError('REMOTE_ERROR', `The SMB server of ${this.label} could not ${what} ${where}: it answered ${statusName(status)}.`, { cause: error })
    }
    return error
  }
}

class SmbFile implements RandomAccessFile {
  readonly #handle: SmbHandle
  readonly #mode: 'r' | 'r+'
  readonly #readChunk: number
  readonly #writeChunk: number
  readonly #guard: <T>(what: string, fn: () => Promise<T>) => Promise<T>

  constructor(handle: SmbHandle, mode: 'r' | 'r+', readChunk: number, writeChunk: number, guard: <T>(what: string, fn: () => Promise<T>) => Promise<T>) {
    this.#handle = handle
    this.#mode = mode
    this.#readChunk = readChunk
    this.#writeChunk = writeChunk
    this.#guard = guard
  }

  read(buffer: Buffer, position: number): Promise<number> {
    return this.#guard('read', async () => {
      const pieces: Array<Promise<Buffer>> = []
      for (let at = 0; at < buffer.length; at += this.#readChunk) pieces.push(this.#handle.read(position + at, Math.min(this.#readChunk, buffer.length - at)))
      let done = 0
      for (const piece of await Promise.all(pieces)) {
        piece.copy(buffer, done)
        done += piece.length
        // A short piece is the end of the file: what follows it was read past the end.
        if (piece.length < this.#readChunk) break
      }
      return done
    })
  }

  write(buffer: Buffer, position: number): Promise<void> {
    if (this.#mode === 'r') return Promise.reject(new LifeboatError('EBADF', `${this.#handle.path} was opened for reading only.`))
    return this.#guard('write', async () => {
      const pieces: Array<Promise<void>> = []
      for (let at = 0; at < buffer.length; at += this.#writeChunk) pieces.push(this.#handle.write(buffer.subarray(at, at + this.#writeChunk), position + at))
      await Promise.all(pieces)
    })
  }

  size(): Promise<number> {
    return this.#guard('read the size of', async () => (await this.#handle.attributesNow()).size)
  }

  truncate(size: number): Promise<void> {
    return this.#guard('truncate', () => this.#handle.truncate(size))
  }

  close(): Promise<void> {
    return this.#guard('close', () => this.#handle.close())
  }
}
