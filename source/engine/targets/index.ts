// Where a VM backup goes: one target per remote and per SR of the job (engine/targets/target.ts is the
// protocol they all follow), made for each VM with the settings that apply to it there.
import { LifeboatError } from '../../util/errors.ts'
import { terminalSafeLine } from '../../util/terminal-text.ts'
import type { Task } from '../../tasks/index.ts'
import { resolveSettings } from '../jobs/index.ts'
import type { VmBackupContext } from '../run/vm-backup.ts'
import { RemoteDeltaTarget } from './remote-delta.ts'
import { RemoteFullTarget } from './remote-full.ts'
import { SrDeltaTarget } from './sr-delta.ts'
import { SrFullTarget } from './sr-full.ts'
import type { BackupTarget } from './target.ts'

export type { BackupTarget, DeltaBackupTarget, FullBackupTarget, TargetStep, SrTargetOptions } from './target.ts'

/**
 * The targets of one VM's backup. None at all is a rolling-snapshot job (the job names no remote and no SR
 * and keeps snapshots); a job whose remotes and SRs are all unavailable or keep nothing fails the VM instead.
 */
export function createTargets(context: VmBackupContext, vmUuid: string, task: Task): BackupTarget[] {
  const { job, schedule } = context
  const targets: BackupTarget[] = createRemoteTargets(context, vmUuid, task)
  for (const [uuid, { conn, sr }] of context.srs) {
    const settings = resolveSettings(job, schedule, { vmUuid, target: { sr: uuid } })
    if (settings.copyRetention === 0) {
      task.warning(`nothing is replicated to SR ${terminalSafeLine(String(sr.name_label))}: the schedule "${schedule.name}" keeps 0 replicas there (set retention.replicas)`)
      continue
    }
    const options = { conn, sr, job, schedule, settings, vmUuid, source: context.conn }
    targets.push(job.mode === 'full' ? new SrFullTarget(options) : new SrDeltaTarget(options))
  }
  if (targets.length === 0 && (job.remotes.length > 0 || job.srs.length > 0)) {
    const names = [...job.remotes.map(name => `remote ${name}`), ...job.srs.map(sr => `SR ${sr}`)]
    throw new LifeboatError('NO_TARGET', `The VM has no target in this run: none of the job's targets (${names.join(', ')}) is available with a retention above 0. Check the remotes, the SRs and the schedule's retention.`)
  }
  if (targets.length === 0 && resolveSettings(job, schedule, { vmUuid }).snapshotRetention === 0) {
    throw new LifeboatError('NO_TARGET', 'The job has no remote and no SR, and keeps no snapshot: there is nothing to do. Add a target, or keep snapshots (a rolling-snapshot job).')
  }
  return targets
}

/** The targets on the job's remotes found in `remotes` (a mirror passes those still lacking the backup it copies). */
export function createRemoteTargets(context: Pick<VmBackupContext, 'job' | 'schedule' | 'remotes'>, vmUuid: string, task: Task): BackupTarget[] {
  const { job, schedule, remotes } = context
  const targets: BackupTarget[] = []
  for (const name of job.remotes) {
    const handler = remotes.get(name)
    if (handler === undefined) continue
    const settings = resolveSettings(job, schedule, { vmUuid, target: { remote: name } })
    if (settings.exportRetention === 0) {
      task.warning(`nothing is written to remote ${name}: the schedule "${schedule.name}" keeps 0 backups there (set retention.backups)`)
      continue
    }
    const options = { name, handler, settings, vmUuid, jobId: job.id, scheduleId: schedule.id, timezone: schedule.timezone }
    targets.push(job.mode === 'full' ? new RemoteFullTarget(options) : new RemoteDeltaTarget(options))
  }
  return targets
}
