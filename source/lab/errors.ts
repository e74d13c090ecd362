// XAPI failures as the lab sends them on the wire: a code and string parameters (JSON-RPC `error.message`/`error.data`,
// task `error_info`). Distinct from LifeboatError because these are protocol values, not messages for an administrator.

export class ApiError extends Error {
  readonly code: string
  readonly params: string[]

  constructor(code: string, params: unknown[] = []) {
    super(`${code}(${params.join(', ')})`)
    this.name = 'ApiError'
    this.code = code
    this.params = params.map(String)
  }
}

/** Any thrown value as an XAPI failure: lab storage errors keep their code, anything else is INTERNAL_ERROR. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error
  if (error instanceof Error && 'code' in error && typeof error.code === 'string' && /^[A-Z0-9_]+$/.test(error.code)) {
    const code = error.code
    // Lab storage errors carry the parameters XAPI would send (e.g. SR_BACKEND_FAILURE_44's SM triple).
    const params = (error as { data?: { params?: unknown } }).data?.params
    if (Array.isArray(params)) return new ApiError(code, params)
    if (code.startsWith('SR_BACKEND_FAILURE_')) return new ApiError(code, ['', error.message, ''])
    if (code.startsWith('LAB_')) return new ApiError('INTERNAL_ERROR', [error.message])
    return new ApiError(code, [error.message])
  }
  return new ApiError('INTERNAL_ERROR', [error instanceof Error ? error.message : String(error)])
}
