// The NTSTATUS codes the client acts on ([MS-ERREF] §2.3), by name, and a readable name for any other.
export const Status = {
  SUCCESS: 0x00000000,
  PENDING: 0x00000103,
  BUFFER_OVERFLOW: 0x80000005,
  NO_MORE_FILES: 0x80000006,
  INVALID_PARAMETER: 0xc000000d,
  NO_SUCH_FILE: 0xc000000f,
  END_OF_FILE: 0xc0000011,
  MORE_PROCESSING_REQUIRED: 0xc0000016,
  ACCESS_DENIED: 0xc0000022,
  OBJECT_NAME_INVALID: 0xc0000033,
  OBJECT_NAME_NOT_FOUND: 0xc0000034,
  OBJECT_NAME_COLLISION: 0xc0000035,
  OBJECT_PATH_NOT_FOUND: 0xc000003a,
  SHARING_VIOLATION: 0xc0000043,
  QUOTA_EXCEEDED: 0xc0000044,
  DELETE_PENDING: 0xc0000056,
  NO_SUCH_USER: 0xc0000064,
  WRONG_PASSWORD: 0xc000006a,
  LOGON_FAILURE: 0xc000006d,
  ACCOUNT_RESTRICTION: 0xc000006e,
  INVALID_LOGON_HOURS: 0xc000006f,
  INVALID_WORKSTATION: 0xc0000070,
  PASSWORD_EXPIRED: 0xc0000071,
  ACCOUNT_DISABLED: 0xc0000072,
  DISK_FULL: 0xc000007f,
  FILE_IS_A_DIRECTORY: 0xc00000ba,
  NOT_SUPPORTED: 0xc00000bb,
  NETWORK_NAME_DELETED: 0xc00000c9,
  BAD_NETWORK_NAME: 0xc00000cc,
  DIRECTORY_NOT_EMPTY: 0xc0000101,
  NOT_A_DIRECTORY: 0xc0000103,
  CANCELLED: 0xc0000120,
  FILE_CLOSED: 0xc0000128,
  ACCOUNT_EXPIRED: 0xc0000193,
  USER_SESSION_DELETED: 0xc0000203,
  ACCOUNT_LOCKED_OUT: 0xc0000234,
  PASSWORD_MUST_CHANGE: 0xc0000224,
  NETWORK_SESSION_EXPIRED: 0xc000035c,
  INSUFFICIENT_RESOURCES: 0xc000009a,
} as const

const NAMES = new Map<number, string>(Object.entries(Status).map(([name, code]) => [code, `STATUS_${name}`]))

export function statusName(status: number): string {
  return NAMES.get(status) ?? `NTSTATUS 0x${status.toString(16).padStart(8, '0')}`
}

/** Refused credentials or account: REMOTE_AUTH. */
export const AUTH_FAILURES = new Set<number>([
  Status.NO_SUCH_USER, Status.WRONG_PASSWORD, Status.LOGON_FAILURE, Status.ACCOUNT_RESTRICTION, Status.INVALID_LOGON_HOURS, Status.INVALID_WORKSTATION,
  Status.PASSWORD_EXPIRED, Status.ACCOUNT_DISABLED, Status.ACCOUNT_EXPIRED, Status.ACCOUNT_LOCKED_OUT, Status.PASSWORD_MUST_CHANGE,
])

/** The session or tree is gone on the server's side: a new connection fixes it. */
export const SESSION_LOST = new Set<number>([Status.USER_SESSION_DELETED, Status.NETWORK_NAME_DELETED, Status.NETWORK_SESSION_EXPIRED])

/** An SMB2 answer with an error status. */
export class SmbStatusError extends Error {
  readonly status: number
  constructor(status: number, command: string) {
    super(`${command} failed with ${statusName(status)}`)
    this.status = status
  }
}
