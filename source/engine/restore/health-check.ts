// A health check (XO's HealthCheckVmBackup): a VM made from a backup for the purpose — a restore of it, a clone or
// copy of a replica — is tagged so no job backs it up, cut off the network, started and waited for: Running, then its
// guest agent, then the in-guest script when the VM is tagged for it. One time budget covers every step, the making
// of the VM included; the VM is destroyed whatever happens, a cancel of the run included.
import type { RemoteHandler } from '../../storage/index.ts'
import type { Task } from '../../tasks/index.ts'
import { LifeboatError } from '../../util/errors.ts'
import { formatMs, sleep, withTimeout } from '../../util/abort.ts'
import { clearVmBackupKeys } from './conventions.ts'
import { restoreBackup } from './index.ts'
import { destroyVmAndDisks, NULL_REF, type PoolConnection, type XapiRecord } from '../../xapi/index.ts'

/** XO's tag on the VM being checked: no smart selection backs it up. */
export const HEALTH_CHECK_VM_TAG = 'xo:no-bak=Health Check'
/** XO's tag on a source VM that must never be checked (any `xo:no-health-check=…` value too). */
export const NO_HEALTH_CHECK_TAG = 'xo:no-health-check'
/** XO's tag on a source VM whose guest runs the health-check script (docs/healthcheck/example.sh). */
export const HEALTH_CHECK_SCRIPT_TAG = 'xo-backup-health-check-xenstore'
const SCRIPT_KEY = 'vm-data/xo-backup-health-check'
const SCRIPT_ERROR_KEY = 'vm-data/xo-backup-health-check-error'

/** Tries at destroying the checked VM (a cancelled start may still hold it for a moment). */
const DESTROY_ATTEMPTS = 10
const DESTROY_RETRY_MS = 1000

export interface HealthCheckSettings {
  healthCheckSr: string
  healthCheckVmsWithTags: string[]
  healthCheckTimeout: number
}

/** Why a VM of a job that checks is not checked, or undefined when it is (XO's rules). */
export function notCheckedBecause(tags: readonly string[], settings: HealthCheckSettings): string | undefined {
  if (settings.healthCheckSr === '') return 'the job has no health check SR'
  if (tags.some(tag => tag === NO_HEALTH_CHECK_TAG || tag.startsWith(`${NO_HEALTH_CHECK_TAG}=`))) return `the VM is tagged ${NO_HEALTH_CHECK_TAG}`
  const wanted = settings.healthCheckVmsWithTags
  if (wanted.length > 0 && !tags.some(tag => wanted.includes(tag))) return `the VM has none of the tags ${wanted.join(', ')}`
  return undefined
}

export interface HealthCheckStep {
  /** The 'health check' task: the making of the VM and the checks report under it. */
  task: Task
  /** The run's: a cancel stops the check (and the VM is destroyed all the same). */
  signal: AbortSignal
  /** The pool and SR the VM is checked on. */
  conn: PoolConnection
  sr: XapiRecord
  /** The budget of the whole check (0: none). */
  timeoutMs: number
}

/**
 * Makes the VM to check with `make` (which resolves with its ref, having removed whatever it made if it fails), checks
 * it and destroys it. Rejects with HEALTH_CHECK_TIMEOUT, HEALTH_CHECK_SCRIPT_FAILED, HEALTH_CHECK_VM_HALTED, or the
 * error of the step that failed.
 */
export async function runHealthCheck(step: HealthCheckStep, make: (signal: AbortSignal) => Promise<string>): Promise<void> {
  const { conn, task, timeoutMs } = step
  const bound = withTimeout(step.signal, timeoutMs, 'the health check')
  const timedOut = () => bound.signal.aborted && !step.signal.aborted
  const within = async <T>(promise: Promise<T>, what: string): Promise<T> => {
    try {
      return await promise
    } catch (error) {
      if (timedOut()) throw new LifeboatError('HEALTH_CHECK_TIMEOUT', `The health check timed out after ${formatMs(timeoutMs)} ${what}. Raise healthCheckTimeout if the VM is only slow.`, { cause: error })
      throw error
    }
  }
  let vmRef: string | undefined
  try {
    vmRef = await within(make(bound.signal), 'while the VM to check was made')
    await checkVm(conn, vmRef, bound.signal, task, within)
  } finally {
    bound.dispose()
    if (vmRef !== undefined) await destroyCheckedVm(conn, vmRef, task)
  }
}

/** A backup on a remote (XO's remote writer's check, and the manual one): restored onto the SR, checked, destroyed. */
export async function checkRemoteBackup(remote: { name: string; handler: RemoteHandler }, backupId: string, step: HealthCheckStep): Promise<void> {
  await runHealthCheck(step, async signal => {
    const restore = step.task.child('restore', { remote: remote.name, backupId, srUuid: step.sr.uuid })
    return restore.run(async () => (await restoreBackup(remote.handler, backupId, step.conn, step.sr.uuid, { remoteName: remote.name, signal, task: restore })).vmRef, { signal })
  })
}

type Within = <T>(promise: Promise<T>, what: string) => Promise<T>

async function checkVm(conn: PoolConnection, vmRef: string, signal: AbortSignal, task: Task, within: Within): Promise<void> {
  await conn.call('VM.add_tags', vmRef, HEALTH_CHECK_VM_TAG)
  // A copy of a replica carries its keys: no job may take the checked VM for one of its replicas or snapshots.
  await clearVmBackupKeys(conn, vmRef)
  // No network: the copy must not answer for the production VM (same MACs, same addresses).
  for (const vif of (await conn.call('VM.get_VIFs', vmRef)) as string[]) await conn.callAsync(signal, 'VIF.destroy', vif)
  const tags = (await conn.call('VM.get_tags', vmRef)) as string[]
  const script = tags.includes(HEALTH_CHECK_SCRIPT_TAG)
  if (script) {
    await conn.call('VM.remove_from_xenstore_data', vmRef, SCRIPT_KEY)
    await conn.call('VM.add_to_xenstore_data', vmRef, SCRIPT_KEY, 'planned')
  }
  // A backup with memory is checked as it would be used: resumed.
  const suspended = (await conn.call('VM.get_power_state', vmRef)) === 'Suspended'
  await within(conn.callAsync(signal, suspended ? 'VM.resume' : 'VM.start', vmRef, false, false), 'while the VM started')
  const vm = () => conn.byRef(vmRef)
  await within(conn.waitFor(() => (vm()?.power_state === 'Running' ? true : undefined), { signal, what: 'the checked VM to run' }), 'before the pool showed the VM Running')
  task.info('the VM is running')
  await within(conn.waitFor(() => {
    const record = vm()
    if (record?.power_state !== 'Running') throw halted(String(record?.power_state ?? 'gone'))
    return conn.byRef(String(record.guest_metrics ?? NULL_REF))?.PV_drivers_detected === true ? true : undefined
  }, { signal, what: 'the guest agent' }), 'waiting for the guest agent: the VM runs but its system did not report (guest_metrics.PV_drivers_detected). The backed-up disks may not boot (restore this point and look at its console), or the guest has no Xen tools')
  task.info('the guest agent reported')
  if (!script) return
  const answer = await within(conn.waitFor(() => {
    const record = vm()
    if (record?.power_state !== 'Running') throw halted(String(record?.power_state ?? 'gone'))
    const value = (record.xenstore_data as Record<string, string> | undefined)?.[SCRIPT_KEY]
    return value === 'success' || value === 'failure' ? { value, error: (record.xenstore_data as Record<string, string>)[SCRIPT_ERROR_KEY] } : undefined
  }, { signal, what: 'the health check script' }), `waiting for the VM's health check script (${SCRIPT_KEY} stayed "planned"): check the script in the guest, or remove the tag ${HEALTH_CHECK_SCRIPT_TAG}`)
  if (answer.value === 'failure') {
    throw new LifeboatError('HEALTH_CHECK_SCRIPT_FAILED', `The health check script in the VM reported a failure${answer.error === undefined || answer.error === '' ? '' : `: ${answer.error}`}. The backup boots, but what the script tests does not work in it.`)
  }
  task.info('the health check script succeeded')
}

function halted(state: string): LifeboatError {
  return new LifeboatError('HEALTH_CHECK_VM_HALTED', `The checked VM stopped on its own (it is ${state}) before its checks were done: its system does not run; restore this point and look at its console.`)
}

/** Destroys the checked VM and its disks, bypassing blocked operations; never under the run's signal (it may be the cancel being handled). Never throws. */
async function destroyCheckedVm(conn: PoolConnection, vmRef: string, task: Task): Promise<void> {
  let failure: unknown
  for (let attempt = 1; attempt <= DESTROY_ATTEMPTS; attempt++) {
    try {
      const blocked = (await conn.call('VM.get_blocked_operations', vmRef).catch(() => ({}))) as Record<string, string>
      for (const operation of Object.keys(blocked)) await conn.call('VM.remove_from_blocked_operations', vmRef, operation)
      await destroyVmAndDisks(conn, vmRef)
      task.info('the checked VM was destroyed')
      return
    } catch (error) {
      failure = error
      if (attempt < DESTROY_ATTEMPTS) await sleep(DESTROY_RETRY_MS)
    }
  }
  task.warning('the checked VM could not be destroyed; delete it by hand (it is tagged "xo:no-bak=Health Check")', { vm: vmRef, error: (failure as Error).message })
}
