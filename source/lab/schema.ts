// The lab's data model: every class XAPI exposes to backup tools, with the full field set each record carries
// (xen-api builds its record prototype from the first record of a class), which fields are writable, and the reverse links.

export const NULL_REF = 'OpaqueRef:NULL'
const NO_DATE = '19700101T00:00:00Z'

export interface ClassSchema {
  /** Every field with its default; the type of the default is the field's type (array = set, object = map). */
  fields: Record<string, unknown>
  /** Fields with a generated setter (`set_F`), and `add_to_F`/`remove_from_F` (maps) or `add_F`/`remove_F` (sets). */
  writable: string[]
  /** Computed set fields: field → [class, field] of the records that point here. */
  reverse?: Record<string, [string, string]>
  /** Kept in memory only, as XAPI does (PersistNothing). */
  volatile?: boolean
}

const common = { uuid: '', allowed_operations: [] as string[], current_operations: {} as Record<string, string> }
const named = { name_label: '', name_description: '' }

export const SCHEMA: Record<string, ClassSchema> = {
  pool: {
    fields: {
      ...common, ...named, master: NULL_REF, default_SR: NULL_REF, suspend_image_SR: NULL_REF, crash_dump_SR: NULL_REF,
      other_config: {}, tags: [], ha_enabled: false, ha_configuration: {}, ha_statefiles: [], ha_host_failures_to_tolerate: 0,
      ha_plan_exists_for: 0, ha_allow_overcommit: false, ha_overcommitted: false, blobs: {}, gui_config: {}, health_check_config: {},
      wlb_url: '', wlb_username: '', wlb_enabled: false, wlb_verify_cert: false, redo_log_enabled: false, redo_log_vdi: NULL_REF,
      vswitch_controller: '', restrictions: {}, metadata_VDIs: [], cpu_info: {}, policy_no_vendor_device: false,
      live_patching_disabled: false, igmp_snooping_enabled: false, uefi_certificates: '', is_psr_pending: false,
      tls_verification_enabled: false, repositories: [], migration_compression: false, coordinator_bias: true,
    },
    writable: ['name_label', 'name_description', 'default_SR', 'suspend_image_SR', 'crash_dump_SR', 'other_config', 'tags', 'gui_config',
      'health_check_config', 'migration_compression'],
  },
  host: {
    fields: {
      ...common, ...named, memory_overhead: 0, API_version_major: 2, API_version_minor: 21, API_version_vendor: 'XenSource',
      API_version_vendor_implementation: {}, enabled: true, software_version: {}, other_config: {}, capabilities: [], cpu_configuration: {},
      sched_policy: 'credit', supported_bootloaders: ['pygrub', 'eliloader'], resident_VMs: [], logging: {}, PIFs: [], suspend_image_sr: NULL_REF,
      crash_dump_sr: NULL_REF, crashdumps: [], patches: [], updates: [], PBDs: [], host_CPUs: [], cpu_info: {}, hostname: '', address: '',
      metrics: NULL_REF, license_params: {}, ha_statefiles: [], ha_network_peers: [], blobs: {}, tags: [], external_auth_type: '',
      external_auth_service_name: '', external_auth_configuration: {}, edition: 'xcp-ng', license_server: {}, bios_strings: {},
      power_on_mode: '', power_on_config: {}, local_cache_sr: NULL_REF, chipset_info: {}, PCIs: [], PGPUs: [], PUSBs: [],
      ssl_legacy: false, guest_VCPUs_params: {}, display: 'enabled', virtual_hardware_platform_versions: [0, 1, 2], control_domain: NULL_REF,
      updates_requiring_reboot: [], features: [], iscsi_iqn: '', multipathing: false, uefi_certificates: '', certificates: [],
      editions: ['xcp-ng'], pending_guidances: [], tls_verification_enabled: false, last_software_update: NO_DATE, https_only: false,
    },
    writable: ['name_label', 'name_description', 'other_config', 'tags', 'suspend_image_sr', 'crash_dump_sr', 'logging', 'hostname'],
    reverse: { resident_VMs: ['VM', 'resident_on'], PIFs: ['PIF', 'host'], PBDs: ['PBD', 'host'] },
  },
  SR: {
    fields: {
      ...common, ...named, VDIs: [], PBDs: [], virtual_allocation: 0, physical_utilisation: 0, physical_size: 0, type: 'ext',
      content_type: 'user', shared: false, other_config: {}, tags: [], sm_config: {}, blobs: {}, local_cache_enabled: false,
      introduced_by: NULL_REF, clustered: false, is_tools_sr: false,
    },
    writable: ['name_label', 'name_description', 'other_config', 'tags', 'sm_config', 'shared'],
    reverse: { VDIs: ['VDI', 'SR'], PBDs: ['PBD', 'SR'] },
  },
  PBD: {
    fields: { uuid: '', host: NULL_REF, SR: NULL_REF, device_config: {}, currently_attached: true, other_config: {} },
    writable: ['other_config', 'device_config'],
  },
  VDI: {
    fields: {
      ...common, ...named, SR: NULL_REF, VBDs: [], crash_dumps: [], virtual_size: 0, physical_utilisation: 0, type: 'user',
      sharable: false, read_only: false, other_config: {}, storage_lock: false, location: '', managed: true, missing: false,
      parent: NULL_REF, xenstore_data: {}, sm_config: {}, is_a_snapshot: false, snapshot_of: NULL_REF, snapshots: [],
      snapshot_time: NO_DATE, tags: [], allow_caching: false, on_boot: 'persist', metadata_of_pool: NULL_REF, metadata_latest: false,
      is_tools_iso: false, cbt_enabled: false,
    },
    writable: ['name_label', 'name_description', 'other_config', 'xenstore_data', 'sm_config', 'tags', 'sharable', 'read_only',
      'allow_caching', 'on_boot'],
    reverse: { VBDs: ['VBD', 'VDI'], snapshots: ['VDI', 'snapshot_of'] },
  },
  VBD: {
    fields: {
      ...common, VM: NULL_REF, VDI: NULL_REF, device: '', userdevice: '0', bootable: false, mode: 'RW', type: 'Disk', unpluggable: true,
      storage_lock: false, empty: false, other_config: {}, currently_attached: false, status_code: 0, status_detail: '',
      runtime_properties: {}, qos_algorithm_type: '', qos_algorithm_params: {}, qos_supported_algorithms: [], metrics: NULL_REF,
    },
    writable: ['userdevice', 'bootable', 'mode', 'type', 'unpluggable', 'other_config', 'qos_algorithm_type', 'qos_algorithm_params'],
  },
  VM: {
    fields: {
      ...common, ...named, power_state: 'Halted', user_version: 1, is_a_template: false, is_default_template: false,
      suspend_VDI: NULL_REF, resident_on: NULL_REF, scheduled_to_be_resident_on: NULL_REF, affinity: NULL_REF,
      memory_overhead: 11534336, memory_target: 0, memory_static_max: 1073741824, memory_dynamic_max: 1073741824,
      memory_dynamic_min: 1073741824, memory_static_min: 536870912, VCPUs_params: {}, VCPUs_max: 1, VCPUs_at_startup: 1,
      actions_after_softreboot: 'soft_reboot', actions_after_shutdown: 'destroy', actions_after_reboot: 'restart',
      actions_after_crash: 'restart', consoles: [], VIFs: [], VBDs: [], VUSBs: [], crash_dumps: [], VTPMs: [], PV_bootloader: '',
      PV_kernel: '', PV_ramdisk: '', PV_args: '', PV_bootloader_args: '', PV_legacy_args: '', HVM_boot_policy: 'BIOS order',
      HVM_boot_params: { order: 'cdn' }, HVM_shadow_multiplier: 1, platform: {}, PCI_bus: '', other_config: {}, domid: -1, domarch: '',
      last_boot_CPU_flags: {}, is_control_domain: false, metrics: NULL_REF, guest_metrics: NULL_REF, last_booted_record: '',
      recommendations: '', xenstore_data: {}, ha_always_run: false, ha_restart_priority: '', is_a_snapshot: false, snapshot_of: NULL_REF,
      snapshots: [], snapshot_time: NO_DATE, transportable_snapshot_id: '', blobs: {}, tags: [], blocked_operations: {},
      snapshot_info: {}, snapshot_metadata: '', parent: NULL_REF, children: [], bios_strings: {}, protection_policy: NULL_REF,
      is_snapshot_from_vmpp: false, snapshot_schedule: NULL_REF, is_vmss_snapshot: false, appliance: NULL_REF, start_delay: 0,
      shutdown_delay: 0, order: 0, VGPUs: [], attached_PCIs: [], suspend_SR: NULL_REF, version: 0, generation_id: '',
      hardware_platform_version: 0, has_vendor_device: false, requires_reboot: false, reference_label: '', domain_type: 'hvm',
      NVRAM: {}, pending_guidances: [],
    },
    writable: ['name_label', 'name_description', 'user_version', 'is_a_template', 'affinity', 'VCPUs_params', 'VCPUs_max',
      'VCPUs_at_startup', 'actions_after_shutdown', 'actions_after_reboot', 'actions_after_crash', 'PV_bootloader', 'PV_kernel',
      'PV_ramdisk', 'PV_args', 'PV_bootloader_args', 'PV_legacy_args', 'HVM_boot_policy', 'HVM_boot_params', 'HVM_shadow_multiplier',
      'platform', 'PCI_bus', 'other_config', 'recommendations', 'xenstore_data', 'ha_always_run', 'ha_restart_priority', 'tags',
      'blocked_operations', 'suspend_SR', 'start_delay', 'shutdown_delay', 'order', 'bios_strings', 'has_vendor_device', 'domain_type',
      'NVRAM', 'memory_static_max', 'memory_static_min', 'memory_dynamic_max', 'memory_dynamic_min', 'appliance', 'suspend_VDI'],
    reverse: {
      VBDs: ['VBD', 'VM'], VIFs: ['VIF', 'VM'], snapshots: ['VM', 'snapshot_of'], children: ['VM', 'parent'],
    },
  },
  VM_metrics: {
    fields: {
      uuid: '', memory_actual: 0, VCPUs_number: 1, VCPUs_utilisation: {}, VCPUs_CPU: {}, VCPUs_params: {}, VCPUs_flags: {}, state: [],
      start_time: NO_DATE, install_time: NO_DATE, last_updated: NO_DATE, other_config: {}, hvm: true, nested_virt: false, nomigrate: false,
      current_domain_type: 'unspecified',
    },
    writable: ['other_config'],
  },
  VM_guest_metrics: {
    fields: {
      uuid: '', os_version: {}, netbios_name: {}, PV_drivers_version: {}, PV_drivers_up_to_date: false, memory: {}, disks: {},
      networks: {}, other: {}, last_updated: NO_DATE, other_config: {}, live: true, can_use_hotplug_vbd: 'unspecified',
      can_use_hotplug_vif: 'unspecified', PV_drivers_detected: false,
    },
    writable: ['other_config'],
  },
  VIF: {
    fields: {
      ...common, device: '0', network: NULL_REF, VM: NULL_REF, MAC: '', MTU: 1500, other_config: {}, currently_attached: false,
      status_code: 0, status_detail: '', runtime_properties: {}, qos_algorithm_type: '', qos_algorithm_params: {},
      qos_supported_algorithms: [], metrics: NULL_REF, MAC_autogenerated: true, locking_mode: 'network_default', ipv4_allowed: [],
      ipv6_allowed: [], ipv4_configuration_mode: 'None', ipv4_addresses: [], ipv4_gateway: '', ipv6_configuration_mode: 'None',
      ipv6_addresses: [], ipv6_gateway: '',
    },
    writable: ['other_config', 'qos_algorithm_type', 'qos_algorithm_params', 'locking_mode'],
  },
  network: {
    fields: {
      ...common, ...named, VIFs: [], PIFs: [], MTU: 1500, other_config: {}, bridge: '', managed: true, blobs: {}, tags: [],
      default_locking_mode: 'unlocked', assigned_ips: {}, purpose: [],
    },
    writable: ['name_label', 'name_description', 'MTU', 'other_config', 'tags'],
    reverse: { VIFs: ['VIF', 'network'], PIFs: ['PIF', 'network'] },
  },
  PIF: {
    fields: {
      uuid: '', device: 'eth0', network: NULL_REF, host: NULL_REF, MAC: '', MTU: 1500, VLAN: -1, metrics: NULL_REF, physical: true,
      currently_attached: true, ip_configuration_mode: 'Static', IP: '', netmask: '255.255.255.0', gateway: '', DNS: '',
      bond_slave_of: NULL_REF, bond_master_of: [], VLAN_master_of: NULL_REF, VLAN_slave_of: [], management: false, other_config: {},
      disallow_unplug: false, tunnel_access_PIF_of: [], tunnel_transport_PIF_of: [], ipv6_configuration_mode: 'None', IPv6: [],
      ipv6_gateway: '', primary_address_type: 'IPv4', managed: true, properties: {}, capabilities: [], igmp_snooping_status: 'unknown',
      sriov_physical_PIF_of: [], sriov_logical_PIF_of: [], PCI: NULL_REF,
    },
    writable: ['other_config', 'disallow_unplug'],
  },
  task: {
    fields: {
      ...common, ...named, created: NO_DATE, finished: NO_DATE, status: 'pending', resident_on: NULL_REF, progress: 0, type: '<none/>',
      result: '', error_info: [], other_config: {}, subtask_of: NULL_REF, subtasks: [], backtrace: '()',
    },
    writable: ['other_config'],
    reverse: { subtasks: ['task', 'subtask_of'] },
    volatile: true,
  },
}

/** A deep copy of a field default, so records never share arrays or maps. */
export function cloneValue<T>(value: T): T {
  return structuredClone(value)
}
