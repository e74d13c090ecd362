// Backup remotes: a narrow backend core every store implements (local folder, S3, Azure Blob; NFS and SMB to
// come), XO's encryption and the decorators composed in one place, and the file-level handler built on the
// core by capability.
export type { Backend, Capabilities, EntryStat, ListEntry, ListPage, WriteOptions, WriteData, RemoteSpace, RemoteLock, LockOptions } from './backend.ts'
export { listAll, normalizePath, OBJECT_STORE_CAPABILITIES } from './backend.ts'
export type { RemoteHandler, RandomAccessFile, FileSystemAccess, RemoteEntryStat, OutputStreamOptions } from './handler.ts'
export { BackendHandler, fileSystemAccess } from './handler.ts'
export { parseRemoteUrl, formatRemoteUrl, redactRemoteUrl, type RemoteUrl, type RemoteType, type RemoteOptions } from './url.ts'
export { openRemote, openBackend, decorate, type OpenRemoteOptions } from './remotes.ts'
export { LocalBackend, LocalHandler, TEMPORARY_FILE, WRITE_WINDOW } from './local.ts'
export { withRetries, type RetryPolicy } from './retry.ts'
export { withConcurrencyLimit, withLogging } from './decorators.ts'
export { takeObjectLock } from './object-lock.ts'
export { remoteFull } from './errors.ts'
