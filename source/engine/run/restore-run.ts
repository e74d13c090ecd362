// A restore as a run of its own (RPC restore.start): a task tree the daemon logs and streams like a
// backup's, cancellable, whose result names the new VM.
import { LifeboatError } from '../../util/errors.ts'
import { restoreBackup } from '../restore/index.ts'
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
    const handler = context.remotes.get(request.remote)
    if (handler === undefined) throw new LifeboatError('REMOTE_NOT_FOUND', `The remote "${request.remote}" is not configured or not available; add it or fix it first.`)
    const conn = [...context.pools.values()].find(c => c.byUuid(request.srUuid)?.$type === 'SR')
    if (conn === undefined) throw new LifeboatError('SR_NOT_FOUND', `No connected pool has an SR with uuid ${request.srUuid}; list the SRs with "lifeboat pool list" / the Pools screen and pick one.`)
    const restored = await restoreBackup(handler, request.backupId, conn, request.srUuid, { name: request.name, start: request.start, remoteName: request.remote, signal, task })
    return { vmUuid: restored.vmUuid, pool: conn.poolUuid }
  })
}
