// Directory locks like proper-lockfile (what XO uses on file, NFS and SMB remotes): `<path>.lock` is a
// folder whose creation is atomic; its holder refreshes its mtime, and one left unrefreshed is stale.
// The folder names its holder (host and pid), so a lock left by a dead process of this host is taken
// over at once: a daemon restarted after a crash does not wait for its own old locks to go stale.
import { mkdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { LifeboatError } from '../util/errors.ts'
import type { LockOptions, RemoteLock } from './handler.ts'
import { heldLock } from './held-lock.ts'

const DEFAULT_STALE_MS = 60_000

export async function takeDirectoryLock(target: string, label: string, options: LockOptions = {}): Promise<RemoteLock> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS
  const refreshMs = options.refreshMs ?? Math.max(10, Math.floor(staleMs / 4))
  const lockDir = `${target}.lock`
  const locked = (since: number) =>
    new LifeboatError(
      'REMOTE_LOCKED',
      `${label} is locked by another backup, merge or clean (lock ${lockDir}, refreshed ${new Date(since).toISOString()}). Wait for it to finish; a lock not refreshed for ${Math.round(staleMs / 1000)} s is taken over.`,
    )
  try {
    await mkdir(lockDir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    const held = await stat(lockDir).catch(() => undefined)
    if (held !== undefined && Date.now() - held.mtimeMs < staleMs && !(await heldByDeadProcess(lockDir))) throw locked(held.mtimeMs)
    try {
      // Stale: move it aside under a unique name (one contender wins the rename), then take it.
      // Gone meanwhile (its holder released it): just take it.
      if (held !== undefined) {
        const aside = `${lockDir}.stale-${randomBytes(4).toString('hex')}`
        await rename(lockDir, aside)
        await rm(aside, { recursive: true, force: true })
      }
      await mkdir(lockDir)
    } catch {
      throw locked(held?.mtimeMs ?? Date.now())
    }
  }
  await writeFile(`${lockDir}/${OWNER_FILE}`, JSON.stringify({ host: hostname(), pid: process.pid }))

  let lastMtime = (await stat(lockDir)).mtimeMs
  return heldLock(lockDir, refreshMs, {
    async refresh() {
      try {
        // Someone else touched or replaced our lock: it is no longer ours.
        if ((await stat(lockDir)).mtimeMs !== lastMtime) return false
        const now = new Date()
        await utimes(lockDir, now, now)
        lastMtime = (await stat(lockDir)).mtimeMs
        return true
      } catch {
        return false
      }
    },
    async release() {
      const current = await stat(lockDir).catch(() => undefined)
      if (current !== undefined && current.mtimeMs === lastMtime) await rm(lockDir, { recursive: true, force: true }).catch(() => {})
    },
  })
}

const OWNER_FILE = 'owner.json'

async function heldByDeadProcess(lockDir: string): Promise<boolean> {
  let owner: { host?: unknown; pid?: unknown }
  try {
    owner = JSON.parse(await readFile(`${lockDir}/${OWNER_FILE}`, 'utf8'))
  } catch {
    return false
  }
  if (owner.host !== hostname() || typeof owner.pid !== 'number' || owner.pid === process.pid) return false
  try {
    process.kill(owner.pid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH'
  }
}
