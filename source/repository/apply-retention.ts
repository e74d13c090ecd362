// Retention of one job schedule on one remote: the backups it acts on (this job schedule's), which of them
// go (getOldEntries), and deleting their JSON; the VHDs they leave unreferenced are merged or removed by the
// cleaner afterwards. The engine's targets use the listing and the choice; the deletion is deleteBackups.
import type { RemoteHandler } from '../storage/index.ts'
import { deleteBackups } from './commit.ts'
import { listVmBackups } from './listing.ts'
import type { VmBackup } from './metadata.ts'
import { oldCopies, type LongTermRetention } from './retention.ts'

export interface RetentionOptions {
  jobId: string
  scheduleId: string
  /** How many of the newest backups of this job schedule to keep. */
  keep: number
  longTerm?: LongTermRetention
  /** The schedule's IANA timezone, where long-term retention cuts days, weeks, months and years. */
  timezone?: string
}

/** The VM's backups a retention of (jobId, scheduleId) acts on, oldest first: other jobs' and schedules' are never touched. */
export async function scheduleBackups(handler: RemoteHandler, vmUuid: string, schedule: { jobId: string; scheduleId: string }): Promise<VmBackup[]> {
  return (await listVmBackups(handler, vmUuid)).filter(backup => backup.jobId === schedule.jobId && backup.scheduleId === schedule.scheduleId)
}

/**
 * Keeps the newest `keep` backups of (jobId, scheduleId) plus those long-term rules keep, deletes the
 * others' JSON and returns them. Caller holds the VM's lock.
 */
export async function applyRetention(handler: RemoteHandler, vmUuid: string, options: RetentionOptions): Promise<VmBackup[]> {
  // One remote's backups are each a restore point of their own.
  const entries = (await scheduleBackups(handler, vmUuid, options)).map(backup => ({ timestamp: backup.timestamp, point: backup.id, backup }))
  const old = oldCopies(options.keep, entries, retentionRules(options)).map(entry => entry.backup)
  await deleteBackups(handler, old)
  return old
}

/** The long-term part of a retention as getOldEntries takes it. */
export function retentionRules(options: { longTerm?: LongTermRetention; timezone?: string }): { longTermRetention?: LongTermRetention; timezone?: string } {
  return { ...(options.longTerm !== undefined && { longTermRetention: options.longTerm }), ...(options.timezone !== undefined && { timezone: options.timezone }) }
}
