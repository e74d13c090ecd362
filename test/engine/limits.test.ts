// The pool's concurrency limits hold across runs: two jobs started together over the default lab's
// production pool never have more snapshots or exports in flight than the pool's slots allow, as the
// lab itself counts them (GET /_sim/activity), and both runs still back up every VM.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { startBackupRun } from '../../source/engine/index.ts'
import { listBackedUpVms } from '../../source/repository/index.ts'
import { describeFailure, job, startEngineLab, type EngineLab } from './helpers.ts'

let env: EngineLab
before(async () => {
  env = await startEngineLab({ fixture: 'default', remotes: ['a', 'b'] })
})
after(async () => env.cleanup())

test('two jobs started together share the pool limits: the lab never sees more snapshots or exports than the slots', async () => {
  const production = env.conns.find(c => c.poolName === 'production')!
  const limits = { snapshots: 2, vdiExports: 3, vmExports: 1 }
  production.limits.configure(limits)
  const pool = env.lab.pools.find(p => p.name === 'production')!
  pool.control.setKnobs({ snapshotMs: 150, exportPerStreamMiBs: 40 })
  const activityUrl = new URL('/_sim/activity', pool.url)
  await fetch(activityUrl, { method: 'DELETE' })

  const smart = { smart: { pools: [production.poolUuid] } }
  const fullJob = job({ id: 'full-job', name: 'full job', mode: 'full', vms: smart, remotes: ['a'], settings: { concurrency: 0 } })
  const deltaJob = job({ id: 'delta-job', name: 'delta job', mode: 'delta', vms: smart, remotes: ['b'], settings: { concurrency: 0 } })
  const runs = [startBackupRun(fullJob, env.context), startBackupRun(deltaJob, env.context)]
  let sawWaiting = false
  const watch = setInterval(() => {
    const slots = production.limits
    if (slots.snapshots.waiting.length > 0 || slots.vdiExports.waiting.length > 0) sawWaiting = true
  }, 20)
  const trees = await Promise.all(runs.map(r => r.done))
  clearInterval(watch)
  for (const tree of trees) assert.equal(tree.status, 'success', describeFailure(tree))

  const activity = (await (await fetch(activityUrl)).json()) as { max: Record<string, number> }
  assert.ok(activity.max.snapshot! <= limits.snapshots, `snapshots at once: ${activity.max.snapshot}`)
  assert.ok(activity.max.vdiExport! <= limits.vdiExports, `VDI exports at once: ${activity.max.vdiExport}`)
  assert.ok(activity.max.vmExport! <= limits.vmExports, `VM exports at once: ${activity.max.vmExport}`)
  // The limits were reached, not merely unchallenged: runs queued for slots.
  assert.equal(activity.max.snapshot, limits.snapshots)
  assert.equal(activity.max.vdiExport, limits.vdiExports)
  assert.ok(sawWaiting, 'some VMs waited for a slot')
  const vms = production.all('VM').filter(vm => vm.is_a_snapshot !== true && vm.is_a_template !== true && vm.is_control_domain !== true)
  assert.equal((await listBackedUpVms(env.remotes.get('a')!)).length, vms.length)
  assert.equal((await listBackedUpVms(env.remotes.get('b')!)).length, vms.length)
})
