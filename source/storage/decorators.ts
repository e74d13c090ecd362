// The decorators besides retries (retry.ts): a bound on parallel requests, and a log line per failed
// operation. Each wraps any backend; openRemote composes them in one place.
import pLimit from 'p-limit'
import { errorCode } from '../util/errors.ts'
import type { Backend } from './backend.ts'

type Operation = 'info' | 'list' | 'stat' | 'read' | 'write' | 'delete' | 'rename' | 'open' | 'mkdir' | 'rmdir' | 'rmtree' | 'abortStaleUploads'
const OPERATIONS: Operation[] = ['info', 'list', 'stat', 'read', 'write', 'delete', 'rename', 'open', 'mkdir', 'rmdir', 'rmtree', 'abortStaleUploads']

/** Wraps each present operation of `backend` with `around`; sync, close and lock pass through unchanged. */
function decorate(backend: Backend, around: (operation: Operation, args: unknown[], call: () => Promise<unknown>) => Promise<unknown>): Backend {
  const decorated: Record<string, unknown> = {
    label: backend.label,
    capabilities: backend.capabilities,
    sync: () => backend.sync(),
    close: () => backend.close(),
    ...(backend.lock !== undefined && { lock: backend.lock.bind(backend) }),
  }
  for (const operation of OPERATIONS) {
    const fn = backend[operation] as ((...args: unknown[]) => Promise<unknown>) | undefined
    if (fn !== undefined) decorated[operation] = (...args: unknown[]) => around(operation, args, () => fn.apply(backend, args))
  }
  return decorated as unknown as Backend
}

/** At most `connections` requests in flight (XO: 10 per remote); a read holds its slot until its stream is open. */
export function withConcurrencyLimit(backend: Backend, connections = backend.capabilities.connections): Backend {
  const limit = pLimit(Math.max(1, connections))
  return decorate(backend, (_, __, call) => limit(call))
}

/** One line per failed operation (what, where, how long, the code): never the data, never a secret. */
export function withLogging(backend: Backend, log: (line: string) => void): Backend {
  return decorate(backend, async (operation, args, call) => {
    const started = performance.now()
    try {
      return await call()
    } catch (error) {
      const target = Array.isArray(args[0]) ? `${(args[0] as string[]).length} objects` : String(args[0] ?? '')
      if (errorCode(error) !== 'ENOENT') log(`remote ${backend.label}: ${operation} ${target} failed after ${Math.round(performance.now() - started)} ms: ${errorCode(error)}`)
      throw error
    }
  })
}
