// The daemon's RPC contract, the only code shared by the daemon and its clients (TUI, CLI): the wire
// envelope, each method's params and result, the notifications, and the job file's schema.
export * from './jsonrpc.ts'
export * from './methods.ts'
export * from './events.ts'
export { jobSchema, parseJob, findSchedule, isValidTimezone, type Job, type JobInput, type Schedule, type VmSelection, type JobProblem } from './job.ts'
export { settingsInputSchema, DEFAULT_SETTINGS, type Settings, type SettingsInput } from './settings.ts'
export { parseDuration, formatDuration } from './duration.ts'
export { verificationLabel } from './verification.ts'
