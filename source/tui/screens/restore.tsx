// Restore: remote → VM → restore point → SR (any connected pool) → name and start → confirm; then the
// restore's own run opens, followed live. `h` on a restore point health-checks it instead (restored on the SR,
// started, destroyed: a run of its own); the points show how their last check went; `f` browses a delta
// point's files (the files screen). esc steps back.
import { useState } from 'react'
import { Box, Text } from 'ink'
import { runStarted, useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { Table } from '../components/list.tsx'
import { FilterLine } from '../components/input.tsx'
import { FormView, useForm, type Field } from '../components/form.tsx'
import type { BackupListEntry, Remote, RunStatus, RunSummary, Sr } from '../contract.ts'
import { verificationLabel } from '../../protocol/verification.ts'
import { formatBytes, formatDate } from '../format.ts'
import { checkCell, useFilteredList } from './common.tsx'

type Step = 'remote' | 'vm' | 'point' | 'sr' | 'options' | 'confirm'
const STEPS: Step[] = ['remote', 'vm', 'point', 'sr', 'options', 'confirm']
const STEP_TITLES: Record<Step, string> = { remote: 'Remote', vm: 'VM', point: 'Restore point', sr: 'Target SR', options: 'Options', confirm: 'Confirm' }

interface VmGroup {
  vmUuid: string
  vmName: string
  points: BackupListEntry[]
}

const OPTION_FIELDS: Field[] = [
  { name: 'name', label: 'New VM name', kind: 'text' },
  { name: 'start', label: 'Start after restore', kind: 'toggle' },
]

export function RestoreScreen() {
  const shell = useShell()
  const [step, setStep] = useState<Step>('remote')
  const [remote, setRemote] = useState<Remote>()
  const [vm, setVm] = useState<VmGroup>()
  const [point, setPoint] = useState<BackupListEntry>()
  const [sr, setSr] = useState<Sr>()
  const [purpose, setPurpose] = useState<'restore' | 'check'>('restore')
  const height = shell.bodyHeight - 2

  const remotes = useRpc('remote.list', {}, ['remotes'])
  const backups = useRpc('backup.list', remote === undefined ? undefined : { remote: remote.name })
  const srs = useRpc('sr.list', step === 'sr' ? {} : undefined)
  const jobs = useRpc('job.list', step === 'point' ? {} : undefined)
  const runs = useRpc('run.list', step === 'point' ? { limit: 1000 } : undefined, ['runs'])
  const lastCheck = lastChecks(runs.data ?? [])
  // Until the jobs are listed, a job is not said to be deleted.
  const jobName = (id: string) => (jobs.data === undefined ? '…' : (jobs.data.find(info => info.job.id === id)?.job.name ?? `job ${id.slice(0, 8)} (deleted or from elsewhere)`))
  const groups = groupByVm(backups.data ?? [])

  const remoteList = useFilteredList(remotes.data, r => `${r.name} ${r.url}`, height)
  const vmList = useFilteredList(groups, g => `${g.vmName} ${g.vmUuid}`, height)
  const pointList = useFilteredList(vm?.points, p => `${pointDate(p)} ${p.mode} ${jobName(p.jobId)}`, height)
  const srList = useFilteredList(srs.data, s => `${s.name} ${s.poolName} ${s.type}`, height)
  const options = useForm(OPTION_FIELDS, { name: '', start: false })

  const back = () => setStep(purpose === 'check' && step === 'confirm' ? 'sr' : STEPS[Math.max(0, STEPS.indexOf(step) - 1)]!)
  const lists = { remote: remoteList, vm: vmList, point: pointList, sr: srList }
  const current = step === 'options' || step === 'confirm' ? undefined : lists[step]

  const start = async () => {
    if (remote === undefined || point === undefined || sr === undefined) return
    const name = String(options.values.name).trim()
    const started = await shell.mutate(
      `restore ${point.vmName}`,
      () => shell.client.call('restore.start', { remote: remote.name, backupId: point.id, sr: sr.uuid, ...(name !== '' && { name }), start: options.values.start === true }),
      runStarted(`restore ${point.vmName}`),
    )
    if (started !== undefined) shell.navigate({ screen: 'run', runId: started.runId, follow: true })
  }

  const check = async () => {
    if (remote === undefined || point === undefined || sr === undefined) return
    const started = await shell.mutate(`health check of ${point.vmName}`, () => shell.client.call('backup.check', { remote: remote.name, backupId: point.id, sr: sr.uuid }), runStarted(`health check of ${point.vmName}`))
    if (started !== undefined) shell.navigate({ screen: 'run', runId: started.runId, follow: true })
  }

  useScreenKeys({
    keys: [
      { key: 'enter', label: step === 'confirm' ? (purpose === 'check' ? 'health check' : 'restore') : 'choose' },
      ...(step === 'point' ? [{ key: 'h', label: 'health check' }, { key: 'f', label: 'browse files' }] : []),
      { key: 'esc', label: 'step back' },
      ...(current === undefined ? [] : [{ key: '/', label: 'filter' }]),
    ],
    capturing: step === 'options' ? options.capturing : (current?.filter.editing ?? false),
    onKey: (input, key) => {
      if (current !== undefined && current.filter.editing) return current.onKey(input, key)
      if (key.escape && !(current !== undefined && current.filter.text !== '')) {
        if (step === 'remote') return false
        back()
        return true
      }
      if (step === 'options') {
        if (key.return) setStep('confirm')
        else options.onKey(input, key)
        return true
      }
      if (step === 'confirm') {
        if (key.return || input === 'y') {
          if (purpose === 'check') {
            if (shell.canChange('health-checking')) void check()
          } else if (shell.canChange('restoring')) void start()
          return true
        }
        return false
      }
      if (current!.onKey(input, key)) return true
      if (step === 'point' && input === 'h' && pointList.selected !== undefined) {
        setPoint(pointList.selected)
        setPurpose('check')
        setStep('sr')
        return true
      }
      if (step === 'point' && input === 'f' && pointList.selected !== undefined && remote !== undefined) {
        shell.navigate({ screen: 'files', remote: remote.name, backupId: pointList.selected.id, label: `Files of ${pointList.selected.vmName} ${pointDate(pointList.selected)}` })
        return true
      }
      if (!key.return) return false
      if (step === 'remote' && remoteList.selected !== undefined) {
        setRemote(remoteList.selected)
        setStep('vm')
      } else if (step === 'vm' && vmList.selected !== undefined) {
        setVm(vmList.selected)
        setStep('point')
      } else if (step === 'point' && pointList.selected !== undefined) {
        setPoint(pointList.selected)
        setPurpose('restore')
        options.set('name', `${pointList.selected.vmName} (restored ${formatDate(pointList.selected.timestamp)})`)
        setStep('sr')
      } else if (step === 'sr' && srList.selected !== undefined) {
        setSr(srList.selected)
        setStep(purpose === 'check' ? 'confirm' : 'options')
      }
      return true
    },
  })

  const trail = STEPS.filter(s => purpose === 'restore' || s !== 'options').map(s => (s === step ? `[${STEP_TITLES[s]}]` : STEP_TITLES[s])).join(' → ')
  const chosen = [remote?.name, vm?.vmName, point === undefined ? undefined : pointDate(point), sr === undefined ? undefined : `${sr.name} (${sr.poolName})`].filter(Boolean).join(' ▸ ')
  return (
    <Box flexDirection="column">
      <Text wrap="truncate" bold>
        {trail}
      </Text>
      <Text wrap="truncate" dimColor>
        {chosen || 'Pick the remote that holds the backup.'}
      </Text>
      {current === undefined ? null : <FilterLine filter={current.filter} />}
      {step === 'remote' ? (
        <Table columns={[{ title: 'Remote', width: 16 }, { title: 'Free', width: 9, align: 'right' }, { title: 'URL', width: 0 }]} rows={remoteList.rows} rowKey={r => r.name} list={remoteList.list} height={remoteList.tableHeight} width={shell.columns} empty={remotes.error ?? 'No remotes.'} cells={r => [{ text: r.name }, { text: formatBytes(r.space?.free) }, { text: r.url }]} />
      ) : null}
      {step === 'vm' ? (
        <Table columns={[{ title: 'VM', width: 0 }, { title: 'Backups', width: 7, align: 'right' }, { title: 'Latest', width: 16 }]} rows={vmList.rows} rowKey={g => g.vmUuid} list={vmList.list} height={vmList.tableHeight} width={shell.columns} empty={backups.error ?? (backups.loading ? 'Listing the backups…' : 'No backups on this remote.')} cells={g => [{ text: g.vmName }, { text: String(g.points.length) }, { text: formatDate(g.points[0]?.timestamp) }]} />
      ) : null}
      {step === 'point' ? (
        <Table
          columns={[{ title: 'Date', width: 19 }, { title: 'Mode', width: 5 }, { title: 'Size', width: 9, align: 'right' }, { title: 'Checked', width: 9 }, { title: 'Verified', width: 0 }, { title: 'Job', width: 12 }]}
          rows={pointList.rows}
          rowKey={p => p.id}
          list={pointList.list}
          height={pointList.tableHeight}
          width={shell.columns}
          cells={p => [{ text: pointDate(p) }, { text: p.mode }, { text: formatBytes(p.size) }, checkCell(lastCheck.get(backupKey(p.id))), verificationCell(p), { text: jobName(p.jobId) }]}
        />
      ) : null}
      {step === 'sr' ? (
        <Table columns={[{ title: 'SR', width: 0 }, { title: 'Pool', width: 12 }, { title: 'Free', width: 9, align: 'right' }, { title: 'Type', width: 6 }]} rows={srList.rows} rowKey={s => s.uuid} list={srList.list} height={srList.tableHeight} width={shell.columns} empty={srs.error ?? 'Loading the SRs…'} cells={s => [{ text: s.name }, { text: s.poolName }, { text: formatBytes(s.free), tone: point?.size !== undefined && s.free < point.size ? 'red' : undefined }, { text: s.type }]} />
      ) : null}
      {step === 'options' ? <FormView form={options} width={shell.columns} labelWidth={20} /> : null}
      {step === 'confirm' && purpose === 'check' && point !== undefined && sr !== undefined ? (
        <Box flexDirection="column">
          <Text>Health-check {point.vmName} as it was on {pointDate(point)} ({point.mode}, {formatBytes(point.size)})</Text>
          <Text>  from the remote {remote?.name}: restored on the SR {sr.name} of the pool {sr.poolName},</Text>
          <Text>  without network, started, its guest agent waited for (10 min at most), then destroyed</Text>
          <Text> </Text>
          <Text bold>Press enter to check, esc to change something.</Text>
        </Box>
      ) : null}
      {step === 'confirm' && purpose === 'restore' && point !== undefined && sr !== undefined ? (
        <Box flexDirection="column">
          <Text>Restore {point.vmName} as it was on {pointDate(point)} ({point.mode}, {formatBytes(point.size)})</Text>
          <Text>  from the remote {remote?.name}</Text>
          <Text color={verificationCell(point).tone} wrap="truncate">
            {'  '}verification: {verificationLine(point)}
          </Text>
          <Text>  to the SR {sr.name} on the pool {sr.poolName}</Text>
          <Text>  as "{String(options.values.name)}"{options.values.start === true ? ', started afterwards' : ', left halted'}</Text>
          <Text> </Text>
          <Text bold>Press enter to restore, esc to change something.</Text>
        </Box>
      ) : null}
    </Box>
  )
}

/** A backup id as a key: the same with or without its leading slash (XO writes both). */
function backupKey(id: string): string {
  return id.replace(/^\//, '')
}

/** The last health check of each backup (runs come newest first), by backupKey. */
function lastChecks(runs: readonly RunSummary[]): Map<string, RunStatus> {
  const last = new Map<string, RunStatus>()
  for (const run of runs) for (const { backupId, status } of run.checkedBackups ?? []) if (!last.has(backupKey(backupId))) last.set(backupKey(backupId), status)
  return last
}

/** The Verified column, short enough for 80 columns: never (gray), ✔ when (+ "data": every block read back), ✖ and the first finding's code. */
function verificationCell(point: BackupListEntry): { text: string; tone: 'gray' | 'green' | 'red' } {
  const state = point.verification
  if (state === undefined) return { text: 'never', tone: 'gray' }
  if (state.status === 'failed') return { text: `✖ ${state.findings[0]?.code ?? 'failed'}`, tone: 'red' }
  return { text: `✔ ${formatDate(state.at).slice(5)}${state.readData ? ' data' : ''}`, tone: 'green' }
}

/** The confirm step's verification line: a failure says why, in full. */
function verificationLine(point: BackupListEntry): string {
  const state = point.verification
  if (state === undefined) return "never verified ('npx lifeboat remote verify' checks it)"
  const first = state.findings[0]
  if (state.status === 'failed' && first !== undefined) return `FAILED on ${formatDate(state.at)}: ${first.code}, ${first.reason}`
  const note = state.notes?.[0]
  return `${verificationLabel(state, at => formatDate(at))}${state.readData ? ', every block read back' : ', structure only'}${note === undefined || !state.readData ? '' : ` (${note.reason})`}`
}

/** A restore point's date to the second: two points of the same minute must be told apart. */
function pointDate(point: BackupListEntry): string {
  return formatDate(point.timestamp, { seconds: true })
}

/** Restore points grouped by VM, newest first within each VM, VMs by name. */
function groupByVm(points: readonly BackupListEntry[]): VmGroup[] {
  const byVm = new Map<string, VmGroup>()
  for (const point of points) {
    const group = byVm.get(point.vmUuid) ?? { vmUuid: point.vmUuid, vmName: point.vmName, points: [] }
    group.points.push(point)
    byVm.set(point.vmUuid, group)
  }
  const groups = [...byVm.values()]
  for (const group of groups) group.points.sort((a, b) => b.timestamp - a.timestamp)
  return groups.sort((a, b) => a.vmName.localeCompare(b.vmName))
}
