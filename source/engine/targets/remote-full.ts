// A full backup onto a remote (XO's FullRemoteWriter): the XVA written atomically under the backup's date,
// then the metadata JSON that makes it a backup, then retention of this schedule's full backups.
import { METADATA_VERSION, writeBackupFile, writeBackupMetadata, xvaRef, type BackupMetadata } from '../../repository/index.ts'
import type { FullVmExport, ProgressReporter } from '../sources/vm-export.ts'
import { countedForLanes } from './progress.ts'
import { RemoteTarget } from './remote-target.ts'
import type { FullBackupTarget, TargetStep } from './target.ts'

export class RemoteFullTarget extends RemoteTarget implements FullBackupTarget {
  readonly mode = 'full'

  async prepare(): Promise<void> {}

  async transferXva(backup: FullVmExport, xva: AsyncIterable<Buffer>, report: ProgressReporter, step: TargetStep): Promise<number> {
    const { date } = await this.date(backup.timestamp)
    this.written.push(xvaRef(date))
    const size = await writeBackupFile(this.handler, this.options.vmUuid, { ref: xvaRef(date), source: countedForLanes(xva, this.name, report), options: { signal: step.signal } })
    this.size += size
    return size
  }

  async commit(backup: FullVmExport): Promise<void> {
    const { timestamp, date } = this.committedDate
    const { vm, vmSnapshot } = backup.records
    const metadata: BackupMetadata = { version: METADATA_VERSION, mode: 'full', jobId: backup.jobId, scheduleId: backup.scheduleId, timestamp, size: this.size, vm, vmSnapshot, xva: xvaRef(date) }
    await writeBackupMetadata(this.handler, metadata)
  }
}
