// The appliance's side of a delegated run against a scripted proxy channel: the orders in which a real proxy's
// answers and notifications can arrive, and what each fault leaves in the run's tree.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { startDelegatedRun } from '../../source/daemon/delegated-run.ts'
import type { Proxies } from '../../source/daemon/proxies.ts'
import { LifeboatError } from '../../source/util/errors.ts'
import { RUN_EVENT, SLOT_RELEASE, SLOT_REQUEST, type SequencedEvent } from '../../source/protocol/proxy.ts'
import { PoolLimitsRegistry } from '../../source/xapi/index.ts'
import type { TaskEvent } from '../../source/tasks/index.ts'

const PROXY_ROOT = 'proxy-root'

/** The events of a small run on the proxy: its root, a VM and a transfer under it (ended or not). */
function proxyEvents(ended: boolean): SequencedEvent[] {
  const events: TaskEvent[] = [
    { type: 'start', id: PROXY_ROOT, timestamp: 1, properties: { name: 'backup run' } },
    { type: 'info', id: PROXY_ROOT, timestamp: 2, message: 'vms', data: { vms: ['vm-1'] } },
    { type: 'start', id: 'vm', parentId: PROXY_ROOT, timestamp: 3, properties: { name: 'backup VM', type: 'VM', id: 'vm-1' } },
    { type: 'start', id: 'transfer', parentId: 'vm', timestamp: 4, properties: { name: 'transfer' } },
    ...(ended
      ? ([
          { type: 'end', id: 'transfer', parentId: 'vm', timestamp: 5, status: 'success', result: { size: 10 } },
          { type: 'end', id: 'vm', parentId: PROXY_ROOT, timestamp: 6, status: 'success' },
          { type: 'end', id: PROXY_ROOT, timestamp: 7, status: 'success' },
        ] as TaskEvent[])
      : []),
  ]
  return events.map((event, seq) => ({ seq, event }))
}

/** The calls the appliance made on the scripted proxy, and a way to notify it as the proxy would. */
interface ScriptedChannel {
  calls: Array<{ method: string; params: Record<string, unknown> }>
  notify(method: string, params: unknown): void
}

/** A proxy channel whose run.attach answer is scripted: `notifyFirst` events are sent as notifications before it. */
function scriptedProxies(script: { attach: (after: number) => { answer: SequencedEvent[]; notifyFirst?: SequencedEvent[] } | Error }, seen?: ScriptedChannel): Proxies {
  return {
    connect: async () => {
      const client = new EventEmitter() as EventEmitter & Record<string, unknown>
      const handlers = new Map<string, (params: unknown) => void>()
      client.onNotification = (method: string, handler: (params: unknown) => void) => void handlers.set(method, handler)
      if (seen !== undefined) seen.notify = (method, params) => handlers.get(method)?.(params)
      client.call = async (method: string, params: Record<string, unknown>) => {
        seen?.calls.push({ method, params })
        if (method === 'run.start') return { runId: 'remote-1' }
        if (method !== 'run.attach') return {}
        const scripted = script.attach(params.after as number)
        if (scripted instanceof Error) throw scripted
        for (const sequenced of scripted.notifyFirst ?? []) handlers.get(RUN_EVENT)?.({ runId: 'remote-1', ...sequenced })
        return { events: scripted.answer, ended: false }
      }
      return { channel: { client, close: () => client.emit('close') }, info: {}, connectMs: 0 }
    },
  } as unknown as Proxies
}

const request = { proxy: 'edge', root: { name: 'backup run', data: {} }, spec: { job: {}, schedule: 's', pools: [], remotes: [] }, onEvent: () => {}, log: () => {}, limits: new PoolLimitsRegistry() }

test('events notified before the answer to run.attach are relayed after it: the catch-up is not taken for already seen', async () => {
  const events = proxyEvents(true)
  const run = startDelegatedRun(scriptedProxies({ attach: () => ({ answer: events.slice(0, 5), notifyFirst: events.slice(5) }) }), request)
  const tree = await run.done
  assert.equal(tree.status, 'success')
  assert.deepEqual(tree.tasks?.map(task => task.message), ['backup VM'], 'the VM hangs under the run\'s root')
  assert.equal(tree.tasks?.[0]?.tasks?.[0]?.status, 'success', 'the transfer ended')
  assert.deepEqual(tree.infos?.map(info => info.message), ['vms'], 'the proxy root\'s info is the run\'s')
})

test('a proxy that no longer has the run ends every task it had going, and the run, interrupted', async () => {
  let attaches = 0
  const proxies = scriptedProxies({
    attach: () => (attaches++ === 0 ? { answer: proxyEvents(false) } : new LifeboatError('RUN_NOT_FOUND', 'This proxy has no run remote-1.')),
  })
  let channelClose: (() => void) | undefined
  const connect = proxies.connect.bind(proxies)
  proxies.connect = async name => {
    const open = await connect(name)
    channelClose = () => open.channel.close()
    return open
  }
  const run = startDelegatedRun(proxies, request)
  while (attaches === 0) await new Promise(resolve => setImmediate(resolve))
  await new Promise(resolve => setImmediate(resolve))
  channelClose!()
  const tree = await run.done
  assert.equal(tree.status, 'interrupted')
  assert.equal((tree.result as { code?: string }).code, 'PROXY_RUN_INTERRUPTED')
  const vm = tree.tasks?.[0]
  assert.equal(vm?.status, 'interrupted', 'the VM was going')
  assert.equal(vm?.tasks?.[0]?.status, 'interrupted', 'the transfer was going')
})

test('the proxy\'s pool slots come from the appliance\'s limits: granted while free, the next when one is given back; held ones counted again', async () => {
  const seen: ScriptedChannel = { calls: [], notify: () => {} }
  const limits = new PoolLimitsRegistry()
  const run = startDelegatedRun(scriptedProxies({ attach: () => ({ answer: proxyEvents(false) }) }, seen), { ...request, limits })
  while (!seen.calls.some(call => call.method === 'run.attach')) await new Promise(resolve => setImmediate(resolve))
  const granted = () => seen.calls.filter(call => call.method === 'slot.grant').map(call => call.params.requestId)
  const ask = (requestId: string, held = false) =>
    seen.notify(SLOT_REQUEST, { runId: 'remote-1', requestId, pool: 'pool-1', kind: 'vmExports', holder: { runId: 'remote-1', vm: 'vm-1', phase: 'export' }, held })
  const exports = limits.of('pool-1').vmExports
  // A local run of the appliance holds one of the pool's 2 VM export slots.
  const local = await exports.acquire({ runId: 'local-run', vm: 'vm-9', phase: 'export' })
  ask('r1')
  ask('r2')
  await new Promise(resolve => setImmediate(resolve))
  assert.deepEqual(granted(), ['r1'], 'one slot left for the proxy')
  assert.deepEqual(exports.holders.map(lease => [lease.holder.runId, lease.holder.proxy]), [['local-run', undefined], [run.runId, 'edge']], 'the lanes see the proxy\'s slot under the appliance\'s run')
  local.release()
  await new Promise(resolve => setImmediate(resolve))
  assert.deepEqual(granted(), ['r1', 'r2'], 'the next one granted when a slot is given back')
  ask('r1')
  assert.deepEqual(granted(), ['r1', 'r2', 'r1'], 'asked again after a re-attach: granted again, not counted twice')
  assert.equal(exports.holders.length, 2)
  seen.notify(SLOT_RELEASE, { runId: 'remote-1', requestId: 'r1' })
  assert.equal(exports.holders.length, 1, 'given back by the proxy')
  ask('r3', true)
  ask('r4', true)
  assert.equal(exports.holders.length, 3, 'slots the proxy held before a restart are counted again as they are')
  run.detach()
  await run.done
  assert.equal(exports.holders.length, 0, 'a run no longer followed holds no slot here')
})

test('a slot given back by the proxy in the same tick as the appliance grants it goes back at once (none is left held)', async () => {
  const seen: ScriptedChannel = { calls: [], notify: () => {} }
  const limits = new PoolLimitsRegistry()
  const run = startDelegatedRun(scriptedProxies({ attach: () => ({ answer: proxyEvents(false) }) }, seen), { ...request, limits })
  while (!seen.calls.some(call => call.method === 'run.attach')) await new Promise(resolve => setImmediate(resolve))
  const snapshots = limits.of('pool-1').snapshots
  const locals = [await snapshots.acquire({ runId: 'local', vm: 'a', phase: 'snapshot' }), await snapshots.acquire({ runId: 'local', vm: 'b', phase: 'snapshot' })]
  seen.notify(SLOT_REQUEST, { runId: 'remote-1', requestId: 'late', pool: 'pool-1', kind: 'snapshots', holder: { runId: 'remote-1', vm: 'vm-1', phase: 'snapshot' }, held: false })
  assert.equal(snapshots.waiting.length, 1, 'the proxy\'s request waits for a slot')
  // The slot is handed to the waiting request, and the proxy gives it up before the grant reaches it.
  locals[0]!.release()
  seen.notify(SLOT_RELEASE, { runId: 'remote-1', requestId: 'late' })
  await new Promise(resolve => setImmediate(resolve))
  assert.deepEqual(snapshots.holders.map(lease => lease.holder.vm), ['b'], 'only the local run\'s slot is held')
  assert.ok(!seen.calls.some(call => call.method === 'slot.grant' && call.params.requestId === 'late'), 'nothing is granted for a request given up')
  locals[1]!.release()
  run.detach()
  await run.done
})
