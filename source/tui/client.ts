// What the TUI needs of a daemon connection: calls, notifications and whether the daemon is there.
// The socket client (source/client) satisfies it through connectTui; tests pass a fake.
import type { MethodName, NotificationName, TuiMethods, TuiNotifications } from './contract.ts'

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
  if (error !== null && typeof error === 'object' && 'message' in error) return String((error as { message: unknown }).message)
  return String(error)
}
