// The new-job wizard's working copy: text as typed, turned into a job (checked with the protocol's own
// schema, so mistakes show before anything is sent) and back from an existing job for editing.
import { parseJob } from '../../protocol/job.ts'
import type { Job, JobInput, RestorePoint, SmartSelection, Vm } from '../contract.ts'
import type { FormValues } from '../components/form.tsx'

export const POWER_CHOICES = ['any', 'running', 'halted', 'suspended', 'paused'] as const

export interface Draft {
  /** name, type ('backup' | 'mirror' | 'verify'), source (a mirror's source remote), mode, readData (a verify's), proxy (a backup's: a proxy's name or ON_APPLIANCE). */
  basics: FormValues
  selection: 'pick' | 'smart'
  picked: ReadonlySet<string>
  smart: FormValues
  smartPools: ReadonlySet<string>
  remotes: ReadonlySet<string>
  srs: ReadonlySet<string>
  schedule: FormValues
  settings: FormValues
  /** What the wizard does not edit, kept as it was: the other schedules, overrides, other settings. */
  kept: { id?: string; scheduleId?: string; otherSchedules: Job['schedules']; overrides?: Job['overrides']; settings: Record<string, unknown> }
}

const EDITED_SETTINGS = ['concurrency', 'compression', 'timeout', 'offlineSnapshot', 'checkpointSnapshot', 'deleteFirst', 'healthCheckSr', 'healthCheckVmsWithTags', 'healthCheckTimeout', 'distributeBackups', 'distributeReplications']

/** The Runs on choice of a job run by the appliance itself (no proxy): no proxy's name has spaces. */
export const ON_APPLIANCE = 'the appliance (none)'

/** The proxy a backup draft runs on; undefined: the appliance. */
export function proxyOf(draft: Draft): string | undefined {
  const proxy = String(draft.basics.proxy ?? '').trim()
  return proxy === '' || proxy === ON_APPLIANCE ? undefined : proxy
}

const text = (value: unknown) => (value === undefined || value === null ? '' : String(value))
/** A duration setting as the form shows it: whole minutes of the stored milliseconds, empty for none. */
const durationText = (value: unknown) => (typeof value === 'number' && value > 0 ? `${Math.round(value / 60000)}m` : text(value === 0 ? '' : value))

export function newDraft(): Draft {
  return {
    basics: { name: '', type: 'backup', source: '', mode: 'delta', readData: false, proxy: ON_APPLIANCE },
    selection: 'smart',
    picked: new Set(),
    smart: { tags: '', notTags: '', power: 'any' },
    smartPools: new Set(),
    remotes: new Set(),
    srs: new Set(),
    schedule: { name: 'daily', cron: '0 3 * * *', timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC', backups: '7', replicas: '', snapshots: '', fullInterval: '', enabled: true },
    settings: { concurrency: '2', compression: 'none', timeout: '', offlineSnapshot: false, checkpointSnapshot: false, deleteFirst: false, healthCheckSr: '', healthCheckVmsWithTags: '', healthCheckTimeout: '', distributeBackups: false, distributeReplications: false },
    kept: { otherSchedules: [], settings: {} },
  }
}

export function draftFromJob(job: Job): Draft {
  const [first, ...others] = job.schedules
  const settings = job.settings as Record<string, unknown>
  const smart: SmartSelection | undefined = 'smart' in job.vms ? job.vms.smart : undefined
  return {
    basics: { name: job.name, type: job.type, source: job.sourceRemote ?? '', mode: job.mode, readData: job.readData === true, proxy: job.proxy ?? ON_APPLIANCE },
    selection: smart === undefined ? 'pick' : 'smart',
    picked: new Set('uuids' in job.vms ? job.vms.uuids : []),
    smart: { tags: smart?.tags.join(', ') ?? '', notTags: smart?.notTags.join(', ') ?? '', power: smart?.powerState ?? 'any' },
    smartPools: new Set(smart?.pools ?? []),
    remotes: new Set(job.remotes),
    srs: new Set(job.srs),
    schedule: {
      name: first?.name ?? 'daily',
      cron: first?.cron ?? '0 3 * * *',
      timezone: first?.timezone ?? 'UTC',
      backups: text(first?.retention.backups),
      replicas: text(first?.retention.replicas),
      snapshots: text(first?.retention.snapshots),
      fullInterval: text(first?.fullInterval),
      enabled: first?.enabled ?? true,
    },
    settings: {
      concurrency: text(settings.concurrency ?? 2),
      compression: text(settings.compression ?? 'none'),
      timeout: durationText(settings.timeout),
      offlineSnapshot: settings.offlineSnapshot === true,
      checkpointSnapshot: settings.checkpointSnapshot === true,
      deleteFirst: settings.deleteFirst === true,
      healthCheckSr: text(settings.healthCheckSr),
      healthCheckVmsWithTags: Array.isArray(settings.healthCheckVmsWithTags) ? settings.healthCheckVmsWithTags.join(', ') : '',
      healthCheckTimeout: durationText(settings.healthCheckTimeout),
      distributeBackups: settings.distributeBackups === true,
      distributeReplications: settings.distributeReplications === true,
    },
    kept: {
      ...(job.id !== undefined && { id: job.id }),
      ...(first?.id !== undefined && { scheduleId: first.id }),
      otherSchedules: others,
      overrides: job.overrides,
      settings: Object.fromEntries(Object.entries(settings).filter(([k]) => !EDITED_SETTINGS.includes(k))),
    },
  }
}

const list = (value: unknown) =>
  String(value ?? '')
    .split(',')
    .map(s => s.trim())
    .filter(s => s !== '')

/** A number field: empty is absent, anything else must be a whole number (the schema says which). */
function count(value: unknown): number | undefined {
  const raw = String(value ?? '').trim()
  return raw === '' ? undefined : Number(raw)
}

export function smartOf(draft: Draft): SmartSelection {
  const power = String(draft.smart.power)
  return { pools: [...draft.smartPools], notPools: [], tags: list(draft.smart.tags), notTags: list(draft.smart.notTags), ...(power !== 'any' && { powerState: power as NonNullable<SmartSelection['powerState']> }) }
}

/** A VM as the wizard lists it: a pool's (with its power state), or one found on a mirror's source remote. */
export type ListedVm = Pick<Vm, 'uuid' | 'name' | 'poolId' | 'poolName' | 'tags'> & { powerState?: Vm['powerState'] }

/** The VMs a smart selection matches now (the daemon decides again when each run starts). */
export function matchSmart<V extends ListedVm>(smart: SmartSelection, vms: readonly V[]): V[] {
  return vms.filter(
    vm =>
      (smart.pools.length === 0 || smart.pools.includes(vm.poolId)) &&
      !smart.notPools.includes(vm.poolId) &&
      (smart.tags.length === 0 || smart.tags.some(tag => vm.tags.includes(tag))) &&
      !smart.notTags.some(tag => vm.tags.includes(tag)) &&
      (smart.powerState === undefined || vm.powerState?.toLowerCase() === smart.powerState),
  )
}

/** The VMs found on a mirror's source remote, one per VM with its newest backup's name and tags (as the filter matches them). */
export function sourceVms(points: readonly RestorePoint[], source: string): ListedVm[] {
  const byVm = new Map<string, { point: RestorePoint; count: number }>()
  for (const point of points) {
    const seen = byVm.get(point.vmUuid)
    if (seen === undefined || seen.point.timestamp < point.timestamp) byVm.set(point.vmUuid, { point, count: (seen?.count ?? 0) + 1 })
    else seen.count++
  }
  return [...byVm.values()].map(({ point, count }) => ({ uuid: point.vmUuid, name: point.vmName, poolId: '', poolName: `${count} backup${count === 1 ? '' : 's'} on ${source}`, tags: point.vmTags ?? [] }))
}

/** A mirror job copies the backups of a remote: it has no pools, no SR and nothing about snapshots. */
export const isMirror = (draft: Draft) => draft.basics.type === 'mirror'

/** Settings the wizard edits that mean something for a mirror (the others are about snapshots or exports from a pool); its health check checks the copies. */
export const MIRROR_SETTINGS = ['concurrency', 'timeout', 'deleteFirst', 'healthCheckSr', 'healthCheckVmsWithTags', 'healthCheckTimeout']

/** A verify job reads the backups on remotes: no mode, no SR, no snapshot, nothing kept. */
export const isVerify = (draft: Draft) => draft.basics.type === 'verify'

/** Its one setting: it only reads. */
export const VERIFY_SETTINGS = ['timeout']

export function jobOf(draft: Draft): JobInput {
  return isMirror(draft) ? mirrorJobOf(draft) : isVerify(draft) ? verifyJobOf(draft) : backupJobOf(draft)
}

function backupJobOf(draft: Draft): JobInput {
  const mode = String(draft.basics.mode) as 'full' | 'delta'
  const s = draft.settings
  const timeout = String(s.timeout ?? '').trim()
  const healthCheckSr = String(s.healthCheckSr ?? '').trim()
  const checkTags = String(s.healthCheckVmsWithTags ?? '').split(',').map(tag => tag.trim()).filter(tag => tag !== '')
  const checkTimeout = String(s.healthCheckTimeout ?? '').trim()
  const schedule = draft.schedule
  // A count for a kind of target the job does not have would keep nothing: it is dropped with its field.
  const kept = (['backups', 'replicas', 'snapshots'] as const).filter(k => (k === 'backups' ? draft.remotes.size > 0 : k === 'replicas' ? draft.srs.size > 0 : true))
  const retention = Object.fromEntries(kept.flatMap(k => (count(schedule[k]) === undefined ? [] : [[k, count(schedule[k])]])))
  const fullInterval = count(schedule.fullInterval)
  const proxy = proxyOf(draft)
  return {
    ...(draft.kept.id !== undefined && { id: draft.kept.id }),
    name: String(draft.basics.name).trim(),
    mode,
    vms: draft.selection === 'pick' ? { uuids: [...draft.picked] } : { smart: smartOf(draft) },
    remotes: [...draft.remotes],
    srs: [...draft.srs],
    ...(proxy !== undefined && { proxy }),
    settings: {
      ...draft.kept.settings,
      ...(count(s.concurrency) !== undefined && { concurrency: count(s.concurrency) }),
      ...(mode === 'full' && { compression: String(s.compression) as 'none' | 'gzip' | 'zstd' }),
      ...(timeout !== '' && { timeout }),
      ...(s.offlineSnapshot === true && { offlineSnapshot: true }),
      ...(s.checkpointSnapshot === true && { checkpointSnapshot: true }),
      ...(s.deleteFirst === true && { deleteFirst: true }),
      ...(healthCheckSr !== '' && { healthCheckSr }),
      ...(healthCheckSr !== '' && checkTags.length > 0 && { healthCheckVmsWithTags: checkTags }),
      ...(healthCheckSr !== '' && checkTimeout !== '' && { healthCheckTimeout: checkTimeout }),
      // Greyed below 2 targets: a choice made with more is dropped with the targets that allowed it.
      ...(s.distributeBackups === true && draft.remotes.size >= 2 && { distributeBackups: true }),
      ...(s.distributeReplications === true && draft.srs.size >= 2 && { distributeReplications: true }),
    },
    ...(draft.kept.overrides !== undefined && { overrides: draft.kept.overrides }),
    schedules: [
      {
        ...(draft.kept.scheduleId !== undefined && { id: draft.kept.scheduleId }),
        name: String(schedule.name).trim(),
        cron: String(schedule.cron).trim(),
        timezone: String(schedule.timezone).trim(),
        enabled: schedule.enabled === true,
        retention,
        ...(fullInterval !== undefined && { fullInterval }),
      },
      ...draft.kept.otherSchedules,
    ],
  } as JobInput
}

/** The mirror job of a draft: its source, the filter over the source's VMs (absent: all of them), its target remotes. */
function mirrorJobOf(draft: Draft): JobInput {
  const full = backupJobOf(draft)
  const smart = smartOf(draft)
  const filter = draft.selection === 'pick' ? (draft.picked.size > 0 ? { uuids: [...draft.picked] } : undefined) : smart.tags.length > 0 || smart.notTags.length > 0 ? { smart: { tags: smart.tags, notTags: smart.notTags } } : undefined
  const source = String(draft.basics.source ?? '').trim()
  const [{ fullInterval: _, retention, ...schedule }, ...others] = full.schedules as [JobInput['schedules'][number], ...JobInput['schedules']]
  const settings = full.settings as Record<string, unknown>
  return {
    ...(full.id !== undefined && { id: full.id }),
    name: full.name,
    type: 'mirror',
    mode: full.mode,
    ...(source !== '' && { sourceRemote: source }),
    ...(filter !== undefined && { vms: filter }),
    remotes: [...draft.remotes].filter(remote => remote !== source),
    settings: Object.fromEntries(Object.entries(settings).filter(([key]) => MIRROR_SETTINGS.includes(key) || !EDITED_SETTINGS.includes(key))),
    ...(full.overrides !== undefined && { overrides: full.overrides }),
    schedules: [{ ...schedule, retention: retention?.backups === undefined ? {} : { backups: retention.backups } }, ...others],
  } as JobInput
}

/** The verify job of a draft: its remotes, the VMs picked on them (none: every VM they hold), read data or not. */
function verifyJobOf(draft: Draft): JobInput {
  const full = backupJobOf(draft)
  const [{ fullInterval: _, retention: _kept, ...schedule }, ...others] = full.schedules as [JobInput['schedules'][number], ...JobInput['schedules']]
  const settings = full.settings as Record<string, unknown>
  return {
    ...(full.id !== undefined && { id: full.id }),
    name: full.name,
    type: 'verify',
    ...(draft.basics.readData === true && { readData: true }),
    ...(draft.picked.size > 0 && { vms: { uuids: [...draft.picked] } }),
    remotes: [...draft.remotes],
    settings: Object.fromEntries(Object.entries(settings).filter(([key]) => VERIFY_SETTINGS.includes(key) || !EDITED_SETTINGS.includes(key))),
    ...(full.overrides !== undefined && { overrides: full.overrides }),
    schedules: [{ ...schedule, retention: {} }, ...others],
  } as JobInput
}

export interface Problem {
  /** Where, as the schema says it: `schedules.0.cron`, `name`. */
  path: string
  message: string
}

/** The problems the job schema finds, then what the wizard's own targets imply, one sentence each, or none. */
export function problemsOf(draft: Draft): Problem[] {
  const job = jobOf(draft)
  return [...schemaProblems(job), ...retentionProblems(job)]
}

function schemaProblems(job: JobInput): Problem[] {
  try {
    parseJob(job)
    return []
  } catch (error) {
    return problemsIn(error) ?? [{ path: '(job)', message: (error as Error).message }]
  }
}

/** The per-field problems a JOB_INVALID refusal carries (the schema's or the daemon's), if it is one. */
export function problemsIn(error: unknown): Problem[] | undefined {
  const problems = (error as { data?: { problems?: unknown } } | null)?.data?.problems
  return Array.isArray(problems) ? problems.filter((p): p is Problem => typeof p?.path === 'string' && typeof p?.message === 'string') : undefined
}

/** Why a distributed toggle is greyed: fewer than 2 targets of its kind picked; undefined when it can be switched on. */
export function distributeUnavailable(draft: Pick<Draft, 'remotes' | 'srs'>, kind: 'remotes' | 'srs'): string | undefined {
  const count = draft[kind].size
  if (count >= 2) return undefined
  const noun = kind === 'remotes' ? 'remote' : 'SR'
  return `needs at least 2 ${noun}s; ${count} picked on Where`
}

/** Below 1 where a count must keep something; a count that is not a whole number is the schema's to report. */
const keepsNothing = (value: number | undefined) => value === undefined || (Number.isInteger(value) && value < 1)

/** What the edited schedule must keep for what the job sends where: a job that would write nothing somewhere is refused here. */
function retentionProblems(job: JobInput): Problem[] {
  const retention = job.schedules[0]?.retention ?? {}
  const remotes = job.remotes?.length ?? 0
  const srs = job.srs?.length ?? 0
  const at = (key: string) => `schedules.0.retention.${key}`
  const problems: Problem[] = []
  if (remotes === 0 && srs === 0 && keepsNothing(retention.snapshots)) {
    problems.push({ path: at('snapshots'), message: 'with no remote and no SR this is a rolling-snapshot job: keep at least 1 snapshot, or pick a remote or an SR on the Where step.' })
  }
  // Left empty, the daemon's default applies (and its checks speak); an explicit 0 is a mistake seen here.
  if (srs > 0 && retention.replicas !== undefined && keepsNothing(retention.replicas)) {
    const where = job.settings?.distributeReplications === true ? `across its ${srs} SRs: keep at least 1 replica` : `to ${srs} SR${srs === 1 ? '' : 's'}: keep at least 1 replica per SR`
    problems.push({ path: at('replicas'), message: `the job replicates ${where} (with 0, nothing is written there).` })
  }
  if (remotes > 0 && retention.backups !== undefined && keepsNothing(retention.backups)) {
    problems.push({ path: at('backups'), message: 'with 0, nothing is written to the remotes: keep at least 1 (left empty, 7 are kept).' })
  }
  return problems
}

/** What the wizard compares to tell a changed draft from the one it opened with. */
export function draftShape(draft: Draft): unknown {
  return { ...draft, picked: [...draft.picked], smartPools: [...draft.smartPools], remotes: [...draft.remotes], srs: [...draft.srs] }
}
