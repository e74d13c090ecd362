// Backup remotes behind one narrow interface (local folder now; NFS, SMB, S3, Azure to come), XO's
// remote URL forms, retries as a decorator, and directory locks.
export type { RemoteHandler, RandomAccessFile, FileSystemAccess, RemoteSpace, RemoteEntryStat, OutputStreamOptions, RemoteLock, LockOptions } from './handler.ts'
export { fileSystemAccess, TEMPORARY_FILE } from './handler.ts'
export { parseRemoteUrl, formatRemoteUrl, redactRemoteUrl, type RemoteUrl, type RemoteType, type RemoteOptions } from './url.ts'
export { openRemote } from './remotes.ts'
export { LocalHandler } from './local.ts'
export { withRetries, type RetryPolicy } from './retry.ts'
export { remoteFull } from './errors.ts'
