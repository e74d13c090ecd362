// The plan of a job's next run (job.plan): the same lines as `lifeboat job plan`, scrolled, each readable whole
// with enter, coloured by what they say (problems red or yellow). From the jobs and job screens (`p`), and from
// the wizard's Review for the job being written (its draft, not saved).
import { useState, type ReactElement } from 'react'
import { Box, Text, type Key } from 'ink'
import { useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { FilterLine, useFilter } from '../components/input.tsx'
import { cursorMark, MoreLine, useListCursor } from '../components/list.tsx'
import { fit, formatDate } from '../format.ts'
import { tone } from '../theme.ts'
import { planLines, type JobPlan, type PlanLine } from '../../protocol/plan.ts'
import type { ScreenKey } from '../keys.ts'

const TONES: Record<PlanLine['tone'], 'red' | 'yellow' | undefined> = { error: 'red', warning: 'yellow', heading: undefined, dim: undefined, plain: undefined }

export const PLAN_KEYS: ScreenKey[] = [
  { key: '↑/↓', label: 'scroll' },
  { key: 'enter', label: 'read a line whole' },
  { key: '/', label: 'filter' },
]

/** The plan's lines in a scrolling window of `height` rows: its key handler, and what to draw. */
export function usePlanView(plan: JobPlan | undefined, height: number): { onKey: (input: string, key: Key) => boolean; capturing: boolean; view: ReactElement } {
  const shell = useShell()
  const filter = useFilter()
  const all = plan === undefined ? [] : planLines(plan, ms => formatDate(ms))
  const lines = all.filter(line => filter.text === '' || filter.matches(line.text))
  const list = useListCursor(lines.length, height - (filter.editing || filter.text !== '' ? 1 : 0))
  const onKey = (input: string, key: Key): boolean => {
    if (filter.onKey(input, key)) return true
    if (list.onKey(input, key)) return true
    const line = lines[list.cursor]
    if (key.return && line !== undefined) {
      shell.showDetail('Plan', line.text.trim())
      return true
    }
    return false
  }
  const view = (
    <Box flexDirection="column">
      <FilterLine filter={filter} />
      {lines.slice(list.offset, list.offset + list.window).map((line, i) => {
        const selected = list.offset + i === list.cursor
        return (
          <Text key={list.offset + i} inverse={selected} bold={line.tone === 'heading'} dimColor={line.tone === 'dim' && !selected} color={tone(TONES[line.tone])} wrap="truncate">
            {fit(`${cursorMark(selected)}${line.text}`, shell.columns)}
          </Text>
        )
      })}
      <MoreLine list={list} />
    </Box>
  )
  return { onKey, capturing: filter.editing, view }
}

export function PlanScreen({ id }: { id: string }) {
  const shell = useShell()
  const plan = useRpc('job.plan', { id }, ['jobs', 'runs', 'remotes', 'pools'])
  const { onKey, capturing, view } = usePlanView(plan.data, shell.bodyHeight)
  useScreenKeys({
    keys: [...PLAN_KEYS, { key: 'R', label: 'plan again', more: true }],
    capturing,
    onKey: (input, key) => {
      if (onKey(input, key)) return true
      if (input !== 'R') return false
      plan.reload()
      return true
    },
  })
  if (plan.data === undefined) return <Text color={tone(plan.error === undefined ? undefined : 'red')}>{plan.error ?? 'Planning the next run…'}</Text>
  return view
}

/** The wizard's Review: the plan of the draft, asked for when the administrator presses p. */
export function useDraftPlan(): { plan: JobPlan | undefined; error: string | undefined; loading: boolean; ask: (job: unknown, id: string | undefined) => void; close: () => void } {
  const shell = useShell()
  const [state, setState] = useState<{ plan?: JobPlan; error?: string; loading: boolean }>({ loading: false })
  const ask = (job: unknown, id: string | undefined) => {
    setState({ loading: true })
    shell.client.call('job.plan', { job, ...(id !== undefined && { id }) }).then(
      plan => setState({ plan, loading: false }),
      (error: Error) => setState({ error: error.message, loading: false }),
    )
  }
  return { plan: state.plan, error: state.error, loading: state.loading, ask, close: () => setState({ loading: false }) }
}
