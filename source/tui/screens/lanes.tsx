// Lanes: what runs now on each pool, slot by slot (snapshots, VDI exports, VM exports), the waiting
// queue behind each full lane and the writers per target, so back-pressure and limits show at a glance.
import { memo, useEffect, useMemo, useState } from 'react'
import { Box, Text } from 'ink'
import { useNow, useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { cursorMark, MoreLine, useListCursor } from '../components/list.tsx'
import type { Lane, LaneHolder, LanesSnapshot, Sr } from '../contract.ts'
import { fit, formatBytes, formatElapsed, formatEta, formatSpeed, percent, progressBar, textWidth } from '../format.ts'
import { tone, type Tone } from '../theme.ts'

export interface LaneLine {
  key: string
  text: string
  tone?: Tone
  bold?: boolean
}

const LANES: Array<{ key: 'snapshots' | 'vdiExports' | 'vmExports'; title: string }> = [
  { key: 'snapshots', title: 'Snapshots' },
  { key: 'vdiExports', title: 'VDI exports' },
  { key: 'vmExports', title: 'VM exports' },
]

function slots(lane: Lane): string {
  const cells = Math.min(lane.limit, 24)
  const used = Math.min(lane.holders.length, cells)
  return `[${'■'.repeat(used)}${'·'.repeat(cells - used)}] ${lane.holders.length}/${lane.limit}`
}

/** "web-01 xvda": the VM, then its disk without the VM's name repeated (lab and XO name disks "<vm> disk 0"). */
function slotLabel(vm: string, disk: string | undefined): string {
  if (disk === undefined) return vm
  return `${vm} ${disk.startsWith(vm) ? disk.slice(vm.length).trim() : disk}`
}

/** A lane's target as the administrator knows it: a remote by its name, an SR (the lanes key it by uuid) by its name. */
function targetName(target: string, srs: ReadonlyMap<string, Sr>): string {
  const sr = srs.get(target)
  return sr === undefined ? target : `SR ${sr.name}`
}

/**
 * The targets of one export, each with how far it got; in lock-step the slowest writer holds the export
 * back, so when they differ it is marked (back-pressure from a remote or an SR shows here).
 */
function targetsText(holder: LaneHolder, srs: ReadonlyMap<string, Sr>, markSlowest: boolean): string {
  const entries = Object.entries(holder.targets ?? {})
  const writing = entries.filter(([, t]) => t.state === 'writing')
  const least = Math.min(...writing.map(([, t]) => t.done))
  const holding = writing.length > 1 && writing.some(([, t]) => t.done !== least) ? writing.find(([, t]) => t.done === least)?.[0] : undefined
  return entries
    .map(([target, t]) => `${targetName(target, srs)} ${t.state === 'failed' ? '✖' : t.state === 'done' ? '✔' : percent(t.done, holder.total).trim()}${markSlowest && target === holding ? ' (slowest)' : ''}`)
    .join(' ')
}

/** One slot holder on one line: VM and disk, then how far, how fast and how long to go. */
export function holderLine(holder: LaneHolder, now: number, width: number, srs: ReadonlyMap<string, Sr> = new Map()): string {
  const name = fit(slotLabel(holder.vmName ?? holder.vm, holder.disk), 17)
  const elapsed = formatElapsed(now - holder.since)
  // A delegated run's slot: the proxy it is held for.
  const where = holder.proxy === undefined ? '' : `on ${holder.proxy} `
  const owner = `${where}${holder.jobName ?? ''}`
  if (holder.done === undefined) return fit(`  ${name} ${fit(holder.phase, 10)} ${elapsed}  ${owner}`, width)
  const moved = `${formatBytes(holder.done).padStart(8)} ${formatSpeed(holder.bytesPerSecond).padStart(10)}`
  // Size unknown (a full XVA export): what moved and how fast, and no ETA that would be invented.
  if (holder.total === undefined) return fit(`  ${name} ${fit(holder.phase, 6)} ${moved}  ${elapsed} so far  ${owner}`, width)
  const figures = `${percent(holder.done, holder.total)} ${moved} ${formatEta(holder.done, holder.total, holder.bytesPerSecond).padStart(6)}`
  const line = (markSlowest: boolean) => `  ${name} ${progressBar(holder.done, holder.total, 4)} ${figures} ${where}${targetsText(holder, srs, markSlowest) || holder.jobName || ''}`
  // On a narrow terminal every target's figure matters more than the mark of the slowest one.
  const marked = line(true)
  return fit(textWidth(marked) <= width ? marked : line(false), width)
}

/** The screen as lines: pure, so that it is cheap to test and to measure. */
export function laneLines(snapshot: LanesSnapshot, now: number, width: number, srs: ReadonlyMap<string, Sr> = new Map()): LaneLine[] {
  const lines: LaneLine[] = []
  for (const pool of snapshot.pools) {
    lines.push({ key: pool.poolId, text: `Pool ${pool.poolName}`, bold: true })
    for (const { key, title } of LANES) {
      const lane = pool[key]
      const full = lane.holders.length >= lane.limit && lane.limit > 0
      const waiting = lane.waiting.length > 0 ? `  ${lane.waiting.length} waiting` : ''
      lines.push({ key: `${pool.poolId}:${key}`, text: ` ${fit(title, 12)} ${slots(lane)}${full ? ' full' : ''}${waiting}`, ...(full || waiting !== '' ? { tone: 'yellow' as const } : {}) })
      lane.holders.forEach((holder, i) => lines.push({ key: `${pool.poolId}:${key}:${i}`, text: holderLine(holder, now, width, srs) }))
      if (lane.waiting.length > 0) {
        const queue = lane.waiting.map(w => slotLabel(w.vmName ?? w.vm, w.disk)).join(', ')
        lines.push({ key: `${pool.poolId}:${key}:waiting`, text: fit(`   ⏸ waiting: ${queue}`, width), tone: 'gray' })
      }
    }
  }
  // Runs without a pool (mirror copies, verifies) reading a remote.
  for (const { remote, reads } of snapshot.remotes ?? []) {
    lines.push({ key: `remote:${remote}`, text: `Remote ${remote}`, bold: true })
    lines.push({ key: `remote:${remote}:reads`, text: ` ${fit('Reads', 12)} ${reads.holders.length} at work` })
    reads.holders.forEach((holder, i) => lines.push({ key: `remote:${remote}:${i}`, text: holderLine(holder, now, width, srs) }))
  }
  return lines
}

/** The connected pools' SRs by uuid: lanes and task trees name SR targets by uuid. */
export function useSrNames(): ReadonlyMap<string, Sr> {
  const srs = useRpc('sr.list', {}, ['pools'])
  return useMemo(() => new Map((srs.data ?? []).map(sr => [sr.uuid, sr])), [srs.data])
}

const Line = memo(function Line({ line, width }: { line: LaneLine; width: number }) {
  return (
    <Text wrap="truncate" color={tone(line.tone)} bold={line.bold === true}>
      {fit(line.text, width).trimEnd()}
    </Text>
  )
})

/**
 * The lanes as the daemon last sent them, and the daemon's time now (snapshots come when something changes:
 * elapsed times tick in between). The subscription stays for the session: screens below in the stack use
 * it too, and lanes messages are small and at most 4 a second.
 */
export function useLiveLanes(): { snapshot: LanesSnapshot | undefined; busy: boolean; now: number; error: string | undefined } {
  const shell = useShell()
  const initial = useRpc('lanes.get', {})
  const [live, setLive] = useState<LanesSnapshot | undefined>()
  useEffect(() => {
    void shell.client.call('subscribe', { topics: ['lanes'] }).catch(() => {})
    return shell.client.on('lanes', ({ snapshot }) => setLive(snapshot))
  }, [shell.client, shell.generation])
  const snapshot = live !== undefined && (initial.data === undefined || live.at >= initial.data.at) ? live : initial.data
  const busy = snapshot?.pools.some(p => p.snapshots.holders.length + p.vdiExports.holders.length + p.vmExports.holders.length > 0) === true || (snapshot?.remotes ?? []).length > 0
  const now = useNow(busy)
  const [received, setReceived] = useState({ at: 0, local: 0 })
  if (snapshot !== undefined && received.at !== snapshot.at) setReceived({ at: snapshot.at, local: Date.now() })
  return { snapshot, busy, now: snapshot === undefined ? now : snapshot.at + Math.max(0, now - (received.at === snapshot.at ? received.local : now)), error: initial.error }
}

export function LanesScreen() {
  const shell = useShell()
  const { snapshot, busy, now, error } = useLiveLanes()
  const srs = useSrNames()
  const lines = snapshot === undefined ? [] : laneLines(snapshot, now, shell.columns - 1, srs)
  const height = shell.bodyHeight - 1
  const list = useListCursor(lines.length, height)
  useScreenKeys({ keys: [{ key: '↑/↓', label: 'scroll' }, { key: 'l', label: 'runs' }], onKey: (input, key) => list.onKey(input, key) || (input === 'l' && (shell.navigate({ screen: 'runs' }), true)) })

  if (snapshot === undefined) return <Text color={tone(error === undefined ? undefined : 'red')}>{error ?? 'Loading the lanes…'}</Text>
  return (
    <Box flexDirection="column">
      <Text wrap="truncate" bold>
        Total {formatSpeed(snapshot.totalBytesPerSecond)}
        {busy ? '' : ' · idle: nothing runs now'}
        {lines.length > height ? ` · ${list.cursor + 1}/${lines.length}` : ''}
      </Text>
      {lines.length === 0 ? <Text dimColor>No pool has run anything since the daemon started; the lanes appear with the first backup or restore.</Text> : null}
      {lines.slice(list.offset, list.offset + list.window).map((line, i) => (
        <Box key={line.key}>
          <Text inverse={list.offset + i === list.cursor}>{cursorMark(list.offset + i === list.cursor)}</Text>
          <Line line={line} width={shell.columns - 1} />
        </Box>
      ))}
      <MoreLine list={list} />
    </Box>
  )
}
