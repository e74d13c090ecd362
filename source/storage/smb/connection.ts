// One SMB2/3 connection ([MS-SMB2]): NetBIOS-framed messages over TCP, several requests in flight matched to
// their answers by MessageId, the credit window, STATUS_PENDING interim answers waited through, signing
// (HMAC-SHA256 on 2.1, AES-CMAC on 3.x), and the handshake: NEGOTIATE, SESSION_SETUP (NTLMv2), TREE_CONNECT.
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { aesCmac, smb3Kdf } from './crypto.ts'
import { authenticateMessage, negotiateMessage, parseChallenge, type Credentials } from './ntlm.ts'
import { SmbStatusError, Status } from './status.ts'

export const Command = {
  NEGOTIATE: 0,
  SESSION_SETUP: 1,
  LOGOFF: 2,
  TREE_CONNECT: 3,
  TREE_DISCONNECT: 4,
  CREATE: 5,
  CLOSE: 6,
  FLUSH: 7,
  READ: 8,
  WRITE: 9,
  ECHO: 13,
  QUERY_DIRECTORY: 14,
  QUERY_INFO: 16,
  SET_INFO: 17,
} as const

const COMMAND_NAMES = Object.fromEntries(Object.entries(Command).map(([name, code]) => [code, name])) as Record<number, string>

const HEADER = 64
const PROTOCOL = 0x424d53fe // 0xFE 'S' 'M' 'B', little-endian
const TRANSFORM = 0x424d53fd // an encrypted message
const FLAG_RESPONSE = 0x1
const FLAG_ASYNC = 0x2
const FLAG_SIGNED = 0x8
export const Dialect = { SMB2_1: 0x0210, SMB3_0: 0x0300, SMB3_0_2: 0x0302, SMB3_1_1: 0x0311 } as const
const DIALECTS: number[] = Object.values(Dialect)
const SMB311 = Dialect.SMB3_1_1
const CAP_LARGE_MTU = 0x4
const SIGNING_ENABLED = 0x1
const SESSION_GUEST = 0x1
const SESSION_ENCRYPT = 0x4
const SHARE_ENCRYPT = 0x8000
// Above any answer we ask for (8 MiB reads plus headers): a larger length is a corrupt stream, not a message.
const MAX_FRAME = 16 * 1024 * 1024 + 4096
const CREDITS_WANTED = 256
const CLOSE_WAIT_MS = 5000

export interface ConnectionOptions {
  host: string
  port: number
  share: string
  credentials: Credentials
  /** Bound on a request without an answer (default 60 s). */
  timeoutMs?: number
  /** The dialects offered (default 2.1, 3.0, 3.0.2 and 3.1.1; tests offer one at a time). */
  dialects?: number[]
  /** Bound on a request the server said is pending (STATUS_PENDING): it is alive, the disk is slow (default 10 min). */
  pendingTimeoutMs?: number
}

/** Why a connection cannot carry requests any more; `code` is what the storage errors map (ECONNRESET, ETIMEDOUT, EPROTO). */
export class SmbConnectionError extends Error {
  readonly code: string
  constructor(code: 'ECONNRESET' | 'ETIMEDOUT' | 'EPROTO' | 'ECONNREFUSED', message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/** A refusal that no retry changes: the credentials, the share, encryption. `kind` says which. */
export class SmbRefusedError extends Error {
  readonly kind: 'auth' | 'share' | 'encryption' | 'guest' | 'dialect'
  readonly status: number | undefined
  constructor(kind: SmbRefusedError['kind'], message: string, status?: number) {
    super(message)
    this.kind = kind
    this.status = status
  }
}

export interface Reply {
  status: number
  /** The message after its 64-byte header. */
  body: Buffer
}

interface Answer {
  status: number
  body: Buffer
  message: Buffer
  flags: number
  sessionId: bigint
}

interface Waiter {
  command: number
  resolve: (answer: Answer) => void
  reject: (error: Error) => void
  timer: NodeJS.Timeout
  signed: boolean
}

export interface RequestOptions {
  /** Credits the request consumes (a read or write of n × 64 KiB charges n). */
  charge?: number
  /** Statuses that are answers, not errors (STATUS_NO_MORE_FILES, STATUS_END_OF_FILE…). */
  accept?: number[]
  /** Bytes sent after the body (a WRITE's data): copied once, into the message. */
  payload?: Buffer
  signal?: AbortSignal
}

export class SmbConnection {
  readonly #socket: Socket
  readonly #options: ConnectionOptions
  readonly #waiters = new Map<bigint, Waiter>()
  readonly #creditQueue: Array<{ charge: number; go: () => void }> = []
  #credits = 1
  #nextId = 0n
  #chunks: Buffer[] = []
  #buffered = 0
  #failure: Error | undefined
  #sessionId = 0n
  #treeId = 0
  #signingKey: Buffer | undefined
  #dialect = 0
  #preauth: Buffer = Buffer.alloc(64)
  readonly #closeListeners: Array<(error: Error) => void> = []
  maxRead = 65536
  maxWrite = 65536
  #largeMtu = false

  private constructor(socket: Socket, options: ConnectionOptions) {
    this.#socket = socket
    this.#options = options
    socket.on('data', chunk => this.#receive(chunk))
    socket.on('error', error => this.#fail(new SmbConnectionError('ECONNRESET', `the connection to ${options.host}:${options.port} failed (${(error as NodeJS.ErrnoException).code ?? error.message})`, { cause: error })))
    socket.on('close', () => this.#fail(new SmbConnectionError('ECONNRESET', `the server ${options.host}:${options.port} closed the connection`)))
  }

  /** Connects, negotiates, logs on and connects the share. */
  static async open(options: ConnectionOptions): Promise<SmbConnection> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: options.host, port: options.port, noDelay: true })
      const timer = setTimeout(() => socket.destroy(new SmbConnectionError('ETIMEDOUT', `${options.host}:${options.port} did not accept a connection within ${Math.round((options.timeoutMs ?? 60_000) / 1000)} s`)), options.timeoutMs ?? 60_000)
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.removeAllListeners('error')
        resolve(socket)
      })
      socket.once('error', error => {
        clearTimeout(timer)
        const code = (error as NodeJS.ErrnoException).code
        reject(error instanceof SmbConnectionError ? error : new SmbConnectionError(code === 'ECONNREFUSED' ? 'ECONNREFUSED' : 'ECONNRESET', `${options.host}:${options.port} cannot be reached (${code ?? error.message})`, { cause: error }))
      })
    })
    // A server that vanishes during a long STATUS_PENDING wait is noticed by TCP, not only by the timer.
    socket.setKeepAlive(true, 10_000)
    const connection = new SmbConnection(socket, options)
    try {
      await connection.#negotiate()
      await connection.#sessionSetup()
      await connection.#treeConnect()
    } catch (error) {
      socket.destroy()
      throw error
    }
    return connection
  }

  get dialect(): number {
    return this.#dialect
  }

  get closed(): boolean {
    return this.#failure !== undefined
  }

  /** Called once when the connection can carry no more requests. */
  onClose(listener: (error: Error) => void): void {
    if (this.#failure !== undefined) listener(this.#failure)
    else this.#closeListeners.push(listener)
  }

  /** Sends a request on the share's tree and resolves with its final answer; an error status rejects (SmbStatusError). */
  async request(command: number, body: Buffer, options: RequestOptions = {}): Promise<Reply> {
    const reply = await this.#send(command, body, this.#treeId, options.charge ?? 1, options.signal, options.payload)
    if (reply.status !== Status.SUCCESS && !(options.accept ?? []).includes(reply.status)) throw new SmbStatusError(reply.status, COMMAND_NAMES[command] ?? `command ${command}`)
    return { status: reply.status, body: reply.body }
  }

  /** Credits one read or write of `length` bytes consumes (multi-credit needs LARGE_MTU). */
  chargeFor(length: number): number {
    return this.#largeMtu ? Math.max(1, Math.ceil(length / 65536)) : 1
  }

  /** Disconnects the tree and logs off, then closes the socket (errors ignored: the server may be gone). */
  async close(): Promise<void> {
    if (this.#failure === undefined) {
      // A courtesy to the server, bounded: a hung server must not hold up the close.
      const goodbye = (async () => {
        await this.#send(Command.TREE_DISCONNECT, Buffer.from([4, 0, 0, 0]), this.#treeId, 1).catch(() => {})
        await this.#send(Command.LOGOFF, Buffer.from([4, 0, 0, 0]), 0, 1).catch(() => {})
      })()
      let timer: NodeJS.Timeout | undefined
      await Promise.race([goodbye, new Promise(resolve => (timer = setTimeout(resolve, CLOSE_WAIT_MS)))])
      clearTimeout(timer)
    }
    this.#fail(new SmbConnectionError('ECONNRESET', 'the connection was closed'))
  }

  /** Ends the connection at once (tests: the server's side of a drop; the client: a timed-out request). */
  destroy(error: Error): void {
    this.#fail(error)
  }

  #fail(error: Error): void {
    if (this.#failure !== undefined) return
    this.#failure = error
    this.#socket.destroy()
    for (const waiter of this.#waiters.values()) {
      clearTimeout(waiter.timer)
      waiter.reject(error)
    }
    this.#waiters.clear()
    for (const queued of this.#creditQueue.splice(0)) queued.go()
    for (const listener of this.#closeListeners.splice(0)) listener(error)
  }

  async #send(command: number, body: Buffer, treeId: number, charge: number, signal?: AbortSignal, payload?: Buffer): Promise<Answer> {
    // Never past the window the server granted: wait for credits, in order (#grant reserves them for us).
    if (this.#failure === undefined && (this.#credits < charge || this.#creditQueue.length > 0)) {
      const granted = new Promise<void>(go => this.#creditQueue.push({ charge, go }))
      this.#askForCredits()
      await granted
    } else this.#credits -= charge
    if (signal?.aborted === true) {
      this.#grant(charge)
      signal.throwIfAborted()
    }
    return this.#transmit(command, body, treeId, charge, true, payload).answer
  }

  /** Sends now (the caller holds the credits) and gives the bytes sent: the handshake hashes them (3.1.1). */
  #transmit(command: number, body: Buffer, treeId: number, charge: number, reserved = false, payload?: Buffer): { sent: Buffer; answer: Promise<Answer> } {
    if (this.#failure !== undefined) return { sent: Buffer.alloc(0), answer: Promise.reject(this.#failure) }
    if (!reserved) this.#credits -= charge
    const messageId = this.#nextId
    this.#nextId += BigInt(charge)
    const message = Buffer.allocUnsafe(HEADER + body.length + (payload?.length ?? 0))
    message.fill(0, 0, HEADER)
    message.writeUInt32LE(PROTOCOL, 0)
    message.writeUInt16LE(HEADER, 4)
    message.writeUInt16LE(this.#dialect === 0 ? 0 : charge, 6)
    message.writeUInt16LE(command, 12)
    message.writeUInt16LE(Math.max(charge, CREDITS_WANTED - this.#credits), 14)
    message.writeBigUInt64LE(messageId, 24)
    message.writeUInt32LE(treeId, 36)
    message.writeBigUInt64LE(this.#sessionId, 40)
    body.copy(message, HEADER)
    payload?.copy(message, HEADER + body.length)
    const signed = this.#signingKey !== undefined && command !== Command.NEGOTIATE
    if (signed) {
      message.writeUInt32LE(FLAG_SIGNED, 16)
      this.#sign(message).copy(message, 48)
    }
    const frame = Buffer.alloc(4)
    frame.writeUInt32BE(message.length, 0)
    const answer = new Promise<Answer>((resolve, reject) => {
      const timer = this.#timer(this.#options.timeoutMs ?? 60_000, command)
      this.#waiters.set(messageId, { command, resolve, reject, timer, signed })
    })
    this.#socket.write(frame)
    this.#socket.write(message)
    return { sent: message, answer }
  }

  #timer(ms: number, command: number): NodeJS.Timeout {
    return setTimeout(() => {
      const seconds = Math.round(ms / 1000)
      // The answer may still come, and its credits with it: the connection's state is unknown, so it ends.
      this.#fail(new SmbConnectionError('ETIMEDOUT', `the server ${this.#options.host}:${this.#options.port} did not answer ${COMMAND_NAMES[command] ?? command} within ${seconds} s`))
    }, ms)
  }

  // Over the message with its signature field zeroed (in place: a copy of every 1 MiB message costs).
  #sign(message: Buffer): Buffer {
    message.fill(0, 48, 64)
    if (this.#dialect >= 0x0300) return aesCmac(this.#signingKey!, message)
    return createHmac('sha256', this.#signingKey!).update(message).digest().subarray(0, 16)
  }

  #verify(message: Buffer): boolean {
    const signature = Buffer.from(message.subarray(48, 64))
    const expected = this.#sign(message)
    signature.copy(message, 48)
    return expected.equals(signature)
  }

  #receive(chunk: Buffer): void {
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    while (this.#failure === undefined && this.#buffered >= 4) {
      const head = this.#chunks[0]!.length >= 4 ? this.#chunks[0]! : Buffer.concat(this.#chunks)
      const length = head.readUInt32BE(0) & 0xffffff
      // A NetBIOS keepalive (type 0x85, empty) says nothing: skip it.
      if (head[0] === 0x85 && length === 0) {
        this.#consume(4)
        continue
      }
      if (head[0] !== 0) return this.#malformed(`a NetBIOS frame of type 0x${head[0]!.toString(16)}`)
      if (length > MAX_FRAME) return this.#malformed(`a frame of ${length} bytes`)
      if (this.#buffered < 4 + length) return
      this.#dispatch(this.#consume(4 + length).subarray(4))
    }
  }

  /** Takes `length` bytes off the front of what was received. */
  #consume(length: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks)
    const rest = all.subarray(length)
    this.#chunks = rest.length > 0 ? [rest] : []
    this.#buffered = rest.length
    return all.subarray(0, length)
  }

  #malformed(what: string): void {
    this.#fail(new SmbConnectionError('EPROTO', `the server ${this.#options.host}:${this.#options.port} sent ${what}, which is not SMB2; check that the port is an SMB server's`))
  }

  #dispatch(message: Buffer): void {
    if (message.length >= 4 && message.readUInt32LE(0) === TRANSFORM) {
      return this.#fail(new SmbRefusedError('encryption', 'the server encrypts its messages (smb encrypt = required), which Lifeboat does not support'))
    }
    if (message.length < HEADER || message.readUInt32LE(0) !== PROTOCOL || message.readUInt16LE(4) !== HEADER) return this.#malformed(`a message of ${message.length} bytes without an SMB2 header`)
    const flags = message.readUInt32LE(16)
    if ((flags & FLAG_RESPONSE) === 0) return this.#malformed('a request instead of an answer')
    const status = message.readUInt32LE(8)
    const messageId = message.readBigUInt64LE(24)
    this.#grant(message.readUInt16LE(14))
    const waiter = this.#waiters.get(messageId)
    // An answer to nobody: a request that timed out ended the connection, so this cannot happen on a live one.
    if (waiter === undefined) return this.#malformed(`an answer to message ${messageId}, which was never sent or already answered`)
    if ((flags & FLAG_ASYNC) !== 0 && status === Status.PENDING) {
      // Interim answer: the final one follows with the same MessageId; the server is alive, wait longer.
      clearTimeout(waiter.timer)
      waiter.timer = this.#timer(this.#options.pendingTimeoutMs ?? 600_000, waiter.command)
      return
    }
    this.#waiters.delete(messageId)
    clearTimeout(waiter.timer)
    // A signed request gets a signed answer; the one answer signed with a key not yet derived (the last
    // SESSION_SETUP) is checked by #sessionSetup.
    if (waiter.signed && waiter.command !== Command.SESSION_SETUP) {
      if ((flags & FLAG_SIGNED) === 0 || !this.#verify(message)) {
        const error = new SmbConnectionError('EPROTO', `the server ${this.#options.host}:${this.#options.port} sent an answer whose signature is ${(flags & FLAG_SIGNED) === 0 ? 'missing' : 'wrong'}; something between Lifeboat and the server alters the messages`)
        waiter.reject(error)
        return this.#fail(error)
      }
    }
    waiter.resolve({ status, body: message.subarray(HEADER), message, flags, sessionId: message.readBigUInt64LE(40) })
    this.#askForCredits()
  }

  // A request waits for more credits than we hold and nothing is in flight to bring any: ask with an ECHO.
  #askForCredits(): void {
    if (this.#failure !== undefined || this.#creditQueue.length === 0 || this.#waiters.size > 0 || this.#credits < 1) return
    this.#transmit(Command.ECHO, Buffer.from([4, 0, 0, 0]), 0, 1).answer.catch(() => {})
  }

  #grant(credits: number): void {
    this.#credits += credits
    while (this.#creditQueue.length > 0 && this.#creditQueue[0]!.charge <= this.#credits) {
      const next = this.#creditQueue.shift()!
      this.#credits -= next.charge
      next.go()
    }
  }

  async #negotiate(): Promise<void> {
    const dialects = this.#options.dialects ?? DIALECTS
    // Contexts only with 3.1.1: for the others the same field is ClientStartTime, which must be zero.
    const contexts = dialects.includes(SMB311) ? negotiateContexts() : Buffer.alloc(0)
    const fixed = 36 + dialects.length * 2
    const contextOffset = HEADER + fixed + ((8 - ((HEADER + fixed) % 8)) % 8)
    const body = Buffer.alloc(contextOffset - HEADER + contexts.length)
    body.writeUInt16LE(36, 0)
    body.writeUInt16LE(dialects.length, 2)
    body.writeUInt16LE(SIGNING_ENABLED, 4)
    body.writeUInt32LE(CAP_LARGE_MTU, 8)
    randomBytes(16).copy(body, 12)
    if (contexts.length > 0) {
      body.writeUInt32LE(contextOffset, 28)
      body.writeUInt16LE(1, 32)
    }
    dialects.forEach((dialect, i) => body.writeUInt16LE(dialect, 36 + i * 2))
    contexts.copy(body, contextOffset - HEADER)
    const { sent, answer } = this.#transmit(Command.NEGOTIATE, body, 0, 1)
    const reply = await answer
    const r = reply.body
    if (reply.status === Status.SUCCESS && r.length < 64) throw new SmbConnectionError('EPROTO', 'the server sent a truncated NEGOTIATE answer')
    this.#dialect = reply.status === Status.SUCCESS ? r.readUInt16LE(4) : 0
    if (!dialects.includes(this.#dialect)) {
      throw new SmbRefusedError('dialect', `the server ${this.#options.host} speaks none of SMB 2.1, 3.0, 3.0.2 and 3.1.1 (${reply.status === Status.SUCCESS ? `it chose dialect 0x${this.#dialect.toString(16)}` : new SmbStatusError(reply.status, 'NEGOTIATE').message}); set its server max protocol to SMB2_10 or later`)
    }
    this.#largeMtu = (r.readUInt32LE(24) & CAP_LARGE_MTU) !== 0
    this.maxRead = Math.min(r.readUInt32LE(32), 8 * 1024 * 1024)
    this.maxWrite = Math.min(r.readUInt32LE(36), 8 * 1024 * 1024)
    if (!this.#largeMtu) {
      this.maxRead = Math.min(this.maxRead, 65536)
      this.maxWrite = Math.min(this.maxWrite, 65536)
    }
    if (this.#dialect === SMB311) this.#preauth = sha512(sha512(this.#preauth, sent), reply.message)
  }

  async #sessionSetup(): Promise<void> {
    let preauth: Buffer = this.#preauth
    const setup = async (token: Buffer) => {
      const body = Buffer.alloc(24 + token.length)
      body.writeUInt16LE(25, 0)
      body.writeUInt8(SIGNING_ENABLED, 3)
      body.writeUInt16LE(HEADER + 24, 12)
      body.writeUInt16LE(token.length, 14)
      token.copy(body, 24)
      const { sent, answer } = this.#transmit(Command.SESSION_SETUP, body, 0, 1)
      preauth = sha512(preauth, sent)
      const reply = await answer
      if (reply.status === Status.MORE_PROCESSING_REQUIRED) preauth = sha512(preauth, reply.message)
      return reply
    }
    const first = await setup(negotiateMessage())
    if (first.status !== Status.MORE_PROCESSING_REQUIRED) throw authRefused(first.status, this.#options)
    this.#sessionId = first.sessionId
    const challenge = parseChallenge(answerPart(first.body, first.body.readUInt16LE(4), first.body.readUInt16LE(6), 'security buffer'))
    const auth = authenticateMessage(this.#options.credentials, challenge)
    const second = await setup(auth.message)
    // Samba refuses the session of a client that cannot encrypt this way (a wrong password is LOGON_FAILURE).
    if (second.status === Status.ACCESS_DENIED) {
      throw new SmbRefusedError('encryption', `the server ${this.#options.host} refused a session to ${this.#options.credentials.username} (STATUS_ACCESS_DENIED after a valid logon), which Samba does when it requires encryption (smb encrypt = required); Lifeboat does not support SMB encryption`, second.status)
    }
    if (second.status !== Status.SUCCESS) throw authRefused(second.status, this.#options)
    const flags = second.body.readUInt16LE(2)
    if ((flags & SESSION_GUEST) !== 0) throw new SmbRefusedError('guest', `the server logged ${this.#options.credentials.username} on as a guest (map to guest), which cannot sign; check the user name and the password`)
    if ((flags & SESSION_ENCRYPT) !== 0) throw new SmbRefusedError('encryption', 'the server requires encryption for this session (smb encrypt = required), which Lifeboat does not support')
    const key = auth.sessionKey
    this.#signingKey =
      this.#dialect === SMB311 ? smb3Kdf(key, Buffer.from('SMBSigningKey\0', 'latin1'), preauth)
      : this.#dialect >= 0x0300 ? smb3Kdf(key, Buffer.from('SMB2AESCMAC\0', 'latin1'), Buffer.from('SmbSign\0', 'latin1'))
      : key
    if ((second.flags & FLAG_SIGNED) !== 0 && !this.#verify(second.message)) {
      throw new SmbRefusedError('auth', `the server's answer to the logon of ${this.#options.credentials.username} has a wrong signature; check the password (a wrong one can give a wrong key)`)
    }
  }

  async #treeConnect(): Promise<void> {
    const path = Buffer.from(`\\\\${this.#options.host}\\${this.#options.share}`, 'utf16le')
    const body = Buffer.alloc(8 + path.length)
    body.writeUInt16LE(9, 0)
    body.writeUInt16LE(HEADER + 8, 4)
    body.writeUInt16LE(path.length, 6)
    path.copy(body, 8)
    const reply = await this.#transmit(Command.TREE_CONNECT, body, 0, 1).answer
    if (reply.status === Status.BAD_NETWORK_NAME) throw new SmbRefusedError('share', `the server ${this.#options.host} has no share named ${this.#options.share}; check the share name in the remote's URL`, reply.status)
    if (reply.status === Status.ACCESS_DENIED) throw new SmbRefusedError('share', `the user ${this.#options.credentials.username} may not use the share ${this.#options.share} on ${this.#options.host}; check its valid users and hosts allow`, reply.status)
    if (reply.status !== Status.SUCCESS) throw new SmbStatusError(reply.status, 'TREE_CONNECT')
    if ((reply.body.readUInt32LE(4) & SHARE_ENCRYPT) !== 0) throw new SmbRefusedError('encryption', `the share ${this.#options.share} requires encryption (smb encrypt = required), which Lifeboat does not support`)
    this.#treeId = reply.message.readUInt32LE(36)
  }
}

function sha512(previous: Buffer, message: Buffer): Buffer {
  return createHash('sha512').update(previous).update(message).digest()
}

// 3.1.1's one context we send, preauth integrity: SHA-512 with a random salt (no signing context: AES-CMAC is the default).
function negotiateContexts(): Buffer {
  const preauth = Buffer.alloc(8 + 38)
  preauth.writeUInt16LE(1, 0)
  preauth.writeUInt16LE(38, 2)
  preauth.writeUInt16LE(1, 8)
  preauth.writeUInt16LE(32, 10)
  preauth.writeUInt16LE(1, 12)
  randomBytes(32).copy(preauth, 14)
  return preauth
}

/** A variable part of an answer, by its offset (counted from the header) and length; EPROTO when it lies outside. */
export function answerPart(body: Buffer, offset: number, length: number, what: string): Buffer {
  const start = offset - HEADER
  if (start < 0 || start + length > body.length) throw new SmbConnectionError('EPROTO', `the server sent an answer whose ${what} lies outside it`)
  return body.subarray(start, start + length)
}

function authRefused(status: number, options: ConnectionOptions): Error {
  return new SmbRefusedError('auth', `the server ${options.host} refused the logon of ${options.credentials.domain === '' ? '' : `${options.credentials.domain}\\`}${options.credentials.username} (${new SmbStatusError(status, 'SESSION_SETUP').message.replace('SESSION_SETUP failed with ', '')})`, status)
}
