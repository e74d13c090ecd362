// The plan of a job's next run (`lifeboat job plan`): the VMs its selection resolves to, per VM and disk full or
// delta and why, the targets and what they will receive against their free space, the retention that follows,
// and the problems the run would hit — decided by the run's own functions (runCandidates, selectVms,
// runTargets, createTargets, xapiBaseOffer, decideBases, resolveSettings) and changing nothing: no lock, no
// snapshot, no write. Estimates (delta sizes, the window) come from the kept logs of earlier runs and say so.
import { formatBytes, formatElapsed, formatSpeed } from '../../util/human.ts'
import { errorCode } from '../../util/errors.ts'
import { terminalSafeLine } from '../../util/terminal-text.ts'
import { TaskLog, type Task, type TaskNode } from '../../tasks/index.ts'
import { getOldEntries, listVmBackups, parseBackupDate, vmDir } from '../../repository/index.ts'
import { vmDisks, type PoolConnection, type XapiRecord } from '../../xapi/index.ts'
import type { Estimate, JobPlan, PlanExclusion, PlannedDisk, PlannedTarget, PlannedVm, PlanProblem } from '../../protocol/plan.ts'
import { findSchedule, resolveSettings, selectVms, smartMismatch, exclusionReason, type Job, type Schedule, type Settings } from '../jobs/index.ts'
import { xapiBaseOffer } from '../sources/xapi-source.ts'
import { createTargets } from '../targets/index.ts'
import { mixedSpaceProblem } from '../targets/choose-target.ts'
import { listReplicas } from '../targets/replicas.ts'
import type { BackupTarget, DeltaBackupTarget } from '../targets/target.ts'
import { DistributedDeltaTarget, DistributedFullTarget } from '../targets/distributed.ts'
import { decideBases } from '../run/bases.ts'
import { notCheckedBecause } from '../restore/health-check.ts'
import { runCandidates, runTargets, type EngineContext } from '../run/backup-run.ts'
import { median, readHistory, type RunHistory } from './history.ts'
import { scheduleProblems } from './schedule-checks.ts'

export interface PlanOptions {
  /** The schedule's name or id (default: the first). */
  schedule?: string
  /** The job's earlier runs' settled trees, newest first (the daemon's kept logs). */
  history?: readonly TaskNode[]
  /** Pools configured but not connected now: a VM there is out of the run. */
  disconnectedPools?: ReadonlyArray<{ id: string; name: string; reason: string }>
  /** What the daemon knows is wrong with a remote (it could not be opened, its last test failed: a read-only share, a full one). */
  remoteProblems?: ReadonlyMap<string, { code: string; message: string; at?: number }>
  /** Runs in progress that hold targets of this job (the run would wait for their locks). */
  busy?: ReadonlyArray<{ runId: string; jobName: string; sameJob: boolean; remotes: readonly string[]; srs: readonly string[] }>
  now?: number
  /** A VM whose retention would merge more deltas than this in one run is a warning (default 4). */
  mergeWarning?: number
}

const DEFAULT_MERGE_WARNING = 4

export async function planBackupRun(job: Job & { id: string }, context: EngineContext, options: PlanOptions = {}): Promise<JobPlan> {
  const now = options.now ?? Date.now()
  const schedule = findSchedule(job, options.schedule)
  const scheduleWithId = { ...schedule, id: schedule.id ?? schedule.name }
  const settings = resolveSettings(job, schedule)
  const history = readHistory(options.history ?? [])
  const problems: PlanProblem[] = []
  const problem = (entry: PlanProblem) => problems.push(entry)

  const { nextRun, problems: scheduleIssues } = scheduleProblems(schedule, now)
  problems.push(...scheduleIssues)
  for (const busy of options.busy ?? []) {
    if (busy.sameJob) problem({ code: 'JOB_RUNNING', severity: 'warning', message: `The job is running now (run ${busy.runId}).`, remedy: 'A run that is due while it goes is skipped; wait for it to end.', subject: busy.runId })
    else if (busy.remotes.length + busy.srs.length > 0) {
      const shared = [...busy.remotes.map(name => `remote ${name}`), ...busy.srs.map(uuid => `SR ${uuid}`)].join(', ')
      problem({ code: 'TARGET_BUSY', severity: 'warning', message: `The run ${busy.runId} of job "${busy.jobName}" is writing to ${shared} now.`, remedy: "A VM's folder is locked while another run writes it: this run would wait for it. Spread the schedules apart if they overlap." })
    }
  }
  for (const pool of options.disconnectedPools ?? []) {
    if ('smart' in job.vms && (job.vms.smart.pools.length === 0 || job.vms.smart.pools.includes(pool.id)) && !job.vms.smart.notPools.includes(pool.id)) {
      problem({ code: 'POOL_DISCONNECTED', severity: 'warning', message: `The pool "${pool.name}" is not connected (${pool.reason}): its VMs would not be backed up.`, remedy: "Check the pool with 'npx lifeboat pool list'; the selection takes its VMs again once it connects.", subject: pool.id })
    }
  }

  // The VMs, as the run selects them.
  const candidates = runCandidates(context)
  const selection = selectVms(job.vms, candidates, job.id)
  const excluded = exclusions(job, candidates, selection.selected)
  for (const uuid of selection.missing) {
    const where = (options.disconnectedPools ?? []).length > 0 ? ` (pools not connected: ${options.disconnectedPools!.map(pool => pool.name).join(', ')})` : ''
    problem({ code: 'VM_NOT_FOUND', severity: 'error', message: `The VM ${uuid} is in no connected pool${where}.`, remedy: 'Connect its pool, or remove the VM from the job if it was deleted.', subject: uuid })
  }
  if (selection.selected.length === 0 && selection.missing.length === 0) {
    problem({ code: 'NO_VMS', severity: 'warning', message: 'The selection matches no VM now: the run would be skipped.', remedy: "Check the selection's pools, tags and power state against 'npx lifeboat vm list'." })
  }

  // The targets, as the run finds them.
  const found = runTargets(job, context)
  for (const name of found.missingRemotes) problem({ code: 'REMOTE_NOT_FOUND', severity: 'error', message: `The remote "${name}" is not configured or could not be opened.`, remedy: "Fix it with 'npx lifeboat remote test' or add it, then plan again.", subject: name })
  for (const uuid of found.missingSrs) problem({ code: 'SR_NOT_FOUND', severity: 'error', message: `The SR ${uuid} is on no connected pool.`, remedy: 'Connect its pool, or remove the SR from the job.', subject: uuid })
  if (settings.distributeBackups) {
    const mixed = mixedSpaceProblem([...found.remotes].map(([name, handler]) => ({ name, freeSpaceKnown: handler.capabilities.freeSpaceKnown })))
    if (mixed !== undefined) problem({ code: mixed.code, severity: 'error', message: mixed.message, remedy: 'Keep only remotes of one kind in the job (file shares or object stores), or turn distributeBackups off.' })
  }
  const targets = new Map<string, PlannedTarget & { readable: boolean }>()
  for (const [name, handler] of found.remotes) {
    const known = options.remoteProblems?.get(name)
    if (known !== undefined) {
      const when = known.at === undefined ? 'when it was opened' : `in its last test (${new Date(known.at).toISOString().slice(0, 16).replace('T', ' ')} UTC)`
      problem({ code: known.code, severity: 'error', message: `The remote "${name}" failed ${when}: ${known.message}`, remedy: `Fix it, then check it with 'npx lifeboat remote test ${name}' (a passing test clears this).`, subject: name })
    }
    const target: PlannedTarget & { readable: boolean } = { kind: 'remote', id: name, name, expected: { bytes: 0, basis: '' }, deletions: 0, merges: 0, readable: true }
    try {
      const space = await handler.getInfo()
      if (space.available !== undefined) target.freeSpace = space.available
    } catch (error) {
      target.readable = false
      problem({ code: errorCode(error) ?? 'REMOTE_UNAVAILABLE', severity: 'error', message: `The remote "${name}" does not answer: ${(error as Error).message}`, remedy: "Check it with 'npx lifeboat remote test " + name + "'.", subject: name })
    }
    targets.set(name, target)
  }
  for (const [uuid, { sr }] of found.srs) {
    const free = Number(sr.physical_size) - Number(sr.physical_utilisation)
    targets.set(uuid, { kind: 'sr', id: uuid, name: terminalSafeLine(String(sr.name_label)), freeSpace: Number.isFinite(free) ? free : undefined, expected: { bytes: 0, basis: '' }, deletions: 0, merges: 0, readable: true })
  }

  // Each VM, through the run's own decisions.
  const byUuid = new Map(candidates.map(candidate => [candidate.uuid, candidate.conn]))
  const vms: PlannedVm[] = []
  const scratch = TaskLog.start({ name: 'plan', data: {} })
  for (const uuid of selection.selected) {
    const conn = byUuid.get(uuid)!
    vms.push(await planVm(job, scheduleWithId, conn, uuid, { ...found, context }, targets, history, scratch))
  }
  scratch.end()

  // Retention after the run, per target.
  const mergeWarning = options.mergeWarning ?? DEFAULT_MERGE_WARNING
  for (const vm of vms) {
    for (const name of vm.targets) {
      const target = targets.get(name)
      if (target === undefined || !target.readable) continue
      const vmSettings = resolveSettings(job, schedule, { vmUuid: vm.uuid, target: target.kind === 'remote' ? { remote: name } : { sr: name } })
      const { deletions, merges } = target.kind === 'remote'
        ? await remoteRetention(found.remotes.get(name)!, job, scheduleWithId, vm.uuid, vmSettings)
        : srRetention(found.srs.get(name)!.conn, job, vm.uuid, name, vmSettings)
      target.deletions += deletions
      target.merges += merges
      if (target.kind === 'remote') {
        const since = await lockedSince(found.remotes.get(name)!, vm.uuid, now)
        if (since !== undefined) {
          problem({ code: 'TARGET_LOCKED', severity: 'warning', message: `The folder of VM "${vm.name}" on remote "${name}" is locked by a backup, merge or clean (of this daemon or another tool), refreshed ${Math.round((now - since) / 1000)} s ago.`, remedy: 'The run waits for the lock; if nothing runs, the lock is taken over once it is 60 s old.', subject: vm.uuid })
        }
      }
      if (merges > mergeWarning) {
        problem({ code: 'RETENTION_MANY_MERGES', severity: 'warning', message: `On remote "${name}", retention would merge ${merges} deltas of VM "${vm.name}" in one run (more than ${mergeWarning}): the run's clean phase will be long.`, remedy: 'Lower the retention step by step over several runs, or run it at a quiet hour.', subject: vm.uuid })
      }
    }
  }

  // What each target receives, against its free space.
  for (const target of targets.values()) {
    const receiving = vms.filter(vm => vm.targets.includes(target.id))
    target.expected = sumEstimates(receiving.map(vm => vm.expected))
    if (target.freeSpace !== undefined && target.expected.bytes > target.freeSpace) {
      const what = target.kind === 'remote' ? `remote "${target.name}"` : `SR "${target.name}"`
      problem({ code: 'TARGET_TOO_SMALL', severity: 'error', message: `${what} has ${formatBytes(target.freeSpace)} free; this run is expected to write ${formatBytes(target.expected.bytes)} there (${target.expected.basis}).`, remedy: target.kind === 'remote' ? 'Free space on it, lower the retention, or enable deleteFirst (retention before the transfer).' : 'Free space on the SR, or replicate to another SR.', subject: target.id })
    }
  }
  for (const vm of vms) problems.push(...vm.problems)

  const expected = sumEstimates(vms.map(vm => vm.expected))
  const window = estimateWindow(vms, settings, history, context)
  if (window !== undefined && settings.timeout > 0 && window.seconds * 1000 > settings.timeout) {
    problem({ code: 'TIMEOUT_TOO_SHORT', severity: 'warning', message: `The run is expected to take about ${formatElapsed(window.seconds * 1000)} (${window.basis}); its timeout is ${formatElapsed(settings.timeout)}: it would be cancelled before the end.`, remedy: 'Raise the timeout, raise the concurrency, or split the job.' })
  }
  problems.push(...settingsProblems(job, schedule, settings))

  return {
    jobId: job.id,
    jobName: job.name,
    mode: job.mode,
    scheduleId: scheduleWithId.id,
    scheduleName: schedule.name,
    timezone: schedule.timezone,
    plannedAt: now,
    ...(nextRun !== undefined && { nextRun }),
    vms,
    excluded,
    targets: [...targets.values()].map(({ readable: _readable, ...target }) => target),
    cost: {
      snapshots: vms.length,
      exports: job.mode === 'full' ? vms.length : vms.reduce((sum, vm) => sum + vm.disks.length, 0),
      merges: [...targets.values()].reduce((sum, target) => sum + target.merges, 0),
      expected,
      ...(window !== undefined && { window }),
    },
    problems,
  }
}

interface FoundTargets extends ReturnType<typeof runTargets> {
  context: EngineContext
}

async function planVm(job: Job & { id: string }, schedule: Schedule & { id: string }, conn: PoolConnection, vmUuid: string, found: FoundTargets, planned: ReadonlyMap<string, { readable: boolean }>, history: RunHistory, scratch: Task): Promise<PlannedVm> {
  const vm = conn.get('VM', vmUuid)
  const settings = resolveSettings(job, schedule, { vmUuid })
  const problems: PlanProblem[] = []
  const disks = vmDisks(conn, vm).map(disk => disk.vdi)
  const signal = new AbortController().signal
  const step = { task: scratch, signal }
  let targets: BackupTarget[] = []
  try {
    targets = createTargets({ conn, job, schedule, runId: 'plan', remotes: found.remotes, srs: found.srs, pools: found.context.pools, signal }, vmUuid, scratch).filter(target => planned.get(targetId(target))?.readable !== false)
  } catch (error) {
    problems.push({ code: errorCode(error) ?? 'NO_TARGET', severity: 'error', message: (error as Error).message, remedy: 'Check the job\'s targets and retention.', subject: vmUuid })
  }
  if (disks.length === 0) problems.push({ code: 'NO_DISKS', severity: 'warning', message: `The VM "${vm.name_label}" has no disk: it would be skipped.`, remedy: 'Nothing to do, or leave it out of the job.', subject: vmUuid })
  for (const disk of disks) {
    const sr = conn.byRef(disk.SR as string)
    if (sr !== undefined && !canSnapshot(sr)) {
      problems.push({ code: 'SR_CANNOT_SNAPSHOT', severity: 'error', message: `The disk "${disk.name_label}" of VM "${vm.name_label}" is on SR "${sr.name_label}" (${sr.type}), which cannot snapshot: the VM's backup would fail.`, remedy: 'Move the disk to an SR that can snapshot, or leave the VM (or that disk) out of the job.', subject: vmUuid })
    }
  }

  const plannedDisks: PlannedDisk[] = []
  if (job.mode === 'full') {
    for (const disk of disks) plannedDisks.push({ uuid: disk.uuid, name: String(disk.name_label), virtualSize: Number(disk.virtual_size), mode: 'full', reason: 'a full backup job: the whole VM is exported as an XVA', expected: allocated(conn, disk) })
  } else {
    const { offer } = xapiBaseOffer(conn, vm, disks, job.id, settings)
    const deltaTargets = targets.filter((target): target is DeltaBackupTarget => target.mode === 'delta')
    const decision = await decideBases(offer, deltaTargets, step, (target, error) => {
      problems.push({ code: errorCode(error) ?? 'TARGET_FAILED', severity: 'error', message: `${target.name} cannot be read for this VM's chains: ${(error as Error).message}`, remedy: 'Check the target; the run would leave it out for this VM.', subject: target.name })
      targets = targets.filter(other => other !== target)
    })
    for (const disk of disks) {
      const base = decision.bases.get(disk.uuid)
      if (base !== undefined) {
        const baseVdi = conn.byUuid(base)
        const deltas = history.deltaBytes.get(disk.uuid) ?? []
        const estimate = median(deltas.slice(0, 10))
        plannedDisks.push({
          uuid: disk.uuid, name: String(disk.name_label), virtualSize: Number(disk.virtual_size), mode: 'delta',
          reason: `delta from the job's last exported snapshot${snapshotDate(baseVdi)}`,
          expected: estimate === undefined ? { bytes: allocated(conn, disk).bytes, basis: "unknown: no earlier delta of this disk in the kept run logs; a full's size is the bound" } : { bytes: Math.round(estimate), basis: `median of the last ${Math.min(deltas.length, 10)} delta${deltas.length === 1 ? '' : 's'} of this disk` },
        })
      } else {
        const refusedBy = decision.refusedBy.get(disk.uuid)
        plannedDisks.push({ uuid: disk.uuid, name: String(disk.name_label), virtualSize: Number(disk.virtual_size), mode: 'full', reason: decision.fullReasons.get(disk.uuid) ?? 'no base', ...(refusedBy !== undefined && { refusedBy }), expected: allocated(conn, disk) })
      }
    }
  }
  // A distributed job: the one target this VM's backup goes to, and why (the chain's holder, or the rule).
  let choice: PlannedVm['choice']
  for (const target of targets) {
    if (!(target instanceof DistributedDeltaTarget || target instanceof DistributedFullTarget)) continue
    try {
      const placed = await target.place(step)
      choice = { target: placed.target, reason: placed.why }
    } catch (error) {
      problems.push({ code: errorCode(error) ?? 'TARGET_FAILED', severity: 'error', message: (error as Error).message, remedy: 'Check the remotes or SRs of the distributed job.', subject: vmUuid })
      targets = targets.filter(other => other !== target)
    }
  }
  let healthCheck: PlannedVm['healthCheck']
  if (settings.healthCheckSr !== '' && targets.length > 0) {
    const why = notCheckedBecause((vm.tags as string[] | undefined) ?? [], settings)
    const sr = [...found.context.pools.values()].map(pool => pool.byUuid(settings.healthCheckSr)).find(record => record?.$type === 'SR')
    healthCheck = why !== undefined ? { checked: false, detail: why } : { checked: true, detail: `restored (or cloned) onto SR ${sr === undefined ? settings.healthCheckSr : terminalSafeLine(String(sr.name_label))}, started, within ${formatElapsed(settings.healthCheckTimeout)}` }
    if (why === undefined && sr === undefined) {
      problems.push({ code: 'HEALTH_CHECK_SR_NOT_FOUND', severity: 'warning', message: `The health check SR ${settings.healthCheckSr} is on no connected pool: the backup of "${vm.name_label}" would be made, its check would fail.`, remedy: "Connect the SR's pool, or choose another healthCheckSr.", subject: vmUuid })
    }
  }
  const pool = conn.all('pool')[0]
  return {
    uuid: vmUuid,
    name: terminalSafeLine(String(vm.name_label)),
    poolId: conn.poolUuid,
    poolName: terminalSafeLine(String(pool?.name_label ?? conn.poolUuid)),
    disks: plannedDisks,
    targets: targets.map(targetId),
    expected: sumEstimates(plannedDisks.map(disk => disk.expected)),
    ...(choice !== undefined && { choice }),
    ...(healthCheck !== undefined && { healthCheck }),
    problems,
  }
}

function snapshotDate(vdi: XapiRecord | undefined): string {
  const time = parseBackupDate(String(vdi?.snapshot_time ?? ''))
  return time === undefined ? '' : ` (${new Date(time).toISOString().replace('T', ' ').slice(0, 19)} UTC)`
}

/** The name a target has in the plan: the remote's name, the SR's uuid (as the job lists them). */
function targetId(target: BackupTarget): string {
  return String(target.taskData.type === 'SR' ? target.taskData.id : target.name)
}

/** XAPI's own rule: an SR snapshots its VDIs when its allowed operations say so (ISO libraries and removable devices never do). */
function canSnapshot(sr: XapiRecord): boolean {
  const allowed = sr.allowed_operations as string[] | undefined
  if (allowed !== undefined && allowed.length > 0) return allowed.includes('vdi_snapshot')
  return !['iso', 'udev'].includes(String(sr.content_type)) && !['iso', 'udev'].includes(String(sr.type))
}

/**
 * What a full of the disk sends: XAPI's allocation of the disk and of the hidden base copies under it (its VHD
 * chain, sm_config vhd-parent: blocks written before a snapshot lie there), at most its virtual size.
 */
function allocated(conn: PoolConnection, disk: XapiRecord): Estimate {
  let bytes = 0
  const seen = new Set<string>()
  for (let vdi: XapiRecord | undefined = disk; vdi !== undefined && !seen.has(vdi.uuid); vdi = parentOf(conn, vdi)) {
    seen.add(vdi.uuid)
    bytes += Number(vdi.physical_utilisation) || 0
  }
  return { bytes: Math.min(bytes, Number(disk.virtual_size) || bytes), basis: 'allocated size, from XAPI' }
}

function parentOf(conn: PoolConnection, vdi: XapiRecord): XapiRecord | undefined {
  const parent = (vdi.sm_config as Record<string, string> | undefined)?.['vhd-parent']
  return parent === undefined ? undefined : conn.byUuid(parent)
}

function sumEstimates(estimates: readonly Estimate[]): Estimate {
  const kind = (basis: string) => (basis.startsWith('median') || basis === RECENT ? RECENT : basis.startsWith('unknown') || basis === BOUND ? BOUND : ALLOCATED)
  const bases = [...new Set(estimates.map(estimate => kind(estimate.basis)))]
  return { bytes: estimates.reduce((sum, estimate) => sum + estimate.bytes, 0), basis: estimates.length === 0 ? 'nothing to send' : bases.join(' + ') }
}

const RECENT = 'recent deltas'
const BOUND = "a full's size as the bound where no delta was seen"
const ALLOCATED = 'allocated sizes'

/** When the VM folder's lock (`<folder>.lock`, a lock folder or an object lock's candidates) was last refreshed, if it is held now. */
async function lockedSince(handler: Parameters<typeof listVmBackups>[0], vmUuid: string, now: number): Promise<number | undefined> {
  const lock = `${vmDir(vmUuid)}.lock`
  const entries = await handler.list(lock, { ignoreMissing: true }).catch(() => [] as string[])
  if (entries.length === 0) return undefined
  const times = await Promise.all([lock, ...entries.map(entry => `${lock}/${entry}`)].map(path => handler.stat(path).then(stat => stat.mtimeMs, () => 0)))
  const freshest = Math.max(...times)
  return now - freshest < LOCK_STALE_MS ? freshest : undefined
}

/** A lock not refreshed for this long is taken over (storage/lock.ts and object-lock.ts). */
const LOCK_STALE_MS = 60_000

/** The remote's retention of this schedule's backups after the run: one more backup, the oldest beyond the count removed. */
async function remoteRetention(handler: Parameters<typeof listVmBackups>[0], job: Job & { id: string }, schedule: Schedule & { id: string }, vmUuid: string, settings: Settings): Promise<{ deletions: number; merges: number }> {
  const backups = (await listVmBackups(handler, vmUuid).catch(() => [])).filter(backup => backup.jobId === job.id && backup.scheduleId === schedule.id && backup.mode === job.mode)
  const next = { timestamp: Number.MAX_SAFE_INTEGER }
  const old = getOldEntries(settings.exportRetention, [...backups, next], { ...(settings.longTermRetention !== undefined && { longTermRetention: settings.longTermRetention }), timezone: schedule.timezone })
  // A delta backup removed from the head of its chain is merged into the one after it.
  return { deletions: old.length, merges: job.mode === 'delta' ? old.length : 0 }
}

function srRetention(conn: PoolConnection, job: Job & { id: string }, vmUuid: string, srUuid: string, settings: Settings): { deletions: number; merges: number } {
  const replicas = listReplicas(conn, { jobOrScheduleId: job.id, vmUuid, srUuid })
  return { deletions: Math.max(0, replicas.length + 1 - settings.copyRetention), merges: 0 }
}

function exclusions(job: Job, candidates: ReturnType<typeof runCandidates>, selected: readonly string[]): PlanExclusion[] {
  const chosen = new Set(selected)
  const out: PlanExclusion[] = []
  for (const candidate of candidates) {
    if (chosen.has(candidate.uuid) || candidate.is_a_template || candidate.is_a_snapshot || candidate.is_control_domain) continue
    const reason = exclusionReason(candidate, job.id) ?? ('smart' in job.vms ? smartMismatch(candidate, job.vms.smart) : 'not listed in the job') ?? 'not selected'
    const pool = candidate.conn.all('pool')[0]
    out.push({ uuid: candidate.uuid, name: terminalSafeLine(String(candidate.name_label ?? candidate.uuid)), poolName: terminalSafeLine(String(pool?.name_label ?? candidate.poolUuid)), reason })
  }
  return out
}

/**
 * The run's expected duration: each VM's time (its median over recent runs, or its bytes at the median rate of
 * recent transfers plus a snapshot) placed on the job's concurrent lanes, longest first; undefined when no earlier
 * run measured anything.
 */
function estimateWindow(vms: readonly PlannedVm[], settings: Settings, history: RunHistory, context: EngineContext): { seconds: number; basis: string } | undefined {
  if (vms.length === 0) return undefined
  const rate = median(history.rates.slice(0, 20))
  const snapshot = median(history.snapshots.slice(0, 20)) ?? 0
  let measured = 0
  const durations: number[] = []
  for (const vm of vms) {
    const own = median((history.vmDurations.get(vm.uuid) ?? []).slice(0, 5))
    if (own !== undefined && vm.disks.every(disk => disk.mode === 'delta')) {
      durations.push(own)
      measured++
    } else if (rate !== undefined) durations.push(snapshot + (vm.expected.bytes / rate) * 1000)
    else return undefined
  }
  const exportSlots = Math.min(...[...context.pools.values()].map(conn => conn.limits.vdiExports.limit))
  const lanes = Math.max(1, Math.min(settings.concurrency === 0 ? vms.length : settings.concurrency, vms.length, Number.isFinite(exportSlots) ? exportSlots : vms.length))
  const ends = new Array<number>(lanes).fill(0)
  for (const duration of durations.sort((a, b) => b - a)) {
    const lane = ends.indexOf(Math.min(...ends))
    ends[lane]! += duration
  }
  const basis = [
    measured > 0 ? `${measured} VM${measured === 1 ? '' : 's'} at their recent durations` : undefined,
    measured < vms.length ? `${vms.length - measured} at ${formatSpeed(rate)} (median of recent transfers)` : undefined,
    `${lanes} at a time`,
  ].filter(Boolean).join(', ')
  return { seconds: Math.round(Math.max(...ends) / 1000), basis }
}

function settingsProblems(job: Job, schedule: Schedule, settings: Settings): PlanProblem[] {
  const problems: PlanProblem[] = []
  if (settings.deleteFirst && settings.exportRetention === 1 && job.remotes.length > 0) {
    problems.push({ code: 'SETTINGS_CONFLICT', severity: 'warning', message: 'deleteFirst with a retention of 1: the only backup is deleted before the new one is written; if the run fails, no backup is left.', remedy: 'Keep 2 backups, or turn deleteFirst off.' })
  }
  if (job.mode === 'delta' && settings.fullInterval === 1) {
    problems.push({ code: 'SETTINGS_CONFLICT', severity: 'warning', message: `fullInterval is 1 on schedule "${schedule.name}": every run is a full backup, the delta mode saves nothing.`, remedy: 'Raise fullInterval, or make it a full job.' })
  }
  return problems
}
