// Retention of one job schedule on one remote: which backups go (getOldEntries) and deleting their JSON;
// the VHDs they leave unreferenced are merged or removed by the cleaner afterwards.
import type { RemoteHandler } from '../storage/index.ts'
import { deleteBackups } from './commit.ts'
import { listVmBackups } from './listing.ts'
import type { VmBackup } from './metadata.ts'
import { getOldEntries, type LongTermRetention } from './retention.ts'

export interface RetentionOptions {
  jobId: string
  scheduleId: string
  /** How many of the newest backups of this job schedule to keep. */
  keep: number
  longTerm?: LongTermRetention
  /** The schedule's IANA timezone, where long-term retention cuts days, weeks, months and years. */
  timezone?: string
}

/**
 * Keeps the newest `keep` backups of (jobId, scheduleId) plus those long-term rules keep, deletes the
 * others' JSON and returns them. Other jobs' and schedules' backups are never touched. Caller holds the VM's lock.
 */
export async function applyRetention(handler: RemoteHandler, vmUuid: string, options: RetentionOptions): Promise<VmBackup[]> {
  const backups = (await listVmBackups(handler, vmUuid)).filter(backup => backup.jobId === options.jobId && backup.scheduleId === options.scheduleId)
  const old = getOldEntries(options.keep, backups, {
    ...(options.longTerm !== undefined && { longTermRetention: options.longTerm }),
    ...(options.timezone !== undefined && { timezone: options.timezone }),
  })
  await deleteBackups(handler, old)
  return old
}
