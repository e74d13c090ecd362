// A backup run: the job's VMs chosen when it starts, backed up with the job's concurrency (the pools'
// own slots bound them further, across runs), under one task tree whose root id is the runId. A
// cancel or the job's timeout aborts every step for real; the returned tree is always settled.
import { setMaxListeners } from 'node:events'
import pLimit from 'p-limit'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import { abortReason, cancelledError, longTimeout, timeoutError } from '../../util/abort.ts'
import { foldRun, TaskLog, type TaskListener, type TaskNode, type Task } from '../../tasks/index.ts'
import type { RemoteHandler } from '../../storage/index.ts'
import type { PoolConnection, XapiRecord } from '../../xapi/index.ts'
import { findSchedule, resolveSettings, selectVms, vmCandidate, type Job, type VmCandidate } from '../jobs/index.ts'
import { planSummary, type JobPlan } from '../../protocol/plan.ts'
import { mixedSpaceProblem } from '../targets/choose-target.ts'
import { RateLimit } from './rate-limit.ts'
import type { RemoteLanes } from './remote-lanes.ts'
import { backupVm, vmTaskData } from './vm-backup.ts'

export interface EngineContext {
  /** Connected pools, by pool uuid. */
  pools: ReadonlyMap<string, PoolConnection>
  /** Opened remotes, by the name jobs use. */
  remotes: ReadonlyMap<string, RemoteHandler>
  /** Where runs without a pool (mirror, verify) show their reads of a remote in the lanes view; absent: nowhere. */
  remoteLanes?: RemoteLanes
}

export interface StartedRun {
  runId: string
  log: TaskLog
  /** The final tree; never rejects. */
  done: Promise<TaskNode>
  cancel(reason?: string): void
}

export interface RunOptions {
  onEvent?: TaskListener
  signal?: AbortSignal
  now?: () => number
}

/**
 * Starts a run and returns at once with its id. The job must carry ids (the daemon gives them);
 * a job without one uses its name, so that tests and one-off runs still chain their backups.
 */
export function startBackupRun(job: Job, context: EngineContext, options: RunOptions & { schedule?: string; plan?: JobPlan } = {}): StartedRun {
  const schedule = findSchedule(job, options.schedule)
  const jobWithId = { ...job, id: job.id ?? job.name }
  const scheduleWithId = { ...schedule, id: schedule.id ?? schedule.name }
  return startRun(
    { name: 'backup run', data: { jobId: jobWithId.id, jobName: job.name, mode: job.mode, scheduleId: scheduleWithId.id, scheduleName: schedule.name } },
    resolveSettings(job, schedule).timeout,
    options,
    (task, signal) => {
      // The plan made just before, at the head of the log: a failure reads against what was expected.
      if (options.plan !== undefined) task.info(planSummary(options.plan), { plan: options.plan })
      return runBackup(task, signal, jobWithId, scheduleWithId, context)
    },
  )
}

/** The run machinery shared by backups and restores: task tree, cancel, timeout, settled result. */
export function startRun(root: { name: string; data: Record<string, unknown> }, timeoutMs: number, options: RunOptions, body: (task: Task, signal: AbortSignal) => Promise<unknown>): StartedRun {
  const controller = new AbortController()
  // Every wait of the run (slots, snapshots, locks, streams) listens to this one signal.
  setMaxListeners(0, controller.signal)
  const onParentAbort = () => controller.abort(options.signal!.reason)
  options.signal?.addEventListener('abort', onParentAbort, { once: true })
  const clearTimer = timeoutMs > 0 ? longTimeout(() => controller.abort(timeoutError('the run', timeoutMs)), timeoutMs) : undefined
  const task = TaskLog.start(root, { onEvent: options.onEvent, now: options.now })
  const done = (async () => {
    try {
      await task.run(() => body(task, controller.signal), { signal: controller.signal })
    } catch {
      // The task tree holds the outcome.
    } finally {
      clearTimer?.()
      options.signal?.removeEventListener('abort', onParentAbort)
    }
    return foldRun(task.log.events)!
  })()
  return { runId: task.id, log: task.log, done, cancel: reason => controller.abort(cancelledError(reason)) }
}

async function runBackup(task: Task, signal: AbortSignal, job: Job & { id: string }, schedule: ReturnType<typeof findSchedule> & { id: string }, context: EngineContext): Promise<void> {
  const settings = resolveSettings(job, schedule)
  const candidates = runCandidates(context)
  const selection = selectVms(job.vms, candidates, job.id)
  task.info('vms', { vms: selection.selected })
  for (const excluded of selection.excluded) if ('uuids' in job.vms) task.warning(`VM ${excluded.uuid} is not backed up: ${excluded.reason}`)
  for (const uuid of selection.missing) {
    task.child('backup VM', { type: 'VM', id: uuid }).fail(new LifeboatError('VM_NOT_FOUND', `The VM ${uuid} is in no connected pool; it may have been deleted, or its pool is not connected.`))
  }
  if (selection.selected.length === 0 && selection.missing.length === 0) throw new LifeboatError('NO_VMS', 'no VMs match this pattern')

  const { remotes, srs, missingRemotes, missingSrs } = runTargets(job, context)
  for (const name of missingRemotes) task.child('get remote adapter', { remote: name }).fail(remoteNotFound(name))
  for (const uuid of missingSrs) task.child('get SR record', { id: uuid }).fail(srNotFound(uuid))
  // Checked when the job was saved; the remotes may have changed since.
  if (settings.distributeBackups) {
    const mixed = mixedSpaceProblem([...remotes].map(([name, handler]) => ({ name, freeSpaceKnown: handler.capabilities.freeSpaceKnown })))
    if (mixed !== undefined) throw mixed
  }

  const { concurrency, maxExportRate } = settings
  // One budget for the whole run, shared by every export (XO's job-wide throttle).
  const rate = maxExportRate > 0 ? new RateLimit(maxExportRate) : undefined
  const limit = pLimit(concurrency === 0 ? Math.max(1, selection.selected.length) : concurrency)
  const byUuid = new Map(candidates.map(c => [c.uuid, c.conn]))
  await Promise.all(
    selection.selected.map(uuid =>
      limit(() =>
        withRetries(task, signal, uuid, resolveSettings(job, schedule, { vmUuid: uuid }).nRetriesVmBackupFailures, {
          cancelled: () => task.child('backup VM', vmTaskData(byUuid.get(uuid)!.get('VM', uuid))).fail(abortReason(signal)),
          attempt: () => backupVm({ conn: byUuid.get(uuid)!, job, schedule, runId: task.id, remotes, srs, pools: context.pools, signal }, uuid, task, rate),
        }),
      ),
    ),
  )
  if (signal.aborted) throw signal.reason
}

/** Every VM record of the connected pools, as selection reads it, with its pool's connection. */
export function runCandidates(context: EngineContext): Array<VmCandidate & { conn: PoolConnection }> {
  const candidates: Array<VmCandidate & { conn: PoolConnection }> = []
  for (const conn of context.pools.values()) for (const vm of conn.all('VM')) candidates.push({ ...vmCandidate(vm, conn.poolUuid), conn })
  return candidates
}

export interface RunTargets {
  remotes: Map<string, RemoteHandler>
  /** The job's SRs found on the connected pools, with their pool's connection. */
  srs: Map<string, { conn: PoolConnection; sr: XapiRecord }>
  missingRemotes: string[]
  missingSrs: string[]
}

/** The job's remotes and SRs as this process has them now (the run and its plan both start from this). */
export function runTargets(job: Job, context: EngineContext): RunTargets {
  const targets: RunTargets = { remotes: new Map(), srs: new Map(), missingRemotes: [], missingSrs: [] }
  for (const name of job.remotes) {
    const handler = context.remotes.get(name)
    if (handler === undefined) targets.missingRemotes.push(name)
    else targets.remotes.set(name, handler)
  }
  for (const uuid of job.srs) {
    const found = [...context.pools.values()].map(conn => ({ conn, sr: conn.byUuid(uuid) })).find(({ sr }) => sr !== undefined && sr.$type === 'SR')
    if (found === undefined) targets.missingSrs.push(uuid)
    else targets.srs.set(uuid, { conn: found.conn, sr: found.sr! })
  }
  return targets
}

export const remoteNotFound = (name: string) => new LifeboatError('REMOTE_NOT_FOUND', `The remote "${name}" is not configured or not available; add it or fix it, then run the job again.`)
export const srNotFound = (uuid: string) => new LifeboatError('SR_NOT_FOUND', `The SR ${uuid} is on no connected pool; connect its pool, or remove the SR from the job.`)

/**
 * One VM's turn in a run, tried again up to `retries` times (nRetriesVmBackupFailures) unless the failure is one
 * a retry cannot change; a VM whose turn comes after a cancel gets a cancelled task instead.
 */
export async function withRetries(task: Task, signal: AbortSignal, vmUuid: string, retries: number, body: { cancelled: () => void; attempt: () => Promise<void> }): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    if (signal.aborted) return body.cancelled()
    try {
      return await body.attempt()
    } catch (error) {
      if (signal.aborted || attempt >= retries || NOT_RETRIED.has(errorCode(error))) return
      task.warning('Retry the VM backup due to an error', { vm: vmUuid, attempt: attempt + 1, error: errorCode(error) })
    }
  }
}

/** Failures a retry cannot change. */
const NOT_RETRIED = new Set(['NO_DISKS', 'NO_TARGET', 'XAPI_UUID_INVALID', 'MIRROR_BASE_MISSING'])

