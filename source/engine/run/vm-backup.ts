// One VM's backup within a run (XO's _AbstractXapi.run), driving one source and its targets through the
// writer life cycle: targets' locks and repairs → the source's preparation (migration blocked, debris
// removed) → bases (delta: each target removes what it cannot chain onto) → the point in time → one export
// fed to every target in lock-step → commit → the snapshot marked exported → retention on the targets and
// on the source; then, for a VM the settings name, a health check of each committed target, whose outcome is its
// own task's and never the VM's. A target that fails is dropped and the others finish; the VM fails only when all
// do. With no target (a rolling-snapshot job) the snapshot and the source's retention are the whole backup.
import { abortReason, throwIfAborted } from '../../util/abort.ts'
import type { RemoteHandler } from '../../storage/index.ts'
import { LifeboatError } from '../../util/errors.ts'
import { HEALTH_CHECK_TASK, type Task } from '../../tasks/index.ts'
import type { PoolConnection, XapiRecord } from '../../xapi/index.ts'
import { resolveSettings, type Job, type Schedule } from '../jobs/index.ts'
import type { VmSource } from '../sources/source.ts'
import type { DeltaVmExport, DiskBlock, FullVmExport, SourceStream } from '../sources/vm-export.ts'
import { XapiVmSource, vmTaskData } from '../sources/xapi-source.ts'
import { createTargets } from '../targets/index.ts'
import { notCheckedBecause } from '../restore/health-check.ts'
import type { BackupTarget, DeltaBackupTarget, FullBackupTarget, TargetStep } from '../targets/target.ts'
import { decideBases } from './bases.ts'
import { forkAsyncIterable } from './fanout.ts'
import type { RateLimit } from './rate-limit.ts'

export { vmTaskData }

export interface VmBackupContext {
  conn: PoolConnection
  job: Job & { id: string }
  schedule: Schedule & { id: string }
  runId: string
  remotes: ReadonlyMap<string, RemoteHandler>
  /** The job's SRs found on the connected pools, by uuid, with their pool's connection. */
  srs: ReadonlyMap<string, { conn: PoolConnection; sr: XapiRecord }>
  /** Every connected pool, by uuid: where the health check SR is looked for. */
  pools: ReadonlyMap<string, PoolConnection>
  signal: AbortSignal
}

/** What a VM's health checks need: the SR (or why it cannot be had) and the budget of each check. */
export interface HealthCheckPlan {
  sr: () => { conn: PoolConnection; sr: XapiRecord }
  timeoutMs: number
  /** The targets checked, by name (a mirror checks each target on the last copy it received); absent: every target. */
  targets?: ReadonlySet<string>
}

export async function backupVm(context: VmBackupContext, vmUuid: string, runTask: Task, rate?: RateLimit): Promise<void> {
  const { conn, job, schedule, signal } = context
  const task = runTask.child('backup VM', vmTaskData(conn.get('VM', vmUuid)))
  await task.run(async () => {
    const targets = createTargets(context, vmUuid, task)
    const settings = resolveSettings(job, schedule, { vmUuid })
    const source = new XapiVmSource({ conn, vmUuid, job, schedule, settings, runId: context.runId, rolling: targets.length === 0 })
    const tags = (conn.get('VM', vmUuid).tags as string[] | undefined) ?? []
    await new VmBackup(job.mode, source, targets, task, signal, rate, targets.length > 0 ? healthCheckPlan(context.pools, tags, settings, task) : undefined).run()
  }, { signal })
}

/**
 * A VM's health checks, when its settings and its tags (the pool's, or for a copy those its backup recorded) call
 * for them (XO's rules); says why not on the VM's task otherwise. The SR is looked for on every connected pool.
 */
export function healthCheckPlan(pools: ReadonlyMap<string, PoolConnection>, tags: readonly string[], settings: ReturnType<typeof resolveSettings>, task: Task): HealthCheckPlan | undefined {
  if (settings.healthCheckSr === '') return undefined
  const why = notCheckedBecause(tags, settings)
  if (why !== undefined) {
    task.info(`no health check: ${why}`)
    return undefined
  }
  const uuid = settings.healthCheckSr
  return {
    timeoutMs: settings.healthCheckTimeout,
    sr: () => {
      for (const conn of pools.values()) {
        const sr = conn.byUuid(uuid)
        if (sr?.$type === 'SR') return { conn, sr }
      }
      throw new LifeboatError('HEALTH_CHECK_SR_NOT_FOUND', `The health check SR ${uuid} is on no connected pool; connect its pool, or choose another SR in the job's healthCheckSr.`)
    },
  }
}

/** One VM's backup from one source to its targets (a mirror run makes one per restore point it copies). */
export class VmBackup {
  readonly #failures = new Map<BackupTarget, unknown>()
  readonly #exportTasks = new Map<BackupTarget, Task>()
  /** Per target: its transfer task, the bytes written, and (delta) the bytes of each disk by live VDI uuid. */
  readonly #transfers = new Map<BackupTarget, { task: Task; size: number; disks: Record<string, number> }>()
  /** Targets that hold a complete backup of this run: never discarded, whatever fails after. */
  readonly #committed = new Set<BackupTarget>()
  readonly #discarded = new Set<BackupTarget>()

  constructor(
    readonly mode: 'full' | 'delta',
    readonly source: VmSource,
    readonly targets: BackupTarget[],
    readonly task: Task,
    readonly signal: AbortSignal,
    readonly rate: RateLimit | undefined,
    readonly healthCheck: HealthCheckPlan | undefined,
  ) {}

  get #vmStep(): TargetStep {
    return { task: this.task, signal: this.signal }
  }

  get #live(): BackupTarget[] {
    return this.targets.filter(target => !this.#failures.has(target))
  }

  async run(): Promise<void> {
    await this.#forEachTarget('beforeBackup', target => target.beforeBackup(this.#vmStep))
    try {
      await this.source.prepare(this.#vmStep)
      const bases = this.mode === 'delta' && this.targets.length > 0 ? await this.#selectBases() : new Map<string, string>()
      await this.source.capture(this.#vmStep)
      if (this.targets.length > 0) {
        const backup = this.mode === 'full' ? await this.#transferFull() : await this.#transferDelta(bases)
        await this.source.complete(backup)
        for (const target of this.#live) {
          const step = this.#exportStep(target)
          await target.afterBackup(step).then(async () => {
            await this.#checkHealth(target, step)
            step.task.end()
          }, error => this.#drop(target, error))
        }
      }
    } catch (error) {
      const reason = this.#reason(error)
      for (const { task } of this.#transfers.values()) if (!task.ended) task.fail(reason)
      for (const task of this.#exportTasks.values()) if (!task.ended) task.fail(reason)
      for (const target of this.targets) await this.#discard(target)
      await this.source.discard(this.#vmStep)
      throw error
    } finally {
      // A target dropped on the way (its transfer or commit failed) takes back what it wrote, once every stream is done.
      for (const target of this.#failures.keys()) await this.#discard(target)
      for (const target of this.targets) await target.release()
      await this.source.release(this.#vmStep)
    }
    await this.source.afterBackup(this.#vmStep)
    if (this.targets.length > 0 && this.#live.length === 0) throw this.#allTargetsFailed()
  }

  /** The target's health check, under its own task whose failure stays its own (tasks/fold.ts). Never throws. */
  async #checkHealth(target: BackupTarget, step: TargetStep): Promise<void> {
    const plan = this.healthCheck
    if (plan === undefined || (plan.targets !== undefined && !plan.targets.has(target.name))) return
    const task = step.task.child(HEALTH_CHECK_TASK)
    await task.run(async () => {
      const { conn, sr } = plan.sr()
      task.set('sr', { uuid: sr.uuid, name_label: sr.name_label })
      await target.healthCheck({ task, signal: this.signal, conn, sr, timeoutMs: plan.timeoutMs })
    }, { signal: this.signal }).catch(() => {})
  }

  /** The bases each disk can use on every target (XO's intersection), and why the others go full. */
  async #selectBases(): Promise<Map<string, string>> {
    const offer = await this.source.offerBases(this.#vmStep)
    const { bases, fullReasons } = await decideBases(offer, this.#live as DeltaBackupTarget[], this.#vmStep, (target, error) => this.#drop(target, error))
    if (this.#live.length === 0) throw this.#allTargetsFailed('checkBases')
    if (offer.deltasOnly === true) {
      const missing = [...offer.bases.keys()].find(disk => !bases.has(disk))
      if (missing !== undefined) {
        throw new LifeboatError('MIRROR_BASE_MISSING', `Missing vdi ${offer.bases.get(missing)} which is a base for a delta (disk ${offer.labels.get(missing) ?? missing}: ${fullReasons.get(missing)}). The target must hold the backup this delta follows: let the mirror copy the chain from its start (a full on the source job starts a new one).`)
      }
    }
    for (const [disk, reason] of fullReasons) {
      const message = `disk ${offer.labels.get(disk) ?? disk} is backed up in full: ${reason}`
      if (offer.continuesChain && offer.forcedFull === undefined) this.task.warning(message)
      else this.task.info(message)
    }
    return bases
  }

  async #transferFull(): Promise<FullVmExport> {
    const { backup, xva } = await this.source.openFull(this.#vmStep)
    try {
      this.#startExports(true)
      const targets = this.#live as FullBackupTarget[]
      await this.#forEachTarget('prepare', target => (target as FullBackupTarget).prepare(backup, this.#exportStep(target)))
      await this.#feed(xva, targets, (target, fork) => (target as FullBackupTarget).transferXva(backup, fork, xva.report, this.#exportStep(target)))
    } finally {
      xva.close()
    }
    await this.#commitAll(target => (target as FullBackupTarget).commit(backup, this.#exportStep(target)))
    return backup
  }

  async #transferDelta(bases: ReadonlyMap<string, string>): Promise<DeltaVmExport> {
    const { backup, disks } = await this.source.openDelta(bases, this.#vmStep)
    try {
      this.#startExports(backup.isFull)
      await this.#forEachTarget('prepare', target => (target as DeltaBackupTarget).prepare(backup, this.#exportStep(target)))
      await Promise.all(
        backup.disks.map(disk => {
          const stream = disks.get(disk.ref)!
          return this.#feed(stream, this.#live, (target, fork) => (target as DeltaBackupTarget).transferDisk(backup, disk, fork, stream.report, this.#exportStep(target)), disk.liveVdiUuid)
        }),
      )
    } finally {
      for (const stream of disks.values()) stream.close()
    }
    await this.#commitAll(target => (target as DeltaBackupTarget).commit(backup, this.#exportStep(target)))
    return backup
  }

  /** One export task per live target, each with its transfer task. */
  #startExports(isFull: boolean): void {
    for (const target of this.#live) this.#transfers.set(target, { task: this.#startExport(target, isFull).child('transfer'), size: 0, disks: {} })
  }

  #startExport(target: BackupTarget, isFull?: boolean): Task {
    const exportTask = this.task.child('export', { ...target.taskData, ...(isFull !== undefined && { isFull }) })
    this.#exportTasks.set(target, exportTask)
    return exportTask
  }

  #exportStep(target: BackupTarget): TargetStep {
    return { task: this.#exportTasks.get(target)!, signal: this.signal }
  }

  /** Why a step failed: once the run is cancelled (or timed out), that, whatever broke on the way out. */
  #reason(error: unknown): unknown {
    return this.signal.aborted ? abortReason(this.signal) : error
  }

  /** A target that fails is dropped, and its failure is its `export` task's, even before that task would have started (a remote gone before the run). */
  #drop(target: BackupTarget, error: unknown): void {
    if (this.#failures.has(target)) return
    this.#failures.set(target, error)
    const transfer = this.#transfers.get(target)
    if (transfer !== undefined && !transfer.task.ended) transfer.task.fail(this.#reason(error))
    const exportTask = this.#exportTasks.get(target) ?? this.#startExport(target)
    if (!exportTask.ended) exportTask.fail(this.#reason(error))
  }

  /** Runs one step on every live target at once; a target that fails is dropped; all failing fails the VM. */
  async #forEachTarget(step: string, body: (target: BackupTarget) => Promise<unknown>): Promise<void> {
    await Promise.all(this.#live.map(target => body(target).catch(error => this.#drop(target, error))))
    if (this.targets.length > 0 && this.#live.length === 0) throw this.#allTargetsFailed(step)
  }

  /**
   * Feeds one stream to the given live targets in lock-step. A target that fails is dropped (its fork
   * released so the others go on); an error of the stream itself fails the VM.
   */
  async #feed<T>(stream: SourceStream<T>, targets: BackupTarget[], write: (target: BackupTarget, fork: AsyncIterable<T>) => Promise<number>, disk?: string): Promise<void> {
    let sourceError: unknown
    const { rate, signal } = this
    const guarded = (async function* () {
      try {
        for await (const item of stream.items) {
          await rate?.take(byteLength(item), signal)
          yield item
        }
      } catch (error) {
        sourceError = error
        throw error
      }
    })()
    const live = targets.filter(target => !this.#failures.has(target))
    const forks = forkAsyncIterable(guarded, live.length)
    await Promise.all(
      live.map(async (target, i) => {
        const fork = forks[i]!
        try {
          // Disks go in parallel: read the running total after the await, or each disk overwrites the others' bytes.
          const written = await write(target, fork)
          const transfer = this.#transfers.get(target)!
          transfer.size += written
          if (disk !== undefined) transfer.disks[disk] = written
        } catch (error) {
          await fork[Symbol.asyncIterator]().return?.()
          if (sourceError === undefined) this.#drop(target, error)
        }
      }),
    )
    stream.close()
    throwIfAborted(this.signal)
    if (sourceError === undefined) await stream.settled.catch(error => (sourceError = error))
    if (sourceError !== undefined) throw sourceError
  }

  async #commitAll(commit: (target: BackupTarget) => Promise<void>): Promise<void> {
    await this.#forEachTarget('commit', async target => {
      const transfer = this.#transfers.get(target)!
      try {
        await commit(target)
        this.#committed.add(target)
        // The disks' sizes are what the plan of a later run estimates its deltas from.
        transfer.task.end({ size: transfer.size, ...(Object.keys(transfer.disks).length > 0 && { disks: transfer.disks }) })
      } catch (error) {
        this.#drop(target, error)
        await this.#discard(target)
      }
    })
  }

  async #discard(target: BackupTarget): Promise<void> {
    if (this.#committed.has(target) || this.#discarded.has(target)) return
    this.#discarded.add(target)
    await target.discard()
  }

  #allTargetsFailed(step?: string): Error {
    const errors = this.targets.map(target => this.#failures.get(target))
    if (errors.length === 1) return errors[0] as Error
    return new AggregateError(errors, `all targets have failed${step === undefined ? '' : `, step: ${step}`}`)
  }
}

function byteLength(item: unknown): number {
  if (Buffer.isBuffer(item)) return item.length
  return (item as DiskBlock | undefined)?.data?.length ?? 0
}

