// The XAPI records of a VM built from the records a backup kept (a delta restore, a continuous replica): every
// field VM.create, VDI.create, VBD.create and VIF.create require, references of the original pool dropped.
import { NULL_REF, networkVlan, type PoolConnection, type XapiRecord } from '../../xapi/index.ts'
import { withoutBackupKeys } from './conventions.ts'

type XapiFields = Record<string, unknown>

/** Shown on the VM while its disks are uploaded, so nobody starts a half-restored VM (XO does the same). */
export const RESTORING_REASON = 'This VM is being restored from a backup; wait for the restore to finish.'
/** Blocked with the builder's reason until the VM is complete. */
export const BLOCKED_WHILE_BUILDING = ['start', 'start_on'] as const

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

/** What the new VM is, beyond the backed-up configuration. */
export interface NewVmIdentity {
  /** Its name while it is built ("[Restoring…] …", "[Importing…] …"). */
  name: string
  description: string
  tags: string[]
  otherConfig: Record<string, string>
  /** start and start_on are blocked with this reason until the VM is complete. */
  buildingReason: string
  /** Overrides the backed-up HA restart priority ('' for a replica, which HA must never start). */
  haRestartPriority?: string
}

/** The memory of a checkpoint: the VM is created Suspended on this VDI (XO's VM_create with suspend_VDI). */
export interface SuspendedState {
  vdiRef: string
  /** The checkpoint's record: what the host needs to resume it (last_booted_record, last_boot_CPU_flags). */
  checkpoint: XapiFields
}

/**
 * What the VM is blocked for while it is built. XAPI's VM.create ignores blocked_operations: they are set right after
 * it. The backed-up VM's own blocks are not carried over (the live VM's were the backup run's migration block).
 */
export function buildingBlocks(identity: NewVmIdentity): Record<string, string> {
  return Object.fromEntries(BLOCKED_WHILE_BUILDING.map(operation => [operation, identity.buildingReason]))
}

/** The new VM: the backed-up VM's configuration, start blocked until its disks are in, never a template, HA always-run off. */
export function vmCreateRecord(vm: XapiFields, identity: NewVmIdentity, suspended?: SuspendedState): XapiFields {
  return {
    ...pick(vm, VM_DEFAULTS),
    ...(identity.haRestartPriority !== undefined && { ha_restart_priority: identity.haRestartPriority }),
    name_label: identity.name,
    name_description: identity.description,
    is_a_template: false,
    ha_always_run: false,
    other_config: identity.otherConfig,
    tags: identity.tags,
    blocked_operations: buildingBlocks(identity),
    affinity: NULL_REF,
    appliance: NULL_REF,
    suspend_SR: NULL_REF,
    ...(suspended !== undefined && {
      power_state: 'Suspended',
      suspend_VDI: suspended.vdiRef,
      last_booted_record: suspended.checkpoint.last_booted_record ?? '',
      last_boot_CPU_flags: suspended.checkpoint.last_boot_CPU_flags ?? {},
    }),
  }
}

export function vdiCreateRecord(vdi: XapiFields, srRef: string, virtualSize: number): XapiFields {
  const otherConfig = withoutBackupKeys(vdi.other_config)
  delete otherConfig['xo:base_delta_vdi']
  delete otherConfig['xo:copy_of']
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
 * The network a backed-up VIF goes on in this pool (XO's order): the same network (uuid, the backup comes from
 * this pool), else the one of the same name and VLAN, else the first one (`fallback`: the caller warns).
 */
export function vifNetwork(conn: PoolConnection, vif: XapiFields): { network: XapiRecord; fallback: boolean } | undefined {
  const networks = conn.all('network')
  const sameUuid = networks.find(n => n.uuid === vif.$network$uuid)
  if (sameUuid !== undefined) return { network: sameUuid, fallback: false }
  const vlan = Number(vif.$network$VLAN ?? -1)
  const sameName = networks.find(n => n.name_label === vif.$network$name_label && networkVlan(conn, n) === vlan)
  if (sameName !== undefined) return { network: sameName, fallback: false }
  const first = networks.find(n => ((n.PIFs as string[] | undefined) ?? []).length > 0) ?? networks[0]
  return first === undefined ? undefined : { network: first, fallback: true }
}

/** The VIF on `networkRef`; an empty MAC lets XAPI generate a new one. */
export function vifCreateRecord(vif: XapiFields, vmRef: string, networkRef: string, newMac: boolean): XapiFields {
  return {
    device: vif.device ?? '0', network: networkRef, VM: vmRef, MAC: newMac ? '' : (vif.MAC ?? ''), MTU: vif.MTU ?? 1500,
    other_config: vif.other_config ?? {}, qos_algorithm_type: vif.qos_algorithm_type ?? '', qos_algorithm_params: vif.qos_algorithm_params ?? {},
    locking_mode: vif.locking_mode ?? 'network_default', ipv4_allowed: vif.ipv4_allowed ?? [], ipv6_allowed: vif.ipv6_allowed ?? [],
  }
}
