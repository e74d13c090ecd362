// The backup engine, UI-free and socket-free: runs of backup jobs against pools onto remotes, restores,
// and the clean-up after a crash. The daemon owns the connections and passes them in.
export { startBackupRun, startRun, type EngineContext, type StartedRun, type RunOptions } from './run/backup-run.ts'
export { startMirrorRun, type MirrorOptions } from './run/mirror-run.ts'
export { cleanupAfterCrash, type RunLeftovers } from './run/crash-cleanup.ts'
export { startRestoreRun, startHealthCheckRun, type RestoreRequest, type HealthCheckRequest } from './run/restore-run.ts'
export { restoreBackup, type RestoreOptions, type RestoredVm } from './restore/index.ts'
export { crSeed, type CrSeedRequest } from './replication/cr-seed.ts'
export { planBackupRun, type PlanOptions } from './plan/plan.ts'
export { startVerifyRun, type VerifyRequest, type VerifyRunResult, type VerifiedBackup } from './run/verify-run.ts'
export { startFileFetchRun, type FileFetchRequest } from './run/file-restore-run.ts'
export { FileRestoreSession, cleanFileRestoreLeftovers, type FileSystemBrowser } from './file-restore/index.ts'
