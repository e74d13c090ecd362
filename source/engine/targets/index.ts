// Where a VM backup goes: one target per remote and per SR of the job (engine/targets/target.ts is the
// protocol they all follow), made for each VM with the settings that apply to it there; in distributed mode
// one distributed target holds the remotes (or the SRs) and picks one of them per VM.
import { LifeboatError } from '../../util/errors.ts'
import { terminalSafeLine } from '../../util/terminal-text.ts'
import type { Task } from '../../tasks/index.ts'
import type { XapiRecord } from '../../xapi/index.ts'
import { resolveSettings } from '../jobs/index.ts'
import type { VmBackupContext } from '../run/vm-backup.ts'
import { DistributedDeltaTarget, DistributedFullTarget } from './distributed.ts'
import { RemoteDeltaTarget } from './remote-delta.ts'
import { RemoteFullTarget } from './remote-full.ts'
import type { RemoteTarget } from './remote-target.ts'
import { SrDeltaTarget } from './sr-delta.ts'
import { SrFullTarget } from './sr-full.ts'
import type { RetentionHolder } from './retention.ts'
import type { BackupTarget, DeltaBackupTarget, FullBackupTarget } from './target.ts'

export type { BackupTarget, DeltaBackupTarget, FullBackupTarget, TargetStep, SrTargetOptions } from './target.ts'

/**
 * The targets of one VM's backup. None at all is a rolling-snapshot job (the job names no remote and no SR
 * and keeps snapshots); a job whose remotes and SRs are all unavailable or keep nothing fails the VM instead.
 */
export function createTargets(context: VmBackupContext, vmUuid: string, task: Task): BackupTarget[] {
  const { job, schedule } = context
  const vmSettings = resolveSettings(job, schedule, { vmUuid })
  const remoteTargets = createRemoteTargets(context, vmUuid, task)
  const srTargets: Array<SrFullTarget | SrDeltaTarget> = []
  for (const [uuid, { conn, sr }] of context.srs) {
    const settings = resolveSettings(job, schedule, { vmUuid, target: { sr: uuid } })
    if (settings.copyRetention === 0) {
      task.warning(`nothing is replicated to SR ${terminalSafeLine(String(sr.name_label))}: the schedule "${schedule.name}" keeps 0 replicas there (set retention.replicas)`)
      continue
    }
    const options = { conn, sr, job, schedule, settings, vmUuid, source: context.conn, distributed: vmSettings.distributeReplications }
    srTargets.push(job.mode === 'full' ? new SrFullTarget(options) : new SrDeltaTarget(options))
  }
  const pool = <T extends BackupTarget & RetentionHolder>(kind: 'remote' | 'SR', members: T[], label: (member: T) => string, freeSpace: (member: T) => Promise<number | undefined>): BackupTarget => {
    const options = { kind, label, freeSpace, settings: vmSettings, timezone: schedule.timezone, random: Math.random }
    return job.mode === 'full' ? new DistributedFullTarget({ ...options, members: members as Array<T & FullBackupTarget> }) : new DistributedDeltaTarget({ ...options, members: members as Array<T & DeltaBackupTarget> })
  }
  const targets: BackupTarget[] = [
    ...(vmSettings.distributeBackups && remoteTargets.length > 0 ? [pool('remote', remoteTargets, member => member.name, remoteFreeSpace)] : remoteTargets),
    // The SRs' free space as their records said when the run started (XO's computeSRCandidate).
    ...(vmSettings.distributeReplications && srTargets.length > 0 ? [pool('SR', srTargets, member => terminalSafeLine(String(member.options.sr.name_label)), async member => srFreeSpace(member.options.sr))] : srTargets),
  ]
  if (targets.length === 0 && (job.remotes.length > 0 || job.srs.length > 0)) {
    const names = [...job.remotes.map(name => `remote ${name}`), ...job.srs.map(sr => `SR ${sr}`)]
    throw new LifeboatError('NO_TARGET', `The VM has no target in this run: none of the job's targets (${names.join(', ')}) is available with a retention above 0. Check the remotes, the SRs and the schedule's retention.`)
  }
  if (targets.length === 0 && vmSettings.snapshotRetention === 0) {
    throw new LifeboatError('NO_TARGET', 'The job has no remote and no SR, and keeps no snapshot: there is nothing to do. Add a target, or keep snapshots (a rolling-snapshot job).')
  }
  return targets
}

/**
 * The targets on the job's remotes found in `remotes` (a mirror passes those still lacking the backup it copies);
 * in a distributed job, each leaves its retention to the distributed target.
 */
export function createRemoteTargets(context: Pick<VmBackupContext, 'job' | 'schedule' | 'remotes'>, vmUuid: string, task: Task): Array<RemoteFullTarget | RemoteDeltaTarget> {
  const { job, schedule, remotes } = context
  const distributed = resolveSettings(job, schedule, { vmUuid }).distributeBackups
  const targets: Array<RemoteFullTarget | RemoteDeltaTarget> = []
  for (const name of job.remotes) {
    const handler = remotes.get(name)
    if (handler === undefined) continue
    const settings = resolveSettings(job, schedule, { vmUuid, target: { remote: name } })
    if (settings.exportRetention === 0) {
      task.warning(`nothing is written to remote ${name}: the schedule "${schedule.name}" keeps 0 backups there (set retention.backups)`)
      continue
    }
    const options = { name, handler, settings, vmUuid, jobId: job.id, scheduleId: schedule.id, timezone: schedule.timezone, distributed }
    targets.push(job.mode === 'full' ? new RemoteFullTarget(options) : new RemoteDeltaTarget(options))
  }
  return targets
}

/** A remote's free space when its backend can tell it (file shares), undefined when it cannot (object stores). */
async function remoteFreeSpace(target: RemoteTarget): Promise<number | undefined> {
  if (!target.handler.capabilities.freeSpaceKnown) return undefined
  const info = await target.handler.getInfo()
  if (!('available' in info)) throw new LifeboatError('REMOTE_SPACE_UNKNOWN', `The remote ${target.name} did not tell its free space, which a distributed job needs to choose; check that it is mounted and readable.`)
  return info.available
}

/** An SR's free space from its record. */
export function srFreeSpace(sr: XapiRecord): number {
  return Number(sr.physical_size ?? 0) - Number(sr.physical_utilisation ?? 0)
}
