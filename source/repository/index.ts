// A backup repository on a remote, in Xen Orchestra's format: layout and dates, metadata schemas,
// listing with cache.json.gz, the commit order, deletion, retention, and the cleaner that merges and repairs.
export * from './layout.ts'
export * from './dates.ts'
export * from './metadata.ts'
export { chainRefusal, usesVhdDirectory, VHD_DIRECTORY_COMPRESSION, type DiskFormat } from './disk-format.ts'
export { readCache, writeCache, generateCache, updateCache, type VmBackupCache, type RepositoryWarning } from './cache.ts'
export { listVmBackups, listBackedUpVms, listRestorePoints, toRestorePoint, type RestorePoint } from './listing.ts'
export { allocateBackupDate, writeBackupFile, writeBackupVhdDirectory, writeBackupVhdFile, discardBackupFile, writeBackupMetadata, commitBackup, deleteBackups, type BackupFile } from './commit.ts'
export { getOldEntries, oldCopies, type LongTermRetention, type LongTermRule, type LongTermKind } from './retention.ts'
export { applyRetention, scheduleBackups, retentionRules, type RetentionOptions } from './apply-retention.ts'
export { findBaseDisk } from './vhd-chains.ts'
export { cleanVm, type CleanVmOptions, type CleanVmResult } from './clean-vm.ts'
export { verifyVm, type BackupVerdict, type VerifyFinding, type VerifyOptions } from './verify.ts'
