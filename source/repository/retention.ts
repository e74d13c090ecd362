// Which backups retention deletes: XO's getOldEntries. Keep the newest minCount, plus for each long-term
// bucket kind the oldest entry of each of its N most recent non-empty buckets (gaps do not count).
import { LifeboatError } from '../util/errors.ts'

export type LongTermKind = 'daily' | 'weekly' | 'monthly' | 'yearly'
export interface LongTermRule {
  retention: number
  /** Bucket boundaries: firstHourOfTheDay (daily), firstDayOfWeek (weekly), firstDayOfMonth, firstDayOfYear. */
  settings?: { firstHourOfTheDay?: number; firstDayOfWeek?: number; firstDayOfMonth?: number; firstDayOfYear?: number }
}
export type LongTermRetention = Partial<Record<LongTermKind, LongTermRule>>

const KINDS: readonly LongTermKind[] = ['daily', 'weekly', 'monthly', 'yearly']

function invalid(message: string): LifeboatError {
  return new LifeboatError('RETENTION_INVALID', message)
}

/**
 * The entries to delete, in their original order. Entries are oldest first (strictly increasing
 * timestamps); entries without a timestamp (replicas, snapshots) work with count retention only.
 */
export function getOldEntries<T extends { timestamp?: number }>(minCount: number, entries: readonly T[], options: { longTermRetention?: LongTermRetention; timezone?: string } = {}): T[] {
  if (!Number.isInteger(minCount) || minCount < 0) throw invalid(`The number of backups to keep must be a whole number ≥ 0, not ${JSON.stringify(minCount)}.`)
  const rules = Object.entries(options.longTermRetention ?? {}) as Array<[string, LongTermRule]>
  const buckets = rules.map(([kind, rule]) => {
    if (!KINDS.includes(kind as LongTermKind)) throw invalid(`"${kind}" is not a long-term retention kind; use daily, weekly, monthly or yearly.`)
    if (options.timezone === undefined) throw invalid('Long-term retention needs a timezone (the one of the schedule) to cut days, weeks, months and years.')
    if (!Number.isInteger(rule.retention) || rule.retention <= 0) throw invalid(`The ${kind} retention must be a whole number > 0, not ${JSON.stringify(rule.retention)}.`)
    return { remaining: rule.retention, last: undefined as string | undefined, label: bucketLabel(kind as LongTermKind, options.timezone, rule.settings ?? {}), kept: new Map<string, T>() }
  })

  const kept = new Set<T>()
  let previous = Infinity
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i]!
    if (entry.timestamp !== undefined) {
      if (!Number.isFinite(entry.timestamp)) throw invalid(`A backup has an invalid timestamp (${JSON.stringify(entry.timestamp)}).`)
      if (entry.timestamp >= previous) throw invalid('Backups must be sorted oldest first with distinct timestamps to apply retention.')
      previous = entry.timestamp
      for (const bucket of buckets) {
        const label = bucket.label(entry.timestamp)
        if (label !== bucket.last) {
          if (bucket.remaining === 0) continue
          bucket.last = label
          bucket.remaining--
        }
        // Walking newest to oldest, the last entry seen in a bucket is its oldest: that one is kept.
        bucket.kept.set(label, entry)
      }
    } else if (buckets.length > 0) {
      throw invalid("Long-term retention needs timestamps, and these entries have none (replicas and snapshots use count retention only).")
    }
    if (i >= entries.length - minCount) kept.add(entry)
  }
  for (const bucket of buckets) for (const entry of bucket.kept.values()) kept.add(entry)
  return entries.filter(entry => !kept.has(entry))
}

/**
 * Retention over restore points that may lie on several targets (distributed mode), in any order. Entries with
 * the same `point` (the snapshot they were made from) are copies of one restore point, on several targets since
 * the job was not distributed: they count once and are kept or deleted together. Two points of the same second
 * (two targets' clocks are the snapshots', to the second) are ordered by their point and count as two.
 * Returns the entries to delete. One target is the case of a single place.
 */
export function oldCopies<T extends { timestamp: number; point: string }>(minCount: number, entries: readonly T[], options: { longTermRetention?: LongTermRetention; timezone?: string } = {}): T[] {
  const points = new Map<string, { timestamp: number; point: string; copies: T[] }>()
  for (const entry of entries) {
    const known = points.get(entry.point)
    if (known === undefined) points.set(entry.point, { timestamp: entry.timestamp, point: entry.point, copies: [entry] })
    else known.copies.push(entry)
  }
  const sorted = [...points.values()].sort((a, b) => a.timestamp - b.timestamp || (a.point < b.point ? -1 : a.point > b.point ? 1 : 0))
  // getOldEntries wants strictly increasing timestamps: a point of the same millisecond as the one before is a millisecond later.
  let previous = -Infinity
  const ordered = sorted.map(point => {
    const timestamp = Math.max(point.timestamp, previous + 1)
    previous = timestamp
    return { timestamp, copies: point.copies }
  })
  return getOldEntries(minCount, ordered, options).flatMap(point => point.copies)
}

interface LocalDate {
  year: number
  month: number
  day: number
  hour: number
}

const formatters = new Map<string, Intl.DateTimeFormat>()

function localDate(timestamp: number, timezone: string): LocalDate {
  let format = formatters.get(timezone)
  if (format === undefined) {
    try {
      format = new Intl.DateTimeFormat('en-US', { timeZone: timezone, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', hourCycle: 'h23' })
    } catch {
      throw invalid(`"${timezone}" is not a known IANA timezone (like Europe/Paris).`)
    }
    formatters.set(timezone, format)
  }
  const parts = Object.fromEntries(format.formatToParts(timestamp).map(p => [p.type, p.value]))
  return { year: Number(parts.year), month: Number(parts.month), day: Number(parts.day), hour: Number(parts.hour) }
}

// Calendar arithmetic on a wall-clock date (what moment does on a zoned date): shift, then read back.
function shifted(date: LocalDate, hours: number, days: number): Date {
  return new Date(Date.UTC(date.year, date.month - 1, date.day - days, date.hour - hours))
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0')

function bucketLabel(kind: LongTermKind, timezone: string, settings: NonNullable<LongTermRule['settings']>): (timestamp: number) => string {
  return timestamp => {
    const local = localDate(timestamp, timezone)
    switch (kind) {
      case 'daily': {
        const d = shifted(local, settings.firstHourOfTheDay ?? 0, 0)
        return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`
      }
      case 'weekly': {
        const { year, week } = localeWeek(shifted(local, 0, settings.firstDayOfWeek ?? 0))
        return `${pad(year, 4)}-${pad(week)}`
      }
      case 'monthly': {
        const d = shifted(local, 0, settings.firstDayOfMonth ?? 0)
        return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}`
      }
      case 'yearly':
        return pad(shifted(local, 0, settings.firstDayOfYear ?? 0).getUTCFullYear(), 4)
    }
  }
}

// moment's `gggg-ww` in its default (en) locale: weeks start on Sunday and week 1 holds January 1st.
const WEEK_START = 0
const JANUARY_FIRST_WEEK_DAY = 6

function firstWeekOffset(year: number): number {
  const fixed = 7 + WEEK_START - JANUARY_FIRST_WEEK_DAY
  const weekday = (7 + new Date(Date.UTC(year, 0, fixed)).getUTCDay() - WEEK_START) % 7
  return -weekday + fixed - 1
}

function weeksInYear(year: number): number {
  const days = (Date.UTC(year + 1, 0, 1) - Date.UTC(year, 0, 1)) / 86_400_000
  return (days - firstWeekOffset(year) + firstWeekOffset(year + 1)) / 7
}

function localeWeek(date: Date): { year: number; week: number } {
  const year = date.getUTCFullYear()
  const dayOfYear = (Date.UTC(year, date.getUTCMonth(), date.getUTCDate()) - Date.UTC(year, 0, 1)) / 86_400_000 + 1
  const week = Math.floor((dayOfYear - firstWeekOffset(year) - 1) / 7) + 1
  if (week < 1) return { year: year - 1, week: week + weeksInYear(year - 1) }
  if (week > weeksInYear(year)) return { year: year + 1, week: week - weeksInYear(year) }
  return { year, week }
}
