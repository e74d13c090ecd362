// Turns a backend's low-level errors into the codes the engine acts on: a full remote and a remote
// that is gone are target failures with an administrator's sentence; the rest keep their own code.
import { LifeboatError } from '../util/errors.ts'

const FULL = new Set(['ENOSPC', 'EDQUOT'])
const GONE = new Set(['EIO', 'ENOTCONN', 'ESTALE', 'EHOSTDOWN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENODEV', 'ENXIO', 'ETIMEDOUT', 'ECONNREFUSED', 'ECONNRESET'])

/** `need` names what did not fit and the space it needed, when known (a merge knows it before it starts). */
export function remoteFull(label: string, cause: unknown, need?: { what: string; bytes: number; available?: number }): LifeboatError {
  if (need === undefined) return new LifeboatError('REMOTE_FULL', `The remote ${label} is full; free space on it (or lower the retention) and run the job again.`, { cause })
  const free = need.available === undefined ? '' : ` and ${mebibytes(need.available, Math.floor)} are free`
  return new LifeboatError('REMOTE_FULL', `The remote ${label} is full: ${need.what} needs ${mebibytes(need.bytes, Math.ceil)}${free}; free space on it (or lower the retention) and run the job again.`, {
    cause, data: { remote: label, needed: need.bytes, ...(need.available !== undefined && { available: need.available }) },
  })
}

// Needed space rounded up, free space down: the message never understates the gap.
function mebibytes(bytes: number, round: (n: number) => number): string {
  return `${round(bytes / 1024 / 102.4) / 10} MiB`
}

export function remoteUnavailable(label: string, cause: unknown, detail = 'it cannot be reached'): LifeboatError {
  // A local folder goes away by being unmounted; NFS, SMB and the object stores by their server.
  const check = label.startsWith('file://') ? 'that it is mounted' : 'that its server is up and reachable from this machine'
  return new LifeboatError('REMOTE_UNAVAILABLE', `The remote ${label} is unavailable: ${detail}. Check ${check}, then try again.`, { cause })
}

/** Maps a backend error; `rootIsGone` is asked only for ENOENT, to tell a missing file from a vanished remote. */
export async function toRemoteError(error: unknown, label: string, rootIsGone: () => Promise<boolean>): Promise<unknown> {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  if (code === undefined) return error
  if (FULL.has(code)) return remoteFull(label, error)
  if (GONE.has(code)) return remoteUnavailable(label, error)
  if (code === 'ENOENT' && (await rootIsGone())) return remoteUnavailable(label, error, 'its folder no longer exists')
  return error
}

/** A stream that delivered another byte count than announced: the write must leave nothing visible. */
export function writeIncomplete(path: string, label: string, received: number, expected: number): LifeboatError {
  const why = received < expected ? 'the source stopped early' : 'the source gave more than it announced'
  return new LifeboatError('REMOTE_WRITE_INCOMPLETE', `Writing ${path} on ${label} received ${received} bytes instead of ${expected}: ${why}; nothing was committed.`)
}

const retried = new WeakSet<object>()

/** Marks an error its backend already retried (reconnecting and resending): the retry decorator passes it on at once. */
export function alreadyRetried<T extends object>(error: T): T {
  retried.add(error)
  return error
}

export function wasRetried(error: unknown): boolean {
  return typeof error === 'object' && error !== null && retried.has(error)
}
