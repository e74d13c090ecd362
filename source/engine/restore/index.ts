// Restore: a backup on a remote (a full XVA or a delta chain per disk) becomes a new VM on an SR of any
// connected pool, with Xen Orchestra's name, description and tag, not started unless asked.
import { posix } from 'node:path'
import type { RemoteHandler } from '../../storage/index.ts'
import { BACKUP_DIR, parseBackupMetadata, type BackupMetadata } from '../../repository/index.ts'
import type { PoolConnection } from '../../xapi/index.ts'
import type { Task } from '../../tasks/index.ts'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import { throwIfAborted } from '../../util/abort.ts'
import { restoreFull } from './full.ts'
import { restoreDelta } from './delta.ts'
import { restoredVmConventions, type RestoreContext } from './conventions.ts'

export { RESTORED_TAG, restoredVmName, restoredVmDescription } from './conventions.ts'

export interface RestoreOptions {
  /** Name of the new VM; default XO's "<name> (<YYYY-MM-DD HH:mm>)" with the backup's date (UTC). */
  name?: string
  /** The remote as the administrator knows it, for the description; default the handler's (redacted) label. */
  remoteName?: string
  /** Default false: the VM is not started. */
  start?: boolean
  signal?: AbortSignal
  /** Progress: one child task 'transfer' per disk (or per XVA) with properties size and progress. */
  task?: Task
}

export interface RestoredVm {
  vmRef: string
  vmUuid: string
  /** The name it was given (the administrator's, or XO's "<name> (<date>)"). */
  vmName: string
}

const BACKUP_ID = new RegExp(`^/?(${BACKUP_DIR}/([A-Za-z0-9][A-Za-z0-9._-]{0,127})/\\d{8}T\\d{6}Z?\\.json)$`)

/** Restores the backup (id = metadata path as listRestorePoints gives it) to the SR (uuid) of the given pool connection. */
export async function restoreBackup(handler: RemoteHandler, backupId: string, conn: PoolConnection, srUuid: string, options: RestoreOptions = {}): Promise<RestoredVm> {
  const { signal } = options
  throwIfAborted(signal)
  const { path, vmDirUuid } = parseBackupId(backupId)
  const metadata = await readMetadata(handler, path)
  const sr = conn.get('SR', srUuid)
  const context: RestoreContext = {
    handler, conn, metadata, vmDirUuid, srRef: sr.$ref,
    conventions: restoredVmConventions(metadata, { name: options.name, remoteName: options.remoteName ?? handler.label }),
    signal, task: options.task,
  }
  const vmRef = metadata.mode === 'full' ? await restoreFull(context, metadata.xva) : await restoreDelta(context, metadata)
  const vmUuid = (await conn.call('VM.get_uuid', vmRef)) as string
  if (options.start === true) {
    // A backup with memory is restored Suspended: it resumes where the checkpoint left it.
    const suspended = (await conn.call('VM.get_power_state', vmRef)) === 'Suspended'
    await conn.callAsync(signal, suspended ? 'VM.resume' : 'VM.start', vmRef, false, false)
  }
  return { vmRef, vmUuid, vmName: context.conventions.name }
}

/** The metadata path and VM folder a backup id (as listRestorePoints gives it) names. */
export function parseBackupId(backupId: string): { path: string; vmDirUuid: string } {
  const match = BACKUP_ID.exec(posix.normalize(backupId))
  if (match === null) {
    throw new LifeboatError('RESTORE_BAD_BACKUP_ID', `"${backupId}" is not a backup id; pick one from the list of restore points (xo-vm-backups/<vm>/<date>.json).`)
  }
  return { path: match[1]!, vmDirUuid: match[2]! }
}

export async function readMetadata(handler: RemoteHandler, path: string): Promise<BackupMetadata> {
  let json: Buffer
  try {
    json = await handler.readFile(path)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') {
      throw new LifeboatError('RESTORE_BACKUP_NOT_FOUND', `The backup ${path} is not on ${handler.label}; it may have been removed by retention. List the restore points again.`, { cause: error })
    }
    throw error
  }
  return parseBackupMetadata(json, path)
}
