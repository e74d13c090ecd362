// A task tree as lines on a screen: the expanded tasks in order, each with the figures an administrator
// checks (duration, size, speed) and, when open, its warnings and error as lines of their own.
import type { RunStatus, Sr, TaskNode } from '../contract.ts'
import { formatBytes, formatElapsed, formatSpeed } from '../format.ts'
import { checkWord } from './common.tsx'

export interface TreeLine {
  key: string
  depth: number
  kind: 'task' | 'warning' | 'error' | 'info'
  text: string
  status?: RunStatus
  node?: TaskNode
  hasChildren: boolean
  open: boolean
}

/** The size a task moved: its result's size, else its `size` property. */
function sizeOf(node: TaskNode): number | undefined {
  const fromResult = typeof node.result === 'object' && node.result !== null ? (node.result as { size?: unknown }).size : undefined
  const size = fromResult ?? node.properties?.size
  return typeof size === 'number' ? size : undefined
}

export function taskFigures(node: TaskNode, now: number): string {
  const duration = node.duration ?? now - node.start
  const size = sizeOf(node)
  const parts = [formatElapsed(duration)]
  if (size !== undefined) parts.push(formatBytes(size), formatSpeed(duration > 0 ? (size / duration) * 1000 : undefined))
  const progress = node.properties?.progress
  if (node.status === 'pending' && typeof progress === 'number') parts.push(`${Math.floor(progress)}%`)
  return parts.join('  ')
}

function errorOf(node: TaskNode): string | undefined {
  if (node.status !== 'failure' && node.status !== 'skipped' && node.status !== 'interrupted') return undefined
  const result = node.result as { code?: unknown; message?: unknown } | undefined
  if (result === undefined || typeof result !== 'object') return undefined
  return `${typeof result.code === 'string' ? `${result.code}: ` : ''}${String(result.message ?? '')}`
}

const DISTRIBUTED_WORDS: Record<string, string> = { chain: 'chain kept', 'most free space': 'most free space', tie: 'tie, at random', random: 'at random' }

/** Why a distributed job sent the VM there, when it did: { reason, why } in the export task's data. */
export function distribution(node: TaskNode): { reason: string; why: string } | undefined {
  const value = node.data?.distributed as { reason?: unknown; why?: unknown } | undefined
  return typeof value?.reason === 'string' && typeof value.why === 'string' ? { reason: value.reason, why: value.why } : undefined
}

/** An export task names its target as the administrator knows it: the remote, or the SR with its pool; full or delta; why there (distributed). */
function exportLabel(node: TaskNode, srs: ReadonlyMap<string, Sr>): string | undefined {
  const data = node.data ?? {}
  const chosen = distribution(node)
  const kind = (data.isFull === true ? ' · full' : data.isFull === false ? ' · delta' : '') + (chosen === undefined ? '' : ` · distributed: ${DISTRIBUTED_WORDS[chosen.reason] ?? chosen.reason}`)
  if (data.type === 'remote' && typeof data.id === 'string') return `${node.message} to remote ${data.id}${kind}`
  if (data.type !== 'SR') return undefined
  const sr = typeof data.id === 'string' ? srs.get(data.id) : undefined
  const name = typeof data.name_label === 'string' ? data.name_label : (sr?.name ?? String(data.id))
  return `${node.message} to SR ${name}${sr === undefined ? '' : ` (pool ${sr.poolName})`}${kind}`
}

function label(node: TaskNode, srs: ReadonlyMap<string, Sr>): string {
  const data = node.data ?? {}
  const target = exportLabel(node, srs)
  if (target !== undefined) return target
  // A delegated run's root: its tasks ran on that proxy.
  if (node.parentId === undefined && typeof data.proxy === 'string') return `${node.message} on proxy ${data.proxy}`
  const checkSr = node.properties?.sr as { name_label?: unknown } | undefined
  if (typeof checkSr?.name_label === 'string') return `${node.message} on SR ${checkSr.name_label}`
  // A verified backup is named by its date (its id is the metadata's path, `…/<date>.json`).
  const backup = typeof data.backupId === 'string' ? data.backupId.split('/').at(-1)!.replace(/\.json$/, '') : undefined
  const name = [data.vmName, data.name_label, data.remote, data.sr, backup].find(v => typeof v === 'string' && !node.message.includes(v))
  return name === undefined ? node.message : `${node.message} ${String(name)}`
}

/**
 * Flattens the tree. A task is open when the administrator unfolded it (`opened`), else when it did not
 * succeed (what went wrong shows first) or is the root; folding it (`closed`) wins over both.
 */
export function flattenTree(root: TaskNode, closed: ReadonlySet<string>, opened: ReadonlySet<string>, now: number, srs: ReadonlyMap<string, Sr> = new Map()): TreeLine[] {
  const lines: TreeLine[] = []
  const visit = (node: TaskNode, depth: number) => {
    const chosen = distribution(node)
    const details = [
      ...(chosen === undefined ? [] : [{ kind: 'info' as const, text: `ⓘ ${chosen.why}` }]),
      ...(node.warnings ?? []).map(w => ({ kind: 'warning' as const, text: `⚠ ${w.message}` })),
      ...(errorOf(node) === undefined ? [] : [{ kind: 'error' as const, text: `✖ ${errorOf(node)}` }]),
    ]
    const hasChildren = (node.tasks?.length ?? 0) > 0 || details.length > 0
    // A backup whose health check did not pass opens like a failure: the check is what needs looking at.
    const unverified = node.healthCheck !== undefined && node.healthCheck !== 'success'
    const open = hasChildren && !closed.has(node.id) && (depth === 0 || opened.has(node.id) || node.status !== 'success' || unverified)
    const check = unverified ? `  · health check ${checkWord(node.healthCheck!)}` : ''
    lines.push({ key: node.id, depth, kind: 'task', text: `${label(node, srs)}  ${taskFigures(node, now)}${check}`, status: node.status, node, hasChildren, open })
    if (!open) return
    details.forEach((detail, i) => lines.push({ key: `${node.id}:${i}`, depth: depth + 1, kind: detail.kind, text: detail.text, hasChildren: false, open: false }))
    for (const child of node.tasks ?? []) visit(child, depth + 1)
  }
  visit(root, 0)
  return lines
}

/** The VM a finished restore created, as its run's result names it. */
export function restoredVm(root: TaskNode): { name?: string; uuid: string } | undefined {
  const result = root.result as { vmUuid?: unknown; vmName?: unknown } | undefined
  if (root.status !== 'success' || typeof result !== 'object' || result === null || typeof result.vmUuid !== 'string') return undefined
  return { uuid: result.vmUuid, ...(typeof result.vmName === 'string' && { name: result.vmName }) }
}
