// The NFSv3 and MOUNT3 procedures Lifeboat needs (RFC 1813), and the portmapper lookup (RFC 1833), on RPC
// channels. Statuses become errors with errno codes; calls resent after a lost connection are checked
// where resending is not idempotent (a REMOVE answered NOENT, a MKDIR answered EXIST: done).
import { RpcChannel, type ChannelOptions, type RpcCredentials } from './rpc.ts'
import { XdrReader, XdrWriter } from './xdr.ts'
import { terminalSafeLine } from '../../util/terminal-text.ts'

const PORTMAP = 100000
const MOUNT = 100005
const NFS = 100003
const IPPROTO_TCP = 6
const NFS3ERR_JUKEBOX = 10008

export type FileHandle = Buffer

export const FileType = { regular: 1, directory: 2 } as const

export interface Attributes {
  type: number
  mode: number
  uid: number
  gid: number
  size: number
  fileid: bigint
  mtimeMs: number
  /** The mtime exactly as the server keeps it (seconds and nanoseconds): equal only if untouched. */
  mtime: string
}

export interface DirectoryEntry {
  name: string
  attributes?: Attributes
  handle?: FileHandle
}

export interface FsInfo {
  rtmax: number
  wtmax: number
}

export interface FsStat {
  totalBytes: number
  freeBytes: number
  availableBytes: number
}

export const Stable = { unstable: 0, dataSync: 1, fileSync: 2 } as const

export interface WriteReply {
  count: number
  committed: number
  verifier: Buffer
}

const NFS3_STATUS: Record<number, [string, string]> = {
  1: ['EPERM', 'not owner'],
  2: ['ENOENT', 'no such file or folder'],
  5: ['EIO', 'input/output error'],
  6: ['ENXIO', 'no such device'],
  13: ['EACCES', 'permission denied'],
  17: ['EEXIST', 'it exists'],
  18: ['EXDEV', 'cross-device link'],
  19: ['ENODEV', 'no such device'],
  20: ['ENOTDIR', 'not a folder'],
  21: ['EISDIR', 'is a folder'],
  22: ['EINVAL', 'invalid argument'],
  27: ['EFBIG', 'file too large'],
  28: ['ENOSPC', 'no space left on the export'],
  30: ['EROFS', 'the export is read-only'],
  31: ['EMLINK', 'too many links'],
  63: ['ENAMETOOLONG', 'name too long'],
  66: ['ENOTEMPTY', 'folder not empty'],
  69: ['EDQUOT', 'quota exceeded'],
  70: ['ESTALE', 'stale file handle'],
  71: ['EREMOTE', 'too many levels of remote in path'],
  10001: ['EBADHANDLE', 'illegal file handle'],
  10002: ['ENOTSYNC', 'update synchronization mismatch'],
  10003: ['EBADCOOKIE', 'the listing cookie is stale'],
  10004: ['ENOTSUP', 'operation not supported'],
  10005: ['ETOOSMALL', 'buffer too small'],
  10006: ['ESERVERFAULT', 'server fault'],
  10007: ['EBADTYPE', 'type not supported'],
  10008: ['EJUKEBOX', 'the server is busy, try later'],
}

/** An NFS or MOUNT status other than OK, with the errno code a local file system would give. */
export class NfsError extends Error {
  readonly code: string
  readonly status: number
  /** 'nfs' or 'mount': which protocol refused. */
  readonly protocol: 'nfs' | 'mount'

  constructor(protocol: 'nfs' | 'mount', status: number, what: string) {
    const [code, text] = NFS3_STATUS[status] ?? ['EIO', `status ${status}`]
    // `what` may hold names listed by the server: made safe for the terminal the message may reach.
    super(`${terminalSafeLine(what)}: ${text} (${protocol === 'nfs' ? 'NFS3ERR' : 'MNT3ERR'} ${status})`)
    this.code = code
    this.status = status
    this.protocol = protocol
  }
}

export interface Nfs3Options {
  host: string
  /** NFS port; asked from the portmapper when absent. */
  port?: number
  /** MOUNT port; asked from the portmapper when absent. */
  mountPort?: number
  credentials: RpcCredentials
  timeoutMs?: number
  retryDelaysMs?: number[]
  /** The portmapper's port: 111 everywhere but in tests. */
  portmapperPort?: number
}

/** Asks the portmapper where a program listens on TCP. */
export async function portOf(host: string, portmapperPort: number, program: number, version: number, options: Pick<ChannelOptions, 'credentials' | 'timeoutMs'>): Promise<number> {
  const portmap = new RpcChannel({ host, port: portmapperPort, credentials: options.credentials, ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }), retryDelaysMs: [] })
  try {
    const { reply } = await portmap.call(PORTMAP, 2, 3, () => new XdrWriter().uint(program).uint(version).uint(IPPROTO_TCP).uint(0), 'GETPORT')
    const port = reply.uint()
    if (port === 0) throw Object.assign(new Error(`the portmapper of ${host} knows no ${program === NFS ? 'NFS' : 'MOUNT'} version ${version} service over TCP (is the NFS server running with NFSv3?)`), { code: 'ECONNREFUSED' })
    return port
  } finally {
    portmap.close()
  }
}

export class Nfs3Client {
  readonly #nfs: RpcChannel
  readonly #mount: RpcChannel
  readonly #busyDelaysMs: number[]

  constructor(options: Nfs3Options) {
    const { host, credentials } = options
    this.#busyDelaysMs = options.retryDelaysMs ?? [500, 1000, 2000, 4000]
    const common = { host, credentials, ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }), ...(options.retryDelaysMs !== undefined && { retryDelaysMs: options.retryDelaysMs }) }
    const lookup = (program: number) => () => portOf(host, options.portmapperPort ?? 111, program, 3, common)
    this.#nfs = new RpcChannel({ ...common, port: options.port ?? lookup(NFS) })
    this.#mount = new RpcChannel({ ...common, port: options.mountPort ?? lookup(MOUNT) })
  }

  close(): void {
    this.#nfs.close()
    this.#mount.close()
  }

  // MOUNT3

  /** The exported paths (EXPORT). */
  async exports(): Promise<string[]> {
    const { reply } = await this.#mount.call(MOUNT, 3, 5, () => undefined, 'EXPORT')
    const paths: string[] = []
    while (reply.bool()) {
      paths.push(reply.string(1024))
      while (reply.bool()) reply.string(255)
    }
    return paths
  }

  async mnt(path: string): Promise<FileHandle> {
    const { reply } = await this.#mount.call(MOUNT, 3, 1, () => new XdrWriter().string(path), `MNT ${path}`)
    const status = reply.uint()
    if (status !== 0) throw new NfsError('mount', status, `mounting ${path}`)
    return Buffer.from(reply.opaque(64))
  }

  async umnt(path: string): Promise<void> {
    await this.#mount.call(MOUNT, 3, 3, () => new XdrWriter().string(path), `UMNT ${path}`)
  }

  // NFS3

  async #call(procedure: number, args: () => XdrWriter, what: string): Promise<{ reply: XdrReader; status: number; resent: boolean }> {
    let sentAgain = false
    for (let attempt = 0; ; attempt++) {
      const { reply, resent } = await this.#nfs.call(NFS, 3, procedure, args, what)
      const status = reply.uint()
      sentAgain ||= resent
      // JUKEBOX: the server is busy with this file (RFC 1813 asks the client to wait and send the call again).
      // (A JUKEBOX call was not done: sending it again is no resend of a call that may have been done.)
      if (status !== NFS3ERR_JUKEBOX || attempt >= this.#busyDelaysMs.length) return { reply, status, resent: sentAgain }
      await new Promise(resolve => setTimeout(resolve, this.#busyDelaysMs[attempt]))
    }
  }

  async #ok(procedure: number, args: () => XdrWriter, what: string): Promise<XdrReader> {
    const { reply, status } = await this.#call(procedure, args, what)
    if (status !== 0) throw new NfsError('nfs', status, what)
    return reply
  }

  async getattr(fh: FileHandle, what = 'GETATTR'): Promise<Attributes> {
    return attributes(await this.#ok(1, () => new XdrWriter().opaque(fh), what))
  }

  /** SETATTR: a new size, and/or the mtime set to the server's clock. */
  async setattr(fh: FileHandle, set: { size?: number; mtimeToServerTime?: boolean }, what = 'SETATTR'): Promise<void> {
    await this.#ok(
      2,
      () => {
        const w = new XdrWriter().opaque(fh).bool(false).bool(false).bool(false)
        if (set.size !== undefined) w.bool(true).uhyper(set.size)
        else w.bool(false)
        w.uint(0).uint(set.mtimeToServerTime === true ? 1 : 0)
        return w.bool(false)
      },
      what,
    )
  }

  async lookup(dir: FileHandle, name: string, what = `LOOKUP ${name}`): Promise<{ handle: FileHandle; attributes?: Attributes }> {
    const reply = await this.#ok(3, () => new XdrWriter().opaque(dir).string(name), what)
    const handle = Buffer.from(reply.opaque(64))
    const attrs = postOpAttributes(reply)
    return { handle, ...(attrs !== undefined && { attributes: attrs }) }
  }

  /** READ; `data` is a view into the reply. */
  async read(fh: FileHandle, offset: number, count: number, what = 'READ'): Promise<{ data: Buffer; eof: boolean }> {
    const reply = await this.#ok(6, () => new XdrWriter().opaque(fh).uhyper(offset).uint(count), what)
    postOpAttributes(reply)
    const announced = reply.uint()
    const eof = reply.bool()
    const data = reply.opaque(count)
    if (data.length !== announced) throw Object.assign(new Error(`the READ reply announces ${announced} bytes and holds ${data.length}`), { code: 'EBADRPC' })
    return { data, eof }
  }

  async write(fh: FileHandle, offset: number, data: Buffer, stable: number, what = 'WRITE'): Promise<WriteReply> {
    const reply = await this.#ok(7, () => new XdrWriter().opaque(fh).uhyper(offset).uint(data.length).uint(stable).opaque(data), what)
    wccData(reply)
    return { count: reply.uint(), committed: reply.uint(), verifier: Buffer.from(reply.fixed(8)) }
  }

  /** CREATE, GUARDED (EEXIST when the name exists) or UNCHECKED. */
  async create(dir: FileHandle, name: string, mode: number, guarded: boolean, what = `CREATE ${name}`): Promise<FileHandle> {
    const args = () => new XdrWriter().opaque(dir).string(name).uint(guarded ? 1 : 0).bool(true).uint(mode).bool(false).bool(false).bool(true).uhyper(0).uint(0).uint(0)
    const result = await this.#call(8, args, what)
    // A guarded CREATE resent after a lost connection may find the file its first sending made.
    if (result.status === 17 && result.resent) return (await this.lookup(dir, name, what)).handle
    if (result.status !== 0) throw new NfsError('nfs', result.status, what)
    return postOpHandle(result.reply) ?? (await this.lookup(dir, name, what)).handle
  }

  /** MKDIR; `exclusive` keeps EEXIST even on a resent call (a lock folder must be made by this very call). */
  async mkdir(dir: FileHandle, name: string, mode: number, exclusive: boolean, what = `MKDIR ${name}`): Promise<FileHandle> {
    const result = await this.#call(9, () => new XdrWriter().opaque(dir).string(name).bool(true).uint(mode).bool(false).bool(false).bool(false).uint(0).uint(0), what)
    if (result.status === 17 && result.resent && !exclusive) return (await this.lookup(dir, name, what)).handle
    if (result.status !== 0) throw new NfsError('nfs', result.status, what)
    return postOpHandle(result.reply) ?? (await this.lookup(dir, name, what)).handle
  }

  async remove(dir: FileHandle, name: string, what = `REMOVE ${name}`): Promise<void> {
    await this.#removal(12, dir, name, what)
  }

  async rmdir(dir: FileHandle, name: string, what = `RMDIR ${name}`): Promise<void> {
    await this.#removal(13, dir, name, what)
  }

  async #removal(procedure: number, dir: FileHandle, name: string, what: string): Promise<void> {
    const { status, resent } = await this.#call(procedure, () => new XdrWriter().opaque(dir).string(name), what)
    // Resent after a lost connection, NOENT means the first sending removed it.
    if (status === 0 || (status === 2 && resent)) return
    throw new NfsError('nfs', status, what)
  }

  async rename(fromDir: FileHandle, fromName: string, toDir: FileHandle, toName: string, what = `RENAME ${fromName} to ${toName}`): Promise<void> {
    const { status, resent } = await this.#call(14, () => new XdrWriter().opaque(fromDir).string(fromName).opaque(toDir).string(toName), what)
    if (status === 0) return
    // Resent, NOENT: the first sending moved it if the source is gone and the target is there.
    if (status === 2 && resent) {
      const target = await this.lookup(toDir, toName, what).catch(() => undefined)
      const source = await this.lookup(fromDir, fromName, what).catch(() => undefined)
      if (target !== undefined && source === undefined) return
    }
    throw new NfsError('nfs', status, what)
  }

  /** LINK: a second name for a file, EEXIST when the name exists (atomic: write-if-absent). */
  async link(fh: FileHandle, dir: FileHandle, name: string, fileid: bigint, what = `LINK ${name}`): Promise<void> {
    const { status, resent } = await this.#call(15, () => new XdrWriter().opaque(fh).opaque(dir).string(name), what)
    if (status === 0) return
    // Resent, EXIST: done if the name is this very file (the first sending linked it).
    if (status === 17 && resent) {
      const existing = await this.lookup(dir, name, what)
      const attrs = existing.attributes ?? (await this.getattr(existing.handle, what))
      if (attrs.fileid === fileid) return
    }
    throw new NfsError('nfs', status, what)
  }

  /** Every entry of a folder, page after page (READDIRPLUS with its cookie and verifier). */
  async readdirplus(dir: FileHandle, what = 'READDIRPLUS'): Promise<DirectoryEntry[]> {
    for (let restart = 0; ; restart++) {
      const entries: DirectoryEntry[] = []
      let cookie = 0n
      let verifier = Buffer.alloc(8)
      let eof = false
      try {
        while (!eof) {
          const reply = await this.#ok(17, () => new XdrWriter().opaque(dir).uhyper(cookie).fixed(verifier).uint(32768).uint(262144), what)
          postOpAttributes(reply)
          verifier = Buffer.from(reply.fixed(8))
          while (reply.bool()) {
            reply.bigUhyper()
            const name = reply.string(4096)
            cookie = reply.bigUhyper()
            const attrs = postOpAttributes(reply)
            const handle = postOpHandle(reply)
            if (name === '.' || name === '..') continue
            entries.push({ name, ...(attrs !== undefined && { attributes: attrs }), ...(handle !== undefined && { handle }) })
          }
          eof = reply.bool()
        }
        return entries
      } catch (error) {
        // The folder changed under the listing and the server forgot the cookie: list it again, once.
        if ((error as NfsError).code !== 'EBADCOOKIE' || restart > 0) throw error
      }
    }
  }

  async fsstat(fh: FileHandle): Promise<FsStat> {
    const reply = await this.#ok(18, () => new XdrWriter().opaque(fh), 'FSSTAT')
    postOpAttributes(reply)
    return { totalBytes: reply.uhyper(), freeBytes: reply.uhyper(), availableBytes: reply.uhyper() }
  }

  async fsinfo(fh: FileHandle): Promise<FsInfo> {
    const reply = await this.#ok(19, () => new XdrWriter().opaque(fh), 'FSINFO')
    postOpAttributes(reply)
    const rtmax = reply.uint()
    reply.skip(8)
    const wtmax = reply.uint()
    return { rtmax, wtmax }
  }

  /** COMMIT of the whole file; the verifier tells whether the server restarted since the UNSTABLE writes. */
  async commit(fh: FileHandle, what = 'COMMIT'): Promise<Buffer> {
    const reply = await this.#ok(21, () => new XdrWriter().opaque(fh).uhyper(0).uint(0), what)
    wccData(reply)
    return Buffer.from(reply.fixed(8))
  }
}

function attributes(reply: XdrReader): Attributes {
  const type = reply.uint()
  const mode = reply.uint()
  reply.uint()
  const uid = reply.uint()
  const gid = reply.uint()
  const size = reply.uhyper()
  reply.skip(8 + 8 + 8)
  const fileid = reply.bigUhyper()
  reply.skip(8)
  const seconds = reply.uint()
  const nanoseconds = reply.uint()
  reply.skip(8)
  return { type, mode, uid, gid, size, fileid, mtimeMs: seconds * 1000 + Math.floor(nanoseconds / 1e6), mtime: `${seconds}.${nanoseconds}` }
}

function postOpAttributes(reply: XdrReader): Attributes | undefined {
  return reply.bool() ? attributes(reply) : undefined
}

function postOpHandle(reply: XdrReader): FileHandle | undefined {
  return reply.bool() ? Buffer.from(reply.opaque(64)) : undefined
}

function wccData(reply: XdrReader): void {
  if (reply.bool()) reply.skip(24)
  postOpAttributes(reply)
}
