// Injected faults produce what real XAPI produces (xapi.md §4): codes and parameters, truncated bodies, sessions and
// tasks lost by a toolstack restart, the VDI_IN_USE window after an export, SR full; each one is in the fault log.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { diskOf, rawCall, readAll, useTinyLab, vmNamed, waitFor, withTinyLab } from './helpers.ts'

const MiB = 1024 * 1024

describe('lab faults', () => {
  const tiny = useTinyLab()

  const loggedFaults = () => tiny.env.lab.control.faultLog().map(entry => entry.fault)

  test('snapshot failure in SM: SR_BACKEND_FAILURE_82 on the task', async () => {
    tiny.env.lab.control.snapshotFailure()
    const vm = vmNamed(tiny.xapi, 'tiny-running')
    await assert.rejects(tiny.xapi.callAsync('VM.snapshot', vm.$ref, 'doomed'),
      (error: any) => error.code === 'SR_BACKEND_FAILURE_82' && /failed to pause VDI/.test(error.params[1]))
    assert.ok(loggedFaults().includes('error'), 'the fault log records the error fault')
  })

  test('an error injected on a method, and the race knob failing snapshots queued on one SR', async () => {
    tiny.env.lab.control.addFault({ match: { method: 'VM.get_allowed_VBD_devices' }, action: { type: 'error', code: 'TOO_MANY_PENDING_TASKS' } })
    const vm = vmNamed(tiny.xapi, 'tiny-running')
    await assert.rejects(tiny.xapi.call('VM.get_allowed_VBD_devices', vm.$ref), (error: any) => error.code === 'TOO_MANY_PENDING_TASKS')
    assert.ok((await tiny.xapi.call('VM.get_allowed_VBD_devices', vm.$ref)).includes('1'), 'the rule fired once')
    tiny.env.lab.control.setKnobs({ raceQueueLimit: 1, snapshotMs: 100 })
    try {
      const results = await Promise.allSettled([1, 2, 3].map(index => tiny.xapi.callAsync('VDI.snapshot', diskOf(vm).$ref, {}).then(ref => ({ index, ref }))))
      const failed = results.filter(result => result.status === 'rejected') as PromiseRejectedResult[]
      assert.ok(failed.length >= 1 && failed.length < 3, `some snapshots fail (${failed.length})`)
      for (const { reason } of failed) assert.equal(reason.code, 'SR_BACKEND_FAILURE_82')
    } finally {
      tiny.env.lab.control.setKnobs({ raceQueueLimit: 0, snapshotMs: 50 })
    }
  })

  test('TOO_MANY_PENDING_TASKS when too many tasks are pending; SR_BACKEND_FAILURE_109 when a chain is too long', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-halted')
    const pending = await tiny.xapi.call('task.create', 'pending', '')
    tiny.env.lab.control.setKnobs({ maxPendingTasks: 1 })
    try {
      await assert.rejects(tiny.xapi.callAsync('VM.clone', vm.$ref, 'x'), (error: any) => error.code === 'TOO_MANY_PENDING_TASKS')
    } finally {
      tiny.env.lab.control.setKnobs({ maxPendingTasks: 0 })
      await tiny.xapi.call('task.destroy', pending)
    }
    tiny.env.lab.control.setKnobs({ maxChainLength: 3 })
    try {
      const first = await tiny.xapi.callAsync('VDI.snapshot', diskOf(vm).$ref, {})
      const second = await tiny.xapi.callAsync('VDI.snapshot', diskOf(vm).$ref, {})
      await assert.rejects(tiny.xapi.callAsync('VDI.snapshot', diskOf(vm).$ref, {}),
        (error: any) => error.code === 'SR_BACKEND_FAILURE_109' && error.params[1] === 'The snapshot chain is too long')
      for (const snapshot of [first, second]) await tiny.xapi.call('VDI.destroy', snapshot)
      await tiny.xapi.call('VDI.destroy', await tiny.xapi.callAsync('VDI.snapshot', diskOf(vm).$ref, {}))
    } finally {
      tiny.env.lab.control.setKnobs({ maxChainLength: 30 })
    }
  })

  test('export cut short: FIN or RST after N bytes, a truncated body and a VDI_IO_ERROR task', async () => {
    const disk = diskOf(vmNamed(tiny.xapi, 'tiny-running'))
    for (const mode of ['fin', 'rst'] as const) {
      tiny.env.lab.control.exportCut({ afterBytes: MiB + 100, mode, uuid: disk.uuid })
      const response = await tiny.xapi.getResource('/export_raw_vdi/', { query: { vdi: disk.$ref, format: 'raw' } })
      const body = await readAll(response.body).catch(() => Buffer.alloc(0))
      assert.ok(body.length <= MiB + 100 && body.length < disk.virtual_size, `${mode}: body cut at ${body.length}`)
      await assert.rejects(response.task, (error: any) => error.code === 'VDI_IO_ERROR')
    }
    assert.equal(loggedFaults().filter(fault => fault === 'truncate').length, 2)
  })

  test('task.cancel on an export cuts the stream and the task ends cancelled', async () => {
    const disk = diskOf(vmNamed(tiny.xapi, 'tiny-running'))
    tiny.env.lab.control.setKnobs({ exportPerStreamMiBs: 8 })
    try {
      const task = await tiny.xapi.call('task.create', 'export to cancel', '')
      const response = await tiny.xapi.getResource('/export_raw_vdi/', { query: { vdi: disk.$ref, format: 'raw' }, task })
      const body = readAll(response.body).catch(() => Buffer.alloc(0))
      await new Promise(resolve => setTimeout(resolve, 200))
      await tiny.xapi.call('task.cancel', task)
      assert.ok((await body).length < disk.virtual_size, 'the cancelled export stops before the whole disk is sent')
      await waitFor(() => tiny.xapi.getObject(task, undefined)?.status === 'cancelled', 'the cancelled task')
    } finally {
      tiny.env.lab.control.setKnobs({ exportPerStreamMiBs: null })
    }
  })

  test('a stalled export sends nothing for a while, then completes', async () => {
    const disk = diskOf(vmNamed(tiny.xapi, 'tiny-halted'))
    tiny.env.lab.control.addFault({ match: { endpoint: '/export_raw_vdi/' }, action: { type: 'stall', ms: 400, afterBytes: 0 } })
    const started = Date.now()
    const response = await tiny.xapi.getResource('/export_raw_vdi/', { query: { vdi: disk.$ref, format: 'raw' } })
    assert.equal((await readAll(response.body)).length, disk.virtual_size)
    assert.ok(Date.now() - started >= 380, 'the export waited for the stall of 400 ms')
  })

  test('a stalled export whose client goes away ends at once with VDI_IO_ERROR, not when the stall would have', async () => {
    const disk = diskOf(vmNamed(tiny.xapi, 'tiny-halted'))
    tiny.env.lab.control.addFault({ match: { endpoint: '/export_raw_vdi/' }, action: { type: 'stall', ms: 600_000, afterBytes: 0 } })
    const task = await tiny.xapi.call('task.create', 'export left by its client', '')
    const response = await tiny.xapi.getResource('/export_raw_vdi/', { query: { vdi: disk.$ref, format: 'raw' }, task })
    response.body.on('error', () => {})
    response.body.destroy()
    const deadline = Date.now() + 10_000
    while ((await tiny.xapi.call('task.get_status', task)) === 'pending' && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    assert.equal(await tiny.xapi.call('task.get_status', task), 'failure', 'the task ends once its client is gone')
    assert.equal((await tiny.xapi.call('task.get_error_info', task))[0], 'VDI_IO_ERROR')
  })

  test('the 200 with an embedded HTTP 500 body (xen-api#4603)', async () => {
    const disk = diskOf(vmNamed(tiny.xapi, 'tiny-halted'))
    tiny.env.lab.control.addFault({ match: { endpoint: '/export_raw_vdi/' }, action: { type: 'embedded500' } })
    const response = await tiny.xapi.getResource('/export_raw_vdi/', { query: { vdi: disk.$ref, format: 'vhd' } })
    assert.equal(response.statusCode, 200)
    assert.match((await readAll(response.body)).toString(), /^HTTP\/1\.1 500 .*SR_BACKEND_FAILURE_46/s)
    await assert.rejects(response.task, (error: any) => error.code === 'SR_BACKEND_FAILURE_46')
  })

  test('VDI_IN_USE while dom0 still holds the disk after an export, then destroy succeeds', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-halted')
    const snapshot = await tiny.xapi.callAsync('VDI.snapshot', diskOf(vm).$ref, {})
    tiny.env.lab.control.setKnobs({ detachLagMs: 400 })
    try {
      const response = await tiny.xapi.getResource('/export_raw_vdi/', { query: { vdi: snapshot, format: 'vhd' } })
      await readAll(response.body)
      await response.task
      await assert.rejects(tiny.xapi.call('VDI.destroy', snapshot), (error: any) => error.code === 'VDI_IN_USE' && error.params.join() === `${snapshot},destroy`)
      await new Promise(resolve => setTimeout(resolve, 500))
      await tiny.xapi.call('VDI.destroy', snapshot)
    } finally {
      tiny.env.lab.control.setKnobs({ detachLagMs: 0 })
    }
    const other = await tiny.xapi.callAsync('VDI.snapshot', diskOf(vm).$ref, {})
    tiny.env.lab.control.vdiInUse(await tiny.xapi.call('VDI.get_uuid', other), 300)
    await assert.rejects(tiny.xapi.call('VDI.destroy', other), (error: any) => error.code === 'VDI_IN_USE')
    await new Promise(resolve => setTimeout(resolve, 350))
    await tiny.xapi.call('VDI.destroy', other)
  })

  test('SR full: SR_BACKEND_FAILURE_44 with SM parameters', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-halted')
    const sr = diskOf(vm).$SR
    await tiny.env.lab.control.srFull(sr.uuid)
    await assert.rejects(tiny.xapi.call('VDI.create', { SR: sr.$ref, virtual_size: 64 * MiB, name_label: 'no room' }),
      (error: any) => error.code === 'SR_BACKEND_FAILURE_44' && error.params.join('|') === '|There is insufficient space|')
    await assert.rejects(tiny.xapi.callAsync('VM.snapshot', vm.$ref, 'no room'), (error: any) => error.code === 'SR_BACKEND_FAILURE_44')
    assert.ok(loggedFaults().includes('srFull'), 'the fault log records the srFull fault')
  })

  test('session invalidation: SESSION_INVALID, and the client logs in again by itself', async () => {
    const session = tiny.xapi.sessionId
    tiny.env.lab.control.invalidateSessions()
    assert.deepEqual((await rawCall(tiny.env.pool.url, 'VM.get_all', [session])).body.error, { code: 1, message: 'SESSION_INVALID', data: [session] })
    // The client's event loop meets SESSION_INVALID and logs in again (calls racing that re-login fail client-side).
    await waitFor(() => tiny.xapi.sessionId !== undefined && tiny.xapi.sessionId !== session, 'a new session')
    assert.ok((await tiny.xapi.call('VM.get_all')).length > 0, 'the client works again with its new session')
  })
})

test('toolstack restart: transfers cut, connections refused, sessions invalid and pending tasks gone', () => withTinyLab(async ({ env, xapi }) => {
  const disk = diskOf(vmNamed(xapi, 'tiny-running'))
  const session = xapi.sessionId
  const pending = await xapi.call('task.create', 'pending', 'lost on restart')
  env.lab.control.setKnobs({ exportPerStreamMiBs: 8 })
  const response = await xapi.getResource('/export_raw_vdi/', { query: { vdi: disk.$ref, format: 'raw' } })
  const body = readAll(response.body).catch(() => Buffer.alloc(0))
  response.task.catch(() => {})
  await new Promise(resolve => setTimeout(resolve, 300))
  await env.lab.control.restart(500)
  assert.ok((await body).length < disk.virtual_size, 'the export ends short')
  await assert.rejects(fetch(`${env.pool.url}/jsonrpc`, { method: 'POST', body: '{}' }), 'connections are refused while down')
  await new Promise(resolve => setTimeout(resolve, 600))
  assert.equal((await rawCall(env.pool.url, 'VM.get_all', [session])).body.error.message, 'SESSION_INVALID')
  assert.ok((await xapi.call('VM.get_all')).length > 0, 'the client logs in again')
  await assert.rejects(xapi.call('task.get_status', pending), (error: any) => error.code === 'HANDLE_INVALID')
  await waitFor(() => xapi.getObject(pending, undefined) === undefined, 'the client noticing the task vanished', 3000)
  assert.ok(env.lab.control.faultLog().some(entry => entry.fault === 'toolstackRestart'), 'the fault log records the toolstack restart')
}))

test('host reboot: running VMs come back Halted', () => withTinyLab(async ({ env, xapi }) => {
  const vm = vmNamed(xapi, 'tiny-running')
  await env.lab.control.restart(200, { reboot: true })
  await new Promise(resolve => setTimeout(resolve, 300))
  await waitFor(() => xapi.getObject(vm.$ref).power_state === 'Halted', 'the VM halted by the reboot', 3000)
  assert.ok(env.lab.control.faultLog().some(entry => entry.fault === 'hostReboot'), 'the fault log records the host reboot')
}))
