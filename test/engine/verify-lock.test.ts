// Verify reads a VM folder under its lock: a backup, merge or clean holding it makes verify wait (a chain read
// half before and half after a merge would look broken), and a verify going on holds it in turn.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { startVerifyRun } from '../../source/engine/run/verify-run.ts'
import { vmDir } from '../../source/repository/layout.ts'
import { foldRun } from '../../source/tasks/index.ts'
import { describeFailure, eventually, job, runWithWrites, startEngineLab, vmByName, type EngineLab } from './helpers.ts'

let env: EngineLab
before(async () => {
  env = await startEngineLab({ remotes: ['src'] })
})
after(async () => {
  await env.cleanup()
})

test("verify waits for the VM folder's lock that a backup or merge holds, then verifies", async () => {
  const vm = vmByName(env.conns[0]!, 'tiny-running')
  await runWithWrites(env, job({ mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['src'] }), 2, 50)
  const handler = env.remotes.get('src')!
  const held = await handler.lock(vmDir(vm.uuid))
  const run = startVerifyRun(env.context, { remotes: ['src'], vms: [vm.uuid], readData: true })
  const waiting = await eventually('verify waiting for the lock', async () => {
    const tree = foldRun(run.log.events)
    const vmTask = tree?.tasks?.[0]?.tasks?.[0]
    return vmTask?.infos?.find(info => /waiting for the VM's folder/.test(info.message))
  }, 30_000)
  assert.ok(waiting, 'verify said it waits for the lock')
  assert.equal(foldRun(run.log.events)!.status, 'pending', 'nothing verified while the lock is held')
  await held.release()
  const tree = await run.done
  assert.equal(tree.status, 'success', describeFailure(tree))
})
