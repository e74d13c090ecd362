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
    if (conn === undefined) throw new LifeboatError('SR_NOT_FOUND', `No connected pool has an SR with uuid ${request.srUuid}; 'npx lifeboat sr list' (or the Pools screen's SRs) lists them.`)
    const restored = await restoreBackup(handler, request.backupId, conn, request.srUuid, { name: request.name, start: request.start, remoteName: request.remote, signal, task })
    // Named in the result so that the tree, `restore --wait` and the TUI can say which VM was created.
    return { vmUuid: restored.vmUuid, vmName: restored.vmName, pool: conn.poolUuid, poolName: conn.poolName }
  })
}
