// The slice of the daemon protocol the TUI uses, under the names its screens read. Types only: the TUI
// never loads the daemon's code, and the protocol (source/protocol) is the single definition.
import type { JobInfo, Methods, MethodName as ProtocolMethodName } from '../protocol/methods.ts'
import type { NotificationName as ProtocolNotificationName, Notifications } from '../protocol/events.ts'

export type { BackupListEntry, JobInfo, Lane, LaneHolder, LanesSnapshot, Pool, Proxy, Remote, RestorePoint, RunStatus, RunSummary, Sr, TaskNode, Vm } from '../protocol/methods.ts'
export type { StateKind, TaskEvent } from '../protocol/events.ts'
export type { JobInput } from '../protocol/job.ts'

export type Job = JobInfo['job']
export type SmartSelection = Extract<Job['vms'], { smart: unknown }>['smart']
export type TuiMethods = Methods
export type MethodName = ProtocolMethodName
export type TuiNotifications = Notifications
export type NotificationName = ProtocolNotificationName

/** A job's id (the daemon always gives one; the name stands in for a job not saved yet). */
export function jobIdOf(job: Job): string {
  return job.id ?? job.name
}
