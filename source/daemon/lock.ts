// One daemon per data directory: <data>/daemon.lock names the owner's pid, taken before anything in the
// directory is read; a lock whose process is gone (kill -9, power loss) is taken over.
import { readFileSync } from 'node:fs'
import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { LifeboatError } from '../util/errors.ts'

export const LOCK_FILE = 'daemon.lock'

interface Owner {
  pid: number
  /** The process's start time (Linux clock ticks since boot), so that a pid reused after a reboot is not taken for the owner. */
  started?: string
}

export interface DataDirLock {
  release(): Promise<void>
}

/** Who locks a data directory, for the refusal of a second one: the daemon, or the proxy service. */
export interface LockOwner {
  name: string
  stopCommand: string
}

const DAEMON: LockOwner = { name: 'daemon', stopCommand: 'systemctl stop lifeboat' }

export async function lockDataDir(dataDir: string, who: LockOwner = DAEMON): Promise<DataDirLock> {
  const path = join(dataDir, LOCK_FILE)
  const text = JSON.stringify(describe(process.pid)) + '\n'
  for (let attempt = 0; attempt < 5; attempt++) {
    if (await create(path, text)) return { release: () => releaseLock(path, text) }
    const held = await readFile(path, 'utf8').catch(() => undefined)
    if (held === undefined) continue // released meanwhile
    const owner = parseOwner(held)
    if (owner !== undefined && isAlive(owner)) throw alreadyRunning(who, dataDir, owner.pid)
    // Stale: move it aside under a unique name (one contender wins the rename), then check it is the one judged.
    const aside = `${path}.stale-${randomBytes(4).toString('hex')}`
    if (!(await rename(path, aside).then(() => true, () => false))) continue
    const moved = await readFile(aside, 'utf8').catch(() => undefined)
    // A live newcomer's lock was moved by mistake: put it back (unless a third took the place).
    if (moved !== held) await link(aside, path).catch(() => {})
    await unlink(aside).catch(() => {})
  }
  throw alreadyRunning(who, dataDir)
}

/** Creates the lock whole or not at all (link fails when it exists), so no one ever reads a half-written lock. */
async function create(path: string, text: string): Promise<boolean> {
  const temporary = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`
  await writeFile(temporary, text, { mode: 0o600 })
  try {
    await link(temporary, path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  } finally {
    await unlink(temporary).catch(() => {})
  }
}

async function releaseLock(path: string, text: string): Promise<void> {
  if ((await readFile(path, 'utf8').catch(() => undefined)) === text) await unlink(path).catch(() => {})
}

function describe(pid: number): Owner {
  const started = processStart(pid)
  return { pid, ...(started !== undefined && { started }) }
}

function parseOwner(text: string): Owner | undefined {
  try {
    const owner = JSON.parse(text) as Owner
    return Number.isInteger(owner.pid) && owner.pid > 0 ? owner : undefined
  } catch {
    return undefined
  }
}

function isAlive(owner: Owner): boolean {
  try {
    process.kill(owner.pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  const started = processStart(owner.pid)
  return owner.started === undefined || started === undefined || started === owner.started
}

// Field 22 of /proc/PID/stat; the name (field 2) may hold spaces and parentheses, hence the last ")".
function processStart(pid: number): string | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
}

function alreadyRunning(who: LockOwner, dataDir: string, pid?: number): LifeboatError {
  return new LifeboatError(
    `${who.name.toUpperCase()}_ALREADY_RUNNING`,
    `Another Lifeboat ${who.name}${pid === undefined ? '' : ` (pid ${pid})`} uses the data directory ${dataDir}; stop it first (${who.stopCommand}) or give this one another --data.`,
  )
}
