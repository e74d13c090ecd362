// The job wizard, for a new job and for editing one: which VMs (picked, or a smart selection with a
// live preview of what it matches) → where (remotes, SRs) → when (schedule, retention) → how → review.
import { useState } from 'react'
import { Box, Text, type Key } from 'ink'
import { useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { FormView, useForm, type Field } from '../components/form.tsx'
import { useListCursor } from '../components/list.tsx'
import { fit, formatBytes } from '../format.ts'
import { tone } from '../theme.ts'
import { draftFromJob, jobOf, matchSmart, newDraft, POWER_CHOICES, problemsOf, smartOf, type Draft } from './draft.ts'

type Step = 'basics' | 'vms' | 'targets' | 'schedule' | 'settings' | 'review'
const STEPS: Step[] = ['basics', 'vms', 'targets', 'schedule', 'settings', 'review']
const TITLES: Record<Step, string> = { basics: 'Job', vms: 'Which VMs', targets: 'Where', schedule: 'When', settings: 'How', review: 'Review' }

const BASICS: Field[] = [
  { name: 'name', label: 'Name', kind: 'text' },
  { name: 'mode', label: 'Mode', kind: 'choice', choices: ['delta', 'full'], hint: 'delta: VHD chains · full: XVA' },
]
const SMART: Field[] = [
  { name: 'tags', label: 'Tags (any of)', kind: 'text', hint: 'comma-separated; empty: any' },
  { name: 'notTags', label: 'Not tags', kind: 'text' },
  { name: 'power', label: 'Power state', kind: 'choice', choices: [...POWER_CHOICES] },
]
const SCHEDULE: Field[] = [
  { name: 'name', label: 'Schedule name', kind: 'text' },
  { name: 'cron', label: 'Cron', kind: 'text', hint: 'min hour day month weekday' },
  { name: 'timezone', label: 'Timezone', kind: 'text', hint: 'IANA, e.g. Europe/Paris' },
  { name: 'backups', label: 'Keep backups', kind: 'text', hint: 'per remote' },
  { name: 'replicas', label: 'Keep replicas', kind: 'text', hint: 'per SR' },
  { name: 'snapshots', label: 'Keep snapshots', kind: 'text', hint: 'on the source' },
  { name: 'fullInterval', label: 'Full every', kind: 'text', hint: 'delta: a full every N backups' },
  { name: 'enabled', label: 'Enabled', kind: 'toggle' },
]
const SETTINGS: Field[] = [
  { name: 'concurrency', label: 'VMs at once', kind: 'text', hint: '0 = all at once' },
  { name: 'compression', label: 'Compression', kind: 'choice', choices: ['none', 'zstd', 'gzip'], hint: 'full mode only' },
  { name: 'timeout', label: 'Timeout', kind: 'text', hint: 'e.g. 4h, 30m; empty: none' },
  { name: 'offlineSnapshot', label: 'Offline snapshot', kind: 'toggle', hint: 'shut down for the snapshot' },
  { name: 'checkpointSnapshot', label: 'With memory', kind: 'toggle' },
  { name: 'deleteFirst', label: 'Delete first', kind: 'toggle', hint: 'retention before transfer' },
  { name: 'distributeBackups', label: 'Distribute', kind: 'toggle', hint: 'each VM to one remote' },
]

/** Loads the job to edit (if any), then the wizard with its draft. */
export function WizardScreen({ id }: { id?: string }) {
  const existing = useRpc('job.get', id === undefined ? undefined : { id })
  if (id === undefined) return <Wizard initial={newDraft()} />
  if (existing.data === undefined) return <Text color={tone(existing.error === undefined ? undefined : 'red')}>{existing.error ?? 'Loading the job…'}</Text>
  return <Wizard initial={draftFromJob(existing.data.job)} />
}

function toggle(set: ReadonlySet<string>, item: string): ReadonlySet<string> {
  const next = new Set(set)
  if (!next.delete(item)) next.add(item)
  return next
}

function Wizard({ initial }: { initial: Draft }) {
  const shell = useShell()
  const [step, setStep] = useState<Step>('basics')
  const [draft, setDraft] = useState(initial)
  const [failure, setFailure] = useState<string>()
  const basics = useForm(BASICS, initial.basics)
  const smart = useForm(SMART, initial.smart)
  const schedule = useForm(SCHEDULE, initial.schedule)
  const settings = useForm(SETTINGS, initial.settings)
  const vms = useRpc('vm.list', {}, ['pools'])
  const pools = useRpc('pool.list', {}, ['pools'])
  const remotes = useRpc('remote.list', {}, ['remotes'])
  const srs = useRpc('sr.list', {}, ['pools'])

  const current: Draft = { ...draft, basics: basics.values, smart: smart.values, schedule: schedule.values, settings: settings.values }
  const matched = matchSmart(smartOf(current), vms.data ?? [])
  const targets = [...(remotes.data ?? []).map(r => ({ kind: 'remote' as const, id: r.name, label: `remote ${r.name}`, detail: `${r.type} · ${formatBytes(r.space?.free)} free` })), ...(srs.data ?? []).map(sr => ({ kind: 'sr' as const, id: sr.uuid, label: `SR ${sr.name}`, detail: `${sr.poolName} · ${formatBytes(sr.free)} free` }))]
  const poolRows = pools.data ?? []
  // The VMs step in smart mode: the pool toggles first, then the tag and power fields.
  const [smartFocus, setSmartFocus] = useState<'pools' | 'fields'>('pools')
  const listHeight = shell.bodyHeight - 4
  const vmList = useListCursor((vms.data ?? []).length, listHeight)
  const targetList = useListCursor(targets.length, listHeight)
  const poolHeight = Math.min(poolRows.length, 4)
  const poolList = useListCursor(poolRows.length, poolHeight)
  const problems = step === 'review' ? problemsOf(current) : []

  const move = (by: number) => {
    setFailure(undefined)
    setStep(STEPS[Math.min(STEPS.length - 1, Math.max(0, STEPS.indexOf(step) + by))]!)
  }
  const save = async () => {
    if (problems.length > 0) return
    const job = jobOf(current)
    const id = current.kept.id
    const label = id === undefined ? `create ${job.name}` : `save ${job.name}`
    try {
      if (!shell.canChange(label)) return
      await (id === undefined ? shell.client.call('job.create', { job }) : shell.client.call('job.update', { id, job }))
      shell.notify(`${label}: done.`)
      shell.back()
    } catch (error) {
      setFailure((error as Error).message)
    }
  }

  const vmsKey = (input: string, key: Key): boolean => {
    if (input === 'p' && !(draft.selection === 'smart' && smartFocus === 'fields' && smart.capturing)) {
      setDraft(d => ({ ...d, selection: d.selection === 'pick' ? 'smart' : 'pick' }))
      return true
    }
    if (draft.selection === 'pick') {
      if (input === ' ') {
        const vm = vms.data?.[vmList.cursor]
        if (vm !== undefined) setDraft(d => ({ ...d, picked: toggle(d.picked, vm.uuid) }))
        return true
      }
      return vmList.onKey(input, key)
    }
    if (smartFocus === 'pools') {
      if (input === ' ') {
        const pool = poolRows[poolList.cursor]
        if (pool !== undefined) setDraft(d => ({ ...d, smartPools: toggle(d.smartPools, pool.id) }))
        return true
      }
      if (key.tab || (key.downArrow && poolList.cursor >= poolRows.length - 1)) return (setSmartFocus('fields'), true)
      return poolList.onKey(input, key)
    }
    if ((key.upArrow || (key.tab && key.shift)) && smart.focus === 0) return (setSmartFocus('pools'), true)
    return smart.onKey(input, key)
  }

  const form = step === 'basics' ? basics : step === 'schedule' ? schedule : step === 'settings' ? settings : step === 'vms' && draft.selection === 'smart' && smartFocus === 'fields' ? smart : undefined
  useScreenKeys({
    keys: [
      { key: 'enter', label: step === 'review' ? 'save' : 'next' },
      { key: 'esc', label: 'previous' },
      ...(step === 'vms' ? [{ key: 'p', label: draft.selection === 'pick' ? 'smart selection' : 'pick VMs' }] : []),
      ...(step === 'vms' || step === 'targets' ? [{ key: 'space', label: 'select' }] : []),
      { key: '↑/↓', label: 'field', more: true },
    ],
    capturing: form?.capturing ?? false,
    onKey: (input, key) => {
      if (key.escape) {
        if (step === 'basics') return false
        move(-1)
        return true
      }
      if (key.return) {
        if (step === 'review') void save()
        else move(1)
        return true
      }
      if (step === 'vms') return vmsKey(input, key)
      if (step === 'targets') {
        if (input === ' ') {
          const target = targets[targetList.cursor]
          if (target !== undefined) setDraft(d => (target.kind === 'remote' ? { ...d, remotes: toggle(d.remotes, target.id) } : { ...d, srs: toggle(d.srs, target.id) }))
          return true
        }
        return targetList.onKey(input, key)
      }
      return form?.onKey(input, key) ?? false
    },
  })

  const width = shell.columns
  const trail = STEPS.map(s => (s === step ? `[${TITLES[s]}]` : TITLES[s])).join(' → ')
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate">
        {trail}
      </Text>
      {step === 'basics' ? <FormView fields={BASICS} form={basics} width={width} /> : null}
      {step === 'schedule' ? <FormView fields={SCHEDULE} form={schedule} width={width} /> : null}
      {step === 'settings' ? <FormView fields={SETTINGS} form={settings} width={width} /> : null}
      {step === 'vms' && draft.selection === 'pick' ? (
        <Box flexDirection="column">
          <Text wrap="truncate">Pick VMs with space ({draft.picked.size} picked) · p: build a smart selection instead</Text>
          {(vms.data ?? []).slice(vmList.offset, vmList.offset + listHeight).map((vm, i) => (
            <Text key={vm.uuid} wrap="truncate" inverse={vmList.offset + i === vmList.cursor}>
              {fit(`${draft.picked.has(vm.uuid) ? '[x]' : '[ ]'} ${vm.name}  ${vm.poolName}  ${vm.powerState}  ${vm.tags.join(' ')}`, width)}
            </Text>
          ))}
        </Box>
      ) : null}
      {step === 'vms' && draft.selection === 'smart' ? (
        <Box flexDirection="column">
          <Text wrap="truncate">Smart selection, evaluated at each run · p: pick VMs instead</Text>
          <Text wrap="truncate" bold={smartFocus === 'pools'}>
            Pools (none = all){poolRows.length > poolHeight ? ` · ${poolList.cursor + 1}/${poolRows.length}, ${draft.smartPools.size} chosen` : ''}:
          </Text>
          {poolRows.slice(poolList.offset, poolList.offset + poolHeight).map((pool, i) => (
            <Text key={pool.id} wrap="truncate" inverse={smartFocus === 'pools' && poolList.offset + i === poolList.cursor}>
              {'  '}
              {draft.smartPools.has(pool.id) ? '[x]' : '[ ]'} {pool.name}
            </Text>
          ))}
          <FormView fields={SMART} form={{ ...smart, focus: smartFocus === 'fields' ? smart.focus : -1 }} width={width} />
          <Text wrap="truncate" color={tone(matched.length === 0 ? 'yellow' : 'green')}>
            Matches {matched.length} VM{matched.length === 1 ? '' : 's'} now{matched.length === 0 ? '' : ':'}
          </Text>
          {matched.slice(0, Math.max(0, shell.bodyHeight - 4 - poolHeight - SMART.length)).map(vm => (
            <Text key={vm.uuid} wrap="truncate" dimColor>
              {'  '}
              {vm.name} · {vm.poolName} · {vm.powerState} · {vm.tags.join(' ')}
            </Text>
          ))}
        </Box>
      ) : null}
      {step === 'targets' ? (
        <Box flexDirection="column">
          <Text wrap="truncate">
            Where backups go ({draft.remotes.size} remote{draft.remotes.size === 1 ? '' : 's'}, {draft.srs.size} SR{draft.srs.size === 1 ? '' : 's'}): space selects
          </Text>
          {targets.slice(targetList.offset, targetList.offset + listHeight).map((target, i) => {
            const on = target.kind === 'remote' ? draft.remotes.has(target.id) : draft.srs.has(target.id)
            return (
              <Text key={`${target.kind}:${target.id}`} wrap="truncate" inverse={targetList.offset + i === targetList.cursor}>
                {fit(`${on ? '[x]' : '[ ]'} ${target.label}  ${target.detail}`, width)}
              </Text>
            )
          })}
        </Box>
      ) : null}
      {step === 'review' ? <Review draft={current} matched={matched.length} problems={problems} failure={failure} /> : null}
    </Box>
  )
}

function Review({ draft, matched, problems, failure }: { draft: Draft; matched: number; problems: string[]; failure: string | undefined }) {
  const job = jobOf(draft)
  const schedule = job.schedules[0]
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        {job.name || '(no name)'} · {job.mode} · {draft.selection === 'pick' ? `${draft.picked.size} VMs picked` : `smart selection (${matched} VMs now)`}
      </Text>
      <Text wrap="truncate">To: {[...(job.remotes ?? []), ...(job.srs ?? []).map(sr => `SR ${sr.slice(0, 8)}`)].join(', ') || 'nowhere yet'}</Text>
      <Text wrap="truncate">
        When: {schedule?.cron} {schedule?.timezone}
        {schedule?.enabled === false ? ' (disabled)' : ''} · keep {JSON.stringify(schedule?.retention ?? {})}
      </Text>
      <Text wrap="truncate">How: {JSON.stringify(job.settings)}</Text>
      <Text> </Text>
      {problems.length === 0 && failure === undefined ? <Text bold>Press enter to save, esc to change something.</Text> : null}
      {problems.slice(0, 6).map(p => (
        <Text key={p} wrap="truncate" color={tone('red')}>
          ✖ {p}
        </Text>
      ))}
      {failure === undefined ? null : (
        <Text wrap="wrap" color={tone('red')}>
          ✖ {failure}
        </Text>
      )}
    </Box>
  )
}
