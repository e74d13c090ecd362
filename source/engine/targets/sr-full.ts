// Disaster recovery (XO's FullXapiWriter): the snapshot's XVA imported onto an SR of any connected pool, as a
// replica XO can take over: named and tagged, HA off, start blocked, and the completion key set last so that
// the next run of the schedule destroys what an interrupted import left. Retention keeps the newest replicas.
import { Readable } from 'node:stream'
import type { Task } from '../../tasks/index.ts'
import { sleep } from '../../util/abort.ts'
import { destroyVmAndDisks, importVmXva } from '../../xapi/index.ts'
import { discardImport, watchImport } from '../import-watch.ts'
import type { FullVmExport, ProgressReporter } from '../sources/vm-export.ts'
import { countedForLanes } from './progress.ts'
import { checkReplica } from './replica-check.ts'
import type { HealthCheckStep } from '../restore/health-check.ts'
import { blockReplicaStart, destroyReplicas, disableReplicaHa, DR_TAG, listReplicas, markReplicaComplete, replicaName } from './replicas.ts'
import { SrTarget } from './sr-target.ts'
import type { FullBackupTarget, TargetStep } from './target.ts'

/** Tries at removing a half-imported replica (about 30 s): the target pool may be restarting its toolstack. */
const DISCARD_ATTEMPTS = 10
const DISCARD_RETRY_MS = 3000

export class SrFullTarget extends SrTarget implements FullBackupTarget {
  readonly mode = 'full'
  /** The replica this backup imported and has not marked complete yet: what discard removes. */
  #unfinished: string | undefined
  /** The replica this backup made, once complete: what a health check clones or copies. */
  #replica: string | undefined
  /** Where discard reports (the last step's task). */
  #task: Task | undefined

  async beforeBackup(): Promise<void> {}

  async prepare(_backup: FullVmExport, step: TargetStep): Promise<void> {
    const { conn, schedule, vmUuid, settings } = this.options
    this.#task = step.task
    // The completion keys of the last run must be in the cache before replicas are judged on them.
    await conn.sync(step.signal)
    await destroyReplicas(conn, listReplicas(conn, { jobOrScheduleId: schedule.id, vmUuid, srUuid: null }), step.task, 'the unfinished replica of an earlier run')
    if (this.ownRetention && settings.deleteFirst) await this.retention(step, settings.copyRetention - 1)
  }

  async transferXva(backup: FullVmExport, xva: AsyncIterable<Buffer>, report: ProgressReporter, step: TargetStep): Promise<number> {
    const { conn, sr } = this.options
    this.#task = step.task
    let bytes = 0
    const body = Readable.from((async function* () {
      for await (const chunk of countedForLanes(xva, sr.uuid, report)) {
        bytes += chunk.length
        yield chunk
      }
    })(), { objectMode: false })
    // The replica is marked as soon as XAPI creates it: never started (by hand or HA) while it fills, and
    // recognised as debris if the import is cut.
    let early: Promise<boolean> | undefined
    const watch = watchImport(conn, ref => void (early = this.#identify(backup, ref).then(() => true, () => false)))
    try {
      // The export's length is unknown: xen-api then announces a huge body and closes once all is sent.
      const vmRef = await importVmXva(conn, body, undefined, sr.$ref, step.signal, watch.onTask)
      this.#unfinished = vmRef
      if (!((await early) ?? false)) await this.#identify(backup, vmRef)
      return bytes
    } catch (error) {
      this.#unfinished ??= watch.seen()
      await early
      await this.discard()
      throw error
    } finally {
      watch.stop()
      body.destroy()
    }
  }

  async commit(backup: FullVmExport): Promise<void> {
    const { conn, sr, job, schedule, vmUuid } = this.options
    const vmRef = this.#unfinished
    if (vmRef === undefined) throw new Error('commit before a transfer')
    await markReplicaComplete(conn, vmRef, { timestamp: backup.timestamp, jobId: job.id, scheduleId: schedule.id, vmUuid, srUuid: sr.uuid })
    this.#unfinished = undefined
    this.#replica = vmRef
  }

  async afterBackup(step: TargetStep): Promise<void> {
    if (this.ownRetention && !this.options.settings.deleteFirst) await this.retention(step, this.options.settings.copyRetention)
  }

  /** Removes the replica of a backup that failed before its completion mark. Never throws. */
  async discard(): Promise<void> {
    const vmRef = this.#unfinished
    if (vmRef === undefined) return
    const { conn } = this.options
    let failure = await discardImport(conn, vmRef).then(() => undefined, (error: unknown) => error)
    // The import has ended (or its wait is over): what is left is to destroy the VM once the pool answers again.
    for (let attempt = 1; failure !== undefined && attempt < DISCARD_ATTEMPTS; attempt++) {
      await sleep(DISCARD_RETRY_MS)
      failure = await destroyVmAndDisks(conn, vmRef).then(() => undefined, (error: unknown) => error)
    }
    if (failure === undefined) this.#unfinished = undefined
    else this.#task?.warning('the unfinished replica could not be removed; the next run of the schedule removes it', { vm: vmRef, error: (failure as Error).message })
  }

  async healthCheck(step: HealthCheckStep): Promise<void> {
    await checkReplica(this.options.conn, this.#replica, step)
  }

  async release(): Promise<void> {}

  /** XO's marks of a disaster recovery replica, but the completion keys: start blocked, HA off, tag and name. */
  async #identify(backup: FullVmExport, vmRef: string): Promise<void> {
    const { conn, job } = this.options
    await blockReplicaStart(conn, vmRef)
    await disableReplicaHa(conn, vmRef)
    await conn.call('VM.add_tags', vmRef, DR_TAG)
    await conn.call('VM.set_name_label', vmRef, replicaName(String(backup.records.vm.name_label ?? ''), job.name, backup.timestamp))
  }

}
