// The backup job as an administrator writes it (DESIGN.md's job file): zod schemas, one sentence per
// invalid field, and the settings that apply to one VM on one target under one schedule.
import { z } from 'zod'
import cron from 'node-cron'
import { LifeboatError } from '../util/errors.ts'
import { mergeSettings, settingsInputSchema, type Settings, type SettingsOverrides } from './settings.ts'

export function isValidTimezone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone })
    return true
  } catch {
    return false
  }
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December']
const FIELD_RANGES: Record<string, string> = {
  second: 'second (0-59)',
  minute: 'minute (0-59)',
  hour: 'hour (0-23)',
  'day of month': 'day of the month (1-31)',
  month: 'month (1-12 or JAN-DEC)',
  'week day': 'weekday (0-7 or SUN-SAT)',
}

/** Why a cron expression is refused, in a sentence (node-cron's own reason, reworded), or undefined when it is valid. */
export function cronProblem(expression: string): string | undefined {
  if (cron.validate(expression)) return undefined
  let reason: string
  try {
    cron.createTask(expression, () => {})
    return undefined
  } catch (error) {
    reason = (error as Error).message
  }
  const fields = /expected 5 or 6 fields but got (\d+)/.exec(reason)
  if (fields !== null) return `it has ${fields[1]} field${fields[1] === '1' ? '' : 's'}; write 5 (minute hour day-of-month month weekday, like "0 3 * * *"), or 6 with the seconds first.`
  const field = /^(.*) is a invalid expression for (.+)$/.exec(reason)
  if (field !== null) return `"${field[1]}" is not a valid ${FIELD_RANGES[field[2]!] ?? field[2]}.`
  const impossible = /^(\S+) (\S+) is an impossible day of month/.exec(reason)
  if (impossible !== null) {
    const months = impossible[2]!.split(',').map(month => MONTHS[Number(month) - 1] ?? month)
    return `${months.join(' and ')} ${months.length > 1 ? 'have' : 'has'} no day ${impossible[1]}: this schedule would never fire.`
  }
  return `this is not a valid cron expression (${reason}).`
}

/** A type error's sentence, or "required" when the field is absent. */
export function expect(message: string) {
  return (issue: { input?: unknown }) => (issue.input === undefined ? 'this field is required.' : message)
}

const nonEmpty = (what: string) => z.string({ error: expect(`${what} must be a text.`) }).trim().min(1, { error: `${what} must not be empty.` })
const uuidList = (what: string) => z.array(nonEmpty(what), { error: expect(`a list of ${what}s is expected.`) })

const smartSelection = z.strictObject({
  pools: uuidList('a pool uuid').default([]),
  notPools: uuidList('a pool uuid').default([]),
  tags: uuidList('a tag').default([]),
  notTags: uuidList('a tag').default([]),
  /** Absent: any power state. */
  powerState: z.enum(['running', 'halted', 'suspended', 'paused'], { error: expect('powerState must be "running", "halted", "suspended" or "paused" (or absent for all).') }).optional(),
})

// One object with either key (not a union) so that a mistake inside `smart` is reported at its own field.
const vmSelection = z
  .strictObject(
    { uuids: uuidList('a VM uuid').min(1, { error: 'list at least one VM uuid, or use a smart selection.' }).optional(), smart: smartSelection.optional() },
    { error: expect('vms must be { "uuids": [...] } or { "smart": { pools, notPools, tags, notTags, powerState } }.') },
  )
  .refine(vms => (vms.uuids === undefined) !== (vms.smart === undefined), { error: 'vms must have either "uuids" (a fixed list) or "smart" (a selection), not both or neither.' })
  .transform((vms): { uuids: string[] } | { smart: z.output<typeof smartSelection> } => (vms.uuids !== undefined ? { uuids: vms.uuids } : { smart: vms.smart! }))

const scheduleSchema = z
  .strictObject({
    /** Given by the daemon; XO's scheduleId in metadata and in xo:backup:schedule. */
    id: nonEmpty('a schedule id').optional(),
    name: nonEmpty('the schedule name'),
    cron: z.string({ error: expect('cron must be a text like "0 3 * * *".') }).superRefine((expression, context) => {
      const problem = cronProblem(expression)
      if (problem !== undefined) context.addIssue({ code: 'custom', message: problem })
    }),
    timezone: z.string({ error: expect('timezone must be an IANA name like "Europe/Paris".') }).refine(isValidTimezone, { error: 'this is not a known IANA timezone (like "Europe/Paris" or "UTC").' }),
    enabled: z.boolean({ error: 'enabled must be true or false.' }).default(true),
    /** Absent counts fall back to the job's exportRetention / copyRetention / snapshotRetention settings. */
    retention: z
      .strictObject({
        backups: z.number().int().nonnegative({ error: 'backups to keep per remote must be a whole number ≥ 0.' }).optional(),
        replicas: z.number().int().nonnegative({ error: 'replicas to keep per SR must be a whole number ≥ 0.' }).optional(),
        snapshots: z.number().int().nonnegative({ error: 'snapshots to keep on the source must be a whole number ≥ 0.' }).optional(),
      })
      .default({}),
    fullInterval: z.number().int().nonnegative({ error: 'fullInterval must be a whole number ≥ 0.' }).optional(),
    /** Any setting, for runs of this schedule only (e.g. forceFull on a weekly schedule). */
    settings: settingsInputSchema.optional(),
  })

/** What a mirror job copies when its `vms` is absent: every VM found on the source remote. */
export const ALL_VMS: VmSelection = { smart: { pools: [], notPools: [], tags: [], notTags: [] } }

/** Settings that only mean something when a snapshot is taken: a mirror job (it copies backups) refuses them. */
const SNAPSHOT_SETTINGS = ['offlineSnapshot', 'checkpointSnapshot', 'snapshotRetention', 'fullInterval', 'forceFull', 'compression', 'copyRetention', 'newMacAddresses'] as const
/** Settings that apply to the whole job: a schedule or an override cannot set them. */
const JOB_WIDE_SETTINGS = ['distributeBackups', 'distributeReplications'] as const
/** What a distributed job's retention is made of: counted across all its remotes (or SRs), it cannot differ from one to another. */
const POOLED_SETTINGS = { remotes: ['exportRetention', 'longTermRetention', 'deleteFirst'], srs: ['copyRetention', 'deleteFirst'] } as const

const jobObject = z
  .strictObject({
    id: nonEmpty('the job id').optional(),
    name: nonEmpty('the job name'),
    /**
     * 'backup' (the default): snapshots of the pools' VMs, to remotes and SRs. 'mirror' (XO's mirror backup):
     * copies the backups found on `sourceRemote` to `remotes`, in `mode` (full: XVA backups, delta: VHD chains).
     * 'verify': reads the backups on `remotes` and records each one's verification state; it writes nothing.
     */
    type: z.enum(['backup', 'mirror', 'verify'], { error: expect('type must be "backup" (snapshots of VMs), "mirror" (copies of the backups on another remote) or "verify" (checks of the backups on remotes).') }).default('backup'),
    /** Required but for verify jobs, which have none (stored as "full"). */
    mode: z.enum(['full', 'delta'], { error: expect('mode must be "full" or "delta".') }).optional(),
    /** Verify jobs: read every block and chunk back (checksums checked), not only the structure. */
    readData: z.boolean({ error: 'readData must be true or false.' }).optional(),
    /** A backup job's VMs; a mirror job's filter over the VMs of its source remote (uuids, or tags as the metadata records them), absent: all. */
    vms: vmSelection.optional(),
    /** Mirror jobs: the remote whose backups are copied (by name). */
    sourceRemote: nonEmpty('the source remote').optional(),
    /** Remotes by name. */
    remotes: uuidList('a remote name').default([]),
    /** Replication target SRs by uuid. */
    srs: uuidList('an SR uuid').default([]),
    /** The proxy its runs execute on (by name, 'lifeboat proxy list'); absent: on the appliance. */
    proxy: z.string({ error: 'proxy must be the name of a proxy.' }).min(1).max(64).optional(),
    settings: settingsInputSchema.default({}),
    /** Per-VM and per-target settings (XO's settings keyed by VM uuid, remote or SR). */
    overrides: z
      .strictObject({
        vms: z.record(z.string(), settingsInputSchema).default({}),
        remotes: z.record(z.string(), settingsInputSchema).default({}),
        srs: z.record(z.string(), settingsInputSchema).default({}),
      })
      .default({ vms: {}, remotes: {}, srs: {} }),
    schedules: z.array(scheduleSchema, { error: 'schedules must be a list.' }).min(1, { error: 'a job needs at least one schedule (it may be disabled, for runs by hand).' }),
  })

export const jobSchema = jobObject
  .superRefine((job, context) => {
    const problem = (path: Array<string | number>, message: string) => context.addIssue({ code: 'custom', path, message })
    const names = new Set<string>()
    const ids = new Set<string>()
    job.schedules.forEach((schedule, index) => {
      if (names.has(schedule.name)) problem(['schedules', index, 'name'], `another schedule is already named "${schedule.name}".`)
      names.add(schedule.name)
      // The id picks the schedule a run (and its retention) uses: two alike would run the wrong one.
      if (schedule.id !== undefined && ids.has(schedule.id)) problem(['schedules', index, 'id'], `another schedule already has the id "${schedule.id}"; remove this id (a new one is given) or make it unique.`)
      if (schedule.id !== undefined) ids.add(schedule.id)
    })
    if (new Set(job.remotes).size !== job.remotes.length) problem(['remotes'], 'a remote is listed twice.')
    if (job.type === 'verify') return verifyProblems(job, problem)
    if (job.mode === undefined) problem(['mode'], 'this field is required.')
    if (job.readData !== undefined) problem(['readData'], 'readData is for verify jobs (type "verify").')
    if (job.type === 'mirror') return mirrorProblems(job, problem)
    if (job.vms === undefined) problem(['vms'], 'this field is required.')
    if (job.sourceRemote !== undefined) problem(['sourceRemote'], 'sourceRemote is for mirror jobs (type "mirror"); a backup job takes its VMs from the pools.')
    jobWideProblems(job, problem)
    pooledProblems(job, problem)
    if (job.settings.distributeBackups === true && job.remotes.length < 2) problem(['settings', 'distributeBackups'], `distributing backups needs at least 2 remotes to spread them over; the job has ${job.remotes.length}. Add a remote or set it to false.`)
    if (job.settings.distributeReplications === true && job.srs.length < 2) problem(['settings', 'distributeReplications'], `distributing replications needs at least 2 SRs to spread them over; the job has ${job.srs.length}. Add an SR or set it to false.`)
    if (job.mode === 'delta' && (job.settings.compression ?? 'none') !== 'none') problem(['settings', 'compression'], 'compression applies to full backups only (delta backups are VHD files).')
    if (job.settings.newMacAddresses === true && (job.mode !== 'delta' || job.srs.length === 0)) problem(['settings', 'newMacAddresses'], 'newMacAddresses applies to continuous replication only (a delta job with SRs); disaster recovery keeps the MAC addresses of the XVA.')
    // XO asserts it too: a VM shut down for its snapshot has no memory to save. Said at the most specific layer that asks for one.
    const excluding = new Set<string>()
    const sets = (layer: SettingsOverrides | undefined) => layer?.offlineSnapshot !== undefined || layer?.checkpointSnapshot !== undefined
    job.schedules.forEach((schedule, index) => {
      for (const vmUuid of [undefined, ...Object.keys(job.overrides.vms)]) {
        const settings = resolveSettings(job, schedule, vmUuid === undefined ? {} : { vmUuid })
        if (!settings.offlineSnapshot || !settings.checkpointSnapshot) continue
        excluding.add(vmUuid !== undefined && sets(job.overrides.vms[vmUuid]) ? `overrides.vms.${vmUuid}` : sets(schedule.settings) ? `schedules.${index}.settings` : 'settings')
      }
    })
    for (const path of excluding) problem(path.split('.'), 'offlineSnapshot (shut the VM down for the snapshot) and checkpointSnapshot (a snapshot with its memory) exclude each other: a halted VM has no memory to save; keep one.')
  })
  .transform(job => ({ ...job, mode: job.mode ?? 'full', vms: job.vms ?? ALL_VMS }))

type Problem = (path: Array<string | number>, message: string) => void
type JobFields = z.output<typeof jobObject>

/** Every settings layer of a job: the job's, each schedule's, each override's, with its path. */
function settingsLayers(job: JobFields): Array<{ path: Array<string | number>; settings: SettingsOverrides | undefined }> {
  return [
    { path: ['settings'], settings: job.settings },
    ...job.schedules.map((schedule, index) => ({ path: ['schedules', index, 'settings'], settings: schedule.settings })),
    ...(['vms', 'remotes', 'srs'] as const).flatMap(kind => Object.entries(job.overrides[kind]).map(([key, settings]) => ({ path: ['overrides', kind, key], settings }))),
  ]
}

function jobWideProblems(job: JobFields, problem: Problem): void {
  for (const { path, settings } of settingsLayers(job).slice(1)) {
    for (const key of JOB_WIDE_SETTINGS) if (settings?.[key] !== undefined) problem([...path, key], `${key} applies to the whole job: set it in the job's settings, not here.`)
  }
}

/** A distributed job's remotes (or SRs) share one retention: a per-target override of it is refused. */
function pooledProblems(job: JobFields, problem: Problem): void {
  const pooled = { remotes: job.settings.distributeBackups === true, srs: job.settings.distributeReplications === true }
  for (const kind of ['remotes', 'srs'] as const) {
    if (!pooled[kind]) continue
    for (const [key, settings] of Object.entries(job.overrides[kind])) {
      for (const name of POOLED_SETTINGS[kind]) {
        if (settings[name] !== undefined) problem(['overrides', kind, key, name], `${name} cannot be set for one ${kind === 'remotes' ? 'remote' : 'SR'} of a distributed job: its retention counts the ${kind === 'remotes' ? 'backups of all its remotes' : 'replicas of all its SRs'} together. Set it for the whole job or the schedule.`)
      }
    }
  }
}

/** A mirror job: a source remote, at least one other remote to copy to, no SR, nothing about snapshots. */
function mirrorProblems(job: JobFields, problem: Problem): void {
  if (job.sourceRemote === undefined) problem(['sourceRemote'], 'a mirror job copies the backups of a remote: name it in sourceRemote.')
  if (job.remotes.length === 0) problem(['remotes'], 'a mirror job needs at least one remote to copy the backups to.')
  if (job.sourceRemote !== undefined && job.remotes.includes(job.sourceRemote)) problem(['remotes', job.remotes.indexOf(job.sourceRemote)], `the source remote "${job.sourceRemote}" cannot also be a target of its own mirror.`)
  if (job.srs.length > 0) problem(['srs'], 'a mirror job copies backups from remote to remote: it takes no SR (a replication is a backup job with SRs).')
  if (job.vms !== undefined && 'smart' in job.vms && (job.vms.smart.pools.length > 0 || job.vms.smart.notPools.length > 0 || job.vms.smart.powerState !== undefined)) {
    problem(['vms', 'smart'], "a mirror job filters the VMs of its source remote by uuid or by tags (as the backups recorded them); pools and power state do not apply.")
  }
  for (const { path, settings } of settingsLayers(job)) {
    for (const key of SNAPSHOT_SETTINGS) if (settings?.[key] !== undefined) problem([...path, key], `${key} does not apply to a mirror job: it copies backups already made, it takes no snapshot. Remove it.`)
    for (const key of JOB_WIDE_SETTINGS) if (settings?.[key] === true) problem([...path, key], `a mirror job copies every backup to every target remote: it cannot distribute them. Remove ${key}.`)
  }
  job.schedules.forEach((schedule, index) => {
    if (schedule.retention.replicas !== undefined || schedule.retention.snapshots !== undefined) problem(['schedules', index, 'retention'], 'a mirror job keeps backups on its target remotes only: set retention.backups, not replicas or snapshots.')
    if (schedule.fullInterval !== undefined) problem(['schedules', index, 'fullInterval'], 'fullInterval does not apply to a mirror job: it copies the chains as the source job made them.')
  })
}

/** A verify job: remotes to read, a VM filter by uuid, no SR, no mode, nothing about snapshots or retention. */
function verifyProblems(job: JobFields, problem: Problem): void {
  if (job.remotes.length === 0) problem(['remotes'], 'a verify job checks the backups on remotes: list at least one.')
  if (job.mode !== undefined) problem(['mode'], 'a verify job checks full and delta backups alike: remove mode.')
  if (job.srs.length > 0) problem(['srs'], 'a verify job checks backups on remotes: it takes no SR.')
  if (job.sourceRemote !== undefined) problem(['sourceRemote'], 'sourceRemote is for mirror jobs; a verify job checks the remotes it lists.')
  if (job.vms !== undefined && 'smart' in job.vms) problem(['vms', 'smart'], 'a verify job picks VMs by uuid ({ "uuids": [...] }), or all the remotes hold when vms is absent.')
  for (const { path, settings } of settingsLayers(job)) {
    for (const key of Object.keys(settings ?? {})) if (key !== 'timeout') problem([...path, key], `${key} does not apply to a verify job: it only reads backups (timeout is its one setting). Remove it.`)
  }
  job.schedules.forEach((schedule, index) => {
    if (Object.keys(schedule.retention).length > 0) problem(['schedules', index, 'retention'], 'a verify job keeps nothing: remove the retention.')
    if (schedule.fullInterval !== undefined) problem(['schedules', index, 'fullInterval'], 'fullInterval does not apply to a verify job.')
  })
}

export type JobInput = z.input<typeof jobSchema>
export type Job = z.output<typeof jobSchema>
export type Schedule = Job['schedules'][number]
export type VmSelection = z.output<typeof vmSelection>

export interface JobProblem {
  path: string
  message: string
}

/** Validates a job file; an invalid one is refused with JOB_INVALID listing one sentence per field. */
export function parseJob(input: unknown): Job {
  const parsed = jobSchema.safeParse(input)
  if (parsed.success) return parsed.data
  throw jobInvalid(parsed.error.issues.map(issue => ({ path: issue.path.map(String).join('.') || '(job)', message: sentence(issue) })))
}

/** JOB_INVALID with one line per problem (the schema's, or the daemon's checks against what it knows). */
export function jobInvalid(problems: JobProblem[]): LifeboatError {
  return new LifeboatError('JOB_INVALID', `The job is not valid:\n${problems.map(p => `- ${p.path}: ${p.message}`).join('\n')}`, { data: { problems } })
}

function sentence(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map(k => `"${k}"`).join(', ')}; check the spelling.`
  return issue.message
}

export type SettingsTarget = { remote: string } | { sr: string }

/**
 * The settings of one VM's backup on one target under one schedule, in XO's order: defaults → job →
 * schedule (its settings, then its retention and fullInterval) → VM → target.
 */
export function resolveSettings(job: Pick<Job, 'settings' | 'overrides'>, schedule: Schedule, context: { vmUuid?: string; target?: SettingsTarget } = {}): Settings {
  const fromSchedule = {
    ...schedule.settings,
    ...(schedule.retention.backups !== undefined && { exportRetention: schedule.retention.backups }),
    ...(schedule.retention.replicas !== undefined && { copyRetention: schedule.retention.replicas }),
    ...(schedule.retention.snapshots !== undefined && { snapshotRetention: schedule.retention.snapshots }),
    ...(schedule.fullInterval !== undefined && { fullInterval: schedule.fullInterval }),
  }
  const target = context.target === undefined ? undefined : 'remote' in context.target ? job.overrides.remotes[context.target.remote] : job.overrides.srs[context.target.sr]
  return mergeSettings(job.settings, fromSchedule, context.vmUuid === undefined ? undefined : job.overrides.vms[context.vmUuid], target)
}

/** What a job does, in the README's words: its mode on remotes and on SRs, or rolling snapshots when it has no target. */
export function jobModes(job: Pick<Job, 'mode' | 'remotes' | 'srs'> & { type?: Job['type'] }): string[] {
  if (job.type === 'mirror') return [`${job.mode} mirror`]
  if (job.type === 'verify') return ['verify']
  const modes = [
    ...(job.remotes.length > 0 ? [`${job.mode} backup`] : []),
    ...(job.srs.length > 0 ? [job.mode === 'full' ? 'disaster recovery' : 'continuous replication'] : []),
  ]
  return modes.length > 0 ? modes : ['rolling snapshots']
}

/** The schedule a run uses: by name or id, else the first. */
export function findSchedule(job: Job, nameOrId?: string): Schedule {
  if (nameOrId === undefined) return job.schedules[0]!
  const schedule = job.schedules.find(s => s.name === nameOrId || s.id === nameOrId)
  if (schedule === undefined) throw new LifeboatError('SCHEDULE_NOT_FOUND', `The job "${job.name}" has no schedule "${nameOrId}"; its schedules are ${job.schedules.map(s => `"${s.name}"`).join(', ')}.`)
  return schedule
}
