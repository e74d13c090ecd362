// The file operations of an SMB share on one connection ([MS-SMB2] §2.2.13–2.2.40): CREATE, READ, WRITE,
// QUERY_DIRECTORY, QUERY_INFO, SET_INFO, CLOSE. A dropped connection is replaced (new session and tree, open
// handles re-opened) and an idempotent request is sent again, a bounded number of times.
import { answerPart, Command, SmbConnection, SmbConnectionError, type ConnectionOptions } from './connection.ts'
import { SESSION_LOST, SmbStatusError, Status } from './status.ts'

const HEADER = 64

export const Access = {
  READ_DATA: 0x1,
  WRITE_DATA: 0x2,
  READ_ATTRIBUTES: 0x80,
  WRITE_ATTRIBUTES: 0x100,
  DELETE: 0x10000,
  SYNCHRONIZE: 0x100000,
} as const

export const Disposition = { OPEN: 1, CREATE: 2, OPEN_IF: 3, OVERWRITE_IF: 5 } as const
const DIRECTORY_FILE = 0x1
const NON_DIRECTORY_FILE = 0x40
const ATTRIBUTE_DIRECTORY = 0x10
const ATTRIBUTE_NORMAL = 0x80
const SHARE_ALL = 0x7
const INFO_FILE = 1
const INFO_FILESYSTEM = 2
const FILE_DIRECTORY_INFORMATION = 1
const FILE_BASIC_INFORMATION = 4
const FILE_RENAME_INFORMATION = 10
const FILE_DISPOSITION_INFORMATION = 13
const FILE_END_OF_FILE_INFORMATION = 20
const FILE_NETWORK_OPEN_INFORMATION = 34
const FS_FULL_SIZE_INFORMATION = 7
const RESTART_SCANS = 0x1
const LIST_BUFFER = 65536
// 1601 to 1970 in milliseconds: FILETIME counts 100 ns from 1601.
const EPOCH_MS = 11_644_473_600_000

export interface Attributes {
  size: number
  mtimeMs: number
  isDirectory: boolean
}

export interface DirectoryEntry extends Attributes {
  name: string
}

export interface OpenSpec {
  access: number
  disposition: number
  /** true: a folder only (FILE_DIRECTORY_FILE); false: a file only; undefined: either. */
  directory?: boolean
}

export interface ClientOptions extends ConnectionOptions {
  /** Reconnects tried for an idempotent request after a dropped connection (default 3). */
  retries?: number
}

function fileTime(body: Buffer, offset: number): number {
  return Number(body.readBigUInt64LE(offset) / 10_000n) - EPOCH_MS
}

function toFileTime(ms: number): bigint {
  return BigInt(Math.round(ms) + EPOCH_MS) * 10_000n
}

/** An SMB path: '\'-separated, relative to the share's root. */
function smbPath(path: string): Buffer {
  return Buffer.from(path.split('/').filter(Boolean).join('\\'), 'utf16le')
}

function isConnectionLoss(error: unknown): boolean {
  return error instanceof SmbConnectionError || (error instanceof SmbStatusError && SESSION_LOST.has(error.status))
}

/** A handle a caller keeps open (a file being written, a VHD being merged): re-opened on a new connection. */
export class SmbHandle {
  readonly path: string
  readonly attributes: Attributes
  readonly #client: SmbClient
  readonly #spec: OpenSpec
  #fileId: Buffer
  #connection: SmbConnection
  #reopening: Promise<Buffer> | undefined
  #closed = false

  constructor(client: SmbClient, path: string, spec: OpenSpec, connection: SmbConnection, fileId: Buffer, attributes: Attributes) {
    this.#client = client
    this.path = path
    this.#spec = spec
    this.#connection = connection
    this.#fileId = fileId
    this.attributes = attributes
  }

  /** Runs a request on this handle, re-opening it (FILE_OPEN) on the connection that replaced a dropped one. */
  run<T>(operation: (connection: SmbConnection, fileId: Buffer) => Promise<T>, idempotent = true): Promise<T> {
    return this.#client.call(async connection => {
      if (connection !== this.#connection) {
        this.#reopening ??= this.#client.create(connection, this.path, { ...this.#spec, disposition: Disposition.OPEN }).then(opened => {
          this.#connection = connection
          this.#reopening = undefined
          return opened.fileId
        }, error => {
          this.#reopening = undefined
          throw error
        })
        this.#fileId = await this.#reopening
      }
      return operation(connection, this.#fileId)
    }, idempotent)
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.run((connection, fileId) => this.#client.readAt(connection, fileId, offset, length))
  }

  write(data: Buffer, offset: number): Promise<void> {
    return this.run((connection, fileId) => this.#client.writeAt(connection, fileId, data, offset))
  }

  attributesNow(): Promise<Attributes> {
    return this.run(async (connection, fileId) => {
      const info = await this.#client.queryInfo(connection, fileId, INFO_FILE, FILE_NETWORK_OPEN_INFORMATION, 56)
      return { size: Number(info.readBigUInt64LE(40)), mtimeMs: fileTime(info, 16), isDirectory: (info.readUInt32LE(48) & ATTRIBUTE_DIRECTORY) !== 0 }
    })
  }

  flush(): Promise<void> {
    return this.run(async (connection, fileId) => {
      const body = Buffer.alloc(24)
      body.writeUInt16LE(24, 0)
      fileId.copy(body, 8)
      await connection.request(Command.FLUSH, body)
    })
  }

  truncate(size: number): Promise<void> {
    const info = Buffer.alloc(8)
    info.writeBigUInt64LE(BigInt(size))
    return this.run((connection, fileId) => this.#client.setInfo(connection, fileId, FILE_END_OF_FILE_INFORMATION, info))
  }

  /** Renames the open file (DELETE access); `replace` false refuses an existing target (EEXIST). */
  rename(to: string, replace: boolean): Promise<void> {
    return this.run((connection, fileId) => this.#client.setInfo(connection, fileId, FILE_RENAME_INFORMATION, renameInfo(to, replace)), false)
  }

  /** Marks the file deleted; it goes when closed. */
  markDeleted(): Promise<void> {
    return this.run((connection, fileId) => this.#client.setInfo(connection, fileId, FILE_DISPOSITION_INFORMATION, Buffer.from([1])))
  }

  setModified(ms: number): Promise<void> {
    const info = Buffer.alloc(40)
    info.writeBigUInt64LE(toFileTime(ms), 16)
    return this.run((connection, fileId) => this.#client.setInfo(connection, fileId, FILE_BASIC_INFORMATION, info))
  }

  /** Every entry of the directory, page after page of QUERY_DIRECTORY. */
  entries(): Promise<DirectoryEntry[]> {
    return this.run(async (connection, fileId) => {
      const entries: DirectoryEntry[] = []
      for (let first = true; ; first = false) {
        const body = Buffer.alloc(34)
        body.writeUInt16LE(33, 0)
        body.writeUInt8(FILE_DIRECTORY_INFORMATION, 2)
        body.writeUInt8(first ? RESTART_SCANS : 0, 3)
        fileId.copy(body, 8)
        body.writeUInt16LE(HEADER + 32, 24)
        body.writeUInt16LE(2, 26)
        body.writeUInt32LE(LIST_BUFFER, 28)
        Buffer.from('*', 'utf16le').copy(body, 32)
        const reply = await connection.request(Command.QUERY_DIRECTORY, body, { accept: [Status.NO_MORE_FILES] })
        if (reply.status === Status.NO_MORE_FILES) return entries
        const buffer = outputBuffer(reply.body)
        for (let offset = 0; offset + 64 <= buffer.length; ) {
          const next = buffer.readUInt32LE(offset)
          const nameLength = buffer.readUInt32LE(offset + 60)
          const name = buffer.toString('utf16le', offset + 64, offset + 64 + nameLength)
          if (name !== '.' && name !== '..') {
            entries.push({ name, size: Number(buffer.readBigUInt64LE(offset + 40)), mtimeMs: fileTime(buffer, offset + 24), isDirectory: (buffer.readUInt32LE(offset + 56) & ATTRIBUTE_DIRECTORY) !== 0 })
          }
          if (next === 0) break
          offset += next
        }
      }
    })
  }

  /** Closes it; a handle whose connection dropped is already closed on the server. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const connection = this.#connection
    if (connection.closed) return
    await this.#client.closeFile(connection, this.#fileId).catch(error => {
      if (!isConnectionLoss(error)) throw error
    })
  }
}

function renameInfo(to: string, replace: boolean): Buffer {
  const name = smbPath(to)
  const info = Buffer.alloc(20 + name.length)
  info.writeUInt8(replace ? 1 : 0, 0)
  info.writeUInt32LE(name.length, 16)
  name.copy(info, 20)
  return info
}

function outputBuffer(body: Buffer): Buffer {
  return answerPart(body, body.readUInt16LE(2), body.readUInt32LE(4), 'output buffer')
}

export class SmbClient {
  readonly options: ClientOptions
  #connection: Promise<SmbConnection> | undefined
  #closed = false

  constructor(options: ClientOptions) {
    this.options = options
  }

  /** The live connection, opened (again) when there is none. */
  connection(): Promise<SmbConnection> {
    if (this.#closed) return Promise.reject(new SmbConnectionError('ECONNRESET', 'the client was closed'))
    if (this.#connection === undefined) {
      const opening = SmbConnection.open(this.options)
      this.#connection = opening
      opening.then(
        connection => connection.onClose(() => {
          if (this.#connection === opening) this.#connection = undefined
        }),
        () => {
          if (this.#connection === opening) this.#connection = undefined
        },
      )
    }
    return this.#connection
  }

  /** Runs requests on the live connection; after a drop, idempotent ones run again on a new one (bounded). */
  async call<T>(operation: (connection: SmbConnection) => Promise<T>, idempotent = true): Promise<T> {
    const retries = this.options.retries ?? 3
    for (let attempt = 0; ; attempt++) {
      const connection = await this.connection().catch(async error => {
        if (!(error instanceof SmbConnectionError) || attempt >= retries) throw error
        return undefined
      })
      if (connection === undefined) {
        await new Promise(resolve => setTimeout(resolve, 200 * 2 ** attempt))
        continue
      }
      try {
        return await operation(connection)
      } catch (error) {
        if (!isConnectionLoss(error)) throw error
        // The session or tree was lost without the socket: end this connection so the next call opens another.
        if (!connection.closed) connection.destroy(error as Error)
        if (!idempotent || attempt >= retries) throw error
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    const connection = this.#connection
    this.#connection = undefined
    if (connection !== undefined) await (await connection.catch(() => undefined))?.close()
  }

  /** CREATE: opens or creates, and gives the file id and what the answer says of the file. */
  async create(connection: SmbConnection, path: string, spec: OpenSpec): Promise<{ fileId: Buffer; attributes: Attributes }> {
    const name = smbPath(path)
    const body = Buffer.alloc(56 + Math.max(1, name.length))
    body.writeUInt16LE(57, 0)
    body.writeUInt32LE(2, 4) // impersonation
    body.writeUInt32LE(spec.access | Access.SYNCHRONIZE, 24)
    body.writeUInt32LE(spec.directory === true ? ATTRIBUTE_DIRECTORY : ATTRIBUTE_NORMAL, 28)
    body.writeUInt32LE(SHARE_ALL, 32)
    body.writeUInt32LE(spec.disposition, 36)
    body.writeUInt32LE(spec.directory === true ? DIRECTORY_FILE : spec.directory === false ? NON_DIRECTORY_FILE : 0, 40)
    body.writeUInt16LE(HEADER + 56, 44)
    body.writeUInt16LE(name.length, 46)
    name.copy(body, 56)
    const reply = await connection.request(Command.CREATE, body)
    const r = reply.body
    if (r.length < 88) throw new SmbConnectionError('EPROTO', 'the server sent a truncated CREATE answer')
    return {
      fileId: Buffer.from(r.subarray(64, 80)),
      attributes: { size: Number(r.readBigUInt64LE(48)), mtimeMs: fileTime(r, 24), isDirectory: (r.readUInt32LE(56) & ATTRIBUTE_DIRECTORY) !== 0 },
    }
  }

  /** Opens a handle the caller keeps (and closes). */
  open(path: string, spec: OpenSpec, idempotent = true): Promise<SmbHandle> {
    return this.call(async connection => {
      const { fileId, attributes } = await this.create(connection, path, spec)
      return new SmbHandle(this, path, spec, connection, fileId, attributes)
    }, idempotent)
  }

  /** Opens, runs, and closes a handle whatever happens. */
  async with<T>(path: string, spec: OpenSpec, operation: (handle: SmbHandle) => Promise<T>, idempotent = true): Promise<T> {
    const handle = await this.open(path, spec, idempotent)
    try {
      return await operation(handle)
    } finally {
      await handle.close().catch(() => {})
    }
  }

  async closeFile(connection: SmbConnection, fileId: Buffer): Promise<void> {
    const body = Buffer.alloc(24)
    body.writeUInt16LE(24, 0)
    fileId.copy(body, 8)
    await connection.request(Command.CLOSE, body, { accept: [Status.FILE_CLOSED] })
  }

  /** One READ; empty at or past the end of the file. */
  async readAt(connection: SmbConnection, fileId: Buffer, offset: number, length: number): Promise<Buffer> {
    const body = Buffer.alloc(49)
    body.writeUInt16LE(49, 0)
    body.writeUInt8(0x50, 2)
    body.writeUInt32LE(length, 4)
    body.writeBigUInt64LE(BigInt(offset), 8)
    fileId.copy(body, 16)
    const reply = await connection.request(Command.READ, body, { charge: connection.chargeFor(length), accept: [Status.END_OF_FILE] })
    if (reply.status === Status.END_OF_FILE) return Buffer.alloc(0)
    const data = answerPart(reply.body, reply.body.readUInt8(2), reply.body.readUInt32LE(4), 'data')
    if (data.length > length) throw new SmbConnectionError('EPROTO', `the server answered a READ of ${length} bytes with ${data.length}`)
    return data
  }

  async writeAt(connection: SmbConnection, fileId: Buffer, data: Buffer, offset: number): Promise<void> {
    const body = Buffer.alloc(48)
    body.writeUInt16LE(49, 0)
    body.writeUInt16LE(HEADER + 48, 2)
    body.writeUInt32LE(data.length, 4)
    body.writeBigUInt64LE(BigInt(offset), 8)
    fileId.copy(body, 16)
    const reply = await connection.request(Command.WRITE, body, { charge: connection.chargeFor(data.length), payload: data })
    const count = reply.body.readUInt32LE(4)
    if (count !== data.length) throw new SmbConnectionError('EPROTO', `the server wrote ${count} of ${data.length} bytes and said nothing of why`)
  }

  async queryInfo(connection: SmbConnection, fileId: Buffer, type: number, infoClass: number, length: number): Promise<Buffer> {
    const body = Buffer.alloc(41)
    body.writeUInt16LE(41, 0)
    body.writeUInt8(type, 2)
    body.writeUInt8(infoClass, 3)
    body.writeUInt32LE(length, 4)
    body.writeUInt16LE(HEADER + 40, 8)
    fileId.copy(body, 24)
    const buffer = outputBuffer((await connection.request(Command.QUERY_INFO, body)).body)
    if (buffer.length < length) throw new SmbConnectionError('EPROTO', `the server answered QUERY_INFO with ${buffer.length} bytes instead of ${length}`)
    return buffer
  }

  async setInfo(connection: SmbConnection, fileId: Buffer, infoClass: number, info: Buffer): Promise<void> {
    const body = Buffer.alloc(32 + info.length)
    body.writeUInt16LE(33, 0)
    body.writeUInt8(INFO_FILE, 2)
    body.writeUInt8(infoClass, 3)
    body.writeUInt32LE(info.length, 4)
    body.writeUInt16LE(HEADER + 32, 8)
    fileId.copy(body, 16)
    info.copy(body, 32)
    await connection.request(Command.SET_INFO, body)
  }

  /** The share's size and free space (FileFsFullSizeInformation of its root). */
  space(): Promise<{ size: number; available: number }> {
    return this.with('', { access: Access.READ_ATTRIBUTES, disposition: Disposition.OPEN, directory: true }, handle =>
      handle.run(async (connection, fileId) => {
        const info = await this.queryInfo(connection, fileId, INFO_FILESYSTEM, FS_FULL_SIZE_INFORMATION, 32)
        const unit = info.readUInt32LE(24) * info.readUInt32LE(28)
        return { size: Number(info.readBigUInt64LE(0)) * unit, available: Number(info.readBigUInt64LE(8)) * unit }
      }),
    )
  }
}
