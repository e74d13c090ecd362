// VM lifecycle as XAPI does it (xapi.md §2.2): snapshot, checkpoint, clone, copy, destroy, start, shutdowns and
// create, with the power-state matrix, blocked operations and the exact errors backup tools react to.
import { createHash } from 'node:crypto'
import { encodeXmlRpcValue } from '../formats/xmlrpc.ts'
import type { LabRecord } from './database.ts'
import { ApiError } from './errors.ts'
import { NULL_REF } from './schema.ts'
import { fillPattern, LAB_BLOCK_SIZE } from './storage/index.ts'
import { delay, xapiDate, type CallContext, type Toolstack } from './toolstack.ts'
import { copyOnWrite, createVdi, destroyVdi, leafOf, pick, refreshSr } from './vdi.ts'
import { bootable, startGuest } from './guest.ts'

type PowerState = 'Halted' | 'Running' | 'Paused' | 'Suspended'

export function assertPowerState(xapi: Toolstack, vm: string, allowed: PowerState[]): void {
  const actual = xapi.db.row('VM', vm).power_state as string
  if (!allowed.includes(actual as PowerState)) {
    throw new ApiError('VM_BAD_POWER_STATE', [vm, allowed.map(state => state.toLowerCase()).join(', '), actual.toLowerCase()])
  }
}

function assertNotBlocked(xapi: Toolstack, vm: string, operation: string): void {
  const reason = (xapi.db.row('VM', vm).blocked_operations as Record<string, string>)[operation]
  if (reason !== undefined) throw new ApiError('OPERATION_BLOCKED', [vm, reason])
}

/** Marks `operation` in the VM's current_operations for its duration; exclusive operations refuse to overlap. */
export async function withVmOperation<T>(xapi: Toolstack, vm: string, operation: string, context: { task: string | undefined }, body: () => Promise<T>,
  exclusive = true): Promise<T> {
  const { db } = xapi
  const current = db.row('VM', vm).current_operations as Record<string, string>
  const [otherTask, otherOperation] = Object.entries(current)[0] ?? []
  if (exclusive && otherTask !== undefined) throw new ApiError('OTHER_OPERATION_IN_PROGRESS', ['VM', vm, otherOperation, otherTask])
  const key = context.task ?? `OpaqueRef:${crypto.randomUUID()}`
  db.update('VM', vm, { current_operations: { ...current, [key]: operation } })
  try {
    return await body()
  } finally {
    if (db.has('VM', vm)) {
      const operations = { ...(db.row('VM', vm).current_operations as Record<string, string>) }
      delete operations[key]
      db.update('VM', vm, { current_operations: operations })
    }
  }
}

const VM_COPIED_FIELDS = ['name_description', 'user_version', 'is_a_template', 'memory_static_max', 'memory_static_min', 'memory_dynamic_max',
  'memory_dynamic_min', 'memory_target', 'VCPUs_params', 'VCPUs_max', 'VCPUs_at_startup', 'actions_after_softreboot', 'actions_after_shutdown',
  'actions_after_reboot', 'actions_after_crash', 'PV_bootloader', 'PV_kernel', 'PV_ramdisk', 'PV_args', 'PV_bootloader_args', 'PV_legacy_args',
  'HVM_boot_policy', 'HVM_boot_params', 'HVM_shadow_multiplier', 'platform', 'PCI_bus', 'other_config', 'recommendations', 'xenstore_data',
  'ha_always_run', 'ha_restart_priority', 'tags', 'bios_strings', 'suspend_SR', 'start_delay', 'shutdown_delay', 'order', 'has_vendor_device',
  'domain_type', 'NVRAM', 'hardware_platform_version', 'generation_id', 'reference_label', 'affinity', 'appliance', 'last_booted_record',
  'last_boot_CPU_flags']

type DiskCopy = (vdi: string) => Promise<string>

/** A record's fields for a copy of it (its uuid left for the copy's own), nothing when it is gone. */
function copiedFields(xapi: Toolstack, cls: string, ref: string): LabRecord {
  if (!xapi.db.has(cls, ref)) return {}
  const { uuid: _uuid, ...fields } = xapi.db.row(cls, ref)
  return fields
}

/** The common core of snapshot, checkpoint, clone and copy: a new VM record with its devices, disks copied by `copyDisk`. */
async function duplicateVm(xapi: Toolstack, vm: string, name: string, fields: LabRecord, copyDisk: DiskCopy, skipVdis: string[] = []): Promise<string> {
  const { db } = xapi
  const source = db.row('VM', vm)
  // XAPI copies the metrics (start_time included) into the new VM (xapi_vm_helpers.ml copy_metrics).
  const metrics = db.create('VM_metrics', copiedFields(xapi, 'VM_metrics', source.metrics as string))
  const guestMetrics = fields.guest_metrics === true && !xapi.isNull(source.guest_metrics) && db.has('VM_guest_metrics', source.guest_metrics as string)
    ? db.create('VM_guest_metrics', copiedFields(xapi, 'VM_guest_metrics', source.guest_metrics as string))
    : NULL_REF
  // As xapi_vm_clone.ml copy_vm_record: no blocked operations, HA off, no boot order, appliance or suspend SR.
  const copy = db.create('VM', { ...pick(source, VM_COPIED_FIELDS), ...fields, name_label: name, metrics, guest_metrics: guestMetrics,
    blocked_operations: {}, allowed_operations: [], current_operations: {}, ha_always_run: false, start_delay: 0, shutdown_delay: 0, order: 0,
    suspend_SR: NULL_REF, appliance: NULL_REF })
  const copiedDisks: string[] = []
  try {
    for (const vbd of db.refsWhere('VBD', 'VM', vm)) {
      const record = db.row('VBD', vbd)
      const disk = record.type === 'Disk' && !xapi.isNull(record.VDI)
      if (disk && skipVdis.includes(record.VDI as string)) continue
      const vdi = disk ? await copyDisk(record.VDI as string) : record.VDI
      if (disk) copiedDisks.push(vdi as string)
      db.create('VBD', { ...pick(record, ['device', 'userdevice', 'bootable', 'mode', 'type', 'unpluggable', 'empty', 'qos_algorithm_type',
        'qos_algorithm_params']), VM: copy, VDI: vdi, other_config: disk ? { ...(record.other_config as object), owner: '' } : record.other_config,
        currently_attached: attachedIfSuspended(fields, record) })
    }
  } catch (error) {
    // XAPI rolls a failed snapshot or copy back: no half-made VM is left (a full SR fails on the second disk too).
    for (const vbd of db.refsWhere('VBD', 'VM', copy)) db.delete('VBD', vbd)
    for (const vdi of copiedDisks) await destroyVdi(xapi, vdi).catch(() => {})
    db.delete('VM', copy)
    db.delete('VM_metrics', metrics)
    if (guestMetrics !== NULL_REF) db.delete('VM_guest_metrics', guestMetrics)
    throw error
  }
  for (const vif of db.refsWhere('VIF', 'VM', vm)) {
    const record = db.row('VIF', vif)
    db.create('VIF', { ...pick(record, ['device', 'network', 'MAC', 'MTU', 'other_config', 'MAC_autogenerated', 'locking_mode']), VM: copy,
      currently_attached: attachedIfSuspended(fields, record) })
  }
  return copy
}

/** A copied device keeps its attachment in a Suspended copy, which resumes with it; a Halted copy's are reset (force_state_reset). */
function attachedIfSuspended(fields: LabRecord, device: LabRecord): boolean {
  return fields.power_state === 'Suspended' && device.currently_attached === true
}

async function snapshotVm(xapi: Toolstack, context: CallContext, vm: string, name: string, ignoreVdis: string[], checkpoint: boolean): Promise<string> {
  const { db } = xapi
  return withVmOperation(xapi, vm, checkpoint ? 'checkpoint' : 'snapshot', context, async () => {
    const source = db.row('VM', vm)
    const fields: LabRecord = { is_a_snapshot: true, snapshot_of: vm, snapshot_time: xapiDate(), is_a_template: true, power_state: 'Halted',
      parent: source.parent, guest_metrics: true,
      snapshot_info: { 'power-state-at-snapshot': source.power_state, 'disk-snapshot-type': checkpoint ? 'checkpoint' : 'crash_consistent' } }
    if (checkpoint) {
      fields.power_state = 'Suspended'
      // A running VM is suspended for a moment (its memory written), a suspended one's image is cloned.
      fields.suspend_VDI = source.power_state === 'Suspended' ? await copyOnWrite(xapi, source.suspend_VDI as string, 'clone') : await createSuspendVdi(xapi, vm)
    }
    const snapshot = await duplicateVm(xapi, vm, name, fields, vdi => copyOnWrite(xapi, vdi, 'snapshot'), ignoreVdis)
    db.update('VM', vm, { parent: snapshot })
    return snapshot
  }, false)
}

/** XAPI's room for a suspend image (xapi_xenops.ml suspend): memory_static_max × 1.2 × 1.05 + 100 MiB. */
function suspendImageSize(record: LabRecord): number {
  return Math.ceil(Number(record.memory_static_max) * 1.2 * 1.05) + 100 * 1024 * 1024
}

/** A suspend VDI holding the VM's memory, on the SR XAPI picks (the VM's suspend_SR, the pool's, the host's). */
async function createSuspendVdi(xapi: Toolstack, vm: string): Promise<string> {
  const { db } = xapi
  const record = db.row('VM', vm)
  const host = record.resident_on as string
  const sr = [record.suspend_SR, db.row('pool', xapi.poolRef).suspend_image_SR, db.has('host', host) ? db.row('host', host).suspend_image_sr : NULL_REF]
    .find(candidate => !xapi.isNull(candidate) && db.has('SR', candidate as string)) as string | undefined
  if (sr === undefined) throw new ApiError('VM_NO_SUSPEND_SR', [vm])
  let vdi: string | undefined
  try {
    vdi = await createVdi(xapi, { SR: sr, virtual_size: suspendImageSize(record), type: 'suspend', name_label: 'Suspend image', name_description: 'Suspend image' })
    await writeMemoryImage(xapi, vdi, record)
  } catch (error) {
    if (vdi !== undefined) await destroyVdi(xapi, vdi).catch(() => {})
    if ((error as { code?: string }).code === 'SR_BACKEND_FAILURE_44') throw new ApiError('SR_SUSPEND_SPACE_INSUFFICIENT', [sr])
    throw error
  }
  refreshSr(xapi, sr)
  return vdi
}

/**
 * The guest's memory as a suspend writes it: patterns (lab/storage/workload.ts) at the start, middle and end of its RAM,
 * seeded by the VM and the moment (the database generation), so each image is its own and a copy can be compared byte for byte.
 */
async function writeMemoryImage(xapi: Toolstack, vdi: string, vm: LabRecord): Promise<void> {
  const seed = createHash('sha256').update(`${String(vm.uuid)}:${xapi.db.generation}`).digest().readUInt32BE(0)
  const memory = Math.min(Number(vm.memory_static_max), xapi.db.row('VDI', vdi).virtual_size as number)
  const extents = new Set([0, Math.floor(memory / 2 / LAB_BLOCK_SIZE) * LAB_BLOCK_SIZE, Math.max(0, memory - LAB_BLOCK_SIZE)])
  for (const offset of extents) {
    const length = Math.min(LAB_BLOCK_SIZE, memory - offset)
    if (length > 0) await fillPattern(xapi.store, leafOf(xapi, vdi), { offset, length, seed })
  }
}

/** A full, independent copy of a disk in another (or the same) SR: every allocated block read and written. */
async function copyDiskTo(xapi: Toolstack, vdi: string, sr: string): Promise<string> {
  const { db, store } = xapi
  const source = db.row('VDI', vdi)
  const target = await createVdi(xapi, { ...pick(source, ['name_label', 'name_description', 'type', 'sharable', 'other_config', 'xenstore_data',
    'tags']), SR: sr, virtual_size: source.virtual_size })
  const leaf = leafOf(xapi, target)
  for (const index of store.allocatedBlocks(source.location as string)) {
    await store.write(leaf, index * (2 * 1024 * 1024), await store.readBlock(source.location as string, index))
  }
  refreshSr(xapi, sr)
  return target
}

export function defineVmMethods(xapi: Toolstack): void {
  const { db } = xapi
  const vmRef = (value: unknown) => xapi.ref('VM', value)
  const asyncable = { asyncable: true }

  xapi.define('VM.snapshot', [2, 3], (context, vm, name, ignoreVdis) => {
    assertNotBlocked(xapi, vmRef(vm), 'snapshot')
    return xapi.activity.track('snapshot', () => snapshotVm(xapi, context, vm as string, String(name), Array.isArray(ignoreVdis) ? ignoreVdis : [], false))
  }, asyncable)
  xapi.define('VM.checkpoint', 2, (context, vm, name) => {
    assertPowerState(xapi, vmRef(vm), ['Paused', 'Suspended', 'Running'])
    assertNotBlocked(xapi, vm as string, 'checkpoint')
    return xapi.activity.track('snapshot', () => snapshotVm(xapi, context, vm as string, String(name), [], true))
  }, asyncable)
  xapi.define('VM.snapshot_with_quiesce', 2, () => {
    throw new ApiError('MESSAGE_REMOVED', [])
  }, asyncable)
  const cloneOrCopy = (operation: 'clone' | 'copy') => (context: CallContext, vm: unknown, name: unknown, sr?: unknown) => {
    const ref = vmRef(vm)
    const record = db.row('VM', ref)
    // Suspended VMs other than snapshots are cloned only where the pool allows it (xapi_vm_lifecycle.ml).
    const suspendedAllowed = record.is_a_snapshot === true || (db.row('pool', xapi.poolRef).other_config as Record<string, string>).allow_clone_suspended_vm === 'true'
    assertPowerState(xapi, ref, suspendedAllowed ? ['Halted', 'Suspended'] : ['Halted'])
    assertNotBlocked(xapi, ref, operation)
    const targetSr = operation === 'copy' && !xapi.isNull(sr) ? xapi.ref('SR', sr) : undefined
    const copyDisk: DiskCopy = vdi => targetSr === undefined ? copyOnWrite(xapi, vdi, 'clone') : copyDiskTo(xapi, vdi, targetSr)
    // A suspended VM's copy keeps its memory (an image of its own); XAPI shuts a checkpoint's copy down, which drops it.
    const suspended = record.power_state === 'Suspended' && record.is_a_snapshot !== true && db.has('VDI', record.suspend_VDI as string)
    return withVmOperation(xapi, ref, operation, context, async () => {
      const suspendVdi = suspended ? await copyDisk(record.suspend_VDI as string) : NULL_REF
      try {
        return await duplicateVm(xapi, ref, String(name), { power_state: suspended ? 'Suspended' : 'Halted', snapshot_info: {}, suspend_VDI: suspendVdi },
          copyDisk)
      } catch (error) {
        if (suspended) await destroyVdi(xapi, suspendVdi).catch(() => {})
        throw error
      }
    }, false)
  }
  xapi.define('VM.clone', 2, cloneOrCopy('clone'), asyncable)
  xapi.define('VM.copy', 3, cloneOrCopy('copy'), asyncable)

  xapi.define('VM.destroy', 1, (_context, vm) => {
    const ref = vmRef(vm)
    const record = db.row('VM', ref)
    if ((record.other_config as Record<string, string>).default_template === 'true') throw new ApiError('VM_CANNOT_DELETE_DEFAULT_TEMPLATE', [ref])
    assertPowerState(xapi, ref, ['Halted', 'Suspended'])
    assertNotBlocked(xapi, ref, 'destroy')
    const [otherTask, otherOperation] = Object.entries(record.current_operations as Record<string, string>)[0] ?? []
    if (otherTask !== undefined) throw new ApiError('OTHER_OPERATION_IN_PROGRESS', ['VM', ref, otherOperation, otherTask])
    for (const vbd of db.refsWhere('VBD', 'VM', ref)) db.delete('VBD', vbd)
    for (const vif of db.refsWhere('VIF', 'VM', ref)) db.delete('VIF', vif)
    for (const [cls, field] of [['VM_metrics', 'metrics'], ['VM_guest_metrics', 'guest_metrics']] as const) {
      if (db.has(cls, record[field] as string)) db.delete(cls, record[field] as string)
    }
    for (const child of db.refsWhere('VM', 'parent', ref)) db.update('VM', child, { parent: record.parent })
    for (const snapshot of db.refsWhere('VM', 'snapshot_of', ref)) db.update('VM', snapshot, { snapshot_of: NULL_REF })
    db.delete('VM', ref)
  }, asyncable)

  xapi.define('VM.start', 3, async (context, vm) => {
    const ref = vmRef(vm)
    const record = db.row('VM', ref)
    if (record.is_a_snapshot === true) throw new ApiError('VM_IS_SNAPSHOT', [ref, 'start'])
    if (record.is_a_template === true) throw new ApiError('VM_IS_TEMPLATE', [ref, 'start'])
    assertNotBlocked(xapi, ref, 'start')
    assertPowerState(xapi, ref, ['Halted'])
    await withVmOperation(xapi, ref, 'start', context, () => delay(xapi.knobs.bootMs))
    // A disk without a boot sector starts as on a real host: the domain runs, its firmware finds nothing to boot.
    bootVm(xapi, ref, await bootable(xapi, ref))
  }, asyncable)
  xapi.define('VM.clean_shutdown', 1, async (context, vm) => {
    const ref = vmRef(vm)
    assertNotBlocked(xapi, ref, 'clean_shutdown')
    assertPowerState(xapi, ref, ['Running'])
    await withVmOperation(xapi, ref, 'clean_shutdown', context, () => delay(xapi.knobs.bootMs))
    haltVm(xapi, ref)
  }, asyncable)
  xapi.define('VM.hard_shutdown', 1, async (_context, vm) => {
    const ref = vmRef(vm)
    assertNotBlocked(xapi, ref, 'hard_shutdown')
    assertPowerState(xapi, ref, ['Running', 'Paused', 'Suspended'])
    const suspendVdi = db.row('VM', ref).suspend_VDI as string
    if (db.has('VDI', suspendVdi)) {
      db.update('VM', ref, { suspend_VDI: NULL_REF })
      await destroyVdi(xapi, suspendVdi)
    }
    haltVm(xapi, ref)
  }, asyncable)

  xapi.define('VM.create', 1, (_context, fields) => {
    const record = fields as LabRecord
    // As xapi_vm.ml create: blocked_operations are ignored (XO sets them afterwards), and a VM is created Suspended only
    // with its memory image and what it last booted with (XO's replica of a VM with RAM).
    const suspended = record.power_state === 'Suspended'
    const suspendVdi = suspended && !xapi.isNull(record.suspend_VDI) ? xapi.ref('VDI', record.suspend_VDI) : NULL_REF
    const lastBooted = suspended ? String(record.last_booted_record ?? '') : ''
    const cpuFlags = suspended ? (record.last_boot_CPU_flags ?? {}) as Record<string, string> : {}
    if (suspended && (suspendVdi === NULL_REF || lastBooted === '' || Object.keys(cpuFlags).length === 0)) {
      throw new ApiError('VM_BAD_POWER_STATE', [`OpaqueRef:${crypto.randomUUID()}`, 'halted', 'suspended'])
    }
    const metrics = db.create('VM_metrics', { memory_actual: 0, current_domain_type: suspended ? record.domain_type ?? 'hvm' : 'unspecified' })
    return db.create('VM', { ...pick(record, [...VM_COPIED_FIELDS, 'name_label', 'is_a_template']), metrics, power_state: suspended ? 'Suspended' : 'Halted',
      suspend_VDI: suspendVdi, last_booted_record: lastBooted, last_boot_CPU_flags: cpuFlags })
  }, asyncable)
  xapi.define('VM.suspend', 1, async (context, vm) => {
    const ref = vmRef(vm)
    assertNotBlocked(xapi, ref, 'suspend')
    assertPowerState(xapi, ref, ['Running'])
    await withVmOperation(xapi, ref, 'suspend', context, async () => {
      await delay(xapi.knobs.bootMs)
      const suspendVdi = await createSuspendVdi(xapi, ref)
      const record = db.row('VM', ref)
      if (db.has('VM_guest_metrics', record.guest_metrics as string)) db.delete('VM_guest_metrics', record.guest_metrics as string)
      // The devices stay attached: a suspended VM's VBDs and VIFs are plugged again by the resume.
      db.update('VM', ref, { power_state: 'Suspended', suspend_VDI: suspendVdi, resident_on: NULL_REF, domid: -1, guest_metrics: NULL_REF, ha_always_run: false })
    })
  }, asyncable)
  xapi.define('VM.resume', 3, async (context, vm) => {
    const ref = vmRef(vm)
    if (db.row('VM', ref).is_a_snapshot === true) throw new ApiError('VM_IS_SNAPSHOT', [ref, 'resume'])
    assertNotBlocked(xapi, ref, 'resume')
    assertPowerState(xapi, ref, ['Suspended'])
    const suspendVdi = db.row('VM', ref).suspend_VDI as string
    if (!db.has('VDI', suspendVdi)) {
      haltVm(xapi, ref)
      throw new ApiError('VM_HAS_NO_SUSPEND_VDI', ['VM', ref])
    }
    await withVmOperation(xapi, ref, 'resume', context, () => delay(xapi.knobs.bootMs))
    bootVm(xapi, ref)
    // XAPI destroys the image once the domain runs from it (xapi_xenops.ml resume).
    db.update('VM', ref, { suspend_VDI: NULL_REF })
    await destroyVdi(xapi, suspendVdi)
  }, asyncable)
  // xapi_vm.ml: a known priority only; a running VM is protected at once; ha_always_run is set through the priority.
  const setRestartPriority = (ref: string, value: string) => {
    if (!['restart', 'best-effort', ''].includes(value)) throw new ApiError('INVALID_VALUE', ['ha_restart_priority', value])
    const record = db.row('VM', ref)
    if (record.ha_restart_priority === value) return
    db.update('VM', ref, { ha_restart_priority: value, ...(record.power_state === 'Running' ? { ha_always_run: value === 'restart' } : {}) })
  }
  xapi.define('VM.set_ha_restart_priority', 2, (_context, vm, value) => setRestartPriority(vmRef(vm), String(value)), asyncable)
  xapi.define('VM.set_ha_always_run', 2, (_context, vm, value) => setRestartPriority(vmRef(vm), value === true || value === 'true' ? 'restart' : ''),
    asyncable)
  xapi.define('VM.set_memory_limits', 5, (_context, vm, staticMin, staticMax, dynamicMin, dynamicMax) => {
    db.update('VM', vmRef(vm), { memory_static_min: Number(staticMin), memory_static_max: Number(staticMax),
      memory_dynamic_min: Number(dynamicMin), memory_dynamic_max: Number(dynamicMax) })
  }, asyncable)
  xapi.define('VM.update_allowed_operations', 1, (_context, vm) => void vmRef(vm), asyncable)
  xapi.define('VM.get_allowed_VBD_devices', 1, (_context, vm) => freeDevices(xapi, 'VBD', vmRef(vm), 'userdevice'))
  xapi.define('VM.get_allowed_VIF_devices', 1, (_context, vm) => freeDevices(xapi, 'VIF', vmRef(vm), 'device'))
}

function freeDevices(xapi: Toolstack, cls: 'VBD' | 'VIF', vm: string, field: string): string[] {
  const used = new Set(xapi.db.refsWhere(cls, 'VM', vm).map(ref => xapi.db.row(cls, ref)[field]))
  return Array.from({ length: cls === 'VBD' ? 16 : 7 }, (_, index) => String(index)).filter(device => !used.has(device))
}

/** What the lab's hosts report as their CPU (XAPI records it in last_boot_CPU_flags at each boot). */
const LAB_CPU_FLAGS = { vendor: 'GenuineIntel', features: '1fcbfbff-f7fa3223-2d93fbff-00000023-00000001-000007ab-00000000-00000000-00001000-0c000000' }

/**
 * A started or resumed VM: Running with fresh guest metrics in the same commit, what it booted with recorded (as XAPI
 * keeps it for a later resume); the PV drivers report later if the guest has tools and its firmware found a boot sector (lab/guest.ts).
 */
export function bootVm(xapi: Toolstack, vm: string, firmwareBoots = true): void {
  const { db } = xapi
  const record = db.row('VM', vm)
  if (db.has('VM_guest_metrics', record.guest_metrics as string)) db.delete('VM_guest_metrics', record.guest_metrics as string)
  const guestMetrics = db.create('VM_guest_metrics', { last_updated: xapiDate() })
  const resumed = record.power_state === 'Suspended'
  const booted = resumed ? {} : { last_booted_record: encodeXmlRpcValue({ ...db.get('VM', vm), last_booted_record: '' }),
    last_boot_CPU_flags: LAB_CPU_FLAGS }
  db.update('VM', vm, { power_state: 'Running', resident_on: xapi.masterRef, domid: 1 + Math.floor(Math.random() * 1000), guest_metrics: guestMetrics,
    ha_always_run: record.ha_restart_priority === 'restart' || record.ha_always_run, ...booted })
  if (db.has('VM_metrics', record.metrics as string)) db.update('VM_metrics', record.metrics as string, { start_time: xapiDate(), memory_actual: record.memory_dynamic_max })
  // A resumed domain gets only the devices that were attached (xapi_xenops.ml create_metadata): the others stay unplugged.
  if (!resumed) for (const cls of ['VBD', 'VIF']) for (const device of db.refsWhere(cls, 'VM', vm)) db.update(cls, device, { currently_attached: true })
  startGuest(xapi, vm, guestMetrics, firmwareBoots)
}

export function haltVm(xapi: Toolstack, vm: string): void {
  const { db } = xapi
  const record = db.row('VM', vm)
  if (db.has('VM_guest_metrics', record.guest_metrics as string)) db.delete('VM_guest_metrics', record.guest_metrics as string)
  db.update('VM', vm, { power_state: 'Halted', resident_on: NULL_REF, domid: -1, guest_metrics: NULL_REF, ha_always_run: false })
  for (const cls of ['VBD', 'VIF']) for (const device of db.refsWhere(cls, 'VM', vm)) db.update(cls, device, { currently_attached: false })
}
