// The backup job model: the job file's zod schema with one message per invalid field, settings with
// their defaults resolved in XO's order, durations, and the VMs a run selects.
// The schemas live in protocol/ (the daemon's clients validate job files too); this folder adds selection.
export { jobSchema, parseJob, resolveSettings, findSchedule, isValidTimezone, type Job, type JobInput, type Schedule, type VmSelection, type JobProblem, type SettingsTarget } from '../../protocol/job.ts'
export { settingsInputSchema, DEFAULT_SETTINGS, mergeSettings, type Settings, type SettingsInput, type SettingsOverrides } from '../../protocol/settings.ts'
export { parseDuration, formatDuration } from '../../protocol/duration.ts'
export { selectVms, exclusionReason, smartMismatch, vmCandidate, type VmCandidate, type VmSelectionResult, type ExclusionReason } from './smart.ts'
