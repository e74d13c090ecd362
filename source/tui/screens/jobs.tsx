// Jobs: every backup job with its last and next run; the place to create, run, pause and delete them.
import { cancelAsked, runStarted, useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { Table, type Column } from '../components/list.tsx'
import { FilterLine } from '../components/input.tsx'
import { jobIdOf, type JobInfo } from '../contract.ts'
import { CountLine, jobSearchText, lastRunCell, nextRunText, statusCell, targetsLabel, useFilteredList, vmsLabel } from './common.tsx'
import { Box } from 'ink'

const COLUMNS: Column[] = [
  { title: ' ', width: 1 },
  { title: 'Job', width: 0 },
  { title: 'Mode', width: 6 },
  { title: 'VMs', width: 0 },
  { title: 'Targets', width: 0 },
  { title: 'Schedule', width: 9 },
  { title: 'Last run', width: 11 },
  { title: 'Next run', width: 17 },
]

export function JobsScreen() {
  const shell = useShell()
  const jobs = useRpc('job.list', {}, ['jobs', 'runs'])
  const view = useFilteredList(jobs.data, jobSearchText, shell.bodyHeight - 1)
  const selected = view.selected

  const withJob = (action: (info: JobInfo) => void) => () => {
    if (selected === undefined) return shell.notify('No job selected.', 'error')
    action(selected)
  }
  const actions: Record<string, () => void> = {
    n: () => shell.canChange('a new job') && shell.navigate({ screen: 'wizard', label: 'new job' }),
    e: withJob(info => shell.canChange('editing') && shell.navigate({ screen: 'wizard', id: jobIdOf(info.job), label: `edit ${info.job.name}` })),
    r: withJob(info => void shell.mutate(`run ${info.job.name}`, () => shell.client.call('job.run', { id: jobIdOf(info.job) }), runStarted(`run ${info.job.name}`))),
    c: withJob(info => {
      const runId = info.running
      if (runId === undefined) return shell.notify(`${info.job.name} is not running.`, 'error')
      shell.confirm({ message: `Cancel the running run of ${info.job.name}?`, onYes: () => void shell.mutate('cancel', () => shell.client.call('run.cancel', { runId }), cancelAsked) })
    }),
    ' ': withJob(info => void shell.mutate(info.enabled ? `disable ${info.job.name}` : `enable ${info.job.name}`, () => shell.client.call('job.setEnabled', { id: jobIdOf(info.job), enabled: !info.enabled }))),
    d: withJob(info =>
      shell.canChange('deleting') &&
        shell.confirm({ message: `Delete the job ${info.job.name}? Its backups stay on the remotes.`, typed: info.job.name, onYes: () => void shell.mutate(`delete ${info.job.name}`, () => shell.client.call('job.delete', { id: jobIdOf(info.job) })) }),
    ),
    l: withJob(info => shell.navigate({ screen: 'runs', jobId: jobIdOf(info.job) })),
    p: withJob(info => shell.navigate({ screen: 'plan', id: jobIdOf(info.job), label: `plan of ${info.job.name}` })),
  }

  useScreenKeys({
    keys: [
      { key: 'enter', label: 'open' },
      { key: 'n', label: 'new' },
      { key: 'r', label: 'run now' },
      { key: 'e', label: 'edit' },
      { key: 'p', label: 'plan' },
      { key: 'c', label: 'cancel run', more: true },
      { key: 'space', label: 'enable/disable', more: true },
      { key: 'd', label: 'delete', more: true },
      { key: 'l', label: "job's runs", more: true },
      { key: '/', label: 'filter', more: true },
    ],
    capturing: view.filter.editing,
    onKey: (input, key) => {
      if (view.onKey(input, key)) return true
      if (key.return) return (withJob(info => shell.navigate({ screen: 'job', id: jobIdOf(info.job), label: info.job.name }))(), true)
      const action = actions[input]
      if (action === undefined) return false
      action()
      return true
    },
  })

  return (
    <Box flexDirection="column">
      <CountLine error={jobs.error} loading={jobs.loading} count={view.rows.length} noun="job" />
      <FilterLine filter={view.filter} />
      <Table
        columns={COLUMNS}
        rows={view.rows}
        rowKey={info => jobIdOf(info.job)}
        list={view.list}
        height={view.tableHeight}
        width={shell.columns}
        empty="No jobs yet: press n to create one."
        cells={info => [
          info.running !== undefined ? statusCell('pending', 'glyph') : info.enabled ? { text: ' ' } : statusCell('disabled', 'glyph'),
          { text: info.job.name },
          // A verify job has no mode (it checks full and delta backups alike).
          { text: info.job.type === 'verify' ? 'verify' : info.job.mode },
          { text: vmsLabel(info.job) },
          { text: targetsLabel(info.job) },
          { text: info.job.schedules.map(s => s.cron).join(' | ') },
          info.running !== undefined ? statusCell('pending') : lastRunCell(info.lastRun),
          { text: info.enabled ? nextRunText(info, true) : 'disabled' },
        ]}
      />
    </Box>
  )
}
