// A run's task tree as it happens: tasks emit XO-shaped events (start, info, warning, property, end)
// to subscribers; the tree itself is rebuilt from those events by foldEvents (fold.ts).
import { randomBytes } from 'node:crypto'
import { LifeboatError, errorCode, serializeError, type SerializedError } from '../util/errors.ts'
import { abortReason, unwrapAbort } from '../util/abort.ts'

export type TaskData = Record<string, unknown>
/** 'interrupted': the task was still going where it ran when that place was lost (a proxy that died mid-run). */
export type EndStatus = 'success' | 'failure' | 'cancelled' | 'interrupted'

interface EventBase {
  id: string
  parentId?: string
  timestamp: number
}
export type TaskEvent =
  | (EventBase & { type: 'start'; properties: { name: string } & TaskData })
  | (EventBase & { type: 'info' | 'warning'; message: string; data?: unknown })
  | (EventBase & { type: 'property'; name: string; value: unknown })
  | (EventBase & { type: 'end'; status: EndStatus; result?: unknown })

/** An event as a task describes it, before the log stamps it with ids and time. */
type TaskEventBody = TaskEvent extends infer E ? (E extends EventBase ? Omit<E, keyof EventBase> : never) : never

export type TaskListener = (event: TaskEvent) => void

/** A task error as logged: our coded form, with the sub-errors of an AggregateError. */
export type TaskError = SerializedError

/** XO's task id: sortable by creation time, unique within a process and across restarts. */
export function newTaskId(now = Date.now()): string {
  return `${now.toString(36).padStart(9, '0')}-${randomBytes(6).toString('hex')}`
}

export interface TaskLogOptions {
  now?: () => number
}

/** One run's log: its root task, the events emitted so far (for late subscribers) and the subscribers. */
export class TaskLog {
  readonly events: TaskEvent[] = []
  readonly #listeners = new Set<TaskListener>()
  readonly now: () => number

  constructor(options: TaskLogOptions = {}) {
    this.now = options.now ?? Date.now
  }

  /**
   * Starts a run: the root task, whose id is the runId. `resume` starts again the root of a run begun by an
   * earlier process (its id and start time), whose events are then replayed under it.
   */
  static start(properties: { name: string; data?: TaskData }, options: TaskLogOptions & { onEvent?: TaskListener; resume?: { id: string; start: number } } = {}): Task {
    const log = new TaskLog(options)
    if (options.onEvent !== undefined) log.subscribe(options.onEvent)
    if (options.resume === undefined) return log.startTask(properties.name, properties.data)
    const root = new Task(log, options.resume.id, properties.name)
    log.emit({ type: 'start', id: root.id, timestamp: options.resume.start, properties: { ...properties.data, name: properties.name } })
    return root
  }

  subscribe(listener: TaskListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  startTask(name: string, data: TaskData = {}, parent?: Task): Task {
    const timestamp = this.now()
    const task = new Task(this, newTaskId(timestamp), name, parent)
    this.emit({ type: 'start', id: task.id, ...(parent && { parentId: parent.id }), timestamp, properties: { ...data, name } })
    return task
  }

  emit(event: TaskEvent): void {
    this.events.push(event)
    // A subscriber that throws (a closed socket…) must not break the backup it is watching.
    for (const listener of this.#listeners) {
      try {
        listener(event)
      } catch {
        this.#listeners.delete(listener)
      }
    }
  }
}

export class Task {
  readonly log: TaskLog
  readonly id: string
  readonly name: string
  readonly parent: Task | undefined
  #ended = false

  constructor(log: TaskLog, id: string, name: string, parent?: Task) {
    this.log = log
    this.id = id
    this.name = name
    this.parent = parent
  }

  /** The root task's id, which identifies the run. */
  get runId(): string {
    return this.parent === undefined ? this.id : this.parent.runId
  }

  get ended(): boolean {
    return this.#ended
  }

  child(name: string, data?: TaskData): Task {
    this.#assertRunning('start a subtask')
    return this.log.startTask(name, data, this)
  }

  info(message: string, data?: unknown): void {
    this.#emit({ type: 'info', message, ...(data !== undefined && { data }) })
  }

  warning(message: string, data?: unknown): void {
    this.#emit({ type: 'warning', message, ...(data !== undefined && { data }) })
  }

  /** Sets a live property (progress 0–100, size, speed…). */
  set(name: string, value: unknown): void {
    this.#emit({ type: 'property', name, value })
  }

  end(result?: unknown): void {
    this.#finish('success', result)
  }

  /** Ends the task with an error: cancelled when the error is a cancellation (an abort stands for its coded reason), failed otherwise. */
  fail(error: unknown): void {
    const coded = unwrapAbort(error)
    this.#finish(errorCode(coded) === 'CANCELLED' ? 'cancelled' : 'failure', serializeError(coded))
  }

  /** Ends the task interrupted: it was going where it ran when that place was lost; `error` says how. */
  interrupt(error: unknown): void {
    this.#finish('interrupted', serializeError(error))
  }

  /**
   * Runs fn inside this task and ends it with fn's outcome: its result, or its error (once the given
   * signal has aborted, the abort's reason: whatever broke on the way out is the cancel's doing).
   * The error is rethrown so callers can react.
   */
  async run<T>(fn: (task: Task) => Promise<T>, options: { signal?: AbortSignal } = {}): Promise<T> {
    try {
      const result = await fn(this)
      this.end(result)
      return result
    } catch (error) {
      this.fail(options.signal?.aborted === true ? abortReason(options.signal) : error)
      throw error
    }
  }

  #finish(status: EndStatus, result: unknown): void {
    this.#emit({ type: 'end', status, ...(result !== undefined && { result }) })
    this.#ended = true
  }

  #emit(event: Exclude<TaskEventBody, { type: 'start' }>): void {
    this.#assertRunning(event.type === 'end' ? 'end it' : `log a ${event.type}`)
    this.log.emit({ ...event, id: this.id, ...(this.parent && { parentId: this.parent.id }), timestamp: this.log.now() } as TaskEvent)
  }

  #assertRunning(action: string): void {
    if (this.#ended) {
      throw new LifeboatError('TASK_ENDED', `The task "${this.name}" (${this.id}) has already ended; cannot ${action}. This is a bug in Lifeboat.`)
    }
  }
}
