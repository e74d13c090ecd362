// Replicas on an SR as Xen Orchestra marks them, so that XO and Lifeboat can take over each other's replicas
// (disaster recovery and continuous replication, and cr-seed): one VM per transfer, start blocked, and the
// other_config keys below. The completion key (xo:backup:sr) is set last: a replica without it is the debris
// of an interrupted transfer, which the next run of the schedule destroys.
//
// The contract every replication part keeps (the CR target, cr-seed, the restore of a replica):
// - a complete replica VM carries xo:backup:job, xo:backup:schedule, xo:backup:vm (the source VM's uuid),
//   xo:backup:sr (the SR's uuid), xo:backup:datetime (the source snapshot's time, other_config form) and
//   xo:copy_of (the source snapshot VM's uuid), and has `start` in its blocked_operations;
// - each of its disks carries xo:copy_of = the uuid of the source snapshot VDI its content equals, which is
//   what a continuous replication chains its next delta onto (XO's legacy lookup finds it the same way).
//   A disaster recovery replica (a whole XVA, never a base) has no xo:copy_of, as XO's FullXapiWriter leaves it;
// - a continuous replica is the base of the next delta only while it is Halted (or Suspended on its memory) and
//   its VM_metrics start_time is before its xo:backup:datetime: one started since is no copy any more.
import { formatFilenameDate, formatOtherConfigDate, parseBackupDate } from '../../repository/index.ts'
import type { Task } from '../../tasks/index.ts'
import { errorCode } from '../../util/errors.ts'
import { destroyVmAndDisks, NULL_REF, setOtherConfigKey, type PoolConnection, type XapiRecord } from '../../xapi/index.ts'
import { KEY } from '../run/snapshots.ts'

export const REPLICA_KEY = { ...KEY, sr: 'xo:backup:sr' } as const

/** XO's sentence on a replica's blocked start: the replica stays a clean restore point, its clones start. */
export const REPLICA_START_BLOCKED = 'Start operation for this vm is blocked, clone it if you want to use it.'
export const REPLICA_BLOCKED_OPERATIONS = ['start', 'start_on'] as const

export const DR_TAG = 'Disaster Recovery'
export const CR_TAG = 'Continuous Replication'
/** Added when a replica's HA restart priority is cleared (a replica must never be started by HA). */
export const HA_DISABLED_TAG = 'HA disabled'

/** A replica's name, XO's: "<VM name> - <job name> - (<YYYYMMDDTHHmmssZ>)". */
export function replicaName(vmName: string, jobName: string, timestamp: number): string {
  return `${vmName} - ${jobName} - (${formatFilenameDate(timestamp)})`
}

const otherConfig = (record: XapiRecord): Record<string, string> => (record.other_config as Record<string, string> | undefined) ?? {}

/** A replica's date: xo:backup:datetime, else (XO's fallback) the date in its name. */
export function replicaTimestamp(vm: XapiRecord): number {
  const text = otherConfig(vm)[REPLICA_KEY.datetime] ?? String(vm.name_label ?? '').slice(-17, -1)
  return parseBackupDate(text) ?? 0
}

export interface ReplicaQuery {
  /** A job id or a schedule id (XO matches either). */
  jobOrScheduleId: string
  vmUuid: string
  /** The SR: complete replicas on it; null: the unfinished ones (no completion key), on any SR. */
  srUuid: string | null
}

/** Replica VMs (not snapshots, not templates, start blocked) of a job or schedule, of one source VM, oldest first. */
export function listReplicas(conn: PoolConnection, query: ReplicaQuery): XapiRecord[] {
  return conn
    .all('VM')
    .filter(vm => {
      if (vm.is_a_template === true || vm.is_a_snapshot === true) return false
      const config = otherConfig(vm)
      if (config[REPLICA_KEY.job] !== query.jobOrScheduleId && config[REPLICA_KEY.schedule] !== query.jobOrScheduleId) return false
      // A VM is never its own replica (keys copied onto the source VM by hand must not make it one).
      if (config[REPLICA_KEY.vm] !== query.vmUuid || vm.uuid === query.vmUuid) return false
      if ((config[REPLICA_KEY.sr] ?? null) !== query.srUuid) return false
      return 'start' in ((vm.blocked_operations as Record<string, string> | undefined) ?? {})
    })
    .sort((a, b) => replicaTimestamp(a) - replicaTimestamp(b))
}

/** A complete replica as retention counts it: its date, the source snapshot's. */
export interface ReplicaEntry {
  timestamp: number
  /** The source snapshot it copies (xo:copy_of; a disaster recovery replica has none: itself). */
  point: string
  replica: XapiRecord
}

/** What a retention of the schedule acts on at one SR: the VM's complete replicas there, read after a sync (the last completion mark in). */
export async function scheduleReplicas(conn: PoolConnection, query: { scheduleId: string; vmUuid: string; srUuid: string }, signal: AbortSignal): Promise<ReplicaEntry[]> {
  await conn.sync(signal)
  return listReplicas(conn, { jobOrScheduleId: query.scheduleId, vmUuid: query.vmUuid, srUuid: query.srUuid }).map(replica => ({ timestamp: replicaTimestamp(replica), point: otherConfig(replica)[REPLICA_KEY.copyOf] ?? String(replica.uuid), replica }))
}

/**
 * Destroys replicas with the disks only they use; one that resists is a warning (the next run tries again), the
 * others go on. A running one is in use (started by force in a disaster): it is left alone, with a warning.
 */
export async function destroyReplicas(conn: PoolConnection, replicas: readonly XapiRecord[], task: Task, what: string): Promise<void> {
  for (const replica of replicas) {
    const state = (conn.byRef(replica.$ref) ?? replica).power_state
    if (state === 'Running' || state === 'Paused') {
      task.warning(`${what} is running, so it is in use: it is left in place; shut it down or remove it by hand`, { vm: replica.uuid, name_label: replica.name_label })
      continue
    }
    try {
      await destroyVmAndDisks(conn, replica.$ref)
      task.info(`${what} removed`, { vm: replica.uuid, name_label: replica.name_label })
    } catch (error) {
      task.warning(`${what} could not be removed; the next run of the schedule tries again`, { vm: replica.uuid, name_label: replica.name_label, error: errorCode(error) })
    }
  }
}

/** Blocks start and start_on with XO's sentence (an earlier reason for those two is replaced). */
export async function blockReplicaStart(conn: PoolConnection, vmRef: string): Promise<void> {
  for (const operation of REPLICA_BLOCKED_OPERATIONS) {
    await conn.call('VM.add_to_blocked_operations', vmRef, operation, REPLICA_START_BLOCKED).catch(async error => {
      if (errorCode(error) !== 'XAPI_MAP_DUPLICATE_KEY') throw error
      await conn.call('VM.remove_from_blocked_operations', vmRef, operation)
      await conn.call('VM.add_to_blocked_operations', vmRef, operation, REPLICA_START_BLOCKED)
    })
  }
}

/** A replica is never started by HA: its restart priority cleared, and the tag saying so when there was one. */
export async function disableReplicaHa(conn: PoolConnection, vmRef: string): Promise<void> {
  if ((await conn.call('VM.get_ha_restart_priority', vmRef)) === '') return
  await conn.call('VM.set_ha_restart_priority', vmRef, '')
  await conn.call('VM.add_tags', vmRef, HA_DISABLED_TAG)
}

export interface ReplicaMarks {
  /** The source snapshot's time. */
  timestamp: number
  jobId: string
  scheduleId: string
  /** The source VM's uuid. */
  vmUuid: string
  srUuid: string
}

/**
 * XO's setVmOtherConfig on a replica and its disks. The completion key comes last, on the VM last of all:
 * a replica interrupted on the way is debris for the next run, never a restore point.
 */
export async function markReplicaComplete(conn: PoolConnection, vmRef: string, marks: ReplicaMarks): Promise<void> {
  // Read from XAPI, not the cache: right after an import the cache may not hold the replica's devices yet.
  const vdiRefs: string[] = []
  for (const vbdRef of (await conn.call('VM.get_VBDs', vmRef)) as string[]) {
    const vbd = (await conn.call('VBD.get_record', vbdRef)) as XapiRecord
    if (vbd.type === 'Disk' && vbd.VDI !== NULL_REF) vdiRefs.push(vbd.VDI as string)
  }
  const keys = { [REPLICA_KEY.datetime]: formatOtherConfigDate(marks.timestamp), [REPLICA_KEY.job]: marks.jobId, [REPLICA_KEY.schedule]: marks.scheduleId, [REPLICA_KEY.vm]: marks.vmUuid }
  const objects: Array<['VM' | 'VDI', string]> = [...vdiRefs.map(ref => ['VDI', ref] as ['VDI', string]), ['VM', vmRef]]
  for (const [type, ref] of objects) for (const [key, value] of Object.entries(keys)) await setOtherConfigKey(conn, type, ref, key, value)
  for (const [type, ref] of objects) await setOtherConfigKey(conn, type, ref, REPLICA_KEY.sr, marks.srUuid)
}

/** An SR target's `export` task data, the same for disaster recovery and continuous replication (XO's). */
export function srExportTaskData(sr: XapiRecord): Record<string, unknown> {
  return { type: 'SR', id: sr.uuid, name_label: sr.name_label }
}
