// ONC RPC over TCP (RFC 5531): record marking, AUTH_SYS, and many calls in flight on one connection,
// each reply matched to its call by XID (the server answers in any order). A call never waits forever:
// past its timeout the connection is considered dead and every call on it fails, for the caller to retry.
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { alreadyRetried } from '../errors.ts'
import { XdrError, XdrReader, XdrWriter } from './xdr.ts'
import { terminalSafeLine } from '../../util/terminal-text.ts'

export interface RpcCredentials {
  uid: number
  gid: number
}

export interface RpcTarget {
  host: string
  port: number
  credentials: RpcCredentials
  /** Bound on each call, and on connecting (default 60 s). */
  timeoutMs?: number
}

/** An RPC failure; `code` tells a dead connection (ECONNRESET, ETIMEDOUT, ECONNREFUSED) from a refusal. */
export class RpcError extends Error {
  readonly code: string
  /** EAUTH's auth_stat (RFC 5531): AUTH_TOOWEAK is a `secure` export, the others another security flavour. */
  readonly authStatus: number | undefined

  constructor(code: string, message: string, options?: { cause?: unknown; authStatus?: number }) {
    super(message, options)
    this.code = code
    this.authStatus = options?.authStatus
  }
}

export const AUTH_TOOWEAK = 5

/** Codes after which the call may be sent again on a new connection. */
export const CONNECTION_LOST = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL'])

// A reply larger than this is not an NFS reply (the largest is a READ of rtmax, at most a few MiB).
const MAX_RECORD = 64 * 1024 * 1024
const LAST_FRAGMENT = 0x80000000
const CALL = 0
const REPLY = 1
const AUTH_NONE = 0
const AUTH_SYS = 1

interface Pending {
  resolve: (reply: XdrReader) => void
  reject: (error: Error) => void
  timer: NodeJS.Timeout
  what: string
}

const ACCEPT_ERRORS: Record<number, string> = { 1: 'does not serve this program', 2: 'does not serve this program version', 3: 'does not know this procedure', 4: 'could not decode the arguments', 5: 'had a system error' }
const AUTH_ERRORS: Record<number, string> = { 1: 'bad credentials', 2: 'credentials rejected (the server wants a new session)', 3: 'bad verifier', 4: 'verifier rejected', 5: 'credentials too weak (the export wants a privileged source port, `secure`, or Kerberos)' }

export class RpcConnection {
  readonly #socket: Socket
  readonly #target: RpcTarget
  readonly #pending = new Map<number, Pending>()
  readonly #auth: Buffer
  #xid = randomBytes(4).readUInt32BE(0)
  #failure: RpcError | undefined
  // Record marking state: the bytes received and not yet consumed, and the fragments of the record being read.
  #chunks: Buffer[] = []
  #buffered = 0
  #fragment: { length: number; last: boolean } | undefined
  #fragments: Buffer[] = []
  #recordBytes = 0

  private constructor(socket: Socket, target: RpcTarget) {
    this.#socket = socket
    this.#target = target
    this.#auth = authSys(target.credentials)
    socket.setNoDelay(true)
    socket.on('data', chunk => this.#receive(chunk))
    socket.on('error', error => this.#fail(connectionError(error, this.#name())))
    socket.on('close', () => this.#fail(new RpcError('ECONNRESET', `the NFS server ${this.#name()} closed the connection`)))
    // An idle connection does not keep the process alive; one with calls in flight does.
    socket.unref()
  }

  /** Connects from an unprivileged port (above 1023): Lifeboat needs no root. */
  static connect(target: RpcTarget): Promise<RpcConnection> {
    const timeoutMs = target.timeoutMs ?? 60_000
    return new Promise((resolve, reject) => {
      const socket = connect({ host: target.host, port: target.port })
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new RpcError('ETIMEDOUT', `the NFS server ${target.host}:${target.port} did not accept a connection within ${Math.round(timeoutMs / 1000)} s`))
      }, timeoutMs)
      socket.once('error', error => {
        clearTimeout(timer)
        reject(connectionError(error, `${target.host}:${target.port}`))
      })
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.removeAllListeners('error')
        resolve(new RpcConnection(socket, target))
      })
    })
  }

  get alive(): boolean {
    return this.#failure === undefined
  }

  /** Sends one call; resolves with a reader on its results (after the accepted-reply header). */
  call(program: number, version: number, procedure: number, args: XdrWriter | undefined, description: string): Promise<XdrReader> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure)
    // The description may hold names listed by the server; it ends up in messages.
    const what = terminalSafeLine(description)
    const xid = (this.#xid = (this.#xid + 1) >>> 0)
    const header = new XdrWriter().uint(xid).uint(CALL).uint(2).uint(program).uint(version).uint(procedure).uint(AUTH_SYS).opaque(this.#auth).uint(AUTH_NONE).uint(0)
    const parts = [...header.parts(), ...(args?.parts() ?? [])]
    const length = parts.reduce((sum, part) => sum + part.length, 0)
    const mark = Buffer.allocUnsafe(4)
    mark.writeUInt32BE((LAST_FRAGMENT | length) >>> 0)
    const timeoutMs = this.#target.timeoutMs ?? 60_000
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new RpcError('ETIMEDOUT', `the NFS server ${this.#name()} did not answer ${what} within ${Math.round(timeoutMs / 100) / 10} s`)), timeoutMs)
      this.#pending.set(xid, { resolve, reject, timer, what })
      this.#socket.ref()
      this.#socket.cork()
      this.#socket.write(mark)
      for (const part of parts) this.#socket.write(part)
      this.#socket.uncork()
    })
  }

  close(): void {
    this.#fail(new RpcError('ECONNABORTED', `the connection to ${this.#name()} was closed by Lifeboat`))
  }

  #name(): string {
    return `${this.#target.host}:${this.#target.port}`
  }

  // Every call in flight fails with the connection's failure; later calls fail at once.
  #fail(error: RpcError): void {
    if (this.#failure !== undefined) return
    this.#failure = error
    this.#socket.destroy()
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer)
      pending.reject(error)
    }
    this.#pending.clear()
  }

  #receive(chunk: Buffer): void {
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    while (this.#failure === undefined) {
      if (this.#fragment === undefined) {
        if (this.#buffered < 4) return
        const mark = this.#take(4).readUInt32BE(0)
        this.#fragment = { length: mark & 0x7fffffff, last: (mark & LAST_FRAGMENT) !== 0 }
        this.#recordBytes += this.#fragment.length
        if (this.#recordBytes > MAX_RECORD) return this.#fail(new RpcError('EBADRPC', `the NFS server ${this.#name()} sent a record of more than ${MAX_RECORD} bytes: it is not an RPC reply`))
      }
      if (this.#buffered < this.#fragment.length) return
      this.#fragments.push(this.#take(this.#fragment.length))
      if (this.#fragment.last) {
        const record = this.#fragments.length === 1 ? this.#fragments[0]! : Buffer.concat(this.#fragments)
        this.#fragments = []
        this.#recordBytes = 0
        this.#fragment = undefined
        this.#reply(record)
      } else this.#fragment = undefined
    }
  }

  #take(bytes: number): Buffer {
    this.#buffered -= bytes
    const first = this.#chunks[0]!
    if (first.length >= bytes) {
      if (first.length === bytes) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(bytes)
      return first.subarray(0, bytes)
    }
    const out = Buffer.allocUnsafe(bytes)
    let done = 0
    while (done < bytes) {
      const chunk = this.#chunks[0]!
      const used = Math.min(chunk.length, bytes - done)
      chunk.copy(out, done, 0, used)
      done += used
      if (used === chunk.length) this.#chunks.shift()
      else this.#chunks[0] = chunk.subarray(used)
    }
    return out
  }

  #reply(record: Buffer): void {
    if (record.length < 8) return this.#fail(new RpcError('EBADRPC', `the NFS server ${this.#name()} sent a reply of ${record.length} bytes, too short for an RPC header`))
    const xid = record.readUInt32BE(0)
    const pending = this.#pending.get(xid)
    // A reply to no call of ours (a duplicate the server resent): nothing waits for it.
    if (pending === undefined) return
    this.#pending.delete(xid)
    clearTimeout(pending.timer)
    if (this.#pending.size === 0) this.#socket.unref()
    try {
      pending.resolve(this.#results(record, pending.what))
    } catch (error) {
      pending.reject(error instanceof RpcError ? error : new RpcError('EBADRPC', `the NFS server ${this.#name()} sent a malformed reply to ${pending.what}: ${(error as Error).message}`, { cause: error }))
    }
  }

  #results(record: Buffer, what: string): XdrReader {
    const reader = new XdrReader(record, 4)
    if (reader.uint() !== REPLY) throw new XdrError('the message is not a reply')
    const replyStat = reader.uint()
    if (replyStat === 0) {
      reader.uint()
      reader.opaque(400)
      const accept = reader.uint()
      if (accept === 0) return reader
      throw new RpcError('EPROGUNAVAIL', `the NFS server ${this.#name()} ${ACCEPT_ERRORS[accept] ?? `refused the call (accept status ${accept})`} (${what})`)
    }
    if (replyStat !== 1) throw new XdrError(`unknown reply status ${replyStat}`)
    const reject = reader.uint()
    if (reject === 0) throw new RpcError('EPROGUNAVAIL', `the NFS server ${this.#name()} does not speak RPC version 2 (${what})`)
    const auth = reader.uint()
    throw new RpcError('EAUTH', `the NFS server ${this.#name()} refused the AUTH_SYS credentials (uid ${this.#target.credentials.uid}, gid ${this.#target.credentials.gid}): ${AUTH_ERRORS[auth] ?? `auth status ${auth}`} (${what})`, { authStatus: auth })
  }
}

function authSys(credentials: RpcCredentials): Buffer {
  const machine = hostname().slice(0, 255)
  const writer = new XdrWriter().uint(Math.floor(Date.now() / 1000)).string(machine).uint(credentials.uid).uint(credentials.gid).uint(1).uint(credentials.gid)
  return Buffer.concat(writer.parts())
}

function connectionError(error: NodeJS.ErrnoException, name: string): RpcError {
  const code = error.code ?? 'ECONNRESET'
  const what = code === 'ECONNREFUSED' ? 'refused the connection (is the NFS server running, and on this port?)' : `dropped the connection (${code})`
  return new RpcError(CONNECTION_LOST.has(code) ? code : 'ECONNRESET', `the NFS server ${name} ${what}`, { cause: error })
}

export interface ChannelOptions {
  host: string
  /** The port, or how to find it (the portmapper), asked again at each reconnection. */
  port: number | (() => Promise<number>)
  credentials: RpcCredentials
  timeoutMs?: number
  /** Waits before each new attempt after a lost connection; their count bounds the retries. */
  retryDelaysMs?: number[]
}

/** A call's reply and whether it was sent more than once (a non-idempotent call then needs checking). */
export interface ChannelReply {
  reply: XdrReader
  resent: boolean
}

/** One connection to one RPC service, opened on first use and again after it is lost. */
export class RpcChannel {
  readonly #options: ChannelOptions
  #connection: Promise<RpcConnection> | undefined
  #closed = false

  constructor(options: ChannelOptions) {
    this.#options = options
  }

  /** Sends a call, again on a new connection when the connection is lost, a bounded number of times. */
  async call(program: number, version: number, procedure: number, args: () => XdrWriter | undefined, what: string): Promise<ChannelReply> {
    const delays = this.#options.retryDelaysMs ?? [100, 500, 1500]
    for (let attempt = 0; ; attempt++) {
      try {
        const connection = await this.#connect()
        return { reply: await connection.call(program, version, procedure, args(), what), resent: attempt > 0 }
      } catch (error) {
        const code = (error as { code?: string }).code
        if (this.#closed || code === undefined || !CONNECTION_LOST.has(code) || attempt >= delays.length) {
          if (attempt > 0 && error instanceof RpcError && CONNECTION_LOST.has(error.code)) throw alreadyRetried(new RpcError(error.code, `${error.message}, ${attempt + 1} times in a row`, { cause: error }))
          throw error
        }
        await new Promise(resolve => setTimeout(resolve, delays[attempt]))
      }
    }
  }

  close(): void {
    this.#closed = true
    const connection = this.#connection
    this.#connection = undefined
    void connection?.then(c => c.close(), () => {})
  }

  #connect(): Promise<RpcConnection> {
    if (this.#closed) return Promise.reject(new RpcError('ECONNABORTED', `the connection to ${this.#options.host} is closed`))
    const current = this.#connection
    if (current !== undefined) {
      return current.then(
        connection => (connection.alive ? connection : this.#open(current)),
        () => this.#open(current),
      )
    }
    return this.#open(undefined)
  }

  // Several calls may find the connection dead at once: the first opens the new one, the others share it.
  #open(dead: Promise<RpcConnection> | undefined): Promise<RpcConnection> {
    if (this.#connection !== dead) return this.#connect()
    const { host, port, credentials, timeoutMs } = this.#options
    this.#connection = (async () => RpcConnection.connect({ host, port: typeof port === 'number' ? port : await port(), credentials, ...(timeoutMs !== undefined && { timeoutMs }) }))()
    return this.#connection
  }
}
