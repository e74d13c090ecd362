// The life of a held lock, whatever keeps it (a lock folder, a lock object, a lease): refreshed every
// refreshMs, one refresh at a time (on a loaded machine a tick can come before the last one ended); a
// refresh that finds the lock lost marks it compromised; released once, never after it was lost.
import type { RemoteLock } from './backend.ts'

export interface LockKeeper {
  /** False when the lock is no longer ours (taken over); throwing is a passing failure, tried again next time. */
  refresh(): Promise<boolean>
  release(): Promise<void>
}

export function heldLock(path: string, refreshMs: number, keeper: LockKeeper): RemoteLock {
  let compromised = false
  let released = false
  let refreshing: Promise<void> | undefined
  const timer = setInterval(() => {
    if (refreshing !== undefined) return
    refreshing = keeper
      .refresh()
      .then(
        kept => {
          if (kept) return
          compromised = true
          clearInterval(timer)
        },
        () => {},
      )
      .finally(() => (refreshing = undefined))
  }, refreshMs)
  timer.unref()
  return {
    path,
    get compromised() {
      return compromised
    },
    async release() {
      clearInterval(timer)
      await refreshing
      if (released || compromised) return
      released = true
      await keeper.release()
    },
  }
}
