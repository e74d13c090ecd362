// XAPI errors turned into Lifeboat errors: the XAPI code is kept (prefixed XAPI_) with its parameters,
// and the sentence says what it means for a backup and what to do.
import { LifeboatError } from '../util/errors.ts'

const EXPLANATIONS: Record<string, string> = {
  SESSION_AUTHENTICATION_FAILED: 'the pool refused the username or password; update the pool credentials in Lifeboat.',
  SESSION_INVALID: 'the XAPI session expired (toolstack restart or too many sessions); the next call logs in again.',
  HANDLE_INVALID: 'the object no longer exists on the pool (deleted by hand or by another tool).',
  UUID_INVALID: 'no object with this uuid exists on the pool; check the uuid or the pool it belongs to.',
  VM_BAD_POWER_STATE: 'the VM is not in a power state that allows this operation.',
  OPERATION_BLOCKED: 'the operation is blocked on this object (blocked_operations); remove the block if it is intended.',
  OTHER_OPERATION_IN_PROGRESS: 'another operation is running on this object; retry when it has finished.',
  VDI_IN_USE: 'the disk is still attached (often for a few seconds after an export); it is retried automatically.',
  SR_BACKEND_FAILURE_44: 'the storage repository has no space left; free space on the SR or pick another one.',
  SR_BACKEND_FAILURE_46: 'the disk is not available on the host (not detached cleanly); check the SR and its PBDs.',
  SR_BACKEND_FAILURE_82: 'the storage failed to snapshot the disk (often too many snapshots at once); lower snapshot concurrency or retry.',
  SR_BACKEND_FAILURE_109: 'the VHD chain is too long: the SR has not coalesced old snapshots yet; wait for coalesce or rescan the SR.',
  SR_FULL: 'the storage repository is full; free space on the SR or pick another one.',
  VDI_IO_ERROR: 'the host reported an I/O error while streaming the disk; check the SR and retry.',
  TOO_MANY_PENDING_TASKS: 'the pool master is overloaded; retry later or lower concurrency.',
  VDI_INCOMPATIBLE_TYPE: 'the disk type does not allow this operation (for example a CBT metadata-only snapshot).',
  VDI_NO_CBT_METADATA: 'the disk has no changed-block-tracking data; a full export is needed.',
  MESSAGE_METHOD_UNKNOWN: 'this XAPI version does not know the method; the pool may be too old for this feature.',
  VM_NO_SUSPEND_SR: 'the pool has no SR for suspend images; set the pool\'s suspend image SR to use memory snapshots.',
  IMPORT_ERROR: 'the pool refused the imported VM; the backup file may be damaged.',
  LICENSE_RESTRICTION: 'the pool\'s license does not allow this feature.',
}

/** True for errors thrown by the xen-api client for an XAPI failure. */
export function isRawXapiError(error: unknown): error is { code: string; params: unknown[]; message: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'string' && Array.isArray((error as { params?: unknown }).params)
}

export function xapiError(code: string, params: unknown[] = [], context?: string, cause?: unknown): LifeboatError {
  const explanation = EXPLANATIONS[code] ?? 'see the XAPI documentation for this error code.'
  const where = context === undefined ? '' : `${context}: `
  const detail = params.filter(p => p !== '' && p !== null && p !== undefined).join(', ')
  return new LifeboatError(`XAPI_${code}`, `${where}XAPI error ${code}${detail === '' ? '' : ` (${detail})`}: ${explanation}`, { cause, data: { xapiCode: code, params } })
}

/** Wraps any error from the client: XAPI errors become XAPI_<CODE>, network errors POOL_UNREACHABLE. */
export function wrapXapiError(error: unknown, context?: string): unknown {
  if (error instanceof LifeboatError) return error
  if (isRawXapiError(error)) return xapiError(error.code, error.params, context, error)
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENOTFOUND|ETIMEDOUT|UND_ERR_\w+|EPIPE)$/.test(code)) {
    return new LifeboatError('POOL_UNREACHABLE', `${context === undefined ? '' : `${context}: `}the pool master cannot be reached (${code}); check the network and that the toolstack is running.`, { cause: error })
  }
  return error
}
