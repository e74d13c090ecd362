// The proxy service (`lifeboat proxy`): the same program as the daemon in another mode, headless on a host
// near the pools or the storage. It has its own data folder (locked like the daemon's) and start-up clean-up
// (the pools' slots of its runs are handed out by the appliance: runs.ts), and serves the appliance's daemon on a Unix socket in that folder, which
// `lifeboat proxy --stdio` bridges to over ssh. It keeps no secrets: credentials come with each run, in memory
// (runs.ts).
import { join, resolve } from 'node:path'
import { hostname } from 'node:os'
import { mkdir } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { terminalSafeLine } from '../util/terminal-text.ts'
import { cleanFileRestoreLeftovers } from '../engine/index.ts'
import type { z } from 'zod'
import { RpcServer, type ClientConnection, type MethodHandler } from '../daemon/server.ts'
import { DelegatedRuns } from './runs.ts'
import { ProxyStorage } from './storage.ts'
import { lockDataDir, type DataDirLock } from '../daemon/lock.ts'
import { PROXY_SOCKET, proxyMethodParams, type ProxyMethodName, type ProxyMethodResults, type ProxyServiceInfo } from '../protocol/proxy.ts'

export const PROXY_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

export const PROXY_SERVICE = { name: 'proxy', stopCommand: 'systemctl stop lifeboat-proxy' }

export interface ProxyServiceOptions {
  dataDir: string
  socketPath?: string
  log?: (line: string) => void
}

export class ProxyService {
  readonly dataDir: string
  readonly socketPath: string
  readonly startedAt = Date.now()
  readonly log: (line: string) => void
  readonly server: RpcServer<ProxyMethodName>
  readonly runs: DelegatedRuns
  readonly storage: ProxyStorage
  #stopping: Promise<void> | undefined

  private constructor(
    private readonly lock: DataDirLock,
    options: ProxyServiceOptions,
  ) {
    this.dataDir = resolve(options.dataDir)
    this.socketPath = resolve(options.socketPath ?? join(this.dataDir, PROXY_SOCKET))
    this.log = options.log ?? (line => process.stderr.write(`${new Date().toISOString()} ${terminalSafeLine(line)}\n`))
    this.runs = new DelegatedRuns(this.log)
    this.storage = new ProxyStorage(this.log)
    this.server = new RpcServer({
      socketPath: this.socketPath, methods: proxyMethodParams, handlers: this.#handlers(), serverName: PROXY_SERVICE.name, stopCommand: PROXY_SERVICE.stopCommand,
      onDisconnect: client => {
        this.runs.detach(client)
        void this.storage.detach(client)
      },
    })
  }

  static async start(options: ProxyServiceOptions): Promise<ProxyService> {
    const dataDir = resolve(options.dataDir)
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    const lock = await lockDataDir(dataDir, PROXY_SERVICE)
    try {
      const service = new ProxyService(lock, options)
      await service.#startUp()
      return service
    } catch (error) {
      await lock.release()
      throw error
    }
  }

  get info(): ProxyServiceInfo {
    return { version: PROXY_VERSION, pid: process.pid, hostname: hostname(), dataDir: this.dataDir, socket: this.socketPath, startedAt: this.startedAt }
  }

  #handlers(): Record<ProxyMethodName, MethodHandler> {
    const handlers: { [M in ProxyMethodName]: (params: z.output<(typeof proxyMethodParams)[M]>, client: ClientConnection) => ProxyMethodResults[M] | Promise<ProxyMethodResults[M]> } = {
      hello: () => this.info,
      ping: () => ({}),
      'run.start': spec => this.runs.start(spec),
      'run.attach': ({ runId, after }, client) => this.runs.attach(runId, after, client),
      'run.cancel': ({ runId, reason }) => {
        this.runs.cancel(runId, reason)
        return {}
      },
      'slot.grant': ({ runId, requestId }) => {
        this.runs.grantSlot(runId, requestId)
        return {}
      },
      'storage.open': ({ url }, client) => this.storage.open(client, url),
      'storage.call': ({ session, op, args }, client) => this.storage.call(client, session, op, args),
      'storage.read': ({ session, path, range }, client) => this.storage.read(client, session, path, range),
      'storage.pull': ({ stream }, client) => this.storage.pull(client, stream),
      'storage.write': ({ session, path, length, ifAbsent }, client) => this.storage.write(client, session, path, { ...(length !== undefined && { length }), ...(ifAbsent !== undefined && { ifAbsent }) }),
      'storage.push': async ({ stream, data }, client) => (await this.storage.push(client, stream, data), {}),
      'storage.finish': ({ stream }, client) => this.storage.finish(client, stream),
      'storage.abort': ({ stream }, client) => (this.storage.abort(client, stream), {}),
      'storage.file': ({ session, path, mode }, client) => this.storage.file(client, session, path, mode),
      'storage.fileRead': ({ file, position, length }, client) => this.storage.fileRead(client, file, position, length),
      'storage.fileWrite': async ({ file, position, data }, client) => (await this.storage.openFile(client, file).write(Buffer.from(data, 'base64'), position), {}),
      'storage.fileSize': async ({ file }, client) => ({ size: await this.storage.openFile(client, file).size() }),
      'storage.fileTruncate': async ({ file, size }, client) => (await this.storage.openFile(client, file).truncate(size), {}),
      'storage.fileClose': async ({ file }, client) => (await this.storage.fileClose(client, file), {}),
      'storage.lock': ({ session, path, staleMs, refreshMs }, client) => this.storage.lock(client, session, path, { ...(staleMs !== undefined && { staleMs }), ...(refreshMs !== undefined && { refreshMs }) }),
      'storage.lockState': ({ lock }, client) => this.storage.lockState(client, lock),
      'storage.unlock': async ({ lock }, client) => (await this.storage.unlock(client, lock), {}),
      'storage.close': async ({ session }, client) => (await this.storage.close(client, session), {}),
    }
    return handlers as unknown as Record<ProxyMethodName, MethodHandler>
  }

  async #startUp(): Promise<void> {
    // What a proxy that died left mounted for a file-level restore (FUSE, loop devices) is undone first, as the daemon does.
    for (const line of await cleanFileRestoreLeftovers(join(this.dataDir, 'file-restore'))) this.log(`file restore clean-up: ${line}`)
    await this.server.listen()
    this.log(`lifeboat ${PROXY_VERSION} proxy listening on ${this.socketPath} (data ${this.dataDir})`)
  }

  /** Cancels the runs in progress (the appliances attached see them end cancelled), then closes the socket. */
  stop(reason = 'the proxy service is stopping'): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.runs.activeCount > 0) this.log(`cancelling ${this.runs.activeCount} run(s): ${reason}`)
      await this.runs.cancelAll(reason, 60_000)
      await this.server.close()
      await this.lock.release()
    })()
    return this.#stopping
  }
}
