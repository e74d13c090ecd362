// The typed client of the daemon's socket, used by the TUI and the CLI: calls with typed params and
// results, notifications by name, and (optionally) reconnection with the subscriptions restored.
import { connect, type Socket } from 'node:net'
import { EventEmitter } from 'node:events'
import { resolve } from 'node:path'
import { LifeboatError } from '../util/errors.ts'
import { defaultDataDir } from '../util/paths.ts'
import { LineSplitter, MAX_LINE_BYTES, MAX_NESTING, RPC_ERRORS, encodeMessage, leadingId, type RpcErrorObject } from '../protocol/jsonrpc.ts'
import type { MethodName, MethodParams, MethodResults, SubscriptionTopic } from '../protocol/methods.ts'
import type { NotificationName, Notifications } from '../protocol/events.ts'

export { defaultDataDir }

/** The socket: --socket, else $LIFEBOAT_SOCKET, else <data directory>/lifeboat.sock. */
export function defaultSocketPath(dataDir?: string): string {
  if (dataDir === undefined && process.env.LIFEBOAT_SOCKET !== undefined) return resolve(process.env.LIFEBOAT_SOCKET)
  return resolve(dataDir ?? defaultDataDir(), 'lifeboat.sock')
}

/** An error the daemon answered with; `code` is Lifeboat's code (JOB_NOT_FOUND…) or the JSON-RPC one (INVALID_PARAMS…). */
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

interface Pending {
  resolve(value: unknown): void
  reject(error: unknown): void
  timer?: NodeJS.Timeout
}

/**
 * Events: 'close' (the connection dropped), 'reconnect' (back, subscriptions restored),
 * 'error' is never emitted: failures surface as rejected calls.
 */
export class DaemonClient extends EventEmitter {
  #socket: Socket
  #nextId = 1
  readonly #pending = new Map<number, Pending>()
  readonly #topics = new Set<SubscriptionTopic>()
  #runId: string | undefined
  #closed = false

  private constructor(
    readonly socketPath: string,
    socket: Socket,
    private readonly options: ClientOptions,
  ) {
    super()
    this.#socket = socket
    this.#attach(socket)
  }

  static async connect(socketPath: string = defaultSocketPath(), options: ClientOptions = {}): Promise<DaemonClient> {
    return new DaemonClient(socketPath, await openSocket(socketPath), options)
  }

  get connected(): boolean {
    return !this.#closed && !this.#socket.destroyed
  }

  call<M extends MethodName>(method: M, ...params: undefined extends MethodParams[M] ? [params?: MethodParams[M]] : [params: MethodParams[M]]): Promise<MethodResults[M]> {
    if (this.#closed) return Promise.reject(new LifeboatError('CLIENT_CLOSED', 'This connection to the daemon was closed.'))
    if (this.#socket.destroyed) return Promise.reject(daemonNotRunning(this.socketPath))
    const id = this.#nextId++
    let line: string
    try {
      line = encodeMessage({ jsonrpc: '2.0', id, method, ...(params[0] !== undefined && { params: params[0] }) })
    } catch (error) {
      // JSON.stringify recurses: params nested far deeper than the daemon takes (a broken job file) overflow the stack.
      if (!(error instanceof RangeError)) throw error
      return Promise.reject(new LifeboatError('REQUEST_TOO_DEEP', `The ${method} request nests arrays or objects deeper than ${MAX_NESTING} levels; no method takes that.`))
    }
    // The daemon would skip it: said here, at once, rather than sent for nothing.
    if (Buffer.byteLength(line) > MAX_LINE_BYTES) {
      return Promise.reject(new LifeboatError('REQUEST_TOO_LARGE', `The ${method} request is ${Buffer.byteLength(line)} bytes, more than the daemon takes (${MAX_LINE_BYTES}); make it smaller (a job file that big is a mistake).`))
    }
    return new Promise((resolve, reject) => {
      const pending: Pending = { resolve: resolve as (value: unknown) => void, reject }
      if (this.options.callTimeoutMs !== undefined) {
        pending.timer = setTimeout(() => {
          this.#pending.delete(id)
          reject(new LifeboatError('DAEMON_TIMEOUT', `The daemon did not answer ${method} within ${this.options.callTimeoutMs} ms; check that it is not overloaded ('npx lifeboat run list').`))
        }, this.options.callTimeoutMs)
      }
      this.#pending.set(id, pending)
      this.#socket.write(line)
    })
  }

  /** Listens to one notification; returns the function that stops listening. */
  onNotification<N extends NotificationName>(name: N, listener: (params: Notifications[N]) => void): () => void {
    const wrapped = (params: unknown) => listener(params as Notifications[N])
    super.on(`notification:${name}`, wrapped)
    return () => super.off(`notification:${name}`, wrapped)
  }

  /** Subscribes to topics (remembered and restored after a reconnection). */
  async subscribe(topics: SubscriptionTopic[], runId?: string): Promise<SubscriptionTopic[]> {
    for (const topic of topics) this.#topics.add(topic)
    this.#runId = runId
    const { subscribed } = await this.call('subscribe', { topics, ...(runId !== undefined && { runId }) })
    return subscribed
  }

  close(): void {
    this.#closed = true
    this.#socket.end()
    this.#socket.destroy()
  }

  #attach(socket: Socket): void {
    const splitter = new LineSplitter(
      line => this.#receive(line),
      // An answer too long to read fails its call (the daemon writes the id first) instead of leaving it waiting.
      start => {
        const id = leadingId(start)
        if (typeof id === 'number') this.#settle(id, { error: { code: RPC_ERRORS.INTERNAL_ERROR, message: `The daemon's answer is longer than ${MAX_LINE_BYTES} bytes; ask for less (a --limit, one run).`, data: { code: 'RESPONSE_TOO_LARGE' } } })
      },
    )
    socket.on('data', chunk => splitter.push(chunk))
    socket.on('error', () => {})
    socket.on('close', () => this.#onClose())
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
    // A refusal the daemon could not tie to a request: one of the calls in flight will never be answered.
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
    const lost = daemonNotRunning(this.socketPath)
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer)
      pending.reject(new LifeboatError('DAEMON_DISCONNECTED', `The connection to the daemon (${this.socketPath}) was lost before it answered; check 'systemctl status lifeboat'.`, { cause: lost }))
    }
    this.#pending.clear()
    this.emit('close')
    if (!this.#closed && this.options.reconnect === true) void this.#reconnect()
  }

  async #reconnect(): Promise<void> {
    for (let delay = 250; !this.#closed; delay = Math.min(delay * 2, 5000)) {
      await new Promise(resolve => setTimeout(resolve, delay))
      if (this.#closed) return
      try {
        const socket = await openSocket(this.socketPath)
        if (this.#closed) {
          socket.destroy()
          return
        }
        this.#socket = socket
        this.#attach(socket)
        if (this.#topics.size > 0) await this.call('subscribe', { topics: [...this.#topics], ...(this.#runId !== undefined && { runId: this.#runId }) }).catch(() => {})
        this.emit('reconnect')
        return
      } catch {
        // the daemon is still down: try again later
      }
    }
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
