import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PoolLimitsRegistry, Slots, type UpstreamSlot } from '../../source/xapi/slots.ts'
import { isLifeboatError } from '../../source/util/errors.ts'
import { cancelledError, sleep, withTimeout } from '../../source/util/abort.ts'

const holder = (vm: string) => ({ runId: 'r', vm, phase: 'export' })

test('never more holders than the limit; waiters are served in order', async () => {
  const slots = new Slots('export', 2)
  let active = 0
  let peak = 0
  const order: string[] = []
  await Promise.all(
    ['a', 'b', 'c', 'd', 'e'].map(vm =>
      slots.with(holder(vm), undefined, async () => {
        order.push(vm)
        peak = Math.max(peak, ++active)
        await sleep(5)
        active--
      }),
    ),
  )
  assert.equal(peak, 2)
  assert.deepEqual(order, ['a', 'b', 'c', 'd', 'e'])
  assert.equal(slots.holders.length, 0)
})

test('holders are visible with their progress', async () => {
  const slots = new Slots('snapshot', 1)
  const lease = await slots.acquire(holder('vm1'))
  lease.report({ done: 10, total: 100 })
  assert.equal(slots.holders[0]!.holder.vm, 'vm1')
  assert.deepEqual(slots.holders[0]!.progress, { done: 10, total: 100 })
  const waiting = slots.acquire(holder('vm2'))
  assert.deepEqual(slots.waiting.map(h => h.vm), ['vm2'])
  lease.release()
  lease.release() // idempotent: must not free a second slot
  const second = await waiting
  assert.equal(slots.holders.length, 1)
  second.release()
})

test('a wait aborted by cancel leaves the queue and rejects with CANCELLED', async () => {
  const slots = new Slots('snapshot', 1)
  const lease = await slots.acquire(holder('vm1'))
  const controller = new AbortController()
  const waiting = slots.acquire(holder('vm2'), controller.signal)
  controller.abort(cancelledError())
  await assert.rejects(waiting, (e: unknown) => isLifeboatError(e, 'CANCELLED'))
  assert.equal(slots.waiting.length, 0)
  lease.release()
  assert.equal(slots.holders.length, 0)
})

test('raising the limit admits waiters at once', async () => {
  const slots = new Slots('export', 1)
  const a = await slots.acquire(holder('a'))
  const b = slots.acquire(holder('b'))
  slots.setLimit(2)
  const leaseB = await b
  assert.equal(slots.holders.length, 2)
  a.release()
  leaseB.release()
})

test('pool limits are shared by every caller of one registry for the same pool, and a registry is its own', () => {
  const registry = new PoolLimitsRegistry()
  assert.equal(registry.of('pool-x'), registry.of('pool-x'))
  assert.notEqual(registry.of('pool-x'), registry.of('pool-y'))
  assert.deepEqual(registry.all().map(limits => limits.poolUuid), ['pool-x', 'pool-y'])
  assert.equal(registry.of('pool-x').snapshots.limit, 2)
  assert.equal(registry.of('pool-x').vdiExports.limit, 12)
  assert.equal(registry.of('pool-x').vmExports.limit, 2)
  const proxy = new PoolLimitsRegistry()
  assert.notEqual(proxy.of('pool-x'), registry.of('pool-x'))
  assert.deepEqual(proxy.all().map(limits => limits.poolUuid), ['pool-x'])
})

test('withTimeout aborts with a TIMEOUT error that names what was late', async () => {
  const bound = withTimeout(undefined, 20, 'the snapshot')
  await assert.rejects(sleep(1000, bound.signal), (e: unknown) => isLifeboatError(e, 'TIMEOUT') && /the snapshot/.test((e as Error).message))
  bound.dispose()
})

test('a gated slot is taken after the local one and given back with it; a gate that refuses gives the local one back', async () => {
  const calls: string[] = []
  let open: () => void = () => {}
  const gate = (holder: { vm: string }) =>
    holder.vm === 'refused'
      ? Promise.reject(new Error('the appliance is gone'))
      : new Promise<UpstreamSlot>(resolve => (open = () => resolve({ release: () => calls.push(`released ${holder.vm}`), report: progress => calls.push(`progress ${progress.done}`) })))
  const slots = new Slots('VM export', 1, gate)
  let granted = false
  const pending = slots.acquire({ runId: 'r', vm: 'a', phase: 'export' }).then(lease => ((granted = true), lease))
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(granted, false, 'waits for the gate')
  assert.equal(slots.holders.length, 1, 'the local slot is held meanwhile')
  open()
  const lease = await pending
  lease.report({ done: 5 })
  lease.release()
  assert.deepEqual(calls, ['progress 5', 'released a'], 'the gate is told the progress, and its slot is given back with the local one')
  assert.equal(slots.holders.length, 0)
  await assert.rejects(slots.acquire({ runId: 'r', vm: 'refused', phase: 'export' }), /the appliance is gone/)
  assert.equal(slots.holders.length, 0, 'a refused gate leaves no local slot held')
})
