// What a source hands every target for one VM backup: the VM's records in Xen Orchestra's metadata shape,
// and its data — one XVA stream (full) or one VHD block stream per disk (delta) — read once, in lock-step.
import type { VhdFooter, VhdHeader } from '../../formats/vhd/index.ts'
import type { TargetProgress } from '../../xapi/index.ts'

/** A XAPI record as metadata keeps it: its fields, without the client's `$` helpers. */
export type PlainRecord = Record<string, unknown> & { uuid: string }

export interface DiskBlock {
  index: number
  data: Buffer
}

/** The records every target writes or imports (XO's metadata fields, keyed as XO keys them). */
export interface VmRecords {
  /** The live VM as it was at the snapshot. */
  vm: PlainRecord
  vmSnapshot: PlainRecord
  /** Delta only, keyed by the snapshot VDI's OpaqueRef; each carries $snapshot_of$uuid, $SR$uuid and, for a delta disk, other_config['xo:base_delta_vdi']. */
  vdis: Record<string, PlainRecord>
  vbds: Record<string, Record<string, unknown>>
  /** Each carries $network$uuid, $network$name_label and $network$VLAN. */
  vifs: Record<string, Record<string, unknown>>
  vtpms: unknown[]
}

/** One disk of a delta export, as every target receives it (its blocks come through a fork). */
export interface ExportedDisk {
  /** The snapshot VDI's ref: the key of `vdis`, and of the VBDs' VDI field. */
  ref: string
  /** The remote chain folder's name: the live VDI's uuid (the suspend VDI's own uuid for the memory, XO's rule). */
  liveVdiUuid: string
  /** The exported snapshot VDI's uuid: the VHD footer uuid (XO's rule, base lookup depends on it). */
  snapshotVdiUuid: string
  /** The base snapshot VDI's uuid when this disk is a delta; undefined: the whole disk. */
  baseUuid: string | undefined
  footer: VhdFooter
  header: VhdHeader
  /** The blocks the stream holds, in order (for a delta: the changed ones). */
  blockIndexes: number[]
}

interface VmExportCommon {
  /** The snapshot's time (ms): the backup's date on every target. */
  timestamp: number
  jobId: string
  scheduleId: string
  records: VmRecords
}

export interface FullVmExport extends VmExportCommon {
  mode: 'full'
}

export interface DeltaVmExport extends VmExportCommon {
  mode: 'delta'
  /** True when at least one disk has no base (the backup starts a new chain for it). */
  isFull: boolean
  disks: ExportedDisk[]
}

export type VmExport = FullVmExport | DeltaVmExport

/** One stream of a source (an XVA, or one disk's blocks), read by the fan-out and closed when every target is done with it. */
export interface SourceStream<T> {
  items: AsyncIterable<T>
  /** Where targets report their progress on this stream (the export slot's lease). */
  report: ProgressReporter
  /** Settles once the source confirms the stream was whole (XAPI's export task); rejects when it failed. */
  settled: Promise<unknown>
  close(): void
}

/** Bytes a target took, for the lanes view (the export slot's lease shows each target's progress). */
export type ProgressReporter = (target: string, progress: TargetProgress) => void
