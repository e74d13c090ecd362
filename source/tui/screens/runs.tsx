// Runs: every backup, restore and health check run, newest first, with its outcome and its health checks'
// (a backup that succeeded and whose check failed shows both) and where it ran (a proxy's name); Enter opens its task tree.
import { Box } from 'ink'
import { cancelAsked, useNow, useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { layoutColumns, Table, type Cell, type Column } from '../components/list.tsx'
import { FilterLine } from '../components/input.tsx'
import { formatBytes, formatElapsed } from '../format.ts'
import type { RunSummary } from '../contract.ts'
import { checkCell, CountLine, runLabel, runSearchText, shortDate, statusCell, useFilteredList } from './common.tsx'

const COLUMNS: Column[] = [
  { title: 'Status', width: 13 },
  { title: 'Check', width: 5 },
  { title: 'Job', width: 0 },
  { title: 'Started', width: 11 },
  { title: 'Duration', width: 8, align: 'right' },
  { title: 'VMs', width: 3, align: 'right' },
  { title: 'Size', width: 9, align: 'right' },
  { title: 'Run', width: 12 },
]

const JOB_AT_80 = layoutColumns(COLUMNS, 79).find(c => c.title === 'Job')!.width
const WHERE_WIDTH = { min: 'Where'.length, max: 12 }

/**
 * The columns for these runs: a Where column (the proxy's name; blank for the appliance) once a run in the list
 * ran on a proxy. The job's name never gets less room than it has at 80 columns without it: the Run column
 * (a run id cut short; the run's screen shows it whole) gives way when it would.
 */
export function runColumns(runs: readonly RunSummary[], width: number): Column[] {
  const longest = Math.max(0, ...runs.map(run => run.proxy?.length ?? 0))
  if (longest === 0) return COLUMNS
  const where: Column = { title: 'Where', width: Math.min(WHERE_WIDTH.max, Math.max(WHERE_WIDTH.min, longest)) }
  const columns = [...COLUMNS.slice(0, 3), where, ...COLUMNS.slice(3)]
  const job = layoutColumns(columns, width - 1).find(c => c.title === 'Job')!.width
  return job >= JOB_AT_80 ? columns : columns.filter(c => c.title !== 'Run')
}

/** A run's cell under each column's title. */
function runCells(run: RunSummary, now: number): Record<string, Cell> {
  return {
    Status: statusCell(run.status),
    Check: checkCell(run.healthCheck, 'glyph'),
    Job: { text: runLabel(run) },
    Where: { text: run.proxy ?? '' },
    Started: { text: shortDate(run.start) },
    Duration: { text: formatElapsed((run.end ?? now) - run.start) },
    VMs: { text: run.vms === undefined ? '-' : String(run.vms) },
    Size: { text: formatBytes(run.size) },
    Run: { text: run.runId },
  }
}

export function RunsScreen({ jobId }: { jobId?: string }) {
  const shell = useShell()
  const runs = useRpc('run.list', { limit: 1000, ...(jobId !== undefined && { jobId }) }, ['runs'])
  const view = useFilteredList(runs.data, runSearchText, shell.bodyHeight - 1)
  const now = useNow((runs.data ?? []).some(r => r.status === 'pending'))
  const columns = runColumns(runs.data ?? [], shell.columns)

  useScreenKeys({
    keys: [
      { key: 'enter', label: 'task tree' },
      { key: 'f', label: 'follow running' },
      { key: 'c', label: 'cancel' },
      { key: '/', label: 'filter' },
    ],
    capturing: view.filter.editing,
    onKey: (input, key) => {
      if (view.onKey(input, key)) return true
      const run = view.selected
      if (key.return && run !== undefined) return (shell.navigate({ screen: 'run', runId: run.runId }), true)
      if (input === 'f') {
        const running = (runs.data ?? []).find(r => r.status === 'pending')
        if (running === undefined) shell.notify('Nothing is running now.', 'error')
        else shell.navigate({ screen: 'run', runId: running.runId, follow: true })
        return true
      }
      if (input === 'c' && run !== undefined) {
        if (run.status !== 'pending') shell.notify('This run is over; only a running run can be cancelled.', 'error')
        else if (shell.canChange('cancel')) shell.confirm({ message: `Cancel run ${run.runId} (${run.jobName ?? run.kind})?`, onYes: () => void shell.mutate('cancel', () => shell.client.call('run.cancel', { runId: run.runId }), cancelAsked) })
        return true
      }
      return false
    },
  })

  return (
    <Box flexDirection="column">
      <CountLine error={runs.error} loading={runs.loading} count={view.rows.length} noun="run" />
      <FilterLine filter={view.filter} />
      <Table
        columns={columns}
        rows={view.rows}
        rowKey={run => run.runId}
        list={view.list}
        height={view.tableHeight}
        width={shell.columns}
        empty="No runs yet."
        cells={run => {
          const cells = runCells(run, now)
          return columns.map(c => cells[c.title]!)
        }}
      />
    </Box>
  )
}
