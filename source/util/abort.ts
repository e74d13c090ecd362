// Cancellation and timeouts share one mechanism: an AbortSignal whose reason is a coded LifeboatError
// (CANCELLED when an administrator cancels, TIMEOUT when a bound expires).
import { LifeboatError } from './errors.ts'

export function cancelledError(message = 'cancelled by the administrator'): LifeboatError {
  return new LifeboatError('CANCELLED', message)
}

export function timeoutError(what: string, ms: number): LifeboatError {
  return new LifeboatError('TIMEOUT', `${what} did not finish within ${formatMs(ms)}; raise the timeout in the job settings if this is expected.`)
}

/** The error to throw for an aborted signal: its reason when coded, CANCELLED otherwise. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  return reason instanceof LifeboatError ? reason : cancelledError()
}

/** What an abort error (Node's ABORT_ERR, a DOMException) stands for: its coded cause, CANCELLED when it has none; any other error is itself. */
export function unwrapAbort(error: unknown): unknown {
  if (error === null || typeof error !== 'object' || (error as Error).name !== 'AbortError') return error
  const cause = (error as Error).cause
  return cause instanceof LifeboatError ? cause : cancelledError()
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw abortReason(signal)
}

// node's timers overflow past 2^31−1 ms (24.8 days) and then fire after 1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1

/** A timer that runs `fire` after any `ms` (chained node timers), never when `ms` is Infinity; returns its clear function. */
export function longTimeout(fire: () => void, ms: number, options: { unref?: boolean } = {}): () => void {
  let timer: NodeJS.Timeout | undefined
  const arm = (left: number) => {
    if (!Number.isFinite(left)) return
    timer = setTimeout(() => (left > MAX_TIMER_MS ? arm(left - MAX_TIMER_MS) : fire()), Math.min(left, MAX_TIMER_MS))
    if (options.unref === true) timer.unref()
  }
  arm(ms)
  return () => clearTimeout(timer)
}

/** A signal aborted by the parent or, with TIMEOUT, after `ms`; `dispose` clears the timer. */
export function withTimeout(parent: AbortSignal | undefined, ms: number | undefined, what: string): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController()
  const onAbort = () => controller.abort(parent === undefined ? undefined : abortReason(parent))
  if (parent?.aborted === true) onAbort()
  parent?.addEventListener('abort', onAbort, { once: true })
  const clear = ms === undefined || ms <= 0 ? undefined : longTimeout(() => controller.abort(timeoutError(what, ms)), ms, { unref: true })
  return {
    signal: controller.signal,
    dispose: () => {
      clear?.()
      parent?.removeEventListener('abort', onAbort)
    },
  }
}

/** Resolves after `ms`, or rejects as soon as the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(abortReason(signal))
    const clear = longTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clear()
      reject(abortReason(signal!))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms} ms`
  if (ms < 120_000) return `${Math.round(ms / 100) / 10} s`
  if (ms < 7_200_000) return `${Math.round(ms / 6000) / 10} min`
  return `${Math.round(ms / 360_000) / 10} h`
}
