// The XAPI task an HTTP transfer (export GET, import PUT) runs under, and the new login a session the pool
// dropped gets: xen-api logs in again for calls, not for the HTTP handlers, which answer 401.
import { LifeboatError } from '../util/errors.ts'
import type { PoolConnection } from './connection.ts'

export interface TransferTask {
  /** For the handler's task_id parameter. */
  readonly ref: string
  /** Settles with XAPI's outcome of the transfer (the body may just look short). */
  readonly outcome: Promise<unknown>
  cancel(): void
}

/** XAPI's handlers answered with an HTTP error status. */
export function httpError(request: string, status: number, detail: string): LifeboatError {
  return new LifeboatError('XAPI_HTTP_ERROR', `the host answered ${request} with HTTP ${status} (${detail.trim().slice(0, 200) || 'no detail'}); check the pool's state and the host logs.`, { data: { httpStatus: status } })
}

function isUnauthorised(error: unknown): boolean {
  return error instanceof LifeboatError && (error.data as { httpStatus?: number } | undefined)?.httpStatus === 401
}

/**
 * Runs a transfer under a XAPI task of its own: cancelled when the signal aborts or the transfer fails,
 * removed once settled. A 401 (the session dropped just before the request) logs in again and runs the
 * transfer once more under a new task, when `canRetry` says nothing of it was consumed yet.
 */
export async function withXapiTask<T>(
  conn: PoolConnection,
  request: string,
  signal: AbortSignal | undefined,
  transfer: (task: TransferTask, sessionId: string) => Promise<T>,
  canRetry: () => boolean = () => true,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const task = await startTask(conn, request, signal)
    try {
      return await transfer(task, conn.xapi.sessionId ?? '')
    } catch (error) {
      task.cancel()
      if (attempt > 1 || !isUnauthorised(error) || !canRetry() || signal?.aborted === true) throw error
      await conn.ensureSession()
    }
  }
}

async function startTask(conn: PoolConnection, request: string, signal: AbortSignal | undefined): Promise<TransferTask> {
  const ref = (await conn.call('task.create', `Lifeboat ${request}`, '')) as string
  const cancel = () => void conn.call('task.cancel', ref).catch(() => {})
  signal?.addEventListener('abort', cancel, { once: true })
  if (signal?.aborted === true) cancel()
  const outcome = conn.watchTask(ref, request).finally(() => {
    signal?.removeEventListener('abort', cancel)
    // A finished task is ours to remove.
    void conn.call('task.destroy', ref).catch(() => {})
  })
  outcome.catch(() => {})
  return { ref, outcome, cancel }
}
