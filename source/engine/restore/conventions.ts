// What a restored VM looks like once done, as Xen Orchestra leaves it: "<name> (<date>)", "Restored on <date>
// from <remote>", the tag "restored from backup", and no backup other_config keys that a job would mistake for its own.
import type { RemoteHandler } from '../../storage/index.ts'
import type { BackupMetadata } from '../../repository/index.ts'
import { NULL_REF, type PoolConnection } from '../../xapi/index.ts'
import type { Task } from '../../tasks/index.ts'

export const RESTORED_TAG = 'restored from backup'

/** Keys a backup job reads on VMs and disks: a restored copy must not look like a job's snapshot or replica. */
const BACKUP_KEY = /^xo:backup:/

export interface RestoredVmConventions {
  name: string
  description: string
}

export interface RestoreContext {
  handler: RemoteHandler
  conn: PoolConnection
  metadata: BackupMetadata
  /** The VM folder the metadata was read from: files it names are resolved there. */
  vmDirUuid: string
  srRef: string
  conventions: RestoredVmConventions
  signal: AbortSignal | undefined
  task: Task | undefined
}

/** "YYYY-MM-DD HH:mm" in UTC, the form XO shows in restored names. */
function displayDate(timestamp: number): string {
  return new Date(timestamp).toISOString().slice(0, 16).replace('T', ' ')
}

export function restoredVmName(metadata: BackupMetadata): string {
  return `${metadata.vm.name_label ?? metadata.vm.uuid} (${displayDate(metadata.timestamp)})`
}

export function restoredVmDescription(remoteName: string, now = Date.now()): string {
  return `Restored on ${displayDate(now)} from ${remoteName}`
}

export function restoredVmConventions(metadata: BackupMetadata, options: { name: string | undefined; remoteName: string }): RestoredVmConventions {
  return { name: options.name ?? restoredVmName(metadata), description: restoredVmDescription(options.remoteName) }
}

export function withoutBackupKeys(otherConfig: unknown): Record<string, string> {
  const entries = Object.entries((otherConfig ?? {}) as Record<string, string>).filter(([key]) => !BACKUP_KEY.test(key))
  return Object.fromEntries(entries)
}

/** Gives an imported VM its restored identity: name, description, tag, and backup keys cleared on it and its disks. */
export async function applyConventions(conn: PoolConnection, vmRef: string, conventions: RestoredVmConventions): Promise<void> {
  await conn.call('VM.set_name_label', vmRef, conventions.name)
  await conn.call('VM.set_name_description', vmRef, conventions.description)
  await conn.call('VM.add_tags', vmRef, RESTORED_TAG)
  await clearVmBackupKeys(conn, vmRef)
}

/** Clears the backup keys of a VM and its disks: a copy of a backup or a replica is no restore point of any job. */
export async function clearVmBackupKeys(conn: PoolConnection, vmRef: string): Promise<void> {
  await clearBackupKeys(conn, 'VM', vmRef)
  for (const vbdRef of (await conn.call('VM.get_VBDs', vmRef)) as string[]) {
    const vdiRef = (await conn.call('VBD.get_VDI', vbdRef)) as string
    if (vdiRef !== NULL_REF) await clearBackupKeys(conn, 'VDI', vdiRef)
  }
}

async function clearBackupKeys(conn: PoolConnection, type: 'VM' | 'VDI', ref: string): Promise<void> {
  const otherConfig = (await conn.call(`${type}.get_other_config`, ref)) as Record<string, string>
  for (const key of Object.keys(otherConfig)) {
    if (BACKUP_KEY.test(key)) await conn.call(`${type}.remove_from_other_config`, ref, key)
  }
}
