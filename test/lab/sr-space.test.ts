// SR space as replication meets it, through the real client: creates, clones and every kind of import are charged
// to the SR as SM charges them; an SR that fills up fails an import in the middle with SR_BACKEND_FAILURE_44 (an
// XVA import then removes what it created); a toolstack restart in the middle of one leaves what XAPI leaves.
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { test } from 'node:test'
import { createVhdStream } from '../../source/formats/vhd/index.ts'
import { vhdPhysicalSize } from '../../source/lab/storage/layer.ts'
import { diskOf, readAll, sim, vmNamed, waitFor, withTinyLab, type XapiClient } from './helpers.ts'

const MiB = 1024 * 1024
const BLOCK = 2 * MiB
const CHARGED_BLOCK = BLOCK + 512

const exportXva = async (xapi: XapiClient, vm: string) => {
  const response = await xapi.getResource('/export/', { query: { ref: vm, use_compression: 'false' } })
  const xva = await readAll(response.body)
  await response.task
  return xva
}
const oneBlockVhd = async (size: number, index: number) => readAll(createVhdStream({ size, uuid: crypto.randomUUID(), blockIndexes: [index],
  tableOffset: 2048, creator: 'caml', timestamp: 0, blocks: (async function* () { yield { index, data: Buffer.alloc(BLOCK, 0x42) } })() }).stream)

test('creates, clones and raw, VHD and XVA imports are charged to the SR as SM charges a file SR', () => withTinyLab(async ({ xapi }) => {
  const vm = vmNamed(xapi, 'tiny-halted')
  const sr = diskOf(vm).$SR.$ref
  let before = Number(await xapi.call('SR.get_physical_utilisation', sr))
  const grown = async () => {
    const now = Number(await xapi.call('SR.get_physical_utilisation', sr))
    const delta = now - before
    before = now
    return delta
  }
  const vdi = await xapi.call('VDI.create', { SR: sr, virtual_size: 8 * MiB, name_label: 'target', type: 'user' })
  assert.equal(await grown(), vhdPhysicalSize(8 * MiB, 0), 'an empty VHD: footer, header and BAT')
  const content = Buffer.alloc(4 * MiB)
  content.fill(7, BLOCK)
  await xapi.putResource(content, '/import_raw_vdi/', { query: { vdi, format: 'raw' } })
  assert.equal(await grown(), CHARGED_BLOCK, 'a raw import is charged the blocks it wrote (zeros are skipped)')
  const clone = await xapi.callAsync('VDI.clone', vdi, {})
  assert.equal(await grown(), 2 * vhdPhysicalSize(8 * MiB, 0), 'a clone: two empty children of the base')
  await xapi.putResource(await oneBlockVhd(8 * MiB, 3), '/import_raw_vdi/', { query: { vdi: clone, format: 'vhd' } })
  assert.equal(await grown(), CHARGED_BLOCK, 'a VHD import is charged the blocks it wrote')
  const [imported] = await xapi.putResource(await exportXva(xapi, vm.$ref), '/import/', { query: { sr_id: sr } })
  const disks = await Promise.all((await xapi.call('VM.get_VBDs', imported)).map((vbd: string) => xapi.call('VBD.get_VDI', vbd)))
  const used = await Promise.all(disks.filter(ref => ref !== 'OpaqueRef:NULL').map(ref => xapi.call('VDI.get_physical_utilisation', ref)))
  assert.equal(await grown(), used.reduce((sum, value) => sum + Number(value), 0), 'an XVA import is charged its new disks')
}))

test('an SR that fills up in the middle of an import fails it with SR_BACKEND_FAILURE_44: /import/ removes its VM and disks, /import_raw_vdi/ keeps the blocks written', () => withTinyLab(async ({ env, xapi }) => {
  const vm = vmNamed(xapi, 'tiny-halted')
  const disk = diskOf(vm)
  const sr = disk.$SR
  const xva = await exportXva(xapi, vm.$ref)
  const [vms, vdis, used] = [(await xapi.call('VM.get_all')).length, (await xapi.call('VDI.get_all')).length, await xapi.call('SR.get_physical_utilisation', sr.$ref)]
  // Room for the new disk and two of its blocks: the third block fails.
  assert.equal((await sim(env.pool.url, 'POST', `sr/${sr.uuid}/full`, { freeBytes: vhdPhysicalSize(disk.virtual_size, 0) + 2 * CHARGED_BLOCK })).status, 200)
  await sim(env.pool.url, 'DELETE', 'activity')
  await assert.rejects(xapi.putResource(xva, '/import/', { query: { sr_id: sr.$ref } }),
    (error: any) => error.code === 'SR_BACKEND_FAILURE_44' && error.params[1] === 'There is insufficient space')
  assert.ok((await sim(env.pool.url, 'GET', 'activity')).body.imported.bytes >= MiB, 'the import failed after it had written data')
  assert.equal((await xapi.call('VM.get_all')).length, vms, 'the half-imported VM is gone')
  assert.equal((await xapi.call('VDI.get_all')).length, vdis, 'and its disks')
  assert.equal(await xapi.call('SR.get_physical_utilisation', sr.$ref), used, 'their space is free again')

  const target = await xapi.call('VDI.create', { SR: sr.$ref, virtual_size: 8 * MiB, name_label: 'target', type: 'user' })
  await sim(env.pool.url, 'POST', `sr/${sr.uuid}/full`, { freeBytes: CHARGED_BLOCK })
  const body = Buffer.alloc(8 * MiB, 0x33)
  await assert.rejects(xapi.putResource(body, '/import_raw_vdi/', { query: { vdi: target, format: 'raw' } }), (error: any) => error.code === 'SR_BACKEND_FAILURE_44')
  const kept = await readAll((await xapi.getResource('/export_raw_vdi/', { query: { vdi: target, format: 'raw' } })).body)
  assert.ok(kept.subarray(0, BLOCK).equals(body.subarray(0, BLOCK)) && kept.subarray(BLOCK).every(byte => byte === 0), `the block that fitted is written (${kept.indexOf(0)} bytes)`)
  assert.equal(await xapi.call('VDI.get_name_label', target), 'target', 'the VDI the client gave is left to it')
}))

test('a toolstack restart in the middle of an XVA import: the task and the import lock are gone, the half-imported VM stays (XAPI\'s clean-up dies with it)', () => withTinyLab(async ({ env, xapi }) => {
  const vm = vmNamed(xapi, 'tiny-halted')
  const xva = await exportXva(xapi, vm.$ref)
  let release!: () => void
  const held = new Promise<void>(resolve => (release = resolve))
  const slow = Readable.from((async function* () {
    yield xva.subarray(0, 3 * MiB)
    await held
    yield xva.subarray(3 * MiB)
  })()) as Readable & { length?: number }
  slow.length = xva.length
  const upload = xapi.putResource(slow, '/import/', { query: { sr_id: diskOf(vm).$SR.$ref } })
  upload.catch(() => {})
  const importing = await waitFor(() => Object.values(xapi.objects.all).find((object: any) => object.$type === 'VM' &&
    Object.values(object.current_operations).includes('import')), 'the VM being imported') as any
  await env.lab.control.restart(200)
  release()
  await assert.rejects(upload)
  // The client logs in again once the toolstack is back: its calls fail until then.
  let left: any
  for (const deadline = Date.now() + 15_000; left === undefined; await new Promise(resolve => setTimeout(resolve, 100))) {
    left = await xapi.call('VM.get_record', importing.$ref).catch((error: any) => {
      if (Date.now() > deadline) throw error
      return undefined
    })
  }
  assert.deepEqual(left.current_operations, {}, 'current operations are not kept over a restart')
  assert.equal(left.other_config.import_task, Object.keys(importing.current_operations)[0], 'import.ml marks the VM with its import task')
  assert.equal(left.power_state, 'Halted')
  assert.ok(left.VBDs.length > 0, 'the VM left by the restart keeps its VBDs')
}))

test('a toolstack restart in the middle of a raw upload: the blocks received stay, the VDI is the client\'s, dom0 lets go of it', () => withTinyLab(async ({ env, xapi }) => {
  const sr = diskOf(vmNamed(xapi, 'tiny-halted')).$SR.$ref
  const vdi = await xapi.call('VDI.create', { SR: sr, virtual_size: 8 * MiB, name_label: 'target', type: 'user' })
  let release!: () => void
  const held = new Promise<void>(resolve => (release = resolve))
  const slow = Readable.from((async function* () {
    yield Buffer.alloc(BLOCK, 0x61)
    await held
    yield Buffer.alloc(6 * MiB, 0x62)
  })()) as Readable & { length?: number }
  slow.length = 8 * MiB
  const upload = xapi.putResource(slow, '/import_raw_vdi/', { query: { vdi, format: 'raw' } })
  upload.catch(() => {})
  await waitFor(() => env.lab.control.xapi.activity.snapshot().imported.bytes >= BLOCK, 'the first block received', 20_000)
  await env.lab.control.restart(200)
  release()
  await assert.rejects(upload)
  let content: Buffer | undefined
  for (const deadline = Date.now() + 15_000; content === undefined; await new Promise(resolve => setTimeout(resolve, 100))) {
    content = await xapi.getResource('/export_raw_vdi/', { query: { vdi, format: 'raw' } }).then(response => readAll(response.body)).catch((error: any) => {
      if (Date.now() > deadline) throw error
      return undefined
    })
  }
  assert.ok(content.subarray(0, BLOCK).every(byte => byte === 0x61) && content.subarray(BLOCK).every(byte => byte === 0), 'what arrived before the restart')
  await waitFor(() => env.lab.control.xapi.db.refsWhere('VBD', 'VDI', vdi).length === 0, 'dom0 letting go of the disk', 20_000)
}))
