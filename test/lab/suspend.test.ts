// Memory in the lab, as continuous replication with RAM needs it, through the real client: VM.suspend writes a
// memory image (sparse, sized as XAPI sizes it), VM.resume runs the VM from it and destroys it, a VM is created
// Suspended around an imported image (XO's replica), and clones of suspended VMs follow XAPI's rules.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { describe, test } from 'node:test'
import { openVhdStream } from '../../source/formats/vhd/index.ts'
import { readAll, useTinyLab, vmNamed } from './helpers.ts'

const MiB = 1024 * 1024
const MEMORY = 64 * MiB
/** XAPI's room for a suspend image (xapi_xenops.ml suspend): memory_static_max × 1.2 × 1.05 + 100 MiB, on 2 MiB blocks. */
const IMAGE_SIZE = Math.ceil((Math.ceil(MEMORY * 1.2 * 1.05) + 100 * MiB) / (2 * MiB)) * 2 * MiB

describe('lab suspend and resume', () => {
  const tiny = useTinyLab()

  const sha = async (vdi: string) => {
    const hash = createHash('sha256')
    for await (const chunk of (await tiny.xapi.getResource('/export_raw_vdi/', { query: { vdi, format: 'raw' } })).body) hash.update(chunk)
    return hash.digest('hex')
  }
  const vhd = async (vdi: string) => readAll((await tiny.xapi.getResource('/export_raw_vdi/', { query: { vdi, format: 'vhd' } })).body)
  const record = (ref: string) => tiny.xapi.call('VM.get_record', ref)
  /** A small running VM of its own (a clone of tiny-halted with 64 MiB of memory), so images stay small. */
  const smallRunningVm = async (name: string) => {
    const vm = await tiny.xapi.callAsync('VM.clone', vmNamed(tiny.xapi, 'tiny-halted').$ref, name)
    await tiny.xapi.call('VM.set_memory_limits', vm, MEMORY / 2, MEMORY, MEMORY, MEMORY)
    await tiny.xapi.callAsync('VM.start', vm, false, false)
    return vm
  }

  test('VM.suspend writes a sparse memory image sized as XAPI sizes it; VM.resume runs the VM again and destroys the image', async () => {
    const vm = await smallRunningVm('suspended')
    await tiny.xapi.callAsync('VM.suspend', vm)
    const suspended = await record(vm)
    assert.equal(suspended.power_state, 'Suspended')
    assert.equal(suspended.ha_always_run, false)
    const image = await tiny.xapi.call('VDI.get_record', suspended.suspend_VDI)
    assert.deepEqual([image.type, image.name_label, image.virtual_size], ['suspend', 'Suspend image', IMAGE_SIZE])
    assert.ok(image.physical_utilisation < IMAGE_SIZE / 4, `sparse (${image.physical_utilisation} bytes used)`)
    const reader = await openVhdStream(Readable.from([await vhd(suspended.suspend_VDI)]))
    const blocks: Buffer[] = []
    for await (const block of reader.blocks()) blocks.push(block.data)
    assert.ok(blocks.length >= 3 && blocks.every(block => block.some(byte => byte !== 0)), 'the image holds memory in several places')
    // The pattern leaves seeded holes (a hole can be the first chunk): the block holds its sectors somewhere, not always at 0.
    assert.match(blocks[0]!.toString('latin1'), /LIFEBOAT seed=\d+ sector=\d+\n/, 'the image is the lab\'s memory pattern')
    assert.equal((await tiny.xapi.call('VM.get_VBDs', vm)).length > 0, true)
    await assert.rejects(tiny.xapi.call('VM.start', vm, false, false), (error: any) => error.code === 'VM_BAD_POWER_STATE')

    await tiny.xapi.callAsync('VM.resume', vm, false, false)
    const resumed = await record(vm)
    assert.equal(resumed.power_state, 'Running')
    assert.equal(resumed.suspend_VDI, 'OpaqueRef:NULL')
    await assert.rejects(tiny.xapi.call('VDI.get_record', suspended.suspend_VDI), (error: any) => error.code === 'HANDLE_INVALID')
    await assert.rejects(tiny.xapi.call('VM.resume', vm, false, false), (error: any) => error.code === 'VM_BAD_POWER_STATE')
    await tiny.xapi.callAsync('VM.hard_shutdown', vm)
    await tiny.xapi.callAsync('VM.destroy', vm)
  })

  test('a VM created Suspended around an imported copy of a checkpoint\'s image (XO\'s replica) resumes from it', async () => {
    const source = await smallRunningVm('source')
    const checkpoint = await tiny.xapi.callAsync('VM.checkpoint', source, 'with memory')
    const snapshot = await record(checkpoint)
    assert.equal(snapshot.power_state, 'Suspended')
    assert.notEqual(snapshot.last_booted_record, '', 'a started VM has a last booted record, kept in its checkpoint')
    assert.ok(Object.keys(snapshot.last_boot_CPU_flags).length > 0, 'the snapshot records the CPU flags of its last boot')
    const image = await tiny.xapi.call('VDI.get_record', snapshot.suspend_VDI)
    const checkpointVbds = await Promise.all(snapshot.VBDs.map((vbd: string) => tiny.xapi.call('VBD.get_record', vbd)))
    assert.ok(checkpointVbds.filter(vbd => vbd.type === 'Disk').every(vbd => vbd.currently_attached), 'a checkpoint\'s disks stay attached, as its memory expects')
    const second = await record(await tiny.xapi.callAsync('VM.checkpoint', source, 'later'))
    assert.notEqual(await sha(second.suspend_VDI), await sha(snapshot.suspend_VDI), 'two checkpoints have different memory')

    // XO's importIncrementalVm: VDI.create from the image's record, its content imported, then VM.create Suspended.
    const copy = await tiny.xapi.call('VDI.create', { name_label: image.name_label, name_description: image.name_description, SR: image.SR,
      virtual_size: image.virtual_size, type: 'suspend', sharable: false, read_only: false, other_config: {}, xenstore_data: {}, tags: [] })
    await tiny.xapi.putResource(await vhd(snapshot.suspend_VDI), '/import_raw_vdi/', { query: { vdi: copy, format: 'vhd' } })
    assert.equal(await sha(copy), await sha(snapshot.suspend_VDI), 'the copied image equals the checkpoint\'s byte for byte')
    const fields = { name_label: 'replica', memory_static_max: MEMORY, memory_static_min: MEMORY / 2, memory_dynamic_max: MEMORY,
      memory_dynamic_min: MEMORY, VCPUs_max: 1, VCPUs_at_startup: 1, blocked_operations: { start: 'Importing…' } }
    await assert.rejects(tiny.xapi.call('VM.create', { ...fields, power_state: 'Suspended', suspend_VDI: copy }),
      (error: any) => error.code === 'VM_BAD_POWER_STATE' && error.params[1] === 'halted' && error.params[2] === 'suspended')
    const replica = await tiny.xapi.call('VM.create', { ...fields, power_state: 'Suspended', suspend_VDI: copy,
      last_booted_record: snapshot.last_booted_record, last_boot_CPU_flags: snapshot.last_boot_CPU_flags })
    const created = await record(replica)
    assert.deepEqual([created.power_state, created.suspend_VDI, created.last_booted_record], ['Suspended', copy, snapshot.last_booted_record])
    assert.deepEqual(created.blocked_operations, {}, 'VM.create ignores blocked_operations (XO sets them afterwards)')
    const disk = await tiny.xapi.call('VDI.create', { name_label: 'disk', SR: image.SR, virtual_size: 4 * MiB, type: 'user' })
    const vbd = await tiny.xapi.call('VBD.create', { VM: replica, VDI: disk, userdevice: '0', bootable: true, mode: 'RW', type: 'Disk',
      unpluggable: false, empty: false, other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {}, currently_attached: true, device: 'xvda' })
    assert.equal(await tiny.xapi.call('VBD.get_currently_attached', vbd), true, 'a suspended VM\'s VBD is created attached')
    const unplugged = await tiny.xapi.call('VBD.create', { VM: replica, VDI: await tiny.xapi.call('VDI.create', { name_label: 'other', SR: image.SR,
      virtual_size: 4 * MiB, type: 'user' }), userdevice: '1', bootable: false, mode: 'RW', type: 'Disk', unpluggable: true, empty: false,
      other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} })
    assert.equal(await tiny.xapi.call('VBD.get_currently_attached', unplugged), false)

    await assert.rejects(tiny.xapi.callAsync('VM.clone', replica, 'clone'), (error: any) => error.code === 'VM_BAD_POWER_STATE')
    const pool = (await tiny.xapi.call('pool.get_all'))[0]
    await tiny.xapi.call('pool.add_to_other_config', pool, 'allow_clone_suspended_vm', 'true')
    try {
      const clone = await tiny.xapi.callAsync('VM.clone', replica, 'clone')
      const cloned = await record(clone)
      assert.equal(cloned.power_state, 'Suspended')
      assert.notEqual(cloned.suspend_VDI, copy)
      assert.equal(await sha(cloned.suspend_VDI), await sha(copy), 'the clone has its own copy of the image')
      await tiny.xapi.callAsync('VM.resume', clone, false, false)
      await tiny.xapi.callAsync('VM.hard_shutdown', clone)
    } finally {
      await tiny.xapi.call('pool.remove_from_other_config', pool, 'allow_clone_suspended_vm')
    }
    const fromCheckpoint = await record(await tiny.xapi.callAsync('VM.clone', checkpoint, 'from the checkpoint'))
    assert.deepEqual([fromCheckpoint.power_state, fromCheckpoint.suspend_VDI], ['Halted', 'OpaqueRef:NULL'], 'XAPI shuts a checkpoint\'s clone down')

    await tiny.xapi.callAsync('VM.resume', replica, false, false)
    assert.equal((await record(replica)).power_state, 'Running')
    assert.deepEqual([await tiny.xapi.call('VBD.get_currently_attached', vbd), await tiny.xapi.call('VBD.get_currently_attached', unplugged)], [true, false],
      'a resumed VM gets the devices that were attached, no others')
    await assert.rejects(tiny.xapi.call('VDI.get_record', copy), (error: any) => error.code === 'HANDLE_INVALID')
  })
})
