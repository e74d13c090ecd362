// Delta restore: each disk's chain (the backup's VHD file, or alias to a VhdDirectory, and its parents on the
// remote) streamed as one dynamic VHD onto a new VDI, and the VM rebuilt around the disks from the records the
// metadata kept (Suspended, for a backup with memory).
import { VhdChain } from '../../formats/vhd/index.ts'
import { fileSystemAccess } from '../../storage/index.ts'
import { formatFilenameDate, resolveInVmDir, type DeltaBackupMetadata } from '../../repository/index.ts'
import type { PoolConnection } from '../../xapi/index.ts'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import { throwIfAborted } from '../../util/abort.ts'
import { VmBuild } from '../targets/sr-import.ts'
import { applyConventions, RESTORED_TAG, withoutBackupKeys, type RestoreContext } from './conventions.ts'
import { BLOCKED_WHILE_BUILDING, RESTORING_REASON } from './records.ts'
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
  let build: VmBuild | undefined
  try {
    throwIfAborted(signal)
    build = await VmBuild.create(conn, {
      srRef: context.srRef,
      vm: metadata.vm,
      identity: {
        name: `[Restoring…] ${context.conventions.name}`, description: context.conventions.description,
        tags: [...new Set([...(metadata.vm.tags ?? []), RESTORED_TAG])], otherConfig: withoutBackupKeys(metadata.vm.other_config), buildingReason: RESTORING_REASON,
      },
      disks: disks.map(disk => ({ ref: disk.ref, record: disk.record, size: Math.max(disk.chain.size, Number(disk.record.virtual_size ?? 0)) })),
      vbds: metadata.vbds,
      vifs: metadata.vifs,
      suspended: suspendedState(metadata),
      // Two VMs with the same MACs on one pool would fight over their addresses.
      newMacs: conn.byUuid(metadata.vm.uuid) !== undefined,
      task: context.task,
      signal,
    })
    for (const disk of disks) {
      const { stream, length } = disk.chain.toVhdStream()
      await transfer(context.task, { size: length, disk: String(disk.record.name_label ?? disk.record.uuid) }, stream,
        body => build!.upload(disk.ref, body, length, signal), signal)
    }
    await unblockStart(conn, build.vmRef!, metadata.vm.blocked_operations as Record<string, string> | undefined)
    await applyConventions(conn, build.vmRef!, context.conventions)
    throwIfAborted(signal)
    return build.vmRef!
  } catch (error) {
    // Never under the run's signal: it may be the abort being handled.
    await build?.discard(context.task)
    throw error
  } finally {
    await Promise.all(disks.map(disk => disk.chain.close().catch(() => {})))
  }
}

/**
 * A backup with memory (XO's metadata.vm is the checkpoint; Lifeboat also keeps it as vmSnapshot): the suspend
 * VDI is one of the backed-up disks, and the VM is restored Suspended on it.
 */
function suspendedState(metadata: DeltaBackupMetadata): { ref: string; checkpoint: Record<string, unknown> } | undefined {
  for (const checkpoint of [metadata.vmSnapshot, metadata.vm] as Array<Record<string, unknown>>) {
    const ref = checkpoint.suspend_VDI
    if (typeof ref === 'string' && ref in metadata.vdis) return { ref, checkpoint }
  }
  return undefined
}

async function openChains(context: RestoreContext, metadata: DeltaBackupMetadata): Promise<BackedUpDisk[]> {
  const fs = fileSystemAccess(context.handler)
  const disks: BackedUpDisk[] = []
  try {
    for (const [ref, record] of Object.entries(metadata.vdis)) {
      const name = String(record.name_label ?? record.uuid)
      const vhd = metadata.vhds[ref]
      if (vhd === undefined) throw brokenBackup(context, name, `the metadata names no VHD file for it`)
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

async function unblockStart(conn: PoolConnection, vmRef: string, original: Record<string, string> | undefined): Promise<void> {
  for (const operation of BLOCKED_WHILE_BUILDING) {
    await conn.call('VM.remove_from_blocked_operations', vmRef, operation)
    const reason = original?.[operation]
    if (reason !== undefined && reason !== RESTORING_REASON) await conn.call('VM.add_to_blocked_operations', vmRef, operation, reason)
  }
}
