// Errors as values: a stable code for scripts and tests, and a sentence that tells the administrator
// what happened and what to do about it.

export class LifeboatError extends Error {
  readonly code: string
  readonly data: Record<string, unknown> | undefined

  constructor(code: string, message: string, options: { cause?: unknown; data?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'LifeboatError'
    this.code = code
    this.data = options.data
  }

  toJSON(): SerializedError {
    return serializeError(this)
  }
}

export interface SerializedError {
  code: string
  message: string
  name?: string
  data?: Record<string, unknown>
  cause?: SerializedError
  /** The sub-errors of an AggregateError (every target of a run failed…), each in full. */
  errors?: SerializedError[]
}

export function isLifeboatError(error: unknown, code?: string): error is LifeboatError {
  return error instanceof LifeboatError && (code === undefined || error.code === code)
}

/** The code of any error: ours, a Node system error (ENOENT…), an XAPI error (its XAPI code), else UNKNOWN. */
export function errorCode(error: unknown): string {
  if (error !== null && typeof error === 'object' && 'code' in error) {
    const code = (error as { code: unknown }).code
    if (typeof code === 'string' && code !== '') return code
  }
  return 'UNKNOWN'
}

/** A plain JSON form of any thrown value, for task logs and the daemon protocol (no stacks: they are noise to an administrator). */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const out: SerializedError = { code: errorCode(error), message: error.message, name: error.name }
    if (error instanceof LifeboatError && error.data !== undefined) out.data = error.data
    if (error.cause !== undefined) out.cause = serializeError(error.cause)
    if (error instanceof AggregateError) out.errors = error.errors.map(serializeError)
    return out
  }
  return { code: 'UNKNOWN', message: String(error) }
}

const SYSTEM_ERRORS: Record<string, { code: string; sentence: (path: string) => string }> = {
  ENOENT: { code: 'FILE_NOT_FOUND', sentence: path => `${path} does not exist; check the path.` },
  EISDIR: { code: 'NOT_A_REGULAR_FILE', sentence: path => `${path} is a directory, not a file; give the path of a file.` },
  ENOTDIR: { code: 'FILE_NOT_FOUND', sentence: path => `${path} does not exist (a part of the path is not a directory); check the path.` },
  EACCES: { code: 'PERMISSION_DENIED', sentence: path => `${path} cannot be opened by this user; check its permissions or run as a user who can read it.` },
  EPERM: { code: 'PERMISSION_DENIED', sentence: path => `${path} cannot be changed by this user; check its permissions.` },
}

/**
 * The code and sentence to show a person: Node's file errors in words (their message already starts with
 * the errno, which a `CODE: message` line would repeat), anything else as serialized.
 */
export function describeError(error: unknown): { code: string; message: string } {
  // An error already serialized (a run's result, read back from its log) reads as it was.
  const serialized = !(error instanceof Error) && typeof (error as { message?: unknown } | null)?.message === 'string'
  const { code, message } = serialized ? { code: errorCode(error), message: (error as { message: string }).message } : serializeError(error)
  const path = (error as { path?: unknown } | null)?.path
  const known = SYSTEM_ERRORS[code]
  if (known !== undefined && typeof path === 'string') return { code: known.code, message: known.sentence(path) }
  // An errno's message is "ENOENT: no such file or directory, open 'x'": the code once is enough.
  return { code, message: message.startsWith(`${code}: `) ? message.slice(code.length + 2) : message }
}
