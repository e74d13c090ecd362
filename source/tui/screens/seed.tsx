// cr-seed (XO's cr-seed-cli) for one job: a snapshot of a source VM, and the copy of it imported by hand on
// one of the job's SRs, become the base of its continuous replication, so the next run sends a delta only.
// Three picks from lists (source VM → its snapshot → the target VM), then a confirmation; esc steps back.
import { useState } from 'react'
import { Box, Text } from 'ink'
import { useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { cursorMark, MoreLine, useListCursor } from '../components/list.tsx'
import { errorText } from '../client.ts'
import { fit, formatBytes, formatDate, wrapText } from '../format.ts'
import { tone } from '../theme.ts'
import type { Job, Vm } from '../contract.ts'
import { matchSmart } from './draft.ts'
import { seedRefusal, srLabel } from './modes.ts'

type Step = 'vm' | 'snapshot' | 'target' | 'confirm'
const STEPS: Step[] = ['vm', 'snapshot', 'target', 'confirm']
const TITLES: Record<Step, string> = { vm: 'Source VM', snapshot: 'Its snapshot', target: 'Copy on the SR', confirm: 'Seed' }

type Snapshot = NonNullable<Vm['snapshots']>[number]

const sizes = (disks: Vm['disks']) => disks.map(d => formatBytes(d.size)).join(' + ') || 'no disk'

/** Why the copy cannot be the snapshot's (disk count or sizes), or undefined; the daemon checks again, disk by position. */
export function diskMismatch(snapshot: Snapshot, target: Vm): string | undefined {
  const ours = snapshot.disks.map(d => d.size).sort((a, b) => a - b)
  const theirs = target.disks.map(d => d.size).sort((a, b) => a - b)
  if (ours.length !== theirs.length) return `it has ${theirs.length} disk${theirs.length === 1 ? '' : 's'}, the snapshot ${ours.length}`
  if (ours.some((size, i) => size !== theirs[i])) return `its disks are ${sizes(target.disks)}, the snapshot's ${sizes(snapshot.disks)}`
  return undefined
}

/** The VMs of the job now (its picked uuids, or what its smart selection matches). */
function jobVms(job: Job, vms: readonly Vm[]): Vm[] {
  const plain = vms.filter(vm => vm.template !== true)
  return 'uuids' in job.vms ? plain.filter(vm => (job.vms as { uuids: string[] }).uuids.includes(vm.uuid)) : matchSmart(job.vms.smart, plain)
}

/** Where a copy imported for the seed can be: halted, not the source, every disk on one SR of the job. */
function targetCandidates(job: Job, vms: readonly Vm[], source: Vm): Vm[] {
  return vms.filter(vm => vm.uuid !== source.uuid && vm.powerState === 'Halted' && vm.disks.length > 0 && new Set(vm.disks.map(d => d.srId)).size === 1 && job.srs.includes(vm.disks[0]!.srId))
}

export function SeedScreen({ id }: { id: string }) {
  const shell = useShell()
  const info = useRpc('job.get', { id }, ['jobs'])
  const vms = useRpc('vm.list', { templates: true }, ['pools'])
  const srs = useRpc('sr.list', {}, ['pools'])
  const [step, setStep] = useState<Step>('vm')
  const [source, setSource] = useState<Vm>()
  const [snapshot, setSnapshot] = useState<Snapshot>()
  const [target, setTarget] = useState<Vm>()
  const [schedule, setSchedule] = useState(0)
  const [problem, setProblem] = useState<string>()
  const [busy, setBusy] = useState(false)
  const job = info.data?.job
  const all = vms.data ?? []
  const sources = job === undefined ? [] : jobVms(job, all)
  // The VM as last listed: a snapshot taken while this screen is open shows once the list is fetched again.
  const snapshots = [...((all.find(vm => vm.uuid === source?.uuid) ?? source)?.snapshots ?? [])].reverse()
  const targets = job === undefined || source === undefined ? [] : targetCandidates(job, all, source)
  const rows = step === 'vm' ? sources.length : step === 'snapshot' ? snapshots.length : step === 'target' ? targets.length : 0
  const list = useListCursor(rows, Math.max(3, shell.bodyHeight - 6))

  const go = (next: Step) => {
    setProblem(undefined)
    // Snapshots and imported copies are made by hand while the form is open: every pick lists them anew.
    vms.reload()
    list.setCursor(0)
    setStep(next)
  }
  const pick = () => {
    if (step === 'vm') {
      const vm = sources[list.cursor]
      if (vm === undefined) return
      setSource(vm)
      setSnapshot(undefined)
      setTarget(undefined)
      go('snapshot')
    } else if (step === 'snapshot') {
      const chosen = snapshots[list.cursor]
      if (chosen === undefined) return
      setSnapshot(chosen)
      go('target')
    } else if (step === 'target') {
      const vm = targets[list.cursor]
      if (vm === undefined || snapshot === undefined) return
      const mismatch = diskMismatch(snapshot, vm)
      if (mismatch !== undefined) return setProblem(`The VM "${vm.name}" cannot be this snapshot's copy: ${mismatch}. Import this very snapshot onto the SR (export it as an XVA, import that), then seed again.`)
      setTarget(vm)
      go('confirm')
    } else void seed()
  }
  const seed = async () => {
    if (job === undefined || source === undefined || snapshot === undefined || target === undefined || busy) return
    if (!shell.canChange('cr-seed')) return
    setBusy(true)
    try {
      const scheduleName = job.schedules[schedule]?.name
      const result = await shell.client.call('job.crSeed', { id, ...(scheduleName !== undefined && { schedule: scheduleName }), vm: source.uuid, snapshot: snapshot.uuid, targetVm: target.uuid })
      shell.notify(`cr-seed ${job.name}: done; the replica is now "${result.targetVmName}", the next run sends only the changes since the snapshot.`)
      shell.back()
    } catch (error) {
      setProblem(`cr-seed ${job.name} failed: ${errorText(error)}`)
    } finally {
      setBusy(false)
    }
  }

  useScreenKeys({
    keys: [
      { key: 'enter', label: step === 'confirm' ? 'seed' : 'pick' },
      { key: 'esc', label: step === 'vm' ? 'leave' : 'previous' },
      ...(step === 'confirm' && (job?.schedules.length ?? 0) > 1 ? [{ key: '←/→', label: 'schedule' }] : []),
    ],
    onKey: (input, key) => {
      if (key.escape) {
        if (step === 'vm') return false
        go(STEPS[STEPS.indexOf(step) - 1]!)
        return true
      }
      if (key.return) return (pick(), true)
      if (step === 'confirm' && job !== undefined && (key.leftArrow || key.rightArrow)) {
        setSchedule(s => (s + (key.leftArrow ? -1 : 1) + job.schedules.length) % job.schedules.length)
        return true
      }
      return list.onKey(input, key)
    },
  })

  if (job === undefined) return <Text color={tone(info.error === undefined ? undefined : 'red')}>{info.error ?? 'Loading the job…'}</Text>
  const width = shell.columns
  const refusal = seedRefusal(job)
  const trail = STEPS.map(s => (s === step ? `[${TITLES[s]}]` : TITLES[s])).join(' → ')
  const chosen = [source === undefined ? undefined : `VM ${source.name} (pool ${source.poolName})`, snapshot === undefined ? undefined : `snapshot ${snapshot.name} of ${formatDate(snapshot.time)}`].filter(Boolean).join(' · ')
  const empty =
    step === 'vm'
      ? `The job "${job.name}" backs up no VM now.`
      : step === 'snapshot'
        ? `The VM "${source?.name}" has no snapshot: take one, export it as an XVA, import that onto an SR of the job, then seed.`
        : `No halted VM has its disks on an SR of the job (${job.srs.map(sr => srLabel(sr, srs.data)).join(', ')}): import the snapshot's XVA there first, and leave it halted.`
  const lines =
    step === 'vm'
      ? sources.map(vm => `${vm.name}  pool ${vm.poolName}  ${vm.powerState}  ${vm.snapshots?.length ?? 0} snapshot${vm.snapshots?.length === 1 ? '' : 's'}`)
      : step === 'snapshot'
        ? snapshots.map(s => `${formatDate(s.time)}  ${s.name}  ${sizes(s.disks)}`)
        : step === 'target'
          ? targets.map(vm => {
              const mismatch = snapshot === undefined ? undefined : diskMismatch(snapshot, vm)
              return `${mismatch === undefined ? '✔' : '✖'} ${vm.name}${vm.template === true ? ' (template)' : ''}  ${srLabel(vm.disks[0]!.srId, srs.data)}  ${sizes(vm.disks)}${mismatch === undefined ? '' : `: ${mismatch}`}`
            })
          : []
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate">
        {trail}
      </Text>
      {refusal !== undefined ? <Text color={tone('red')}>✖ {refusal}</Text> : null}
      <Text wrap="truncate" dimColor>
        {chosen || `The snapshot's copy on an SR of "${job.name}" becomes its replica: the next run sends only the changes.`}
      </Text>
      {step !== 'confirm' && lines.length === 0 ? <Text color={tone('yellow')}>{empty}</Text> : null}
      {lines.slice(list.offset, list.offset + list.window).map((line, i) => (
        <Text key={i} wrap="truncate" inverse={list.offset + i === list.cursor}>
          {fit(`${cursorMark(list.offset + i === list.cursor)}${line}`, width)}
        </Text>
      ))}
      {step === 'confirm' ? null : <MoreLine list={list} />}
      {step === 'confirm' && source !== undefined && snapshot !== undefined && target !== undefined ? (
        <Box flexDirection="column">
          {wrapText(`The snapshot "${snapshot.name}" (${formatDate(snapshot.time)}) of ${source.name} becomes the base of "${job.name}" (schedule ${job.schedules[schedule]?.name ?? '?'}), and the VM "${target.name}" on ${srLabel(target.disks[0]!.srId, srs.data)} its replica: renamed as a replica, its start blocked (clone it to start a copy). The next run sends only the blocks changed since the snapshot.`, width).map((line, i) => (
            <Text key={i}>{line}</Text>
          ))}
          <Text bold>{busy ? 'Seeding…' : 'Press enter to seed, esc to pick another copy.'}</Text>
        </Box>
      ) : null}
      {problem === undefined
        ? null
        : wrapText(`✖ ${problem}`, width).map((line, i) => (
            <Text key={`p${i}`} color={tone('red')}>
              {line}
            </Text>
          ))}
    </Box>
  )
}
