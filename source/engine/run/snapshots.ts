// The snapshots a job leaves on its VMs, read the way Xen Orchestra marks them (other_config
// xo:backup:*): which one is the base of the next delta, and which ones snapshot retention removes.
import { parseBackupDate } from '../../repository/index.ts'
import { destroyVmAndDisks, NULL_REF, type PoolConnection, type XapiRecord } from '../../xapi/index.ts'

export const KEY = {
  job: 'xo:backup:job',
  schedule: 'xo:backup:schedule',
  vm: 'xo:backup:vm',
  datetime: 'xo:backup:datetime',
  exported: 'xo:backup:exported',
  deltaChainLength: 'xo:backup:deltaChainLength',
  contentKey: 'xo:backup:contentKey',
  baseDeltaVdi: 'xo:base_delta_vdi',
  copyOf: 'xo:copy_of',
} as const

export interface JobSnapshot {
  record: XapiRecord
  scheduleId: string
  timestamp: number
  exported: boolean
  deltaChainLength: number
}

const otherConfig = (record: XapiRecord): Record<string, string> => (record.other_config as Record<string, string> | undefined) ?? {}

/**
 * The VM's snapshots made by this job (oldest first). A snapshot whose keys were copied from the VM
 * by hand (XO's keys on a manual snapshot) does not carry this VM's uuid and this job's id both, or
 * has no date: it is not ours.
 */
export function jobSnapshots(conn: PoolConnection, vm: XapiRecord, jobId: string): JobSnapshot[] {
  const snapshots: JobSnapshot[] = []
  for (const ref of vm.snapshots as string[]) {
    const record = conn.byRef(ref)
    if (record === undefined) continue
    const config = otherConfig(record)
    if (config[KEY.job] !== jobId || config[KEY.vm] !== vm.uuid || config[KEY.copyOf] !== undefined) continue
    const timestamp = parseBackupDate(config[KEY.datetime] ?? '')
    if (timestamp === undefined) continue
    snapshots.push({
      record,
      scheduleId: config[KEY.schedule] ?? '',
      timestamp,
      exported: config[KEY.exported] === 'true',
      deltaChainLength: Number(config[KEY.deltaChainLength] ?? 0) || 0,
    })
  }
  return snapshots.sort((a, b) => a.timestamp - b.timestamp)
}

/** A base for each disk of the VM: live VDI uuid → the base snapshot's VDI, and why a disk has none. */
export interface BaseSelection {
  snapshot: JobSnapshot | undefined
  /** Live VDI uuid → base snapshot VDI record. */
  bases: Map<string, XapiRecord>
  /** Live VDI uuid → why that disk goes full. */
  fullReasons: Map<string, string>
}

/**
 * XO's _selectBaseVm: the newest exported snapshot of the job is the base candidate; each live disk
 * whose snapshot in it still exists can be exported as a delta from it. Writers then remove the bases
 * they cannot chain onto, and fullInterval / forceFull drop them all.
 */
export function selectBase(conn: PoolConnection, vm: XapiRecord, liveDisks: XapiRecord[], jobId: string): BaseSelection {
  const exported = jobSnapshots(conn, vm, jobId).filter(s => s.exported)
  const snapshot = exported.at(-1)
  const bases = new Map<string, XapiRecord>()
  const fullReasons = new Map<string, string>()
  if (snapshot === undefined) {
    for (const disk of liveDisks) fullReasons.set(disk.uuid, 'no earlier exported snapshot of this job: first backup of the chain')
    return { snapshot, bases, fullReasons }
  }
  const baseVdis = new Map<string, XapiRecord>()
  for (const vbdRef of snapshot.record.VBDs as string[]) {
    const vbd = conn.byRef(vbdRef)
    if (vbd === undefined || vbd.type !== 'Disk' || vbd.VDI === NULL_REF) continue
    const vdi = conn.byRef(vbd.VDI as string)
    if (vdi !== undefined) baseVdis.set(vdi.snapshot_of as string, vdi)
  }
  for (const disk of liveDisks) {
    const base = baseVdis.get(disk.$ref)
    if (base === undefined) fullReasons.set(disk.uuid, `the base snapshot of this disk (from ${new Date(snapshot.timestamp).toISOString()}) no longer exists on the pool`)
    else bases.set(disk.uuid, base)
  }
  return { snapshot, bases, fullReasons }
}

/**
 * Snapshot retention on the source, per schedule (XO's _removeUnusedSnapshots): keep the newest
 * `keep` snapshots of this schedule; in delta mode never the newest exported one across schedules
 * (the next run's base). Returns the uuids of the snapshots destroyed.
 */
export async function removeOldSnapshots(conn: PoolConnection, vm: XapiRecord, options: { jobId: string; scheduleId: string; keep: number; mode: 'full' | 'delta'; signal?: AbortSignal }): Promise<string[]> {
  const all = jobSnapshots(conn, vm, options.jobId)
  const newestBase = options.mode === 'delta' ? all.filter(s => s.exported).at(-1) : undefined
  const ofSchedule = all.filter(s => s.scheduleId === options.scheduleId)
  const old = ofSchedule.slice(0, Math.max(0, ofSchedule.length - options.keep)).filter(s => s !== newestBase)
  const destroyed: string[] = []
  for (const snapshot of old) {
    await destroyVmAndDisks(conn, snapshot.record.$ref, { signal: options.signal })
    destroyed.push(snapshot.record.uuid as string)
  }
  return destroyed
}

/**
 * Snapshots of this job that a failed or interrupted run left unexported: never a base, only debris.
 * Matched by job, VM and the missing exported mark, never by name (another job's snapshot in the
 * making carries the same temporary name).
 */
export async function removeUnexportedSnapshots(conn: PoolConnection, vm: XapiRecord, jobId: string, signal?: AbortSignal): Promise<string[]> {
  const removed: string[] = []
  for (const snapshot of jobSnapshots(conn, vm, jobId).filter(s => !s.exported)) {
    await destroyVmAndDisks(conn, snapshot.record.$ref, { signal })
    removed.push(snapshot.record.uuid as string)
  }
  return removed
}
