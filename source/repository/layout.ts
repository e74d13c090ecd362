// Where things live on a remote, in Xen Orchestra's layout (reference/xo-backups.md §2): one folder per
// VM under xo-vm-backups, one JSON per backup, disks under vdis/<jobId>/<source VDI uuid>/.
import { posix } from 'node:path'
import { LifeboatError } from '../util/errors.ts'

export const BACKUP_DIR = 'xo-vm-backups'
export const CACHE_FILE = 'cache.json.gz'

/** A backup's JSON name: `<YYYYMMDDTHHmmssZ>.json` (the legacy form without Z too). */
export const METADATA_FILE = /^\d{8}T\d{6}Z?\.json$/

// Names that become path components come from XAPI and job files: refuse anything that could walk the tree.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

function component(kind: string, value: string): string {
  if (!NAME.test(value)) throw new LifeboatError('REPOSITORY_BAD_NAME', `"${value}" is not a valid ${kind} for a backup path; it should be a uuid.`)
  return value
}

export function vmDir(vmUuid: string): string {
  return `${BACKUP_DIR}/${component('VM uuid', vmUuid)}`
}

export function metadataPath(vmUuid: string, date: string): string {
  return `${vmDir(vmUuid)}/${date}.json`
}

export function cachePath(vmUuid: string): string {
  return `${vmDir(vmUuid)}/${CACHE_FILE}`
}

/** The key of a backup in cache.json.gz, and its id: the JSON's path with a leading slash, as XO writes it. */
export function backupId(vmUuid: string, date: string): string {
  return `/${metadataPath(vmUuid, date)}`
}

/** `xva` field of full metadata: relative to the VM folder. */
export function xvaRef(date: string): string {
  return `./${date}.xva`
}

/** `vhds` values of delta metadata: relative to the VM folder. */
export function vhdRef(jobId: string, sourceVdiUuid: string, date: string): string {
  return `${vdiDirRef(jobId, sourceVdiUuid)}/${date}.vhd`
}

/** `vhds` values of delta metadata on a VhdDirectory remote: the alias, relative to the VM folder. */
export function vhdAliasRef(jobId: string, sourceVdiUuid: string, date: string): string {
  return `${vdiDirRef(jobId, sourceVdiUuid)}/${date}.alias.vhd`
}

/** The VhdDirectory a Lifeboat alias points at (`<folder>/data/<date>.vhd` for `<folder>/<date>.alias.vhd`): named by the date, as XO does since 2026-03. */
export function aliasDataPath(aliasPath: string): string {
  return posix.join(posix.dirname(aliasPath), 'data', `${posix.basename(aliasPath, '.alias.vhd')}.vhd`)
}

/** A disk's chain folder, relative to the VM folder: chains belong to the job, never shared across jobs. */
export function vdiDirRef(jobId: string, sourceVdiUuid: string): string {
  return `vdis/${component('job id', jobId)}/${component('VDI uuid', sourceVdiUuid)}`
}

/** The remote path of a file named in metadata (xva, vhds), refusing references outside the VM folder. */
export function resolveInVmDir(vmUuid: string, ref: string): string {
  const dir = vmDir(vmUuid)
  const path = posix.normalize(posix.join(dir, ref))
  if (!path.startsWith(`${dir}/`)) throw new LifeboatError('REPOSITORY_BAD_REFERENCE', `The backup metadata of VM ${vmUuid} names "${ref}", outside the VM's folder; the metadata is corrupt.`)
  return path
}
