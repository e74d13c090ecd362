// How the CLI shows things to a person: aligned tables, task trees, sizes, dates and durations.
// (`--json` bypasses all of this: one JSON document, whose escapes keep control characters harmless.)
import { healthCheckText, type LaneHolder, type TaskNode } from '../protocol/methods.ts'
import { TaskFold } from '../tasks/index.ts'
import type { TaskEvent } from '../protocol/events.ts'
import { terminalSafe, terminalSafeLine } from '../util/terminal-text.ts'
import { formatBytes, formatElapsed } from '../util/human.ts'

export { formatBytes, formatElapsed }

/** Every human-readable text the CLI prints leaves through here: names from XAPI, remotes and jobs may hold ESC sequences. */
export function printText(text: string, stream: NodeJS.WritableStream = process.stdout): void {
  stream.write(terminalSafe(text))
}

/** "YYYY-MM-DD HH:mm:ss" in local time, or in `timeZone` followed by its name when that is not the local zone. */
export function formatDate(ms: number | undefined, timeZone?: string): string {
  if (ms === undefined) return '-'
  const local = Intl.DateTimeFormat().resolvedOptions().timeZone
  const zone = timeZone !== undefined && timeZone !== local ? timeZone : undefined
  // sv-SE writes dates the ISO way: 2026-12-02 03:00:00.
  const text = new Intl.DateTimeFormat('sv-SE', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(ms)
  return zone === undefined ? text : `${text} ${zone}`
}

/** Columns padded to their widest cell; a header row, then one row per item. */
export function table(headers: string[], rows: string[][]): string {
  if (rows.length === 0) return ''
  rows = rows.map(row => row.map(terminalSafeLine))
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map(row => (row[i] ?? '').length)))
  const line = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()
  return [line(headers), ...rows.map(line)].join('\n') + '\n'
}

/** What a task is, in a few words: its name and the most telling data (VM, remote, disk…). */
export function taskLabel(node: TaskNode): string {
  const data = node.data ?? {}
  const detail = ['name_label', 'vmName', 'jobName', 'remote', 'id', 'disk', 'srUuid', 'backupId']
    .map(key => data[key])
    .filter(value => typeof value === 'string' && value !== '')
    .slice(0, 2)
  return detail.length > 0 ? `${node.message} (${detail.join(', ')})` : node.message
}

function resultText(node: TaskNode): string {
  const result = node.result as { message?: unknown; size?: unknown; code?: unknown; vmName?: unknown; vmUuid?: unknown } | undefined
  const parts: string[] = []
  if (typeof result?.vmName === 'string' && typeof result.vmUuid === 'string') parts.push(`created VM "${result.vmName}" ${result.vmUuid}`)
  if (typeof result?.size === 'number') parts.push(formatBytes(result.size))
  if (node.duration !== undefined) parts.push(formatElapsed(node.duration))
  if (node.status !== 'success' && typeof result?.message === 'string') parts.push(`${typeof result.code === 'string' ? result.code + ': ' : ''}${result.message}`)
  return parts.join(', ')
}

/** A task's status, and beside it its health checks' when they did not pass: a VM whose backup exists but is not verified says so. */
function statusWithCheck(node: Pick<TaskNode, 'status' | 'healthCheck'>): string {
  return node.healthCheck === undefined || node.healthCheck === 'success' ? node.status : `${node.status}, ${healthCheckText(node.healthCheck)}`
}

/** The task tree as indented lines with status, sizes, durations, warnings and errors. */
export function tree(root: TaskNode): string {
  const lines: string[] = []
  const walk = (node: TaskNode, prefix: string, childPrefix: string) => {
    const extra = resultText(node)
    // A VM or a run whose backups exist but did not pass their check says so beside its own status.
    lines.push(`${prefix}${terminalSafeLine(taskLabel(node))}  [${statusWithCheck(node)}]${extra === '' ? '' : '  ' + terminalSafeLine(extra)}`)
    const distributed = (node.data?.distributed as { why?: unknown } | undefined)?.why
    if (typeof distributed === 'string') lines.push(`${childPrefix}  i distributed: ${terminalSafeLine(distributed)}`)
    for (const warning of node.warnings ?? []) lines.push(`${childPrefix}  ! ${terminalSafeLine(warning.message)}`)
    const children = node.tasks ?? []
    children.forEach((child, i) => {
      const last = i === children.length - 1
      walk(child, childPrefix + (last ? '└─ ' : '├─ '), childPrefix + (last ? '   ' : '│  '))
    })
  }
  walk(root, '', '')
  return lines.join('\n') + '\n'
}

/** What `logs --follow` knows of the run's tasks: how to name each one, and which VM it works for. */
export class TaskNames {
  readonly #labels = new Map<string, string>()
  readonly #vms = new Map<string, string>()

  /** Names a task from its start (its parent seen before it): "[web] transfer" below the VM web. */
  learn(id: string, parentId: string | undefined, message: string, data: Record<string, unknown>): string {
    const vm = data.type === 'VM' ? String(data.name_label ?? data.id ?? '') : parentId === undefined ? undefined : this.#vms.get(parentId)
    if (vm !== undefined) this.#vms.set(id, vm)
    const own = taskLabel({ id, message, data, start: 0, status: 'pending' })
    const label = vm === undefined || data.type === 'VM' ? own : `[${vm}] ${own}`
    this.#labels.set(id, label)
    return label
  }

  /** Learns every task of a tree (what `run.get` returned before the live events). */
  learnTree(node: TaskNode, parentId?: string): void {
    this.learn(node.id, parentId, node.message, node.data ?? {})
    for (const child of node.tasks ?? []) this.learnTree(child, node.id)
  }

  label(id: string): string {
    return this.#labels.get(id) ?? id
  }
}

/** The lines `logs --follow` prints as a run's events come: each task named, each end with the status its tree gives it. */
export class LiveRunLines {
  readonly #names = new TaskNames()
  // The tree so far: a VM whose export failed ends "failure" here too, as in the final tree, not "success".
  readonly #fold = new TaskFold()

  /** The tree fetched before the live events. */
  learnTree(tree: TaskNode): void {
    this.#names.learnTree(tree)
    this.#fold.adopt(tree)
  }

  /** The line of an event; undefined for one not shown (a property other than progress). */
  line(event: TaskEvent): string | undefined {
    this.#fold.add(event)
    if (event.type === 'property' && event.name !== 'progress') return undefined
    return eventLine(event, this.#names, event.type === 'end' ? this.#fold.settled(event.id) : undefined)
  }
}

/**
 * One line for a live event (logs --follow), naming the task (and its VM) through the names seen at its start.
 * `status`: for an end, the status the task's tree gives it (a VM whose export failed has failed).
 */
export function eventLine(event: TaskEvent, names: TaskNames, status?: Pick<TaskNode, 'status' | 'healthCheck'>): string {
  return terminalSafeLine(eventText(event, names, status))
}

/** One line of an export's or import's progress, from a lanes snapshot: bytes, % and speed where known. */
export function progressLine(holder: LaneHolder, at: number): string {
  const total = holder.total !== undefined && holder.total > 0 ? holder.total : undefined
  const parts = [
    `${formatBytes(holder.done ?? 0)}${total === undefined ? '' : ` of ${formatBytes(total)} (${Math.min(100, Math.floor(((holder.done ?? 0) * 100) / total))}%)`}`,
    ...(holder.bytesPerSecond !== undefined && holder.bytesPerSecond > 0 ? [`${formatBytes(holder.bytesPerSecond)}/s`] : []),
  ]
  return terminalSafeLine(`${formatDate(at).slice(11)} progress [${holder.vmName ?? holder.vm}] ${holder.disk === undefined ? '' : `${holder.disk} `}${holder.phase}: ${parts.join(', ')}`)
}

function eventText(event: TaskEvent, names: TaskNames, settled?: Pick<TaskNode, 'status' | 'healthCheck'>): string {
  const time = formatDate(event.timestamp).slice(11)
  switch (event.type) {
    case 'start': {
      const { name, ...data } = event.properties
      return `${time} start    ${names.learn(event.id, event.parentId, String(name), data)}`
    }
    case 'end': {
      const result = event.result as { message?: unknown; size?: unknown } | undefined
      const detail = typeof result?.size === 'number' ? ` ${formatBytes(result.size)}` : event.status !== 'success' && typeof result?.message === 'string' ? ` ${result.message}` : ''
      return `${time} ${statusWithCheck(settled ?? event).padEnd(8)} ${names.label(event.id)}${detail}`
    }
    case 'info':
    case 'warning':
      return `${time} ${event.type.padEnd(8)} ${names.label(event.id)}: ${event.message}`
    case 'property':
      if (event.name === 'progress' && typeof event.value === 'number') return `${time} progress ${names.label(event.id)}: ${event.value}%`
      return `${time} property ${names.label(event.id)}: ${event.name} = ${JSON.stringify(event.value)}`
  }
}
