// The HTTP face of one simulated pool master: JSON-RPC on /jsonrpc, XML-RPC on /, the transfer endpoints with
// XAPI's raw framing, and the /_sim control plane; plus what a toolstack restart does to the sockets.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Control } from './control.ts'
import { ApiError, toApiError } from './errors.ts'
import type { Toolstack } from './toolstack.ts'
import { handleTransfer, TRANSFER_PATHS } from './transfers.ts'
import { handleXmlRpc } from './xmlrpc.ts'

const MAX_RPC_BODY = 64 * 1024 * 1024

export class LabServer {
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()
  port = 0

  constructor(readonly xapi: Toolstack, private readonly control: Control) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  async listen(port: number): Promise<void> {
    const server = createServer((request, response) => void this.route(request, response))
    // Transfers can last hours: no request timeout (XAPI has none either; the client has its own inactivity timeout).
    server.requestTimeout = 0
    server.headersTimeout = 60_000
    server.keepAliveTimeout = 5_000
    server.on('connection', socket => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.server = server
    this.port = (server.address() as { port: number }).port
  }

  async close(): Promise<void> {
    const server = this.server
    this.server = undefined
    for (const socket of this.sockets) socket.destroy()
    this.xapi.db.close()
    if (server !== undefined) await new Promise<void>(resolve => server.close(() => resolve()))
  }

  /**
   * Toolstack restart: open connections reset, the port refuses connections for `downMs`, sessions and pending tasks
   * are gone when it comes back; the database (and the pool ref) survive.
   */
  async restart(downMs: number): Promise<void> {
    const server = this.server
    this.server = undefined
    for (const socket of this.sockets) socket.resetAndDestroy()
    this.xapi.dropVolatileState()
    if (server !== undefined) await new Promise<void>(resolve => server.close(() => resolve()))
    setTimeout(() => {
      void this.listen(this.port).catch(error => console.error(`lab: ${this.xapi.name} could not listen again:`, error))
    }, downMs)
  }

  private async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://lab')
    try {
      if (url.pathname.startsWith('/_sim/')) return await this.control.handle(this, request, response, url)
      if (TRANSFER_PATHS.has(url.pathname.replace(/\/?$/, '/'))) return await handleTransfer(this.xapi, request, url)
      if (request.method === 'POST' && url.pathname === '/jsonrpc') return await this.jsonRpc(request, response)
      if (request.method === 'POST' && ['/', '/RPC2', '/xmlrpc'].includes(url.pathname)) {
        const body = await readBody(request)
        response.writeHead(200, { 'content-type': 'text/xml' }).end(await handleXmlRpc(this.xapi, body))
        return
      }
      response.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n')
    } catch (error) {
      if (!response.headersSent && !request.socket.destroyed) {
        response.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`)
      }
    }
  }

  private async jsonRpc(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let id: unknown = null
    let reply: Record<string, unknown>
    try {
      const message = JSON.parse((await readBody(request)).toString('utf8')) as { id?: unknown; method?: unknown; params?: unknown }
      id = message.id ?? null
      if (typeof message.method !== 'string') throw new ApiError('MESSAGE_METHOD_UNKNOWN', [String(message.method)])
      const result = await this.xapi.call(message.method, Array.isArray(message.params) ? message.params : [])
      reply = { jsonrpc: '2.0', result: result ?? '', id }
    } catch (error) {
      const failure = error instanceof SyntaxError ? new ApiError('JSONRPC_PARSE_ERROR', [error.message]) : toApiError(error)
      reply = { jsonrpc: '2.0', error: { code: 1, message: failure.code, data: failure.params }, id }
    }
    if (request.socket.destroyed) return
    // The client checks this content-type byte for byte: no charset parameter.
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply))
  }
}

export async function readBody(request: IncomingMessage, limit = MAX_RPC_BODY): Promise<Buffer> {
  const chunks: Buffer[] = []
  let length = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    length += chunk.length
    if (length > limit) throw new ApiError('INTERNAL_ERROR', ['Request body too large'])
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}
