// Benchmark: how long the plan of a 12-VM delta job takes on the default lab (#19's goal: under a second),
// before any run (every disk full) and after two runs (chains on the remote to check, logs to read).
// Prints the median of 5 plans, the time of one read of every VM record as a baseline, and where the plan's
// time goes (the remote's listing per VM is most of it). Run: node --import tsx test/bench/plan.ts
import { performance } from 'node:perf_hooks'
import { planBackupRun } from '../../source/engine/index.ts'
import { vmDisks } from '../../source/xapi/index.ts'
import type { TaskNode } from '../../source/tasks/index.ts'
import { job, runToEnd, startEngineLab } from '../engine/helpers.ts'
import { median } from '../../source/engine/plan/history.ts'

const GOAL_MS = 1000
const env = await startEngineLab({ fixture: 'default', remotes: ['a'] })
try {
  const vms = env.conns.flatMap(conn => conn.all('VM').filter(vm => vm.is_a_template !== true && vm.is_a_snapshot !== true && vm.is_control_domain !== true))
  const theJob = { ...job({ mode: 'delta', vms: { uuids: vms.map(vm => vm.uuid) }, remotes: ['a'], settings: { concurrency: 4 } }), id: 'bench-plan' }
  const history: TaskNode[] = []
  const timePlans = async () => {
    const times: number[] = []
    let problems = 0
    for (let i = 0; i < 5; i++) {
      const start = performance.now()
      const plan = await planBackupRun(theJob, env.context, { history })
      times.push(performance.now() - start)
      problems = plan.problems.length
    }
    return { ms: median(times)!, problems }
  }
  const baseline = () => {
    const start = performance.now()
    for (const conn of env.conns) for (const vm of conn.all('VM')) vmDisks(conn, vm)
    return performance.now() - start
  }
  const before = await timePlans()
  for (let run = 0; run < 2; run++) {
    const tree = await runToEnd(env, theJob)
    if (tree.status !== 'success') throw new Error(`the bench's run ${run} ended ${tree.status}`)
    history.unshift(tree)
  }
  const after = await timePlans()
  console.log(`plan of a ${vms.length}-VM delta job on the default lab (median of 5):`)
  console.log(`  before any run (all full)         ${before.ms.toFixed(0).padStart(6)} ms`)
  console.log(`  after 2 runs (chains, logs)       ${after.ms.toFixed(0).padStart(6)} ms   (${after.problems} problems foreseen)`)
  console.log(`  baseline: every VM's disks read   ${baseline().toFixed(1).padStart(6)} ms`)
  console.log(`goal: under ${GOAL_MS} ms → ${Math.max(before.ms, after.ms) < GOAL_MS ? 'holds' : 'does not hold'} (${(Math.max(before.ms, after.ms) / GOAL_MS).toFixed(2)} of the goal)`)
} finally {
  await env.cleanup()
}
