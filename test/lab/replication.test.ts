// What replication to an SR needs from the lab, through the real client: VHD deltas applied onto clones of a
// replica's disks (only the blocks sent are written, and the lab counts them), VDI.resize of such a clone, and an
// XVA of one pool imported onto the SR of another (disaster recovery on the pair fixture).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createVhdStream } from '../../source/formats/vhd/index.ts'
import { startLab } from '../../source/lab/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { connect, diskOf, objectsOf, readAll, sim, useTinyLab, vmNamed, waitFor } from './helpers.ts'

const MiB = 1024 * 1024
const BLOCK = 2 * MiB

describe('lab replication', () => {
  const tiny = useTinyLab()

  const raw = async (vdi: string) => readAll((await tiny.xapi.getResource('/export_raw_vdi/', { query: { vdi, format: 'raw' } })).body)
  const vhd = async (query: Record<string, string>) => readAll((await tiny.xapi.getResource('/export_raw_vdi/', { query: { ...query, format: 'vhd' } })).body)
  const activity = async () => (await sim(tiny.env.pool.url, 'GET', 'activity')).body

  test('a VHD delta onto a clone of the base writes only its blocks, and the lab counts bytes and blocks per VDI', async () => {
    const live = diskOf(vmNamed(tiny.xapi, 'tiny-halted'))
    const base = await tiny.xapi.callAsync('VDI.snapshot', live.$ref, {})
    await tiny.env.lab.control.writeVdi(live.uuid, { offset: 3 * BLOCK + 4096, length: 8192, seed: 5 })
    const next = await tiny.xapi.callAsync('VDI.snapshot', live.$ref, {})
    const delta = await vhd({ vdi: next, base })

    const replica = await tiny.xapi.callAsync('VDI.clone', base, {})
    const replicaUuid = await tiny.xapi.call('VDI.get_uuid', replica)
    assert.equal((await sim(tiny.env.pool.url, 'DELETE', 'activity')).status, 200)
    await tiny.xapi.putResource(delta, '/import_raw_vdi/', { query: { vdi: replica, format: 'vhd' } })
    assert.ok((await raw(replica)).equals(await raw(next)), 'the clone of the base plus the delta is the new snapshot')
    const counted = await activity()
    assert.deepEqual(counted.imported.vdis, { [replicaUuid]: { bytes: BLOCK, blocks: 1 } }, 'one 2 MiB block written, nothing else')
    assert.deepEqual({ bytes: counted.imported.bytes, blocks: counted.imported.blocks }, { bytes: BLOCK, blocks: 1 })
    assert.equal(counted.max.vdiImport, 1)
  })

  test('a dynamic VHD leaves its absent blocks and its absent sectors as they were', async () => {
    const live = diskOf(vmNamed(tiny.xapi, 'tiny-halted'))
    const target = await tiny.xapi.callAsync('VDI.clone', live.$ref, {})
    const before = await raw(target)
    assert.ok(before.subarray(0, MiB).some(byte => byte !== 0) && before.subarray(15 * MiB).some(byte => byte !== 0), 'the fixture has content to keep')
    // One block (index 2) of 0xAB whose sector bitmap says only its first half is present.
    const { stream } = createVhdStream({ size: live.virtual_size, uuid: crypto.randomUUID(), blockIndexes: [2], tableOffset: 2048,
      creator: 'caml', timestamp: 0, blocks: (async function* () { yield { index: 2, data: Buffer.alloc(BLOCK, 0xab) } })() })
    const body = await readAll(stream)
    const bitmapAt = body.readUInt32BE(2048 + 2 * 4) * 512
    body.fill(0xff, bitmapAt, bitmapAt + 256).fill(0, bitmapAt + 256, bitmapAt + 512)
    await sim(tiny.env.pool.url, 'DELETE', 'activity')
    await tiny.xapi.putResource(body, '/import_raw_vdi/', { query: { vdi: target, format: 'vhd' } })
    const after = await raw(target)
    const expected = Buffer.from(before)
    expected.fill(0xab, 2 * BLOCK, 2 * BLOCK + MiB)
    assert.ok(after.equals(expected), 'only the present sectors of the present block changed')
    assert.deepEqual((await activity()).imported.blocks, 1)
    assert.deepEqual((await activity()).imported.bytes, MiB)
  })

  test('VDI.resize grows a clone of a smaller base; a delta of the grown disk lands past the old end', async () => {
    const live = diskOf(vmNamed(tiny.xapi, 'tiny-halted'))
    const replica = await tiny.xapi.callAsync('VDI.clone', live.$ref, {})
    const size = live.virtual_size + 2 * BLOCK
    await tiny.xapi.callAsync('VDI.resize', replica, size)
    assert.equal(await tiny.xapi.call('VDI.get_virtual_size', replica), size)
    const grown = Buffer.concat([await raw(live.$ref), Buffer.alloc(2 * BLOCK)])
    assert.ok((await raw(replica)).equals(grown), 'the old content, then zeros')
    await assert.rejects(tiny.xapi.callAsync('VDI.resize', replica, live.virtual_size), (error: any) => error.code === 'VDI_SIZE_TOO_SMALL')
    const lastBlock = size / BLOCK - 1
    const { stream } = createVhdStream({ size, uuid: crypto.randomUUID(), blockIndexes: [lastBlock], tableOffset: 2048, creator: 'caml', timestamp: 0,
      blocks: (async function* () { yield { index: lastBlock, data: Buffer.alloc(BLOCK, 0x11) } })() })
    await tiny.xapi.putResource(await readAll(stream), '/import_raw_vdi/', { query: { vdi: replica, format: 'vhd' } })
    grown.fill(0x11, lastBlock * BLOCK)
    assert.ok((await raw(replica)).equals(grown), 'the replica reads back as the grown disk')
  })
})

test('pair: an XVA exported from the lab pool is imported onto the dr pool\'s SR, disks equal byte for byte, networks mapped', async () => {
  const dir = await tempDir('lifeboat-lab-')
  const lab = await startLab({ dataDir: dir.path, fixture: 'pair' })
  const [source, target] = await Promise.all(lab.pools.map(pool => connect(pool)))
  try {
    const raw = async (xapi: typeof source, vdi: string) => readAll((await xapi.getResource('/export_raw_vdi/', { query: { vdi, format: 'raw' } })).body)
    const vm = vmNamed(source, 'tiny-halted')
    const response = await source.getResource('/export/', { query: { ref: vm.$ref, use_compression: 'zstd' } })
    const xva = await readAll(response.body)
    await response.task
    const [sr] = objectsOf(target, 'SR')
    await assert.rejects(source.putResource(xva, '/import/', { query: { sr_id: sr.$ref } }), 'an SR ref of the dr pool means nothing to the lab pool')
    const [imported] = await target.putResource(xva, '/import/', { query: { sr_id: sr.$ref } })
    const replica = await waitFor(() => target.getObject(imported, undefined)?.$VBDs?.some((vbd: any) => vbd.type === 'Disk') && target.getObject(imported),
      'the imported VM on the dr pool')
    assert.equal(replica.name_label, vm.name_label)
    assert.equal(diskOf(replica).$SR.$ref, sr.$ref)
    assert.ok((await raw(target, diskOf(replica).$ref)).equals(await raw(source, diskOf(vm).$ref)), 'the disk crossed pools intact')
    assert.deepEqual(replica.$VIFs.map((vif: any) => vif.$network.name_label), ['Pool-wide network associated with eth0'])
    assert.ok(objectsOf(target, 'network').some(network => network.$ref === replica.$VIFs[0].network), 'a network of the dr pool')
    assert.ok(Number(await target.call('SR.get_physical_utilisation', sr.$ref)) >= Number(diskOf(replica).physical_utilisation), 'the SR physical utilisation counts the replica disk')

    // import.ml finds a network by name, then by bridge, else makes one from the exported record.
    const [network] = objectsOf(target, 'network')
    await target.call('network.set_name_label', network.$ref, 'renamed on the dr pool')
    const [byBridge] = await target.putResource(xva, '/import/', { query: { sr_id: sr.$ref } })
    assert.deepEqual(await target.call('VM.get_VIFs', byBridge).then((vifs: string[]) => Promise.all(vifs.map(vif => target.call('VIF.get_network', vif)))),
      [network.$ref])
    const plain = await readAll((await source.getResource('/export/', { query: { ref: vm.$ref, use_compression: 'false' } })).body)
    // The same archive from a pool whose network the dr pool has neither by name nor by bridge: ova.xml (the first tar
    // entry, its size in octal at byte 124 of the header) edited in place, lengths kept.
    const ovaSize = parseInt(plain.subarray(124, 136).toString('latin1'), 8)
    const ova = plain.subarray(512, 512 + ovaSize)
    ova.write(ova.toString('latin1').replaceAll('xenbr0', 'xenbr7').replaceAll('associated with eth0', 'associated with eth7'), 'latin1')
    const [withNew] = await target.putResource(plain, '/import/', { query: { sr_id: sr.$ref } })
    const made = await target.call('network.get_record', await target.call('VIF.get_network', (await target.call('VM.get_VIFs', withNew))[0]))
    assert.deepEqual([made.name_label, made.bridge], ['Pool-wide network associated with eth7', 'xenbr7'])
    assert.match(made.other_config.import_task, /^OpaqueRef:/)
  } finally {
    await Promise.all([source, target].map(xapi => xapi.disconnect().catch(() => {})))
    await lab.stop()
    await dir.cleanup()
  }
})
