// What the full and the delta remote targets share: the VM's folder on the remote, its lock held from before
// the snapshot to after retention, the backup's date, and the retention of this schedule's backups of the
// target's mode with the merges it makes necessary (deleteFirst: before the transfer, leaving room for one).
// In distributed mode the distributed target applies retention over all its remotes instead.
import { errorCode } from '../../util/errors.ts'
import { sleep } from '../../util/abort.ts'
import type { RemoteHandler, RemoteLock } from '../../storage/index.ts'
import { allocateBackupDate, backupId, cleanVm, deleteBackups, discardBackupFile, scheduleBackups, vmDir, type VmBackup } from '../../repository/index.ts'
import type { Settings } from '../jobs/index.ts'
import { checkRemoteBackup, type HealthCheckStep } from '../restore/health-check.ts'
import { retainAcross, type RetentionHolder } from './retention.ts'
import type { TargetStep } from './target.ts'

const LOCK_RETRY_MS = 1000

export interface RemoteTargetOptions {
  /** The remote's name in the job. */
  name: string
  handler: RemoteHandler
  /** Resolved for this VM on this remote. */
  settings: Settings
  vmUuid: string
  jobId: string
  scheduleId: string
  timezone: string
  /** One remote of a distributed target: retention is the distributed target's, across all its remotes. */
  distributed?: boolean
}

export abstract class RemoteTarget implements RetentionHolder<VmBackup> {
  abstract readonly mode: 'full' | 'delta'
  #lock: RemoteLock | undefined
  #date: { timestamp: number; date: string } | undefined
  /** Files written for the backup in progress (relative to the VM folder), removed by discard. */
  readonly written: string[] = []
  size = 0

  constructor(readonly options: RemoteTargetOptions) {}

  get name(): string {
    return this.options.name
  }

  get handler(): RemoteHandler {
    return this.options.handler
  }

  get taskData(): Record<string, unknown> {
    return { type: 'remote', id: this.options.name, name_label: this.handler.label }
  }

  async beforeBackup(step: TargetStep): Promise<void> {
    await this.lock(step)
    // A delta chains onto what is there: an interrupted merge must finish first.
    if (this.mode === 'delta') await this.clean(step)
    if (this.#ownRetention && this.options.settings.deleteFirst) await this.retention(step, 1)
  }

  async afterBackup(step: TargetStep): Promise<void> {
    if (this.#ownRetention && !this.options.settings.deleteFirst) await this.retention(step, 0)
  }

  get #ownRetention(): boolean {
    return this.options.distributed !== true
  }

  async lock(step: TargetStep): Promise<void> {
    await this.handler.mkdir(vmDir(this.options.vmUuid))
    this.#lock = await lockVmFolder(this.handler, this.options.vmUuid, this.options.name, step)
  }

  /** Repairs the folder (an interrupted merge must finish before a new chain link). */
  async clean(step: TargetStep): Promise<void> {
    await step.task.child('clean-vm', { remote: this.options.name }).run(async clean => summarize(await cleanVm(this.handler, this.options.vmUuid, { signal: step.signal, task: clean })), { signal: step.signal })
  }

  /** The backup's date on this remote: the snapshot's, moved on by a second while a backup of that second exists. */
  async date(timestamp: number): Promise<{ timestamp: number; date: string }> {
    this.#date ??= await allocateBackupDate(this.handler, this.options.vmUuid, timestamp)
    return this.#date
  }

  get committedDate(): { timestamp: number; date: string } {
    if (this.#date === undefined) throw new Error('BUG: a remote target commits a backup it never wrote')
    return this.#date
  }

  /** Retention of this schedule's backups on this remote, then the merges it makes necessary (XO's clean-vm task). */
  async retention(step: TargetStep, extraRoom: number): Promise<void> {
    const { settings, timezone } = this.options
    await retainAcross([this], { keep: settings.exportRetention - extraRoom, longTerm: settings.longTermRetention, timezone }, step)
  }

  retentionEntries(): Promise<VmBackup[]> {
    return scheduleBackups(this.handler, this.options.vmUuid, this.options)
  }

  restorePoint(backup: VmBackup): string {
    return backup.vmSnapshot.uuid
  }

  /** Deletes the backups' JSON, then merges what they released (a delta folder is always cleaned: earlier deletions may wait). */
  async deleteEntries(old: VmBackup[], step: TargetStep): Promise<void> {
    const { vmUuid, name } = this.options
    // The clean's task takes its warnings and one 'merge' task per merge: a merge that fails fails the run.
    await step.task.child('clean-vm', { remote: name }).run(async clean => {
      await deleteBackups(this.handler, old)
      const cleaned = this.mode === 'delta' || old.length > 0 ? summarize(await cleanVm(this.handler, vmUuid, { task: clean })) : { merge: false }
      return { ...cleaned, deleted: old.length }
    })
  }

  /** XO's remote health check: the backup just written restored onto the health check SR, checked, destroyed. */
  async healthCheck(step: HealthCheckStep): Promise<void> {
    await checkRemoteBackup({ name: this.name, handler: this.handler }, backupId(this.options.vmUuid, this.committedDate.date), step)
  }

  /** Removes what a failed transfer left under its final name (nothing normally: writes are atomic). */
  async discard(): Promise<void> {
    for (const ref of this.written) await discardBackupFile(this.handler, this.options.vmUuid, ref).catch(() => {})
  }

  async release(): Promise<void> {
    const lock = this.#lock
    this.#lock = undefined
    await lock?.release().catch(() => {})
  }

}

/**
 * Takes a VM folder's lock, waiting while another run, merge or clean holds it (two jobs of the same VM
 * on the same remote at 02:00 take turns instead of failing); the run's cancel or timeout ends the wait.
 */
export async function lockVmFolder(handler: RemoteHandler, vmUuid: string, remoteName: string, step: TargetStep): Promise<RemoteLock> {
  let told = false
  for (;;) {
    try {
      return await handler.lock(vmDir(vmUuid))
    } catch (error) {
      if (errorCode(error) !== 'REMOTE_LOCKED') throw error
      if (!told) step.task.info(`waiting for the VM's folder on remote ${remoteName}: another backup, merge or clean holds it`)
      told = true
      await sleep(LOCK_RETRY_MS, step.signal)
    }
  }
}

function summarize(result: { merged: number; mergedBytes: number; removed: string[] }): { merge: boolean; size?: number; removed?: number } {
  return { merge: result.merged > 0, ...(result.merged > 0 && { size: result.mergedBytes }), ...(result.removed.length > 0 && { removed: result.removed.length }) }
}
