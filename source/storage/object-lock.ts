// A lock built on the storage core alone, for object stores without a native one (S3): needs neither rename
// nor a server-checked write-if-absent. Each contender writes its own candidate `<path>.lock/<token>`, then
// lists them: it holds the lock when its candidate is the only live one. Of two contenders the one that
// lists last sees the other's candidate (list after write is consistent), so two can never both hold it.
// A candidate not refreshed for staleMs (by the server's clock: both times are the store's) is abandoned
// and removed by the next contender; its old holder finds it gone at its next refresh and is compromised.
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { LifeboatError, errorCode } from '../util/errors.ts'
import { listAll, type Backend, type LockOptions, type RemoteLock } from './backend.ts'
import { heldLock } from './held-lock.ts'

const DEFAULT_STALE_MS = 60_000
// A newer contender withdraws once it sees an older one; this is how long the older waits for that.
const WITHDRAW_WAITS_MS = [50, 200, 500]

interface Candidate {
  name: string
  mtimeMs: number
}

export async function takeObjectLock(backend: Backend, path: string, options: LockOptions = {}): Promise<RemoteLock> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS
  const refreshMs = options.refreshMs ?? Math.max(10, Math.floor(staleMs / 4))
  const folder = `${path.replace(/\/+$/, '')}.lock`
  const token = `${Date.now().toString(36).padStart(9, '0')}-${randomBytes(8).toString('hex')}`
  const own = `${folder}/${token}`
  const body = () => JSON.stringify({ host: hostname(), pid: process.pid, at: new Date().toISOString() })
  const locked = (since: number) =>
    new LifeboatError(
      'REMOTE_LOCKED',
      `${path} on ${backend.label} is locked by another backup, merge or clean (lock ${folder}, refreshed ${new Date(since).toISOString()}). Wait for it to finish; a lock not refreshed for ${Math.round(staleMs / 1000)} s is taken over.`,
    )

  await backend.write(own, body())
  try {
    for (let attempt = 0; ; attempt++) {
      const candidates = await listCandidates(backend, folder)
      const mine = candidates.find(c => c.name === token)
      if (mine === undefined) throw locked(Date.now()) // removed as stale by another contender already
      const stale = candidates.filter(c => c.name !== token && mine.mtimeMs - c.mtimeMs >= staleMs)
      if (stale.length > 0) await backend.delete(stale.map(c => `${folder}/${c.name}`))
      const live = candidates.filter(c => c.name !== token && !stale.includes(c))
      if (live.length === 0) break
      const older = live.find(c => before(c, mine))
      if (older !== undefined || attempt >= WITHDRAW_WAITS_MS.length) throw locked((older ?? live[0]!).mtimeMs)
      await new Promise(resolve => setTimeout(resolve, WITHDRAW_WAITS_MS[attempt]))
    }
  } catch (error) {
    await backend.delete([own]).catch(() => {})
    throw error
  }

  return heldLock(folder, refreshMs, {
    async refresh() {
      try {
        await backend.stat(own) // gone: taken over as stale
      } catch (error) {
        if (errorCode(error) === 'ENOENT') return false
        throw error
      }
      await backend.write(own, body())
      return true
    },
    release: () => backend.delete([own]).catch(() => {}),
  })
}

async function listCandidates(backend: Backend, folder: string): Promise<Candidate[]> {
  const candidates: Candidate[] = []
  for (const entry of await listAll(backend, folder)) {
    if (entry.isDirectory) continue
    try {
      candidates.push({ name: entry.name, mtimeMs: (await backend.stat(`${folder}/${entry.name}`)).mtimeMs })
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error // withdrawn meanwhile
    }
  }
  return candidates
}

// The store's times may have a second's resolution (S3): ties are broken by name, the same for everyone.
function before(a: Candidate, b: Candidate): boolean {
  return a.mtimeMs < b.mtimeMs || (a.mtimeMs === b.mtimeMs && a.name < b.name)
}
