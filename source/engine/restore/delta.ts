// Delta restore: each disk's chain (the backup's VHD and its parents on the remote) streamed as one dynamic
// VHD onto a new VDI, and the VM rebuilt around the disks from the records the metadata kept.
import { VhdChain } from '../../formats/vhd/index.ts'
import { fileSystemAccess } from '../../storage/index.ts'
import { formatFilenameDate, resolveInVmDir, type DeltaBackupMetadata } from '../../repository/index.ts'
import { destroyVdi, destroyVmAndDisks, importVdiVhd, type PoolConnection } from '../../xapi/index.ts'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import { throwIfAborted } from '../../util/abort.ts'
import { applyConventions, type RestoreContext } from './conventions.ts'
import { BLOCKED_WHILE_RESTORING, RESTORING_REASON, vbdCreateRecord, vdiCreateRecord, vifCreateRecord, vmCreateRecord } from './records.ts'
import { transfer } from './transfer.ts'

interface BackedUpDisk {
  /** The snapshot VDI's ref in the metadata: the key of vdis, vhds and the VBDs' VDI field. */
  ref: string
  record: Record<string, unknown>
  chain: VhdChain
}

/** Restores a delta backup; resolves with the new VM's ref. On any failure nothing it created is left on the pool. */
export async function restoreDelta(context: RestoreContext, metadata: DeltaBackupMetadata): Promise<string> {
  const { conn, signal } = context
  // Every chain is opened before anything is created: a broken backup fails with the pool untouched.
  const disks = await openChains(context, metadata)
  const created = { vm: undefined as string | undefined, vdis: [] as string[] }
  try {
    throwIfAborted(signal)
    const vmRef = (await conn.call('VM.create', vmCreateRecord(metadata, context.conventions))) as string
    created.vm = vmRef
    for (const disk of disks) {
      const size = Math.max(disk.chain.size, Number(disk.record.virtual_size ?? 0))
      const vdiRef = (await conn.call('VDI.create', vdiCreateRecord(disk.record, context.srRef, size))) as string
      created.vdis.push(vdiRef)
      for (const vbd of Object.values(metadata.vbds).filter(vbd => vbd.VDI === disk.ref)) {
        await conn.call('VBD.create', vbdCreateRecord(vbd, vmRef, vdiRef))
      }
      const { stream, length } = disk.chain.toVhdStream()
      await transfer(context.task, { size: length, disk: String(disk.record.name_label ?? disk.record.uuid) }, stream,
        body => importVdiVhd(conn, vdiRef, body, length, signal), signal)
    }
    await createVifs(context, metadata, vmRef)
    await unblockStart(conn, vmRef, metadata.vm.blocked_operations as Record<string, string> | undefined)
    await applyConventions(conn, vmRef, context.conventions)
    throwIfAborted(signal)
    return vmRef
  } catch (error) {
    await discard(conn, created, context)
    throw error
  } finally {
    await Promise.all(disks.map(disk => disk.chain.close().catch(() => {})))
  }
}

async function openChains(context: RestoreContext, metadata: DeltaBackupMetadata): Promise<BackedUpDisk[]> {
  const fs = fileSystemAccess(context.handler)
  const disks: BackedUpDisk[] = []
  try {
    for (const [ref, record] of Object.entries(metadata.vdis)) {
      const name = String(record.name_label ?? record.uuid)
      const vhd = metadata.vhds[ref]
      if (vhd === undefined) throw brokenBackup(context, name, `the metadata names no VHD file for it`)
      if (vhd.endsWith('.alias.vhd')) {
        throw new LifeboatError('RESTORE_UNSUPPORTED', `Disk "${name}" of this backup is stored as a VHD directory (${vhd}, Xen Orchestra's format for object storage); Lifeboat cannot restore that format yet.`)
      }
      try {
        disks.push({ ref, record, chain: await VhdChain.open(resolveInVmDir(context.vmDirUuid, vhd), { fs }) })
      } catch (error) {
        throw brokenBackup(context, name, (error as Error).message, error)
      }
    }
    return disks
  } catch (error) {
    await Promise.all(disks.map(disk => disk.chain.close().catch(() => {})))
    throw error
  }
}

function brokenBackup(context: RestoreContext, disk: string, detail: string, cause?: unknown): LifeboatError {
  const { vm, timestamp } = context.metadata
  return new LifeboatError(
    'RESTORE_BROKEN_BACKUP',
    `The backup of ${vm.name_label ?? vm.uuid} of ${formatFilenameDate(timestamp)} on ${context.handler.label} cannot be restored: disk "${disk}": ${detail}. Restore another restore point, and run the repository cleaner on this VM.`,
    { cause, data: { disk, ...(cause === undefined ? {} : { reason: errorCode(cause) }) } },
  )
}

async function createVifs(context: RestoreContext, metadata: DeltaBackupMetadata, vmRef: string): Promise<void> {
  const { conn } = context
  if (Object.keys(metadata.vifs).length === 0) return
  if (conn.all('network').length === 0) {
    context.task?.warning('the pool has no network: the restored VM has no network interface', { vifs: Object.keys(metadata.vifs).length })
    return
  }
  // Two VMs with the same MACs on one pool would fight over their addresses.
  const newMacs = conn.byUuid(metadata.vm.uuid) !== undefined
  for (const vif of Object.values(metadata.vifs)) await conn.call('VIF.create', vifCreateRecord(conn, vif, vmRef, newMacs))
}

async function unblockStart(conn: PoolConnection, vmRef: string, original: Record<string, string> | undefined): Promise<void> {
  for (const operation of BLOCKED_WHILE_RESTORING) {
    await conn.call('VM.remove_from_blocked_operations', vmRef, operation)
    const reason = original?.[operation]
    if (reason !== undefined && reason !== RESTORING_REASON) await conn.call('VM.add_to_blocked_operations', vmRef, operation, reason)
  }
}

/** Destroys what a failed restore created (never under the run's signal: it may be the abort being handled). */
async function discard(conn: PoolConnection, created: { vm: string | undefined; vdis: string[] }, context: RestoreContext): Promise<void> {
  try {
    if (created.vm !== undefined) await destroyVmAndDisks(conn, created.vm)
    for (const vdi of created.vdis) await destroyVdi(conn, vdi)
  } catch (error) {
    context.task?.warning('the half-restored VM could not be removed; delete it by hand', { vm: created.vm, vdis: created.vdis, error: (error as Error).message })
  }
}
