// Directory locks like proper-lockfile (what XO uses on file, NFS and SMB remotes): `<path>.lock` is a
// folder whose creation is atomic; its holder refreshes its mtime, and one left unrefreshed is stale.
// The folder names its holder (host, pid and a token of this taking), so a lock left by a dead process of
// this host is taken over at once: a daemon restarted after a crash does not wait for its own old locks to go
// stale; nor does a run after one whose release could not remove its lock (the share was gone then).
// The same lock runs on the local folder (node:fs) and on NFS and SMB spoken from user space: each gives
// the few folder operations below, so a Lifeboat and an XO sharing a remote exclude each other.
import { mkdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { LifeboatError } from '../util/errors.ts'
import type { LockOptions, RemoteLock } from './handler.ts'
import { heldLock } from './held-lock.ts'

const DEFAULT_STALE_MS = 60_000

/** The folder operations a lock folder needs; paths as the backend takes them. */
export interface LockFolderOps {
  /** Creates one folder (not its parents); EEXIST when it exists: the atomic step of the lock. */
  mkdir(path: string): Promise<void>
  /** The folder's modification time, or undefined when it does not exist. */
  mtimeMs(path: string): Promise<number | undefined>
  /** Sets the folder's modification time to now. */
  touch(path: string): Promise<void>
  rename(from: string, to: string): Promise<void>
  /** Removes a folder and what it holds; a missing one is not an error. */
  rmtree(path: string): Promise<void>
  writeFile(path: string, data: string): Promise<void>
  readFile(path: string): Promise<string>
}

/** The local folder's lock operations (absolute paths). */
export const localLockFolder: LockFolderOps = {
  mkdir: path => mkdir(path),
  mtimeMs: path => stat(path).then(s => s.mtimeMs, () => undefined),
  touch: path => {
    const now = new Date()
    return utimes(path, now, now)
  },
  rename,
  rmtree: path => rm(path, { recursive: true, force: true }),
  writeFile: (path, data) => writeFile(path, data),
  readFile: path => readFile(path, 'utf8'),
}

export async function takeDirectoryLock(fs: LockFolderOps, target: string, label: string, options: LockOptions = {}): Promise<RemoteLock> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS
  const refreshMs = options.refreshMs ?? Math.max(10, Math.floor(staleMs / 4))
  const lockDir = `${target}.lock`
  const locked = (since: number) =>
    new LifeboatError(
      'REMOTE_LOCKED',
      `${label} is locked by another backup, merge or clean (lock ${lockDir}, refreshed ${new Date(since).toISOString()}). Wait for it to finish; a lock not refreshed for ${Math.round(staleMs / 1000)} s is taken over.`,
    )
  try {
    await fs.mkdir(lockDir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    const held = await fs.mtimeMs(lockDir)
    if (held !== undefined && Date.now() - held < staleMs && !(await abandoned(fs, lockDir))) throw locked(held)
    try {
      // Stale: move it aside under a unique name (one contender wins the rename), then take it.
      // Gone meanwhile (its holder released it): just take it.
      if (held !== undefined) {
        const aside = `${lockDir}.stale-${randomBytes(4).toString('hex')}`
        await fs.rename(lockDir, aside)
        await fs.rmtree(aside)
      }
      await fs.mkdir(lockDir)
    } catch {
      throw locked(held ?? Date.now())
    }
  }
  const token = randomBytes(8).toString('hex')
  await fs.writeFile(`${lockDir}/${OWNER_FILE}`, JSON.stringify({ host: hostname(), pid: process.pid, token }))
  heldTokens.add(token)

  let lastMtime = await fs.mtimeMs(lockDir)
  const lock = heldLock(lockDir, refreshMs, {
    async refresh() {
      try {
        // Someone else touched or replaced our lock: it is no longer ours.
        if ((await fs.mtimeMs(lockDir)) !== lastMtime) return false
        await fs.touch(lockDir)
        lastMtime = await fs.mtimeMs(lockDir)
        return lastMtime !== undefined
      } catch {
        return false
      }
    },
    async release() {
      const current = await fs.mtimeMs(lockDir).catch(() => undefined)
      if (current !== undefined && current === lastMtime) await fs.rmtree(lockDir).catch(() => {})
    },
  })
  return {
    path: lock.path,
    get compromised() {
      return lock.compromised
    },
    release() {
      heldTokens.delete(token)
      return lock.release()
    },
  }
}

const OWNER_FILE = 'owner.json'
// The tokens of the lock folders this process holds now, whatever remote they are on.
const heldTokens = new Set<string>()

async function abandoned(fs: LockFolderOps, lockDir: string): Promise<boolean> {
  let owner: { host?: unknown; pid?: unknown; token?: unknown }
  try {
    owner = JSON.parse(await fs.readFile(`${lockDir}/${OWNER_FILE}`))
  } catch {
    return false
  }
  if (owner.host !== hostname() || typeof owner.pid !== 'number') return false
  // Ours, from a taking already released: its release could not remove it.
  if (owner.pid === process.pid) return typeof owner.token === 'string' && !heldTokens.has(owner.token)
  try {
    process.kill(owner.pid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH'
  }
}
