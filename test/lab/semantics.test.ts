// XAPI's object semantics in the lab (xapi.md §2.2): what snapshot, clone, start, destroy and CBT do to records,
// hidden base copies, and guest tools reporting, seen through the real client's cache.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { xapiDate } from '../../source/lab/toolstack.ts'
import { diskOf, readAll, useTinyLab, vmNamed, waitFor } from './helpers.ts'

const MiB = 1024 * 1024

function objectsOfSr(sr: any): any[] {
  return sr.VDIs.map((ref: string) => sr.$xapi.getObject(ref))
}

describe('lab semantics', () => {
  const tiny = useTinyLab()

  test('VM.snapshot copies other_config and disk metadata, marks a template, resets blocked operations', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-running')
    await tiny.xapi.call('VM.add_to_other_config', vm.$ref, 'xo:backup:job', 'job-1')
    await tiny.xapi.call('VM.add_to_blocked_operations', vm.$ref, 'migrate_send', 'VM migration is blocked during backup')
    await tiny.xapi.call('VDI.add_to_other_config', diskOf(vm).$ref, 'xo:backup:vm', vm.uuid)
    const ref = await tiny.xapi.callAsync('VM.snapshot', vm.$ref, 'xo-backup-temp-snapshot-name')
    const snapshot = await waitFor(() => tiny.xapi.getObject(ref, undefined)?.VBDs?.length > 0 && tiny.xapi.getObject(ref), 'the snapshot')
    assert.equal(snapshot.is_a_snapshot, true)
    assert.equal(snapshot.is_a_template, true)
    assert.equal(snapshot.power_state, 'Halted')
    assert.equal(snapshot.$snapshot_of.$ref, vm.$ref)
    assert.deepEqual(snapshot.blocked_operations, {})
    assert.equal(snapshot.other_config['xo:backup:job'], 'job-1')
    assert.equal(snapshot.ha_restart_priority, vm.ha_restart_priority)
    assert.equal(snapshot.snapshot_info['power-state-at-snapshot'], 'Running')
    await waitFor(() => tiny.xapi.getObject(vm.$ref).snapshots.includes(ref), 'VM.snapshots updated')
    const disk = diskOf(snapshot)
    assert.equal(disk.is_a_snapshot, true)
    assert.equal(disk.name_label, diskOf(vm).name_label)
    assert.equal(disk.other_config['xo:backup:vm'], vm.uuid)
    assert.equal(disk.$snapshot_of.$ref, diskOf(vm).$ref)
    await waitFor(() => diskOf(tiny.xapi.getObject(vm.$ref)).snapshots.includes(disk.$ref), 'VDI.snapshots updated')
    // The live disk and the snapshot now sit on a hidden base copy (managed=false), named by sm_config['vhd-parent'].
    const parentUuid = await waitFor(() => diskOf(tiny.xapi.getObject(vm.$ref)).sm_config['vhd-parent'], 'vhd-parent')
    const base = tiny.xapi.getObject(await tiny.xapi.call('VDI.get_by_uuid', parentUuid))
    assert.equal(base.managed, false)
    assert.equal(base.read_only, true)
    assert.ok(base.$SR.VDIs.includes(base.$ref), 'SR.VDIs lists base copies')
    await tiny.xapi.call('VM.set_is_a_template', ref, false)
    await tiny.xapi.call('VM.destroy', ref)
    assert.equal(await tiny.xapi.call('VDI.get_is_a_snapshot', disk.$ref), true, 'VM.destroy leaves the VDIs')
    await tiny.xapi.call('VDI.destroy', disk.$ref)
    // SM coalesces the base copy left with a single child: the chain is healthy again.
    await waitFor(() => tiny.xapi.getObject(base.$ref, undefined) === undefined, 'the base copy coalesced')
    assert.equal(diskOf(tiny.xapi.getObject(vm.$ref)).sm_config['vhd-parent'], undefined)
  })

  test('gcStuck keeps a base copy with a single child visible (an unhealthy chain)', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-halted')
    const snapshot = await tiny.xapi.callAsync('VDI.snapshot', diskOf(vm).$ref, {})
    tiny.env.lab.control.setKnobs({ gcStuck: true })
    try {
      await tiny.xapi.call('VDI.destroy', snapshot)
      const parent = await waitFor(() => diskOf(tiny.xapi.getObject(vm.$ref)).sm_config['vhd-parent'], 'the parent')
      const base = tiny.xapi.getObject(await tiny.xapi.call('VDI.get_by_uuid', parent))
      assert.equal(base.managed, false)
      await waitFor(() => objectsOfSr(base.$SR).filter((vdi: any) => vdi?.sm_config['vhd-parent'] === parent).length === 1, 'one child: SM would coalesce it')
    } finally {
      tiny.env.lab.control.setKnobs({ gcStuck: false })
    }
    await waitFor(() => diskOf(tiny.xapi.getObject(vm.$ref)).sm_config['vhd-parent'] === undefined, 'the chain coalesced once GC runs')
  })

  test('VM.snapshot with ignore_vdis leaves those disks out', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-halted')
    const ref = await tiny.xapi.callAsync('VM.snapshot', vm.$ref, 'without disks', [diskOf(vm).$ref])
    const snapshot = await waitFor(() => tiny.xapi.getObject(ref, undefined)?.VBDs?.length > 0 && tiny.xapi.getObject(ref), 'the snapshot')
    assert.deepEqual(snapshot.$VBDs.map((vbd: any) => vbd.type), ['CD'])
    await tiny.xapi.call('VM.destroy', ref)
  })

  test('start: Running with guest metrics in the same event, PV drivers reported later for a VM with tools', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-running')
    await tiny.xapi.callAsync('VM.hard_shutdown', vm.$ref)
    await waitFor(() => tiny.xapi.getObject(vm.$ref).power_state === 'Halted', 'Halted')
    assert.equal(tiny.xapi.getObject(vm.$ref).$guest_metrics, undefined)
    await tiny.xapi.callAsync('VM.start', vm.$ref, false, false)
    const running = await waitFor(() => tiny.xapi.getObject(vm.$ref).power_state === 'Running' && tiny.xapi.getObject(vm.$ref), 'Running')
    assert.equal(running.$guest_metrics.PV_drivers_detected, false)
    await waitFor(() => tiny.xapi.getObject(vm.$ref).$guest_metrics?.PV_drivers_detected === true, 'PV drivers', 3000)
    assert.equal(tiny.xapi.getObject(vm.$ref).$guest_metrics.PV_drivers_version.major, '8')
    await assert.rejects(tiny.xapi.call('VM.start', vm.$ref, false, false), (error: any) => error.code === 'VM_BAD_POWER_STATE')
    await assert.rejects(tiny.xapi.call('VM.destroy', vm.$ref), (error: any) => error.code === 'VM_BAD_POWER_STATE')
  })

  test('a replica with start blocked cannot start, its clone and copy can (XAPI resets blocked_operations); VM.copy to an SR copies the data', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-halted')
    const reason = 'Start operation for this vm is blocked, clone it if you want to use it.'
    await tiny.xapi.call('VM.add_to_blocked_operations', vm.$ref, 'start', reason)
    await tiny.xapi.call('VM.set_ha_always_run', vm.$ref, true)
    await tiny.xapi.call('VM.set_order', vm.$ref, 3)
    await assert.rejects(tiny.xapi.call('VM.start', vm.$ref, false, false), (error: any) => error.code === 'OPERATION_BLOCKED' &&
      error.params[0] === vm.$ref && error.params[1] === reason)
    const clone = await tiny.xapi.callAsync('VM.clone', vm.$ref, 'Health Check')
    // xapi_vm_clone.ml copy_vm_record: no blocked operations, HA off, no order; the restart priority is kept.
    const cloned = await tiny.xapi.call('VM.get_record', clone)
    assert.deepEqual([cloned.blocked_operations, cloned.ha_always_run, cloned.ha_restart_priority, cloned.order], [{}, false, 'restart', 0])
    await tiny.xapi.callAsync('VM.start', clone, false, false)
    await tiny.xapi.callAsync('VM.hard_shutdown', clone)
    const copy = await tiny.xapi.callAsync('VM.copy', vm.$ref, 'copy', diskOf(vm).SR)
    const copied = await waitFor(() => tiny.xapi.getObject(copy, undefined)?.VBDs?.length > 0 && tiny.xapi.getObject(copy), 'the copy')
    assert.deepEqual([copied.blocked_operations, copied.ha_always_run], [{}, false])
    assert.equal(diskOf(copied).sm_config['vhd-parent'], undefined, 'a copy is independent')
    const read = async (vdi: string) => readAll((await tiny.xapi.getResource('/export_raw_vdi/', { query: { vdi, format: 'raw' } })).body)
    assert.ok((await read(diskOf(copied).$ref)).equals(await read(diskOf(vm).$ref)), 'the copied disk reads back as the disk of the VM')
    await tiny.xapi.call('VM.remove_from_blocked_operations', vm.$ref, 'start')
    await tiny.xapi.call('VM.set_ha_always_run', vm.$ref, false)
    await tiny.xapi.call('VM.set_order', vm.$ref, 0)
    for (const ref of [clone, copy]) await tiny.xapi.call('VM.destroy', ref)
  })

  test('CBT: changed blocks between snapshots, data_destroy to cbt_metadata, delta from it refused', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-running')
    const live = diskOf(vm)
    await tiny.xapi.callAsync('VDI.enable_cbt', live.$ref)
    const first = await tiny.xapi.callAsync('VDI.snapshot', live.$ref, {})
    await tiny.env.lab.control.writeVdi(live.uuid, { offset: 3 * MiB, length: 4096, seed: 9 })
    const second = await tiny.xapi.callAsync('VDI.snapshot', live.$ref, {})
    const bitmap = Buffer.from(await tiny.xapi.callAsync('VDI.list_changed_blocks', first, second), 'base64')
    assert.equal(bitmap.length, Math.ceil(live.virtual_size / (64 * 1024) / 8))
    const changed = [...bitmap].flatMap((byte, index) => [0, 1, 2, 3, 4, 5, 6, 7].filter(bit => byte & (0x80 >> bit)).map(bit => index * 8 + bit))
    assert.deepEqual(changed, [3 * 16], 'the 64 KiB block at 3 MiB, MSB first')
    await assert.rejects(tiny.xapi.call('VDI.data_destroy', live.$ref), (error: any) => error.code === 'VDI_NO_CBT_METADATA')
    await tiny.xapi.callAsync('VDI.data_destroy', first)
    assert.equal(await tiny.xapi.call('VDI.get_type', first), 'cbt_metadata')
    await assert.rejects(tiny.xapi.getResource('/export_raw_vdi/', { query: { vdi: second, format: 'vhd', base: first } }), /unexpected 500/)
  })

  test('HA: the restart priority is checked and protects a running VM at once, ha_always_run goes through it; start_time is set by every start and resume, kept after a shutdown', async () => {
    const vm = await tiny.xapi.callAsync('VM.clone', vmNamed(tiny.xapi, 'tiny-halted').$ref, 'ha')
    const get = async () => {
      const record = await tiny.xapi.call('VM.get_record', vm)
      return { ...record, start_time: await tiny.xapi.call('VM_metrics.get_start_time', record.metrics) }
    }
    await assert.rejects(tiny.xapi.call('VM.set_ha_restart_priority', vm, 'always'),
      (error: any) => error.code === 'INVALID_VALUE' && error.params[0] === 'ha_restart_priority' && error.params[1] === 'always')
    await tiny.xapi.call('VM.set_ha_restart_priority', vm, 'restart')
    assert.equal((await get()).ha_always_run, false, 'a halted VM is protected when it starts')
    await tiny.xapi.callAsync('VM.start', vm, false, false)
    const started = await get()
    assert.equal(started.ha_always_run, true)
    assert.notEqual(started.start_time, '19700101T00:00:00Z')
    await tiny.xapi.call('VM.set_ha_restart_priority', vm, 'best-effort')
    assert.equal((await get()).ha_always_run, false)
    await tiny.xapi.call('VM.set_ha_always_run', vm, true)
    assert.deepEqual([(await get()).ha_restart_priority, (await get()).ha_always_run], ['restart', true])
    await tiny.xapi.callAsync('VM.clean_shutdown', vm)
    const halted = await get()
    assert.deepEqual([halted.ha_always_run, halted.start_time], [false, started.start_time], 'XAPI keeps the last start time')
    const clone = await tiny.xapi.callAsync('VM.clone', vm, 'its clone')
    assert.equal((await tiny.xapi.call('VM_metrics.get_start_time', await tiny.xapi.call('VM.get_metrics', clone))), started.start_time,
      'a clone\'s metrics are a copy')
    await tiny.xapi.call('VM.destroy', clone)
    // start_time counts seconds: the next one is waited for, so that a resume a second later shows as a new time.
    await waitFor(() => xapiDate() > started.start_time, 'the next second', 5000)
    await tiny.xapi.call('VM.set_memory_limits', vm, 32 * MiB, 64 * MiB, 64 * MiB, 64 * MiB)
    await tiny.xapi.callAsync('VM.start', vm, false, false)
    await tiny.xapi.callAsync('VM.suspend', vm)
    const suspended = await get()
    await waitFor(() => xapiDate() > suspended.start_time, 'the next second', 5000)
    await tiny.xapi.callAsync('VM.resume', vm, false, false)
    const resumed = await get()
    assert.ok(resumed.start_time > suspended.start_time, `resume sets start_time (${suspended.start_time} → ${resumed.start_time})`)
    assert.equal(resumed.ha_always_run, true)
    await tiny.xapi.callAsync('VM.hard_shutdown', vm)
    await tiny.xapi.call('VM.destroy', vm)
  })

  test('VBD and VIF devices, tags and HA priority', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-halted')
    const devices = await tiny.xapi.call('VM.get_allowed_VBD_devices', vm.$ref)
    assert.ok(!devices.includes('0') && devices.includes('1'), 'device 0 is taken and device 1 is free')
    await tiny.xapi.call('VM.add_tags', vm.$ref, 'Continuous Replication')
    await tiny.xapi.call('VM.add_tags', vm.$ref, 'Continuous Replication')
    await tiny.xapi.call('VM.set_ha_restart_priority', vm.$ref, '')
    await waitFor(() => tiny.xapi.getObject(vm.$ref).tags.filter((tag: string) => tag === 'Continuous Replication').length === 1, 'one tag')
    const network = tiny.xapi.getObject(vm.VIFs[0]).network
    const vif = await tiny.xapi.call('VIF.create', { VM: vm.$ref, network, device: '1', MAC: '', MTU: 1500, other_config: {} })
    await waitFor(() => tiny.xapi.getObject(vm.$ref).VIFs.includes(vif), 'VM.VIFs')
    await tiny.xapi.callAsync('VIF.destroy', vif)
    await waitFor(() => !tiny.xapi.getObject(vm.$ref).VIFs.includes(vif), 'VIF gone')
  })
})
