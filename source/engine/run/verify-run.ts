// A verification of remotes as a run of its own (RPC remote.verify, verify jobs): each remote, each VM folder,
// then each backup in it, in the task tree; every backup's verdict is handed over as it comes, for the daemon to keep.
import { abortReason } from '../../util/abort.ts'
import { LifeboatError } from '../../util/errors.ts'
import { listBackedUpVms, readCache, verifyVm, type BackupVerdict } from '../../repository/index.ts'
import type { RemoteHandler, RemoteLock } from '../../storage/index.ts'
import type { Task } from '../../tasks/index.ts'
import { lockVmFolder } from '../targets/remote-target.ts'
import type { TargetStep } from '../targets/target.ts'
import { startRun, type EngineContext, type RunOptions, type StartedRun } from './backup-run.ts'

const PROGRESS_EVERY_MS = 1000

export interface VerifyRequest {
  /** By the names jobs use. */
  remotes: string[]
  /** Only these VMs' backups (uuids); all each remote holds when absent or empty. */
  vms?: string[]
  readData?: boolean
  /** Milliseconds; 0 or absent: none. */
  timeout?: number
  /** Told each backup's verdict once judged (a cancelled run has told those judged before it stopped). */
  onVerdict?: (verdict: VerifiedBackup) => void
}

export interface VerifiedBackup extends BackupVerdict {
  remote: string
  vmUuid: string
}

/** The run's result (also the root task's): counts, and the bytes read back. */
export interface VerifyRunResult {
  readData: boolean
  verified: number
  failed: number
  /** Backups that verified with a disk checked for structure only (no block hashes: written or changed by another tool). */
  structureOnly: number
  bytesRead: number
}

export function startVerifyRun(context: EngineContext, request: VerifyRequest, options: RunOptions & { data?: Record<string, unknown> } = {}): StartedRun {
  const readData = request.readData === true
  return startRun({ name: 'verify', data: { remotes: request.remotes, readData, ...options.data } }, request.timeout ?? 0, options, async (task, signal) => {
    const result: VerifyRunResult = { readData, verified: 0, failed: 0, structureOnly: 0, bytesRead: 0 }
    for (const remote of request.remotes) {
      signal.throwIfAborted()
      const remoteTask = task.child('verify remote', { remote })
      try {
        await verifyRemote(context, remote, request, remoteTask, signal, result)
      } catch (error) {
        remoteTask.fail(signal.aborted ? abortReason(signal) : error)
        if (signal.aborted) throw error
        continue
      }
      remoteTask.end()
    }
    return result
  })
}

async function verifyRemote(context: EngineContext, remote: string, request: VerifyRequest, task: Task, signal: AbortSignal, result: VerifyRunResult): Promise<void> {
  const handler = context.remotes.get(remote)
  if (handler === undefined) throw new LifeboatError('REMOTE_NOT_FOUND', `The remote "${remote}" is not configured or not available; add it or fix it first.`)
  const vms = request.vms !== undefined && request.vms.length > 0 ? request.vms : await listBackedUpVms(handler)
  for (const vmUuid of vms) {
    signal.throwIfAborted()
    const vmName = await nameOf(handler, vmUuid)
    const vmTask = task.child('verify VM', { type: 'VM', id: vmUuid, ...(vmName !== undefined && { vmName }) })
    let bytesRead = 0
    let shownAt = 0
    // The VM's reads in the lanes view: a slot of the remote's lane while it is verified, with its bytes.
    const lease = await context.remoteLanes?.of(remote, handler.capabilities.connections).acquire({ runId: task.log.events[0]?.id ?? task.id, vm: vmUuid, ...(vmName !== undefined && { vmName }), phase: 'verify' }, signal)
    // The bytes read so far as the task's size, at most once a second: the TUI's tree shows it with a speed.
    const onRead = (bytes: number) => {
      bytesRead += bytes
      lease?.report({ done: bytesRead })
      if (Date.now() - shownAt < PROGRESS_EVERY_MS) return
      shownAt = Date.now()
      vmTask.set('size', bytesRead)
    }
    let verdicts: BackupVerdict[]
    let lock: RemoteLock | undefined
    try {
      lock = await lockForReading(handler, vmUuid, remote, { task: vmTask, signal })
      verdicts = await verifyVm(handler, vmUuid, {
        readData: result.readData,
        signal,
        task: vmTask,
        onRead,
        onVerdict: verdict => request.onVerdict?.({ ...verdict, remote, vmUuid }),
      })
      if (verdicts.length === 0) throw new LifeboatError('VERIFY_NO_BACKUPS', `The remote "${remote}" holds no backup of VM ${vmUuid}; 'npx lifeboat backup list --remote ${remote}' lists those it holds.`)
    } catch (error) {
      vmTask.fail(signal.aborted ? abortReason(signal) : error)
      if (signal.aborted) throw error
      continue
    } finally {
      result.bytesRead += bytesRead
      lease?.release()
      await lock?.release().catch(() => {})
    }
    const failed = verdicts.filter(verdict => verdict.findings.length > 0).length
    result.verified += verdicts.length - failed
    result.failed += failed
    result.structureOnly += verdicts.filter(verdict => verdict.findings.length === 0 && verdict.notes.length > 0).length
    // A failed backup fails its VM, its remote and the run, by the tree's own rules.
    vmTask.end({ backups: verdicts.length, failed, size: bytesRead })
  }
}

/**
 * The VM folder's lock while it is verified, so that a backup, merge or clean of it waits (and verify waits for
 * them): a chain read half before and half after a merge would look broken. A remote that refuses the lock's
 * write (a read-only copy, where nothing else writes either) is verified without it, saying so.
 */
async function lockForReading(handler: RemoteHandler, vmUuid: string, remote: string, step: TargetStep): Promise<RemoteLock | undefined> {
  try {
    return await lockVmFolder(handler, vmUuid, remote, step)
  } catch (error) {
    if (step.signal.aborted) throw error
    step.task.info(`verified without the VM folder's lock: the remote refused to write it (${error instanceof Error ? error.message : String(error)})`)
    return undefined
  }
}

/** The VM's name as its backup cache records it (read only; a missing or unreadable cache: none). */
async function nameOf(handler: RemoteHandler, vmUuid: string): Promise<string | undefined> {
  const cache = await readCache(handler, vmUuid).catch(() => undefined)
  const backup = cache === undefined ? undefined : Object.values(cache).at(-1)
  return backup?.vm.name_label
}
