// Run logs on disk: one JSON file per runId, written atomically, so a crash never leaves half a log;
// on start-up the daemon turns the runs it left unfinished into "interrupted" ones.
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { LifeboatError } from '../util/errors.ts'
import { foldRun, markInterrupted, type TaskNode } from './fold.ts'
import type { Task } from './task.ts'

const RUN_ID = /^[A-Za-z0-9_-]{1,100}$/

export class RunLogStore {
  readonly dir: string

  constructor(dir: string) {
    this.dir = dir
  }

  async save(run: TaskNode): Promise<void> {
    const path = this.#path(run.id)
    // Logs name VMs, pools and errors: for the daemon's user only, like its state.
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    const temporary = join(this.dir, `.${run.id}.${randomBytes(4).toString('hex')}.tmp`)
    try {
      await writeFile(temporary, JSON.stringify(run), { mode: 0o600 })
      await rename(temporary, path)
    } catch (error) {
      await unlink(temporary).catch(() => {})
      throw error
    }
  }

  /** The run's log, or undefined when there is none. */
  async load(runId: string): Promise<TaskNode | undefined> {
    let text: string
    try {
      text = await readFile(this.#path(runId), 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    }
    try {
      return JSON.parse(text) as TaskNode
    } catch (error) {
      throw new LifeboatError('RUN_LOG_CORRUPT', `The log of run ${runId} (${this.#path(runId)}) is not valid JSON; delete the file to get rid of it.`, { cause: error })
    }
  }

  /** The runIds stored, oldest first (task ids sort by creation time). */
  async list(): Promise<string[]> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw error
    }
    return names
      .filter(name => name.endsWith('.json') && !name.startsWith('.'))
      .map(name => name.slice(0, -'.json'.length))
      .sort()
  }

  /**
   * Keeps a running run's log on disk: saved now (pending, so a crash leaves it to be marked interrupted)
   * and again when the run ends. Resolves once the final log is written.
   */
  record(run: Task): Promise<void> {
    const save = () => this.save(foldRun(run.log.events)!)
    return new Promise((resolve, reject) => {
      const started = save()
      const unsubscribe = run.log.subscribe(event => {
        if (event.type !== 'end' || event.id !== run.id) return
        unsubscribe()
        started.then(save).then(resolve, reject)
      })
      started.catch(error => {
        unsubscribe()
        reject(error)
      })
    })
  }

  /** Marks the stored runs still pending as interrupted, but those of `except` (taken up again); returns their marked trees. Unreadable logs are left alone. */
  async markInterruptedRuns(reason: string, except: ReadonlySet<string> = new Set()): Promise<TaskNode[]> {
    const interrupted: TaskNode[] = []
    for (const runId of await this.list()) {
      if (except.has(runId)) continue
      const run = await this.load(runId).catch(() => undefined)
      if (run === undefined || run.status !== 'pending') continue
      const marked = markInterrupted(run, reason)
      await this.save(marked)
      interrupted.push(marked)
    }
    return interrupted
  }

  #path(runId: string): string {
    if (!RUN_ID.test(runId)) throw new LifeboatError('RUN_ID_INVALID', `"${runId}" is not a run id; run ids are letters, digits, "-" and "_".`)
    return join(this.dir, `${runId}.json`)
  }
}
