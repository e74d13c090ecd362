// What the cleaner found each unchanged file of a remote to be (a VHD file's identity and parent, a backup's
// parsed metadata), so that a clean after a clean (one after every run) stats a file it knows instead of
// opening and parsing it: with nothing to merge, cleaning a VM of 30 restore points then costs little more
// than one of 3. Verify never uses it: it is there to find what changed without a writer (bit rot), which
// keeps a file's size and time. What is remembered is shared: callers treat it as read-only.
import type { EntryStat, RemoteHandler } from '../storage/index.ts'

/**
 * A file is remembered only when it was last changed this long before it was read: a change within a file
 * system's time granularity (a second on object stores) could leave its time as it was, this long after it cannot.
 */
const SETTLED_MS = 2000
/** Entries kept per remote at most (a few hundred bytes each); past it the remote's are dropped and relearned. */
const MAX_ENTRIES = 100_000

interface Known<T> {
  size: number
  mtimeMs: number
  value: T
}

const byRemote = new WeakMap<RemoteHandler, Map<string, Known<unknown>>>()

/** What was remembered of `path`, when the file still has the size and time it had then. */
export function knownFile<T>(handler: RemoteHandler, path: string, stat: EntryStat): T | undefined {
  const known = byRemote.get(handler)?.get(path)
  return known !== undefined && known.size === stat.size && known.mtimeMs === stat.mtimeMs ? (known.value as T) : undefined
}

/** Remembers what `path` is, as `stat` (taken before it was read) found it, if the file had settled by then. */
export function rememberFile<T>(handler: RemoteHandler, path: string, stat: EntryStat, value: T, statAt: number): void {
  if (!Number.isFinite(stat.mtimeMs) || stat.mtimeMs > statAt - SETTLED_MS) return
  let entries = byRemote.get(handler)
  if (entries === undefined) byRemote.set(handler, (entries = new Map()))
  if (entries.size >= MAX_ENTRIES) entries.clear()
  entries.set(path, { size: stat.size, mtimeMs: stat.mtimeMs, value })
}

/** Forgets paths Lifeboat itself removes, renames over or merges into (their size and time would tell too). */
export function forgetFiles(handler: RemoteHandler, paths: Iterable<string>): void {
  const entries = byRemote.get(handler)
  if (entries !== undefined) for (const path of paths) entries.delete(path)
}
