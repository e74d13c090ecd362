// A full backup onto a remote (XO's FullRemoteWriter): the XVA written atomically under the backup's date,
// then the metadata JSON that makes it a backup, then retention of this schedule's full backups.
import { METADATA_VERSION, writeBackupFile, writeBackupMetadata, xvaRef, type BackupMetadata } from '../../repository/index.ts'
import type { FullVmExport, ProgressReporter } from '../sources/vm-export.ts'
import { countedForLanes } from './progress.ts'
import { RemoteVmFolder, type RemoteTargetOptions } from './remote-folder.ts'
import type { FullBackupTarget, TargetStep } from './target.ts'

export class RemoteFullTarget implements FullBackupTarget {
  readonly mode = 'full'
  readonly #folder: RemoteVmFolder

  constructor(readonly options: RemoteTargetOptions) {
    this.#folder = new RemoteVmFolder(options)
  }

  get name(): string {
    return this.options.name
  }

  get taskData(): Record<string, unknown> {
    return this.#folder.taskData
  }

  async beforeBackup(step: TargetStep): Promise<void> {
    await this.#folder.lock(step)
    if (this.options.settings.deleteFirst) await this.#folder.retention('full', step, 1)
  }

  async prepare(): Promise<void> {}

  async transferXva(backup: FullVmExport, xva: AsyncIterable<Buffer>, report: ProgressReporter, step: TargetStep): Promise<number> {
    const { date } = await this.#folder.date(backup.timestamp)
    this.#folder.written.push(xvaRef(date))
    const size = await writeBackupFile(this.#folder.handler, this.options.vmUuid, { ref: xvaRef(date), source: countedForLanes(xva, this.name, report), options: { signal: step.signal } })
    this.#folder.size += size
    return size
  }

  async commit(backup: FullVmExport): Promise<void> {
    const { timestamp, date } = this.#folder.committedDate
    const { vm, vmSnapshot } = backup.records
    const metadata: BackupMetadata = { version: METADATA_VERSION, mode: 'full', jobId: backup.jobId, scheduleId: backup.scheduleId, timestamp, size: this.#folder.size, vm, vmSnapshot, xva: xvaRef(date) }
    await writeBackupMetadata(this.#folder.handler, metadata)
  }

  async afterBackup(step: TargetStep): Promise<void> {
    if (!this.options.settings.deleteFirst) await this.#folder.retention('full', step, 0)
  }

  discard(): Promise<void> {
    return this.#folder.discard()
  }

  release(): Promise<void> {
    return this.#folder.release()
  }
}
