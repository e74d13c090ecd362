// Whole-VM transfers (xapi.md §3.2): GET /export/ writes an XVA (ova.xml with refs rewritten to Ref:N, then each
// disk's chunks) with optional gzip/zstd; PUT /import/ reads one back into new records and disks on an SR.
import type { Compression } from '../formats/compression.ts'
import { createXvaStream, readXva, renderOvaXml, type OvaXml } from '../formats/xva/index.ts'
import type { LabRecord } from './database.ts'
import { ApiError } from './errors.ts'
import { NULL_REF, SCHEMA } from './schema.ts'
import { xvaDisk } from './storage/index.ts'
import type { Toolstack } from './toolstack.ts'
import { attachToDom0, embedded500, pump, receivedBody, writeHead, type Transfer } from './transfers.ts'
import { createVdi, destroyVdi, pick, refreshSr } from './vdi.ts'
import { assertPowerState, withVmOperation } from './vm.ts'

const COMPRESSION: Record<string, Compression | undefined> = { true: 'gzip', gzip: 'gzip', zstd: 'zstd', false: undefined }

function vmParam(xapi: Toolstack, query: URLSearchParams): string {
  const ref = query.get('ref')
  if (ref !== null && xapi.db.has('VM', ref)) return ref
  const uuid = query.get('uuid')
  if (uuid !== null) return xapi.db.byUuid('VM', uuid)
  throw new ApiError('HANDLE_INVALID', ['VM', String(ref)])
}

/** The exported objects and their ova.xml, refs rewritten to `Ref:N` ids (OpaqueRef:NULL for what is not exported). */
function describeVm(xapi: Toolstack, vm: string): { ova: OvaXml; disks: Array<{ id: string; vdi: string }> } {
  const { db } = xapi
  const objects: Array<{ cls: string; ref: string }> = [{ cls: 'VM', ref: vm }]
  const vmRecord = db.row('VM', vm)
  for (const [cls, field] of [['VM_metrics', 'metrics'], ['VM_guest_metrics', 'guest_metrics']] as const) {
    if (db.has(cls, vmRecord[field] as string)) objects.push({ cls, ref: vmRecord[field] as string })
  }
  const disks: Array<{ id: string; vdi: string }> = []
  for (const vbd of db.refsWhere('VBD', 'VM', vm)) {
    objects.push({ cls: 'VBD', ref: vbd })
    const vdi = db.row('VBD', vbd).VDI as string
    if (db.has('VDI', vdi) && !objects.some(object => object.ref === vdi)) objects.push({ cls: 'VDI', ref: vdi })
  }
  for (const vif of db.refsWhere('VIF', 'VM', vm)) {
    objects.push({ cls: 'VIF', ref: vif })
    const network = db.row('VIF', vif).network as string
    if (!objects.some(object => object.ref === network)) objects.push({ cls: 'network', ref: network })
  }
  for (const object of [...objects]) {
    const sr = object.cls === 'VDI' ? db.row('VDI', object.ref).SR as string : undefined
    if (sr !== undefined && !objects.some(other => other.ref === sr)) objects.push({ cls: 'SR', ref: sr })
  }
  const ids = new Map(objects.map((object, index) => [object.ref, `Ref:${index}`]))
  const rewrite = (value: unknown): unknown => {
    if (typeof value === 'string' && value.startsWith('OpaqueRef:')) return ids.get(value) ?? NULL_REF
    if (Array.isArray(value)) return value.map(rewrite).filter(item => item !== NULL_REF)
    if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, rewrite(item)]))
    return value
  }
  const ova: OvaXml = {
    version: { hostname: db.row('host', xapi.masterRef).hostname as string, date: new Date().toISOString().slice(0, 10), product_version: '8.3.0',
      product_brand: 'XCP-ng', build_number: 'lab', xapi_major: 24, xapi_minor: 19, export_vsn: 2 },
    objects: objects.map(({ cls, ref }) => {
      const snapshot = rewrite(db.get(cls, ref)) as LabRecord
      if (cls === 'VM') Object.assign(snapshot, { power_state: 'Halted', suspend_VDI: NULL_REF, is_a_snapshot: false, snapshot_of: NULL_REF,
        snapshots: [], parent: NULL_REF, children: [], current_operations: {}, resident_on: NULL_REF })
      if (cls === 'VDI' || cls === 'VBD') Object.assign(snapshot, { current_operations: {}, VBDs: snapshot.VBDs ?? [] })
      return { class: cls, id: ids.get(ref)!, snapshot }
    }),
  }
  for (const { cls, ref } of objects) if (cls === 'VDI') disks.push({ id: ids.get(ref)!, vdi: ref })
  return { ova, disks }
}

export async function exportXva(transfer: Transfer): Promise<void> {
  const { xapi, query, socket, signal, task } = transfer
  const vm = vmParam(xapi, query)
  assertPowerState(xapi, vm, ['Halted', 'Suspended'])
  const compression = COMPRESSION[query.get('use_compression') ?? 'false']
  const fault = xapi.faults.forTransfer(xapi, '/export/', xapi.db.row('VM', vm).uuid as string)
  await withVmOperation(xapi, vm, 'export', { task }, async () => {
    const { ova, disks } = describeVm(xapi, vm)
    const detaches = await Promise.all(disks.map(disk => attachToDom0(xapi, disk.vdi, signal)))
    try {
      writeHead(socket, 200, 'OK', { 'content-type': 'application/octet-stream', 'content-disposition': 'attachment; filename="export.xva"',
        'task-id': task }, '1.0')
      if (fault?.type === 'embedded500') embedded500(transfer, xapi.db.row('VM', vm).uuid as string)
      const stream = createXvaStream({ ovaXml: renderOvaXml(ova), compression,
        disks: disks.map(disk => xvaDisk(xapi.store, xapi.db.row('VDI', disk.vdi).location as string, disk.id)) })
      const total = disks.reduce((sum, disk) => sum + (xapi.db.row('VDI', disk.vdi).virtual_size as number), 0)
      await pump({ ...transfer, fault }, stream, total)
    } finally {
      for (const detach of detaches) detach()
    }
  })
}

const IMPORT_ERRORS: Record<string, string> = {
  XVA_TRUNCATED: 'IMPORT_ERROR_PREMATURE_EOF', XVA_BAD_CHECKSUM: 'IMPORT_ERROR_SOME_CHECKSUMS_FAILED',
}

/** PUT /import/: the VM record appears as soon as ova.xml is read (current_operations import), disks fill as chunks arrive. */
export async function importXva(transfer: Transfer): Promise<string[]> {
  const { xapi, query, socket, request, task } = transfer
  const { db, store } = xapi
  if (request.headers['transfer-encoding'] !== undefined) {
    writeHead(socket, 403, 'Forbidden', {})
    throw new ApiError('IMPORT_ERROR_CANNOT_HANDLE_CHUNKED', [])
  }
  const srParam = query.get('sr_id') ?? (query.get('sr_uuid') !== null ? db.byUuid('SR', query.get('sr_uuid')!) : db.row('pool', xapi.poolRef).default_SR)
  const sr = xapi.ref('SR', srParam)
  writeHead(socket, 200, 'OK', { 'task-id': task, 'content-type': 'application/octet-stream' })
  const created: Array<{ cls: string; ref: string }> = []
  const leaves = new Map<string, { leaf: string; uuid: string }>()
  const restarts = xapi.restarts
  let vm: string | undefined
  try {
    for await (const entry of readXva(receivedBody(request))) {
      if (entry.type === 'ova.xml') {
        vm = await createImportedObjects(xapi, entry.ova, sr, task, created, leaves)
      } else if (!entry.data.every(byte => byte === 0)) {
        const disk = leaves.get(entry.ref)
        if (disk === undefined) throw new ApiError('IMPORT_ERROR_FAILED_TO_FIND_OBJECT', [entry.ref])
        await store.write(disk.leaf, entry.offset, entry.data)
        xapi.activity.recordImport(disk.uuid, entry.offset, entry.data.length)
      }
    }
    if (vm === undefined) throw new ApiError('IMPORT_ERROR_PREMATURE_EOF', [])
    const operations = { ...(db.row('VM', vm).current_operations as Record<string, string>) }
    delete operations[task]
    db.update('VM', vm, { current_operations: operations })
    refreshSr(xapi, sr)
    return [vm]
  } catch (error) {
    // import.ml's clean-up lives in the xapi process: a toolstack restart leaves the half-imported VM and its disks.
    if (xapi.restarts !== restarts) throw error
    for (const { cls, ref } of created.reverse()) {
      if (!db.has(cls, ref)) continue
      if (cls === 'VDI') await destroyVdi(xapi, ref).catch(() => {})
      else db.delete(cls, ref)
    }
    const code = (error as { code?: string }).code ?? ''
    if (error instanceof ApiError || code.startsWith('SR_BACKEND_FAILURE_')) throw error
    if (IMPORT_ERRORS[code] !== undefined) throw new ApiError(IMPORT_ERRORS[code], [])
    throw new ApiError('IMPORT_ERROR', [(error as Error).message])
  }
}

async function createImportedObjects(xapi: Toolstack, ova: OvaXml, sr: string, task: string, created: Array<{ cls: string; ref: string }>,
  leaves: Map<string, { leaf: string; uuid: string }>): Promise<string> {
  const { db } = xapi
  const refs = new Map<string, string>()
  const record = (cls: string, snapshot: LabRecord, fields: LabRecord) => {
    const writable = Object.keys(SCHEMA[cls]!.fields).filter(field => !['uuid', 'current_operations', 'allowed_operations'].includes(field))
    const values = Object.fromEntries(Object.entries(pick(snapshot, writable)).filter(([, value]) => !(typeof value === 'string' && value.startsWith('Ref:'))))
    const ref = db.create(cls, { ...values, ...fields })
    created.push({ cls, ref })
    return ref
  }
  const vmObject = ova.objects.find(object => object.class === 'VM')
  if (vmObject === undefined) throw new ApiError('IMPORT_ERROR', ['The archive has no VM object'])
  // XAPI creates it with VM.create, which ignores blocked_operations (import.ml, xapi_vm.ml create).
  // The archive's metrics are kept (import.ml): start_time says when the exported VM last started.
  const exported = (cls: string, id: unknown) => ova.objects.find(object => object.class === cls && object.id === id)?.snapshot
  const metrics = record('VM_metrics', exported('VM_metrics', vmObject.snapshot.metrics) ?? {}, {})
  const guestMetrics = exported('VM_guest_metrics', vmObject.snapshot.guest_metrics)
  const vm = record('VM', vmObject.snapshot, { power_state: 'Halted', current_operations: { [task]: 'import' }, metrics,
    blocked_operations: {}, other_config: { ...(vmObject.snapshot.other_config as Record<string, string>), import_task: task },
    guest_metrics: guestMetrics === undefined ? NULL_REF : record('VM_guest_metrics', guestMetrics, {}), is_a_snapshot: false, snapshot_of: NULL_REF, parent: NULL_REF, resident_on: NULL_REF, suspend_VDI: NULL_REF,
    affinity: NULL_REF, suspend_SR: NULL_REF, appliance: NULL_REF, domid: -1 })
  for (const object of ova.objects.filter(item => item.class === 'VDI')) {
    const vdi = await createVdi(xapi, { ...pick(object.snapshot, ['name_label', 'name_description', 'type', 'sharable', 'read_only', 'other_config',
      'xenstore_data', 'tags']), SR: sr, virtual_size: Number(object.snapshot.virtual_size), sm_config: { import_task: task } })
    created.push({ cls: 'VDI', ref: vdi })
    refs.set(object.id, vdi)
    leaves.set(object.id, { leaf: db.row('VDI', vdi).location as string, uuid: db.row('VDI', vdi).uuid as string })
  }
  for (const object of ova.objects.filter(item => item.class === 'network')) refs.set(object.id, importedNetwork(xapi, object.snapshot, task, created))
  for (const object of ova.objects) {
    if (object.class === 'VBD') {
      const vdi = refs.get(object.snapshot.VDI as string) ?? NULL_REF
      record('VBD', object.snapshot, { VM: vm, VDI: vdi, empty: vdi === NULL_REF, currently_attached: false })
    } else if (object.class === 'VIF') {
      record('VIF', object.snapshot, { VM: vm, network: refs.get(object.snapshot.network as string) ?? NULL_REF, currently_attached: false })
    }
  }
  return vm
}

/** import.ml's Net: the pool's network of that name, else of that bridge, else a new one made from the exported record. */
function importedNetwork(xapi: Toolstack, exported: LabRecord, task: string, created: Array<{ cls: string; ref: string }>): string {
  const { db } = xapi
  const existing = db.find('network', row => row.name_label === exported.name_label)[0] ?? db.find('network', row => row.bridge === exported.bridge)[0]
  if (existing !== undefined) return existing
  const network = db.create('network', { ...pick(exported, ['name_label', 'name_description', 'MTU', 'bridge', 'tags']),
    other_config: { ...(exported.other_config as Record<string, string>), import_task: task } })
  created.push({ cls: 'network', ref: network })
  return network
}
