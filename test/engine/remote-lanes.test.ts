// A mirror's copies and a verify's reads in the lanes view: while a mirror copies a backup, the source remote's lane holds a slot
// for that VM with the bytes each target took (slowed by maxExportRate so that it is seen), the daemon's
// lanes snapshot lists the remote, and the TUI's lanes lines show it; the slot is gone once the copy is done.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { LocalHandler } from '../../source/storage/index.ts'
import { parseJob } from '../../source/engine/jobs/index.ts'
import { startMirrorRun } from '../../source/engine/index.ts'
import { startVerifyRun } from '../../source/engine/run/verify-run.ts'
import { RemoteLanes } from '../../source/engine/run/remote-lanes.ts'
import { lanesSnapshot } from '../../source/daemon/lanes.ts'
import { PoolLimitsRegistry } from '../../source/xapi/index.ts'
import { laneLines } from '../../source/tui/screens/lanes.tsx'
import { tempDir } from '../helpers/tools.ts'
import { describeFailure, eventually, job, runWithWrites, startEngineLab, vmByName, type EngineLab } from './helpers.ts'

let env: EngineLab
let target: Awaited<ReturnType<typeof tempDir>>
before(async () => {
  env = await startEngineLab({ remotes: ['src'] })
  target = await tempDir('lifeboat-mirror-lanes-')
  const handler = new LocalHandler(target.path, `file://${target.path}`)
  await handler.sync()
  env.remotes.set('copy', handler)
})
after(async () => {
  await env.cleanup()
  await target.cleanup()
})

test("a mirror's copy holds a slot of the source remote's lane, with each target's bytes, until it is done", async () => {
  const vm = vmByName(env.conns[0]!, 'tiny-running')
  await runWithWrites(env, job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['src'] }), 1, 40)
  const lanes = new RemoteLanes()
  const mirror = parseJob({ id: 'm', name: 'm', type: 'mirror', mode: 'delta', sourceRemote: 'src', remotes: ['copy'], settings: { maxExportRate: 2 * 1024 * 1024 }, schedules: [{ name: 'n', cron: '0 5 * * *', timezone: 'UTC', retention: { backups: 3 } }] })
  const run = startMirrorRun(mirror, { ...env.context, remoteLanes: lanes })
  const holder = await eventually('the copy in the lanes', async () => lanes.all()[0]?.slots.holders.find(lease => (lease.progress?.done ?? 0) > 0), 60_000)
  assert.equal(holder.holder.vm, vm.uuid)
  assert.equal(holder.holder.phase, 'mirror')
  assert.ok((holder.targets.copy?.done ?? 0) > 0, 'the target reports its bytes')
  const snapshot = lanesSnapshot(new PoolLimitsRegistry(), { poolName: id => id, jobName: () => 'm' }, Date.now(), lanes)
  assert.equal(snapshot.remotes?.[0]?.remote, 'src')
  assert.equal(snapshot.remotes?.[0]?.reads.holders[0]?.vmName, 'tiny-running')
  const lines = laneLines(snapshot, Date.now(), 80).map(line => line.text)
  assert.ok(lines.includes('Remote src'), lines.join('\n'))
  assert.ok(lines.some(line => line.includes('tiny-running') && line.includes('copy')), lines.join('\n'))
  const tree = await run.done
  assert.equal(tree.status, 'success', describeFailure(tree))
  assert.equal(lanes.all()[0]!.slots.holders.length, 0, 'the slot is released once the copy is done')
  assert.equal(lanesSnapshot(new PoolLimitsRegistry(), { poolName: id => id, jobName: () => undefined }, Date.now(), lanes).remotes, undefined, 'an idle remote is not shown')
})

test("a verify's reads of a VM hold a slot of the remote's lane, with the bytes read, until the VM is done", async () => {
  const lanes = new RemoteLanes()
  const seen: Array<{ phase: string; done: number | undefined; vm: string }> = []
  const run = startVerifyRun({ ...env.context, remoteLanes: lanes }, {
    remotes: ['src'], readData: true,
    onVerdict: () => void seen.push(...(lanes.all()[0]?.slots.holders ?? []).map(lease => ({ phase: lease.holder.phase, done: lease.progress?.done, vm: lease.holder.vm }))),
  })
  const tree = await run.done
  assert.equal(tree.status, 'success', describeFailure(tree))
  const vm = vmByName(env.conns[0]!, 'tiny-running')
  assert.ok(seen.some(entry => entry.phase === 'verify' && entry.vm === vm.uuid && (entry.done ?? 0) > 0), `the VM's verify was in the lane with its bytes read: ${JSON.stringify(seen)}`)
  assert.equal(lanes.all()[0]!.slots.holders.length, 0, 'released once the VM is verified')
})
