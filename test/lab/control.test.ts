// The /_sim control plane over HTTP (writes, faults and their log, knobs, workloads), the session limit, and the
// default and pair fixtures' two pools.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startLab } from '../../source/lab/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { connect, objectsOf, rawCall, readAll, sim, startTinyLab, vmNamed, waitFor, withTinyLab } from './helpers.ts'

const MiB = 1024 * 1024

test('control plane over HTTP: state, guest writes, faults and their log, knobs, workloads', () => withTinyLab(async ({ env, xapi }) => {
  const { url } = env.pool
  const state = (await sim(url, 'GET', 'state')).body
  assert.equal(state.pool, 'lab')
  const running = state.vms.find((vm: any) => vm.name_label === 'tiny-running')
  const disk = running.vdis[0]
  const vdiRef = await xapi.call('VDI.get_by_uuid', disk)

  assert.deepEqual((await sim(url, 'POST', `vdi/${disk}/write`, { offset: MiB, data: Buffer.from('written by the guest').toString('base64') })).body,
    { bytesWritten: 20 })
  const raw = await readAll((await xapi.getResource('/export_raw_vdi/', { query: { vdi: vdiRef, format: 'raw' } })).body)
  assert.equal(raw.subarray(MiB, MiB + 20).toString(), 'written by the guest')

  const rule = (await sim(url, 'POST', 'faults', { match: { method: 'VM.get_tags' }, action: { type: 'error', code: 'HOST_OFFLINE', params: ['x'] } })).body
  assert.ok(rule.id, 'the lab gives the new fault rule an id')
  await assert.rejects(xapi.call('VM.get_tags', running.ref), (error: any) => error.code === 'HOST_OFFLINE')
  const log = (await sim(url, 'GET', 'faults/log')).body
  assert.equal(log.at(-1).fault, 'error')
  assert.equal(log.at(-1).detail.method, 'VM.get_tags')

  assert.equal((await sim(url, 'POST', 'knobs', { snapshotMs: 10 })).body.snapshotMs, 10)
  assert.equal((await sim(url, 'POST', 'knobs', { nope: 1 })).body.code, 'LAB_BAD_KNOB')
  assert.equal((await sim(url, 'POST', `vdi/${disk}/write`, { offset: -1 })).body.code, 'LAB_BAD_REQUEST')
  assert.equal((await sim(url, 'POST', 'faults', { match: {}, action: { type: 'explode' } })).body.code, 'LAB_BAD_REQUEST')
  assert.equal((await sim(url, 'GET', 'nowhere')).status, 404)

  // A workload dirties the running VM's disk over time: the next delta holds blocks.
  const base = await xapi.callAsync('VDI.snapshot', vdiRef, {})
  assert.deepEqual((await sim(url, 'POST', `vm/${running.uuid}/workload`, { dirtyBlocksPerMin: 6000, locality: 0.5, seed: 3 })).body, { disks: 1 })
  await new Promise(resolve => setTimeout(resolve, 400))
  await sim(url, 'DELETE', `vm/${running.uuid}/workload`)
  const next = await xapi.callAsync('VDI.snapshot', vdiRef, {})
  const delta = await readAll((await xapi.getResource('/export_raw_vdi/', { query: { vdi: next, format: 'vhd', base } })).body)
  assert.ok(delta.length > 2 * MiB, `the workload changed blocks (${delta.length} bytes of delta)`)

  await sim(url, 'POST', 'reset')
  assert.deepEqual((await sim(url, 'GET', 'faults')).body, [])
  const methods: string[] = await xapi.call('system.listMethods')
  assert.ok(!methods.some(name => name.startsWith('_sim') || name.includes('/')), 'no method of the simulator (_sim or with a slash) is listed')
}))

test('beyond 400 sessions the oldest are invalidated', async () => {
  const env = await startTinyLab()
  try {
    const login = async () => (await rawCall(env.pool.url, 'session.login_with_password', [env.pool.username, env.pool.password])).body.result
    const first = await login()
    const second = await login()
    for (let count = 2; count < 401; count++) await login()
    assert.equal((await rawCall(env.pool.url, 'VM.get_all', [first])).body.error.message, 'SESSION_INVALID')
    assert.ok(Array.isArray((await rawCall(env.pool.url, 'VM.get_all', [second])).body.result), 'the second session is still valid after 400 logins')
  } finally {
    await env.cleanup()
  }
})

test('default fixture: a production pool and a DR pool on two ports, tagged VMs, ext/nfs/lvm SRs', async () => {
  const dir = await tempDir()
  const lab = await startLab({ dataDir: dir.path })
  try {
    assert.deepEqual(lab.pools.map(pool => pool.name), ['production', 'DR'])
    assert.notEqual(lab.pools[0]!.url, lab.pools[1]!.url)
    const production = await connect(lab.pools[0]!)
    const vms = objectsOf(production, 'VM').filter(vm => !vm.is_control_domain)
    assert.ok(vms.length >= 8, 'the production pool has at least 8 VMs')
    assert.ok(vms.some(vm => vm.power_state === 'Running') && vms.some(vm => vm.power_state === 'Halted'), 'the production pool has running and halted VMs')
    assert.ok(vms.some(vm => vm.tags.includes('db')), 'some VM of the production pool is tagged db')
    assert.deepEqual([...new Set(objectsOf(production, 'SR').map(sr => sr.type))].sort(), ['ext', 'lvm', 'nfs'])
    assert.ok(objectsOf(production, 'host').length >= 2, 'the production pool has at least 2 hosts')
    const db = vmNamed(production, 'db-01')
    assert.equal(db.VBDs.filter((ref: string) => production.getObject(ref).type === 'Disk').length, 2)
    await waitFor(() => vmNamed(production, 'web-01').$guest_metrics?.PV_drivers_detected === true, 'guest tools', 3000)
    await production.disconnect()
    const dr = await connect(lab.pools[1]!)
    assert.notEqual(dr.getObject(Object.keys(await dr.call('pool.get_all_records'))[0]).uuid, lab.pools[0]!.poolUuid)
    await dr.disconnect()
  } finally {
    await lab.stop()
    await dir.cleanup()
  }
})

test('pair fixture: the tiny "lab" pool and an empty "dr" pool (one host, one 4 GiB SR, one network) on two ports', async () => {
  const dir = await tempDir()
  const lab = await startLab({ dataDir: dir.path, fixture: 'pair' })
  try {
    assert.deepEqual(lab.pools.map(pool => pool.name), ['lab', 'dr'])
    const source = await connect(lab.pools[0]!)
    assert.deepEqual(objectsOf(source, 'VM').filter(vm => !vm.is_control_domain && !vm.is_a_snapshot).map(vm => vm.name_label).sort(),
      ['tiny-halted', 'tiny-running'])
    await source.disconnect()
    const dr = await connect(lab.pools[1]!)
    assert.equal(dr.getObject(Object.keys(await dr.call('pool.get_all_records'))[0]).uuid, lab.pools[1]!.poolUuid)
    assert.notEqual(lab.pools[1]!.poolUuid, lab.pools[0]!.poolUuid)
    assert.deepEqual(objectsOf(dr, 'VM').filter(vm => !vm.is_control_domain), [])
    assert.equal(objectsOf(dr, 'host').length, 1)
    assert.equal(objectsOf(dr, 'network').length, 1)
    const [sr, ...others] = objectsOf(dr, 'SR')
    assert.equal(others.length, 0)
    assert.equal(sr.physical_size, 4 * 1024 ** 3)
    assert.equal(sr.physical_utilisation, 0)
    await dr.disconnect()
  } finally {
    await lab.stop()
    await dir.cleanup()
  }
})

test('SR space: guest writes from a workload are charged to the SR, seen in its record after SR.scan', () => withTinyLab(async ({ env, xapi }) => {
  const vm = vmNamed(xapi, 'tiny-running')
  const sr = xapi.getObject(xapi.getObject(xapi.getObject(vm.VBDs.find((ref: string) => xapi.getObject(ref).type === 'Disk')).VDI).SR)
  // A snapshot first, so that every block the workload dirties is a new allocation in the fresh leaf.
  await xapi.callAsync('VM.snapshot', vm.$ref, 'before the workload')
  await xapi.call('SR.scan', sr.$ref)
  const before = await xapi.call('SR.get_physical_utilisation', sr.$ref)
  env.lab.control.startWorkload(vm.uuid, { dirtyBlocksPerMin: 6000, locality: 0, seed: 5 })
  await new Promise(resolve => setTimeout(resolve, 400))
  await env.lab.control.stopWorkload(vm.uuid)
  await xapi.call('SR.scan', sr.$ref)
  const after = await xapi.call('SR.get_physical_utilisation', sr.$ref)
  const grown = Number(after) - Number(before)
  // A file SR is charged the VHD's size: each new block costs its 2 MiB and its 512-byte sector bitmap.
  assert.ok(grown > 0 && grown % (2 * MiB + 512) === 0, `the SR grew by whole blocks (${grown} bytes)`)
  await waitFor(() => Number(xapi.getObject(sr.$ref).physical_utilisation) === Number(after), 'the new utilisation in the client cache')
  assert.equal(Number(xapi.getObject(sr.$ref).physical_size), 4 * 1024 ** 3)
}))
