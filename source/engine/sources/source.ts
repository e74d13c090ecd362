// Where a VM backup's data comes from: the XAPI source (a snapshot of a live VM, exported over HTTP) or a
// repository source (a restore point read back from a remote, for mirror backups). A run drives a
// source through these steps and feeds what it opens to every target, never knowing where it comes from.
import type { TargetStep } from '../targets/target.ts'
import type { DeltaVmExport, DiskBlock, FullVmExport, SourceStream } from './vm-export.ts'

/** What a source can send as deltas, before the targets say what they can chain onto. */
export interface BaseOffer {
  /** Live VDI uuid → the base snapshot VDI uuid a delta of that disk would be computed from. */
  bases: Map<string, string>
  /** Live VDI uuid → why that disk has no base here (it goes full). */
  fullReasons: Map<string, string>
  /** Why every disk goes full whatever the targets hold (forceFull, fullInterval reached). */
  forcedFull: string | undefined
  /**
   * What forced it. 'forceFull' starts a new chain: no target is asked what it holds (a distributed target
   * places it by free space). 'fullInterval' ends a chain: the targets are asked first, as XO does, so a
   * distributed target keeps the full on the chain's target.
   */
  forcedBy?: 'forceFull' | 'fullInterval'
  /** Live VDI uuid → how the log names the disk ("name (uuid)"). */
  labels: Map<string, string>
  /** True when an earlier backup exists at all: a disk going full is then worth a warning, not only an info. */
  continuesChain: boolean
  /**
   * True when the source holds only the deltas (a backup read back from a remote): a disk a target cannot chain
   * onto fails the VM (XO's "Missing vdi … which is a base for a delta") instead of going full.
   */
  deltasOnly?: boolean
}

export interface VmSource {
  /** The VM's uuid and name, for the `backup VM` task and the lanes. */
  readonly vmUuid: string
  /** Before the point in time: what earlier runs left is cleaned up, the VM is kept from migrating. */
  prepare(step: TargetStep): Promise<void>
  /** Delta only: the bases this source offers. */
  offerBases(step: TargetStep): Promise<BaseOffer>
  /** Takes the point in time (a snapshot). */
  capture(step: TargetStep): Promise<void>
  /** Opens the XVA of the point in time. */
  openFull(step: TargetStep): Promise<{ backup: FullVmExport; xva: SourceStream<Buffer> }>
  /** Opens one block stream per disk: a delta from the accepted base (live VDI uuid → base snapshot VDI uuid), else the whole disk. */
  openDelta(bases: ReadonlyMap<string, string>, step: TargetStep): Promise<{ backup: DeltaVmExport; disks: Map<string, SourceStream<DiskBlock>> }>
  /** After at least one target committed: the point in time is marked as exported (the next delta's base). */
  complete(backup: FullVmExport | DeltaVmExport): Promise<void>
  /** After the backup, failed or not: retention on the source (the job's snapshots). */
  afterBackup(step: TargetStep): Promise<void>
  /** After a failure: removes the point in time when nothing was exported from it. Never throws. */
  discard(step: TargetStep): Promise<void>
  /** Always, last: what prepare changed on the VM is put back. Never throws. */
  release(step: TargetStep): Promise<void>
}
