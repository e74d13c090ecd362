// The plan of a run against the lab: what it says each VM and disk will do is what the run then does (full,
// delta, a fall back to full because a target lost its chain, a full forced by a schedule), its estimates come
// from the earlier runs' logs, and each problem it knows is found with its remedy. It changes nothing.
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { planBackupRun } from '../../source/engine/index.ts'
import { scheduleProblems } from '../../source/engine/plan/schedule-checks.ts'
import { planLines, type JobPlan } from '../../source/protocol/plan.ts'
import type { TaskNode } from '../../source/tasks/index.ts'
import type { RemoteHandler } from '../../source/storage/index.ts'
import { vmDisks } from '../../source/xapi/index.ts'
import { vmDir } from '../../source/repository/index.ts'
import { describeFailure, job, runToEnd, startEngineLab, tasksOf, vmByName, type EngineLab } from './helpers.ts'

const MiB = 1024 * 1024
const GiB = 1024 * MiB

interface Decisions {
  targets: string[]
  /** Disk label → why it goes full; absent: a delta. */
  full: Record<string, string>
}

/** What the run decided per VM: the targets it exported to, and each disk it sent in full with the reason it logged. */
function runDecisions(tree: TaskNode): Record<string, Decisions> {
  const out: Record<string, Decisions> = {}
  for (const vm of tree.tasks ?? []) {
    if (vm.message !== 'backup VM') continue
    const full: Record<string, string> = {}
    for (const entry of [...(vm.infos ?? []), ...(vm.warnings ?? [])]) {
      const match = /^disk (.+) is backed up in full: (.+)$/.exec(entry.message)
      if (match !== null) full[match[1]!] = match[2]!
    }
    const exports = (vm.tasks ?? []).filter(task => task.message === 'export')
    if (exports.length > 0 && exports.every(task => task.data?.isFull === true) && Object.keys(full).length === 0) full['*'] = 'full job'
    out[vm.data!.id as string] = { targets: exports.map(task => String(task.data!.id)).sort(), full }
  }
  return out
}

function planDecisions(plan: JobPlan): Record<string, Decisions> {
  const out: Record<string, Decisions> = {}
  for (const vm of plan.vms) {
    const full: Record<string, string> = {}
    if (plan.mode === 'full') full['*'] = 'full job'
    else for (const disk of vm.disks) if (disk.mode === 'full') full[`${disk.name} (${disk.uuid})`] = disk.reason
    out[vm.uuid] = { targets: [...vm.targets].sort(), full }
  }
  return out
}

/** The bytes each disk sent in a run (the largest over its targets), from the transfers' per-disk sizes. */
function sentPerDisk(tree: TaskNode): Map<string, number> {
  const sent = new Map<string, number>()
  for (const task of tasksOf(tree)) {
    if (task.message !== 'transfer') continue
    for (const [disk, bytes] of Object.entries((task.result as { disks?: Record<string, number> } | undefined)?.disks ?? {})) sent.set(disk, Math.max(sent.get(disk) ?? 0, bytes))
  }
  return sent
}

describe('job plan against the lab', () => {
  let env: EngineLab
  before(async () => {
    env = await startEngineLab({ remotes: ['a', 'b'] })
  })
  after(async () => env.cleanup())

  test('delta: the plan says what each run then does — first full, then deltas, a fall back to full, a forced full', async () => {
    const conn = env.conns[0]!
    const vms = ['tiny-running', 'tiny-halted'].map(name => vmByName(conn, name))
    const theJob = { ...job({
      mode: 'delta', vms: { uuids: vms.map(vm => vm.uuid) }, remotes: ['a', 'b'],
      schedules: [
        { id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 3, snapshots: 1 } },
        { id: 'schedule-2', name: 'weekly', cron: '0 4 * * 0', timezone: 'UTC', retention: { backups: 2, snapshots: 1 }, settings: { forceFull: true } },
      ],
    }), id: 'job-1' }
    const history: TaskNode[] = []
    const planThenRun = async (schedule: string, label: string) => {
      const plan = await planBackupRun(theJob, env.context, { schedule, history })
      assert.deepEqual(plan.problems.filter(problem => problem.severity === 'error'), [], `${label}: no error in the plan`)
      const tree = await runToEnd(env, theJob, { schedule })
      assert.equal(tree.status, 'success', describeFailure(tree))
      assert.deepEqual(runDecisions(tree), planDecisions(plan), `${label}: the run did what the plan said`)
      history.unshift(tree)
      return { plan, tree }
    }

    const first = await planThenRun('daily', 'first run')
    const firstSent = sentPerDisk(first.tree)
    for (const vm of first.plan.vms) {
      assert.deepEqual(vm.targets.sort(), ['a', 'b'])
      for (const disk of vm.disks) {
        assert.equal(disk.mode, 'full')
        assert.match(disk.reason, /no earlier exported snapshot of this job: first backup of the chain/)
        const ratio = firstSent.get(disk.uuid)! / disk.expected.bytes
        assert.ok(ratio > 0.95 && ratio < 1.1, `a full is expected at the disk's allocated size: sent ${firstSent.get(disk.uuid)}, expected ${disk.expected.bytes}`)
      }
    }
    assert.equal(first.plan.cost.snapshots, 2)
    assert.equal(first.plan.cost.window, undefined, 'no earlier run: no window estimate')

    const running = vmDisks(conn, conn.get('VM', vms[0]!.uuid))[0]!.vdi
    await env.lab.control.writeVdi(running.uuid, { offset: 4 * MiB, length: 3 * MiB, seed: 7 })
    const second = await planThenRun('daily', 'second run')
    const delta = second.plan.vms.find(vm => vm.uuid === vms[0]!.uuid)!.disks[0]!
    assert.equal(delta.mode, 'delta')
    assert.match(delta.reason, /^delta from the job's last exported snapshot \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)$/)
    assert.match(delta.expected.basis, /^unknown: no earlier delta/, 'the first delta has no delta before it to estimate from')
    const secondSent = sentPerDisk(second.tree).get(running.uuid)!
    assert.ok(secondSent <= delta.expected.bytes, `without a delta seen, a full's size (${delta.expected.bytes}) bounds the delta (${secondSent})`)
    assert.ok(second.plan.cost.window !== undefined, 'an earlier run measured the rates')

    assert.ok(secondSent > 3 * MiB && secondSent < 8 * MiB, `the transfer counts the disk's delta (${secondSent})`)

    // Remote b loses the chain of the running VM: the plan says that disk goes full, refused by b, as the run then logs.
    await rm(join(env.remoteDirs.get('b')!, 'xo-vm-backups', vms[0]!.uuid), { recursive: true })
    await env.lab.control.writeVdi(running.uuid, { offset: 9 * MiB, length: 1 * MiB, seed: 8 })
    const third = await planThenRun('daily', 'fall back to full')
    const fallBack = third.plan.vms.find(vm => vm.uuid === vms[0]!.uuid)!.disks[0]!
    assert.equal(fallBack.mode, 'full')
    assert.equal(fallBack.refusedBy, 'b')
    assert.match(fallBack.reason, /no earlier backup of this disk on remote b/)
    const other = third.plan.vms.find(vm => vm.uuid === vms[1]!.uuid)!.disks[0]!
    assert.equal(other.mode, 'delta', 'the other VM keeps its chain on both remotes')

    const forced = await planThenRun('weekly', 'forced full')
    for (const vm of forced.plan.vms) for (const disk of vm.disks) assert.equal(disk.reason, 'a full backup was asked (forceFull)')

    // The estimate of a delta is the median of what the last deltas of that disk sent, as the logs recorded them.
    const next = await planBackupRun(theJob, env.context, { schedule: 'daily', history })
    const estimate = next.vms.find(vm => vm.uuid === vms[0]!.uuid)!.disks[0]!.expected
    assert.equal(estimate.basis, 'median of the last 1 delta of this disk', 'one delta of that disk in the logs (the others were fulls)')
    assert.equal(estimate.bytes, secondSent)
  })

  test('full: every VM goes whole to every remote; retention after the run is counted per target', async () => {
    const conn = env.conns[0]!
    const vm = vmByName(conn, 'tiny-halted')
    const theJob = { ...job({ mode: 'full', vms: { uuids: [vm.uuid] }, remotes: ['a'], schedules: [{ id: 'f', name: 'f', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 1 } }] }), id: 'job-full' }
    for (let run = 0; run < 2; run++) {
      const plan = await planBackupRun(theJob, env.context)
      assert.equal(plan.targets[0]!.deletions, run, `run ${run}: retention of 1 removes ${run} backup after the run`)
      const tree = await runToEnd(env, theJob)
      assert.equal(tree.status, 'success', describeFailure(tree))
      assert.deepEqual(runDecisions(tree), planDecisions(plan))
    }
  })

  test('problems, each with a remedy: a missing remote, a target too small, a disconnected pool, a conflict, many merges', async () => {
    const conn = env.conns[0]!
    const vm = vmByName(conn, 'tiny-running')
    const small: RemoteHandler = Object.create(env.remotes.get('a')!, { getInfo: { value: async () => ({ size: 4 * MiB, used: 3 * MiB, available: MiB }) } })
    const context = { ...env.context, remotes: new Map([['a', small]]) }
    const theJob = { ...job({ mode: 'delta', vms: { smart: { tags: ['prod'] } }, remotes: ['a', 'gone'], settings: { deleteFirst: true }, schedules: [{ id: 'p', name: 'p', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 1 } }] }), id: 'job-problems' }
    const plan = await planBackupRun(theJob, context, { disconnectedPools: [{ id: 'pool-x', name: 'far away', reason: 'connection refused' }] })
    const codes = plan.problems.map(problem => problem.code).sort()
    assert.deepEqual(codes, ['POOL_DISCONNECTED', 'REMOTE_NOT_FOUND', 'SETTINGS_CONFLICT', 'TARGET_TOO_SMALL'])
    for (const problem of plan.problems) assert.ok(problem.remedy.length > 10, `${problem.code} has a remedy`)
    assert.match(plan.problems.find(problem => problem.code === 'TARGET_TOO_SMALL')!.message, /remote "a" has 1\.0 MiB free; this run is expected to write/)
    assert.deepEqual(plan.vms.map(v => v.uuid), [vm.uuid])
    assert.deepEqual(plan.excluded.map(v => [v.name, v.reason]), [['tiny-halted', 'it has none of the tags "prod"']])

    // An SR whose allowed operations (XAPI's) leave out vdi_snapshot: the VM's backup would fail. The lab's SRs
    // all snapshot, so the pool's records are seen through a view that changes that one SR's.
    const srRef = vmDisks(conn, vm)[0]!.vdi.SR as string
    const view = new Proxy(conn, {
      get(target, property) {
        if (property === 'byRef') return (ref: string) => (ref === srRef ? { ...target.byRef(ref)!, allowed_operations: ['vdi_create', 'vdi_destroy'] } : target.byRef(ref))
        const value = Reflect.get(target, property, target) as unknown
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const unsnapshottable = await planBackupRun(theJob, { ...env.context, pools: new Map([[conn.poolUuid, view]]) })
    const refused = unsnapshottable.problems.find(problem => problem.code === 'SR_CANNOT_SNAPSHOT')
    assert.ok(refused !== undefined && refused.severity === 'error' && refused.subject === vm.uuid, JSON.stringify(unsnapshottable.problems))

    // A job that health-checks VMs tagged prod: the plan says which VM is checked, where, and why the other is not.
    const checkSr = conn.byRef(vmDisks(conn, vm)[0]!.vdi.SR as string)!
    const checking = await planBackupRun({ ...job({ mode: 'delta', vms: { uuids: [vm.uuid, vmByName(conn, 'tiny-halted').uuid] }, remotes: ['a'], settings: { healthCheckSr: checkSr.uuid, healthCheckVmsWithTags: ['prod'] } }), id: 'job-checks' }, env.context)
    assert.deepEqual(checking.vms.map(planned => [planned.name, planned.healthCheck?.checked]), [['tiny-running', true], ['tiny-halted', false]])
    assert.match(checking.vms[0]!.healthCheck!.detail, new RegExp(`onto SR ${String(checkSr.name_label)}, started, within 10m00s`))
    assert.equal(checking.vms[1]!.healthCheck!.detail, 'the VM has none of the tags prod')

    // Another backup, merge or clean holds the VM's folder on the remote: the run would wait for it.
    const lock = await env.remotes.get('a')!.lock(vmDir(vm.uuid))
    try {
      const locked = await planBackupRun({ ...job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a'] }), id: 'job-1' }, env.context)
      assert.match(locked.problems.find(problem => problem.code === 'TARGET_LOCKED')?.message ?? '', /The folder of VM "tiny-running" on remote "a" is locked by a backup, merge or clean/, JSON.stringify(locked.problems))
    } finally {
      await lock.release()
    }
    const unlocked = await planBackupRun({ ...job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a'] }), id: 'job-1' }, env.context)
    assert.equal(unlocked.problems.find(problem => problem.code === 'TARGET_LOCKED'), undefined, 'released: no lock in the way')

    const merging = await planBackupRun({ ...job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a'] }), id: 'job-1' }, env.context, { mergeWarning: 0 })
    const many = merging.problems.find(problem => problem.code === 'RETENTION_MANY_MERGES')
    assert.ok(many !== undefined, `retention 3 over the 4 delta backups of the first test merges: ${JSON.stringify(merging.problems)}`)
  })
})

test('schedules: the next run, a DST gap told with the time it really fires, a schedule that never fires, a disabled one', () => {
  const now = Date.UTC(2027, 0, 10)
  const paris = scheduleProblems({ name: 'night', cron: '30 2 * * *', timezone: 'Europe/Paris', enabled: true, retention: {} }, now)
  assert.equal(paris.nextRun, Date.UTC(2027, 0, 10, 1, 30), '02:30 in Paris in January is 01:30 UTC')
  const gap = paris.problems.find(problem => problem.code === 'SCHEDULE_DST_GAP')
  assert.ok(gap !== undefined, `a DST gap is found: ${JSON.stringify(paris.problems)}`)
  assert.match(gap.message, /^2027-03-28 02:30 does not exist in Europe\/Paris \(the clocks go forward\): the schedule "night" fires at 03:00 that day instead\.$/)
  assert.deepEqual(scheduleProblems({ name: 'utc', cron: '30 2 * * *', timezone: 'UTC', enabled: true, retention: {} }, now).problems, [])
  const never = scheduleProblems({ name: 'feb', cron: '0 3 31 2 *', timezone: 'UTC', enabled: true, retention: {} }, now)
  assert.deepEqual(never.problems.map(problem => problem.code), ['SCHEDULE_NEVER_FIRES'])
  assert.equal(never.nextRun, undefined)
  const leap = scheduleProblems({ name: 'leap', cron: '0 3 29 2 *', timezone: 'UTC', enabled: true, retention: {} }, Date.UTC(2028, 2, 1))
  assert.deepEqual(leap.problems.map(problem => problem.code), ['SCHEDULE_RARE'])
  assert.deepEqual(scheduleProblems({ name: 'off', cron: '0 3 * * *', timezone: 'UTC', enabled: false, retention: {} }, now).problems.map(problem => problem.code), ['SCHEDULE_DISABLED'])
})

describe('job plan of a distributed job', () => {
  let env: EngineLab
  before(async () => {
    env = await startEngineLab({ remotes: ['a', 'b', 'c'], remoteCapacities: { a: 1 * GiB, b: 3 * GiB, c: 2 * GiB } })
  })
  after(async () => env.cleanup())

  for (const mode of ['delta', 'full'] as const) {
    test(`${mode}: the plan names the remote each VM goes to and why, and the run sends it there`, async () => {
      const conn = env.conns[0]!
      const vms = ['tiny-running', 'tiny-halted'].map(name => vmByName(conn, name))
      const theJob = { ...job({ mode, vms: { uuids: vms.map(vm => vm.uuid) }, remotes: ['a', 'b', 'c'], settings: { distributeBackups: true } }), id: `job-distributed-${mode}` }
      for (let run = 0; run < 2; run++) {
        const plan = await planBackupRun(theJob, env.context)
        for (const vm of plan.vms) {
          assert.deepEqual(vm.targets, ['b'], `run ${run}: ${vm.name} goes to the remote with the most free space, or its chain`)
          assert.match(vm.choice?.reason ?? '', run === 0 || mode === 'full' ? /^b, the most free space \(a .* free, b .* free, c .* free\)$/ : /^b, it holds the VM's chain/, JSON.stringify(vm.choice))
        }
        const tree = await runToEnd(env, theJob)
        assert.equal(tree.status, 'success', describeFailure(tree))
        assert.deepEqual(runDecisions(tree), planDecisions(plan), `run ${run}: the run went where the plan said`)
        assert.ok(planLines(plan, String).some(line => line.text.startsWith('    distributed: b, ')), 'the text of the plan says it')
      }
    })
  }
})
