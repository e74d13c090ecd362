// Retries and timeouts as a decorator around any backend (restic style), so backends stay plain and every
// one gets the same policy: XO's delays, and no retry where retrying cannot help.
import { LifeboatError } from '../util/errors.ts'
import type { Backend, WriteData, WriteOptions } from './backend.ts'
import { wasRetried } from './errors.ts'

export interface RetryPolicy {
  /** Waits between attempts; their count is the number of retries (XO: 100, 200, 500, 1000, 2000 ms). */
  delaysMs?: number[]
  /** Bound on each attempt of an operation (XO: 20 minutes). */
  timeoutMs?: number
  onRetry?: (operation: string, error: unknown, attempt: number) => void
}

// Errors that say something about the request, not the moment: retrying gives the same answer (XO does not
// retry HTTP 401/403/404/405 either: REMOTE_AUTH, ENOENT, NOT_SUPPORTED).
const FINAL = new Set([
  'ENOENT', 'EEXIST', 'EISDIR', 'ENOTEMPTY', 'ENOTDIR', 'EACCES', 'EPERM', 'ERR_ASSERTION',
  'REMOTE_LOCKED', 'REMOTE_FULL', 'REMOTE_TIMEOUT', 'REMOTE_AUTH', 'REMOTE_BAD_KEY', 'REMOTE_BAD_URL', 'REMOTE_CERTIFICATE', 'REMOTE_OBJECT_TOO_LARGE',
  'REMOTE_WRITE_INCOMPLETE', 'REMOTE_NOT_EMPTY', 'REMOTE_ENCRYPTED', 'REMOTE_BAD_ENCRYPTION', 'REMOTE_DECRYPT_FAILED', 'REMOTE_NOT_SYNCED',
  'NOT_SUPPORTED', 'ABORT_ERR',
])

export function withRetries(backend: Backend, policy: RetryPolicy = {}): Backend {
  const delays = policy.delaysMs ?? [100, 200, 500, 1000, 2000]
  const timeoutMs = policy.timeoutMs ?? 20 * 60_000

  async function attempt<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await withTimeout(fn(), timeoutMs, () => new LifeboatError('REMOTE_TIMEOUT', `${operation} on ${backend.label} did not answer within ${Math.round(timeoutMs / 1000)} s; check the remote's health and network.`))
      } catch (error) {
        const code = (error as { code?: unknown } | undefined)?.code
        // A backend that reconnected and resent already (NFS) has had its retries: ours on top multiplied the wait.
        if (attempt >= delays.length || wasRetried(error) || (typeof code === 'string' && FINAL.has(code))) throw error
        policy.onRetry?.(operation, error, attempt + 1)
        await new Promise(resolve => setTimeout(resolve, delays[attempt]))
      }
    }
  }

  // A stream can be consumed once, and a disk takes as long as it takes: neither retried nor bounded here
  // (the run's own timeout and the export's stall detection stop it).
  function write(path: string, data: WriteData, options: WriteOptions = {}): Promise<number> {
    if (typeof data !== 'string' && !Buffer.isBuffer(data)) return backend.write(path, data, options)
    // A retried exclusive write may find its own first attempt: XO downgrades it to a plain write.
    let first = true
    return attempt(`write ${path}`, () => {
      const ifAbsent = first && options.ifAbsent === true
      first = false
      return backend.write(path, data, { ...options, ifAbsent })
    })
  }

  const native = <K extends 'rename' | 'open' | 'mkdir' | 'rmdir' | 'rmtree' | 'abortStaleUploads'>(name: K, describe: (...args: Parameters<NonNullable<Backend[K]>>) => string): Pick<Backend, K> => {
    const operation = backend[name] as ((...args: unknown[]) => Promise<unknown>) | undefined
    if (operation === undefined) return {} as Pick<Backend, K>
    return { [name]: (...args: unknown[]) => attempt(describe(...(args as Parameters<NonNullable<Backend[K]>>)), () => operation.apply(backend, args)) } as unknown as Pick<Backend, K>
  }

  return {
    label: backend.label,
    capabilities: backend.capabilities,
    sync: () => attempt('sync', () => backend.sync()),
    close: () => backend.close(),
    info: () => attempt('info', () => backend.info()),
    list: (dir, options) => attempt(`list ${dir}`, () => backend.list(dir, options)),
    stat: path => attempt(`stat ${path}`, () => backend.stat(path)),
    read: (path, range) => attempt(`read ${path}`, () => backend.read(path, range)),
    write,
    delete: paths => attempt(`delete ${paths[0] ?? ''}${paths.length > 1 ? ` and ${paths.length - 1} more` : ''}`, () => backend.delete(paths)),
    ...native('rename', from => `rename ${from}`),
    ...native('open', path => `open ${path}`),
    ...native('mkdir', path => `mkdir ${path}`),
    ...native('rmdir', path => `rmdir ${path}`),
    ...native('rmtree', path => `rmtree ${path}`),
    ...native('abortStaleUploads', () => 'abort stale uploads'),
    // A lock is taken once: a retry could find its own first attempt and refuse itself.
    ...(backend.lock !== undefined && { lock: backend.lock.bind(backend) }),
  }
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(onTimeout()), ms)))])
  } finally {
    clearTimeout(timer)
  }
}
