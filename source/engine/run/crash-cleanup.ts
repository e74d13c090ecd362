// What a process that died in the middle of runs leaves behind, removed at the next start: snapshots
// still carrying the temporary name (never marked, so never a base), migration blocks never lifted, and
// on the remotes the temporary files, half-done merges and incomplete backups the cleaner can repair, and the
// uploads an object store keeps unfinished (S3's multipart uploads, billed until aborted).
import { errorCode } from '../../util/errors.ts'
import { sleep } from '../../util/abort.ts'
import { cleanVm, listBackedUpVms, vmDir } from '../../repository/index.ts'
import { destroyVmAndDisks, liftLeftoverBlocks, TEMPORARY_SNAPSHOT_NAME } from '../../xapi/index.ts'
import type { XapiRecord } from '../../xapi/index.ts'
import type { EngineContext } from './backup-run.ts'
import { KEY, removeUnexportedSnapshots } from './snapshots.ts'

// Waits between tries of an operation refused because another is going on the object (XAPI's OTHER_OPERATION_IN_PROGRESS).
const BUSY_WAITS_MS = [500, 1000, 2000, 4000, 8000, 15_000]

async function whileBusy<T>(operation: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  for (const wait of BUSY_WAITS_MS) {
    try {
      return await operation()
    } catch (error) {
      if (!['XAPI_OTHER_OPERATION_IN_PROGRESS', 'OTHER_OPERATION_IN_PROGRESS'].includes(errorCode(error))) throw error
      await sleep(wait, signal)
    }
  }
  return operation()
}

// An upload older than this is no longer written by anyone (another Lifeboat or XO on the same bucket may be mid-upload).
const STALE_UPLOAD_MS = 24 * 3600_000

/** What one run that died elsewhere (on a proxy) left: its job's snapshots, its VMs' blocks and folders on its remotes. */
export interface RunLeftovers {
  jobId: string
  vms: ReadonlySet<string>
  remotes: ReadonlySet<string>
}

/**
 * Returns one line per thing it did or could not do, for the daemon's log. `spareJobs`: jobs whose runs go on
 * elsewhere (delegated to a proxy, taken up again): their snapshots and the blocks on their VMs are theirs.
 * `only`: the leftovers of one run, and nothing else (other runs may be going).
 */
export async function cleanupAfterCrash(context: EngineContext, options: { signal?: AbortSignal; spareJobs?: ReadonlySet<string>; only?: RunLeftovers } = {}): Promise<string[]> {
  const lines: string[] = []
  const { only } = options
  const spareJobs = options.spareJobs ?? new Set()
  const jobOf = (vm: XapiRecord) => (vm.other_config as Record<string, string> | undefined)?.[KEY.job] ?? ''
  const sparedJob = (vm: XapiRecord) => spareJobs.has(jobOf(vm)) || (only !== undefined && jobOf(vm) !== only.jobId)
  for (const conn of context.pools.values()) {
    for (const vm of conn.all('VM')) {
      if (vm.is_a_snapshot !== true || vm.name_label !== TEMPORARY_SNAPSHOT_NAME || sparedJob(vm)) continue
      try {
        await destroyVmAndDisks(conn, vm.$ref, { signal: options.signal })
        lines.push(`pool ${conn.poolName}: removed the unfinished snapshot ${vm.uuid}`)
      } catch (error) {
        lines.push(`pool ${conn.poolName}: could not remove the unfinished snapshot ${vm.uuid} (${errorCode(error)})`)
      }
    }
  }
  // A lost run's snapshots that it took and never exported (a job with targets exports each one it keeps).
  for (const conn of only !== undefined && only.remotes.size > 0 ? context.pools.values() : []) {
    for (const vmUuid of only!.vms) {
      const vm = conn.byUuid(vmUuid)
      if (vm === undefined || vm.is_a_snapshot === true) continue
      try {
        // The lost run's export may still be going on the pool a moment (until it sees its connection gone).
        const removed = await whileBusy(() => removeUnexportedSnapshots(conn, vm, only!.jobId, options.signal), options.signal)
        if (removed.length > 0) lines.push(`pool ${conn.poolName}: removed the unexported snapshot(s) ${removed.join(', ')} of VM ${vmUuid}`)
      } catch (error) {
        lines.push(`pool ${conn.poolName}: could not remove the unexported snapshots of VM ${vmUuid} (${errorCode(error)}); the next backup of the VM does`)
      }
    }
  }
  for (const conn of context.pools.values()) {
    try {
      const spared = new Set(conn.all('VM').filter(vm => vm.is_a_snapshot === true && spareJobs.has(jobOf(vm))).map(vm => vm.snapshot_of as string))
      const leave = (vm: XapiRecord) => spared.has(vm.$ref) || (only !== undefined && !only.vms.has(vm.uuid as string))
      for (const vm of await liftLeftoverBlocks(conn, leave)) lines.push(`pool ${conn.poolName}: lifted the migration block an earlier run left on VM ${vm.uuid}`)
    } catch (error) {
      lines.push(`pool ${conn.poolName}: could not lift the migration blocks earlier runs left (${errorCode(error)}); the next backup of each VM lifts them`)
    }
  }
  for (const [name, handler] of context.remotes) {
    if (only !== undefined && !only.remotes.has(name)) continue
    // An upload is stale after a day: one run's are not yet (the next start aborts them).
    if (only === undefined) {
      try {
        const aborted = await handler.abortStaleUploads(STALE_UPLOAD_MS)
        if (aborted > 0) lines.push(`remote ${name}: aborted ${aborted} upload(s) left unfinished`)
      } catch (error) {
        lines.push(`remote ${name}: could not abort the uploads left unfinished (${errorCode(error)})`)
      }
    }
    let vms: string[]
    try {
      vms = (await listBackedUpVms(handler)).filter(vmUuid => only === undefined || only.vms.has(vmUuid))
    } catch (error) {
      lines.push(`remote ${name}: not readable (${errorCode(error)}), not cleaned`)
      continue
    }
    for (const vmUuid of vms) {
      try {
        const lock = await handler.lock(vmDir(vmUuid))
        try {
          const result = await cleanVm(handler, vmUuid, { signal: options.signal })
          if (result.merged > 0 || result.removed.length > 0) lines.push(`remote ${name}, VM ${vmUuid}: ${result.merged} merge(s) finished, ${result.removed.length} leftover(s) removed`)
        } finally {
          await lock.release()
        }
      } catch (error) {
        lines.push(`remote ${name}, VM ${vmUuid}: not cleaned (${errorCode(error)})`)
      }
    }
  }
  return lines
}
