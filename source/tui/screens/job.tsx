// One job: its selection, targets, the proxy it runs on, settings and schedules, and its recent runs (Enter opens one).
import { Box, Text } from 'ink'
import { cancelAsked, runStarted, useNow, useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { Table } from '../components/list.tsx'
import { jobIdOf } from '../contract.ts'
import { formatBytes, formatElapsed } from '../format.ts'
import { tone } from '../theme.ts'
import { nextRunText, runSearchText, shortDate, statusCell, useFilteredList, vmsLabel } from './common.tsx'
import { JOB_KEYS, pressed, type ScreenKey } from '../keys.ts'
import { modeTitle, seedRefusal, shapeOf, srLabel } from './modes.ts'

export function JobScreen({ id }: { id: string }) {
  const shell = useShell()
  const info = useRpc('job.get', { id }, ['jobs', 'runs'])
  const runs = useRpc('run.list', { jobId: id, limit: 50 }, ['runs'])
  const srs = useRpc('sr.list', {}, ['pools'])
  const job = info.data?.job
  const settings = Object.entries(job?.settings ?? {}).filter(([, v]) => v !== undefined)
  const headerLines = 5 + (job?.proxy === undefined ? 0 : 1) + (job?.schedules.length ?? 0)
  const view = useFilteredList(runs.data, runSearchText, Math.max(3, shell.bodyHeight - headerLines))
  const now = useNow((runs.data ?? []).some(r => r.status === 'pending'))

  useScreenKeys({
    keys: Object.values(JOB_KEYS),
    capturing: view.filter.editing,
    onKey: (input, key) => {
      if (view.onKey(input, key)) return true
      if (info.data === undefined || job === undefined) return false
      const jobId = jobIdOf(job)
      const running = info.data.running
      const is = (binding: ScreenKey) => pressed(binding, input, key)
      if (is(JOB_KEYS.open) && view.selected !== undefined) shell.navigate({ screen: 'run', runId: view.selected.runId })
      else if (is(JOB_KEYS.run)) void shell.mutate(`run ${job.name}`, () => shell.client.call('job.run', { id: jobId }), runStarted(`run ${job.name}`))
      else if (is(JOB_KEYS.edit)) shell.canChange('editing') && shell.navigate({ screen: 'wizard', id: jobId, label: `edit ${job.name}` })
      else if (is(JOB_KEYS.plan)) shell.navigate({ screen: 'plan', id: jobId, label: `plan of ${job.name}` })
      else if (is(JOB_KEYS.enable)) void shell.mutate(info.data.enabled ? 'disable' : 'enable', () => shell.client.call('job.setEnabled', { id: jobId, enabled: !info.data!.enabled }))
      else if (is(JOB_KEYS.seed)) {
        const refusal = seedRefusal(job)
        if (refusal !== undefined) shell.notify(refusal, 'error')
        else if (shell.canChange('cr-seed')) shell.navigate({ screen: 'seed', id: jobId, label: 'cr-seed' })
      } else if (is(JOB_KEYS.cancel)) {
        if (running === undefined) shell.notify(`${job.name} is not running.`, 'error')
        else if (shell.canChange('cancel')) shell.confirm({ message: `Cancel the running run of ${job.name}?`, onYes: () => void shell.mutate('cancel', () => shell.client.call('run.cancel', { runId: running }), cancelAsked) })
      } else return false
      return true
    },
  })

  if (job === undefined || info.data === undefined) return <Text color={tone(info.error === undefined ? undefined : 'red')}>{info.error ?? 'Loading the job…'}</Text>
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        <Text bold>{job.name}</Text> · {modeTitle(shapeOf(job))} · {info.data.enabled ? `next run ${nextRunText(info.data)}` : '⏸ disabled'}
        {info.data.running === undefined ? '' : ' · ⟳ running'}
      </Text>
      <Text wrap="truncate">VMs: {vmsLabel(job)}</Text>
      <Text wrap="truncate">Targets: {[...job.remotes.map(r => `remote ${r}`), ...job.srs.map(sr => srLabel(sr, srs.data))].join(', ') || 'none: snapshots kept on the source pool'}</Text>
      {job.proxy === undefined ? null : <Text wrap="truncate">Runs on: proxy {job.proxy} (the disks go from the pools to the targets through it)</Text>}
      <Text wrap="truncate">Settings: {settings.length === 0 ? 'defaults' : settings.map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ')}</Text>
      {job.schedules.map(s => (
        <Text key={s.name} wrap="truncate">
          {s.enabled ? '⏰' : '⏸'} {s.name}: {s.cron} {s.timezone} · keep {s.retention.backups ?? '-'} backups, {s.retention.replicas ?? '-'} replicas, {s.retention.snapshots ?? '-'} snapshots
          {s.fullInterval === undefined ? '' : ` · full every ${s.fullInterval}`}
        </Text>
      ))}
      <Table
        columns={[
          { title: 'Recent runs', width: 13 },
          { title: 'Started', width: 11 },
          { title: 'Duration', width: 8, align: 'right' },
          { title: 'Size', width: 9, align: 'right' },
          { title: 'Run', width: 0 },
        ]}
        rows={view.rows}
        rowKey={r => r.runId}
        list={view.list}
        height={view.tableHeight}
        width={shell.columns}
        empty="No runs yet: press r to run it now."
        cells={r => [statusCell(r.status), { text: shortDate(r.start) }, { text: formatElapsed((r.end ?? now) - r.start) }, { text: formatBytes(r.size) }, { text: r.runId }]}
      />
    </Box>
  )
}
