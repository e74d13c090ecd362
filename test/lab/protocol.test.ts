// The lab's API as the real xen-api client sees it: connection, events, tasks, error codes, XML-RPC, persistence.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createClient } from 'xen-api'
import { startLab } from '../../source/lab/index.ts'
import { connect, objectsOf, rawCall, startTinyLab, useTinyLab, vmNamed, waitFor, type XapiClient } from './helpers.ts'

describe('lab protocol', () => {
  const tiny = useTinyLab()

  test('connects and fills the cache with complete records of every class', () => {
    const vms = objectsOf(tiny.xapi, 'VM').filter(vm => !vm.is_control_domain)
    assert.deepEqual(vms.map(vm => vm.name_label).sort(), ['tiny-halted', 'tiny-running'])
    const running = vmNamed(tiny.xapi, 'tiny-running')
    assert.equal(running.power_state, 'Running')
    assert.equal(running.$guest_metrics.$type, 'VM_guest_metrics')
    const disk = running.$VBDs.find((vbd: any) => vbd.type === 'Disk').$VDI
    assert.equal(disk.$SR.$type, 'SR')
    assert.ok(disk.$SR.VDIs.includes(disk.$ref), 'SR.VDIs is the reverse link of VDI.SR')
    const [first, ...others] = objectsOf(tiny.xapi, 'VDI')
    for (const other of others) assert.deepEqual(Object.keys(other).sort(), Object.keys(first).sort())
  })

  test('lists only implemented methods, Async variants included, never the control plane', async () => {
    const methods: string[] = await tiny.xapi.call('system.listMethods')
    const classes = methods.filter(name => name.endsWith('.get_all_records')).map(name => name.split('.')[0])
    assert.deepEqual(classes.sort(), ['PBD', 'PIF', 'SR', 'VBD', 'VDI', 'VIF', 'VM', 'VM_guest_metrics', 'VM_metrics', 'host', 'network', 'pool', 'task'].sort())
    assert.ok(methods.includes('Async.VM.snapshot'), 'the method list has Async.VM.snapshot')
    assert.ok(!methods.some(name => name.includes('_sim')), 'no method of the simulator (_sim) is listed')
    for (const cls of classes) assert.equal(typeof (await tiny.xapi.call(`${cls}.get_all_records`)), 'object')
  })

  test('objects created and renamed show up through events', async () => {
    const ref = await tiny.xapi.call('VM.create', { name_label: 'from-events', tags: ['dev'] })
    await waitFor(() => tiny.xapi.getObject(ref, undefined)?.name_label === 'from-events', 'the new VM')
    await tiny.xapi.call('VM.set_name_label', ref, 'renamed')
    await waitFor(() => tiny.xapi.getObject(ref).name_label === 'renamed', 'the rename')
    const vbd = await tiny.xapi.call('VBD.create', { VM: ref, VDI: 'OpaqueRef:NULL', empty: true, type: 'CD', userdevice: '3' })
    await waitFor(() => tiny.xapi.getObject(ref).VBDs.includes(vbd), 'VM.VBDs updated by a mod event')
    await tiny.xapi.call('VM.destroy', ref)
    await waitFor(() => tiny.xapi.getObject(ref, undefined) === undefined, 'the VM deletion')
  })

  test('callAsync resolves with the parsed task result and failures carry XAPI codes', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-halted')
    const clone = await tiny.xapi.callAsync('VM.clone', vm.$ref, 'a clone')
    assert.match(clone, /^OpaqueRef:/)
    await waitFor(() => tiny.xapi.getObject(clone, undefined), 'the clone')
    await assert.rejects(tiny.xapi.callAsync('VM.checkpoint', vm.$ref, 'cp'),
      (error: any) => error.code === 'VM_BAD_POWER_STATE' && error.params[1] === 'paused, suspended, running' && error.params[2] === 'halted')
    await tiny.xapi.call('VM.destroy', clone)
  })

  test('answers with XAPI error codes and parameters', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-halted')
    const code = (expected: string) => (error: any) => error.code === expected
    await assert.rejects(tiny.xapi.call('VM.get_name_label', 'OpaqueRef:nope'), (error: any) => error.code === 'HANDLE_INVALID' && error.params[0] === 'VM')
    await assert.rejects(tiny.xapi.call('VM.get_by_uuid', '00000000-0000-0000-0000-000000000000'), code('UUID_INVALID'))
    await assert.rejects(tiny.xapi.call('task_create', 'x', 'y'), (error: any) => error.code === 'MESSAGE_METHOD_UNKNOWN' && error.params[0] === 'task_create')
    await assert.rejects(tiny.xapi.call('VM.set_power_state', vm.$ref, 'Running'), code('MESSAGE_METHOD_UNKNOWN'))
    await assert.rejects(tiny.xapi.call('VM.snapshot', vm.$ref), (error: any) => error.code === 'MESSAGE_PARAMETER_COUNT_MISMATCH' && error.params[1] === '4')
    await tiny.xapi.call('VM.add_to_other_config', vm.$ref, 'key', 'one')
    await assert.rejects(tiny.xapi.call('VM.add_to_other_config', vm.$ref, 'key', 'two'),
      (error: any) => error.code === 'MAP_DUPLICATE_KEY' && error.params.join() === `VM,other_config,${vm.uuid},key`)
    await tiny.xapi.call('VM.remove_from_other_config', vm.$ref, 'key')
    await tiny.xapi.call('VM.remove_from_other_config', vm.$ref, 'key')
    await tiny.xapi.call('VM.add_to_blocked_operations', vm.$ref, 'start', 'blocked for the test')
    await assert.rejects(tiny.xapi.call('VM.start', vm.$ref, false, false), (error: any) => error.code === 'OPERATION_BLOCKED' && error.params[1] === 'blocked for the test')
    await tiny.xapi.call('VM.remove_from_blocked_operations', vm.$ref, 'start')
    await assert.rejects(tiny.xapi.call('VM.clean_shutdown', vm.$ref), code('VM_BAD_POWER_STATE'))
    await assert.rejects(tiny.xapi.call('VM.snapshot_with_quiesce', vm.$ref, 'q'), code('MESSAGE_REMOVED'))
    assert.deepEqual(await tiny.xapi.call('VM.get_by_name_label', 'tiny-halted'), [vm.$ref])
  })

  test('JSON-RPC framing: application/json exactly, status 200 on errors, code 1', async () => {
    const reply = await rawCall(tiny.env.pool.url, 'VM.get_all', ['OpaqueRef:bogus-session'])
    assert.equal(reply.status, 200)
    assert.equal(reply.contentType, 'application/json')
    assert.deepEqual(reply.body.error, { code: 1, message: 'SESSION_INVALID', data: ['OpaqueRef:bogus-session'] })
    const login = await rawCall(tiny.env.pool.url, 'session.login_with_password', [tiny.env.pool.username, 'wrong'])
    assert.equal(login.body.error.message, 'SESSION_AUTHENTICATION_FAILED')
  })

  test('event.from: XAPI tokens, coalesced events, valid_ref_counts for every class', async () => {
    const session = (await rawCall(tiny.env.pool.url, 'session.login_with_password', [tiny.env.pool.username, tiny.env.pool.password])).body.result
    const pool = Object.keys((await rawCall(tiny.env.pool.url, 'pool.get_all_records', [session])).body.result)[0]
    const token = (await rawCall(tiny.env.pool.url, 'event.inject', [session, 'pool', pool])).body.result
    assert.match(token, /^\d{20},\d{20}$/)
    await assert.rejects(rawCall(tiny.env.pool.url, 'event.from', [session, ['VM'], 'garbage', 1]).then(reply => {
      throw new Error(reply.body.error.message)
    }), /EVENT_FROM_TOKEN_PARSE_FAILURE/)
    const vm = vmNamed(tiny.xapi, 'tiny-halted').$ref
    for (const name of ['one', 'two', 'three']) await rawCall(tiny.env.pool.url, 'VM.set_name_description', [session, vm, name])
    const reply = (await rawCall(tiny.env.pool.url, 'event.from', [session, ['VM', 'pool'], token, 5.1])).body.result
    const vmEvents = reply.events.filter((event: any) => event.ref === vm)
    assert.equal(vmEvents.length, 1, 'one event per object')
    assert.equal(vmEvents[0].class, 'vm')
    assert.equal(vmEvents[0].snapshot.name_description, 'three')
    assert.equal(typeof reply.valid_ref_counts.task, 'number')
    assert.equal(Object.keys(reply.valid_ref_counts).length, 13)
    const started = Date.now()
    const idle = (await rawCall(tiny.env.pool.url, 'event.from', [session, ['VM'], reply.token, 0.3])).body.result
    assert.deepEqual(idle.events, [])
    assert.ok(Date.now() - started >= 250, 'event.from blocks until its timeout when nothing changes')
  })

  test('event.from token semantics: increasing tokens, only the classes asked, del without snapshot, short-lived objects unseen', async () => {
    const { url, username, password } = tiny.env.pool
    const session = (await rawCall(url, 'session.login_with_password', [username, password])).body.result
    const from = async (classes: string[], token: string) => (await rawCall(url, 'event.from', [session, classes, token, 0.2])).body.result
    const doomed = (await rawCall(url, 'VM.create', [session, { name_label: 'doomed' }])).body.result
    const everything = await from(['VM'], '')
    assert.ok(everything.events.some((event: any) => event.ref === doomed && event.operation === 'add'), 'the empty token means from the start')
    const start = everything.token
    await rawCall(url, 'VM.destroy', [session, doomed])
    const ephemeral = (await rawCall(url, 'VM.create', [session, { name_label: 'ephemeral' }])).body.result
    await rawCall(url, 'VM.destroy', [session, ephemeral])
    await rawCall(url, 'network.set_name_description', [session, Object.keys((await rawCall(url, 'network.get_all_records', [session])).body.result)[0], 'touched'])
    const reply = await from(['VM'], start)
    assert.ok(reply.token > start, 'tokens grow (string order)')
    assert.deepEqual(reply.events.map((event: any) => [event.class, event.operation, event.ref]), [['vm', 'del', doomed]],
      'only VMs; the deleted VM once, and nothing of a VM created and destroyed between the two polls')
    assert.equal(reply.events[0].snapshot, undefined)
    const all = await from(['*'], start)
    const classes = new Set(all.events.map((event: any) => event.class))
    assert.ok(classes.has('network') && classes.has('vm'), `'*' asks for every class (${[...classes].join(', ')})`)
    assert.deepEqual((await from(['VM'], reply.token)).events, [], 'a reply\'s token does not replay what it delivered')
  })

  test('tasks: create, progress, cancel, destroy', async () => {
    const task = await tiny.xapi.call('task.create', '[XO] test', 'a task')
    await tiny.xapi.call('task.set_progress', task, 0.5)
    assert.equal(await tiny.xapi.call('task.get_progress', task), 0.5)
    await tiny.xapi.call('task.cancel', task)
    assert.equal(await tiny.xapi.call('task.get_status', task), 'cancelled')
    await tiny.xapi.call('task.destroy', task)
    await assert.rejects(tiny.xapi.call('task.get_status', task), (error: any) => error.code === 'HANDLE_INVALID')
  })

  test('XML-RPC transport on /', async () => {
    const client = createClient({ url: tiny.env.pool.url, auth: { user: tiny.env.pool.username, password: tiny.env.pool.password }, transport: 'xml-rpc',
      watchEvents: false }) as unknown as XapiClient
    await client.connect()
    const vm = await client.call('VM.get_by_name_label', 'tiny-running')
    assert.equal(vm.length, 1)
    assert.equal(await client.call('VM.get_power_state', vm[0]), 'Running')
    await assert.rejects(client.call('VM.get_power_state', 'OpaqueRef:nope'), (error: any) => error.code === 'HANDLE_INVALID')
    await client.disconnect()
  })
})

test('the database survives a restart of the lab (sessions do not)', async () => {
  const env = await startTinyLab()
  const first = await connect(env.pool)
  const ref = await first.call('VM.create', { name_label: 'persisted' })
  const session = first.sessionId
  await first.disconnect()
  await env.lab.stop()
  const again = await startLab({ dataDir: env.dataDir, fixture: 'tiny' })
  try {
    const second = await connect(again.pools[0]!)
    assert.equal(second.getObject(ref).name_label, 'persisted')
    assert.equal(again.pools[0]!.poolUuid, env.pool.poolUuid)
    assert.equal((await rawCall(again.pools[0]!.url, 'VM.get_all', [session])).body.error.message, 'SESSION_INVALID')
    await second.disconnect()
  } finally {
    await again.stop()
    await env.cleanup().catch(() => {})
  }
})
