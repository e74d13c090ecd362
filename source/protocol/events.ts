// Notifications the daemon pushes to subscribed clients (JSON-RPC messages without an id).
// A client that falls behind gets `resync` instead of the dropped ones and refetches with *.list.
import type { TaskEvent } from '../tasks/task.ts'
import type { LanesSnapshot } from './methods.ts'

export type { TaskEvent }

export type StateKind = 'jobs' | 'remotes' | 'pools' | 'runs' | 'proxies'

export interface Notifications {
  /** `seq`: the event's index in the run's log (run.get's `eventCount` tells which ones its tree already holds). */
  'task.event': { runId: string; event: TaskEvent; seq: number }
  lanes: { snapshot: LanesSnapshot }
  'state.changed': { kind: StateKind }
  resync: { reason: string }
}

export type NotificationName = keyof Notifications

/** Lane snapshots are sent at most this often (ms between two). */
export const LANES_INTERVAL_MS = 250
