// Disks as XAPI shows them: VDI records on top of the disk store's layer trees (record `location` = its layer),
// hidden base copies kept in step with the tree, SR accounting, and the VDI/VBD/VIF/SR messages.
import { randomBytes } from 'node:crypto'
import { ApiError } from './errors.ts'
import type { LabRecord } from './database.ts'
import { NULL_REF } from './schema.ts'
import { xapiDate, type Toolstack } from './toolstack.ts'
import { LAB_BLOCK_SIZE } from './storage/index.ts'

export function leafOf(xapi: Toolstack, vdi: string): string {
  return xapi.db.row('VDI', vdi).location as string
}

function roundToBlock(size: number): number {
  return Math.ceil(size / LAB_BLOCK_SIZE) * LAB_BLOCK_SIZE
}

/**
 * The parent SM shows in `vhd-parent`. SM's garbage collector coalesces a base copy that has a single child into
 * that child; the store keeps such layers (reads and deltas are the same), so the XAPI view skips them, unless the
 * `gcStuck` knob keeps them visible: the "unhealthy VDI chain" backup tools wait on.
 */
function visibleParent(xapi: Toolstack, layerUuid: string): string | undefined {
  let parent = xapi.store.layer(layerUuid).parent
  while (!xapi.knobs.gcStuck && parent !== undefined && xapi.store.layer(parent).children.length === 1) parent = xapi.store.layer(parent).parent
  return parent
}

/** Recomputes the SR's and its VDIs' space figures and parents, and keeps one hidden base copy per visible inner layer. */
export function refreshSr(xapi: Toolstack, sr: string): void {
  const { db, store } = xapi
  const uuid = db.row('SR', sr).uuid as string
  let virtualAllocation = 0
  const visibleBases = new Set<string>()
  const managed = db.refsWhere('VDI', 'SR', sr).filter(vdi => db.row('VDI', vdi).managed !== false)
  for (const vdi of managed) {
    const record = db.row('VDI', vdi)
    virtualAllocation += record.virtual_size as number
    for (let parent = syncVdi(xapi, vdi); parent !== undefined; parent = visibleParent(xapi, parent)) visibleBases.add(parent)
  }
  for (const base of db.refsWhere('VDI', 'SR', sr).filter(vdi => db.row('VDI', vdi).managed === false)) {
    const location = db.row('VDI', base).location as string
    if (!visibleBases.delete(location)) db.delete('VDI', base)
    else syncVdi(xapi, base)
  }
  for (const layerUuid of visibleBases) {
    const base = db.create('VDI', { uuid: layerUuid, location: layerUuid, SR: sr, name_label: 'base copy', managed: false, read_only: true })
    syncVdi(xapi, base)
  }
  const usage = store.srUsage(uuid)
  const record = db.row('SR', sr)
  if (record.physical_utilisation !== usage.physicalUtilisation || record.virtual_allocation !== virtualAllocation || record.physical_size !== usage.physicalSize) {
    db.update('SR', sr, { physical_utilisation: usage.physicalUtilisation, virtual_allocation: virtualAllocation, physical_size: usage.physicalSize })
  }
}

/** Brings a VDI record's size, utilisation and vhd-parent in line with its layer; returns the visible parent. */
function syncVdi(xapi: Toolstack, vdi: string): string | undefined {
  const record = xapi.db.row('VDI', vdi)
  const layer = xapi.store.layer(record.location as string)
  const parent = visibleParent(xapi, layer.uuid)
  const smConfig = { ...(record.sm_config as Record<string, string>) }
  const patch: LabRecord = {}
  if (record.physical_utilisation !== layer.physicalUtilisation) patch.physical_utilisation = layer.physicalUtilisation
  if (record.virtual_size !== layer.size) patch.virtual_size = layer.size
  if (smConfig['vhd-parent'] !== parent) {
    delete smConfig['vhd-parent']
    patch.sm_config = parent === undefined ? smConfig : { ...smConfig, 'vhd-parent': parent }
  }
  if (Object.keys(patch).length > 0) xapi.db.update('VDI', vdi, patch)
  return parent
}

export async function createVdi(xapi: Toolstack, fields: LabRecord): Promise<string> {
  const sr = xapi.ref('SR', fields.SR)
  const size = roundToBlock(Number(fields.virtual_size ?? 0))
  const layer = await xapi.store.createLayer({ sr: xapi.db.row('SR', sr).uuid as string, size })
  const vdi = xapi.db.create('VDI', { ...pick(fields, VDI_CREATE_FIELDS), SR: sr, virtual_size: size, location: layer, managed: true })
  refreshSr(xapi, sr)
  return vdi
}

const VDI_CREATE_FIELDS = ['name_label', 'name_description', 'type', 'sharable', 'read_only', 'other_config', 'xenstore_data', 'sm_config', 'tags']
const VDI_COPIED_FIELDS = ['name_label', 'name_description', 'type', 'sharable', 'other_config', 'xenstore_data', 'on_boot', 'allow_caching', 'tags',
  'virtual_size', 'SR', 'read_only']

/** VDI.snapshot / VDI.clone: a copy-on-write child of the disk's current state (xapi_vdi.ml snapshot_and_clone). */
export async function copyOnWrite(xapi: Toolstack, vdi: string, kind: 'snapshot' | 'clone'): Promise<string> {
  const { db, store } = xapi
  const source = db.row('VDI', vdi)
  if (source.type === 'cbt_metadata') throw new ApiError('VDI_INCOMPATIBLE_TYPE', [vdi, 'cbt_metadata'])
  const sr = source.SR as string
  let depth = 1
  for (let parent = visibleParent(xapi, source.location as string); parent !== undefined; parent = visibleParent(xapi, parent)) depth++
  if (depth >= xapi.knobs.maxChainLength) throw new ApiError('SR_BACKEND_FAILURE_109', ['', 'The snapshot chain is too long', ''])
  const { leaf, copy } = await xapi.srLocked(sr, source.uuid as string, () => store.snapshot(source.location as string, { clone: kind === 'clone' }))
  db.update('VDI', vdi, { location: leaf })
  const snapshot = kind === 'snapshot'
  const ref = db.create('VDI', { ...pick(source, VDI_COPIED_FIELDS), location: copy, managed: true, is_a_snapshot: snapshot,
    snapshot_of: snapshot ? vdi : NULL_REF, snapshot_time: snapshot ? xapiDate() : source.snapshot_time,
    cbt_enabled: snapshot && source.cbt_enabled === true, read_only: snapshot ? source.read_only : false,
    sm_config: withoutParent(source.sm_config) })
  refreshSr(xapi, sr)
  return ref
}

export async function destroyVdi(xapi: Toolstack, vdi: string, operation: 'destroy' | 'data_destroy' = 'destroy'): Promise<void> {
  const { db, store } = xapi
  const record = db.row('VDI', vdi)
  assertNotInUse(xapi, vdi, operation)
  for (const vbd of db.refsWhere('VBD', 'VDI', vdi)) db.delete('VBD', vbd)
  db.delete('VDI', vdi)
  await store.destroyLayer(record.location as string)
  refreshSr(xapi, record.SR as string)
}

function assertNotInUse(xapi: Toolstack, vdi: string, operation: string): void {
  const { db } = xapi
  const attached = db.refsWhere('VBD', 'VDI', vdi).some(vbd => db.row('VBD', vbd).currently_attached === true)
  if (attached || Object.keys(db.row('VDI', vdi).current_operations as object).length > 0) throw new ApiError('VDI_IN_USE', [vdi, operation])
}

function withoutParent(smConfig: unknown): Record<string, string> {
  const copy = { ...(smConfig as Record<string, string>) }
  delete copy['vhd-parent']
  return copy
}

function isSuspended(xapi: Toolstack, vm: string): boolean {
  return xapi.db.row('VM', vm).power_state === 'Suspended'
}

export function pick(record: LabRecord, fields: string[]): LabRecord {
  return Object.fromEntries(fields.filter(field => record[field] !== undefined).map(field => [field, record[field]]))
}

export function defineDiskMethods(xapi: Toolstack): void {
  const { db, store } = xapi
  const vdiRef = (value: unknown) => xapi.ref('VDI', value)

  xapi.define('VDI.create', 1, (_context, fields) => createVdi(xapi, fields as LabRecord), { asyncable: true })
  xapi.define('VDI.destroy', 1, (_context, vdi) => destroyVdi(xapi, vdiRef(vdi)), { asyncable: true })
  xapi.define('VDI.snapshot', [1, 2], (_context, vdi) => copyOnWrite(xapi, vdiRef(vdi), 'snapshot'), { asyncable: true })
  xapi.define('VDI.clone', [1, 2], (_context, vdi) => copyOnWrite(xapi, vdiRef(vdi), 'clone'), { asyncable: true })
  const resize = async (_context: unknown, vdi: unknown, size: unknown) => {
    const ref = vdiRef(vdi)
    const record = db.row('VDI', ref)
    const wanted = roundToBlock(Number(size))
    if (wanted < (record.virtual_size as number)) throw new ApiError('VDI_SIZE_TOO_SMALL', [ref, String(record.virtual_size)])
    await store.resize(record.location as string, wanted)
    db.update('VDI', ref, { virtual_size: wanted })
    refreshSr(xapi, record.SR as string)
  }
  xapi.define('VDI.resize', 2, resize, { asyncable: true })
  xapi.define('VDI.resize_online', 2, resize, { asyncable: true })
  xapi.define('VDI.enable_cbt', 1, (_context, vdi) => {
    const record = db.row('VDI', vdiRef(vdi))
    if (record.is_a_snapshot === true) throw new ApiError('VDI_INCOMPATIBLE_TYPE', [vdi, 'snapshot'])
    if (record.cbt_enabled !== true) {
      store.enableCbt(record.location as string)
      db.update('VDI', vdi as string, { cbt_enabled: true })
    }
  }, { asyncable: true })
  xapi.define('VDI.disable_cbt', 1, (_context, vdi) => void db.update('VDI', vdiRef(vdi), { cbt_enabled: false }), { asyncable: true })
  xapi.define('VDI.data_destroy', 1, async (_context, vdi) => {
    const ref = vdiRef(vdi)
    const record = db.row('VDI', ref)
    if (record.type === 'cbt_metadata') return
    if (record.cbt_enabled !== true || record.is_a_snapshot !== true) throw new ApiError('VDI_NO_CBT_METADATA', [ref])
    assertNotInUse(xapi, ref, 'data_destroy')
    await store.dataDestroy(record.location as string)
    db.update('VDI', ref, { type: 'cbt_metadata' })
    refreshSr(xapi, record.SR as string)
  }, { asyncable: true })
  xapi.define('VDI.list_changed_blocks', 2, (_context, from, to) => {
    const [fromRecord, toRecord] = [db.row('VDI', vdiRef(from)), db.row('VDI', vdiRef(to))]
    for (const [ref, record] of [[from, fromRecord], [to, toRecord]] as const) {
      if (record.cbt_enabled !== true) throw new ApiError('VDI_NO_CBT_METADATA', [ref])
    }
    if (db.refsWhere('VBD', 'VDI', to).some(vbd => db.row('VBD', vbd).currently_attached === true)) throw new ApiError('VDI_IN_USE', [to, 'list_changed_blocks'])
    return store.changedBlocks(fromRecord.location as string, toRecord.location as string).toString('base64')
  }, { asyncable: true })
  xapi.define('VDI.get_nbd_info', 1, (_context, vdi) => {
    if (db.row('VDI', vdiRef(vdi)).type === 'cbt_metadata') throw new ApiError('VDI_INCOMPATIBLE_TYPE', [vdi, 'cbt_metadata'])
    return []
  })
  xapi.define('SR.scan', 1, (_context, sr) => refreshSr(xapi, xapi.ref('SR', sr)), { asyncable: true })

  xapi.define('VBD.create', 1, (_context, fields) => {
    const record = fields as LabRecord
    const vm = xapi.ref('VM', record.VM)
    const empty = record.empty === true || record.empty === 'true'
    if (!empty) vdiRef(record.VDI)
    // Only a suspended VM's devices are created attached, with the device its memory image expects (xapi_vbd.ml create).
    const suspended = isSuspended(xapi, vm)
    const device = suspended && typeof record.device === 'string' && record.device !== '' ? record.device : `xvd${String.fromCharCode(97 + Number(record.userdevice ?? 0))}`
    return db.create('VBD', { ...pick(record, ['userdevice', 'bootable', 'mode', 'type', 'unpluggable', 'other_config', 'qos_algorithm_type',
      'qos_algorithm_params']), VM: vm, VDI: empty ? NULL_REF : record.VDI, empty, device, currently_attached: suspended && record.currently_attached === true })
  }, { asyncable: true })
  xapi.define('VBD.destroy', 1, (_context, vbd) => {
    const ref = xapi.ref('VBD', vbd)
    if (db.row('VBD', ref).currently_attached === true && db.row('VM', db.row('VBD', ref).VM as string).power_state === 'Running') {
      throw new ApiError('DEVICE_ALREADY_ATTACHED', [ref])
    }
    db.delete('VBD', ref)
  }, { asyncable: true })
  for (const [method, attached] of [['plug', true], ['unplug', false], ['unplug_force', false]] as const) {
    xapi.define(`VBD.${method}`, 1, (_context, vbd) => void db.update('VBD', xapi.ref('VBD', vbd), { currently_attached: attached }), { asyncable: true })
    if (method !== 'unplug_force') {
      xapi.define(`VIF.${method}`, 1, (_context, vif) => void db.update('VIF', xapi.ref('VIF', vif), { currently_attached: attached }), { asyncable: true })
    }
  }
  xapi.define('VIF.create', 1, (_context, fields) => {
    const record = fields as LabRecord
    const generated = record.MAC === undefined || record.MAC === ''
    return db.create('VIF', { ...pick(record, ['device', 'MAC', 'MTU', 'other_config', 'qos_algorithm_type', 'qos_algorithm_params', 'locking_mode']),
      ...(generated && { MAC: generatedMac() }),
      VM: xapi.ref('VM', record.VM), network: xapi.ref('network', record.network), MAC_autogenerated: generated,
      currently_attached: isSuspended(xapi, record.VM as string) && record.currently_attached === true })
  }, { asyncable: true })
  xapi.define('VIF.destroy', 1, (_context, vif) => db.delete('VIF', xapi.ref('VIF', vif)), { asyncable: true })
}

/** XAPI gives a VIF created without a MAC a locally administered unicast one (xapi_vif_helpers gen_mac). */
function generatedMac(): string {
  const bytes = randomBytes(6)
  bytes[0] = (bytes[0]! & 0xfe) | 0x02
  return [...bytes].map(byte => byte.toString(16).padStart(2, '0')).join(':')
}
