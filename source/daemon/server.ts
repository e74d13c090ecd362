// The Unix socket: one JSON-RPC line protocol connection per client, every request validated before its
// handler runs, and notifications that can never hold up the daemon (a client that stops reading is
// skipped, then told to resync once it drains).
import { createServer, connect, type Server, type Socket } from 'node:net'
import { chmod, unlink } from 'node:fs/promises'
import { z } from 'zod'
import { LifeboatError, errorCode, isLifeboatError } from '../util/errors.ts'
import { LineBudget, LineSplitter, MAX_LINE_BYTES, MAX_NESTING, RPC_ERRORS, encodeMessage, leadingId, nestsDeeperThan, requestSchema, type RpcErrorObject } from '../protocol/jsonrpc.ts'
import type { SubscriptionTopic } from '../protocol/methods.ts'
import type { NotificationName, Notifications } from '../protocol/events.ts'

/** Notifications stop being written to a client once this much is waiting in its socket. */
export const CLIENT_QUEUE_BYTES = 1024 * 1024
/** A client that lets this much of answers pile up (it sends and never reads) is disconnected. */
const CLIENT_HARD_LIMIT_BYTES = 4 * CLIENT_QUEUE_BYTES + MAX_LINE_BYTES
/** Connections served at once; the TUIs and CLIs of one appliance need a handful. */
export const MAX_CONNECTIONS = 128
/** Unfinished request lines held across all connections (each may hold MAX_LINE_BYTES): the daemon's memory stays bounded. */
export const MAX_BUFFERED_BYTES = 32 * 1024 * 1024

export class ClientConnection {
  readonly topics = new Set<SubscriptionTopic>()
  /** Task events of this run only, when set. */
  runId: string | undefined
  #dropping = false

  constructor(readonly socket: Socket) {
    socket.on('drain', () => {
      if (!this.#dropping) return
      this.#dropping = false
      this.socket.write(encodeMessage({ jsonrpc: '2.0', method: 'resync', params: { reason: 'notifications were dropped because this client read too slowly; fetch the lists again.' } }))
    })
  }

  notify<N extends NotificationName>(method: N, params: Notifications[N]): void {
    this.send(method, params)
  }

  /** A notification of another table than the daemon's (the proxy's run.event). */
  send(method: string, params: unknown): void {
    if (this.socket.destroyed) return
    if (this.#dropping) return
    if (this.socket.writableLength > CLIENT_QUEUE_BYTES) {
      this.#dropping = true
      return
    }
    this.socket.write(encodeMessage({ jsonrpc: '2.0', method, params }))
  }

  respond(message: string): void {
    if (this.socket.destroyed) return
    if (this.socket.writableLength > CLIENT_HARD_LIMIT_BYTES) {
      this.socket.destroy()
      return
    }
    this.socket.write(message)
  }
}

export type MethodHandler = (params: unknown, client: ClientConnection) => Promise<unknown> | unknown

export interface RpcServerOptions<M extends string> {
  socketPath: string
  /** The params schema of each method served (the daemon's methodParams, the proxy's proxyMethodParams). */
  methods: Record<M, z.ZodType>
  handlers: Record<M, MethodHandler>
  onDisconnect?: (client: ClientConnection) => void
  /** Who answers here, for the refusals a client reads ("daemon", "proxy"). */
  serverName?: string
  /** The command that stops whoever else listens on the socket (default: the daemon's). */
  stopCommand?: string
}

/** The JSON-RPC line server of a Unix socket, for one table of methods (the daemon's, or the proxy's). */
export class RpcServer<M extends string = string> {
  readonly clients = new Set<ClientConnection>()
  #server: Server | undefined
  readonly #buffered = new LineBudget(MAX_BUFFERED_BYTES)

  constructor(private readonly options: RpcServerOptions<M>) {}

  async listen(): Promise<void> {
    const { socketPath } = this.options
    await removeStaleSocket(socketPath, this.options.serverName ?? 'daemon', this.options.stopCommand ?? 'systemctl stop lifeboat')
    const server = createServer(socket => this.#accept(socket))
    // The socket is created 0600 from the start (umask), not tightened after: no window where others can connect.
    const umask = process.umask(0o177)
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(socketPath, () => {
          server.off('error', reject)
          resolve()
        })
      })
    } catch (error) {
      throw new LifeboatError('SOCKET_UNAVAILABLE', `Cannot listen on ${socketPath} (${(error as Error).message}); check the directory exists and is writable, or choose another with --socket.`, { cause: error })
    } finally {
      process.umask(umask)
    }
    await chmod(socketPath, 0o600)
    this.#server = server
  }

  async close(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    for (const client of this.clients) client.socket.destroy()
    if (server !== undefined) await new Promise<void>(resolve => server.close(() => resolve()))
  }

  /** Sends a notification to every client that `wants` it. */
  broadcast<N extends NotificationName>(method: N, params: Notifications[N], wants: (client: ClientConnection) => boolean): void {
    for (const client of this.clients) if (wants(client)) client.notify(method, params)
  }

  #accept(socket: Socket): void {
    socket.on('error', () => {})
    if (this.clients.size >= MAX_CONNECTIONS) {
      socket.end(errorResponse(null, RPC_ERRORS.APPLICATION_ERROR, `The ${this.options.serverName ?? 'daemon'} already serves ${MAX_CONNECTIONS} connections; close some (TUIs, 'logs --follow') and try again.`, 'DAEMON_BUSY'))
      return
    }
    const client = new ClientConnection(socket)
    this.clients.add(client)
    const splitter = new LineSplitter(
      line => void this.#handleLine(client, line),
      start => client.respond(errorResponse(leadingId(start), RPC_ERRORS.INVALID_REQUEST, `The request is longer than ${MAX_LINE_BYTES} bytes; it was skipped.`, 'REQUEST_TOO_LARGE')),
      {
        shared: this.#buffered,
        onExceeded: start => client.respond(errorResponse(leadingId(start), RPC_ERRORS.APPLICATION_ERROR, 'The daemon holds too many unfinished requests from its connections; this one was skipped. Try again in a moment.', 'DAEMON_BUSY')),
      },
    )
    socket.on('data', chunk => splitter.push(chunk))
    socket.on('close', () => {
      splitter.release()
      this.clients.delete(client)
      this.options.onDisconnect?.(client)
    })
  }

  async #handleLine(client: ClientConnection, line: string): Promise<void> {
    // JSON.parse copes with any depth; the validation and handlers after it recurse, and would overflow the stack.
    if (nestsDeeperThan(line, MAX_NESTING)) {
      client.respond(errorResponse(leadingId(line), RPC_ERRORS.INVALID_REQUEST, `The request nests arrays or objects deeper than ${MAX_NESTING} levels; no method takes that.`, 'REQUEST_TOO_DEEP'))
      return
    }
    let raw: unknown
    try {
      raw = JSON.parse(line)
    } catch {
      client.respond(errorResponse(null, RPC_ERRORS.PARSE_ERROR, 'The request is not valid JSON; send one JSON-RPC 2.0 object per line.'))
      return
    }
    const request = requestSchema.safeParse(raw)
    if (!request.success) {
      const id = idOf(raw)
      client.respond(errorResponse(id, RPC_ERRORS.INVALID_REQUEST, Array.isArray(raw) ? 'Batches are not supported; send one request per line.' : `Not a JSON-RPC 2.0 request: ${describeIssues(request.error)}.`))
      return
    }
    const { id, method, params } = request.data
    const reply = (message: string) => {
      if (id !== undefined) client.respond(message)
    }
    if (!Object.hasOwn(this.options.methods, method)) {
      reply(errorResponse(id ?? null, RPC_ERRORS.METHOD_NOT_FOUND, `Unknown method "${method.slice(0, 100)}".`))
      return
    }
    const known = method as M
    const parsed = this.options.methods[known].safeParse(params)
    if (!parsed.success) {
      reply(errorResponse(id ?? null, RPC_ERRORS.INVALID_PARAMS, `Bad params for ${method}: ${describeIssues(parsed.error)}.`))
      return
    }
    try {
      const result = await this.options.handlers[known](parsed.data, client)
      reply(encodeMessage({ jsonrpc: '2.0', id: id ?? null, result: result ?? {} }))
    } catch (error) {
      reply(encodeMessage({ jsonrpc: '2.0', id: id ?? null, error: toRpcError(error) }))
    }
  }
}

function idOf(raw: unknown): string | number | null {
  if (raw === null || typeof raw !== 'object' || !('id' in raw)) return null
  const id = (raw as { id: unknown }).id
  return (typeof id === 'string' && id.length <= 200) || (typeof id === 'number' && Number.isInteger(id)) ? id : null
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map(issue => `${issue.path.length > 0 ? issue.path.join('.') + ': ' : ''}${issue.message}`)
    .join('; ')
}

function errorResponse(id: string | number | null, code: number, message: string, lifeboatCode?: string): string {
  return encodeMessage({ jsonrpc: '2.0', id, error: { code, message, ...(lifeboatCode !== undefined && { data: { code: lifeboatCode } }) } })
}

/** Our errors keep their code and sentence; anything else is reported as an internal error with its code. */
export function toRpcError(error: unknown): RpcErrorObject {
  if (isLifeboatError(error)) return { code: RPC_ERRORS.APPLICATION_ERROR, message: error.message, data: { code: error.code, ...(error.data !== undefined && { data: error.data }) } }
  const message = error instanceof Error ? error.message : String(error)
  return { code: RPC_ERRORS.APPLICATION_ERROR, message, data: { code: errorCode(error) } }
}

/** A socket file left by a daemon that died is removed; one a live daemon answers on is an error. */
async function removeStaleSocket(socketPath: string, serverName: string, stopCommand: string): Promise<void> {
  const alive = await new Promise<boolean>(resolve => {
    const probe = connect(socketPath)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
  if (alive) throw new LifeboatError(`${serverName.toUpperCase()}_ALREADY_RUNNING`, `Another Lifeboat ${serverName} is already listening on ${socketPath}; stop it first (${stopCommand}) or use another --socket.`)
  await unlink(socketPath).catch(() => {})
}
