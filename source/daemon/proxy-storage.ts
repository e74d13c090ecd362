// A remote that lives on a proxy (`remote add --proxy`), as the appliance sees it: a storage backend whose every
// operation is done by the proxy over its ssh channel (proxy/storage.ts does them). The proxy's delegated runs
// write to the remote directly; the appliance lists, restores, verifies and cleans through this backend, and those
// bytes cross the channel. It is decorated as every remote is (retries, the log, the request bound); a proxy out of
// reach is REMOTE_UNAVAILABLE naming it, and a channel opened again gets its sessions opened again.
import { Readable } from 'node:stream'
import type { RpcClient } from '../client/index.ts'
import { openBackend, type Backend, type Capabilities, type EntryStat, type ListPage, type LockOptions, type RandomAccessFile, type RemoteLock, type RemoteSpace, type WriteData, type WriteOptions } from '../storage/index.ts'
import { remoteUnavailable } from '../storage/errors.ts'
import { LifeboatError } from '../util/errors.ts'
import { STORAGE_CHUNK, type ProxyMethods, type StorageOp } from '../protocol/proxy.ts'

/** The channel to a proxy by its name, opened (again) when needed. */
export type ProxyChannelSource = (proxy: string) => Promise<RpcClient<ProxyMethods>>

/** Errors of the channel itself, not of the remote: the remote is unavailable while they last. */
const CHANNEL_ERRORS = new Set(['PROXY_DISCONNECTED', 'PROXY_UNREACHABLE', 'PROXY_NOT_RUNNING', 'PROXY_TIMEOUT', 'PROXY_KEY_REFUSED', 'HOST_KEY_CHANGED', 'PROXY_CHANNEL_FAILED', 'PROXY_VERSION_MISMATCH', 'PROXY_NOT_FOUND'])
const LOCK_POLL_MS = 10_000

type Session = { client: RpcClient<ProxyMethods>; id: string }

export class ProxiedBackend implements Backend {
  readonly label: string
  readonly capabilities: Capabilities
  rename?: (from: string, to: string) => Promise<void>
  open?: (path: string, mode: 'r' | 'r+') => Promise<RandomAccessFile>
  mkdir?: (path: string) => Promise<void>
  rmdir?: (path: string) => Promise<void>
  rmtree?: (path: string) => Promise<void>
  lock?: (path: string, options?: LockOptions) => Promise<RemoteLock>
  abortStaleUploads?: (olderThanMs: number) => Promise<number>
  #session: Promise<Session> | undefined

  constructor(
    private readonly url: string,
    readonly proxy: string,
    private readonly channel: ProxyChannelSource,
  ) {
    // The backend the proxy opens, built here without being opened: its capabilities and operations are the same.
    const local = openBackend(url, { retry: false })
    void local.close().catch(() => {})
    this.label = `${local.label} (on the proxy "${proxy}")`
    this.capabilities = { ...local.capabilities }
    if (local.rename !== undefined) this.rename = (from, to) => this.#op('rename', [from, to])
    if (local.open !== undefined) this.open = (path, mode) => this.#openFile(path, mode)
    if (local.mkdir !== undefined) this.mkdir = path => this.#op('mkdir', [path])
    if (local.rmdir !== undefined) this.rmdir = path => this.#op('rmdir', [path])
    if (local.rmtree !== undefined) this.rmtree = path => this.#op('rmtree', [path])
    if (local.lock !== undefined) this.lock = (path, options) => this.#lock(path, options)
    if (local.abortStaleUploads !== undefined) this.abortStaleUploads = olderThanMs => this.#op('abortStaleUploads', [olderThanMs])
  }

  async sync(): Promise<void> {
    this.#session = undefined
    await this.#with(async () => {})
  }

  async close(): Promise<void> {
    const session = this.#session
    this.#session = undefined
    const opened = await session?.catch(() => undefined)
    if (opened !== undefined) await opened.client.call('storage.close', { session: opened.id }).catch(() => {})
  }

  info(): Promise<RemoteSpace> {
    return this.#op('info', [])
  }

  list(dir: string, options?: { cursor?: string; limit?: number }): Promise<ListPage> {
    return this.#op('list', options === undefined ? [dir] : [dir, options])
  }

  stat(path: string): Promise<EntryStat> {
    return this.#op('stat', [path])
  }

  delete(paths: string[]): Promise<void> {
    return this.#op('delete', [paths])
  }

  read(path: string, range?: { start: number; end?: number }): Promise<Readable> {
    return this.#with(async ({ client, id }) => {
      const { stream } = await client.call('storage.read', { session: id, path, ...(range !== undefined && { range }) })
      return Readable.from(this.#pulled(client, stream), { objectMode: false })
    })
  }

  async *#pulled(client: RpcClient<ProxyMethods>, stream: string): AsyncGenerator<Buffer> {
    // One pull ahead: the next chunk crosses the channel while the reader takes this one.
    let next: Promise<{ data: string; end: boolean }> | undefined = client.call('storage.pull', { stream })
    try {
      while (next !== undefined) {
        const { data, end }: { data: string; end: boolean } = await next.catch(error => Promise.reject(this.#mapped(error)))
        next = end ? undefined : client.call('storage.pull', { stream })
        if (data !== '') yield Buffer.from(data, 'base64')
      }
    } finally {
      if (next !== undefined) {
        next.catch(() => {})
        await client.call('storage.abort', { stream }).catch(() => {})
      }
    }
  }

  write(path: string, data: WriteData, options: WriteOptions = {}): Promise<number> {
    return this.#with(async ({ client, id }) => {
      const { stream } = await client.call('storage.write', { session: id, path, ...(options.length !== undefined && { length: options.length }), ...(options.ifAbsent !== undefined && { ifAbsent: options.ifAbsent }) })
      try {
        const source: Iterable<Buffer | string> | AsyncIterable<Buffer | Uint8Array> = typeof data === 'string' || Buffer.isBuffer(data) ? [data] : data
        for await (const piece of source) {
          options.signal?.throwIfAborted()
          const bytes = typeof piece === 'string' ? Buffer.from(piece) : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength)
          for (let at = 0; at < bytes.length; at += STORAGE_CHUNK) await client.call('storage.push', { stream, data: bytes.subarray(at, at + STORAGE_CHUNK).toString('base64') })
        }
        options.signal?.throwIfAborted()
        return (await client.call('storage.finish', { stream })).size
      } catch (error) {
        await client.call('storage.abort', { stream }).catch(() => {})
        throw error
      }
    })
  }

  #openFile(path: string, mode: 'r' | 'r+'): Promise<RandomAccessFile> {
    return this.#with(async ({ client, id }) => {
      const { file } = await client.call('storage.file', { session: id, path, mode })
      const call = <T>(body: () => Promise<T>) => body().catch(error => Promise.reject(this.#mapped(error)))
      return {
        read: (buffer, position) =>
          call(async () => {
            let done = 0
            while (done < buffer.length) {
              const { data } = await client.call('storage.fileRead', { file, position: position + done, length: Math.min(STORAGE_CHUNK, buffer.length - done) })
              const bytes = Buffer.from(data, 'base64')
              bytes.copy(buffer, done)
              done += bytes.length
              if (bytes.length === 0) break
            }
            return done
          }),
        write: (buffer, position) =>
          call(async () => {
            for (let at = 0; at < buffer.length; at += STORAGE_CHUNK) await client.call('storage.fileWrite', { file, position: position + at, data: buffer.subarray(at, at + STORAGE_CHUNK).toString('base64') })
          }),
        size: () => call(async () => (await client.call('storage.fileSize', { file })).size),
        truncate: size => call(async () => void (await client.call('storage.fileTruncate', { file, size }))),
        close: () => call(async () => void (await client.call('storage.fileClose', { file }))),
      }
    })
  }

  #lock(path: string, options: LockOptions = {}): Promise<RemoteLock> {
    return this.#with(async ({ client, id }) => {
      const taken = await client.call('storage.lock', { session: id, path, ...(options.staleMs !== undefined && { staleMs: options.staleMs }), ...(options.refreshMs !== undefined && { refreshMs: options.refreshMs }) })
      let compromised = false
      let released = false
      // The proxy refreshes the lock; it is lost when the proxy says so, or with the channel (the proxy then releases it).
      const poll = setInterval(() => {
        client.call('storage.lockState', { lock: taken.lock }).then(
          state => void (compromised ||= state.compromised),
          () => void (compromised = true),
        )
      }, Math.min(LOCK_POLL_MS, options.refreshMs ?? LOCK_POLL_MS))
      poll.unref()
      return {
        path: taken.path,
        get compromised() {
          return compromised
        },
        release: async () => {
          clearInterval(poll)
          if (released) return
          released = true
          await client.call('storage.unlock', { lock: taken.lock }).catch(error => Promise.reject(this.#mapped(error)))
        },
      }
    })
  }

  #op<T>(op: StorageOp, args: unknown[]): Promise<T> {
    return this.#with(async ({ client, id }) => (await client.call('storage.call', { session: id, op, args })).result as T)
  }

  /** The session on the proxy's current channel, opened when there is none or the channel is new. */
  async #opened(): Promise<Session> {
    const client = await this.channel(this.proxy)
    const current = await this.#session?.catch(() => undefined)
    if (current !== undefined && current.client === client) return current
    const opening = client.call('storage.open', { url: this.url }).then(opened => ({ client, id: opened.session }))
    this.#session = opening
    return opening
  }

  /** Runs `body` on the session; a session the proxy no longer knows is opened again once; channel failures are the remote's unavailability. */
  async #with<T>(body: (session: Session) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await body(await this.#opened())
      } catch (error) {
        if ((error as LifeboatError).code === 'STORAGE_SESSION_GONE' && attempt === 0) {
          this.#session = undefined
          continue
        }
        throw this.#mapped(error)
      }
    }
  }

  #mapped(error: unknown): unknown {
    const code = (error as LifeboatError | undefined)?.code
    if (code !== undefined && CHANNEL_ERRORS.has(code)) {
      this.#session = undefined
      return remoteUnavailable(this.label, error, `its proxy cannot be reached (${(error as Error).message})`)
    }
    return error
  }
}
