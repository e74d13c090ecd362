// Continuous replication (XO's IncrementalXapiWriter, "old-style"): each transfer makes a NEW replica VM whose
// disks are VDI.clone's of the previous replica's disks (or new VDIs for a disk that goes full), and writes only
// the VHD delta onto them; the previous replica is never modified. Why one replica per transfer rather than
// XO's 2026 live replica + snapshots: every restore point is a complete VM a clone can start; a run that fails
// or is cut never touches the last good replica (the half-built one is destroyed); retention is plain VM
// destroy; thin SRs share the cloned blocks; and XO's IncrementalXapiWriter finds these replicas through its
// legacy lookup (live VDIs whose xo:copy_of is the base uuid), so XO can take over the chain.
//
// A backup with memory (checkpointSnapshot) carries the checkpoint's suspend VDI as one more full disk: the
// replica is created Suspended on it, so a clone resumes where the source was, without a boot.
import { Readable } from 'node:stream'
import { formatFilenameDate, parseBackupDate } from '../../repository/index.ts'
import type { Task } from '../../tasks/index.ts'
import { formatBytes } from '../../util/human.ts'
import { terminalSafeLine } from '../../util/terminal-text.ts'
import { NULL_REF, setOtherConfigKey, vmDisks, type XapiRecord } from '../../xapi/index.ts'
import type { DeltaVmExport, DiskBlock, ExportedDisk, ProgressReporter } from '../sources/vm-export.ts'
import { withoutBackupKeys } from '../restore/conventions.ts'
import { exportedDiskVhd } from './disk-vhd.ts'
import { countedForLanes } from './progress.ts'
import { blockReplicaStart, CR_TAG, destroyReplicas, HA_DISABLED_TAG, listReplicas, markReplicaComplete, REPLICA_KEY, REPLICA_START_BLOCKED, replicaName, replicaTimestamp } from './replicas.ts'
import { SrTarget } from './sr-target.ts'
import { VmBuild, type BuildDisk } from './sr-import.ts'
import { checkReplica } from './replica-check.ts'
import type { HealthCheckStep } from '../restore/health-check.ts'
import type { DeltaBackupTarget, SrTargetOptions, TargetStep } from './target.ts'

/** XO's reason on a replica's start while its disks are written. */
const IMPORTING_REASON = 'Importing…'
/** A suspended replica resumes like a started one breaks its chain: resume is blocked as start is. */
const SUSPENDED_REPLICA_BLOCKED_OPERATIONS = ['resume', 'resume_on'] as const

export class SrDeltaTarget extends SrTarget implements DeltaBackupTarget {
  readonly mode = 'delta'
  /** Live VDI uuid → the VDI of the base replica a delta of that disk is written onto (a clone of it). */
  readonly #bases = new Map<string, string>()
  /** The replica this backup builds, until its completion mark: what discard removes. */
  #build: VmBuild | undefined
  /** The replica this backup made, once complete: what a health check clones or copies. */
  #replica: string | undefined
  #bytes = 0
  /** The disk uploads of this backup, and what stops them all when one fails. */
  readonly #uploads = new Set<Promise<void>>()
  #failed = new AbortController()
  /** Where discard reports (the last step's task). */
  #task: Task | undefined

  /** Destroys what interrupted runs of the schedule left (no completion key), before any target of this run builds a replica. */
  async beforeBackup(step: TargetStep): Promise<void> {
    const { conn, schedule, vmUuid } = this.options
    this.#task = step.task
    await conn.sync(step.signal)
    await destroyReplicas(conn, listReplicas(conn, { jobOrScheduleId: schedule.id, vmUuid, srUuid: null }), step.task, 'the unfinished replica of an earlier run')
  }

  /**
   * A disk chains onto the newest complete replica of this job on this SR, through its disk copied from the base
   * snapshot, as long as nobody started that replica and its disk still has the base's size.
   */
  async checkBases(bases: ReadonlyMap<string, string>, step: TargetStep): Promise<Map<string, string>> {
    const { conn, sr, job, vmUuid } = this.options
    this.#bases.clear()
    await conn.sync(step.signal)
    const replica = listReplicas(conn, { jobOrScheduleId: job.id, vmUuid, srUuid: sr.uuid }).at(-1)
    const refused = new Map<string, string>()
    const started = replica === undefined ? undefined : startedByHand(conn, replica)
    for (const [liveVdiUuid, baseUuid] of bases) {
      const reason = replica === undefined ? `no replica of this VM on SR ${terminalSafeLine(String(sr.name_label))} yet`
        : started !== undefined ? `the replica ${terminalSafeLine(String(replica.name_label))} was started by hand (${started}): its disks are no longer the source's`
          : this.#baseDisk(replica, liveVdiUuid, baseUuid)
      if (reason !== undefined) refused.set(liveVdiUuid, reason)
    }
    return refused
  }

  /** Records the replica VDI a delta of this disk goes onto; or says why there is none. */
  #baseDisk(replica: XapiRecord, liveVdiUuid: string, baseUuid: string): string | undefined {
    const { conn, source } = this.options
    const disk = vmDisks(conn, replica).map(d => d.vdi).find(vdi => otherConfig(vdi)[REPLICA_KEY.copyOf] === baseUuid)
    // A replica whose start block was lifted is no replica any more (it is not listed): the newest left is older than the base.
    if (disk === undefined) return `the newest replica ${terminalSafeLine(String(replica.name_label))} has no disk copied from the base snapshot ${baseUuid}: the replica made from it was removed, or its start block was lifted to start it`
    const base = source.byUuid(baseUuid)
    if (base !== undefined && Number(base.virtual_size) !== Number(disk.virtual_size)) {
      return `the disk of replica ${terminalSafeLine(String(replica.name_label))} is ${formatBytes(Number(disk.virtual_size))}, the base snapshot ${formatBytes(Number(base.virtual_size))}: it was resized on the target`
    }
    this.#bases.set(liveVdiUuid, disk.$ref)
    return undefined
  }

  /** Builds the replica VM: disks cloned from the base replica's (a delta) or new (a full), start blocked while importing. */
  async prepare(backup: DeltaVmExport, step: TargetStep): Promise<void> {
    const { conn, sr, settings, job, schedule, vmUuid } = this.options
    this.#task = step.task
    this.#bytes = 0
    this.#uploads.clear()
    this.#failed = new AbortController()
    if (this.ownRetention && settings.deleteFirst) await this.retention(step, roomFirstKeep(settings.copyRetention, backup))
    const { vm, vmSnapshot, vdis, vbds, vifs } = backup.records
    const suspendRef = vmSnapshot.suspend_VDI
    const disks: BuildDisk[] = backup.disks.map(disk => {
      const record = vdis[disk.ref]
      if (record === undefined) throw new Error(`BUG: the export has no record for disk ${disk.ref}`)
      return { ref: disk.ref, record, size: disk.footer.currentSize, ...(disk.baseUuid !== undefined && { cloneOf: this.#baseOf(disk) }) }
    })
    const tags = [...new Set([...((vm.tags as string[] | undefined) ?? []), CR_TAG, ...(vm.ha_restart_priority ? [HA_DISABLED_TAG] : [])])]
    this.#build = await VmBuild.create(conn, {
      srRef: sr.$ref,
      vm,
      identity: {
        name: `[Importing…] ${String(vm.name_label)}`, description: String(vm.name_description ?? ''), tags,
        // This schedule's unfinished replica from the start (no completion key): the next run destroys it if this one is cut.
        otherConfig: { ...withoutBackupKeys(vm.other_config), [REPLICA_KEY.job]: job.id, [REPLICA_KEY.schedule]: schedule.id, [REPLICA_KEY.vm]: vmUuid },
        buildingReason: IMPORTING_REASON, haRestartPriority: '',
      },
      disks,
      vbds,
      vifs,
      ...(typeof suspendRef === 'string' && disks.some(disk => disk.ref === suspendRef) && { suspended: { ref: suspendRef, checkpoint: vmSnapshot } }),
      newMacs: this.options.settings.newMacAddresses,
      task: step.task,
      signal: step.signal,
    })
  }

  #baseOf(disk: ExportedDisk): string {
    const base = this.#bases.get(disk.liveVdiUuid)
    if (base === undefined) throw new Error(`BUG: disk ${disk.liveVdiUuid} is exported as a delta but SR ${this.name} has no replica disk for it`)
    return base
  }

  /** Writes the disk's blocks as a VHD (differencing onto the clone of its base, or whole) onto its new VDI. */
  async transferDisk(backup: DeltaVmExport, disk: ExportedDisk, blocks: AsyncIterable<DiskBlock>, report: ProgressReporter, step: TargetStep): Promise<number> {
    this.#task = step.task
    const build = this.#build
    if (build === undefined) throw new Error('BUG: transferDisk before prepare')
    const vhd = exportedDiskVhd(disk, blocks, backup.timestamp, disk.baseUuid === undefined ? undefined : `${disk.baseUuid}.vhd`)
    const body = Readable.from(countedForLanes(vhd.stream, this.name, report), { objectMode: false })
    const upload = build.upload(disk.ref, body, vhd.length, AbortSignal.any([step.signal, this.#failed.signal]))
    this.#uploads.add(upload)
    try {
      await upload
    } catch (error) {
      // The run drops this target and goes on with the others: the half-built replica is removed here, once
      // its other disks have stopped (a VDI being written cannot be destroyed).
      this.#failed.abort(error)
      await Promise.allSettled(this.#uploads)
      await this.discard()
      throw error
    } finally {
      body.destroy()
      vhd.stream.destroy()
    }
    this.#bytes += vhd.length
    return vhd.length
  }

  /** XO's marks of a continuous replica, the completion key last: from then on it is a restore point and the next base. */
  async commit(backup: DeltaVmExport, step: TargetStep): Promise<void> {
    const { conn, sr, job, schedule, vmUuid } = this.options
    this.#task = step.task
    const build = this.#build
    if (build?.vmRef === undefined) throw new Error('BUG: commit before prepare')
    const { vm, vmSnapshot, vdis } = backup.records
    const vmRef = build.vmRef
    await conn.call('VM.set_name_label', vmRef, replicaName(String(vm.name_label ?? ''), job.name, backup.timestamp))
    await conn.call('VM.set_name_description', vmRef, `${String(vm.name_description ?? '')} -- last replication: ${formatFilenameDate(backup.timestamp)} ${formatBytes(this.#bytes)}`)
    await blockReplicaStart(conn, vmRef)
    if ((await conn.call('VM.get_power_state', vmRef)) === 'Suspended') {
      for (const operation of SUSPENDED_REPLICA_BLOCKED_OPERATIONS) await conn.call('VM.add_to_blocked_operations', vmRef, operation, REPLICA_START_BLOCKED)
    }
    for (const disk of backup.disks) {
      const vdiRef = build.vdis.get(disk.ref)!
      if (disk.ref !== vmSnapshot.suspend_VDI) await setOtherConfigKey(conn, 'VDI', vdiRef, REPLICA_KEY.copyOf, vdis[disk.ref]?.uuid ?? disk.snapshotVdiUuid)
    }
    await setOtherConfigKey(conn, 'VM', vmRef, REPLICA_KEY.copyOf, vmSnapshot.uuid)
    await markReplicaComplete(conn, vmRef, { timestamp: backup.timestamp, jobId: job.id, scheduleId: schedule.id, vmUuid, srUuid: sr.uuid })
    this.#build = undefined
    this.#replica = vmRef
  }

  async afterBackup(step: TargetStep): Promise<void> {
    if (this.ownRetention) await this.retention(step, this.options.settings.copyRetention)
  }


  /** Removes the replica this backup was building (its VM and the VDIs it created; the base replica is untouched). */
  async discard(): Promise<void> {
    const build = this.#build
    this.#build = undefined
    await build?.discard(this.#task)
  }

  async healthCheck(step: HealthCheckStep): Promise<void> {
    await checkReplica(this.options.conn, this.#replica, step)
  }

  async release(): Promise<void> {}
}

/** With deleteFirst, the replicas kept before the transfer: room for the new one, but never the replica its deltas are cloned from. */
export function roomFirstKeep(copyRetention: number, backup: DeltaVmExport): number {
  return Math.max(copyRetention - 1, backup.disks.some(disk => disk.baseUuid !== undefined) ? 1 : 0)
}

const otherConfig = (record: XapiRecord): Record<string, string> => (record.other_config as Record<string, string> | undefined) ?? {}

/** Why a replica is no longer the copy it was made as, or undefined: it runs, or ran (its metrics' start time is after its replication). */
function startedByHand(conn: SrTargetOptions['conn'], replica: XapiRecord): string | undefined {
  const state = String(replica.power_state)
  const suspended = state === 'Suspended' && replica.suspend_VDI !== NULL_REF
  if (state !== 'Halted' && !suspended) return `it is ${state}`
  const metrics = conn.byRef(String(replica.metrics ?? NULL_REF))
  const started = parseBackupDate(String(metrics?.start_time ?? ''))
  // Same second counts: the replica is stamped with its snapshot's time, always before the replica exists.
  if (started !== undefined && started >= replicaTimestamp(replica)) return `it was started on ${new Date(started).toISOString()}`
  return undefined
}
