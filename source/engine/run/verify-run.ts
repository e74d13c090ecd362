// A verification of a remote as a run of its own (RPC remote.verify, verify jobs): each VM folder, then each
// backup in it, in the task tree; the result lists every backup's verdict for the daemon to keep.
import { abortReason } from '../../util/abort.ts'
import { LifeboatError } from '../../util/errors.ts'
import { listBackedUpVms, verifyVm, type BackupVerdict } from '../../repository/index.ts'
import { startRun, type EngineContext, type RunOptions, type StartedRun } from './backup-run.ts'

export interface VerifyRequest {
  remote: string
  /** Only these VMs' backups (uuids); all the remote holds when absent or empty. */
  vms?: string[]
  readData?: boolean
  /** Milliseconds; 0 or absent: none. */
  timeout?: number
}

/** The run's result: what the daemon records as each backup's verification state. */
export interface VerifyRunResult {
  remote: string
  readData: boolean
  verified: number
  failed: number
  bytesRead: number
  backups: Array<BackupVerdict & { vmUuid: string }>
}

export function startVerifyRun(context: EngineContext, request: VerifyRequest, options: RunOptions & { data?: Record<string, unknown> } = {}): StartedRun {
  const readData = request.readData === true
  return startRun({ name: 'verify', data: { remote: request.remote, readData, ...options.data } }, request.timeout ?? 0, options, async (task, signal) => {
    const handler = context.remotes.get(request.remote)
    if (handler === undefined) throw new LifeboatError('REMOTE_NOT_FOUND', `The remote "${request.remote}" is not configured or not available; add it or fix it first.`)
    const vms = request.vms !== undefined && request.vms.length > 0 ? request.vms : await listBackedUpVms(handler)
    const result: VerifyRunResult = { remote: request.remote, readData, verified: 0, failed: 0, bytesRead: 0, backups: [] }
    for (const vmUuid of vms) {
      signal.throwIfAborted()
      const vmTask = task.child('verify VM', { type: 'VM', id: vmUuid })
      let bytesRead = 0
      let verdicts: BackupVerdict[]
      try {
        verdicts = await verifyVm(handler, vmUuid, { readData, signal, task: vmTask, onRead: bytes => void (bytesRead += bytes) })
        if (verdicts.length === 0) throw new LifeboatError('VERIFY_NO_BACKUPS', `The remote "${request.remote}" holds no backup of VM ${vmUuid}; 'npx lifeboat backup list --remote ${request.remote}' lists those it holds.`)
      } catch (error) {
        vmTask.fail(signal.aborted ? abortReason(signal) : error)
        if (signal.aborted) throw error
        continue
      } finally {
        result.bytesRead += bytesRead
      }
      const failed = verdicts.filter(verdict => verdict.findings.length > 0).length
      result.verified += verdicts.length - failed
      result.failed += failed
      for (const verdict of verdicts) result.backups.push({ ...verdict, vmUuid })
      // A failed backup fails its VM, and the run, by the tree's own rules.
      vmTask.end({ backups: verdicts.length, failed, bytesRead })
    }
    return result
  })
}
