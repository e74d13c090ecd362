// What the disaster recovery and the continuous replication targets share: the SR's name and export data, and
// the retention of this schedule's replicas of the VM on the SR (in distributed mode, the distributed
// target's across all its SRs instead).
import { destroyReplicas, scheduleReplicas, srExportTaskData, type ReplicaEntry } from './replicas.ts'
import { retainAcross, type RetentionHolder } from './retention.ts'
import type { SrTargetOptions, TargetStep } from './target.ts'

export abstract class SrTarget implements RetentionHolder<ReplicaEntry> {
  constructor(readonly options: SrTargetOptions) {}

  get name(): string {
    return this.options.sr.uuid
  }

  get taskData(): Record<string, unknown> {
    return srExportTaskData(this.options.sr)
  }

  /** False for one SR of a distributed target. */
  protected get ownRetention(): boolean {
    return this.options.distributed !== true
  }

  /** Keeps the `keep` newest complete replicas of this schedule, VM and SR. */
  protected async retention(step: TargetStep, keep: number): Promise<void> {
    await retainAcross([this], { keep }, step)
  }

  retentionEntries(step: TargetStep): Promise<ReplicaEntry[]> {
    const { conn, sr, schedule, vmUuid } = this.options
    return scheduleReplicas(conn, { scheduleId: schedule.id, vmUuid, srUuid: sr.uuid }, step.signal)
  }

  restorePoint(entry: ReplicaEntry): string {
    return entry.point
  }

  async deleteEntries(old: ReplicaEntry[], step: TargetStep): Promise<void> {
    await destroyReplicas(this.options.conn, old.map(entry => entry.replica), step.task, 'an old replica')
  }
}
