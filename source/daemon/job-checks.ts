// What the job schema cannot know, checked when a job is created or changed (file, flags or wizard, all
// through the RPC): its remotes, pools and SRs (its health check SR too) exist here, every remote and SR gets backups or replicas to
// keep, a job without targets keeps snapshots (a rolling-snapshot job) rather than doing nothing, and a
// distributed job does not pool remotes that tell their free space with remotes that cannot.
import { LifeboatError } from '../util/errors.ts'
import { jobInvalid, resolveSettings, type Job, type JobProblem, type Schedule, type SettingsTarget } from '../protocol/job.ts'
import { DEFAULT_SETTINGS } from '../protocol/settings.ts'
import type { Pool, Sr } from '../protocol/methods.ts'
import { mixedSpaceProblem } from '../engine/targets/choose-target.ts'
import { findPool, findSr } from './inventory.ts'

export interface KnownTargets {
  /** The configured remotes by name: whether each tells its free space (undefined: it could not be opened). */
  /** Each remote: whether it tells its free space, and the proxy it lives on (`remote add --proxy`). */
  remotes: ReadonlyMap<string, { freeSpaceKnown: boolean | undefined; proxy?: string | undefined }>
  /** Every configured pool, connected or not. */
  pools: Pool[]
  /** The SRs of the connected pools that can hold VM disks. */
  srs: Sr[]
  /** Their ISO libraries and removable devices. */
  unusableSrs: Sr[]
  /** The proxies' names. */
  proxies: ReadonlySet<string>
}

/** The job with its smart selection's pools and its SRs stored as uuids (they may be given by name); JOB_INVALID lists every mistake. */
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
  if (job.sourceRemote !== undefined && !known.remotes.has(job.sourceRemote)) {
    problems.push({ path: 'sourceRemote', message: `No remote is named "${job.sourceRemote}"; 'npx lifeboat remote list' shows them, 'npx lifeboat remote add' adds one.` })
  }
  if (job.proxy !== undefined && !known.proxies.has(job.proxy)) {
    problems.push({ path: 'proxy', message: `No proxy is named "${job.proxy}"; 'npx lifeboat proxy list' shows them, 'npx lifeboat proxy add' adds one.` })
  }
  if (job.proxy !== undefined && job.type !== 'backup') problems.push({ path: 'proxy', message: `a ${job.type} job runs on the appliance: only backup jobs are delegated to a proxy for now.` })
  job.remotes.forEach((name, index) => {
    if (!known.remotes.has(name)) problems.push({ path: `remotes.${index}`, message: `No remote is named "${name}"; 'npx lifeboat remote list' shows them, 'npx lifeboat remote add' adds one.` })
    // A remote on a proxy is written by that proxy's runs only: the appliance reaches it through the proxy's channel.
    const on = known.remotes.get(name)?.proxy
    if (on !== undefined && job.type === 'backup' && job.proxy !== on) {
      problems.push({ path: `remotes.${index}`, message: `The remote "${name}" lives on the proxy "${on}": a backup job that writes to it runs there. Set "proxy": "${on}" (the wizard's Runs on), or choose a remote the ${job.proxy === undefined ? 'appliance' : `proxy "${job.proxy}"`} reaches itself.` })
    }
  })
  if (job.settings.distributeBackups === true) {
    const classes = job.remotes.flatMap(name => {
      const freeSpaceKnown = known.remotes.get(name)?.freeSpaceKnown
      return freeSpaceKnown === undefined ? [] : [{ name, freeSpaceKnown }]
    })
    const mixed = mixedSpaceProblem(classes)
    if (mixed !== undefined) problems.push({ path: 'settings.distributeBackups', message: mixed.message })
  }
  let vms = job.vms
  if ('smart' in vms) {
    const smart = vms.smart
    const uuids = (key: 'pools' | 'notPools') => smart[key].map((pool, index) => attempt(`vms.smart.${key}.${index}`, () => findPool(known.pools, pool).id) ?? pool)
    vms = { smart: { ...smart, pools: uuids('pools'), notPools: uuids('notPools') } }
  }
  const srs = resolveSrs(job, known, problems)
  const checkSr = (settings: Job['settings'] | undefined, path: string) => settings?.healthCheckSr === undefined || settings.healthCheckSr === '' ? settings
    : { ...settings, healthCheckSr: usableSr(known, settings.healthCheckSr, `${path}.healthCheckSr`, problems, 'hold the VM a health check restores')?.uuid ?? settings.healthCheckSr }
  const checkedEach = <T extends Job['settings']>(overrides: Record<string, T>, path: string) => Object.fromEntries(Object.entries(overrides).map(([key, settings]) => [key, checkSr(settings, `${path}.${key}`)!]))
  const resolved: Job = {
    ...job, srs: srs.map(sr => sr.uuid), settings: checkSr(job.settings, 'settings')!,
    schedules: job.schedules.map((schedule, index) => ({ ...schedule, ...(schedule.settings !== undefined && { settings: checkSr(schedule.settings, `schedules.${index}.settings`) }) })),
    // A health check SR named anywhere (a VM's, a remote's or an SR's own settings) is resolved as the job's is.
    overrides: {
      ...job.overrides,
      vms: checkedEach(job.overrides.vms, 'overrides.vms'),
      remotes: checkedEach(job.overrides.remotes, 'overrides.remotes'),
      srs: checkedEach(rekeyed(job.overrides.srs, srs), 'overrides.srs'),
    },
  }
  const vmUuids = [undefined, ...Object.keys(job.overrides.vms)]
  const settingsOf = (schedule: Schedule, target?: SettingsTarget) => vmUuids.map(vmUuid => resolveSettings(resolved, schedule, { ...(vmUuid !== undefined && { vmUuid }), ...(target !== undefined && { target }) }))
  resolved.schedules.forEach((schedule, index) => {
    const empty = job.remotes.filter(remote => settingsOf(schedule, { remote }).some(settings => settings.exportRetention === 0))
    if (empty.length > 0) {
      problems.push({
        path: `schedules.${index}.retention.backups`,
        message: `The schedule "${schedule.name}" keeps 0 backups on ${empty.map(r => `"${r}"`).join(', ')}: nothing would be written there. Keep at least 1 (without a retention, ${DEFAULT_SETTINGS.exportRetention} are kept).`,
      })
    }
    const noReplica = srs.filter(sr => settingsOf(schedule, { sr: sr.uuid }).some(settings => settings.copyRetention === 0))
    if (noReplica.length > 0) {
      problems.push({
        path: `schedules.${index}.retention.replicas`,
        message: `The schedule "${schedule.name}" keeps 0 replicas on the SR${noReplica.length > 1 ? 's' : ''} ${noReplica.map(sr => `"${sr.name}"`).join(', ')}: nothing would be replicated there. Keep at least 1 (without a retention, ${DEFAULT_SETTINGS.copyRetention} is kept).`,
      })
    }
    if (job.remotes.length === 0 && job.srs.length === 0 && settingsOf(schedule).some(settings => settings.snapshotRetention === 0)) {
      problems.push({
        path: `schedules.${index}.retention.snapshots`,
        message: `The job has no remote and no SR, and the schedule "${schedule.name}" keeps 0 snapshots: it would do nothing. Add a remote or an SR, or keep at least 1 snapshot (a rolling-snapshot job).`,
      })
    }
  })
  if (problems.length > 0) throw jobInvalid(problems)
  return { ...resolved, vms }
}

/** The job's SRs, each found once among the usable SRs of the connected pools (by uuid or unique name). */
function resolveSrs(job: Job, known: KnownTargets, problems: JobProblem[]): Sr[] {
  const found: Sr[] = []
  job.srs.forEach((uuidOrName, index) => {
    const path = `srs.${index}`
    const sr = usableSr(known, uuidOrName, path, problems, 'hold replicas')
    if (sr === undefined) return
    if (found.some(other => other.uuid === sr.uuid)) problems.push({ path, message: `the SR "${sr.name}" is listed twice.` })
    else found.push(sr)
  })
  return found
}

/** An SR of a connected pool that can hold VM disks, by uuid or unique name; a problem at `path` otherwise. */
function usableSr(known: KnownTargets, uuidOrName: string, path: string, problems: JobProblem[], purpose: string): Sr | undefined {
  const unusable = known.unusableSrs.find(sr => sr.uuid === uuidOrName || sr.name === uuidOrName)
  if (unusable !== undefined && !known.srs.some(sr => sr.uuid === uuidOrName || sr.name === uuidOrName)) {
    problems.push({ path, message: `The SR "${unusable.name}" (${unusable.uuid}) is an ISO library or a removable device: it cannot ${purpose}; 'npx lifeboat sr list' shows the SRs that can.` })
    return undefined
  }
  try {
    return findSr(known.srs, uuidOrName)
  } catch (error) {
    if (!(error instanceof LifeboatError)) throw error
    problems.push({ path, message: error.message })
    return undefined
  }
}

/** Per-SR overrides keyed by the SRs' uuids, as the job stores them (an override may name its SR). */
function rekeyed(overrides: Job['overrides']['srs'], srs: Sr[]): Job['overrides']['srs'] {
  const uuidOf = (key: string) => {
    const named = srs.filter(sr => sr.name === key)
    return srs.some(sr => sr.uuid === key) || named.length !== 1 ? key : named[0]!.uuid
  }
  return Object.fromEntries(Object.entries(overrides).map(([key, settings]) => [uuidOf(key), settings]))
}
