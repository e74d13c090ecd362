// One simulated pool master ("xapi"): the method registry and dispatch, sessions, tasks, knobs and the fault log.
// Transports (JSON-RPC, XML-RPC, HTTP transfers) all go through `call` so they share the same rules and faults.
import { randomUUID } from 'node:crypto'
import { encodeXmlRpcValue } from '../formats/xmlrpc.ts'
import type { Database, LabRecord } from './database.ts'
import { ApiError, toApiError } from './errors.ts'
import type { FaultBook } from './faults.ts'
import { NULL_REF } from './schema.ts'
import type { DiskStore, RateLimiter } from './storage/index.ts'
import { Activity } from './activity.ts'

export interface CallContext { session: string; task: string | undefined; signal: AbortSignal | undefined }
interface TaskContext { task: string; signal: AbortSignal }
export type MethodHandler = (context: CallContext, ...args: unknown[]) => unknown
interface MethodSpec { arity: number[]; session: boolean; asyncable: boolean; handler: MethodHandler }

const MAX_SESSIONS = 400
const TASK_LIMIT = 200

/** Performance and timing knobs (milliseconds, MiB/s); changed through `/_sim/knobs`. */
export interface Knobs {
  exportPerStreamMiBs: number | undefined
  exportHostMiBs: number | undefined
  snapshotMs: number
  attachMs: number
  detachLagMs: number
  bootMs: number
  toolsMs: number
  /** More snapshots than this queued on one SR make the excess fail with SR_BACKEND_FAILURE_82 (0 = off). */
  raceQueueLimit: number
  /** SM's garbage collector stuck: base copies with a single child stay visible (an unhealthy chain). */
  gcStuck: boolean
  /** Async calls fail with TOO_MANY_PENDING_TASKS while this many tasks are pending (0 = off). */
  maxPendingTasks: number
  /** Snapshots and clones of a disk whose visible chain is this deep fail with SR_BACKEND_FAILURE_109. */
  maxChainLength: number
}

export const DEFAULT_KNOBS: Knobs = {
  exportPerStreamMiBs: undefined, exportHostMiBs: undefined, snapshotMs: 50, attachMs: 0, detachLagMs: 0, bootMs: 50, toolsMs: 500,
  raceQueueLimit: 0, gcStuck: false, maxPendingTasks: 0, maxChainLength: 30,
}

export function xapiDate(date = new Date()): string {
  return date.toISOString().replace(/-/g, '').replace(/\.\d+Z$/, 'Z')
}

export class Toolstack {
  readonly sessions = new Map<string, { user: string; lastActive: number }>()
  readonly knobs: Knobs = { ...DEFAULT_KNOBS }
  /** Snapshots and exports in flight, and the most seen at once (GET /_sim/activity). */
  readonly activity = new Activity()
  /** Toolstack restarts so far: an operation that sees it change was cut by one. */
  restarts = 0
  private readonly methods = new Map<string, MethodSpec>()
  private readonly taskAborts = new Map<string, AbortController>()
  private readonly srQueues = new Map<string, { tail: Promise<void>; queued: number }>()

  constructor(
    readonly name: string,
    readonly db: Database,
    readonly store: DiskStore,
    readonly rates: RateLimiter,
    readonly faults: FaultBook,
    readonly credentials: { username: string; password: string },
  ) {}

  get poolRef(): string {
    return this.db.all('pool')[0]!
  }

  get masterRef(): string {
    return this.db.row('pool', this.poolRef).master as string
  }

  define(name: string, arity: number | number[], handler: MethodHandler, options: { session?: boolean; asyncable?: boolean } = {}): void {
    // Arity is given without the session; XAPI counts it in MESSAGE_PARAMETER_COUNT_MISMATCH.
    const session = options.session ?? true
    const counts = (typeof arity === 'number' ? [arity] : arity).map(count => count + (session ? 1 : 0))
    this.methods.set(name, { arity: counts, handler, session, asyncable: options.asyncable ?? false })
  }

  listMethods(): string[] {
    const names: string[] = []
    for (const [name, spec] of this.methods) {
      names.push(name)
      if (spec.asyncable) names.push(`Async.${name}`)
    }
    return names.sort()
  }

  async call(method: string, params: unknown[]): Promise<unknown> {
    const isAsync = method.startsWith('Async.')
    const spec = this.methods.get(isAsync ? method.slice(6) : method)
    if (spec === undefined || (isAsync && !spec.asyncable)) throw new ApiError('MESSAGE_METHOD_UNKNOWN', [method])
    if (!spec.arity.includes(params.length)) {
      throw new ApiError('MESSAGE_PARAMETER_COUNT_MISMATCH', [method, Math.max(...spec.arity), params.length])
    }
    const session = spec.session ? this.checkSession(params[0]) : ''
    const args = spec.session ? params.slice(1) : params
    if (!isAsync) {
      await this.faults.beforeCall(this, method, args)
      return spec.handler({ session, task: undefined, signal: undefined }, ...args)
    }
    const limit = this.knobs.maxPendingTasks
    if (limit > 0 && this.db.find('task', task => task.status === 'pending').length >= limit) {
      this.faults.log(this, 'tooManyPendingTasks', { method, limit })
      throw new ApiError('TOO_MANY_PENDING_TASKS', [])
    }
    // Async failures, injected ones included, land on the task as XAPI reports them.
    const task = this.createTask(method, '')
    void this.runTask(task, async context => {
      await this.faults.beforeCall(this, method, args)
      return spec.handler({ ...context, session }, ...args)
    })
    return task
  }

  checkSession(session: unknown): string {
    const entry = typeof session === 'string' ? this.sessions.get(session) : undefined
    if (entry === undefined) throw new ApiError('SESSION_INVALID', [String(session)])
    entry.lastActive = Date.now()
    return session as string
  }

  login(user: unknown, password: unknown): string {
    if (user !== this.credentials.username || password !== this.credentials.password) {
      throw new ApiError('SESSION_AUTHENTICATION_FAILED', [String(user), 'Authentication failure'])
    }
    const ref = `OpaqueRef:${randomUUID()}`
    this.sessions.set(ref, { user: user as string, lastActive: Date.now() })
    // XAPI invalidates the oldest sessions beyond its limit.
    for (const old of this.sessions.keys()) {
      if (this.sessions.size <= MAX_SESSIONS) break
      this.sessions.delete(old)
    }
    return ref
  }

  createTask(label: string, description: string): string {
    this.collectFinishedTasks()
    return this.db.create('task', { name_label: label, name_description: description, created: xapiDate(), resident_on: this.masterRef,
      allowed_operations: ['cancel'] })
  }

  /** XAPI's housekeeping: finished tasks go after 65 minutes, or oldest first beyond 200 of them. */
  private collectFinishedTasks(): void {
    const { db } = this
    const finished = db.find('task', task => task.status !== 'pending' && task.status !== 'cancelling')
    const cutoff = xapiDate(new Date(Date.now() - 65 * 60_000))
    const byAge = finished.sort((a, b) => String(db.row('task', a).finished).localeCompare(String(db.row('task', b).finished)))
    byAge.forEach((task, index) => {
      if (index < byAge.length - TASK_LIMIT || String(db.row('task', task).finished) < cutoff) db.delete('task', task)
    })
  }

  /** Runs an operation as the given task and records its outcome; a task that vanished meanwhile (restart) is left alone. */
  async runTask(task: string, operation: (context: TaskContext) => unknown): Promise<void> {
    const abort = new AbortController()
    this.taskAborts.set(task, abort)
    try {
      const result = await operation({ task, signal: abort.signal })
      this.finishTask(task, { status: 'success', result: result === undefined || result === '' ? '' : encodeXmlRpcValue(result) })
    } catch (error) {
      if (abort.signal.aborted) this.finishTask(task, { status: 'cancelled' })
      else {
        const failure = toApiError(error)
        this.finishTask(task, { status: 'failure', error_info: [failure.code, ...failure.params] })
      }
    } finally {
      this.taskAborts.delete(task)
    }
  }

  finishTask(task: string, patch: LabRecord): void {
    const status = this.db.has('task', task) ? this.db.row('task', task).status : undefined
    if (status !== 'pending' && status !== 'cancelling') return
    this.db.update('task', task, { progress: 1, finished: xapiDate(), allowed_operations: [], ...patch })
  }

  cancelTask(task: string): void {
    const record = this.db.row('task', task)
    if (record.status !== 'pending') return
    this.db.update('task', task, { status: 'cancelling' })
    const abort = this.taskAborts.get(task)
    if (abort !== undefined) abort.abort()
    else this.finishTask(task, { status: 'cancelled' })
  }

  /** Sets progress on a live task (a vanished task is ignored, as XAPI's own helpers do). */
  progress(task: string | undefined, value: number): void {
    if (task !== undefined && this.db.has('task', task) && this.db.row('task', task).status === 'pending') {
      this.db.update('task', task, { progress: Math.min(1, Math.max(0, value)) })
    }
  }

  /**
   * SM's per-SR lock around snapshot/clone: operations run one at a time for `snapshotMs` each; with the race knob on,
   * operations arriving when too many are queued fail as SM does when it cannot pause a VDI.
   */
  async srLocked<T>(sr: string, vdiUuid: string, operation: () => Promise<T>): Promise<T> {
    let queue = this.srQueues.get(sr)
    if (queue === undefined) this.srQueues.set(sr, (queue = { tail: Promise.resolve(), queued: 0 }))
    if (this.knobs.raceQueueLimit > 0 && queue.queued >= this.knobs.raceQueueLimit) {
      this.faults.log(this, 'snapshotRace', { sr, vdi: vdiUuid, queued: queue.queued })
      throw new ApiError('SR_BACKEND_FAILURE_82', ['', `Failed to snapshot VDI [opterr=failed to pause VDI ${vdiUuid}]`, ''])
    }
    queue.queued++
    const previous = queue.tail
    let release!: () => void
    queue.tail = new Promise(resolve => (release = resolve))
    try {
      await previous
      await delay(this.knobs.snapshotMs)
      return await operation()
    } finally {
      queue.queued--
      release()
    }
  }

  /**
   * What a toolstack restart loses: every session, every task, and every object's current_operations (none of them
   * persisted: cancel_tasks.ml). Operations in flight die with the process, their clean-ups too.
   */
  dropVolatileState(): void {
    this.restarts++
    this.sessions.clear()
    for (const abort of this.taskAborts.values()) abort.abort()
    this.taskAborts.clear()
    this.db.forget('task')
    for (const cls of ['VM', 'VDI', 'SR', 'VBD']) {
      for (const ref of this.db.find(cls, record => Object.keys(record.current_operations as object).length > 0)) this.db.update(cls, ref, { current_operations: {} })
    }
  }

  ref(cls: string, value: unknown): string {
    if (typeof value !== 'string' || !this.db.has(cls, value)) throw new ApiError('HANDLE_INVALID', [cls, String(value)])
    return value
  }

  isNull(ref: unknown): boolean {
    return ref === NULL_REF || ref === '' || ref === undefined
  }
}

export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal!.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
