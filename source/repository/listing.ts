// What a remote holds: each VM's backups (from its cache, regenerated when needed) and the restore
// points a person picks from.
import type { RemoteHandler } from '../storage/index.ts'
import { generateCache, readCache, writeCache, type RepositoryWarning } from './cache.ts'
import { BACKUP_DIR } from './layout.ts'
import type { VmBackup } from './metadata.ts'
import { formatFilenameDate } from './dates.ts'

/** The VM's backups, oldest first. A missing or unreadable cache is regenerated and written back. */
export async function listVmBackups(handler: RemoteHandler, vmUuid: string, options: { warn?: RepositoryWarning } = {}): Promise<VmBackup[]> {
  let cache = await readCache(handler, vmUuid)
  if (cache === undefined) {
    cache = await generateCache(handler, vmUuid, options.warn)
    if (Object.keys(cache).length > 0) {
      await writeCache(handler, vmUuid, cache).catch(error => options.warn?.("can't write the backup cache", { vmUuid, error: (error as Error).message }))
    }
  }
  return Object.values(cache).sort((a, b) => a.timestamp - b.timestamp)
}

/** The VM folders of a remote (uuids), skipping locks, the merge queue and stray files. */
export async function listBackedUpVms(handler: RemoteHandler): Promise<string[]> {
  const names = await handler.list(BACKUP_DIR, { ignoreMissing: true })
  return names.filter(name => !name.startsWith('.') && !name.endsWith('.lock'))
}

export interface RestorePoint {
  /** The backup's id: its metadata path, as XO's `importVmBackup` takes it. */
  id: string
  vmUuid: string
  vmName: string
  /** The VM's tags as the backup recorded them (what a mirror job's filter matches). */
  vmTags?: string[]
  /** File-name date (UTC) and exact timestamp (ms). */
  date: string
  timestamp: number
  mode: 'full' | 'delta'
  size: number | undefined
  jobId: string
  scheduleId: string
  filename: string
}

export function toRestorePoint(backup: VmBackup): RestorePoint {
  return {
    id: backup.id,
    vmUuid: backup.vm.uuid,
    vmName: backup.vm.name_label ?? backup.vm.uuid,
    vmTags: backup.vm.tags ?? [],
    date: formatFilenameDate(backup.timestamp),
    timestamp: backup.timestamp,
    mode: backup.mode,
    size: backup.size,
    jobId: backup.jobId,
    scheduleId: backup.scheduleId,
    filename: backup._filename,
  }
}

/** Every restore point of the remote (or of one VM), grouped by VM, oldest first within a VM. */
export async function listRestorePoints(handler: RemoteHandler, options: { vmUuid?: string; warn?: RepositoryWarning } = {}): Promise<RestorePoint[]> {
  const vms = options.vmUuid !== undefined ? [options.vmUuid] : await listBackedUpVms(handler)
  const points: RestorePoint[] = []
  for (const vmUuid of vms) {
    for (const backup of await listVmBackups(handler, vmUuid, options.warn !== undefined ? { warn: options.warn } : {})) points.push(toRestorePoint(backup))
  }
  return points
}
