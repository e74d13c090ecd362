// What the job schema cannot know, checked when a job is created or changed (file, flags or wizard, all
// through the RPC): its remotes, pools and SRs exist here, and every remote gets backups to keep.
import { LifeboatError } from '../util/errors.ts'
import { jobInvalid, resolveSettings, type Job, type JobProblem } from '../protocol/job.ts'
import { DEFAULT_SETTINGS } from '../protocol/settings.ts'
import type { Pool, Sr } from '../protocol/methods.ts'
import { findPool, findSr } from './inventory.ts'

export interface KnownTargets {
  remotes: ReadonlySet<string>
  /** Every configured pool, connected or not. */
  pools: Pool[]
  /** The SRs of the connected pools. */
  srs: Sr[]
}

/** The job with its smart selection's pools stored as uuids (they may be given by name); JOB_INVALID lists every mistake. */
export function checkJob(job: Job, known: KnownTargets): Job {
  const problems: JobProblem[] = []
  const attempt = <T>(path: string, body: () => T): T | undefined => {
    try {
      return body()
    } catch (error) {
      if (!(error instanceof LifeboatError)) throw error
      problems.push({ path, message: error.message })
      return undefined
    }
  }
  job.remotes.forEach((name, index) => {
    if (!known.remotes.has(name)) problems.push({ path: `remotes.${index}`, message: `No remote is named "${name}"; 'npx lifeboat remote list' shows them, 'npx lifeboat remote add' adds one.` })
  })
  let vms = job.vms
  if ('smart' in vms) {
    const smart = vms.smart
    const uuids = (key: 'pools' | 'notPools') => smart[key].map((pool, index) => attempt(`vms.smart.${key}.${index}`, () => findPool(known.pools, pool).id) ?? pool)
    vms = { smart: { ...smart, pools: uuids('pools'), notPools: uuids('notPools') } }
  }
  const srsKnown = job.srs.map((sr, index) => attempt(`srs.${index}`, () => findSr(known.srs, sr))).every(sr => sr !== undefined)
  if (job.srs.length > 0 && srsKnown) {
    problems.push({ path: 'srs', message: 'Replication to SRs (disaster recovery, continuous replication) is not implemented yet; leave "srs" empty and back up to remotes.' })
  }
  job.schedules.forEach((schedule, index) => {
    const vmUuids = [undefined, ...Object.keys(job.overrides.vms)]
    const empty = job.remotes.filter(remote => vmUuids.some(vmUuid => resolveSettings(job, schedule, { ...(vmUuid !== undefined && { vmUuid }), target: { remote } }).exportRetention === 0))
    if (empty.length > 0) {
      problems.push({
        path: `schedules.${index}.retention.backups`,
        message: `The schedule "${schedule.name}" keeps 0 backups on ${empty.map(r => `"${r}"`).join(', ')}: nothing would be written there. Keep at least 1 (without a retention, ${DEFAULT_SETTINGS.exportRetention} are kept).`,
      })
    }
  })
  if (problems.length > 0) throw jobInvalid(problems)
  return { ...job, vms }
}
