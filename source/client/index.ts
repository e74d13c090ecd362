// The typed client of the daemon's socket, used by the TUI and the CLI: calls with typed params and
// results, notifications by name, and (optionally) reconnection with the subscriptions restored. Its core,
// RpcClient, is any JSON-RPC line connection: the daemon reaches its proxies with it over ssh.
import { connect, type Socket } from 'node:net'
import { EventEmitter } from 'node:events'
import { resolve } from 'node:path'
import { LifeboatError } from '../util/errors.ts'
import { defaultDataDir } from '../util/paths.ts'
import { LineSplitter, MAX_LINE_BYTES, MAX_NESTING, RPC_ERRORS, encodeMessage, leadingId, type RpcErrorObject } from '../protocol/jsonrpc.ts'
import type { Duplex } from 'node:stream'
import type { Methods, SubscriptionTopic } from '../protocol/methods.ts'
import type { NotificationName, Notifications } from '../protocol/events.ts'

export { defaultDataDir }

/** The socket: --socket, else $LIFEBOAT_SOCKET, else <data directory>/lifeboat.sock. */
export function defaultSocketPath(dataDir?: string): string {
  if (dataDir === undefined && process.env.LIFEBOAT_SOCKET !== undefined) return resolve(process.env.LIFEBOAT_SOCKET)
  return resolve(dataDir ?? defaultDataDir(), 'lifeboat.sock')
}

/** An error the daemon (or a proxy) answered with; `code` is Lifeboat's code (JOB_NOT_FOUND…) or the JSON-RPC one (INVALID_PARAMS…). */
export class DaemonError extends LifeboatError {
  readonly rpcCode: number
  constructor(error: RpcErrorObject) {
    super(error.data?.code ?? rpcCodeName(error.code), error.message, error.data?.data === undefined ? {} : { data: error.data.data as Record<string, unknown> })
    this.rpcCode = error.code
  }
}

function rpcCodeName(code: number): string {
  const entry = Object.entries(RPC_ERRORS).find(([, value]) => value === code)
  return entry === undefined ? `RPC_${code}` : entry[0]
}

export function daemonNotRunning(socketPath: string, cause?: unknown): LifeboatError {
  return new LifeboatError(
    'DAEMON_NOT_RUNNING',
    `No Lifeboat daemon answers on ${socketPath}. Start it with 'npx lifeboat daemon' (or 'systemctl start lifeboat'), or point to its socket with --socket.`,
    { cause },
  )
}

export interface ClientOptions {
  /** Reconnect after the daemon goes away (the TUI); the CLI fails instead. */
  reconnect?: boolean
  /** Milliseconds before a call without an answer fails (default: none). */
  callTimeoutMs?: number
}

/** A method table: each method's params as a client writes them, and its result. */
export type MethodTable = Record<string, { params: unknown; result: unknown }>

/** How the failures of a connection read, for the peer it reaches (the daemon, a proxy). */
export interface PeerWords {
  /** "the daemon", "the proxy \"edge\"": in the sentences of the errors below and of refused calls. */
  name: string
  /** Nobody answers (the connection is gone before a call is sent). */
  unreachable(cause?: unknown): LifeboatError
  /** The connection dropped before the answer came. */
  lost(): LifeboatError
  timeout(method: string, ms: number): LifeboatError
}

const daemonWords = (socketPath: string): PeerWords => ({
  name: 'the daemon',
  unreachable: cause => daemonNotRunning(socketPath, cause),
  lost: () => new LifeboatError('DAEMON_DISCONNECTED', `The connection to the daemon (${socketPath}) was lost before it answered; check 'systemctl status lifeboat'.`, { cause: daemonNotRunning(socketPath) }),
  timeout: (method, ms) => new LifeboatError('DAEMON_TIMEOUT', `The daemon did not answer ${method} within ${ms} ms; check that it is not overloaded ('npx lifeboat run list').`),
})

interface Pending {
  resolve(value: unknown): void
  reject(error: unknown): void
  timer?: NodeJS.Timeout
}

/**
 * A JSON-RPC connection over one byte stream (a Unix socket, an ssh process's pipes) to a peer serving the
 * methods of `T`. Events: 'close' (the connection dropped), 'reconnect' (back, when `reopen` is given and
 * reconnect asked); 'error' is never emitted: failures surface as rejected calls.
 */
export class RpcClient<T extends MethodTable> extends EventEmitter {
  #stream: Duplex
  #nextId = 1
  readonly #pending = new Map<number, Pending>()
  #closed = false

  constructor(
    stream: Duplex,
    private readonly words: PeerWords,
    private readonly options: ClientOptions = {},
    private readonly reopen?: () => Promise<Duplex>,
  ) {
    super()
    this.#stream = stream
    this.#attach(stream)
  }

  get connected(): boolean {
    return !this.#closed && !this.#stream.destroyed
  }

  call<M extends keyof T & string>(method: M, ...params: undefined extends T[M]['params'] ? [params?: T[M]['params']] : [params: T[M]['params']]): Promise<T[M]['result']> {
    if (this.#closed) return Promise.reject(new LifeboatError('CLIENT_CLOSED', `This connection to ${this.words.name} was closed.`))
    if (this.#stream.destroyed) return Promise.reject(this.words.unreachable())
    const id = this.#nextId++
    let line: string
    try {
      line = encodeMessage({ jsonrpc: '2.0', id, method, ...(params[0] !== undefined && { params: params[0] }) })
    } catch (error) {
      // JSON.stringify recurses: params nested far deeper than the daemon takes (a broken job file) overflow the stack.
      if (!(error instanceof RangeError)) throw error
      return Promise.reject(new LifeboatError('REQUEST_TOO_DEEP', `The ${method} request nests arrays or objects deeper than ${MAX_NESTING} levels; no method takes that.`))
    }
    // The peer would skip it: said here, at once, rather than sent for nothing.
    if (Buffer.byteLength(line) > MAX_LINE_BYTES) {
      return Promise.reject(new LifeboatError('REQUEST_TOO_LARGE', `The ${method} request is ${Buffer.byteLength(line)} bytes, more than ${this.words.name} takes (${MAX_LINE_BYTES}); make it smaller (a job file that big is a mistake).`))
    }
    return new Promise((resolve, reject) => {
      const pending: Pending = { resolve: resolve as (value: unknown) => void, reject }
      if (this.options.callTimeoutMs !== undefined) {
        const ms = this.options.callTimeoutMs
        pending.timer = setTimeout(() => {
          this.#pending.delete(id)
          reject(this.words.timeout(method, ms))
        }, ms)
      }
      this.#pending.set(id, pending)
      this.#stream.write(line)
    })
  }

  /** Listens to one notification; returns the function that stops listening. */
  onNotification(name: string, listener: (params: unknown) => void): () => void {
    super.on(`notification:${name}`, listener)
    return () => super.off(`notification:${name}`, listener)
  }

  close(): void {
    this.#closed = true
    this.#stream.end()
    this.#stream.destroy()
  }

  /** After a reconnection, before 'reconnect' is emitted: what the connection must set up again. */
  protected async restore(): Promise<void> {}

  #attach(stream: Duplex): void {
    const splitter = new LineSplitter(
      line => this.#receive(line),
      // An answer too long to read fails its call (the peer writes the id first) instead of leaving it waiting.
      start => {
        const id = leadingId(start)
        if (typeof id === 'number') this.#settle(id, { error: { code: RPC_ERRORS.INTERNAL_ERROR, message: `The answer of ${this.words.name} is longer than ${MAX_LINE_BYTES} bytes; ask for less (a --limit, one run).`, data: { code: 'RESPONSE_TOO_LARGE' } } })
      },
    )
    stream.on('data', (chunk: Buffer) => splitter.push(chunk))
    stream.on('error', () => {})
    stream.on('close', () => this.#onClose())
  }

  #receive(line: string): void {
    let message: { id?: unknown; method?: unknown; params?: unknown; result?: unknown; error?: RpcErrorObject }
    try {
      message = JSON.parse(line)
    } catch {
      return
    }
    if (message === null || typeof message !== 'object') return
    if (typeof message.method === 'string' && message.id === undefined) {
      this.emit(`notification:${message.method}`, message.params)
      return
    }
    // A refusal the peer could not tie to a request: one of the calls in flight will never be answered.
    if (message.id === null && message.error !== undefined) {
      for (const id of [...this.#pending.keys()]) this.#settle(id, message)
      return
    }
    if (typeof message.id === 'number') this.#settle(message.id, message)
  }

  #settle(id: number, message: { result?: unknown; error?: RpcErrorObject }): void {
    const pending = this.#pending.get(id)
    if (pending === undefined) return
    this.#pending.delete(id)
    clearTimeout(pending.timer)
    if (message.error !== undefined) pending.reject(new DaemonError(message.error))
    else pending.resolve(message.result)
  }

  #onClose(): void {
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer)
      pending.reject(this.words.lost())
    }
    this.#pending.clear()
    this.emit('close')
    if (!this.#closed && this.options.reconnect === true && this.reopen !== undefined) void this.#reconnect(this.reopen)
  }

  async #reconnect(reopen: () => Promise<Duplex>): Promise<void> {
    for (let delay = 250; !this.#closed; delay = Math.min(delay * 2, 5000)) {
      await new Promise(resolve => setTimeout(resolve, delay))
      if (this.#closed) return
      try {
        const stream = await reopen()
        if (this.#closed) {
          stream.destroy()
          return
        }
        this.#stream = stream
        this.#attach(stream)
        await this.restore().catch(() => {})
        this.emit('reconnect')
        return
      } catch {
        // the peer is still down: try again later
      }
    }
  }
}

/** The daemon's client (TUI, CLI): its socket, its methods, and subscriptions restored after a reconnection. */
export class DaemonClient extends RpcClient<Methods> {
  readonly #topics = new Set<SubscriptionTopic>()
  #runId: string | undefined

  private constructor(
    readonly socketPath: string,
    socket: Socket,
    options: ClientOptions,
  ) {
    super(socket, daemonWords(socketPath), options, () => openSocket(socketPath))
  }

  static async connect(socketPath: string = defaultSocketPath(), options: ClientOptions = {}): Promise<DaemonClient> {
    return new DaemonClient(socketPath, await openSocket(socketPath), options)
  }

  /** Listens to one notification; returns the function that stops listening. */
  override onNotification<N extends NotificationName>(name: N, listener: (params: Notifications[N]) => void): () => void {
    return super.onNotification(name, params => listener(params as Notifications[N]))
  }

  /** Subscribes to topics (remembered and restored after a reconnection). */
  async subscribe(topics: SubscriptionTopic[], runId?: string): Promise<SubscriptionTopic[]> {
    for (const topic of topics) this.#topics.add(topic)
    this.#runId = runId
    const { subscribed } = await this.call('subscribe', { topics, ...(runId !== undefined && { runId }) })
    return subscribed
  }

  protected override async restore(): Promise<void> {
    if (this.#topics.size > 0) await this.call('subscribe', { topics: [...this.#topics], ...(this.#runId !== undefined && { runId: this.#runId }) })
  }
}

function openSocket(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath)
    socket.once('connect', () => {
      socket.removeAllListeners('error')
      resolve(socket)
    })
    socket.once('error', error => reject(daemonNotRunning(socketPath, error)))
  })
}
