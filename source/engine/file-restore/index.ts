// File-level restore: a delta restore point's disks read straight from their VHD chains, their partitions
// (MBR, GPT) and LVM volumes, ext/XFS/NTFS browsed a page at a time, files fetched as tar or zip streams.
export { FileRestoreSession, type BackupDisk, type Volume } from './session.ts'
export { FileSystemBrowser, DEFAULT_PAGE, MAX_PAGE, type FolderPage, type FoundEntry } from './browse.ts'
export { archiveStream, fetchToPath, type ArchiveFormat, type FetchProgress, type FetchResult } from './fetch.ts'
export type { FileEntry, EntryType } from './filesystem.ts'
export { cleanFileRestoreLeftovers } from './leftovers.ts'
