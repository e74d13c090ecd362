// The job wizard, for a new job and for editing one: which VMs (picked, or a smart selection with a
// live preview of what it matches) → where (remotes, SRs) → when (schedule, retention) → how → review.
// A mirror job (type mirror on the first step) names its source remote there; its VMs are those found on
// the source (picked, or by the tags their backups recorded), its targets other remotes. A verify job (type
// verify) picks its remotes first, then VMs among those they hold; it keeps nothing and has one setting, its timeout.
// A backup job may run on a proxy (Runs on, the first step), chosen among those `proxy.list` gives.
import { useEffect, useState } from 'react'
import { Box, Text, type Key } from 'ink'
import { useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { FormView, useForm, type Field } from '../components/form.tsx'
import { cursorMark, MoreLine, useListCursor } from '../components/list.tsx'
import { fit, formatBytes, formatDate, localTimezone, wrapText } from '../format.ts'
import { tone } from '../theme.ts'
import { nextFireTime } from '../../protocol/cron.ts'
import type { JobInput, Proxy, RestorePoint, Sr } from '../contract.ts'
import { distributeUnavailable, draftFromJob, draftShape, jobOf, matchSmart, MIRROR_SETTINGS, newDraft, ON_APPLIANCE, POWER_CHOICES, problemsIn, problemsOf, proxyOf, smartOf, sourceVms, VERIFY_SETTINGS, type Draft, type ListedVm, type Problem } from './draft.ts'
import { MODE_WORDS, modeParts, modeTitle, srLabel, VERIFY_WORDS } from './modes.ts'
import { PLAN_KEYS, useDraftPlan, usePlanView } from './plan.tsx'

type Step = 'basics' | 'vms' | 'targets' | 'schedule' | 'settings' | 'review'
const STEPS: Step[] = ['basics', 'vms', 'targets', 'schedule', 'settings', 'review']
/** A verify job's VMs are those its remotes hold: the remotes come first. */
const VERIFY_STEPS: Step[] = ['basics', 'targets', 'vms', 'schedule', 'settings', 'review']
const TITLES: Record<Step, string> = { basics: 'Job', vms: 'Which VMs', targets: 'Where', schedule: 'When', settings: 'How', review: 'Review' }

const BASICS: Field[] = [
  { name: 'name', label: 'Name', kind: 'text' },
  { name: 'mode', label: 'Mode', kind: 'choice', choices: ['delta', 'full'], hint: '←/→ changes it' },
  { name: 'type', label: 'Type', kind: 'choice', choices: ['backup', 'mirror', 'verify'], hint: 'mirror: copies the backups of a remote to others; verify: checks them' },
  { name: 'source', label: 'Source remote', kind: 'choice', choices: [], hint: 'whose backups are copied; ←/→ changes it' },
  { name: 'proxy', label: 'Runs on', kind: 'choice', choices: [ON_APPLIANCE], hint: '←/→: the appliance or a proxy' },
]

/** The proxies registered (proxy.list): their names once listed, or why they could not be. */
interface Proxies {
  list?: readonly Proxy[]
  error?: string
}

/** The Runs on field: the appliance, then the proxies; greyed for a mirror or a verify job (they run on the appliance). */
function proxyField(field: Field, values: Record<string, unknown>, proxies: Proxies): Field {
  const chosen = String(values.proxy ?? ON_APPLIANCE)
  // The job's own proxy stays offered while the list loads, or when it cannot be listed.
  const choices = [...new Set([ON_APPLIANCE, ...(proxies.list ?? []).map(p => p.name), chosen])]
  if (values.type === 'mirror' || values.type === 'verify') return { ...field, kind: 'choice', choices, unavailable: `${String(values.type)} jobs run on the appliance` }
  const hint = proxies.error !== undefined ? 'the proxies could not be listed' : proxies.list?.length === 0 ? 'no proxy yet: lifeboat proxy add' : field.hint
  return { ...field, kind: 'choice', choices, ...(hint !== undefined && { hint }) }
}

/** What the first step says under its fields about Runs on while it has the focus. */
function proxyWords(type: unknown, proxies: Proxies): string {
  if (type === 'mirror' || type === 'verify') return `Only backup jobs take a proxy: ${String(type)} jobs run on the appliance.`
  if (proxies.error !== undefined) return `The proxies could not be listed (${proxies.error}); the job runs on the appliance unless it names one.`
  if (proxies.list === undefined) return 'Listing the proxies…'
  if (proxies.list.length === 0) return 'No proxy is registered: add one with `npx lifeboat proxy add NAME ssh://user@host` (see Proxies in the README) and it is offered here. Without one, the appliance runs the job.'
  return `A proxy runs the job near the pools or the storage: the disks go from the pools to the remotes through it, not through the appliance. Registered: ${proxies.list.map(p => `${p.name} (${p.url})`).join(', ')}.`
}

/** A verify job's choice in the place of the mode it does not have (so the focus stays on Type when it changes). */
const READ_DATA: Field = { name: 'readData', label: 'Read data', kind: 'toggle', hint: 'every block read back and its checksum checked (slower)' }

/** The first step's fields: the source remote only for a mirror, chosen among the remotes there are; the proxy a backup runs on. */
function basicsFields(remoteNames: string[], proxies: Proxies): (values: Record<string, unknown>) => Field[] {
  return values =>
    BASICS.flatMap(field => {
      if (field.name === 'mode' && values.type === 'verify') return [READ_DATA]
      if (field.name === 'proxy') return [proxyField(field, values, proxies)]
      if (field.name !== 'source') return [field]
      if (values.type !== 'mirror') return []
      return [{ ...field, kind: 'choice' as const, choices: remoteNames.length > 0 ? remoteNames : [''], hint: remoteNames.length > 0 ? field.hint : 'no remote yet: add one first (Remotes screen)' }]
    })
}
const SMART: Field[] = [
  { name: 'tags', label: 'Tags (any of)', kind: 'text', hint: 'comma-separated; empty: any' },
  { name: 'notTags', label: 'Not tags', kind: 'text' },
  { name: 'power', label: 'Power state', kind: 'choice', choices: [...POWER_CHOICES] },
]
const SCHEDULE: Field[] = [
  { name: 'name', label: 'Schedule name', kind: 'text' },
  { name: 'cron', label: 'Cron', kind: 'text', hint: 'min hour day month weekday' },
  { name: 'timezone', label: 'Timezone', kind: 'text', hint: 'IANA, e.g. Europe/Paris' },
  { name: 'backups', label: 'Keep backups', kind: 'text', hint: 'per remote (empty: 7)' },
  { name: 'replicas', label: 'Keep replicas', kind: 'text', hint: 'replica VMs per SR (empty: 1)' },
  { name: 'snapshots', label: 'Keep snapshots', kind: 'text', hint: 'on the source pool (rolling snapshot)' },
  { name: 'fullInterval', label: 'Full every', kind: 'text', hint: 'delta: a full every N backups' },
  { name: 'enabled', label: 'Enabled', kind: 'toggle' },
]
const SETTINGS: Field[] = [
  { name: 'concurrency', label: 'VMs at once', kind: 'text', hint: '0 = all at once' },
  { name: 'compression', label: 'Compression', kind: 'choice', choices: ['none', 'zstd', 'gzip'], hint: 'full mode only' },
  { name: 'timeout', label: 'Timeout', kind: 'text', hint: 'e.g. 4h, 30m; empty: none' },
  { name: 'offlineSnapshot', label: 'Offline snapshot', kind: 'toggle', hint: 'shut down for the snapshot' },
  { name: 'checkpointSnapshot', label: 'With memory', kind: 'toggle', hint: 'RAM in the snapshot: a CR replica resumes, no boot' },
  { name: 'deleteFirst', label: 'Delete first', kind: 'toggle', hint: 'retention before transfer' },
]

/** The How step's health check: after each backup, a VM made from it is started on this SR and destroyed (XO's settings). */
const HEALTH_CHECK: Field[] = [
  { name: 'healthCheckSr', label: 'Health check SR', kind: 'text', hint: 'uuid or name; empty: no check' },
  { name: 'healthCheckVmsWithTags', label: 'Check VMs tagged', kind: 'text', hint: 'comma-separated; empty: every VM' },
  { name: 'healthCheckTimeout', label: 'Check timeout', kind: 'text', hint: 'every step; empty: 10m' },
]
/** Distributed mode: each VM's backup to one of the remotes (or SRs), not to all. */
const DISTRIBUTE: Field[] = [
  { name: 'distributeBackups', label: 'Distribute backups', kind: 'toggle', hint: 'across remotes: each VM to one, the most free space' },
  { name: 'distributeReplications', label: 'Distribute replicas', kind: 'toggle', hint: 'across SRs: each VM to one, the most free space' },
]
const HOW = [...SETTINGS, ...HEALTH_CHECK, ...DISTRIBUTE]
/** The How step's labels are this wide (the longest, "Distribute replicas", whole). */
const SETTINGS_LABEL_WIDTH = 20

/** The How step's fields: the distributed toggles greyed, with the reason, while fewer than 2 remotes (or SRs) are picked. */
function settingsFields(draft: Draft): Field[] {
  return HOW.map(f => {
    const unavailable = f.name === 'distributeBackups' ? distributeUnavailable(draft, 'remotes') : f.name === 'distributeReplications' ? distributeUnavailable(draft, 'srs') : undefined
    return f.kind === 'toggle' && unavailable !== undefined ? { ...f, unavailable } : f
  })
}

/** The When step's fields: a count only for the kind of target the job has (backups per remote, replicas per SR); a mirror keeps backups only, a verify nothing. */
function scheduleFields(draft: Draft, mirror: boolean, verify: boolean): Field[] {
  if (verify) return SCHEDULE.filter(f => !['backups', 'replicas', 'snapshots', 'fullInterval'].includes(f.name))
  if (mirror) return SCHEDULE.filter(f => !['replicas', 'snapshots', 'fullInterval'].includes(f.name))
  const across = (name: string, hint: string) => ({ name, label: name === 'backups' ? 'Keep backups' : 'Keep replicas', kind: 'text' as const, hint })
  return SCHEDULE.filter(f => (f.name === 'backups' ? draft.remotes.size > 0 : f.name === 'replicas' ? draft.srs.size > 0 : true)).map(f =>
    f.name === 'backups' && distributes(draft, 'distributeBackups') ? across('backups', 'across all the remotes (empty: 7)')
      : f.name === 'replicas' && distributes(draft, 'distributeReplications') ? across('replicas', 'across all the SRs (empty: 1)')
        : f,
  )
}

/** The draft distributes its backups (or replicas): switched on, with the 2 targets it needs. */
function distributes(draft: Draft, setting: 'distributeBackups' | 'distributeReplications'): boolean {
  return draft.settings[setting] === true && distributeUnavailable(draft, setting === 'distributeBackups' ? 'remotes' : 'srs') === undefined
}

/** A mirror takes no snapshot and exports nothing from a pool: the How step keeps what applies to copies, and the check of the last copy on each target. */
const MIRROR_HOW = [...SETTINGS, ...HEALTH_CHECK].filter(f => MIRROR_SETTINGS.includes(f.name))
const MIRROR_SMART = SMART.filter(f => f.name !== 'power')
const VERIFY_HOW = SETTINGS.filter(f => VERIFY_SETTINGS.includes(f.name))

/** Which problems each step shows under its fields, by the schema's paths. */
const STEP_PATHS: Record<Step, string[]> = { basics: ['name', 'mode', 'readData', 'proxy'], vms: ['vms'], targets: ['remotes', 'srs'], schedule: ['schedules'], settings: ['settings'], review: [''] }
const labels = (fields: Field[]) => new Map(fields.map(f => [f.name, f.label]))
const FIELD_LABELS = { schedules: labels(SCHEDULE), settings: labels(HOW), vms: labels(SMART), job: labels([...BASICS, READ_DATA]) }

/** A problem in the wizard's words: the field's label instead of the schema's path. */
function problemText(problem: Problem): string {
  const [head = ''] = problem.path.split('.')
  const last = problem.path.split('.').at(-1) ?? ''
  const fields = head === 'schedules' || head === 'settings' || head === 'vms' ? FIELD_LABELS[head] : FIELD_LABELS.job
  const label = fields.get(last) ?? (problem.path === '(job)' ? 'Job' : problem.path)
  return `${label}: ${problem.message}`
}

/** A schedule's retention problem: shown apart, the next runs do not depend on it. */
const isRetention = (problem: Problem) => /^schedules\.\d+\.retention/.test(problem.path)

function stepProblems(problems: Problem[], step: Step): Problem[] {
  return problems.filter(p => STEP_PATHS[step].some(prefix => p.path === prefix || p.path.startsWith(prefix)))
}

/** Loads the job to edit (if any), then the wizard with its draft. */
export function WizardScreen({ id }: { id?: string }) {
  const existing = useRpc('job.get', id === undefined ? undefined : { id })
  if (id === undefined) return <Wizard initial={newDraft()} />
  if (existing.data === undefined) return <Text color={tone(existing.error === undefined ? undefined : 'red')}>{existing.error ?? 'Loading the job…'}</Text>
  return <Wizard initial={draftFromJob(existing.data.job)} />
}

/** The restore points on each of `remotes`, together (a verify job's VMs are those they hold); undefined while loading. */
function usePointsOn(remotes: readonly string[]): readonly RestorePoint[] | undefined {
  const shell = useShell()
  const [points, setPoints] = useState<{ key: string; points: readonly RestorePoint[] }>()
  const key = remotes.join('\n')
  useEffect(() => {
    let current = true
    // A remote that cannot be listed now adds no VM; the verify run will say why it failed.
    void Promise.all(key.split('\n').filter(remote => remote !== '').map(remote => shell.client.call('backup.list', { remote }).catch(() => []))).then(lists => current && setPoints({ key, points: lists.flat() }))
    return () => {
      current = false
    }
  }, [shell.client, key])
  return points?.key === key ? points.points : undefined
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
  // The daemon's own sentences, per field, shown at their steps until the draft changes.
  const [refused, setRefused] = useState<{ problems: Problem[]; shape: string }>()
  const remotes = useRpc('remote.list', {}, ['remotes'])
  const proxyList = useRpc('proxy.list', {}, ['proxies'])
  const proxies: Proxies = { ...(proxyList.data !== undefined && { list: proxyList.data }), ...(proxyList.data === undefined && proxyList.error !== undefined && { error: proxyList.error }) }
  const basics = useForm(basicsFields((remotes.data ?? []).map(r => r.name), proxies), initial.basics)
  const mirror = basics.values.type === 'mirror'
  const verify = basics.values.type === 'verify'
  const steps = verify ? VERIFY_STEPS : STEPS
  // A verify job picks VMs by uuid only.
  const selection = verify ? 'pick' : draft.selection
  const source = mirror ? String(basics.values.source ?? '') : ''
  const smart = useForm(mirror ? MIRROR_SMART : SMART, initial.smart)
  const settings = useForm(verify ? VERIFY_HOW : mirror ? MIRROR_HOW : settingsFields(draft), initial.settings)
  const schedule = useForm(scheduleFields({ ...draft, settings: settings.values }, mirror, verify), initial.schedule)
  const poolVms = useRpc('vm.list', {}, ['pools'])
  const sourcePoints = useRpc('backup.list', source === '' ? undefined : { remote: source }, ['remotes'])
  const checkedPoints = usePointsOn(verify ? [...draft.remotes] : [])
  const checked = [...draft.remotes].join(', ')
  const vms: { data?: readonly ListedVm[] } = mirror ? { data: sourcePoints.data === undefined ? undefined : sourceVms(sourcePoints.data, source) }
    : verify ? { data: checkedPoints === undefined ? undefined : sourceVms(checkedPoints, checked) } : poolVms
  const pools = useRpc('pool.list', {}, ['pools'])
  const srs = useRpc('sr.list', {}, ['pools'])

  const current: Draft = { ...draft, basics: basics.values, smart: smart.values, schedule: schedule.values, settings: settings.values }
  const matched = matchSmart(smartOf(current), vms.data ?? [])
  const targets = [
    ...(remotes.data ?? []).filter(r => !mirror || r.name !== source).map(r => ({ kind: 'remote' as const, id: r.name, label: `remote ${r.name}`, detail: `${r.type} · ${formatBytes(r.space?.free)} free` })),
    ...(mirror || verify ? [] : (srs.data ?? [])).map(sr => ({ kind: 'sr' as const, id: sr.uuid, label: `SR ${sr.name}`, detail: `pool ${sr.poolName} · ${sr.type} · ${formatBytes(sr.free)} free` })),
  ]
  // A mirror's filter has no pools: its VMs are those on the source remote.
  const poolRows = mirror || verify ? [] : (pools.data ?? [])
  // The VMs step in smart mode: the pool toggles first, then the tag and power fields.
  const [smartFocus, setSmartFocus] = useState<'pools' | 'fields'>('pools')
  const width = shell.columns
  const shape = { mode: String(current.basics.mode) as 'full' | 'delta', remotes: mirror ? [...draft.remotes].filter(r => r !== source).length : draft.remotes.size, srs: mirror || verify ? 0 : draft.srs.size, memory: current.settings.checkpointSnapshot === true, distributed: { backups: distributes(current, 'distributeBackups'), replications: distributes(current, 'distributeReplications') }, ...(mirror && { source }), ...(verify && { verify: { readData: current.basics.readData === true } }) }
  const kindLines = modeParts(shape).flatMap(part => wrapText(`${part.name} (${part.where}): ${part.sentence}`, width))
  const listHeight = shell.bodyHeight - 4
  const vmList = useListCursor((vms.data ?? []).length, listHeight)
  const targetList = useListCursor(targets.length, listHeight - kindLines.length)
  const poolHeight = Math.min(poolRows.length, 4)
  const poolList = useListCursor(poolRows.length, poolHeight)
  const shapeText = JSON.stringify(draftShape(current))
  const problems = [...problemsOf(current), ...(refused !== undefined && refused.shape === shapeText ? refused.problems : [])]
  const changed = shapeText !== JSON.stringify(draftShape(initial))

  const move = (by: number) => {
    setFailure(undefined)
    setStep(steps[Math.min(steps.length - 1, Math.max(0, steps.indexOf(step) + by))]!)
  }
  const leave = () => {
    if (!changed) return shell.back()
    shell.confirm({ message: current.kept.id === undefined ? 'Leave the wizard and discard this new job?' : 'Leave the wizard and discard your changes to this job?', onYes: shell.back })
  }
  const save = async () => {
    if (problems.length > 0) return
    setRefused(undefined)
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
      const fields = problemsIn(error)
      if (fields !== undefined) setRefused({ problems: fields, shape: shapeText })
      shell.notify(`${label} failed: ${(error as Error).message}`, 'error')
    }
  }

  const vmsKey = (input: string, key: Key): boolean => {
    if (input === 'p' && !verify && !(draft.selection === 'smart' && smartFields && smart.capturing)) {
      setDraft(d => ({ ...d, selection: d.selection === 'pick' ? 'smart' : 'pick' }))
      return true
    }
    if (selection === 'pick') {
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

  const smartFields = smartFocus === 'fields'
  const form = step === 'basics' ? basics : step === 'schedule' ? schedule : step === 'settings' ? settings : step === 'vms' && selection === 'smart' && smartFields ? smart : undefined
  // The Review's p: the plan of the draft, in place of the Review until esc.
  const draftPlan = useDraftPlan()
  const planOpen = draftPlan.plan !== undefined || draftPlan.error !== undefined || draftPlan.loading
  const planView = usePlanView(draftPlan.plan, shell.bodyHeight - 2)
  useScreenKeys({
    keys: planOpen ? [...PLAN_KEYS, { key: 'esc', label: 'back to the review' }] : [
      ...(step === 'review' && !mirror && !verify ? [{ key: 'p', label: current.kept.id === undefined ? 'plan the first run' : 'plan the next run' }] : []),
      { key: 'enter', label: step === 'review' ? 'save' : 'next' },
      ...(step === 'basics' ? [] : [{ key: 'pgup', label: 'previous' }]),
      { key: 'esc', label: 'leave' },
      ...(step === 'vms' && !verify ? [{ key: 'p', label: draft.selection === 'pick' ? 'smart selection' : 'pick VMs' }] : []),
      ...(step === 'vms' || step === 'targets' ? [{ key: 'space', label: 'select' }] : []),
      { key: '↑/↓', label: 'field', more: true },
    ],
    capturing: planOpen ? planView.capturing : (form?.capturing ?? false),
    onKey: (input, key) => {
      if (planOpen) {
        if (key.escape && !planView.capturing) return (draftPlan.close(), true)
        return planView.onKey(input, key)
      }
      if (step === 'review' && !mirror && !verify && input === 'p' && problems.length === 0) return (draftPlan.ask(jobOf(current), current.kept.id), true)
      if (key.escape) return (leave(), true)
      if (key.pageUp) return (move(-1), true)
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

  const previewSpace = Math.max(0, shell.bodyHeight - 5 - poolHeight - SMART.length - stepProblems(problems, 'vms').length)
  const previewRows = matched.length > previewSpace ? Math.max(0, previewSpace - 1) : previewSpace
  const trail = steps.map(s => (s === step ? `[${TITLES[s]}]` : TITLES[s])).join(' → ')
  if (planOpen) {
    return (
      <Box flexDirection="column">
        <Text bold wrap="truncate">
          {trail} · plan, not saved
        </Text>
        {draftPlan.plan !== undefined ? planView.view : <Text color={tone(draftPlan.error === undefined ? undefined : 'red')}>{draftPlan.error ?? 'Planning the first run…'}</Text>}
      </Box>
    )
  }
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate">
        {trail}
      </Text>
      {step === 'basics' ? <FormView form={basics} width={width} /> : null}
      {step === 'basics' ? <Text wrap="wrap">{basics.fields[basics.focus]?.name === 'proxy' ? proxyWords(basics.values.type, proxies) : verify ? VERIFY_WORDS : MODE_WORDS[shape.mode]}</Text> : null}
      {step === 'schedule' ? <FormView form={schedule} width={width} /> : null}
      {step === 'schedule' ? <NextRuns schedule={jobOf(current).schedules[0]!} problems={stepProblems(problems, 'schedule').filter(p => !isRetention(p))} width={width} /> : null}
      {step === 'schedule' ? <Problems problems={stepProblems(problems, 'schedule').filter(isRetention)} width={width} rows={3} /> : null}
      {step !== 'review' && step !== 'schedule' && changed ? <Problems problems={stepProblems(problems, step)} width={width} rows={3} /> : null}
      {step === 'settings' ? <FormView form={settings} width={width} labelWidth={SETTINGS_LABEL_WIDTH} /> : null}
      {step === 'vms' && selection === 'pick' ? (
        <Box flexDirection="column">
          <Text wrap="truncate">
            {verify
              ? draft.remotes.size === 0 ? 'Pick remotes on Where first (pgup): the VMs they hold are listed here.' : `VMs with backups on ${checked}: space picks (${draft.picked.size} picked; none: every VM)`
              : mirror
              ? source === '' ? 'Choose the source remote on the first step: its VMs are listed here.' : `VMs with backups on remote ${source}: space picks (${draft.picked.size} picked; none: every VM) · p: filter by tags instead`
              : `Pick VMs with space (${draft.picked.size} picked) · p: build a smart selection instead`}
          </Text>
          {(vms.data ?? []).slice(vmList.offset, vmList.offset + vmList.window).map((vm, i) => (
            <Text key={vm.uuid} wrap="truncate" inverse={vmList.offset + i === vmList.cursor}>
              {fit(`${cursorMark(vmList.offset + i === vmList.cursor)}${draft.picked.has(vm.uuid) ? '[x]' : '[ ]'} ${vm.name}  ${vm.poolName}  ${vm.powerState ?? ''}  ${vm.tags.join(' ')}`, width)}
            </Text>
          ))}
          <MoreLine list={vmList} />
        </Box>
      ) : null}
      {step === 'vms' && selection === 'smart' ? (
        <Box flexDirection="column">
          <Text wrap="truncate">{mirror ? `Filter by the tags the backups on ${source || '(no source)'} recorded (empty: every VM), evaluated at each run · p: pick VMs instead` : 'Smart selection, evaluated at each run · p: pick VMs instead'}</Text>
          {mirror ? (
            <Text wrap="truncate" bold={smartFocus === 'pools'}>
              {cursorMark(smartFocus === 'pools')} ↓: type the tags
            </Text>
          ) : (
            <Text wrap="truncate" bold={smartFocus === 'pools'}>
              Pools (none = all){poolRows.length > poolHeight ? ` · ${poolList.cursor + 1}/${poolRows.length}, ${draft.smartPools.size} chosen` : ''}:
            </Text>
          )}
          {poolRows.slice(poolList.offset, poolList.offset + poolHeight).map((pool, i) => (
            <Text key={pool.id} wrap="truncate" inverse={smartFocus === 'pools' && poolList.offset + i === poolList.cursor}>
              {cursorMark(smartFocus === 'pools' && poolList.offset + i === poolList.cursor)}{' '}
              {draft.smartPools.has(pool.id) ? '[x]' : '[ ]'} {pool.name}
            </Text>
          ))}
          <FormView form={{ ...smart, focus: smartFields ? smart.focus : -1 }} width={width} />
          <Text wrap="truncate" color={tone(matched.length === 0 ? 'yellow' : 'green')}>
            Matches {matched.length} VM{matched.length === 1 ? '' : 's'} now{matched.length === 0 ? '' : ':'}
          </Text>
          {matched.slice(0, previewRows).map(vm => (
            <Text key={vm.uuid} wrap="truncate" dimColor>
              {'  '}
              {[vm.name, vm.poolName, vm.powerState, vm.tags.join(' ')].filter(part => part !== undefined && part !== '').join(' · ')}
            </Text>
          ))}
          {matched.length > previewRows ? <Text dimColor>  … {matched.length - previewRows} more</Text> : null}
        </Box>
      ) : null}
      {step === 'targets' ? (
        <Box flexDirection="column">
          <Text wrap="truncate">
            {verify
              ? `The remotes whose backups are checked (${draft.remotes.size} remote${draft.remotes.size === 1 ? '' : 's'}): space selects`
              : mirror
              ? `Where the backups of ${source || '(no source)'} are copied (${shape.remotes} remote${shape.remotes === 1 ? '' : 's'}): space selects`
              : `Where the VMs go (${draft.remotes.size} remote${draft.remotes.size === 1 ? '' : 's'}, ${draft.srs.size} SR${draft.srs.size === 1 ? '' : 's'}): remotes keep backups, SRs replicas; space selects`}
          </Text>
          {kindLines.map((line, i) => (
            <Text key={`k${i}`} color={tone('cyan')}>
              {line}
            </Text>
          ))}
          {targets.slice(targetList.offset, targetList.offset + targetList.window).map((target, i) => {
            const on = target.kind === 'remote' ? draft.remotes.has(target.id) : draft.srs.has(target.id)
            return (
              <Text key={`${target.kind}:${target.id}`} wrap="truncate" inverse={targetList.offset + i === targetList.cursor}>
                {fit(`${cursorMark(targetList.offset + i === targetList.cursor)}${on ? '[x]' : '[ ]'} ${target.label}  ${target.detail}`, width)}
              </Text>
            )
          })}
          <MoreLine list={targetList} />
        </Box>
      ) : null}
      {step === 'review' ? <Review draft={current} matched={matched.length} srs={srs.data} problems={problems} failure={failure} width={width} rows={shell.bodyHeight - 8} /> : null}
    </Box>
  )
}

/** The schedule's next three runs in its own timezone, or why it cannot run: checked as it is typed. */
function NextRuns({ schedule, problems, width }: { schedule: JobInput['schedules'][number]; problems: Problem[]; width: number }) {
  if (problems.length > 0) return <Problems problems={problems} width={width} rows={3} />
  const runs: number[] = []
  for (let after = Date.now(); runs.length < 3; ) {
    const next = nextFireTime(schedule, after)
    if (next === undefined) break
    runs.push(next)
    after = next
  }
  return (
    <Text wrap="wrap" color={tone(runs.length === 0 ? 'yellow' : 'green')}>
      {runs.length === 0 ? '⚠ This schedule never fires.' : `✔ Next runs (${schedule.timezone === localTimezone() ? 'local time' : schedule.timezone}): ${runs.map(run => formatDate(run, { timeZone: schedule.timezone })).join(', ')}`}
    </Text>
  )
}

/** Problems, each whole (wrapped), in at most `rows` lines; what does not fit is counted. */
function Problems({ problems, width, rows }: { problems: Problem[]; width: number; rows: number }) {
  const lines = problems.flatMap(p => wrapText(`✖ ${problemText(p)}`, width))
  const shown = lines.length > rows ? lines.slice(0, rows - 1) : lines
  return (
    <Box flexDirection="column">
      {shown.map((line, i) => (
        <Text key={i} color={tone('red')}>
          {line}
        </Text>
      ))}
      {shown.length < lines.length ? <Text color={tone('red')}>… {lines.length - shown.length} more lines</Text> : null}
    </Box>
  )
}

const yes = (value: unknown, words: string) => (value === true ? [words] : [])

/** The job's settings as a sentence: "2 VMs at once · zstd compression · timeout 4h". */
function settingsInWords(settings: Record<string, unknown>): string {
  const words = [
    settings.concurrency === undefined ? undefined : settings.concurrency === 0 ? 'all VMs at once' : `${String(settings.concurrency)} VM${settings.concurrency === 1 ? '' : 's'} at once`,
    settings.compression === undefined || settings.compression === 'none' ? undefined : `${String(settings.compression)} compression`,
    settings.timeout === undefined ? undefined : `timeout ${String(settings.timeout)}`,
    ...yes(settings.offlineSnapshot, 'offline snapshot'),
    ...yes(settings.checkpointSnapshot, 'snapshot with memory'),
    ...yes(settings.deleteFirst, 'old backups deleted first'),
    ...yes(settings.distributeBackups, 'each VM to one remote'),
    ...yes(settings.distributeReplications, 'each VM to one SR'),
    ...Object.entries(settings)
      .filter(([k, v]) => !['concurrency', 'compression', 'timeout', 'offlineSnapshot', 'checkpointSnapshot', 'deleteFirst', ...HEALTH_CHECK.map(f => f.name), ...DISTRIBUTE.map(f => f.name)].includes(k) && v !== undefined)
      .map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`),
  ].filter(w => w !== undefined)
  return words.length === 0 ? 'defaults' : words.join(' · ')
}

function healthCheckInWords(settings: Record<string, unknown>, srs: Parameters<typeof srLabel>[1]): string {
  const sr = typeof settings.healthCheckSr === 'string' ? settings.healthCheckSr : ''
  if (sr === '') return 'no health check'
  const tags = Array.isArray(settings.healthCheckVmsWithTags) && settings.healthCheckVmsWithTags.length > 0 ? `VMs tagged ${settings.healthCheckVmsWithTags.join(', ')}` : 'every VM'
  // The SR may be typed by name: the daemon stores its uuid.
  const uuid = srs?.find(candidate => candidate.uuid === sr || candidate.name === sr)?.uuid ?? sr
  return `${tags} · on ${srLabel(uuid, srs)} · ${settings.healthCheckTimeout === undefined ? '10m' : String(settings.healthCheckTimeout)} at most`
}

function retentionInWords(retention: { backups?: number; replicas?: number; snapshots?: number }, distributed: { backups: boolean; replications: boolean }): string {
  const parts = [
    retention.backups === undefined ? undefined : `${retention.backups} backup${retention.backups === 1 ? '' : 's'} ${distributed.backups ? 'across all the remotes' : 'per remote'}`,
    retention.replicas === undefined ? undefined : `${retention.replicas} replica${retention.replicas === 1 ? '' : 's'} ${distributed.replications ? 'across all the SRs' : 'per SR'}`,
    retention.snapshots === undefined ? undefined : `${retention.snapshots} snapshot${retention.snapshots === 1 ? '' : 's'} on the source`,
  ].filter(p => p !== undefined)
  return parts.length === 0 ? 'the defaults' : parts.join(', ')
}

function Review({ draft, matched, srs, problems, failure, width, rows }: { draft: Draft; matched: number; srs: readonly Sr[] | undefined; problems: Problem[]; failure: string | undefined; width: number; rows: number }) {
  const job = jobOf(draft)
  const schedule = job.schedules[0]
  const mirror = job.type === 'mirror'
  const verify = job.type === 'verify'
  // Mirror and verify jobs always run on the appliance: only a backup says where.
  const proxy = proxyOf(draft)
  const runsOn = mirror || verify ? undefined : proxy === undefined ? 'the appliance' : `proxy ${proxy}`
  const failureLines = failure === undefined ? [] : wrapText(`✖ ${failure}`, width)
  const problemRows = rows - failureLines.length - (runsOn === undefined ? 0 : 1)
  const vms = verify
    ? job.vms === undefined ? 'every VM on its remotes' : `${draft.picked.size} VM${draft.picked.size === 1 ? '' : 's'} picked`
    : mirror
    ? job.vms === undefined ? `every VM found on ${job.sourceRemote ?? '(no source)'}` : 'uuids' in job.vms ? `${job.vms.uuids?.length ?? 0} VMs picked on ${job.sourceRemote}` : `the VMs of ${job.sourceRemote} whose backups are tagged as filtered (${matched} now)`
    : draft.selection === 'pick' ? `${draft.picked.size} VMs picked` : `smart selection (${matched} VMs now)`
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        {job.name || '(no name)'} · {verify ? (job.readData === true ? 'verify, reading every block' : 'verify, structure only') : job.mode} · {vms}
      </Text>
      <Text wrap="truncate">Does: {modeTitle({ mode: job.mode ?? 'full', remotes: job.remotes?.length ?? 0, srs: job.srs?.length ?? 0, memory: job.settings?.checkpointSnapshot === true, distributed: { backups: job.settings?.distributeBackups === true, replications: job.settings?.distributeReplications === true }, ...(mirror && { source: job.sourceRemote ?? '' }), ...(verify && { verify: { readData: job.readData === true } }) })}</Text>
      {mirror ? <Text wrap="truncate">From: remote {job.sourceRemote ?? '(none chosen)'} (its folder of each VM locked while it is read; backups of a distributed job are not copied: no remote holds their chains whole)</Text> : null}
      <Text wrap="truncate">{verify ? 'Checks' : 'To'}: {[...(job.remotes ?? []).map(r => `remote ${r}`), ...(job.srs ?? []).map(sr => srLabel(sr, srs))].join(', ') || 'nowhere: snapshots only'}</Text>
      {runsOn === undefined ? null : <Text wrap="truncate">Runs on: {runsOn}</Text>}
      <Text wrap="truncate">
        When: {schedule?.name} at "{schedule?.cron}" ({schedule?.timezone}){schedule?.enabled === false ? ', disabled' : ''}
        {schedule?.fullInterval === undefined ? '' : ` · a full every ${schedule.fullInterval}`}
      </Text>
      <Text wrap="truncate">Keep: {verify ? 'nothing (it only reads)' : retentionInWords(schedule?.retention ?? {}, { backups: job.settings?.distributeBackups === true, replications: job.settings?.distributeReplications === true })}</Text>
      <Text wrap="truncate">How: {settingsInWords(job.settings as Record<string, unknown>)}</Text>
      {verify ? null : <Text wrap="truncate">Check: {healthCheckInWords(job.settings as Record<string, unknown>, srs)}</Text>}
      <Text> </Text>
      {problems.length === 0 && failure === undefined ? <Text bold>Press enter to save, esc to leave, pgup to change something.</Text> : null}
      <Problems problems={problems} width={width} rows={Math.max(1, problemRows)} />
      {failureLines.slice(0, Math.max(1, rows)).map((line, i) => (
        <Text key={i} color={tone('red')}>
          {line}
        </Text>
      ))}
    </Box>
  )
}
