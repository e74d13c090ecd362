// The lab's starting worlds: `default` (a production pool and a DR pool, a dozen tagged VMs with real disk content)
// `tiny` (one host, one SR, two small VMs) for fast tests, and `pair` (tiny plus an empty "dr" pool) for replication tests.
// Content is a few MiB of patterns per disk, written sparsely.
import { defineCoreMethods } from './core.ts'
import { NULL_REF } from './schema.ts'
import { fillPattern } from './storage/index.ts'
import type { Toolstack } from './toolstack.ts'
import { createVdi, defineDiskMethods, leafOf, refreshSr } from './vdi.ts'
import { GUEST_TOOLS_KEY, mbrBootSector } from './guest.ts'
import { bootVm, defineVmMethods } from './vm.ts'

export type FixtureName = 'default' | 'tiny' | 'pair'
export const FIXTURE_NAMES: FixtureName[] = ['default', 'tiny', 'pair']

const MiB = 1024 * 1024
const GiB = 1024 * MiB

interface VmSpec { name: string; tags: string[]; running: boolean; tools: boolean; disks: number[]; sr?: number }
interface SrSpec { name: string; type: 'ext' | 'nfs' | 'lvm'; size: number; shared: boolean }
export interface PoolSpec { name: string; hosts: string[]; srs: SrSpec[]; networks: string[]; vms: VmSpec[] }

const TINY_POOL: PoolSpec = {
  name: 'lab', hosts: ['lab-host'], networks: ['Pool-wide network associated with eth0'],
  srs: [{ name: 'Local storage', type: 'ext', size: 4 * GiB, shared: false }],
  vms: [
    { name: 'tiny-running', tags: ['prod'], running: true, tools: true, disks: [32 * MiB] },
    { name: 'tiny-halted', tags: ['dev'], running: false, tools: false, disks: [16 * MiB] },
  ],
}

/** The replication target of `pair`: somewhere to copy to, nothing of its own. */
const EMPTY_DR_POOL: PoolSpec = {
  name: 'dr', hosts: ['dr-host'], networks: ['Pool-wide network associated with eth0'],
  srs: [{ name: 'DR storage', type: 'ext', size: 4 * GiB, shared: false }],
  vms: [],
}

export const FIXTURES: Record<FixtureName, PoolSpec[]> = {
  tiny: [TINY_POOL],
  pair: [TINY_POOL, EMPTY_DR_POOL],
  default: [
    {
      name: 'production', hosts: ['prod-host-1', 'prod-host-2', 'prod-host-3'],
      networks: ['Pool-wide network associated with eth0', 'Backup network'],
      srs: [
        { name: 'Local storage', type: 'ext', size: 500 * GiB, shared: false },
        { name: 'NFS shared storage', type: 'nfs', size: 2048 * GiB, shared: true },
        { name: 'iSCSI LVM', type: 'lvm', size: 200 * GiB, shared: true },
      ],
      vms: [
        { name: 'web-01', tags: ['prod', 'web'], running: true, tools: true, disks: [1 * GiB], sr: 1 },
        { name: 'web-02', tags: ['prod', 'web'], running: true, tools: true, disks: [1 * GiB], sr: 1 },
        { name: 'db-01', tags: ['prod', 'db'], running: true, tools: true, disks: [512 * MiB, 2 * GiB], sr: 1 },
        { name: 'db-02', tags: ['prod', 'db'], running: true, tools: false, disks: [512 * MiB, 1 * GiB], sr: 2 },
        { name: 'mail', tags: ['prod'], running: true, tools: true, disks: [768 * MiB], sr: 0 },
        { name: 'ci-runner', tags: ['dev'], running: true, tools: true, disks: [1 * GiB, 256 * MiB, 256 * MiB], sr: 0 },
        { name: 'dev-sandbox', tags: ['dev'], running: false, tools: true, disks: [512 * MiB], sr: 0 },
        { name: 'legacy-app', tags: ['prod', 'legacy'], running: false, tools: false, disks: [256 * MiB], sr: 2 },
        { name: 'monitoring', tags: ['infra'], running: true, tools: true, disks: [512 * MiB], sr: 1 },
        { name: 'old-test', tags: [], running: false, tools: false, disks: [256 * MiB], sr: 0 },
      ],
    },
    {
      name: 'DR', hosts: ['dr-host-1'], networks: ['Pool-wide network associated with eth0'],
      srs: [
        { name: 'DR storage', type: 'ext', size: 2048 * GiB, shared: false },
        { name: 'DR LVM', type: 'lvm', size: 500 * GiB, shared: true },
      ],
      vms: [
        { name: 'dr-dns', tags: ['infra', 'prod'], running: true, tools: true, disks: [256 * MiB] },
        { name: 'dr-witness', tags: ['dev'], running: false, tools: false, disks: [256 * MiB] },
      ],
    },
  ],
}

export function defineAllMethods(xapi: Toolstack): void {
  defineCoreMethods(xapi)
  defineVmMethods(xapi)
  defineDiskMethods(xapi)
}

/** Creates the pool's records and disks in an empty database and store. */
export async function seedPool(xapi: Toolstack, spec: PoolSpec, poolIndex: number): Promise<void> {
  const { db, store } = xapi
  const pool = db.create('pool', { name_label: spec.name })
  const networks = spec.networks.map((name, index) => db.create('network', { name_label: name, bridge: `xenbr${index}`,
    purpose: index === 0 ? [] : ['nbd'], other_config: {} }))
  const hosts = spec.hosts.map((name, hostIndex) => {
    const address = `10.${poolIndex}.0.${10 + hostIndex}`
    const host = db.create('host', { name_label: name, hostname: name, address,
      software_version: { product_version: '8.3.0', product_brand: 'XCP-ng', build_number: 'release/yangtze', xapi: '24.19', platform_name: 'XCP' },
      other_config: { agent_start_time: String(Date.now() / 1000) } })
    const dom0 = db.create('VM', { name_label: `Control domain on host: ${name}`, is_control_domain: true, power_state: 'Running',
      resident_on: host, domid: 0, is_a_template: false })
    db.update('host', host, { control_domain: dom0 })
    networks.forEach((network, index) => db.create('PIF', { device: `eth${index}`, network, host, IP: `10.${poolIndex}.${index}.${10 + hostIndex}`,
      management: index === 0, MAC: mac(poolIndex, hostIndex, index) }))
    return host
  })
  const srs: string[] = []
  for (const srSpec of spec.srs) {
    const sr = db.create('SR', { name_label: srSpec.name, type: srSpec.type, shared: srSpec.shared, physical_size: srSpec.size,
      content_type: 'user', sm_config: srSpec.type === 'lvm' ? { allocation: 'thick' } : {} })
    await store.addSr({ uuid: db.row('SR', sr).uuid as string, physicalSize: srSpec.size, thick: srSpec.type === 'lvm' })
    for (const host of srSpec.shared ? hosts : [hosts[0]!]) db.create('PBD', { host, SR: sr, currently_attached: true, device_config: {} })
    srs.push(sr)
  }
  db.update('pool', pool, { master: hosts[0], default_SR: srs[0], suspend_image_SR: srs[0], crash_dump_SR: srs[0] })
  for (const [vmIndex, vmSpec] of spec.vms.entries()) {
    const sr = srs[vmSpec.sr ?? 0]!
    const vm = db.create('VM', { name_label: vmSpec.name, name_description: `${vmSpec.name} (lab fixture)`, tags: vmSpec.tags,
      other_config: vmSpec.tools ? { [GUEST_TOOLS_KEY]: 'true' } : {}, metrics: db.create('VM_metrics', {}),
      memory_static_max: 2 * GiB, memory_dynamic_max: 2 * GiB, memory_dynamic_min: 1 * GiB, VCPUs_max: 2, VCPUs_at_startup: 2,
      ha_restart_priority: vmSpec.tags.includes('prod') ? 'restart' : '', bios_strings: { 'bios-vendor': 'Xen', 'system-manufacturer': 'Xen' } })
    for (const [diskIndex, size] of vmSpec.disks.entries()) {
      const vdi = await createVdi(xapi, { SR: sr, virtual_size: size, name_label: `${vmSpec.name} disk ${diskIndex}`, type: 'user' })
      await writeFixtureContent(xapi, vdi, size, poolIndex * 1000 + vmIndex * 10 + diskIndex, diskIndex === 0)
      db.create('VBD', { VM: vm, VDI: vdi, userdevice: String(diskIndex), device: `xvd${String.fromCharCode(97 + diskIndex)}`,
        bootable: diskIndex === 0, mode: 'RW', type: 'Disk' })
    }
    db.create('VBD', { VM: vm, VDI: NULL_REF, userdevice: '3', device: 'xvdd', type: 'CD', mode: 'RO', empty: true })
    db.create('VIF', { VM: vm, network: networks[0], device: '0', MAC: mac(poolIndex, 100 + vmIndex, 0) })
    if (vmSpec.running) bootVm(xapi, vm)
    refreshSr(xapi, sr)
  }
}

/**
 * A few scattered MiB of patterns and a tail block: real content at a start-up cost of a few MiB per disk; a first disk
 * gets an MBR signature too, so that its VM boots (lab/guest.ts) and passes a health check.
 */
async function writeFixtureContent(xapi: Toolstack, vdi: string, size: number, seed: number, boot: boolean): Promise<void> {
  const leaf = leafOf(xapi, vdi)
  const extents = [0, Math.floor(size / 3 / MiB) * MiB, size - MiB]
  for (const [index, offset] of extents.entries()) {
    await fillPattern(xapi.store, leaf, { offset, length: index === 1 ? 2 * MiB : MiB, seed: seed * 7 + index })
  }
  if (boot) await xapi.store.write(leaf, 0, mbrBootSector(await xapi.store.read(leaf, 0, 512)))
}

function mac(a: number, b: number, c: number): string {
  return ['02', 'ab', a, b, c, 1].map(part => (typeof part === 'number' ? (part % 256).toString(16).padStart(2, '0') : part)).join(':')
}
