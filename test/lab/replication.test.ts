// What replication to an SR needs from the lab, through the real client: VHD deltas applied onto clones of a
// replica's disks (only the blocks sent are written, and the lab counts them), VDI.resize of such a clone.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createVhdStream } from '../../source/formats/vhd/index.ts'
import { diskOf, readAll, sim, useTinyLab, vmNamed } from './helpers.ts'

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
    assert.ok((await raw(replica)).equals(grown))
  })
})
