// A connection to one pool over the real `xen-api` client: the event-fed object cache, calls whose
// errors carry XAPI codes, cancellable async calls, and the pool's shared concurrency limits.
import { createClient, type Xapi, type XapiRecord } from 'xen-api'
import getTaskResult from 'xen-api/_getTaskResult.mjs'
import { LifeboatError, errorCode } from '../util/errors.ts'
import { abortReason, formatMs, withTimeout } from '../util/abort.ts'
import { wrapXapiError } from './errors.ts'
import { PoolLimitsRegistry, type PoolLimits } from './slots.ts'

export interface PoolCredentials {
  url: string
  username: string
  password: string
}

export interface ConnectOptions {
  signal?: AbortSignal
  /** Bound on login + first fetch of all objects. */
  timeoutMs?: number
  /** An export that sends no byte for this long fails (XAPI stalls); default 5 minutes. */
  stallTimeoutMs?: number
  /**
   * Where the pool's concurrency limits come from. One registry per process is the daemon's choice (every connection
   * and run shares it); a connection made without one (a test, a one-off tool) gets a registry of its own.
   */
  limits?: PoolLimitsRegistry
}

export type { XapiRecord }

/** A cache sync waits this long for the event feed, which retries every 2 s through a toolstack restart. */
const SYNC_TIMEOUT_MS = 5 * 60_000
const TASK_POLL_MS = 2000
/** A task whose pool answers no poll for this long has an unknown outcome. */
const TASK_UNREACHABLE_MS = 5 * 60_000

// xen-api reports event-feed failures with console.warn and a full stack (even for the poll a disconnect
// cuts): callers learn of them from the client's 'eventFetchingError' event instead, in one line.
const XEN_API_EVENT_WARNINGS = new Set(['_watchEvents', '_watchEventsLegacy'])
const consoleWarn = console.warn.bind(console)
console.warn = (...args: unknown[]) => {
  if (typeof args[0] === 'string' && XEN_API_EVENT_WARNINGS.has(args[0])) return
  // An XVA of unknown length (a replica's import) is sent on purpose with xen-api's huge announced length, and
  // a host that ends an upload early reports why through the upload's task.
  if (args[1] === 'Xapi#putResource' && (args[3] === 'missing length' || (args[3] as { code?: string } | undefined)?.code === 'ERR_STREAM_PREMATURE_CLOSE')) return
  consoleWarn(...args)
}

export class PoolConnection {
  private constructor(
    readonly xapi: Xapi,
    readonly url: string,
    readonly stallTimeoutMs: number,
    private readonly registry: PoolLimitsRegistry,
  ) {}

  static async connect(credentials: PoolCredentials, options: ConnectOptions = {}): Promise<PoolConnection> {
    const xapi = createClient({
      url: credentials.url,
      auth: { user: credentials.username, password: credentials.password },
      // Pools use self-signed certificates almost everywhere; the administrator chose the URL.
      allowUnauthorized: true,
      watchEvents: true,
      // Above event.from's 60 s long poll (a shorter one cuts every idle poll), and the bound on uploads.
      httpInactivityTimeout: 5 * 60_000,
      debounce: 50,
      // After an event-fetch error (a toolstack restart) retry in seconds, not xen-api's default minute: the
      // object cache is what runs wait on.
      eventPollDelay: 2000,
    })
    // xen-api logs through EventEmitter 'error' in some paths; never let it crash the process.
    xapi.on('error', () => {})
    const bound = withTimeout(options.signal, options.timeoutMs ?? 60_000, `connecting to ${credentials.url}`)
    try {
      await raceAbort(
        (async () => {
          await xapi.connect()
          await xapi.objectsFetched
        })(),
        bound.signal,
      )
    } catch (error) {
      void xapi.disconnect().catch(() => {})
      throw wrapXapiError(error, `connecting to ${credentials.url}`)
    } finally {
      bound.dispose()
    }
    return new PoolConnection(xapi, credentials.url, options.stallTimeoutMs ?? 5 * 60_000, options.limits ?? new PoolLimitsRegistry())
  }

  get pool(): XapiRecord {
    const pool = this.xapi.pool
    if (pool === undefined) throw new LifeboatError('POOL_NOT_READY', 'the pool record is not loaded yet; retry in a moment.')
    return pool
  }

  get poolUuid(): string {
    return this.pool.uuid
  }

  get poolName(): string {
    return String(this.pool.name_label ?? '')
  }

  get limits(): PoolLimits {
    return this.registry.of(this.poolUuid)
  }

  /** Every cached record of a class (e.g. 'VM', 'SR'). */
  all(type: string): XapiRecord[] {
    return Object.values(this.xapi.objects.all).filter(o => o.$type === type)
  }

  byRef(ref: string): XapiRecord | undefined {
    return this.xapi.getObjectByRef(ref, undefined) as XapiRecord | undefined
  }

  byUuid(uuid: string): XapiRecord | undefined {
    return this.xapi.getObjectByUuid(uuid, undefined) as XapiRecord | undefined
  }

  /** A record by uuid, or a coded error naming what is missing. */
  get(type: string, uuid: string): XapiRecord {
    const record = this.byUuid(uuid)
    if (record === undefined || record.$type !== type) {
      throw new LifeboatError('XAPI_UUID_INVALID', `no ${type} with uuid ${uuid} on pool ${this.poolName || this.url}; it may have been deleted or belong to another pool.`)
    }
    return record
  }

  call(method: string, ...args: unknown[]): Promise<unknown> {
    return this.#withSession(() => this.xapi.call(method, ...args), method)
  }

  /**
   * Without a session xen-api refuses every call with an assertion (during a new login, and for good after one
   * that failed, the toolstack still starting: nothing of its own logs in again): log in, then try once more.
   */
  async #withSession<T>(body: () => Promise<T>, context: string): Promise<T> {
    try {
      return await body()
    } catch (error) {
      if (this.xapi.sessionId !== undefined || this.xapi.status !== 'connected' || errorCode(error) !== 'ERR_ASSERTION') throw wrapXapiError(error, context)
    }
    try {
      await (this.xapi as unknown as { _sessionOpen(): Promise<void> })._sessionOpen()
      return await body()
    } catch (error) {
      throw wrapXapiError(error, context)
    }
  }

  /** A session the pool dropped is replaced: xen-api logs in again on the SESSION_INVALID of any call. */
  async ensureSession(): Promise<void> {
    await this.call('pool.get_all')
  }

  /** An Async.* call whose XAPI task is cancelled when the signal aborts. */
  callAsync(signal: AbortSignal | undefined, method: string, ...args: unknown[]): Promise<unknown> {
    return raceAbort(this.callAsyncSettled(signal, method, ...args), signal)
  }

  /**
   * An Async.* call that, on abort, cancels its XAPI task but still waits for the task's outcome: for
   * calls that create something (a snapshot) the caller must destroy if it appears after all.
   */
  async callAsyncSettled(signal: AbortSignal | undefined, method: string, ...args: unknown[]): Promise<unknown> {
    const taskRef = (await this.call(`Async.${method}`, ...args)) as string
    const cancel = () => void this.call('task.cancel', taskRef).catch(() => {})
    signal?.addEventListener('abort', cancel, { once: true })
    if (signal?.aborted === true) cancel()
    try {
      return await this.watchTask(taskRef, method)
    } catch (error) {
      if (signal?.aborted === true) throw abortReason(signal)
      throw wrapXapiError(error, method)
    } finally {
      signal?.removeEventListener('abort', cancel)
      void this.call('task.destroy', taskRef).catch(() => {})
    }
  }

  /**
   * A task's outcome. xen-api's watcher alone waits forever for a task the pool forgot (a toolstack restart)
   * before the event feed showed it, or one that ended while the feed was stuck: the task is polled as well.
   */
  watchTask(taskRef: string, what: string): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined
    let unreachableSince: number | undefined
    let settled = false
    const gone = () => new LifeboatError('XAPI_TASK_GONE', `the pool forgot the task of ${what} (its toolstack restarted): its outcome is unknown, so it counts as failed. Run it again.`)
    const polled = new Promise<unknown>((resolve, reject) => {
      const poll = () => {
        if (settled) return
        timer = setTimeout(() => {
          this.call('task.get_record', taskRef).then(
            record => {
              unreachableSince = undefined
              const outcome = getTaskResult(record as Record<string, unknown>)
              if (outcome === undefined) poll()
              else outcome.then(resolve, reject)
            },
            error => {
              if (errorCode(error) === 'XAPI_HANDLE_INVALID') reject(gone())
              else if (Date.now() - (unreachableSince ??= Date.now()) >= TASK_UNREACHABLE_MS) {
                reject(new LifeboatError('XAPI_TASK_UNKNOWN', `the pool answered nothing about the task of ${what} for ${formatMs(TASK_UNREACHABLE_MS)}: its outcome is unknown, so it counts as failed. Check the pool master, then run it again.`, { cause: error }))
              } else poll()
            },
          )
        }, TASK_POLL_MS)
        timer.unref()
      }
      poll()
    })
    // xen-api's "task has been destroyed before completion": the task left the cache, its outcome unseen.
    const watched = this.xapi.watchTask(taskRef).catch((error: unknown) => {
      throw (error as { taskRef?: unknown }).taskRef === taskRef ? gone() : error
    })
    watched.catch(() => {})
    polled.catch(() => {})
    return Promise.race([watched, polled]).finally(() => {
      settled = true
      clearTimeout(timer)
    })
  }

  /**
   * Waits until the object cache has caught up with every change made so far (XAPI round trip through
   * the event feed): decisions on snapshots must not be taken on a cache one event batch behind.
   */
  async sync(signal?: AbortSignal, timeoutMs = SYNC_TIMEOUT_MS): Promise<void> {
    const bound = withTimeout(signal, timeoutMs, 'the pool event feed')
    try {
      await raceAbort(this.#withSession(() => this.xapi.barrier(), 'barrier'), bound.signal)
    } catch (error) {
      if (signal?.aborted === true) throw abortReason(signal)
      if (bound.signal.aborted) {
        throw new LifeboatError('XAPI_EVENTS_STALLED', `the pool's event feed did not catch up within ${formatMs(timeoutMs)}; check the pool master's toolstack, then run again.`)
      }
      throw error
    } finally {
      bound.dispose()
    }
  }

  /** Resolves once `predicate` holds on the cache (checked now and after every event batch). */
  waitFor<T>(predicate: () => T | undefined, options: { signal?: AbortSignal; timeoutMs?: number; what: string }): Promise<T> {
    const bound = withTimeout(options.signal, options.timeoutMs, options.what)
    const objects = this.xapi.objects
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        let value: T | undefined
        try {
          value = predicate()
        } catch (error) {
          return finish(() => reject(error))
        }
        if (value !== undefined) finish(() => resolve(value as T))
      }
      const onAbort = () => finish(() => reject(abortReason(bound.signal)))
      const finish = (settle: () => void) => {
        objects.removeListener('add', check)
        objects.removeListener('update', check)
        objects.removeListener('remove', check)
        bound.signal.removeEventListener('abort', onAbort)
        bound.dispose()
        settle()
      }
      objects.on('add', check)
      objects.on('update', check)
      objects.on('remove', check)
      bound.signal.addEventListener('abort', onAbort, { once: true })
      if (bound.signal.aborted) onAbort()
      else check()
    })
  }

  async disconnect(): Promise<void> {
    // The event loop's long poll stays in flight; when it fails, xen-api would sleep its poll delay (a timer
    // keeping the process alive) before noticing the disconnect. Without the delay it just stops.
    ;(this.xapi as unknown as { _eventPollDelay: number })._eventPollDelay = 0
    await this.xapi.disconnect().catch(() => {})
  }
}

/** Rejects with the signal's reason as soon as it aborts, whatever the promise does. */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  if (signal.aborted) {
    promise.catch(() => {})
    return Promise.reject(abortReason(signal))
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => {})
      reject(abortReason(signal))
    }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      value => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      error => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}
