// The writer protocol every destination of a VM backup follows (Xen Orchestra's writer life cycle): a run
// drives targets through these steps and never knows whether it feeds a remote folder or an SR.
//
//   beforeBackup (locks, repair) → checkBases (delta) → prepare → transfer → commit → afterBackup (retention)
//   → healthCheck (optional); discard after a failure; release always.
//
// The run owns the tree around a target: one `export` task per target (its `taskData`, plus isFull) with a
// `transfer` child; a target adds its own children (clean-vm, merge, target snapshot) under the task it is
// given. A target that throws at any step is dropped for the rest of the VM's backup; the others finish.
import type { Task, TaskData } from '../../tasks/index.ts'
import type { PoolConnection, XapiRecord } from '../../xapi/index.ts'
import type { Job, Schedule, Settings } from '../jobs/index.ts'
import type { DeltaVmExport, DiskBlock, ExportedDisk, FullVmExport, ProgressReporter } from '../sources/vm-export.ts'
import type { HealthCheckStep } from '../restore/health-check.ts'

export interface TargetStep {
  /** Where the target reports: the VM's `backup VM` task before the transfer, its own `export` task after. */
  task: Task
  signal: AbortSignal
}

interface TargetLifeCycle {
  /** The remote's name or the SR's uuid: the name in lanes and logs. */
  readonly name: string
  /** The `export` task's data: { type: 'remote' | 'SR', id, name_label }. */
  readonly taskData: TaskData
  /** Before the snapshot: locks, repair of what an interrupted run left (task: the VM's). */
  beforeBackup(step: TargetStep): Promise<void>
  /** After a successful commit: retention (task: this target's export task). */
  afterBackup(step: TargetStep): Promise<void>
  /**
   * After afterBackup, on a committed target, for a VM the settings check: a VM made from what was just written (a
   * restore, a clone or copy of the replica) checked on the health check SR and destroyed (engine/restore/health-check.ts).
   */
  healthCheck(step: HealthCheckStep): Promise<void>
  /** After a failure: removes what this backup wrote (a half-written file, a half-imported VM). Never throws. */
  discard(): Promise<void>
  /** Always, last: releases the locks taken by beforeBackup. Never throws. */
  release(): Promise<void>
}

/** A full backup's destination: a remote (XVA file, XO's FullRemoteWriter) or an SR (disaster recovery). */
export interface FullBackupTarget extends TargetLifeCycle {
  readonly mode: 'full'
  /** Before the transfer (task: export): room made first with deleteFirst, leftovers of interrupted copies removed. */
  prepare(backup: FullVmExport, step: TargetStep): Promise<void>
  /** Takes the XVA stream (a fork of it: read it to the end or return it); resolves with the bytes written. */
  transferXva(backup: FullVmExport, xva: AsyncIterable<Buffer>, report: ProgressReporter, step: TargetStep): Promise<number>
  /** Makes what was transferred a backup (the metadata JSON, the replica's completion mark). */
  commit(backup: FullVmExport, step: TargetStep): Promise<void>
}

/** A delta backup's destination: a remote (VHD chain, XO's IncrementalRemoteWriter) or an SR (continuous replication). */
export interface DeltaBackupTarget extends TargetLifeCycle {
  readonly mode: 'delta'
  /**
   * Of the proposed bases (live VDI uuid → base snapshot VDI uuid), the disks this target cannot chain onto,
   * with the reason (live VDI uuid → sentence); those go full on every target (XO's intersection).
   */
  checkBases(bases: ReadonlyMap<string, string>, step: TargetStep): Promise<Map<string, string>>
  /** Before the transfer (task: export): for an SR, the VM and its disks (clones of the base replica's, or new). */
  prepare(backup: DeltaVmExport, step: TargetStep): Promise<void>
  /** Takes one disk's blocks (a fork: read it to the end or return it); disks may come in parallel; resolves with the bytes written. */
  transferDisk(backup: DeltaVmExport, disk: ExportedDisk, blocks: AsyncIterable<DiskBlock>, report: ProgressReporter, step: TargetStep): Promise<number>
  commit(backup: DeltaVmExport, step: TargetStep): Promise<void>
}

export type BackupTarget = FullBackupTarget | DeltaBackupTarget

/** What an SR target is made with (engine/targets/index.ts makes one per SR of the job for each VM backup). */
export interface SrTargetOptions {
  /** The connection of the pool that holds the SR: the source VM's pool or another one. */
  conn: PoolConnection
  sr: XapiRecord
  job: Job & { id: string }
  schedule: Schedule & { id: string }
  /** Resolved for this VM on this SR (copyRetention: the replicas to keep). */
  settings: Settings
  /** The source VM's uuid. */
  vmUuid: string
  /** The source VM's pool: what a base snapshot is on the source (its size, for continuous replication). */
  source: PoolConnection
  /** One SR of a distributed target: retention is the distributed target's, across all its SRs. */
  distributed?: boolean
}
