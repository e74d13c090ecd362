// The daemon's pool connections: connected at start-up and on pool.add, retried with backoff when the
// pool cannot be reached, and their status (connected, connecting, error) shown to clients.
import { PoolConnection, type PoolCredentials, type PoolLimitsRegistry } from '../xapi/index.ts'
import { LifeboatError, serializeError } from '../util/errors.ts'
import { sleep } from '../util/abort.ts'
import type { Pool } from '../protocol/methods.ts'
import type { StoredPool } from './state.ts'

interface PoolEntry {
  stored: StoredPool
  status: Pool['status']
  error?: { code: string; message: string }
  connection?: PoolConnection
  stop: AbortController
}

export interface PoolsOptions {
  /** The process's pool limits: every connection made here shares them, reconnections too. */
  limits: PoolLimitsRegistry
  onChange: () => void
  log: (line: string) => void
  connectTimeoutMs?: number
}

const MAX_BACKOFF_MS = 60_000

// scheme://user:password@host: the part before "@" is what must never be stored in state.json nor shown.
const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i

/** A pool URL with credentials in it is refused: they belong in --user and the secrets file. */
export function refuseUrlCredentials(url: string): void {
  if (USERINFO.test(url)) {
    throw new LifeboatError('POOL_URL_CREDENTIALS', `The pool URL holds a user name or password ("user:password@"); they would be stored and shown with the URL. Give the URL without them (like https://host) and the credentials with --user and --password-env or --password-file.`)
  }
}

/** A URL stored by an older version with its credentials, without them. */
export function withoutUrlCredentials(url: string): string {
  return url.replace(USERINFO, '$1')
}

export class Pools {
  readonly #entries = new Map<string, PoolEntry>()

  constructor(private readonly options: PoolsOptions) {}

  /** Connected pools by uuid: what the engine is given. */
  get connections(): Map<string, PoolConnection> {
    const out = new Map<string, PoolConnection>()
    for (const [id, entry] of this.#entries) if (entry.connection !== undefined && entry.status === 'connected') out.set(id, entry.connection)
    return out
  }

  list(): Pool[] {
    return [...this.#entries.values()].map(entry => ({
      id: entry.stored.id,
      name: entry.connection?.poolName || entry.stored.name,
      url: entry.stored.url,
      username: entry.stored.username,
      status: entry.status,
      ...(entry.error !== undefined && { error: entry.error }),
      hosts: entry.connection?.all('host').length ?? 0,
    }))
  }

  has(id: string): boolean {
    return this.#entries.has(id)
  }

  /** Connects once (pool.add): an unreachable pool or bad credentials fail here, nothing is kept. */
  async probe(credentials: PoolCredentials): Promise<PoolConnection> {
    return PoolConnection.connect(credentials, { timeoutMs: this.options.connectTimeoutMs ?? 30_000, limits: this.options.limits })
  }

  /** Keeps a pool connected from now on (with a first connection already made, or one to make). */
  manage(stored: StoredPool, password: string, connection?: PoolConnection): void {
    const previous = this.#entries.get(stored.id)
    previous?.stop.abort()
    void previous?.connection?.disconnect()
    const entry: PoolEntry = { stored, status: 'connecting', stop: new AbortController() }
    this.#entries.set(stored.id, entry)
    if (connection !== undefined) this.#connected(entry, connection)
    else void this.#connectLoop(entry, { url: stored.url, username: stored.username, password })
    this.options.onChange()
  }

  async remove(id: string): Promise<void> {
    const entry = this.#entries.get(id)
    if (entry === undefined) throw new LifeboatError('POOL_NOT_FOUND', `No pool ${id} is configured; 'npx lifeboat pool list' shows them.`)
    this.#entries.delete(id)
    entry.stop.abort()
    await entry.connection?.disconnect()
    this.options.onChange()
  }

  async closeAll(): Promise<void> {
    const entries = [...this.#entries.values()]
    this.#entries.clear()
    for (const entry of entries) entry.stop.abort()
    await Promise.all(entries.map(entry => entry.connection?.disconnect()))
  }

  async #connectLoop(entry: PoolEntry, credentials: PoolCredentials): Promise<void> {
    for (let delay = 1000; !entry.stop.signal.aborted; delay = Math.min(delay * 2, MAX_BACKOFF_MS)) {
      try {
        const connection = await PoolConnection.connect(credentials, { signal: entry.stop.signal, timeoutMs: this.options.connectTimeoutMs ?? 30_000, limits: this.options.limits })
        if (entry.stop.signal.aborted) {
          await connection.disconnect()
          return
        }
        this.#connected(entry, connection)
        return
      } catch (error) {
        if (entry.stop.signal.aborted) return
        const { code, message } = serializeError(error)
        entry.status = 'error'
        entry.error = { code, message }
        this.options.log(`pool ${entry.stored.name || entry.stored.url}: ${code}: ${message} (retrying in ${Math.round(delay / 1000)} s)`)
        this.options.onChange()
        await sleep(delay, entry.stop.signal).catch(() => {})
      }
    }
  }

  #connected(entry: PoolEntry, connection: PoolConnection): void {
    entry.connection = connection
    entry.status = 'connected'
    delete entry.error
    // xen-api re-logs in and re-polls events by itself; these events only mirror its state for clients.
    connection.xapi.on('eventFetchingError', (error: unknown) => {
      // A poll cut by our own disconnect is no loss of contact.
      if (entry.status === 'error' || entry.stop.signal.aborted) return
      const { code, message } = serializeError(error)
      entry.status = 'error'
      entry.error = { code, message: `lost contact with the pool (${message}); reconnecting.` }
      this.options.log(`pool ${entry.stored.name || entry.stored.url}: ${entry.error.message}`)
      this.options.onChange()
    })
    connection.xapi.on('eventFetchingSuccess', () => {
      if (entry.status === 'connected') return
      entry.status = 'connected'
      delete entry.error
      this.options.onChange()
    })
    this.options.onChange()
  }
}
