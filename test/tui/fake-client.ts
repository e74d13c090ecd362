// A daemon stand-in for frame tests: canned answers per method, recorded calls, notifications on demand.
import { EventEmitter } from 'node:events'
import type { ConnectionState, TuiClient } from '../../source/tui/client.ts'
import type { MethodName, NotificationName, TuiMethods, TuiNotifications } from '../../source/tui/contract.ts'

type Handler<M extends MethodName> = (params: TuiMethods[M]['params']) => TuiMethods[M]['result'] | Promise<TuiMethods[M]['result']>

export class FakeClient implements TuiClient {
  readonly calls: Array<{ method: string; params: unknown }> = []
  connection: ConnectionState = { status: 'connected' }
  readonly #handlers = new Map<string, Handler<MethodName>>()
  readonly #events = new EventEmitter()

  answer<M extends MethodName>(method: M, handler: Handler<M> | TuiMethods[M]['result']): this {
    this.#handlers.set(method, (typeof handler === 'function' ? handler : () => handler) as Handler<MethodName>)
    return this
  }

  async call<M extends MethodName>(method: M, params: TuiMethods[M]['params']): Promise<TuiMethods[M]['result']> {
    this.calls.push({ method, params })
    if (this.connection.status !== 'connected') throw Object.assign(new Error('The daemon is not connected.'), { code: 'DAEMON_DOWN' })
    const handler = this.#handlers.get(method)
    if (handler === undefined) {
      if (method === 'subscribe' || method === 'unsubscribe') return {} as TuiMethods[M]['result']
      throw Object.assign(new Error(`The fake daemon has no answer for ${method}.`), { code: 'METHOD_NOT_FOUND' })
    }
    return (await handler(params)) as TuiMethods[M]['result']
  }

  on<N extends NotificationName>(notification: N, handler: (params: TuiNotifications[N]) => void): () => void {
    this.#events.on(notification, handler)
    return () => this.#events.off(notification, handler)
  }

  notify<N extends NotificationName>(notification: N, params: TuiNotifications[N]): void {
    this.#events.emit(notification, params)
  }

  onConnection(handler: (state: ConnectionState) => void): () => void {
    this.#events.on('connection', handler)
    return () => this.#events.off('connection', handler)
  }

  setConnection(state: ConnectionState): void {
    this.connection = state
    this.#events.emit('connection', state)
  }

  callsOf(method: MethodName): unknown[] {
    return this.calls.filter(c => c.method === method).map(c => c.params)
  }

  close(): void {}
}
