// The lab's disk store: the simulated SRs' disks as VHD-like layer trees (sparse files + bitmaps), the
// streams between them and the wire formats, and the throughput model of a host's transfers.
export { LAB_BLOCK_SIZE, CBT_BLOCK_SIZE } from './layer.ts'
export { DiskStore } from './disk-store.ts'
export type { SrSpec, LayerInfo } from './disk-store.ts'
export { exportVhd, importVhd } from './vhd-streams.ts'
export { exportRaw, importRaw, xvaDisk, importXvaChunks } from './raw-streams.ts'
export type { OnWrite } from './raw-streams.ts'
export { RateLimiter } from './rate-limiter.ts'
export type { RateLimits } from './rate-limiter.ts'
export { startWorkload, planGuestWrites, fillPattern, patternBytes, randomSequence } from './workload.ts'
export type { WorkloadOptions, GuestWrite } from './workload.ts'
