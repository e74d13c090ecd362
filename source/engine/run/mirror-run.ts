// A mirror run (XO's VmsRemote): the backups of the job's source remote copied to its target remotes. Per VM
// (its source folder locked while it is read) and per source job, what is newer than the last backup present
// on every target is copied in order, each keeping its timestamp, through the same VmBackup as any backup
// (a RepositoryVmSource and the job's remote targets, retention and merges on the targets included). When the
// job's settings name a health check SR, each target that received copies has the last of them checked (XO's).
import pLimit from 'p-limit'
import { LifeboatError } from '../../util/errors.ts'
import { abortReason } from '../../util/abort.ts'
import type { Task } from '../../tasks/index.ts'
import type { RemoteHandler } from '../../storage/index.ts'
import type { PoolConnection } from '../../xapi/index.ts'
import { formatFilenameDate, listBackedUpVms, listVmBackups, type VmBackup as SourceBackup } from '../../repository/index.ts'
import { findSchedule, resolveSettings, smartMismatch, vmCandidate, type Job, type Schedule } from '../jobs/index.ts'
import { RepositoryVmSource } from '../sources/repository-source.ts'
import { createRemoteTargets } from '../targets/index.ts'
import { lockVmFolder } from '../targets/remote-target.ts'
import { remoteNotFound, runTargets, startRun, withRetries, type EngineContext, type RunOptions, type StartedRun } from './backup-run.ts'
import { RateLimit } from './rate-limit.ts'
import type { RemoteLanes } from './remote-lanes.ts'
import type { ProgressReporter } from '../sources/vm-export.ts'
import { healthCheckPlan, VmBackup, type HealthCheckPlan } from './vm-backup.ts'

export interface MirrorOptions extends RunOptions {
  schedule?: string
  /** Jobs of this daemon that distribute their backups: their backups are not mirrored (a chain spread over remotes is not whole on any). */
  distributedJobs?: ReadonlySet<string>
}

type MirrorJob = Job & { id: string; sourceRemote: string }

export function startMirrorRun(job: Job, context: EngineContext, options: MirrorOptions = {}): StartedRun {
  if (job.type !== 'mirror' || job.sourceRemote === undefined) throw new Error('BUG: a mirror run of a job that is not a mirror')
  const schedule = findSchedule(job, options.schedule)
  const jobWithId = { ...job, id: job.id ?? job.name, sourceRemote: job.sourceRemote }
  const scheduleWithId = { ...schedule, id: schedule.id ?? schedule.name }
  return startRun(
    { name: 'backup run', data: { jobId: jobWithId.id, jobName: job.name, mode: job.mode, type: 'mirror', sourceRemote: job.sourceRemote, scheduleId: scheduleWithId.id, scheduleName: schedule.name } },
    resolveSettings(job, schedule).timeout,
    options,
    (task, signal) => runMirror(task, signal, jobWithId, scheduleWithId, context, options.distributedJobs ?? new Set()),
  )
}

async function runMirror(task: Task, signal: AbortSignal, job: MirrorJob, schedule: Schedule & { id: string }, context: EngineContext, distributed: ReadonlySet<string>): Promise<void> {
  const source = context.remotes.get(job.sourceRemote)
  if (source === undefined) throw new LifeboatError('REMOTE_NOT_FOUND', `The source remote "${job.sourceRemote}" is not configured or not available; add it or fix it, then run the mirror again.`)
  const { remotes: targets, missingRemotes } = runTargets(job, context)
  for (const name of missingRemotes) task.child('get remote adapter', { remote: name }).fail(remoteNotFound(name))
  if (targets.size === 0) throw new LifeboatError('NO_TARGET', `None of the mirror's target remotes (${job.remotes.join(', ')}) is available; fix them, then run the mirror again.`)
  const vms = await listBackedUpVms(source)
  task.info('vms', { vms })

  const settings = resolveSettings(job, schedule)
  const rate = settings.maxExportRate > 0 ? new RateLimit(settings.maxExportRate) : undefined
  const limit = pLimit(settings.concurrency === 0 ? Math.max(1, vms.length) : settings.concurrency)
  const mirror = new VmMirror(job, schedule, source, targets, distributed, task, signal, rate, context.remoteLanes, context.pools)
  await Promise.all(
    vms.map(vmUuid =>
      limit(async () => {
        const backups = (await listVmBackups(source, vmUuid, { warn: (message, data) => task.warning(message, data) })).filter(backup => backup.mode === job.mode)
        // A folder without a backup of the mode gets no task (XO's).
        if (backups.length === 0) return
        const data = { type: 'VM', id: vmUuid, name_label: backups.at(-1)!.vm.name_label ?? vmUuid }
        await withRetries(task, signal, vmUuid, resolveSettings(job, schedule, { vmUuid }).nRetriesVmBackupFailures, {
          cancelled: () => task.child('backup VM', data).fail(abortReason(signal)),
          attempt: async () => void (await task.child('backup VM', data).run(vmTask => mirror.copyVm(vmUuid, vmTask), { signal })),
        })
      }),
    ),
  )
  if (signal.aborted) throw signal.reason
}

class VmMirror {
  constructor(
    readonly job: MirrorJob,
    readonly schedule: Schedule & { id: string },
    readonly source: RemoteHandler,
    readonly targets: ReadonlyMap<string, RemoteHandler>,
    readonly distributed: ReadonlySet<string>,
    readonly runTask: Task,
    readonly signal: AbortSignal,
    readonly rate: RateLimit | undefined,
    readonly lanes: RemoteLanes | undefined,
    /** Where the health check SR is looked for. */
    readonly pools: ReadonlyMap<string, PoolConnection>,
  ) {}

  async copyVm(vmUuid: string, task: Task): Promise<{ transferred: number }> {
    const step = { task, signal: this.signal }
    const lock = await lockVmFolder(this.source, vmUuid, this.job.sourceRemote, step)
    try {
      const pending = await this.#pending(vmUuid, task)
      const check = this.#healthCheck(vmUuid, pending, task)
      // Each target is checked once, on the last copy it received (XO's writer checks its last transfer).
      const lastCopy = new Map<string, number>()
      pending.forEach(({ lacking }, index) => lacking.forEach(name => lastCopy.set(name, index)))
      for (const [index, { backup, lacking }] of pending.entries()) {
        const remotes = new Map([...this.targets].filter(([name]) => lacking.has(name)))
        const targets = createRemoteTargets({ job: this.job, schedule: this.schedule, remotes }, vmUuid, task)
        if (targets.length === 0) throw new LifeboatError('NO_TARGET', `The VM has no target in this run: the schedule "${this.schedule.name}" keeps 0 backups on every target remote. Set retention.backups.`)
        task.info('mirroring a backup', { backup: backup.id, date: formatFilenameDate(backup.timestamp), to: targets.map(target => target.name) })
        // The copy in the lanes view: a slot of the source remote's lane, each target's bytes as it writes them.
        const lease = await this.lanes?.of(this.job.sourceRemote, this.source.capabilities.connections).acquire({ runId: this.runTask.id, jobId: this.job.id, vm: vmUuid, vmName: String(backup.vm.name_label ?? vmUuid), phase: 'mirror' }, this.signal)
        const report: ProgressReporter = (target, progress) => {
          lease?.reportTarget(target, progress)
          lease?.report({ done: Math.max(...Object.values(lease.targets).map(entry => entry.done)), ...(backup.size !== undefined && { total: backup.size }) })
        }
        try {
          const repository = new RepositoryVmSource({ handler: this.source, remote: this.job.sourceRemote, backup, jobId: this.job.id, scheduleId: this.schedule.id, report })
          const checked = new Set([...lastCopy].filter(([, last]) => last === index).map(([name]) => name))
          await new VmBackup(this.job.mode, repository, targets, task, this.signal, this.rate, check === undefined || checked.size === 0 ? undefined : { ...check, targets: checked }).run()
        } finally {
          lease?.release()
        }
      }
      return { transferred: pending.length }
    } finally {
      await lock.release().catch(() => {})
    }
  }

  /** The health check of the VM's copies, by the tags the last backup copied recorded (XO's); says why not when there is none. */
  #healthCheck(vmUuid: string, pending: ReadonlyArray<{ backup: SourceBackup }>, task: Task): HealthCheckPlan | undefined {
    const settings = resolveSettings(this.job, this.schedule, { vmUuid })
    if (settings.healthCheckSr === '') return undefined
    if (pending.length === 0) {
      task.info('no health check: no backup was copied (nothing to check on the targets)')
      return undefined
    }
    return healthCheckPlan(this.pools, (pending.at(-1)!.backup.vm.tags as string[] | undefined) ?? [], settings, task)
  }

  /**
   * The backups to copy, in order, each with the targets that lack it: per source job, what follows the last
   * backup present on every target (by its date, to the second: the file name's); then the filter.
   */
  async #pending(vmUuid: string, task: Task): Promise<Array<{ backup: SourceBackup; lacking: Set<string> }>> {
    const onTargets = new Map<string, Set<string>>()
    for (const [name, handler] of this.targets) {
      const backups = await listVmBackups(handler, vmUuid, { warn: (message, data) => task.warning(message, data) })
      onTargets.set(name, new Set(backups.filter(backup => backup.mode === this.job.mode).map(backup => formatFilenameDate(backup.timestamp))))
    }
    const lackingOf = (backup: SourceBackup) => new Set([...onTargets].filter(([, dates]) => !dates.has(formatFilenameDate(backup.timestamp))).map(([name]) => name))
    const byJob = new Map<string, SourceBackup[]>()
    for (const backup of await listVmBackups(this.source, vmUuid)) {
      if (backup.mode !== this.job.mode) continue
      byJob.set(backup.jobId, [...(byJob.get(backup.jobId) ?? []), backup])
    }
    const pending: Array<{ backup: SourceBackup; lacking: Set<string> }> = []
    let filtered = false
    for (const [jobId, backups] of byJob) {
      if (this.distributed.has(jobId)) {
        task.warning(`the backups of job ${jobId} are not mirrored: that job distributes its backups over several remotes, so no remote holds its chains whole (a distributed job cannot be a mirror source)`)
        continue
      }
      let list: Array<{ backup: SourceBackup; lacking: Set<string> }> = []
      for (const backup of backups.sort((a, b) => a.timestamp - b.timestamp)) {
        const lacking = lackingOf(backup)
        list = lacking.size === 0 ? [] : [...list, { backup, lacking }]
      }
      const kept = this.#filter(list)
      if (kept.length < list.length) filtered = true
      pending.push(...kept)
    }
    if (pending.length === 0) task.info(filtered ? 'This VM is excluded by the job filter' : 'No new data to upload for this VM')
    return pending
  }

  /** Full: the backups that match; delta: the whole list if any matches, so that a chain is never cut. */
  #filter<T extends { backup: SourceBackup }>(list: T[]): T[] {
    const matches = (backup: SourceBackup) => {
      const { vms } = this.job
      if ('uuids' in vms) return vms.uuids.includes(backup.vm.uuid)
      return smartMismatch(vmCandidate(backup.vm, ''), vms.smart) === undefined
    }
    if (this.job.mode === 'full') return list.filter(({ backup }) => matches(backup))
    return list.some(({ backup }) => matches(backup)) ? list : []
  }
}
