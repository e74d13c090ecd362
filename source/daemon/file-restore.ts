// The daemon's file-restore sessions: each a restore point opened for browsing by one client, found by its id,
// closed when unused for a while (never while a fetch reads from it), and all closed when the daemon stops.
import { randomUUID } from 'node:crypto'
import { FileRestoreSession, type FileSystemBrowser } from '../engine/index.ts'
import type { RemoteHandler } from '../storage/index.ts'
import { LifeboatError } from '../util/errors.ts'

export const IDLE_MS = 15 * 60_000

interface Held {
  session: FileRestoreSession
  remote: string
  backupId: string
  lastUsed: number
  /** Fetches in progress. */
  busy: number
}

export class FileRestoreSessions {
  readonly #held = new Map<string, Held>()
  readonly #timer: NodeJS.Timeout

  constructor(
    private readonly workDir: string,
    private readonly log: (line: string) => void,
    private readonly idleMs = IDLE_MS,
  ) {
    this.#timer = setInterval(() => void this.#closeIdle(), Math.min(60_000, idleMs))
    this.#timer.unref()
  }

  async open(handler: RemoteHandler, remote: string, backupId: string): Promise<{ id: string; session: FileRestoreSession }> {
    const id = randomUUID()
    const session = await FileRestoreSession.open(handler, backupId, { workDir: `${this.workDir}/${id}` })
    this.#held.set(id, { session, remote, backupId, lastUsed: Date.now(), busy: 0 })
    this.log(`file restore: session ${id} opened on ${backupId} of "${remote}"`)
    return { id, session }
  }

  get(id: string): FileRestoreSession {
    return this.#hold(id).session
  }

  #hold(id: string): Held {
    const held = this.#held.get(id)
    if (held === undefined) throw new LifeboatError('FILE_RESTORE_NO_SESSION', `No file-restore session is "${id}" (it was closed, or unused for ${Math.round(this.idleMs / 60_000)} minutes); open the restore point again.`)
    held.lastUsed = Date.now()
    return held
  }

  browser(id: string, disk: string, volume: string): Promise<FileSystemBrowser> {
    return this.get(id).browser(disk, volume)
  }

  /** Keeps the session open until `done` settles (a fetch reading from it). */
  use(id: string): { remote: string; backupId: string; release: () => void } {
    const held = this.#hold(id)
    held.busy++
    return { remote: held.remote, backupId: held.backupId, release: () => void (held.busy--, (held.lastUsed = Date.now())) }
  }

  async close(id: string): Promise<void> {
    const held = this.#hold(id)
    if (held.busy > 0) throw new LifeboatError('FILE_RESTORE_BUSY', `The session ${id} is fetching files; wait for the fetch to end or cancel its run first.`)
    this.#held.delete(id)
    await held.session.close()
    this.log(`file restore: session ${id} closed`)
  }

  async #closeIdle(): Promise<void> {
    const now = Date.now()
    for (const [id, held] of this.#held) {
      if (held.busy > 0 || now - held.lastUsed < this.idleMs) continue
      this.#held.delete(id)
      await held.session.close()
      this.log(`file restore: session ${id} closed after ${Math.round(this.idleMs / 60_000)} minutes unused`)
    }
  }

  async closeAll(): Promise<void> {
    clearInterval(this.#timer)
    const all = [...this.#held.values()]
    this.#held.clear()
    for (const held of all) await held.session.close()
  }
}
