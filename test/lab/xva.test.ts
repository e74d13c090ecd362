// Whole-VM transfers through the real client: an import shows its VM early (current_operations import), a cut archive
// fails as XAPI's import does and leaves nothing behind, and an export locks its VM.
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { describe, test } from 'node:test'
import { diskOf, readAll, useTinyLab, vmNamed, waitFor, withTinyLab } from './helpers.ts'

const MiB = 1024 * 1024

describe('lab VM transfers', () => {
  const tiny = useTinyLab()

  test('XVA import: the VM appears early with current_operations import; a cut archive fails with IMPORT_ERROR_PREMATURE_EOF', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-halted')
    const response = await tiny.xapi.getResource('/export/', { query: { ref: vm.$ref, use_compression: 'false' } })
    const xva = await readAll(response.body)
    await response.task
    const sr = diskOf(vm).$SR.$ref
    let release!: () => void
    const held = new Promise<void>(resolve => (release = resolve))
    const slow = Readable.from((async function* () {
      yield xva.subarray(0, 256 * 1024)
      await held
      yield xva.subarray(256 * 1024)
    })()) as Readable & { length?: number }
    slow.length = xva.length
    const upload = tiny.xapi.putResource(slow, '/import/', { query: { sr_id: sr } })
    const early = await waitFor(() => Object.values(tiny.xapi.objects.all).find((object: any) => object.$type === 'VM' &&
      Object.values(object.current_operations).includes('import')), 'the VM being imported')
    release()
    const [imported] = await upload
    assert.equal(imported, early.$ref)
    await waitFor(() => Object.keys(tiny.xapi.getObject(imported).current_operations).length === 0, 'the import done')
    assert.equal(tiny.xapi.getObject(imported).name_label, vm.name_label)
    await tiny.xapi.call('VM.destroy', imported)

    const before = (await tiny.xapi.call('VM.get_all')).length
    await assert.rejects(tiny.xapi.putResource(xva.subarray(0, xva.length - 3 * MiB), '/import/', { query: { sr_id: sr } }),
      (error: any) => error.code === 'IMPORT_ERROR_PREMATURE_EOF')
    assert.equal((await tiny.xapi.call('VM.get_all')).length, before, 'a failed import leaves nothing behind')
  })

  test('an imported XVA\'s VM keeps the archive\'s metrics (its last start time) and leaves nothing behind when it fails', async () => {
    const vm = await tiny.xapi.callAsync('VM.clone', vmNamed(tiny.xapi, 'tiny-halted').$ref, 'started once')
    await tiny.xapi.callAsync('VM.start', vm, false, false)
    await tiny.xapi.callAsync('VM.hard_shutdown', vm)
    const started = await tiny.xapi.call('VM_metrics.get_start_time', await tiny.xapi.call('VM.get_metrics', vm))
    const response = await tiny.xapi.getResource('/export/', { query: { ref: vm, use_compression: 'false' } })
    const xva = await readAll(response.body)
    await response.task
    const sr = diskOf(vmNamed(tiny.xapi, 'tiny-halted')).$SR.$ref
    const [imported] = await tiny.xapi.putResource(xva, '/import/', { query: { sr_id: sr } })
    assert.equal(await tiny.xapi.call('VM_metrics.get_start_time', await tiny.xapi.call('VM.get_metrics', imported)), started)
    const metrics = (await tiny.xapi.call('VM_metrics.get_all')).length
    await assert.rejects(tiny.xapi.putResource(xva.subarray(0, xva.length - 3 * MiB), '/import/', { query: { sr_id: sr } }))
    assert.equal((await tiny.xapi.call('VM_metrics.get_all')).length, metrics, 'no metrics left by a failed import')
    for (const ref of [imported, vm]) await tiny.xapi.call('VM.destroy', ref)
  })

  test('an imported XVA\'s VM has no blocked operations (XAPI creates it with VM.create, which ignores them)', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-halted')
    await tiny.xapi.call('VM.add_to_blocked_operations', vm.$ref, 'start', 'blocked at the source')
    try {
      const response = await tiny.xapi.getResource('/export/', { query: { ref: vm.$ref } })
      const xva = await readAll(response.body)
      await response.task
      const [imported] = await tiny.xapi.putResource(xva, '/import/', { query: { sr_id: diskOf(vm).$SR.$ref } })
      assert.deepEqual(await tiny.xapi.call('VM.get_blocked_operations', imported), {})
      await tiny.xapi.call('VM.destroy', imported)
    } finally {
      await tiny.xapi.call('VM.remove_from_blocked_operations', vm.$ref, 'start')
    }
  })

  test('a VM export locks the VM: destroy answers OTHER_OPERATION_IN_PROGRESS meanwhile', async () => {
    const vm = vmNamed(tiny.xapi, 'tiny-halted')
    tiny.env.lab.control.setKnobs({ exportPerStreamMiBs: 24 })
    try {
      const response = await tiny.xapi.getResource('/export/', { query: { ref: vm.$ref } })
      await waitFor(() => Object.values(tiny.xapi.getObject(vm.$ref).current_operations).includes('export'), 'the export lock')
      await assert.rejects(tiny.xapi.call('VM.destroy', vm.$ref), (error: any) => error.code === 'OTHER_OPERATION_IN_PROGRESS' && error.params[2] === 'export')
      await readAll(response.body)
      await response.task
      await waitFor(() => Object.keys(tiny.xapi.getObject(vm.$ref).current_operations).length === 0, 'the lock released')
    } finally {
      tiny.env.lab.control.setKnobs({ exportPerStreamMiBs: null as never })
    }
  })
})

test('raw upload with sr_id and no vdi creates an "Imported VDI" holding the data', () => withTinyLab(async ({ xapi }) => {
  const sr = diskOf(vmNamed(xapi, 'tiny-halted')).$SR.$ref
  const content = Buffer.alloc(4 * MiB, 0x5a)
  const vdi = await xapi.putResource(content, '/import_raw_vdi/', { query: { sr_id: sr, format: 'raw' } })
  const record = await waitFor(() => xapi.getObject(vdi, undefined), 'the new VDI')
  assert.equal(record.name_label, 'Imported VDI')
  assert.equal(record.virtual_size, 4 * MiB)
  assert.ok((await readAll((await xapi.getResource('/export_raw_vdi/', { query: { vdi, format: 'raw' } })).body)).equals(content), 'the raw export of the XVA disk reads back as its content')
}))
