// Distributed mode (XO's aggregated writers): one target standing for several remotes, or several SRs, of
// which each VM's backup uses exactly one. Locks and repairs happen on all of them; the chain's holder keeps
// a delta (and a full that fullInterval forces, as in XO); a new chain goes where choose-target.ts says;
// the transfer, the commit and a health check go to the chosen one only; retention counts the restore
// points on all of them together and deletes each where it lies. The run never knows it feeds a pool.
import { errorCode } from '../../util/errors.ts'
import type { Settings } from '../jobs/index.ts'
import type { DeltaVmExport, DiskBlock, ExportedDisk, FullVmExport, ProgressReporter } from '../sources/vm-export.ts'
import { chooseTarget, type Candidate, type TargetChoice } from './choose-target.ts'
import { retainAcross, type RetentionHolder } from './retention.ts'
import { roomFirstKeep } from './sr-delta.ts'
import type { HealthCheckStep } from '../restore/health-check.ts'
import type { BackupTarget, DeltaBackupTarget, FullBackupTarget, TargetStep } from './target.ts'

type Member = BackupTarget & RetentionHolder

export interface DistributedOptions<T extends Member> {
  kind: 'remote' | 'SR'
  members: T[]
  /** How the log names a member (a remote's name, an SR's name label). */
  label: (member: T) => string
  /** A member's free space for the choice, undefined when it cannot tell; throws when it should and cannot. */
  freeSpace: (member: T) => Promise<number | undefined>
  /** The VM's settings without a target: retention counts across all the members. */
  settings: Settings
  timezone: string
  random: () => number
}

abstract class DistributedTarget<T extends Member> {
  /** The members still in this VM's backup (one that fails before the choice is left out, with a warning). */
  #live: T[]
  readonly #space = new Map<T, number | undefined>()
  #choice: TargetChoice | undefined
  #chosen: T | undefined

  constructor(readonly options: DistributedOptions<T>) {
    this.#live = [...options.members]
  }

  get name(): string {
    return this.#chosen?.name ?? `${this.options.kind}s ${this.options.members.map(member => member.name).join(', ')}`
  }

  /** The chosen member's export data, and why it was chosen; before the choice, the pool. */
  get taskData(): Record<string, unknown> {
    if (this.#chosen === undefined) return { type: 'distributed', id: this.options.kind, name_label: this.name }
    return { ...this.#chosen.taskData, distributed: { reason: this.#choice!.reason, why: this.#choice!.why } }
  }

  protected get chosen(): T {
    if (this.#chosen === undefined) throw new Error('BUG: a distributed target writes before its choice')
    return this.#chosen
  }

  get #retention(): { keep: number; longTerm?: Settings['longTermRetention']; timezone: string } {
    const { settings, kind, timezone } = this.options
    return { keep: kind === 'remote' ? settings.exportRetention : settings.copyRetention, longTerm: kind === 'remote' ? settings.longTermRetention : undefined, timezone }
  }

  /** Locks and repairs on every member; room first (remotes, deleteFirst); the free space read for a new chain's place. */
  async beforeBackup(step: TargetStep): Promise<void> {
    await this.#onEach(member => member.beforeBackup(step), step)
    const { settings, kind } = this.options
    if (kind === 'remote' && settings.deleteFirst) await this.#retain(step, this.#retention.keep - 1)
    await this.readSpace(step)
    this.choose(undefined)
  }

  /**
   * The plan of a run (which takes no lock, so never calls beforeBackup): the choice as the run would make it
   * now — the one checkBases made, or, when no chain was asked about, the rule's over the free space read now.
   */
  async place(step: TargetStep): Promise<TargetChoice> {
    if (!this.spaceRead) await this.readSpace(step)
    if (this.#choice === undefined) this.choose(undefined)
    return this.#choice!
  }

  /** Reads every live member's free space (the plan of a run, which takes no lock, reads it at checkBases). */
  protected async readSpace(step: TargetStep): Promise<void> {
    await this.#onEach(async member => this.#space.set(member, await this.options.freeSpace(member)), step)
  }

  protected get spaceRead(): boolean {
    return this.#space.size > 0
  }

  /** Before the transfer: room first on SRs (deleteFirst; never the base replica of a delta), then the chosen member's own preparation. */
  protected async prepareChosen(backup: FullVmExport | DeltaVmExport, step: TargetStep, prepare: () => Promise<void>): Promise<void> {
    const { settings, kind } = this.options
    if (kind === 'SR' && settings.deleteFirst) await this.#retain(step, backup.mode === 'delta' ? roomFirstKeep(settings.copyRetention, backup) : settings.copyRetention - 1)
    const choice = this.#choice!
    step.task.info(`distributed: ${choice.why}`, { target: choice.target, reason: choice.reason, candidates: choice.candidates })
    await prepare()
  }

  /** Retention across every member (SRs: always after the backup, as a replica's own target does; remotes: unless done first). */
  async afterBackup(step: TargetStep): Promise<void> {
    const { settings, kind } = this.options
    if (kind === 'SR' || !settings.deleteFirst) await this.#retain(step, this.#retention.keep)
  }

  /** The health check runs on the target that holds the backup. */
  async healthCheck(step: HealthCheckStep): Promise<void> {
    await this.chosen.healthCheck(step)
  }

  async discard(): Promise<void> {
    await Promise.all(this.options.members.map(member => member.discard()))
  }

  async release(): Promise<void> {
    await Promise.all(this.options.members.map(member => member.release()))
  }

  protected get live(): readonly T[] {
    return this.#live
  }

  protected leaveOut(member: T, error: unknown, step: TargetStep): void {
    if (!this.#live.includes(member)) return
    this.#live = this.#live.filter(other => other !== member)
    step.task.warning(`${this.options.kind} ${this.options.label(member)} is left out of this VM's backup: ${errorCode(error)}: ${(error as Error).message}`, { target: member.name })
  }

  /** Chooses among the live members: the chain's holders when a delta continues one, else by free space. */
  protected choose(chainHolders: readonly T[] | undefined): void {
    const candidates: Candidate[] = this.#live.map(member => ({ name: member.name, label: this.options.label(member), free: this.#space.get(member) }))
    this.#choice = chooseTarget({ candidates, chainHolders: chainHolders?.map(member => member.name), random: this.options.random })
    this.#chosen = this.#live.find(member => member.name === this.#choice!.target)
  }

  /** Runs a step on every live member; one that fails is left out; all failing fails the step with their errors. */
  async #onEach(body: (member: T) => Promise<unknown>, step: TargetStep): Promise<void> {
    const errors: unknown[] = []
    await Promise.all(this.#live.map(member => body(member).catch(error => (errors.push(error), this.leaveOut(member, error, step)))))
    if (this.#live.length === 0) throw errors.length === 1 ? errors[0] : new AggregateError(errors, `every ${this.options.kind} of the distributed job failed`)
  }

  async #retain(step: TargetStep, keep: number): Promise<void> {
    const members = this.#live
    const deleted = await retainAcross(members, { ...this.#retention, keep }, step)
    const where = members.flatMap((member, index) => (deleted[index]! > 0 ? [`${deleted[index]} on ${this.options.label(member)}`] : []))
    if (where.length > 0) step.task.info(`retention across the ${members.length} ${this.options.kind}s keeps ${Math.max(0, keep)}: deleted ${where.join(', ')}`)
  }
}

export class DistributedFullTarget<T extends FullBackupTarget & RetentionHolder> extends DistributedTarget<T> implements FullBackupTarget {
  readonly mode = 'full'

  prepare(backup: FullVmExport, step: TargetStep): Promise<void> {
    return this.prepareChosen(backup, step, () => this.chosen.prepare(backup, step))
  }

  transferXva(backup: FullVmExport, xva: AsyncIterable<Buffer>, report: ProgressReporter, step: TargetStep): Promise<number> {
    return this.chosen.transferXva(backup, xva, report, step)
  }

  commit(backup: FullVmExport, step: TargetStep): Promise<void> {
    return this.chosen.commit(backup, step)
  }
}

export class DistributedDeltaTarget<T extends DeltaBackupTarget & RetentionHolder> extends DistributedTarget<T> implements DeltaBackupTarget {
  readonly mode = 'delta'

  /**
   * Every member says which bases it can chain onto; the one that continues the most disks keeps the backup
   * (several: the free-space rule among them), and the disks it cannot continue go full there, so that each
   * backup is whole on one target. No member continuing any disk: a new chain, placed by the rule.
   */
  async checkBases(bases: ReadonlyMap<string, string>, step: TargetStep): Promise<Map<string, string>> {
    if (!this.spaceRead) await this.readSpace(step)
    const answers = new Map<T, Map<string, string>>()
    await Promise.all(this.live.map(member => member.checkBases(bases, step).then(refused => void answers.set(member, refused), error => this.leaveOut(member, error, step))))
    if (this.live.length === 0) throw new Error(`every ${this.options.kind} of the distributed job failed to read its chains`)
    const continued = (member: T) => bases.size - (answers.get(member)?.size ?? bases.size)
    const most = Math.max(0, ...this.live.map(continued))
    this.choose(most === 0 ? undefined : this.live.filter(member => continued(member) === most))
    if (most > 0) return answers.get(this.chosen)!
    // No chain anywhere: each disk's reason names what every member found.
    return new Map([...bases.keys()].map(disk => [disk, this.live.map(member => answers.get(member)?.get(disk)).filter(reason => reason !== undefined).join('; ')]))
  }

  prepare(backup: DeltaVmExport, step: TargetStep): Promise<void> {
    return this.prepareChosen(backup, step, () => this.chosen.prepare(backup, step))
  }

  transferDisk(backup: DeltaVmExport, disk: ExportedDisk, blocks: AsyncIterable<DiskBlock>, report: ProgressReporter, step: TargetStep): Promise<number> {
    return this.chosen.transferDisk(backup, disk, blocks, report, step)
  }

  commit(backup: DeltaVmExport, step: TargetStep): Promise<void> {
    return this.chosen.commit(backup, step)
  }
}
