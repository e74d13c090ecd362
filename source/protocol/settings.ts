// A job's settings: what each one means, its default, and XO's resolution order, later wins:
// defaults → job → schedule → VM → target (remote or SR).
import { z } from 'zod'
import { parseDuration } from './duration.ts'

/** A duration ('4h', '30m') or a number of milliseconds, to milliseconds; 0, null or 'none' mean no limit (0). */
const duration = z
  .union([z.number().int().nonnegative(), z.string(), z.null()])
  .transform((value, context) => {
    if (value === null || value === 'none') return 0
    if (typeof value === 'number') return value
    const ms = parseDuration(value)
    if (ms === undefined) {
      context.addIssue({ code: 'custom', message: `"${value}" is not a duration; write it like "4h", "30m", "1h30m" or "none".` })
      return z.NEVER
    }
    return ms
  })

const count = (what: string) => z.number({ error: `${what} must be a whole number ≥ 0.` }).int({ error: `${what} must be a whole number ≥ 0.` }).nonnegative({ error: `${what} must be a whole number ≥ 0.` })
const flag = (what: string) => z.boolean({ error: `${what} must be true or false.` })
const longTermRule = z.strictObject({
  retention: z.number().int().positive({ error: 'A long-term retention must keep at least 1 backup.' }),
  settings: z.strictObject({ firstHourOfTheDay: z.number().int().min(0).max(23).optional(), firstDayOfWeek: z.number().int().min(0).max(6).optional(), firstDayOfMonth: z.number().int().min(0).max(27).optional(), firstDayOfYear: z.number().int().min(0).max(364).optional() }).optional(),
})

/** Every setting, optional: the shape of the job's `settings`, a schedule's `settings` and each override. */
export const settingsInputSchema = z.strictObject({
  /** VMs backed up at the same time by one run of the job; 0 = all at once. */
  concurrency: count('concurrency').optional(),
  /** Bound on a whole run, in ms once parsed (0 = none); cancels it for real when reached. */
  timeout: duration.optional(),
  /** Full mode: compression asked of XAPI for the XVA. */
  compression: z.enum(['none', 'gzip', 'zstd'], { error: 'compression must be "none", "gzip" or "zstd".' }).optional(),
  /** Delta mode: a full every N backups of a chain (0 = never forced). */
  fullInterval: count('fullInterval').optional(),
  /** Make this run (usually one schedule) a full backup. */
  forceFull: flag('forceFull').optional(),
  /** Backups kept per remote, replicas per SR, snapshots on the source (set from a schedule's `retention`). */
  exportRetention: count('exportRetention').optional(),
  copyRetention: count('copyRetention').optional(),
  snapshotRetention: count('snapshotRetention').optional(),
  longTermRetention: z.strictObject({ daily: longTermRule.optional(), weekly: longTermRule.optional(), monthly: longTermRule.optional(), yearly: longTermRule.optional() }).optional(),
  /** Shut a running VM down for the snapshot only, then start it again. */
  offlineSnapshot: flag('offlineSnapshot').optional(),
  /** Snapshot with memory (VM.checkpoint). */
  checkpointSnapshot: flag('checkpointSnapshot').optional(),
  /** Apply retention before the transfer instead of after (frees space first, at the cost of one backup less for a while). */
  deleteFirst: flag('deleteFirst').optional(),
  /**
   * XO's distributed mode: each VM's backup goes to one of the job's remotes per run (the one with the most free
   * space; a delta chain stays where it is), and retention counts backups across all of them. Job-wide only.
   */
  distributeBackups: flag('distributeBackups').optional(),
  /** The same over the job's SRs: each VM replicated to one SR per run, replica retention across all of them. */
  distributeReplications: flag('distributeReplications').optional(),
  /** Continuous replication: the replica's interfaces get new MAC addresses (default: the source's, for a replica never run beside it). */
  newMacAddresses: flag('newMacAddresses').optional(),
  /** Bytes per second for the whole run; 0 = no limit. */
  maxExportRate: count('maxExportRate').optional(),
  /** A failed VM is tried again this many times within the run. */
  nRetriesVmBackupFailures: count('nRetriesVmBackupFailures').optional(),
  /**
   * XO's health check: after the transfer, the backup just written is restored (a replica cloned or copied) onto
   * this SR (its uuid, or its name when the job is created), started, waited for, and destroyed. '' or null: none.
   */
  healthCheckSr: z.union([z.string({ error: 'healthCheckSr must be an SR uuid or name.' }).max(200), z.null()]).transform(value => value ?? '').optional(),
  /** Only the VMs with one of these tags are checked (none: every VM); a VM tagged xo:no-health-check never is. */
  healthCheckVmsWithTags: z.array(z.string({ error: 'healthCheckVmsWithTags must be a list of tags.' }).min(1).max(200), { error: 'healthCheckVmsWithTags must be a list of tags.' }).max(100).optional(),
  /** One bound on every step of a health check (restore, start, guest agent, script), in ms once parsed; XO's default 10 min. */
  healthCheckTimeout: duration.refine(ms => ms > 0, { error: 'healthCheckTimeout must be a duration above 0, like "10m": a check without a bound would never end on a guest that does not report.' }).optional(),
})
export type SettingsInput = z.input<typeof settingsInputSchema>
export type SettingsOverrides = z.output<typeof settingsInputSchema>

export const DEFAULT_SETTINGS = {
  concurrency: 2,
  timeout: 0,
  compression: 'none' as 'none' | 'gzip' | 'zstd',
  fullInterval: 0,
  forceFull: false,
  /** Backups kept per remote when no retention is given: never 0, which would write nothing (a week of dailies). */
  exportRetention: 7,
  /** Replicas kept per SR when no retention is given: never 0, which would replicate nothing. */
  copyRetention: 1,
  snapshotRetention: 0,
  longTermRetention: undefined as SettingsOverrides['longTermRetention'],
  offlineSnapshot: false,
  checkpointSnapshot: false,
  deleteFirst: false,
  distributeBackups: false,
  distributeReplications: false,
  newMacAddresses: false,
  maxExportRate: 0,
  nRetriesVmBackupFailures: 0,
  healthCheckSr: '',
  healthCheckVmsWithTags: [] as string[],
  healthCheckTimeout: 10 * 60 * 1000,
}
export type Settings = typeof DEFAULT_SETTINGS

/** Layers applied in order over the defaults; a layer's undefined values do not erase earlier ones. */
export function mergeSettings(...layers: Array<SettingsOverrides | undefined>): Settings {
  const settings: Record<string, unknown> = { ...DEFAULT_SETTINGS }
  for (const layer of layers) {
    if (layer === undefined) continue
    for (const [key, value] of Object.entries(layer)) if (value !== undefined) settings[key] = value
  }
  return settings as Settings
}
