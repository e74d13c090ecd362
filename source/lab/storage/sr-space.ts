// The lab's SRs and their space as SM accounts it (xapi.md §6.4): what each layer costs on a file or a thick
// SR, the running total, and SR_BACKEND_FAILURE_44 when an operation would not fit.
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { LifeboatError } from '../../util/errors.ts'
import { blockCount, vhdPhysicalSize } from './layer.ts'
import type { Layer } from './layer.ts'

const srSpecSchema = z.object({ uuid: z.string().min(1), physicalSize: z.number().nonnegative(), thick: z.boolean() })
/** thick: lvm-like, active leaves are charged their full virtual size */
export type SrSpec = z.infer<typeof srSpecSchema>
const SR_FILE = 'srs.json'

export class SrSpace {
  private readonly specs = new Map<string, SrSpec>()
  private readonly used = new Map<string, number>()

  private constructor(private readonly dir: string) {}

  static async load(dir: string): Promise<SrSpace> {
    const space = new SrSpace(dir)
    let specs: unknown = []
    try {
      specs = JSON.parse(await readFile(join(dir, SR_FILE), 'utf8'))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new LifeboatError('LAB_STORE_CORRUPT', `The lab SR list in ${dir} cannot be read; remove the lab data folder to start afresh.`, { cause: error })
      }
    }
    const parsed = z.array(srSpecSchema).safeParse(specs)
    if (!parsed.success) throw new LifeboatError('LAB_STORE_CORRUPT', `The lab SR list in ${dir} is malformed; remove the lab data folder to start afresh.`)
    for (const spec of parsed.data) space.specs.set(spec.uuid, spec)
    return space
  }

  get uuids(): string[] {
    return [...this.specs.keys()]
  }

  /** Adds an SR, or changes its size and kind when it exists; persisted at once. */
  async add(spec: SrSpec): Promise<SrSpec> {
    const parsed = srSpecSchema.safeParse(spec)
    if (!parsed.success) throw new LifeboatError('LAB_BAD_SR', `An SR needs a uuid, a physical size and whether it is thick (${parsed.error.issues[0]?.message}).`)
    this.specs.set(parsed.data.uuid, parsed.data)
    const temporary = join(this.dir, `${SR_FILE}.tmp`)
    await writeFile(temporary, JSON.stringify([...this.specs.values()]))
    await rename(temporary, join(this.dir, SR_FILE))
    return parsed.data
  }

  get(uuid: string): SrSpec {
    const spec = this.specs.get(uuid)
    if (spec === undefined) throw new LifeboatError('LAB_SR_UNKNOWN', `The lab has no SR ${uuid}.`)
    return spec
  }

  usage(uuid: string): { physicalSize: number; physicalUtilisation: number } {
    return { physicalSize: this.get(uuid).physicalSize, physicalUtilisation: this.used.get(uuid) ?? 0 }
  }

  /** What a layer occupies: its VHD file, or its full virtual size when it is a disk in use on a thick SR. */
  charge(layer: Layer): number {
    if (layer.dataDestroyed) return 0
    return vhdPhysicalSize(layer.size, this.chargesFull(layer) ? blockCount(layer.size) : layer.allocation.count())
  }

  /** Whether new blocks of the layer are already paid for. */
  chargesFull(layer: Layer): boolean {
    return this.get(layer.sr).thick && layer.inflated
  }

  /** Sets the SR's total from its layers (after a change of the tree). */
  recompute(sr: string, layers: Iterable<Layer>): void {
    let total = 0
    for (const layer of layers) if (layer.sr === sr) total += this.charge(layer)
    this.used.set(sr, total)
  }

  /** Counts `bytes` more on the SR, or fails as SM does when they do not fit. */
  reserve(sr: string, bytes: number): void {
    const spec = this.get(sr)
    const used = this.used.get(sr) ?? 0
    if (used + bytes > spec.physicalSize) {
      throw new LifeboatError('SR_BACKEND_FAILURE_44', `SR ${sr} is full: ${bytes} more bytes do not fit (${used} of ${spec.physicalSize} used).`, {
        data: { params: ['', 'There is insufficient space', ''] },
      })
    }
    this.used.set(sr, used + bytes)
  }
}
