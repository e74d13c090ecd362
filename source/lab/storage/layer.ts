// One layer of a simulated VHD tree: its sparse data file, its 2 MiB allocation bitmap, its 64 KiB CBT
// dirty bitmap, and the sidecar that persists them between lab processes.
import { readFile, rename, writeFile, unlink } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { LifeboatError } from '../../util/errors.ts'
import { Bitmap } from './bitmap.ts'
import type { FilePool } from './file-pool.ts'

export const LAB_BLOCK_SIZE = 2 * 1024 * 1024
export const CBT_BLOCK_SIZE = 64 * 1024
const VHD_BLOCK_OVERHEAD = 512 // the sector bitmap in front of each VHD block
const VHD_FIXED_OVERHEAD = 2048 // footer copy + header + locator sector, and the trailing footer counted as XAPI does

export const blockCount = (size: number): number => Math.ceil(size / LAB_BLOCK_SIZE)
export const cbtBlockCount = (size: number): number => Math.ceil(size / CBT_BLOCK_SIZE)

/** Bytes a VHD file of `size` holding `blocks` allocated blocks occupies (xapi.md §6.4). */
export function vhdPhysicalSize(size: number, blocks: number): number {
  const bat = Math.ceil((4 * blockCount(size)) / 512) * 512
  return blocks * (LAB_BLOCK_SIZE + VHD_BLOCK_OVERHEAD) + VHD_FIXED_OVERHEAD + bat
}

const sidecarSchema = z.object({
  uuid: z.string().min(1),
  sr: z.string().min(1),
  size: z.number().int().nonnegative(),
  parent: z.string().optional(),
  readOnly: z.boolean(),
  // a disk in use: thick SRs charge it its full virtual size (a snapshot copy is deflated)
  inflated: z.boolean(),
  vhdUid: z.string(),
  createdAt: z.number(),
  cbtEnabled: z.boolean(),
  dataDestroyed: z.boolean(),
  cbtAncestors: z.array(z.string()).optional(),
  successor: z.string().optional(),
  staleHoles: z.boolean().optional(),
  absorbed: z.record(z.string(), z.string()).optional(),
  allocation: z.string(),
  dirty: z.string(),
})
export type LayerSidecar = z.infer<typeof sidecarSchema>

export class Layer {
  readonly uuid: string
  readonly sr: string
  readonly vhdUid: string
  readonly createdAt: number
  size: number
  parent: string | undefined
  readonly children = new Set<string>()
  readOnly: boolean
  inflated: boolean
  cbtEnabled: boolean
  dataDestroyed: boolean
  /** For a layer whose data was destroyed: the chain it had, so CBT can still tell what changed since it. */
  cbtAncestors: string[] | undefined
  /** After a snapshot: the new leaf that continues this disk. */
  successor: string | undefined
  /**
   * Set when a process died with this layer writable: its file may hold data of writes whose allocation bit was never
   * persisted, so a block allocated here later is zeroed first instead of trusting the sparse hole.
   */
  staleHoles: boolean
  readonly allocation: Bitmap
  readonly dirty: Bitmap
  /** CBT logs of the bases coalesced into this layer, by their uuid: snapshot points taken on them still resolve. */
  readonly absorbed: Map<string, Bitmap>
  /** Copy-on-write fills in progress, by block: readers and writers of the block wait for them. */
  readonly filling = new Map<number, Promise<void>>()
  /** The sidecar no longer matches memory. */
  changed = true
  private removed = false
  // sidecar writes and removal run one at a time, so a late flush never resurrects a removed layer
  private sidecarQueue: Promise<void> = Promise.resolve()

  constructor(private readonly folder: string, private readonly files: FilePool, sidecar: LayerSidecar) {
    this.uuid = sidecar.uuid
    this.sr = sidecar.sr
    this.vhdUid = sidecar.vhdUid
    this.createdAt = sidecar.createdAt
    this.size = sidecar.size
    this.parent = sidecar.parent
    this.readOnly = sidecar.readOnly
    this.inflated = sidecar.inflated
    this.cbtEnabled = sidecar.cbtEnabled
    this.dataDestroyed = sidecar.dataDestroyed
    this.cbtAncestors = sidecar.cbtAncestors
    this.successor = sidecar.successor
    this.staleHoles = sidecar.staleHoles ?? false
    this.allocation = Bitmap.fromBase64(blockCount(sidecar.size), sidecar.allocation)
    this.dirty = Bitmap.fromBase64(cbtBlockCount(sidecar.size), sidecar.dirty)
    this.absorbed = new Map(Object.entries(sidecar.absorbed ?? {}).map(([uuid, log]) => [uuid, Bitmap.fromBase64(cbtBlockCount(sidecar.size), log)]))
  }

  get dataPath(): string {
    return join(this.folder, `${this.uuid}.img`)
  }

  private get sidecarPath(): string {
    return join(this.folder, `${this.uuid}.json`)
  }

  static async create(folder: string, files: FilePool, fields: Omit<LayerSidecar, 'allocation' | 'dirty' | 'dataDestroyed' | 'readOnly'>): Promise<Layer> {
    const layer = new Layer(folder, files, { ...fields, readOnly: false, dataDestroyed: false, allocation: '', dirty: '' })
    await files.use(layer.dataPath, async () => undefined, { size: fields.size })
    await layer.save()
    return layer
  }

  static async load(folder: string, files: FilePool, sidecarFile: string): Promise<Layer> {
    const path = join(folder, sidecarFile)
    let parsed: unknown
    try {
      parsed = JSON.parse(await readFile(path, 'utf8'))
    } catch (error) {
      throw new LifeboatError('LAB_STORE_CORRUPT', `The lab disk record ${path} cannot be read; remove the lab data folder to start afresh.`, { cause: error })
    }
    const result = sidecarSchema.safeParse(parsed)
    if (!result.success) {
      throw new LifeboatError('LAB_STORE_CORRUPT', `The lab disk record ${path} is malformed (${result.error.issues[0]?.message}); remove the lab data folder to start afresh.`)
    }
    const layer = new Layer(folder, files, result.data)
    layer.changed = false
    return layer
  }

  withFile<T>(task: (file: FileHandle) => Promise<T>): Promise<T> {
    return this.files.use(this.dataPath, task)
  }

  /** Writes the sidecar atomically (tmp + rename) when it is out of date. */
  save(): Promise<void> {
    return this.exclusive(() => this.saveNow())
  }

  private async saveNow(): Promise<void> {
    if (!this.changed || this.removed) return
    this.changed = false
    const sidecar: LayerSidecar = {
      uuid: this.uuid, sr: this.sr, size: this.size, parent: this.parent, readOnly: this.readOnly, inflated: this.inflated,
      vhdUid: this.vhdUid, createdAt: this.createdAt, cbtEnabled: this.cbtEnabled, dataDestroyed: this.dataDestroyed,
      cbtAncestors: this.cbtAncestors, successor: this.successor, staleHoles: this.staleHoles || undefined,
      absorbed: this.absorbed.size === 0 ? undefined : Object.fromEntries([...this.absorbed].map(([uuid, log]) => [uuid, log.toBase64()])),
      allocation: this.allocation.toBase64(), dirty: this.dirty.toBase64(),
    }
    const temporary = `${this.sidecarPath}.tmp`
    try {
      await writeFile(temporary, JSON.stringify(sidecar))
      await rename(temporary, this.sidecarPath)
    } catch (error) {
      this.changed = true
      throw error
    }
  }

  /** Frees the data file; the sidecar stays when `keepSidecar` (a CBT-only layer). */
  remove(keepSidecar: boolean): Promise<void> {
    return this.exclusive(async () => {
      await this.files.close(this.dataPath)
      await unlink(this.dataPath).catch(ignoreMissing)
      if (!keepSidecar) {
        this.removed = true
        await unlink(this.sidecarPath).catch(ignoreMissing)
      }
    })
  }

  private exclusive(task: () => Promise<void>): Promise<void> {
    const result = this.sidecarQueue.then(task)
    this.sidecarQueue = result.catch(() => undefined)
    return result
  }
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
}
