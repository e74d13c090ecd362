// What every VHD reader gives (a file, a VhdDirectory): chains, synthetic reads and merges work on this alone.
import type { VhdFooter, VhdHeader } from './structures.ts'

export interface Vhd {
  /** The path it was opened by: an alias's own path for a VhdDirectory reached through one (parents are relative to it). */
  readonly path: string
  readonly footer: VhdFooter
  readonly header: VhdHeader
  /** Blocks of the disk's size (ceil(currentSize / blockSize)). */
  readonly blockCount: number
  isAllocated(index: number): boolean
  /** Allocated block indexes, ascending. */
  allocatedBlocks(): number[]
  /** A block with its sector bitmap, in buffers of its own (the caller may change them); an unallocated block reads as an empty bitmap and zeros. */
  readBlock(index: number): Promise<{ bitmap: Buffer; data: Buffer }>
  close(): Promise<void>
}
