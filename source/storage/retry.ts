// Retries and timeouts as a decorator around any handler (restic style), so handlers stay plain and
// every backend gets the same policy: XO's delays, and no retry where retrying cannot help.
import type { Readable } from 'node:stream'
import { LifeboatError } from '../util/errors.ts'
import type { LockOptions, OutputStreamOptions, RandomAccessFile, RemoteEntryStat, RemoteHandler, RemoteLock, RemoteSpace } from './handler.ts'

export interface RetryPolicy {
  /** Waits between attempts; their count is the number of retries (XO: 100, 200, 500, 1000, 2000 ms). */
  delaysMs?: number[]
  /** Bound on each attempt of an operation (XO: 20 minutes). */
  timeoutMs?: number
  onRetry?: (operation: string, error: unknown, attempt: number) => void
}

// Errors that say something about the request, not the moment: retrying gives the same answer.
const FINAL = new Set(['ENOENT', 'EEXIST', 'EISDIR', 'ENOTEMPTY', 'ENOTDIR', 'EACCES', 'EPERM', 'ERR_ASSERTION', 'REMOTE_LOCKED', 'REMOTE_FULL', 'REMOTE_TIMEOUT'])

export function withRetries(handler: RemoteHandler, policy: RetryPolicy = {}): RemoteHandler {
  const delays = policy.delaysMs ?? [100, 200, 500, 1000, 2000]
  const timeoutMs = policy.timeoutMs ?? 20 * 60_000

  async function attempt<T>(operation: string, fn: () => Promise<T>, retry = true): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await withTimeout(fn(), timeoutMs, () => new LifeboatError('REMOTE_TIMEOUT', `${operation} on ${handler.label} did not answer within ${Math.round(timeoutMs / 1000)} s; check the remote's health and network.`))
      } catch (error) {
        const code = (error as { code?: unknown } | undefined)?.code
        if (!retry || attempt >= delays.length || (typeof code === 'string' && FINAL.has(code))) throw error
        policy.onRetry?.(operation, error, attempt + 1)
        await new Promise(resolve => setTimeout(resolve, delays[attempt]))
      }
    }
  }

  return {
    label: handler.label,
    sync: () => attempt('sync', () => handler.sync()),
    close: () => handler.close(),
    getInfo: (): Promise<RemoteSpace> => attempt('getInfo', () => handler.getInfo()),
    list: (dir: string, options?: { ignoreMissing?: boolean }) => attempt(`list ${dir}`, () => handler.list(dir, options)),
    stat: (path: string): Promise<RemoteEntryStat> => attempt(`stat ${path}`, () => handler.stat(path)),
    createReadStream: (path: string, range?: { start?: number; end?: number }): Promise<Readable> => attempt(`read ${path}`, () => handler.createReadStream(path, range)),
    // A stream can be consumed once: the write is bounded but not retried (the caller re-exports).
    outputStream: (path: string, source: AsyncIterable<Buffer | Uint8Array>, options?: OutputStreamOptions) =>
      handler.outputStream(path, source, options),
    readFile: (path: string) => attempt(`read ${path}`, () => handler.readFile(path)),
    // A retried exclusive write may find its own first attempt: XO downgrades it to a plain write.
    writeFile: async (path: string, data: Buffer | string, options?: { flag?: 'w' | 'wx' }) => {
      let first = true
      await attempt(`write ${path}`, () => {
        const flag = first ? options?.flag : 'w'
        first = false
        return handler.writeFile(path, data, { ...(flag !== undefined && { flag }) })
      })
    },
    rename: (from: string, to: string) => attempt(`rename ${from}`, () => handler.rename(from, to)),
    unlink: (path: string) => attempt(`unlink ${path}`, () => handler.unlink(path)),
    rmdir: (path: string) => attempt(`rmdir ${path}`, () => handler.rmdir(path)),
    rmtree: (path: string) => attempt(`rmtree ${path}`, () => handler.rmtree(path)),
    mkdir: (path: string) => attempt(`mkdir ${path}`, () => handler.mkdir(path)),
    openFile: (path: string, mode: 'r' | 'r+'): Promise<RandomAccessFile> => attempt(`open ${path}`, () => handler.openFile(path, mode)),
    lock: (path: string, options?: LockOptions): Promise<RemoteLock> => attempt(`lock ${path}`, () => handler.lock(path, options), false),
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(onTimeout()), ms)))])
  } finally {
    clearTimeout(timer)
  }
}
