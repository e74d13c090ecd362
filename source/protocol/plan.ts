// The plan of a backup run (`lifeboat job plan`, RPC job.plan, the TUI's plan view): what the next run of a
// job's schedule will do and what would stop it, decided by the engine's own functions (VM selection, base
// selection, target choice, settings resolution) without changing anything. This is the documented shape of
// `job plan --json`; fields are added, never renamed.
import { formatBytes, formatElapsed } from '../util/human.ts'
import { terminalSafeLine } from '../util/terminal-text.ts'

/** Something the run would hit, with what to do about it. */
export interface PlanProblem {
  /** A stable code (REMOTE_UNAVAILABLE, TARGET_TOO_SMALL, POOL_DISCONNECTED, SCHEDULE_DST_GAP, …). */
  code: string
  /** error: the run (or a VM, or a target) would fail; warning: it would run, not as expected. */
  severity: 'error' | 'warning'
  /** What is wrong, in a sentence. */
  message: string
  /** What to do, in a sentence. */
  remedy: string
  /** What it is about: a VM uuid, a remote name, an SR uuid, a schedule name. */
  subject?: string
}

/** A figure the plan expects, with where it comes from (an estimate is never presented as a fact). */
export interface Estimate {
  bytes: number
  /** 'allocated' (a full: the disk's allocated size from XAPI), 'median of N deltas' (from the kept run logs), 'unknown'. */
  basis: string
}

export interface PlannedDisk {
  /** The live VDI's uuid. */
  uuid: string
  name: string
  virtualSize: number
  /** full: the whole disk is sent; delta: only the blocks changed since its base. */
  mode: 'full' | 'delta'
  /** Why: 'delta from the snapshot of <date>', or why it goes full (no base on this target, fullInterval reached, …). */
  reason: string
  /** The target that refused the base, when one did. */
  refusedBy?: string
  expected: Estimate
}

export interface PlannedVm {
  uuid: string
  name: string
  poolId: string
  poolName: string
  /** Delta jobs: per disk; full jobs: the VM's disks with mode 'full'. */
  disks: PlannedDisk[]
  /** The targets (remote names, SR uuids) this VM's backup goes to. */
  targets: string[]
  /** Distributed jobs: the target chosen for this VM and why (free space figures, tie, random, chain). */
  choice?: { target: string; reason: string }
  /** Jobs with a health check SR: whether this VM's backup is checked, where, or why not (XO's tag rules). */
  healthCheck?: { checked: boolean; detail: string }
  expected: Estimate
  problems: PlanProblem[]
}

export interface PlannedTarget {
  kind: 'remote' | 'sr'
  /** The remote's name, or the SR's uuid. */
  id: string
  name: string
  /** Free space the target reports now; undefined: it cannot tell (S3, Azure). */
  freeSpace?: number
  /** The bytes this run is expected to write there. */
  expected: Estimate
  /** Backups (remotes) or replicas (SRs) retention would remove after the run. */
  deletions: number
  /** Deltas merged into their child by that retention (remotes, delta jobs). */
  merges: number
}

export interface PlanExclusion {
  uuid: string
  name: string
  poolName: string
  /** Why it is out: not listed, tag, power state, xo:no-bak, replica, template… */
  reason: string
}

export interface JobPlan {
  jobId: string
  jobName: string
  mode: 'full' | 'delta'
  scheduleId: string
  scheduleName: string
  /** The schedule's timezone: the one its times are told in. */
  timezone: string
  /** When the plan was made, and when the schedule fires next (absent: disabled, or never). */
  plannedAt: number
  nextRun?: number
  vms: PlannedVm[]
  /** The other VMs of the connected pools, and why this run leaves them out. */
  excluded: PlanExclusion[]
  targets: PlannedTarget[]
  cost: {
    snapshots: number
    /** VDI exports (delta) or VM exports (full). */
    exports: number
    merges: number
    expected: Estimate
    /** The run's expected duration under the pools' limits and the rates of recent runs; undefined without a recent run to measure. */
    window?: { seconds: number; basis: string }
  }
  problems: PlanProblem[]
}

/** The plan in one line: what a run's log opens with when the daemon planned it first. */
export function planSummary(plan: JobPlan): string {
  const full = plan.vms.filter(vm => vm.disks.some(disk => disk.mode === 'full')).length
  const vms = `${plan.vms.length} VM${plan.vms.length === 1 ? '' : 's'}${plan.mode === 'delta' && full > 0 ? ` (${full} with a full disk)` : ''}`
  const window = plan.cost.window === undefined ? '' : `, about ${formatElapsed(plan.cost.window.seconds * 1000)}`
  const problems = plan.problems.length === 0 ? 'no problem foreseen' : `${plan.problems.length} problem${plan.problems.length === 1 ? '' : 's'} foreseen: ${[...new Set(plan.problems.map(problem => problem.code))].join(', ')}`
  return `planned: ${vms}, ${formatBytes(plan.cost.expected.bytes)} expected${window}; ${problems}`
}

export interface PlanLine {
  text: string
  /** How a client colours it: a problem's severity, a heading, or plain. */
  tone: 'error' | 'warning' | 'heading' | 'dim' | 'plain'
}

/** The plan as lines of text (the CLI prints them, the TUI scrolls them), each line complete in itself. */
export function planLines(plan: JobPlan, formatDate: (ms: number) => string): PlanLine[] {
  const lines: PlanLine[] = []
  const add = (text: string, tone: PlanLine['tone'] = 'plain') => lines.push({ text, tone })
  const errors = plan.problems.filter(problem => problem.severity === 'error').length
  add(`Plan of job "${plan.jobName}" (${plan.mode}), schedule "${plan.scheduleName}"; next run ${plan.nextRun === undefined ? 'none' : formatDate(plan.nextRun)}`, 'heading')
  add(errors > 0 ? `${errors} problem${errors === 1 ? '' : 's'} would stop it (below)` : plan.problems.length > 0 ? `it would run, with ${plan.problems.length} warning${plan.problems.length === 1 ? '' : 's'} (below)` : 'nothing in the way', errors > 0 ? 'error' : plan.problems.length > 0 ? 'warning' : 'plain')
  add('')
  add(`VMs: ${plan.vms.length} backed up, ${plan.excluded.length} left out`, 'heading')
  for (const vm of plan.vms) {
    add(`  ${vm.name} (${vm.poolName}) → ${vm.targets.length === 0 ? 'no target' : vm.targets.map(id => plan.targets.find(target => target.id === id)?.name ?? id).join(', ')}: ${expected(vm.expected)}`)
    if (vm.choice !== undefined) add(`    distributed: ${vm.choice.reason}${/at random/.test(vm.choice.reason) ? '; the run draws again' : ''}`, 'dim')
    if (vm.healthCheck !== undefined) add(`    ${vm.healthCheck.checked ? 'health check' : 'no health check'}: ${vm.healthCheck.detail}`, 'dim')
    for (const disk of vm.disks) add(`    ${disk.mode === 'full' ? 'full ' : 'delta'} ${disk.name} (${formatBytes(disk.virtualSize)}): ${disk.reason}; ${expected(disk.expected)}`, disk.mode === 'full' && plan.mode === 'delta' ? 'warning' : 'dim')
  }
  add('')
  add('Targets', 'heading')
  for (const target of plan.targets) {
    const free = target.freeSpace === undefined ? 'free space unknown' : `${formatBytes(target.freeSpace)} free`
    add(`  ${target.kind === 'remote' ? 'remote' : 'SR'} ${target.name}: ${free}; receives ${expected(target.expected)}; retention removes ${target.deletions}${target.merges > 0 ? `, merges ${target.merges}` : ''}`)
  }
  if (plan.targets.length === 0) add('  none: a rolling-snapshot job', 'dim')
  add('')
  const { cost } = plan
  add(`Cost: ${cost.snapshots} snapshot${cost.snapshots === 1 ? '' : 's'}, ${cost.exports} export${cost.exports === 1 ? '' : 's'}, ${cost.merges} merge${cost.merges === 1 ? '' : 's'}, ${expected(cost.expected)}`, 'heading')
  add(`  window: ${cost.window === undefined ? 'unknown (no earlier run to measure rates from)' : `about ${formatElapsed(cost.window.seconds * 1000)} (${cost.window.basis})`}`)
  if (plan.problems.length > 0) {
    add('')
    add(`Problems (${plan.problems.length})`, 'heading')
    for (const problem of plan.problems) {
      add(`  ${problem.severity} ${problem.code}: ${problem.message}`, problem.severity)
      add(`    → ${problem.remedy}`, 'dim')
    }
  }
  if (plan.excluded.length > 0) {
    add('')
    add('Left out', 'heading')
    for (const vm of plan.excluded) add(`  ${vm.name} (${vm.poolName}): ${vm.reason}`, 'dim')
  }
  return lines.map(line => ({ ...line, text: terminalSafeLine(line.text) }))
}

function expected(estimate: Estimate): string {
  return `${formatBytes(estimate.bytes)} (${estimate.basis})`
}
