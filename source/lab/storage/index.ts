// The lab's disk store: the simulated SRs' disks as VHD-like layer trees (sparse files + bitmaps), the
// streams between them and the wire formats, and the throughput model of a host's exports.
import type { Readable } from 'node:stream'
import { LifeboatError } from '../../util/errors.ts'

export const LAB_BLOCK_SIZE = 2 * 1024 * 1024
export const CBT_BLOCK_SIZE = 64 * 1024

export interface SrSpec { uuid: string; physicalSize: number; thick: boolean }
export interface LayerInfo {
  uuid: string
  sr: string
  size: number
  parent: string | undefined
  children: string[]
  ownAllocatedBlocks: number
  physicalUtilisation: number
}
/** Same shape as XvaDisk in source/formats/xva (replaced by the import once it is committed). */
export interface XvaDisk { ref: string; size: number; chunks: AsyncIterable<{ index: number; data: Buffer }> }

function notYet(): never {
  throw new LifeboatError('NOT_IMPLEMENTED', 'The lab disk store is being written; this operation is not available yet.')
}

export class DiskStore {
  static async open(_dir: string): Promise<DiskStore> { return notYet() }
  async addSr(_spec: SrSpec): Promise<void> { notYet() }
  srUsage(_sr: string): { physicalSize: number; physicalUtilisation: number } { return notYet() }
  async createLayer(_options: { sr: string; size: number; parent?: string }): Promise<string> { return notYet() }
  layer(_uuid: string): LayerInfo { return notYet() }
  chain(_uuid: string): string[] { return notYet() }
  async snapshot(_leaf: string): Promise<{ base: string; leaf: string; copy: string }> { return notYet() }
  async read(_leaf: string, _offset: number, _length: number): Promise<Buffer> { return notYet() }
  async write(_leaf: string, _offset: number, _data: Buffer): Promise<void> { notYet() }
  async readBlock(_leaf: string, _index: number): Promise<Buffer> { return notYet() }
  allocatedBlocks(_leaf: string): number[] { return notYet() }
  deltaBlocks(_leaf: string, _base: string): number[] { return notYet() }
  async resize(_leaf: string, _size: number): Promise<void> { notYet() }
  async destroyLayer(_uuid: string): Promise<void> { notYet() }
  enableCbt(_leaf: string): void { notYet() }
  changedBlocks(_from: string, _to: string): Buffer { return notYet() }
  async dataDestroy(_uuid: string): Promise<void> { notYet() }
  async flush(): Promise<void> { notYet() }
  async close(): Promise<void> { notYet() }
}

export function exportVhd(_store: DiskStore, _leaf: string, _options: { base?: string; uuid?: string }): { length: number; stream: Readable } { return notYet() }
export function exportRaw(_store: DiskStore, _leaf: string): Readable { return notYet() }
export async function importVhd(_store: DiskStore, _leaf: string, _source: AsyncIterable<Buffer>): Promise<{ bytesWritten: number }> { return notYet() }
export async function importRaw(_store: DiskStore, _leaf: string, _source: AsyncIterable<Buffer>): Promise<{ bytesWritten: number }> { return notYet() }
export function xvaDisk(_store: DiskStore, _leaf: string, _ref: string): XvaDisk { return notYet() }
export async function importXvaChunks(_store: DiskStore, _leaf: string, _chunks: AsyncIterable<{ offset: number; data: Buffer }>): Promise<{ bytesWritten: number }> { return notYet() }

export class RateLimiter {
  constructor(_options: { perStreamMiBs?: number; hostMiBs?: number } = {}) {}
  setLimits(_options: { perStreamMiBs?: number; hostMiBs?: number }): void { notYet() }
  throttle(_source: Readable): Readable { return notYet() }
  get activeStreams(): number { return 0 }
}

export interface WorkloadOptions { dirtyBlocksPerMin: number; locality: number; seed: number }
export function startWorkload(_store: DiskStore, _leaf: string, _options: WorkloadOptions): () => Promise<void> { return notYet() }
export async function fillPattern(_store: DiskStore, _leaf: string, _options: { offset: number; length: number; seed: number }): Promise<void> { notYet() }
