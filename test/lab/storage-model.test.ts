// The lab disk store against a plain model (one buffer per disk) under random sequences of writes, snapshots,
// clones, destroys, coalesces, data_destroys and a reopen: every disk reads as the model says, deltas cover
// exactly the blocks written on either side, and CBT reports every 64 KiB block written since a snapshot point.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import fc from 'fast-check'
import { CBT_BLOCK_SIZE, DiskStore, LAB_BLOCK_SIZE } from '../../source/lab/storage/index.ts'
import { tempDir } from '../helpers/tools.ts'

const MiB = 1024 * 1024
const SIZE = 8 * MiB + 4096
const SR = 'sr'

type Step =
  | { kind: 'write'; disk: number; offset: number; length: number; byte: number }
  | { kind: 'snapshot'; disk: number; clone: boolean }
  | { kind: 'destroy'; disk: number }
  | { kind: 'dataDestroy'; disk: number }
  | { kind: 'coalesce'; pick: number }
  | { kind: 'reopen' }

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), disk: fc.nat(7), offset: fc.nat(SIZE - 1), length: fc.integer({ min: 1, max: 3 * MiB }), byte: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), disk: fc.nat(7), clone: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('destroy' as const), disk: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dataDestroy' as const), disk: fc.nat(7) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('coalesce' as const), pick: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
)

interface ModelDisk {
  leaf: string
  content: Buffer
  /** a snapshot copy: the disk it was taken from, and the 64 KiB (CBT) and 2 MiB blocks written on that disk since */
  origin?: { disk: ModelDisk; changed: Set<number>; blocks: Set<number> }
  /** 2 MiB blocks written on this disk since it was created */
  written: Set<number>
  cbtOnly: boolean
}

describe('DiskStore against a model', () => {
  let folder: { path: string; cleanup: () => Promise<void> }
  before(async () => (folder = await tempDir('lifeboat-lab-model-')))
  after(async () => folder.cleanup())

  it('reads, deltas and CBT match the model', async () => {
    let run = 0
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 30 }), async steps => {
        const dir = `${folder.path}/run-${run++}`
        let store = await DiskStore.open(dir, { openFiles: 8 })
        await store.addSr({ uuid: SR, physicalSize: 4096 * MiB, thick: false })
        const first = await store.createLayer({ sr: SR, size: SIZE })
        store.enableCbt(first)
        const disks: ModelDisk[] = [{ leaf: first, content: Buffer.alloc(SIZE), written: new Set(), cbtOnly: false }]
        const live = () => disks.filter(disk => !disk.cbtOnly)
        const choose = (index: number) => live()[index % live().length]

        for (const action of steps) {
          if (action.kind === 'write') {
            const disk = choose(action.disk)
            if (disk === undefined) continue
            const length = Math.min(action.length, SIZE - action.offset)
            await store.write(disk.leaf, action.offset, Buffer.alloc(length, action.byte))
            disk.content.fill(action.byte, action.offset, action.offset + length)
            for (let b = Math.floor(action.offset / LAB_BLOCK_SIZE); b <= Math.floor((action.offset + length - 1) / LAB_BLOCK_SIZE); b++) disk.written.add(b)
            for (const other of disks) {
              if (other.origin?.disk !== disk) continue
              for (let c = Math.floor(action.offset / CBT_BLOCK_SIZE); c <= Math.floor((action.offset + length - 1) / CBT_BLOCK_SIZE); c++) other.origin.changed.add(c)
              for (let b = Math.floor(action.offset / LAB_BLOCK_SIZE); b <= Math.floor((action.offset + length - 1) / LAB_BLOCK_SIZE); b++) other.origin.blocks.add(b)
            }
          } else if (action.kind === 'snapshot') {
            const disk = choose(action.disk)
            if (disk === undefined) continue
            const { leaf, copy } = await store.snapshot(disk.leaf, { clone: action.clone })
            disk.leaf = leaf
            disks.push({ leaf: copy, content: Buffer.from(disk.content), origin: { disk, changed: new Set(), blocks: new Set() }, written: new Set(), cbtOnly: false })
          } else if (action.kind === 'destroy' || action.kind === 'dataDestroy') {
            const disk = choose(action.disk)
            if (disk === undefined || live().length === 1) continue
            if (action.kind === 'destroy') {
              await store.destroyLayer(disk.leaf)
              disks.splice(disks.indexOf(disk), 1)
              for (const other of disks) if (other.origin?.disk === disk) delete other.origin
            } else {
              await store.dataDestroy(disk.leaf)
              disk.cbtOnly = true
            }
          } else if (action.kind === 'coalesce') {
            const candidates = store.coalescable(SR)
            if (candidates.length > 0) await store.coalesce(candidates[action.pick % candidates.length]!)
          } else {
            await store.close()
            store = await DiskStore.open(dir, { openFiles: 8 })
          }
        }

        for (const disk of live()) {
          assert.ok((await store.read(disk.leaf, 0, SIZE)).equals(disk.content), `disk ${disk.leaf} reads as the model`)
          const allocated = new Set(store.allocatedBlocks(disk.leaf))
          for (let b = 0; b * LAB_BLOCK_SIZE < SIZE; b++) {
            const nonZero = disk.content.subarray(b * LAB_BLOCK_SIZE, (b + 1) * LAB_BLOCK_SIZE).some(byte => byte !== 0)
            if (nonZero) assert.ok(allocated.has(b), `block ${b} with data is allocated`)
          }
        }
        for (const copy of disks) {
          const origin = copy.origin?.disk
          if (origin === undefined || origin.cbtOnly) continue
          // the copy and the disk it came from differ exactly by what was written on either side since the snapshot
          if (!copy.cbtOnly) {
            const expected = [...new Set([...copy.origin!.blocks, ...copy.written])].sort((a, b) => a - b)
            assert.deepEqual(store.deltaBlocks(origin.leaf, copy.leaf), expected)
          }
          const bitmap = store.changedBlocks(copy.leaf, origin.leaf)
          const expected = Buffer.alloc(Math.ceil(SIZE / CBT_BLOCK_SIZE / 8))
          for (const c of copy.origin!.changed) expected[c >> 3]! |= 0x80 >> (c & 7)
          assert.deepEqual(bitmap, expected, 'CBT reports exactly the 64 KiB blocks written since the snapshot point')
        }
        await store.close()
      }),
      { numRuns: 25 },
    )
  })
})
