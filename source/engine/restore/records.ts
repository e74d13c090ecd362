// The XAPI records a delta restore creates, built from the records the backup metadata kept: every field
// VM.create, VDI.create, VBD.create and VIF.create require, references of the original pool dropped.
import type { DeltaBackupMetadata } from '../../repository/index.ts'
import { NULL_REF, type PoolConnection } from '../../xapi/index.ts'
import { RESTORED_TAG, withoutBackupKeys, type RestoredVmConventions } from './conventions.ts'

type XapiFields = Record<string, unknown>

/** Shown on the VM while its disks are uploaded, so nobody starts a half-restored VM (XO does the same). */
export const RESTORING_REASON = 'This VM is being restored from a backup; wait for the restore to finish.'
export const BLOCKED_WHILE_RESTORING = ['start', 'start_on'] as const

// Defaults are XAPI's own for a new VM; the backup's values win when present.
const VM_DEFAULTS: XapiFields = {
  user_version: 1, memory_static_max: 1 << 30, memory_static_min: 1 << 30, memory_dynamic_max: 1 << 30, memory_dynamic_min: 1 << 30,
  VCPUs_params: {}, VCPUs_max: 1, VCPUs_at_startup: 1, actions_after_shutdown: 'destroy', actions_after_reboot: 'restart',
  actions_after_crash: 'restart', PV_bootloader: '', PV_kernel: '', PV_ramdisk: '', PV_args: '', PV_bootloader_args: '', PV_legacy_args: '',
  HVM_boot_policy: '', HVM_boot_params: {}, HVM_shadow_multiplier: 1, platform: {}, PCI_bus: '', recommendations: '', xenstore_data: {},
  ha_restart_priority: '', start_delay: 0, shutdown_delay: 0, order: 0, has_vendor_device: false, NVRAM: {}, hardware_platform_version: 0,
  generation_id: '', reference_label: '', domain_type: 'hvm',
}

function pick(record: XapiFields, defaults: XapiFields): XapiFields {
  return Object.fromEntries(Object.entries(defaults).map(([field, fallback]) => [field, record[field] ?? fallback]))
}

/** The new VM: the backed-up VM's configuration, start blocked until its disks are in, never a template, HA left off. */
export function vmCreateRecord(metadata: DeltaBackupMetadata, conventions: RestoredVmConventions): XapiFields {
  const vm = metadata.vm as XapiFields
  const tags = [...new Set([...(metadata.vm.tags ?? []), RESTORED_TAG])]
  const blocked = { ...((vm.blocked_operations ?? {}) as Record<string, string>) }
  for (const operation of BLOCKED_WHILE_RESTORING) blocked[operation] = RESTORING_REASON
  return {
    ...pick(vm, VM_DEFAULTS),
    name_label: `[Restoring…] ${conventions.name}`,
    name_description: conventions.description,
    is_a_template: false,
    ha_always_run: false,
    other_config: withoutBackupKeys(vm.other_config),
    tags,
    blocked_operations: blocked,
    affinity: NULL_REF,
    appliance: NULL_REF,
    suspend_SR: NULL_REF,
  }
}

export function vdiCreateRecord(vdi: XapiFields, srRef: string, virtualSize: number): XapiFields {
  const otherConfig = withoutBackupKeys(vdi.other_config)
  delete otherConfig['xo:base_delta_vdi']
  return {
    name_label: vdi.name_label ?? '', name_description: vdi.name_description ?? '', SR: srRef, virtual_size: virtualSize,
    type: vdi.type ?? 'user', sharable: vdi.sharable ?? false, read_only: vdi.read_only ?? false, other_config: otherConfig,
    xenstore_data: vdi.xenstore_data ?? {}, sm_config: {}, tags: vdi.tags ?? [],
  }
}

export function vbdCreateRecord(vbd: XapiFields, vmRef: string, vdiRef: string): XapiFields {
  return {
    VM: vmRef, VDI: vdiRef, userdevice: vbd.userdevice ?? 'autodetect', bootable: vbd.bootable ?? false, mode: vbd.mode ?? 'RW',
    type: vbd.type ?? 'Disk', unpluggable: vbd.unpluggable ?? false, empty: false, other_config: vbd.other_config ?? {},
    qos_algorithm_type: vbd.qos_algorithm_type ?? '', qos_algorithm_params: vbd.qos_algorithm_params ?? {},
  }
}

/**
 * The VIF on this pool's network: the same network (uuid) when the backup comes from this pool, else the
 * network of the same name, else the first one. An empty MAC lets XAPI generate a new one.
 */
export function vifCreateRecord(conn: PoolConnection, vif: XapiFields, vmRef: string, newMac: boolean): XapiFields {
  const networks = conn.all('network')
  const network = networks.find(n => n.uuid === vif.$network$uuid) ?? networks.find(n => n.name_label === vif.$network$name_label) ?? networks[0]
  return {
    device: vif.device ?? '0', network: network?.$ref ?? NULL_REF, VM: vmRef, MAC: newMac ? '' : (vif.MAC ?? ''), MTU: vif.MTU ?? 1500,
    other_config: vif.other_config ?? {}, qos_algorithm_type: vif.qos_algorithm_type ?? '', qos_algorithm_params: vif.qos_algorithm_params ?? {},
    locking_mode: vif.locking_mode ?? 'network_default', ipv4_allowed: vif.ipv4_allowed ?? [], ipv6_allowed: vif.ipv6_allowed ?? [],
  }
}
