// What the pool is doing at once, as an administrator's monitoring would see it: snapshots, exports and imports
// in flight, the most of each seen since the last reset, and what imports wrote into each VDI since then. Tests read
// it to check a client from the pool's side: that it keeps to its concurrency limits, that a delta wrote only its blocks.
import { LAB_BLOCK_SIZE } from './storage/index.ts'

export type ActivityKind = 'snapshot' | 'vdiExport' | 'vmExport' | 'vdiImport' | 'vmImport'
const KINDS: ActivityKind[] = ['snapshot', 'vdiExport', 'vmExport', 'vdiImport', 'vmImport']

export interface Written { bytes: number; blocks: number }

export class Activity {
  readonly current = Object.fromEntries(KINDS.map(kind => [kind, 0])) as Record<ActivityKind, number>
  readonly max = { ...this.current }
  /** Bytes and 2 MiB blocks (each counted once) written by imports, by VDI uuid. */
  private readonly imported = new Map<string, { bytes: number; blocks: Set<number> }>()

  async track<T>(kind: ActivityKind, operation: () => Promise<T>): Promise<T> {
    this.current[kind]++
    this.max[kind] = Math.max(this.max[kind], this.current[kind])
    try {
      return await operation()
    } finally {
      this.current[kind]--
    }
  }

  /** Counts `length` bytes written by an import at `offset` of the VDI. */
  recordImport(vdiUuid: string, offset: number, length: number): void {
    if (length <= 0) return
    let written = this.imported.get(vdiUuid)
    if (written === undefined) this.imported.set(vdiUuid, (written = { bytes: 0, blocks: new Set() }))
    written.bytes += length
    for (let block = Math.floor(offset / LAB_BLOCK_SIZE); block <= Math.floor((offset + length - 1) / LAB_BLOCK_SIZE); block++) written.blocks.add(block)
  }

  reset(): void {
    for (const kind of KINDS) this.max[kind] = this.current[kind]
    this.imported.clear()
  }

  snapshot(): { current: Record<ActivityKind, number>; max: Record<ActivityKind, number>; imported: Written & { vdis: Record<string, Written> } } {
    const vdis = Object.fromEntries([...this.imported].map(([uuid, { bytes, blocks }]) => [uuid, { bytes, blocks: blocks.size }]))
    const total = Object.values(vdis).reduce((sum, vdi) => ({ bytes: sum.bytes + vdi.bytes, blocks: sum.blocks + vdi.blocks }), { bytes: 0, blocks: 0 })
    return { current: { ...this.current }, max: { ...this.max }, imported: { ...total, vdis } }
  }
}
