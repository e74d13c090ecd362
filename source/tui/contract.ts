// The slice of the daemon protocol (.helpers/contract-protocol.md) the TUI reads and writes. Declared here
// until source/protocol/methods.ts lands; names are the contract's, so the real types drop in unchanged.
import type { TaskNode } from '../tasks/fold.ts'
import type { TaskEvent } from '../tasks/task.ts'

export type { TaskNode, TaskEvent }

export type PowerState = 'Running' | 'Halted' | 'Suspended' | 'Paused'
export type RunStatus = 'pending' | 'success' | 'failure' | 'skipped' | 'interrupted' | 'cancelled'
export interface ErrorInfo {
  code: string
  message: string
}

export interface Pool {
  id: string
  name: string
  url: string
  username: string
  status: 'connected' | 'connecting' | 'error'
  error?: ErrorInfo
  hosts: number
}
export interface Vm {
  uuid: string
  name: string
  poolId: string
  poolName: string
  powerState: PowerState
  tags: string[]
  disks: Array<{ uuid: string; name: string; size: number; srId: string }>
  hasTools: boolean
}
export interface Sr {
  uuid: string
  name: string
  poolId: string
  poolName: string
  type: string
  size: number
  used: number
  free: number
  shared: boolean
}
export interface Remote {
  name: string
  url: string
  type: 'file' | 'nfs' | 'smb' | 's3' | 'azure'
  status: 'ok' | 'error'
  error?: ErrorInfo
  space?: { size: number; used: number; free: number }
}

export interface SmartSelection {
  pools: string[]
  notPools: string[]
  tags: string[]
  notTags: string[]
  powerState?: 'running' | 'halted' | 'suspended' | 'paused'
}
export interface JobSettings {
  concurrency?: number
  timeout?: number | string | null
  compression?: 'none' | 'gzip' | 'zstd'
  fullInterval?: number
  forceFull?: boolean
  offlineSnapshot?: boolean
  checkpointSnapshot?: boolean
  deleteFirst?: boolean
  distributeBackups?: boolean
  distributeReplications?: boolean
  [setting: string]: unknown
}
export interface Schedule {
  id?: string
  name: string
  cron: string
  timezone: string
  enabled?: boolean
  retention?: { backups?: number; replicas?: number; snapshots?: number }
  fullInterval?: number
  settings?: JobSettings
}
export interface Job {
  id?: string
  name: string
  mode: 'full' | 'delta'
  vms: { uuids: string[] } | { smart: SmartSelection }
  remotes?: string[]
  srs?: string[]
  settings?: JobSettings
  overrides?: unknown
  schedules: Schedule[]
}
export type JobInput = Job

export interface RunSummary {
  runId: string
  kind: 'backup' | 'restore'
  jobId?: string
  jobName?: string
  scheduleName?: string
  start: number
  end?: number
  status: RunStatus
  vms?: number
  size?: number
}
export interface JobInfo {
  job: Job & { id: string }
  enabled: boolean
  running?: string
  lastRun?: RunSummary
  nextRun?: number
}
export interface RestorePoint {
  id: string
  vmUuid: string
  vmName: string
  date: string
  timestamp: number
  mode: 'full' | 'delta'
  size: number | undefined
  jobId: string
  scheduleId: string
}

export interface LaneHolder {
  runId: string
  jobId?: string
  jobName?: string
  vm: string
  vmName?: string
  disk?: string
  phase: string
  since: number
  done?: number
  total?: number
  bytesPerSecond?: number
  targets?: Record<string, { done: number; state: string }>
}
export interface Lane {
  limit: number
  holders: LaneHolder[]
  waiting: Array<{ runId: string; vm: string; vmName?: string; disk?: string; phase: string }>
}
export interface LanesSnapshot {
  at: number
  pools: Array<{ poolId: string; poolName: string; snapshots: Lane; vdiExports: Lane; vmExports: Lane }>
  totalBytesPerSecond: number
}

type Topic = 'tasks' | 'lanes' | 'state'

/** Each method the TUI calls: its params and its result. */
export interface TuiMethods {
  'daemon.info': { params: Record<string, never>; result: { version: string; pid: number; dataDir: string; socket: string; startedAt: number } }
  'pool.add': { params: { url: string; username: string; password: string }; result: Pool }
  'pool.list': { params: Record<string, never>; result: Pool[] }
  'pool.remove': { params: { id: string }; result: Record<string, never> }
  'vm.list': { params: { pool?: string }; result: Vm[] }
  'sr.list': { params: { pool?: string }; result: Sr[] }
  'remote.add': { params: { name: string; url: string }; result: Remote }
  'remote.list': { params: Record<string, never>; result: Remote[] }
  'remote.test': { params: { name: string }; result: { ok: true; writeMiBps: number; readMiBps: number; bytes: number } }
  'remote.remove': { params: { name: string }; result: Record<string, never> }
  'job.create': { params: { job: JobInput }; result: JobInfo }
  'job.update': { params: { id: string; job: JobInput }; result: JobInfo }
  'job.get': { params: { id: string }; result: JobInfo }
  'job.list': { params: Record<string, never>; result: JobInfo[] }
  'job.delete': { params: { id: string }; result: Record<string, never> }
  'job.setEnabled': { params: { id: string; enabled: boolean }; result: JobInfo }
  'job.run': { params: { id: string; schedule?: string }; result: { runId: string } }
  'run.list': { params: { jobId?: string; limit?: number; status?: RunStatus }; result: RunSummary[] }
  'run.get': { params: { runId: string }; result: { summary: RunSummary; tree: TaskNode } }
  'run.cancel': { params: { runId: string }; result: Record<string, never> }
  'backup.list': { params: { remote: string; vm?: string }; result: RestorePoint[] }
  'restore.start': { params: { remote: string; backupId: string; sr: string; name?: string; start?: boolean }; result: { runId: string } }
  'lanes.get': { params: Record<string, never>; result: LanesSnapshot }
  subscribe: { params: { topics: Topic[]; runId?: string }; result: { subscribed: string[] } }
  unsubscribe: { params: { topics: Topic[] }; result: Record<string, never> }
}
export type MethodName = keyof TuiMethods

/** Each notification the TUI listens to: its params. */
export interface TuiNotifications {
  'task.event': { runId: string; event: TaskEvent }
  lanes: { snapshot: LanesSnapshot }
  'state.changed': { kind: 'jobs' | 'remotes' | 'pools' | 'runs' }
  resync: { reason: string }
}
export type NotificationName = keyof TuiNotifications
