// Runs: every backup, restore and health check run, newest first, with its outcome and its health checks'
// (a backup that succeeded and whose check failed shows both); Enter opens its task tree.
import { Box } from 'ink'
import { cancelAsked, useNow, useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { Table, type Column } from '../components/list.tsx'
import { FilterLine } from '../components/input.tsx'
import { formatBytes, formatElapsed } from '../format.ts'
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

export function RunsScreen({ jobId }: { jobId?: string }) {
  const shell = useShell()
  const runs = useRpc('run.list', { limit: 1000, ...(jobId !== undefined && { jobId }) }, ['runs'])
  const view = useFilteredList(runs.data, runSearchText, shell.bodyHeight - 1)
  const now = useNow((runs.data ?? []).some(r => r.status === 'pending'))

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
        columns={COLUMNS}
        rows={view.rows}
        rowKey={run => run.runId}
        list={view.list}
        height={view.tableHeight}
        width={shell.columns}
        empty="No runs yet."
        cells={run => [
          statusCell(run.status),
          checkCell(run.healthCheck, 'glyph'),
          { text: runLabel(run) },
          { text: shortDate(run.start) },
          { text: formatElapsed((run.end ?? now) - run.start) },
          { text: run.vms === undefined ? '-' : String(run.vms) },
          { text: formatBytes(run.size) },
          { text: run.runId },
        ]}
      />
    </Box>
  )
}
