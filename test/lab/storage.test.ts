// The lab's disk store: layer trees, snapshots, deltas, persistence, space accounting, CBT and garbage collection.
import assert from 'node:assert/strict'
import { open, writeFile } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { CBT_BLOCK_SIZE, DiskStore, LAB_BLOCK_SIZE, fillPattern, patternBytes } from '../../source/lab/storage/index.ts'
import { isLifeboatError } from '../../source/util/errors.ts'
import { tempDir } from '../helpers/tools.ts'

const MiB = 1024 * 1024
const SR = 'sr-file'
const THICK = 'sr-lvm'

let folder: { path: string; cleanup: () => Promise<void> }
let count = 0
before(async () => (folder = await tempDir('lifeboat-lab-storage-')))
after(async () => folder.cleanup())

async function freshStore(physicalSize = 1024 * MiB): Promise<{ store: DiskStore; dir: string }> {
  const dir = `${folder.path}/store-${count++}`
  const store = await DiskStore.open(dir)
  await store.addSr({ uuid: SR, physicalSize, thick: false })
  await store.addSr({ uuid: THICK, physicalSize, thick: true })
  return { store, dir }
}

const filled = (length: number, byte: number): Buffer => Buffer.alloc(length, byte)

describe('DiskStore', () => {
  it('reads zeros from a new disk and its own writes back, across block boundaries', async () => {
    const { store } = await freshStore()
    const disk = await store.createLayer({ sr: SR, size: 16 * MiB })
    assert.deepEqual(await store.read(disk, 0, 4096), Buffer.alloc(4096))
    const data = patternBytes(7, 2 * MiB - 1000, 5000)
    await store.write(disk, 2 * MiB - 1000, data)
    assert.deepEqual(await store.read(disk, 2 * MiB - 1000, 5000), data)
    assert.deepEqual(store.allocatedBlocks(disk), [0, 1])
    await assert.rejects(store.write(disk, 16 * MiB - 10, Buffer.alloc(11)), (e: unknown) => isLifeboatError(e, 'LAB_OUT_OF_RANGE'))
    await store.close()
  })

  it('snapshots without copying and gives exactly the blocks written since as the delta', async () => {
    const { store } = await freshStore()
    const disk = await store.createLayer({ sr: SR, size: 32 * MiB })
    await fillPattern(store, disk, { offset: 0, length: 32 * MiB, seed: 1 })
    const before = await store.read(disk, 0, 32 * MiB)
    const first = await store.snapshot(disk)
    assert.equal(first.base, disk)
    assert.deepEqual(store.chain(first.leaf), [first.leaf, disk])
    assert.deepEqual(store.chain(first.copy), [first.copy, disk])
    assert.equal(store.layer(first.leaf).ownAllocatedBlocks, 0)
    assert.equal(store.layer(first.copy).ownAllocatedBlocks, 0)
    await assert.rejects(store.write(disk, 0, Buffer.alloc(1)), (e: unknown) => isLifeboatError(e, 'LAB_LAYER_READ_ONLY'))

    // a partial write of a block held by the base keeps the rest of the block (copy-on-write)
    await store.write(first.leaf, 5 * MiB + 100, filled(300, 0xee))
    await store.write(first.leaf, 20 * MiB, filled(3 * MiB, 0x11))
    assert.deepEqual(store.deltaBlocks(first.leaf, first.copy), [2, 10, 11])
    assert.deepEqual(store.deltaBlocks(first.copy, first.leaf), [2, 10, 11])
    const now = await store.read(first.leaf, 0, 32 * MiB)
    const expected = Buffer.from(before)
    expected.fill(0xee, 5 * MiB + 100, 5 * MiB + 400)
    expected.fill(0x11, 20 * MiB, 23 * MiB)
    assert.ok(now.equals(expected), 'the disk reads back as the expected bytes')
    assert.ok((await store.read(first.copy, 0, 32 * MiB)).equals(before), 'the snapshot still sees the old data')

    // a second snapshot: the delta between the two snapshots is what was written between them
    const second = await store.snapshot(first.leaf)
    await store.write(second.leaf, 30 * MiB, filled(10, 0x22))
    assert.deepEqual(store.deltaBlocks(second.copy, first.copy), [2, 10, 11])
    assert.deepEqual(store.deltaBlocks(second.leaf, second.copy), [15])
    assert.deepEqual(store.deltaBlocks(second.leaf, first.copy), [2, 10, 11, 15])
    assert.equal(store.currentLeaf(disk), second.leaf)
    await store.close()
  })

  it('keeps the same bytes and allocation after close and reopen', async () => {
    const { store, dir } = await freshStore()
    const disk = await store.createLayer({ sr: SR, size: 16 * MiB })
    await fillPattern(store, disk, { offset: MiB, length: 6 * MiB, seed: 3 })
    const { leaf, copy } = await store.snapshot(disk)
    await store.write(leaf, 9 * MiB, filled(4096, 0x5a))
    store.enableCbt(leaf)
    const bytes = await store.read(leaf, 0, 16 * MiB)
    bytes.fill(0x6b, 13 * MiB, 13 * MiB + 4096)
    const late = store.write(leaf, 13 * MiB, filled(4096, 0x6b)) // still in flight when close() is called
    await store.close()
    await late
    const allocation = [...store.allocatedBlocks(leaf)]
    assert.ok(allocation.includes(6), 'the write still in flight at close() is kept (block 6 allocated)')
    const usage = store.srUsage(SR)

    const reopened = await DiskStore.open(dir)
    assert.ok((await reopened.read(leaf, 0, 16 * MiB)).equals(bytes), 'the reopened store reads the leaf back as the bytes written')
    assert.deepEqual(reopened.allocatedBlocks(leaf), allocation)
    assert.deepEqual(reopened.chain(copy), [copy, disk])
    assert.deepEqual(reopened.layer(disk).children.sort(), [leaf, copy].sort())
    assert.deepEqual(reopened.srUsage(SR), usage)
    assert.equal(reopened.layer(leaf).cbtEnabled, true)
    reopened.enableCbt(copy)
    const expectedCbt = Buffer.alloc(32)
    expectedCbt[144 >> 3] = 0x80 // 9 MiB
    expectedCbt[208 >> 3] = 0x80 // 13 MiB, the write that was in flight
    assert.deepEqual(reopened.changedBlocks(copy, leaf), expectedCbt)
    await reopened.close()
  })

  it('charges file SRs by allocation, thick SRs by virtual size, and fails with SR_BACKEND_FAILURE_44 when full', async () => {
    const bat = 512 // 16 MiB → 8 entries → one sector
    const empty = 2048 + bat
    const perBlock = 2 * MiB + 512
    const { store } = await freshStore(8 * MiB)
    const disk = await store.createLayer({ sr: SR, size: 16 * MiB })
    assert.equal(store.srUsage(SR).physicalUtilisation, empty)
    await store.write(disk, 0, filled(10, 1))
    await store.write(disk, 4 * MiB, filled(10, 1))
    assert.equal(store.layer(disk).physicalUtilisation, 2 * perBlock + empty)
    assert.equal(store.srUsage(SR).physicalUtilisation, 2 * perBlock + empty)
    await store.write(disk, 6 * MiB, filled(10, 1)) // 3 blocks + overhead still fit in 8 MiB
    const full = (e: unknown) =>
      isLifeboatError(e, 'SR_BACKEND_FAILURE_44') && JSON.stringify(e.data) === JSON.stringify({ params: ['', 'There is insufficient space', ''] })
    await assert.rejects(store.write(disk, 8 * MiB, filled(10, 1)), full)
    assert.deepEqual(store.allocatedBlocks(disk), [0, 2, 3], 'the refused write allocated nothing')
    await assert.rejects(store.createLayer({ sr: THICK, size: 16 * MiB }), full, 'a thick SR charges the full size up front')

    const { store: big } = await freshStore(100 * MiB)
    const thick = await big.createLayer({ sr: THICK, size: 16 * MiB })
    assert.equal(big.srUsage(THICK).physicalUtilisation, 8 * perBlock + empty)
    await big.write(thick, 0, filled(10, 1))
    assert.equal(big.srUsage(THICK).physicalUtilisation, 8 * perBlock + empty, 'writes cost nothing more on a thick SR')
    const { leaf, copy } = await big.snapshot(thick)
    // the base deflates to its one block, the new leaf is inflated, the snapshot copy is not
    assert.equal(big.srUsage(THICK).physicalUtilisation, perBlock + empty + 8 * perBlock + empty + empty)
    assert.equal(big.layer(copy).physicalUtilisation, empty)
    assert.equal(big.layer(leaf).physicalUtilisation, 8 * perBlock + empty)
    const clone = await big.snapshot(copy, { clone: true })
    assert.equal(big.layer(clone.copy).physicalUtilisation, 8 * perBlock + empty, 'a clone is a disk in use: inflated')
    await store.close()
    await big.close()
  })

  it('copies the parent view once when concurrent partial writes first touch a block', async () => {
    const { store } = await freshStore()
    const disk = await store.createLayer({ sr: SR, size: 4 * MiB })
    await store.write(disk, 0, filled(2 * MiB, 1))
    const { leaf } = await store.snapshot(disk)
    await Promise.all([store.write(leaf, 4096, filled(4096, 2)), store.write(leaf, MiB, filled(4096, 3)), store.read(leaf, 0, 2 * MiB)])
    const expected = filled(2 * MiB, 1)
    expected.fill(2, 4096, 8192)
    expected.fill(3, MiB, MiB + 4096)
    assert.ok((await store.read(leaf, 0, 2 * MiB)).equals(expected), 'the leaf reads back as the expected disk')
    await store.close()
  })

  it('after a process died, never shows data whose allocation was not persisted', async () => {
    const { store, dir } = await freshStore()
    const disk = await store.createLayer({ sr: SR, size: 8 * MiB })
    await store.write(disk, 0, filled(4096, 1))
    await store.close()
    // what a kill leaves: data in the file of a block whose bit never reached the sidecar, and the open marker
    const file = await open(`${dir}/${SR}/${disk}.img`, 'r+')
    await file.write(filled(MiB, 0xdd), 0, MiB, 4 * MiB)
    await file.close()
    await writeFile(`${dir}/open`, '1\n')

    const reopened = await DiskStore.open(dir)
    assert.deepEqual(await reopened.read(disk, 4 * MiB, 16), Buffer.alloc(16), 'an unallocated block reads as zeros')
    await reopened.write(disk, 4 * MiB + 100, filled(10, 2))
    const expected = Buffer.alloc(2 * MiB)
    expected.fill(2, 100, 110)
    assert.ok((await reopened.read(disk, 4 * MiB, 2 * MiB)).equals(expected), 'the stale bytes around a new write are gone')
    await reopened.close()
  })

  it('refuses a damaged sidecar with a coded error', async () => {
    const { store, dir } = await freshStore()
    const disk = await store.createLayer({ sr: SR, size: MiB })
    await store.close()
    await writeFile(`${dir}/${SR}/${disk}.json`, '{"uuid": 3}')
    await assert.rejects(DiskStore.open(dir), (e: unknown) => isLifeboatError(e, 'LAB_STORE_CORRUPT'))
  })

  it('garbage-collects bases left without children and keeps a base with one child', async () => {
    const { store } = await freshStore()
    const disk = await store.createLayer({ sr: SR, size: 8 * MiB })
    await store.write(disk, 0, filled(MiB, 9))
    const first = await store.snapshot(disk)
    const second = await store.snapshot(first.leaf)
    assert.deepEqual(await store.destroyLayer(first.copy), [first.copy])
    assert.ok(store.has(disk), 'a base with a single child is kept')
    assert.deepEqual(store.chain(second.leaf), [second.leaf, first.leaf, disk])
    await assert.rejects(store.destroyLayer(disk), (e: unknown) => isLifeboatError(e, 'LAB_LAYER_HAS_CHILDREN'))
    assert.deepEqual(await store.destroyLayer(second.copy), [second.copy])
    const removed = await store.destroyLayer(second.leaf)
    assert.deepEqual(removed, [second.leaf, first.leaf, disk])
    assert.deepEqual(store.layersOf(SR), [])
    assert.equal(store.srUsage(SR).physicalUtilisation, 0)
    await store.close()
  })

  it('coalesces a base into its only child with the same reads, deltas and CBT answers, writes going on', async () => {
    const { store, dir } = await freshStore()
    const disk = await store.createLayer({ sr: SR, size: 16 * MiB })
    store.enableCbt(disk)
    await fillPattern(store, disk, { offset: 0, length: 16 * MiB, seed: 21 })
    const first = await store.snapshot(disk)
    await store.write(first.leaf, 3 * MiB, filled(100, 1))
    const second = await store.snapshot(first.leaf)
    await store.write(second.leaf, 9 * MiB, filled(100, 2))
    assert.deepEqual(store.coalescable(SR), [])
    await store.dataDestroy(first.copy) // XO's CBT purge: the base of the first snapshot now has one child
    assert.deepEqual(store.coalescable(SR), [disk])
    const cbtBefore = store.changedBlocks(first.copy, second.leaf)
    const deltaBefore = store.deltaBlocks(second.leaf, second.copy)
    const snapshotBefore = await store.read(second.copy, 0, 16 * MiB)

    // guest writes during a paced coalesce land and stay
    const coalescing = store.coalesce(disk, { rateMiBs: 200 })
    const written = [store.write(second.leaf, 5 * MiB + 7, filled(10, 3)), store.write(second.leaf, 14 * MiB, filled(MiB, 4))]
    assert.deepEqual(await coalescing, { removed: disk, into: first.leaf })
    await Promise.all(written)
    assert.equal(store.has(disk), false)
    assert.deepEqual(store.chain(second.leaf), [second.leaf, first.leaf])
    assert.deepEqual(store.coalescable(SR), [])
    assert.ok((await store.read(second.copy, 0, 16 * MiB)).equals(snapshotBefore), 'the copy reads back as the snapshot taken before')
    const expected = Buffer.from(snapshotBefore)
    expected.fill(2, 9 * MiB, 9 * MiB + 100)
    expected.fill(3, 5 * MiB + 7, 5 * MiB + 17)
    expected.fill(4, 14 * MiB, 15 * MiB)
    assert.ok((await store.read(second.leaf, 0, 16 * MiB)).equals(expected), 'the second leaf reads back as the expected disk')
    assert.deepEqual(store.deltaBlocks(second.leaf, second.copy), [...new Set([...deltaBefore, 2, 7])].sort((a, b) => a - b))
    const cbtAfter = store.changedBlocks(first.copy, second.leaf)
    const cbtExpected = Buffer.from(cbtBefore)
    for (const block of [80, ...Array.from({ length: 16 }, (_, k) => 224 + k)]) cbtExpected[block >> 3]! |= 0x80 >> (block & 7)
    assert.deepEqual(cbtAfter, cbtExpected, 'the writes before the coalesce are reported as before, plus the new ones')
    await assert.rejects(store.coalesce(first.leaf), (e: unknown) => isLifeboatError(e, 'LAB_NOT_COALESCABLE'))
    await store.close()

    const reopened = await DiskStore.open(dir)
    assert.deepEqual(reopened.changedBlocks(first.copy, second.leaf), cbtAfter)
    assert.ok((await reopened.read(second.leaf, 0, 16 * MiB)).equals(expected), 'the reopened store reads the second leaf back as the expected disk')
    await reopened.close()
  })

  it('keeps the CBT log of a coalesced base for older snapshot points', async () => {
    const { store } = await freshStore()
    const disk = await store.createLayer({ sr: SR, size: 4 * MiB })
    store.enableCbt(disk)
    const first = await store.snapshot(disk)
    await store.write(first.leaf, 0, filled(10, 1)) // CBT block 0, between the first and second points
    const second = await store.snapshot(first.leaf)
    await store.write(second.leaf, 2 * MiB, filled(10, 2)) // CBT block 32, after the second point
    await store.dataDestroy(second.copy)
    await store.coalesce(first.leaf) // its writes now live in the disk's leaf
    const changes = store.changedBlocks(first.copy, second.leaf)
    assert.equal(changes[0], 0x80, 'the writes of the coalesced base are still reported')
    assert.equal(changes[4], 0x80)
    assert.deepEqual(store.changedBlocks(second.copy, second.leaf), Buffer.from([0, 0, 0, 0, 0x80, 0, 0, 0]))
    await store.close()
  })

  it('tracks changed 64 KiB blocks between snapshot points, MSB-first, through data_destroy', async () => {
    const { store } = await freshStore()
    const size = 4 * MiB + 3 * CBT_BLOCK_SIZE // 67 CBT blocks → 9 bytes
    const disk = await store.createLayer({ sr: SR, size })
    store.enableCbt(disk)
    await store.write(disk, 0, filled(10, 1))
    const first = await store.snapshot(disk)
    await store.write(first.leaf, CBT_BLOCK_SIZE * 9 + 5, filled(CBT_BLOCK_SIZE, 2)) // blocks 9 and 10
    await store.write(first.leaf, size - 1, filled(1, 3)) // block 66
    const second = await store.snapshot(first.leaf)
    await store.write(second.leaf, 0, filled(1, 4)) // block 0

    const between = store.changedBlocks(first.copy, second.copy)
    assert.equal(between.length, 9)
    const expected = Buffer.alloc(9)
    expected[1] = 0b0110_0000 // bits 9, 10
    expected[8] = 0b0010_0000 // bit 66
    assert.deepEqual(between, expected)
    const untilNow = store.changedBlocks(first.copy, second.leaf)
    expected[0] = 0b1000_0000
    assert.deepEqual(untilNow, expected)

    await store.dataDestroy(first.copy)
    assert.equal(store.layer(first.copy).dataDestroyed, true)
    assert.equal(store.layer(first.copy).physicalUtilisation, 0)
    await assert.rejects(store.read(first.copy, 0, 1), (e: unknown) => isLifeboatError(e, 'LAB_LAYER_NO_DATA'))
    assert.deepEqual(store.changedBlocks(first.copy, second.leaf), expected, 'the CBT log outlives the data')

    const plain = await store.createLayer({ sr: SR, size: MiB })
    assert.throws(() => store.changedBlocks(plain, plain), (e: unknown) => isLifeboatError(e, 'LAB_NO_CBT'))
    await store.close()
  })

  it('grows a disk and refuses to shrink it', async () => {
    const { store } = await freshStore()
    const disk = await store.createLayer({ sr: SR, size: 3 * MiB })
    await store.write(disk, 3 * MiB - 4, filled(4, 7))
    const { leaf } = await store.snapshot(disk)
    await store.resize(leaf, 9 * MiB)
    assert.equal(store.layer(leaf).size, 9 * MiB)
    assert.deepEqual(await store.read(leaf, 3 * MiB - 4, 8), Buffer.from([7, 7, 7, 7, 0, 0, 0, 0]))
    await store.write(leaf, 9 * MiB - 1, filled(1, 8))
    assert.deepEqual(store.allocatedBlocks(leaf), [1, 4])
    await assert.rejects(store.resize(leaf, MiB), (e: unknown) => isLifeboatError(e, 'LAB_RESIZE_SHRINK'))
    await store.close()
  })

  it('works with more layers than open files allowed', async () => {
    const store = await DiskStore.open(`${folder.path}/store-${count++}`, { openFiles: 2 })
    await store.addSr({ uuid: SR, physicalSize: 1024 * MiB, thick: false })
    const disk = await store.createLayer({ sr: SR, size: 8 * MiB })
    const copies: string[] = []
    let leaf = disk
    for (let round = 0; round < 6; round++) {
      await store.write(leaf, round * MiB + 1000, filled(100, round + 1))
      const taken = await store.snapshot(leaf)
      copies.push(taken.copy)
      leaf = taken.leaf
    }
    const reads = copies.map(async (copy, round) => {
      const content = await store.read(copy, 0, 8 * MiB)
      for (let earlier = 0; earlier <= round; earlier++) assert.deepEqual(content.subarray(earlier * MiB + 1000, earlier * MiB + 1100), filled(100, earlier + 1))
      assert.ok(content.subarray((round + 1) * MiB, 8 * MiB).equals(Buffer.alloc(8 * MiB - (round + 1) * MiB)), 'the copy reads zeros after the blocks written so far')
    })
    await Promise.all(reads)
    await store.close()
  })

  it('fills recognisable patterns with holes left unallocated', async () => {
    const { store } = await freshStore()
    const disk = await store.createLayer({ sr: SR, size: 64 * MiB })
    await fillPattern(store, disk, { offset: 0, length: 64 * MiB, seed: 42 })
    const content = await store.read(disk, 0, 64 * MiB)
    assert.ok(content.equals(patternBytes(42, 0, 64 * MiB)), 'the disk reads back as the seed 42 pattern')
    assert.ok(patternBytes(42, 1000, 3000).equals(content.subarray(1000, 4000)), 'unaligned ranges give the same bytes')
    const firstData = content.findIndex(byte => byte !== 0)
    assert.match(content.subarray(firstData, firstData + 40).toString('latin1'), new RegExp(`^LIFEBOAT seed=42 sector=${firstData / 512}\\n`))
    let holes = 0
    for (let chunk = 0; chunk < 1024; chunk++) if (content.subarray(chunk * 65536, (chunk + 1) * 65536).equals(Buffer.alloc(65536))) holes++
    assert.ok(holes > 50 && holes < 250, `about one chunk in eight is a hole (${holes} of 1024)`)
    assert.ok(store.allocatedBlocks(disk).length <= 32, 'the disk holes take no blocks (32 at most allocated)')
    assert.equal(LAB_BLOCK_SIZE, 2 * MiB)
    await store.close()
  })
})
