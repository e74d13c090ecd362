// Rebuilds a run's task tree from its events (a client joining late, a restarted daemon) and applies
// XO's status rules: skipped failures, parents failed or skipped by their children, interrupted runs; and
// Lifeboat's for health checks: a check's status is its own, shown beside its ancestors' (`healthCheck`).
import type { TaskData, TaskEvent } from './task.ts'

export type TaskStatus = 'success' | 'failure' | 'skipped' | 'interrupted' | 'pending' | 'cancelled'

export interface TaskLogEntry {
  message: string
  data?: unknown
  timestamp: number
}

/** A task in XO's log shape: `message` is the task name, `data` its other start properties. */
export interface TaskNode {
  id: string
  parentId?: string
  message: string
  data?: TaskData
  start: number
  end?: number
  duration?: number
  status: TaskStatus
  result?: unknown
  /** On a run (a root): the time of the last event of its tree, where an interrupted run ends. */
  updatedAt?: number
  properties?: Record<string, unknown>
  /**
   * On a task whose tree holds health checks (a target's export, a VM, the run): the worst of their statuses. A
   * health check that fails or times out leaves its parents' status alone: the backup exists, it is not verified.
   */
  healthCheck?: TaskStatus
  infos?: TaskLogEntry[]
  warnings?: TaskLogEntry[]
  tasks?: TaskNode[]
}

/** The name of a health check's task (XO's): its status does not fold into its parent's. */
export const HEALTH_CHECK_TASK = 'health check'

/** Failure messages XO reports as "skipped" rather than "failure" (nothing was wrong, nothing to do). */
export const SKIP_MESSAGES: ReadonlySet<string> = new Set(['no disks found', 'no VMs match this pattern', 'unhealthy VDI chain'])

export function isSkipResult(result: unknown): boolean {
  return typeof result === 'object' && result !== null && SKIP_MESSAGES.has((result as { message?: unknown }).message as string)
}

/**
 * Folds events into trees as they come, one per root task (normally one: the run). Events of unknown tasks
 * are ignored so that a truncated or interleaved event log still yields what it can. A live follower asks
 * `status` when a task ends: the status its tree gives it, its children's failures included.
 */
export class TaskFold {
  readonly roots: TaskNode[] = []
  readonly #nodes = new Map<string, TaskNode>()
  readonly #rootOf = new Map<string, TaskNode>()

  /** Takes in a tree folded earlier (what the daemon returned before the live events). */
  adopt(tree: TaskNode): void {
    const walk = (node: TaskNode, root: TaskNode) => {
      this.#nodes.set(node.id, node)
      this.#rootOf.set(node.id, root)
      for (const child of node.tasks ?? []) walk(child, root)
    }
    const copy = structuredClone(tree)
    this.roots.push(copy)
    walk(copy, copy)
  }

  add(event: TaskEvent): void {
    if (event.type === 'start') {
      const { name, ...data } = event.properties
      const node: TaskNode = { id: event.id, message: String(name), start: event.timestamp, status: 'pending' }
      if (Object.keys(data).length > 0) node.data = data
      if (event.parentId !== undefined) node.parentId = event.parentId
      this.#nodes.set(event.id, node)
      const parent = event.parentId === undefined ? undefined : this.#nodes.get(event.parentId)
      if (parent === undefined) this.roots.push(node)
      else (parent.tasks ??= []).push(node)
      const root = parent === undefined ? node : this.#rootOf.get(parent.id)!
      this.#rootOf.set(event.id, root)
      root.updatedAt = Math.max(root.updatedAt ?? 0, event.timestamp)
      return
    }
    const node = this.#nodes.get(event.id)
    if (node === undefined) return
    const root = this.#rootOf.get(event.id)!
    root.updatedAt = Math.max(root.updatedAt ?? 0, event.timestamp)
    switch (event.type) {
      case 'info':
        ;(node.infos ??= []).push(logEntry(event))
        break
      case 'warning':
        ;(node.warnings ??= []).push(logEntry(event))
        break
      case 'property':
        ;(node.properties ??= {})[event.name] = event.value
        break
      case 'end':
        node.end = event.timestamp
        node.duration = event.timestamp - node.start
        node.status = event.status === 'failure' && isSkipResult(event.result) ? 'skipped' : event.status
        if (event.result !== undefined) node.result = event.result
        break
    }
  }

  /**
   * A task's status as its tree shows it (a VM whose export failed has failed, though it ended normally), with
   * the status of the health checks it holds.
   */
  settled(id: string): Pick<TaskNode, 'status' | 'healthCheck'> | undefined {
    const node = this.#nodes.get(id)
    if (node === undefined) return undefined
    settleStatus(node)
    return { status: node.status, ...(node.healthCheck !== undefined && { healthCheck: node.healthCheck }) }
  }
}

/** Folds a whole event log into its trees, statuses settled. */
export function foldEvents(events: Iterable<TaskEvent>): TaskNode[] {
  const fold = new TaskFold()
  for (const event of events) fold.add(event)
  for (const root of fold.roots) settleStatus(root)
  return fold.roots
}

/** The tree of one run (the first root), or undefined when the events hold no task. */
export function foldRun(events: Iterable<TaskEvent>): TaskNode | undefined {
  return foldEvents(events)[0]
}

function logEntry(event: { message: string; data?: unknown; timestamp: number }): TaskLogEntry {
  return { message: event.message, ...(event.data !== undefined && { data: event.data }), timestamp: event.timestamp }
}

// Severity when a finished parent takes its status from its children: a failed child fails the parent,
// a cancelled one cancels it, a skipped one makes it skipped (XO: "a parent is skipped if any child is").
const SEVERITY: Record<TaskStatus, number> = { success: 0, pending: 0, skipped: 1, cancelled: 2, interrupted: 3, failure: 4 }

// The same for the health checks a task holds, where a check still going outweighs the ones that passed.
const CHECK_SEVERITY: Record<TaskStatus, number> = { success: 0, pending: 1, skipped: 1, cancelled: 2, interrupted: 3, failure: 4 }

function settleStatus(node: TaskNode): void {
  if (node.tasks === undefined) return
  for (const child of node.tasks) settleStatus(child)
  node.tasks.sort((a, b) => (a.end ?? Infinity) - (b.end ?? Infinity) || a.start - b.start)
  const checks = node.tasks.flatMap(child => (child.message === HEALTH_CHECK_TASK ? [child.status] : child.healthCheck !== undefined ? [child.healthCheck] : []))
  if (checks.length > 0) node.healthCheck = checks.reduce((worst, status) => (CHECK_SEVERITY[status] > CHECK_SEVERITY[worst] ? status : worst))
  if (node.status === 'pending' || node.status === 'interrupted') return
  for (const child of node.tasks) {
    if (child.message === HEALTH_CHECK_TASK || supersededByRetry(child, node.tasks)) continue
    if (SEVERITY[child.status] > SEVERITY[node.status]) node.status = child.status
  }
}

/** XO's rule: a failed task followed by a successful one of the same name and subject (a VM retried) does not fail its parent. */
function supersededByRetry(child: TaskNode, siblings: TaskNode[]): boolean {
  if (child.status !== 'failure' || child.data?.id === undefined) return false
  return siblings.some(other => other !== child && other.status === 'success' && other.message === child.message && other.data?.id === child.data?.id && other.start >= child.start)
}

/**
 * Marks every unfinished task of a tree interrupted (the daemon stopped while the run was going): the
 * run cannot be resumed, and leaving it "pending" would show a run that is not happening. Each ends at
 * the run's last recorded event, the last moment it is known to have been going.
 */
export function markInterrupted(node: TaskNode, reason: string): TaskNode {
  const end = node.updatedAt ?? lastTimestamp(node)
  const walk = (task: TaskNode): TaskNode => {
    const tasks = task.tasks?.map(walk)
    const out: TaskNode = { ...task, ...(tasks && { tasks }) }
    if (task.healthCheck === 'pending') out.healthCheck = 'interrupted'
    if (task.status === 'pending') {
      out.status = 'interrupted'
      out.result = { code: 'INTERRUPTED', message: reason }
      out.end = Math.max(end, task.start)
      out.duration = out.end - task.start
    }
    return out
  }
  return walk(node)
}

/** The latest time a tree records (for logs saved before `updatedAt` existed). */
function lastTimestamp(node: TaskNode): number {
  const own = [node.start, node.end ?? 0, ...(node.infos ?? []).map(e => e.timestamp), ...(node.warnings ?? []).map(e => e.timestamp)]
  return Math.max(...own, ...(node.tasks ?? []).map(lastTimestamp))
}
