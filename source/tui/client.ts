// What the TUI needs of a daemon connection: calls, notifications and whether the daemon is there.
// The socket client (source/client) satisfies it through connectTui; tests pass a fake.
import { EventEmitter } from 'node:events'
import { DaemonClient } from '../client/index.ts'
import type { SubscriptionTopic } from '../protocol/methods.ts'
import type { MethodName, NotificationName, TuiMethods, TuiNotifications } from './contract.ts'
import { terminalSafe } from '../util/terminal-text.ts'

export type ConnectionState = { status: 'connecting' } | { status: 'connected' } | { status: 'down'; reason: string }

export interface TuiClient {
  call<M extends MethodName>(method: M, params: TuiMethods[M]['params']): Promise<TuiMethods[M]['result']>
  /** Returns the unsubscribe function. */
  on<N extends NotificationName>(notification: N, handler: (params: TuiNotifications[N]) => void): () => void
  readonly connection: ConnectionState
  /** Called on every change; a 'connected' after a 'down' means the daemon came back: refetch everything. */
  onConnection(handler: (state: ConnectionState) => void): () => void
  close(): void
}

/** The sentence an RPC error carries for the administrator (a Lifeboat error's message, else the JSON-RPC one). */
export function errorText(error: unknown): string {
  if (error !== null && typeof error === 'object' && 'message' in error) return terminalSafe(String((error as { message: unknown }).message))
  return terminalSafe(String(error))
}

/** "CODE: sentence" when the error has a code (what a refused add shows whole), else the sentence. */
export function codedErrorText(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code !== '' ? `${terminalSafe(code)}: ${errorText(error)}` : errorText(error)
}

/** Every string in a daemon answer made safe for the terminal: VM names, remote listings and job names come from outside. */
export function safeValue<T>(value: T): T {
  if (typeof value === 'string') return terminalSafe(value) as T
  if (Array.isArray(value)) return value.map(safeValue) as T
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [terminalSafe(k), safeValue(v)])) as T
  return value
}

/** The client as the screens see it: answers, notifications and error messages pass through safeValue. */
export function safeClient(client: TuiClient): TuiClient {
  return {
    get connection() {
      return client.connection
    },
    call: (method, params) =>
      client.call(method, params).then(safeValue, (error: unknown) => {
        throw error !== null && typeof error === 'object' && 'message' in error ? Object.assign(Object.create(Object.getPrototypeOf(error) as object) as object, error, { message: errorText(error), ...('data' in error && { data: safeValue(error.data) }) }) : new Error(errorText(error))
      }),
    on: (notification, handler) => client.on(notification, params => handler(safeValue(params))),
    onConnection: handler => client.onConnection(state => handler(safeValue(state))),
    close: () => client.close(),
  }
}

/**
 * A TuiClient over the daemon's socket that never gives up: it starts 'connecting', shows 'down' while
 * no daemon answers (retrying), and comes back 'connected' by itself when the daemon (re)starts.
 */
const FIRST_CONNECTION_WAIT_MS = 3000

export function connectTui(socketPath: string, options: { retryMs?: number } = {}): TuiClient {
  const events = new EventEmitter()
  events.setMaxListeners(0)
  const topics = new Set<SubscriptionTopic>()
  let daemon: DaemonClient | undefined
  let closed = false
  let state: ConnectionState = { status: 'connecting' }
  const setState = (next: ConnectionState) => {
    state = next
    events.emit('connection', next)
  }
  const forward = (client: DaemonClient) => {
    const names: NotificationName[] = ['task.event', 'lanes', 'state.changed', 'resync']
    for (const name of names) client.onNotification(name, params => events.emit(`notification:${name}`, params))
    client.on('close', () => !closed && setState({ status: 'down', reason: `The connection to ${socketPath} was lost; reconnecting…` }))
    client.on('reconnect', () => !closed && setState({ status: 'connected' }))
  }
  const attempt = async (): Promise<void> => {
    while (!closed) {
      try {
        daemon = await DaemonClient.connect(socketPath, { reconnect: true })
        if (closed) return daemon.close()
        forward(daemon)
        return setState({ status: 'connected' })
      } catch (error) {
        setState({ status: 'down', reason: errorText(error) })
        await new Promise(resolve => setTimeout(resolve, options.retryMs ?? 1000))
      }
    }
  }
  void attempt()
  const connectedWithin = (ms: number) =>
    new Promise<void>(resolve => {
      const done = () => {
        clearTimeout(timer)
        events.off('connection', onChange)
        resolve()
      }
      const onChange = (next: ConnectionState) => next.status === 'connected' && done()
      const timer = setTimeout(done, ms)
      events.on('connection', onChange)
    })

  return {
    get connection() {
      return state
    },
    async call(method, params) {
      // Screens ask for their data as they mount, often before the first connection is up: wait a little for it.
      if (daemon === undefined) await connectedWithin(FIRST_CONNECTION_WAIT_MS)
      if (daemon === undefined) throw new Error(`No daemon answers on ${socketPath} yet.`)
      // Subscriptions go through the client's own bookkeeping so that a reconnection restores them.
      if (method === 'subscribe') {
        const { topics: wanted, runId } = params as { topics: SubscriptionTopic[]; runId?: string }
        for (const topic of wanted) topics.add(topic)
        return daemon.subscribe([...topics], runId).then(subscribed => ({ subscribed })) as never
      }
      return (daemon.call as (m: string, p: unknown) => Promise<never>)(method, params)
    },
    on(notification, handler) {
      const key = `notification:${notification}`
      events.on(key, handler)
      return () => events.off(key, handler)
    },
    onConnection(handler) {
      events.on('connection', handler)
      return () => events.off('connection', handler)
    },
    close() {
      closed = true
      daemon?.close()
    },
  }
}
