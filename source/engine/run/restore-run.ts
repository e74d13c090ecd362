// A restore as a run of its own (RPC restore.start): a task tree the daemon logs and streams like a
// backup's, cancellable, whose result names the new VM; and a manual health check of a restore point
// (RPC backup.check), a run whose root is the check.
import { LifeboatError } from '../../util/errors.ts'
import type { RemoteHandler } from '../../storage/index.ts'
import { HEALTH_CHECK_TASK } from '../../tasks/index.ts'
import type { PoolConnection } from '../../xapi/index.ts'
import { restoreBackup } from '../restore/index.ts'
import { checkRemoteBackup } from '../restore/health-check.ts'
import { startRun, type EngineContext, type RunOptions, type StartedRun } from './backup-run.ts'

export interface RestoreRequest {
  remote: string
  backupId: string
  srUuid: string
  name?: string
  start?: boolean
}

export function startRestoreRun(context: EngineContext, request: RestoreRequest, options: RunOptions = {}): StartedRun {
  return startRun({ name: 'restore', data: { remote: request.remote, backupId: request.backupId, srUuid: request.srUuid } }, 0, options, async (task, signal) => {
    const { handler, conn } = findRemoteAndSr(context, request)
    const restored = await restoreBackup(handler, request.backupId, conn, request.srUuid, { name: request.name, start: request.start, remoteName: request.remote, signal, task })
    // Named in the result so that the tree, `restore --wait` and the TUI can say which VM was created.
    return { vmUuid: restored.vmUuid, vmName: restored.vmName, pool: conn.poolUuid, poolName: conn.poolName }
  })
}

export interface HealthCheckRequest {
  remote: string
  backupId: string
  srUuid: string
  /** The check's budget (XO's healthCheckTimeout), every step included; 0: none. */
  timeoutMs: number
}

/** XO's checkVmBackupNg: the restore point restored onto the SR, started, waited for, destroyed; the run's status is the check's. */
export function startHealthCheckRun(context: EngineContext, request: HealthCheckRequest, options: RunOptions = {}): StartedRun {
  return startRun({ name: HEALTH_CHECK_TASK, data: { remote: request.remote, backupId: request.backupId, srUuid: request.srUuid } }, 0, options, async (task, signal) => {
    const { handler, conn } = findRemoteAndSr(context, request)
    await checkRemoteBackup({ name: request.remote, handler }, request.backupId, { task, signal, conn, sr: conn.get('SR', request.srUuid), timeoutMs: request.timeoutMs })
  })
}

function findRemoteAndSr(context: EngineContext, request: { remote: string; srUuid: string }): { handler: RemoteHandler; conn: PoolConnection } {
  const handler = context.remotes.get(request.remote)
  if (handler === undefined) throw new LifeboatError('REMOTE_NOT_FOUND', `The remote "${request.remote}" is not configured or not available; add it or fix it first.`)
  const conn = [...context.pools.values()].find(c => c.byUuid(request.srUuid)?.$type === 'SR')
  if (conn === undefined) throw new LifeboatError('SR_NOT_FOUND', `No connected pool has an SR with uuid ${request.srUuid}; 'npx lifeboat sr list' (or the Pools screen's SRs) lists them.`)
  return { handler, conn }
}
