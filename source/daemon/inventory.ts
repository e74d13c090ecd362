// What the connected pools hold, as clients list it: VMs (no templates, snapshots or control domains)
// with their disks, and SRs with their space; read from each connection's event-fed cache.
import type { PoolConnection, XapiRecord } from '../xapi/index.ts'
import { LifeboatError } from '../util/errors.ts'
import { parseBackupDate } from '../repository/index.ts'
import type { Pool, Sr, Vm } from '../protocol/methods.ts'

const NULL_REF = 'OpaqueRef:NULL'
const POWER_STATES = new Set(['Running', 'Halted', 'Suspended', 'Paused'])

/** The pools asked for: all, or the one named by uuid or name. */
export function selectPools(pools: ReadonlyMap<string, PoolConnection>, pool: string | undefined): PoolConnection[] {
  const all = [...pools.values()]
  if (pool === undefined) return all
  const chosen = all.filter(conn => conn.poolUuid === pool || conn.poolName === pool)
  if (chosen.length === 0) throw new LifeboatError('POOL_NOT_FOUND', `No connected pool is "${pool}"; 'npx lifeboat pool list' shows the pools and their status.`)
  return chosen
}

/** With `templates`, the custom templates too (not XAPI's built-in ones): an imported snapshot XVA is one. */
export function listVms(pools: PoolConnection[], options: { templates?: boolean } = {}): Vm[] {
  const vms: Vm[] = []
  for (const conn of pools) {
    for (const vm of conn.all('VM')) {
      const template = vm.is_a_template === true
      if (vm.is_a_snapshot === true || vm.is_control_domain === true) continue
      if (template && (options.templates !== true || (vm.other_config as Record<string, string> | undefined)?.default_template === 'true')) continue
      const powerState = String(vm.power_state)
      vms.push({
        uuid: vm.uuid,
        name: String(vm.name_label ?? ''),
        poolId: conn.poolUuid,
        poolName: conn.poolName,
        powerState: (POWER_STATES.has(powerState) ? powerState : 'Halted') as Vm['powerState'],
        tags: Array.isArray(vm.tags) ? (vm.tags as string[]) : [],
        disks: disksOf(conn, vm),
        hasTools: typeof vm.guest_metrics === 'string' && vm.guest_metrics !== NULL_REF && vm.guest_metrics !== '',
        snapshots: snapshotsOf(conn, vm),
        ...(template && { template: true as const }),
      })
    }
  }
  return vms.sort((a, b) => a.poolName.localeCompare(b.poolName) || a.name.localeCompare(b.name))
}

function snapshotsOf(conn: PoolConnection, vm: XapiRecord): NonNullable<Vm['snapshots']> {
  const snapshots: NonNullable<Vm['snapshots']> = []
  for (const ref of (vm.snapshots as string[] | undefined) ?? []) {
    const snapshot = conn.byRef(ref)
    if (snapshot === undefined) continue
    snapshots.push({ uuid: snapshot.uuid, name: String(snapshot.name_label ?? ''), time: xapiTime(snapshot.snapshot_time), disks: disksOf(conn, snapshot) })
  }
  return snapshots.sort((a, b) => a.time - b.time)
}

/** XAPI's snapshot_time (a Date from the client, or its text), ms epoch; 0 when absent. */
function xapiTime(value: unknown): number {
  return value instanceof Date ? value.getTime() : (parseBackupDate(String(value ?? '')) ?? 0)
}

function disksOf(conn: PoolConnection, vm: XapiRecord): Vm['disks'] {
  const disks: Vm['disks'] = []
  for (const vbdRef of (vm.VBDs as string[] | undefined) ?? []) {
    const vbd = conn.byRef(vbdRef)
    if (vbd === undefined || vbd.type !== 'Disk' || vbd.VDI === NULL_REF) continue
    const vdi = conn.byRef(String(vbd.VDI))
    if (vdi === undefined) continue
    const sr = conn.byRef(String(vdi.SR))
    disks.push({ uuid: vdi.uuid, name: String(vdi.name_label ?? ''), size: Number(vdi.virtual_size ?? 0), srId: sr?.uuid ?? '' })
  }
  return disks
}

/** ISO libraries and removable devices: no restore and no replica can be written there. */
function holdsVmDisks(sr: XapiRecord): boolean {
  return sr.content_type !== 'iso' && sr.type !== 'udev' && sr.type !== 'iso'
}

/** The SRs that can hold VM disks (what `sr list` shows), or with 'unusable' the ISO libraries and removable devices. */
export function listSrs(pools: PoolConnection[], which: 'usable' | 'unusable' = 'usable'): Sr[] {
  const srs: Sr[] = []
  for (const conn of pools) {
    for (const sr of conn.all('SR')) {
      if (holdsVmDisks(sr) !== (which === 'usable')) continue
      const size = Number(sr.physical_size ?? 0)
      const used = Number(sr.physical_utilisation ?? 0)
      srs.push({ uuid: sr.uuid, name: String(sr.name_label ?? ''), poolId: conn.poolUuid, poolName: conn.poolName, type: String(sr.type ?? ''), size, used, free: Math.max(0, size - used), shared: sr.shared === true })
    }
  }
  return srs.sort((a, b) => a.poolName.localeCompare(b.poolName) || a.name.localeCompare(b.name))
}

/** An SR of a connected pool by uuid or unique name: restores and jobs name SRs either way. */
export function findSr(srs: Sr[], uuidOrName: string): Sr {
  const byUuid = srs.find(sr => sr.uuid === uuidOrName)
  if (byUuid !== undefined) return byUuid
  const named = srs.filter(sr => sr.name === uuidOrName)
  if (named.length === 1) return named[0]!
  if (named.length > 1) throw new LifeboatError('SR_AMBIGUOUS', `Several SRs are named "${uuidOrName}": ${named.map(sr => `${sr.uuid} (pool ${sr.poolName})`).join(', ')}; give the uuid of one ('npx lifeboat sr list').`)
  throw new LifeboatError('SR_NOT_FOUND', `No SR of a connected pool has the uuid or name "${uuidOrName}"; 'npx lifeboat sr list' shows them ('npx lifeboat pool list' shows whether each pool is connected).`)
}

/** A configured pool (connected or not) by uuid or unique name. */
export function findPool(pools: Pool[], uuidOrName: string): Pool {
  const byUuid = pools.find(pool => pool.id === uuidOrName)
  if (byUuid !== undefined) return byUuid
  const named = pools.filter(pool => pool.name === uuidOrName)
  if (named.length === 1) return named[0]!
  if (named.length > 1) throw new LifeboatError('POOL_AMBIGUOUS', `Several pools are named "${uuidOrName}": ${named.map(pool => pool.id).join(', ')}; give the uuid of one ('npx lifeboat pool list').`)
  throw new LifeboatError('POOL_NOT_FOUND', `No pool has the uuid or name "${uuidOrName}"; 'npx lifeboat pool list' shows them, 'npx lifeboat pool add' adds one.`)
}
