// Every daemon method: its params as a zod schema (checked by the daemon, typed for the clients) and
// the shape of its result. Names and fields are the contract with the TUI and the CLI: add, never rename.
import { z } from 'zod'
import type { TaskNode } from '../tasks/fold.ts'
import type { RestorePoint } from '../repository/listing.ts'
import type { VerifyFinding } from '../repository/verify.ts'
import type { Job, JobInput } from './job.ts'
import type { JobPlan } from './plan.ts'
import { settingsInputSchema } from './settings.ts'
import { fileRestoreParams, type FileRestoreResults } from './file-restore.ts'
import { PROXY_NAME, type Proxy, type ProxyTestResult } from './proxy.ts'

export type { TaskNode, RestorePoint, VerifyFinding, Proxy, ProxyTestResult }
export type { FileRestoreDisk, FileRestoreVolume, FileRestoreEntry } from './file-restore.ts'

const text = (what: string) => z.string({ error: `${what} must be a text.` }).min(1, { error: `${what} must not be empty.` }).max(2000, { error: `${what} is too long.` })
const none = z.strictObject({}).optional()

export const RUN_STATUSES = ['pending', 'success', 'failure', 'skipped', 'interrupted', 'cancelled'] as const
export type RunStatus = (typeof RUN_STATUSES)[number]

export const SUBSCRIPTION_TOPICS = ['tasks', 'lanes', 'state'] as const
export type SubscriptionTopic = (typeof SUBSCRIPTION_TOPICS)[number]

export interface CodedError {
  code: string
  message: string
}

export interface DaemonInfo {
  version: string
  pid: number
  dataDir: string
  socket: string
  startedAt: number
  readonly: false
}

export interface Pool {
  /** The pool uuid ('' until the first connection tells it). */
  id: string
  name: string
  url: string
  username: string
  status: 'connected' | 'connecting' | 'error'
  error?: CodedError
  hosts: number
}

export interface VmDisk {
  uuid: string
  name: string
  size: number
  srId: string
}

export interface Vm {
  uuid: string
  name: string
  poolId: string
  poolName: string
  powerState: 'Running' | 'Halted' | 'Suspended' | 'Paused'
  tags: string[]
  disks: VmDisk[]
  hasTools: boolean
  /** Its snapshots, oldest first (what cr-seed picks a base from). */
  snapshots?: VmSnapshot[]
  /** Listed with `templates`: a custom template (an imported snapshot XVA comes in as one: a cr-seed target). */
  template?: true
}

export interface VmSnapshot {
  uuid: string
  name: string
  /** XAPI's snapshot_time, ms epoch. */
  time: number
  disks: VmDisk[]
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
  /** Secrets (passwords, keys) replaced by '***'. */
  url: string
  type: 'file' | 'nfs' | 'smb' | 's3' | 'azure'
  status: 'ok' | 'error'
  error?: CodedError
  space?: { size: number; used: number; free: number }
  /** The proxy it lives on (`remote add --proxy`): opened there, reached through it. */
  proxy?: string
}

export interface RemoteTestResult {
  ok: true
  writeMiBps: number
  /** The whole probe read back (and compared with what was written). */
  readMiBps: number
  bytes: number
  /** A ranged read of the probe (compared too): where it started and how many bytes. */
  range: { start: number; length: number; ms: number }
  /** Milliseconds, the median of `samples` small (4 KiB) writes, reads, stats and deletes: what a backup's many small files cost. */
  latencyMs: { write: number; read: number; stat: number; delete: number }
  samples: number
}

/** What a backend does, in an administrator's words (from the handler's capabilities). */
export interface RemoteCapabilities {
  /** How a file becomes visible whole: renamed into place, or (object stores) written last. */
  commit: 'rename' | 'written last'
  locks: 'lock folder' | 'lock object' | 'lease'
  /** Delta merges: in place in a VHD file, or block copies of a VhdDirectory. */
  merges: 'in place' | 'block copies'
  freeSpaceKnown: boolean
  maxObjectSize?: number
  connections: number
}

export interface RemoteInfo extends Remote {
  /** encryptionKey is set: backups are encrypted at rest. */
  encryption: boolean
  /** Delta backups written as VhdDirectory (forced on S3 and Azure, as in XO). */
  vhdDirectory: boolean
  capabilities: RemoteCapabilities
}

/** A restore point's last verification (kept by the daemon, never on the remote): absent, never verified. */
export interface VerificationState {
  status: 'verified' | 'failed'
  /** When it was judged (ms epoch). */
  at: number
  /** Every block and chunk was read back, not only the structure. */
  readData: boolean
  runId: string
  /** What failed (the first few); empty when verified. */
  findings: VerifyFinding[]
  /** What was checked for structure only, for information (disks without block hashes); absent: none. */
  notes?: VerifyFinding[]
}

/** The daemon's ssh key for its proxies, and the line the proxy's authorized_keys takes (restricted to the bridge). */
export interface ProxyKey {
  publicKey: string
  authorizedKeysLine: string
}

/** proxy.add: the proxy registered (host key pinned) and its first test, or why that test failed (the proxy is kept). */
export interface ProxyAddResult extends ProxyKey {
  proxy: Proxy
  test?: ProxyTestResult
  problem?: CodedError
}

export type BackupListEntry = RestorePoint & { verification?: VerificationState }

export interface RunSummary {
  runId: string
  /** A health check run is a manual check of one restore point (backup.check); a backup run's checks are in its tree. */
  kind: 'backup' | 'mirror' | 'restore' | 'health check' | 'verify' | 'file-restore'
  /** The proxy the run executes on; absent: the appliance. */
  proxy?: string
  jobId?: string
  jobName?: string
  scheduleName?: string
  start: number
  end?: number
  status: RunStatus
  /**
   * The worst status of the run's health checks, when it made any (the root's TaskNode.healthCheck): a backup run
   * that succeeded keeps `status: 'success'` whatever its checks gave, and says here that a backup is not verified.
   */
  healthCheck?: RunStatus
  /** The remote backups the run health-checked (their ids as backup.list gives them) and how each check ended. */
  checkedBackups?: Array<{ backupId: string; status: RunStatus }>
  vms?: number
  size?: number
}

const CHECK_WORDS: Record<RunStatus, string> = { success: 'passed', failure: 'failed', cancelled: 'cancelled', interrupted: 'interrupted', pending: 'running', skipped: 'skipped' }

/** A health check's status in words: "health check failed". */
export function healthCheckText(status: RunStatus): string {
  return `health check ${CHECK_WORDS[status]}`
}

/** A run's status in words, its health checks' beside it ("success, health check failed"); a health check run's status is the check's. */
export function runStatusText(run: Pick<RunSummary, 'kind' | 'status' | 'healthCheck'>): string {
  return run.healthCheck === undefined || run.kind === 'health check' ? run.status : `${run.status}, ${healthCheckText(run.healthCheck)}`
}

export interface JobInfo {
  /** The job with its id and its schedules' ids. */
  job: Job
  enabled: boolean
  /** The runId of the run in progress. */
  running?: string
  lastRun?: RunSummary
  /** When a schedule fires next (ms epoch); absent when disabled or no schedule is enabled. */
  nextRun?: number
}

export interface CrSeedDisk {
  /** The VBD position both VMs share. */
  userdevice: string
  size: number
  /** The source snapshot's VDI (the next delta's base). */
  snapshotVdi: string
  /** The target VM's VDI, marked xo:copy_of = snapshotVdi. */
  targetVdi: string
}

/** What cr-seed marked: the snapshot as the job's exported base, the target VM as its replica on the SR. */
export interface CrSeedResult {
  jobId: string
  scheduleId: string
  vmUuid: string
  snapshotUuid: string
  targetVmUuid: string
  /** The replica's new name. */
  targetVmName: string
  srUuid: string
  poolId: string
  disks: CrSeedDisk[]
}

export interface LaneHolder {
  runId: string
  jobId?: string
  jobName?: string
  /** A delegated run's slot: the proxy it is held for. */
  proxy?: string
  vm: string
  vmName?: string
  disk?: string
  phase: string
  since: number
  done?: number
  total?: number
  bytesPerSecond?: number
  targets?: Record<string, { done: number; state: 'writing' | 'done' | 'failed' }>
}

export interface LaneWaiter {
  runId: string
  vm: string
  vmName?: string
  disk?: string
  phase: string
}

export interface Lane {
  limit: number
  holders: LaneHolder[]
  waiting: LaneWaiter[]
}

export interface LanesSnapshot {
  at: number
  pools: Array<{ poolId: string; poolName: string; snapshots: Lane; vdiExports: Lane; vmExports: Lane }>
  /** Remotes being read by runs without a pool (mirror copies, verifies), while they are: one holder per VM at work. */
  remotes?: Array<{ remote: string; reads: Lane }>
  totalBytesPerSecond: number
}

/** Params schemas, one per method. */
export const methodParams = {
  'daemon.info': none,
  'pool.add': z.strictObject({ url: text('url'), username: text('username'), password: z.string({ error: 'password must be a text.' }).max(2000) }),
  'pool.list': none,
  'pool.remove': z.strictObject({ id: text('id') }),
  'vm.list': z.strictObject({ pool: text('pool').optional(), templates: z.boolean({ error: 'templates must be true or false.' }).optional() }).optional(),
  'sr.list': z.strictObject({ pool: text('pool').optional() }).optional(),
  'remote.add': z.strictObject({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { error: 'a remote name is 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit.' }), url: text('url'), proxy: text('proxy').optional() }),
  'remote.list': none,
  'remote.test': z.strictObject({ name: text('name'), bytes: z.number().int().min(1).max(1024 * 1024 * 1024).optional() }),
  'remote.info': z.strictObject({ name: text('name') }),
  'remote.remove': z.strictObject({ name: text('name') }),
  // The job itself is validated by parseJob (one sentence per field), not here.
  /** fingerprint: the host key the administrator checked on the proxy's console (refused if not offered); replace: pin again. */
  'proxy.add': z.strictObject({
    name: PROXY_NAME,
    url: text('url'),
    fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, { error: 'a fingerprint is SHA256: and 43 characters, as ssh-keygen -l prints it.' }).optional(),
    replace: z.boolean().optional(),
  }),
  'proxy.list': none,
  'proxy.test': z.strictObject({ name: text('name') }),
  'proxy.remove': z.strictObject({ name: text('name') }),
  'proxy.key': none,
  'job.create': z.strictObject({ job: z.unknown() }),
  'job.update': z.strictObject({ id: text('id'), job: z.unknown() }),
  'job.get': z.strictObject({ id: text('id') }),
  'job.list': none,
  'job.delete': z.strictObject({ id: text('id') }),
  'job.setEnabled': z.strictObject({ id: text('id'), enabled: z.boolean({ error: 'enabled must be true or false.' }) }),
  'job.run': z.strictObject({ id: text('id'), schedule: text('schedule').optional() }),
  /**
   * What the next run of the schedule (default: the first) would do, and what would stop it; changes nothing.
   * `id`: a saved job; `job`: a draft (the wizard's), checked as job.create would, with `id` when it edits that job.
   */
  'job.plan': z
    .strictObject({ id: text('id').optional(), job: z.unknown().optional(), schedule: text('schedule').optional() })
    .refine(params => params.id !== undefined || params.job !== undefined, { error: 'give the id of a job, or a job to plan.' }),
  /** XO's cr-seed: vm by uuid or unique name; snapshot and targetVm by uuid; schedule by name or id (default: the first). */
  'job.crSeed': z.strictObject({ id: text('id'), schedule: text('schedule').optional(), vm: text('vm'), snapshot: text('snapshot'), targetVm: text('targetVm') }),
  'run.list': z.strictObject({ jobId: text('jobId').optional(), limit: z.number().int().min(1).max(100_000).optional(), status: z.enum(RUN_STATUSES).optional() }).optional(),
  'run.get': z.strictObject({ runId: text('runId') }),
  'run.cancel': z.strictObject({ runId: text('runId') }),
  'backup.list': z.strictObject({ remote: text('remote'), vm: text('vm').optional() }),
  'restore.start': z.strictObject({ remote: text('remote'), backupId: text('backupId'), sr: text('sr'), name: text('name').optional(), start: z.boolean().optional() }),
  /** A manual health check of a restore point (XO's checkVmBackupNg): timeout a duration ("10m", default XO's 10 min) or ms. */
  'backup.check': z.strictObject({ remote: text('remote'), backupId: text('backupId'), sr: text('sr'), timeout: settingsInputSchema.shape.healthCheckTimeout }),
  /** Verifies the backups on a remote (all its VMs, or these), as a run; it only reads. */
  'remote.verify': z.strictObject({ remote: text('remote'), vms: z.array(text('a VM uuid')).max(10_000).optional(), readData: z.boolean({ error: 'readData must be true or false.' }).optional() }),
  ...fileRestoreParams,
  'lanes.get': none,
  subscribe: z.strictObject({ topics: z.array(z.enum(SUBSCRIPTION_TOPICS)).max(10), runId: text('runId').optional() }),
  unsubscribe: z.strictObject({ topics: z.array(z.enum(SUBSCRIPTION_TOPICS)).max(10) }),
} as const

export type MethodName = keyof typeof methodParams

type Empty = Record<string, never>

/** What each method returns. */
export interface MethodResults extends FileRestoreResults {
  'daemon.info': DaemonInfo
  'pool.add': Pool
  'pool.list': Pool[]
  'pool.remove': Empty
  'vm.list': Vm[]
  'sr.list': Sr[]
  'remote.add': Remote
  'remote.list': Remote[]
  'remote.test': RemoteTestResult
  'remote.info': RemoteInfo
  'remote.remove': Empty
  'proxy.add': ProxyAddResult
  'proxy.list': Proxy[]
  'proxy.test': ProxyTestResult
  'proxy.remove': Empty
  'proxy.key': ProxyKey
  'job.create': JobInfo
  'job.update': JobInfo
  'job.get': JobInfo
  'job.list': JobInfo[]
  'job.delete': Empty
  'job.setEnabled': JobInfo
  'job.run': { runId: string }
  'job.plan': JobPlan
  'job.crSeed': CrSeedResult
  'run.list': RunSummary[]
  /** eventCount (live runs): the tree folds events 0..eventCount-1; task.event notifications with seq ≥ eventCount are newer. */
  'run.get': { summary: RunSummary; tree: TaskNode; eventCount?: number }
  'run.cancel': Empty
  'backup.list': BackupListEntry[]
  'restore.start': { runId: string }
  'backup.check': { runId: string }
  'remote.verify': { runId: string }
  'lanes.get': LanesSnapshot
  subscribe: { subscribed: SubscriptionTopic[] }
  unsubscribe: Empty
}

/** Params as a client writes them (job bodies typed as JobInput). */
export type MethodParams = {
  [M in MethodName]: M extends 'job.create' ? { job: JobInput } : M extends 'job.update' ? { id: string; job: JobInput } : z.input<(typeof methodParams)[M]>
}

export type Methods = { [M in MethodName]: { params: MethodParams[M]; result: MethodResults[M] } }
