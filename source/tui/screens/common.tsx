// Pieces the list screens share: the filtered, windowed list and the one-line labels of jobs and runs.
import { Text, type Key } from 'ink'
import { tone } from '../theme.ts'
import { useFilter, type Filter } from '../components/input.tsx'
import { useListCursor, type Cell, type ListCursor } from '../components/list.tsx'
import type { Job, JobInfo, RunStatus, RunSummary } from '../contract.ts'
import { formatDate, formatZoned, localTimezone } from '../format.ts'
import { STATUS_STYLE } from '../theme.ts'

export interface FilteredList<T> {
  filter: Filter
  rows: T[]
  list: ListCursor
  /** Rows left for the table once the filter line is drawn. */
  tableHeight: number
  selected: T | undefined
  onKey: (input: string, key: Key) => boolean
}

export function useFilteredList<T>(all: readonly T[] | undefined, text: (row: T) => string, height: number): FilteredList<T> {
  const filter = useFilter()
  const rows = (all ?? []).filter(row => filter.matches(text(row)))
  const tableHeight = height - (filter.editing || filter.text !== '' ? 1 : 0)
  const list = useListCursor(rows.length, tableHeight - 1)
  const onKey = (input: string, key: Key) => filter.onKey(input, key) || (!filter.editing && list.onKey(input, key))
  return { filter, rows, list, tableHeight, selected: rows[list.cursor], onKey }
}

export function statusCell(status: RunStatus | 'disabled' | undefined, width: 'glyph' | 'word' = 'word'): Cell {
  if (status === undefined) return { text: '-' }
  const style = STATUS_STYLE[status]
  return { text: width === 'glyph' ? style.glyph : `${style.glyph} ${status === 'pending' ? 'running' : status}`, tone: style.tone }
}

const CHECK_WORDS: Record<RunStatus, string> = { success: 'passed', failure: 'failed', cancelled: 'cancelled', interrupted: 'interrupted', pending: 'running', skipped: 'skipped' }

/** A health check's outcome in a word: passed, failed, running… */
export function checkWord(status: RunStatus): string {
  return CHECK_WORDS[status]
}

/** A health check's outcome with its status's glyph and colour (and its word: passed, failed…); '-' when nothing was checked. */
export function checkCell(status: RunStatus | undefined, width: 'glyph' | 'word' = 'word'): Cell {
  if (status === undefined) return { text: '-' }
  const style = STATUS_STYLE[status]
  return { text: width === 'glyph' ? style.glyph : `${style.glyph} ${CHECK_WORDS[status]}`, tone: style.tone }
}

/** A job's last run: its status, and the glyph of its health checks when they did not all pass (in the check's colour). */
export function lastRunCell(run: RunSummary | undefined): Cell {
  const cell = statusCell(run?.status)
  if (run === undefined || run.kind === 'health check' || run.healthCheck === undefined || run.healthCheck === 'success') return cell
  const check = STATUS_STYLE[run.healthCheck]
  return { text: `${cell.text} ${check.glyph}`, tone: check.tone }
}

/** What a run was: its job (and schedule), a mirror's said so, or the restore or health check it is. */
export function runLabel(run: RunSummary): string {
  if (run.kind !== 'backup' && run.kind !== 'mirror') return `${run.kind} ${run.jobName ?? ''}`.trimEnd()
  return `${run.kind === 'mirror' ? 'mirror ' : ''}${run.jobName ?? run.jobId ?? '-'}${run.scheduleName === undefined ? '' : ` (${run.scheduleName})`}`
}

export function vmsLabel(job: Job): string {
  if ('uuids' in job.vms) return `${job.vms.uuids.length} VM${job.vms.uuids.length === 1 ? '' : 's'}`
  const smart = job.vms.smart
  // A verify job without a VM list checks every VM its remotes hold.
  if (job.type === 'verify') return 'all'
  // A mirror's VMs are those of its source remote, filtered by the tags their backups recorded.
  if (job.type === 'mirror') return [...smart.tags.map(t => `#${t}`), ...smart.notTags.map(t => `!#${t}`)].join(' ') || `all on ${job.sourceRemote ?? '?'}`
  const parts = [
    smart.pools.length > 0 ? `${smart.pools.length} pool${smart.pools.length === 1 ? '' : 's'}` : 'all pools',
    ...smart.tags.map(t => `#${t}`),
    ...smart.notTags.map(t => `!#${t}`),
    ...(smart.powerState === undefined ? [] : [smart.powerState]),
  ]
  return `smart: ${parts.join(' ')}`
}

/** Where a job's backups go; a job run on a proxy names it first ("on edge: site-a"): cut at 80 columns, the proxy stays. */
export function targetsLabel(job: Job): string {
  if (job.type === 'mirror') return `${job.sourceRemote ?? '?'} → ${job.remotes.join(', ')}`
  const targets = [...(job.remotes ?? []), ...(job.srs ?? []).map(sr => `sr:${sr.slice(0, 8)}`)].join(', ') || '-'
  return job.proxy === undefined ? targets : `on ${job.proxy}: ${targets}`
}

export function jobSearchText(info: JobInfo): string {
  return [info.job.name, info.job.mode, vmsLabel(info.job), targetsLabel(info.job), info.lastRun?.status ?? '', info.enabled ? '' : 'disabled'].join(' ')
}

export function runSearchText(run: RunSummary): string {
  return [run.runId, run.kind, run.jobName ?? '', run.scheduleName ?? '', run.proxy === undefined ? '' : `proxy ${run.proxy}`, run.status, run.healthCheck === undefined ? '' : `check ${CHECK_WORDS[run.healthCheck]}`, formatDate(run.start)].join(' ')
}

/** Compact date for tables: 11-22 03:00. */
export function shortDate(ms: number | undefined): string {
  return ms === undefined ? '-' : formatDate(ms).slice(5)
}

/** The line above a list: how many rows (after filtering), or why the list could not be fetched. */
export function CountLine({ error, loading, count, noun }: { error: string | undefined; loading?: boolean; count: number; noun: string }) {
  return (
    <Text wrap="truncate" color={tone(error === undefined ? undefined : 'red')}>
      {error === undefined ? `${count} ${noun}${count === 1 ? '' : 's'}${loading === true ? ' …' : ''}` : `✖ ${error}`}
    </Text>
  )
}

/** The timezone a job's next run is told in: its enabled schedules' one, or the local one when they differ. */
export function nextRunZone(job: Job): string {
  const zones = new Set(job.schedules.filter(s => s.enabled).map(s => s.timezone))
  return zones.size === 1 ? [...zones][0]! : localTimezone()
}

/** A job's next run in its schedule's timezone, named when it is not the local one. */
export function nextRunText(info: JobInfo, short = false): string {
  return formatZoned(info.nextRun, nextRunZone(info.job), short)
}
