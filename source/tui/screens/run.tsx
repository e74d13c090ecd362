// One run's task tree, live while it runs: ←/→ fold and unfold, `/` filters, `f` follows the newest task.
import { useEffect, useState } from 'react'
import { Box, Text } from 'ink'
import { cancelAsked, useNow, useRpc, useScreenKeys, useShell, useThrottled } from '../shell.tsx'
import { useFilter, FilterLine } from '../components/input.tsx'
import { cursorMark, MoreLine, useListCursor } from '../components/list.tsx'
import { fit, formatDate, formatElapsed, wrapText } from '../format.ts'
import { STATUS_STYLE, tone } from '../theme.ts'
import type { TaskNode } from '../contract.ts'
import { flattenTree, restoredVm } from './tree.ts'
import { checkWord } from './common.tsx'
import { holderLine, useLiveLanes, useSrNames } from './lanes.tsx'

export function RunScreen({ runId, follow: followAtStart = false }: { runId: string; follow?: boolean }) {
  const shell = useShell()
  const run = useRpc('run.get', { runId }, ['runs'])
  const [closed, setClosed] = useState<ReadonlySet<string>>(new Set())
  const [opened, setOpened] = useState<ReadonlySet<string>>(new Set())
  const [follow, setFollow] = useState(followAtStart)
  const filter = useFilter()
  const pending = run.data?.summary.status === 'pending'
  const refetch = useThrottled(run.reload, 500)

  useEffect(() => {
    if (!pending) return
    void shell.client.call('subscribe', { topics: ['tasks'], runId }).catch(() => {})
    const off = shell.client.on('task.event', event => {
      if (event.runId === runId) refetch()
    })
    return () => {
      off()
      void shell.client.call('unsubscribe', { topics: ['tasks'] }).catch(() => {})
    }
  }, [shell.client, runId, pending, refetch, shell.generation])

  const now = useNow(pending)
  const srs = useSrNames()
  const all = run.data === undefined ? [] : flattenTree(run.data.tree, closed, opened, now, srs)
  const lines = all.filter(line => line.kind !== 'task' || filter.matches(`${line.text} ${line.status ?? ''}`))
  const restored = run.data === undefined ? undefined : restoredVm(run.data.tree)
  // This run's transfers now, from the lanes: bytes, %, speed and ETA, which the task tree does not carry.
  const lanes = useLiveLanes()
  const transfers = (lanes.snapshot?.pools ?? []).flatMap(p => [...p.vdiExports.holders, ...p.vmExports.holders]).filter(h => h.runId === runId && h.done !== undefined)
  const transferLines = pending ? transfers.slice(0, 4).map(h => holderLine(h, lanes.now, shell.columns - 1, srs)) : []
  // Whole, however long the name: the administrator copies the uuid from here.
  const restoredLines = restored === undefined ? [] : wrapText(`Restored as the VM "${restored.name ?? '?'}" (${restored.uuid})`, shell.columns)
  const height = shell.bodyHeight - 2 - restoredLines.length - transferLines.length - (filter.editing || filter.text !== '' ? 1 : 0)
  const list = useListCursor(lines.length, height)
  useEffect(() => {
    if (follow && lines.length > 0) list.setCursor(lines.length - 1)
  })
  const line = lines[list.cursor]

  const fold = (open: boolean) => {
    if (line?.node === undefined || !line.hasChildren) return
    const id = line.node.id
    const without = (set: ReadonlySet<string>) => new Set([...set].filter(x => x !== id))
    setClosed(set => (open ? without(set) : new Set([...set, id])))
    setOpened(set => (open ? new Set([...set, id]) : without(set)))
  }

  useScreenKeys({
    keys: [
      { key: '←/→', label: 'fold/unfold' },
      { key: 'f', label: follow ? 'stop following' : 'follow' },
      { key: 'c', label: 'cancel run' },
      { key: '/', label: 'filter' },
      { key: 'e', label: 'unfold all', more: true },
      { key: 'enter', label: 'read a line whole', more: true },
    ],
    capturing: filter.editing,
    onKey: (input, key) => {
      if (filter.onKey(input, key)) return true
      if (list.onKey(input, key)) {
        setFollow(false)
        return true
      }
      if (key.leftArrow || input === 'h') fold(false)
      else if (key.return && line !== undefined && !line.hasChildren) shell.showDetail(line.kind === 'task' ? 'Task' : line.kind === 'error' ? 'Error' : line.kind === 'info' ? 'Why this target' : 'Warning', line.text)
      else if (key.rightArrow || input === 'l' || key.return) fold(true)
      else if (input === 'f') setFollow(f => !f)
      else if (input === 'e') {
        setClosed(new Set())
        if (run.data !== undefined) setOpened(new Set(taskIds(run.data.tree)))
      } else if (input === 'c') {
        if (!pending) shell.notify('This run is over; only a running run can be cancelled.', 'error')
        else if (shell.canChange('cancel')) shell.confirm({ message: `Cancel run ${runId}?`, onYes: () => void shell.mutate('cancel', () => shell.client.call('run.cancel', { runId }), cancelAsked) })
      } else return false
      return true
    },
  })

  if (run.data === undefined) return <Text color={tone(run.error === undefined ? undefined : 'red')}>{run.error ?? 'Loading the task tree…'}</Text>
  const { summary } = run.data
  const style = STATUS_STYLE[summary.status]
  // A health check run's status is the check's: only a backup run says its checks' beside its own.
  const check = summary.kind === 'health check' ? undefined : summary.healthCheck
  const visible = lines.slice(list.offset, list.offset + list.window)
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        <Text color={tone(style.tone)}>
          {style.glyph} {summary.status === 'pending' ? 'running' : summary.status}
        </Text>
        {check === undefined ? null : <Text color={tone(STATUS_STYLE[check].tone)}>, {STATUS_STYLE[check].glyph} health check {checkWord(check)}</Text>}{' '}
        {summary.kind} {summary.jobName ?? ''}
        {summary.proxy === undefined ? '' : ` on proxy ${summary.proxy}`} · started {formatDate(summary.start)} · {formatElapsed((summary.end ?? now) - summary.start)}
        {follow ? ' · following' : ''}
      </Text>
      <Text dimColor wrap="truncate">
        {summary.runId}
      </Text>
      {transferLines.map((text, i) => (
        <Text key={`t${i}`} wrap="truncate" color={tone('cyan')}>
          {text}
        </Text>
      ))}
      {restoredLines.map((text, i) => (
        <Text key={i} color={tone('green')}>
          {text}
        </Text>
      ))}
      <FilterLine filter={filter} />
      {visible.map((l, i) => {
        const selected = list.offset + i === list.cursor
        const marker = l.kind !== 'task' ? ' ' : l.hasChildren ? (l.open ? '▾' : '▸') : ' '
        const glyph = l.status === undefined ? '' : `${STATUS_STYLE[l.status].glyph} `
        const color = l.status !== undefined ? STATUS_STYLE[l.status].tone : l.kind === 'error' ? 'red' : l.kind === 'warning' ? 'yellow' : l.kind === 'info' ? 'cyan' : undefined
        return (
          <Text key={l.key} inverse={selected} wrap="truncate" color={tone(color)}>
            {fit(`${cursorMark(selected)}${'  '.repeat(l.depth)}${marker} ${glyph}${l.text}`, shell.columns)}
          </Text>
        )
      })}
      <MoreLine list={list} />
    </Box>
  )
}

/** Every task's id, at every depth: what `e` unfolds. */
function taskIds(node: TaskNode): string[] {
  return [node.id, ...(node.tasks ?? []).flatMap(taskIds)]
}
