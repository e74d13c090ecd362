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
import { formatFilenameDate, parseBackupDate } from '../../repository/index.ts'
import type { PoolConnection, XapiRecord } from '../../xapi/index.ts'
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
      if (config[REPLICA_KEY.vm] !== query.vmUuid) return false
      if ((config[REPLICA_KEY.sr] ?? null) !== query.srUuid) return false
      return 'start' in ((vm.blocked_operations as Record<string, string> | undefined) ?? {})
    })
    .sort((a, b) => replicaTimestamp(a) - replicaTimestamp(b))
}
