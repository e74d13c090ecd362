// What earlier runs of a job measured, read from their settled task trees: each disk's delta sizes (the
// transfer tasks' per-disk bytes), each VM's time and each transfer's rate. The plan of the next run
// estimates its bytes and its window from these, and says so.
import type { TaskNode } from '../../tasks/index.ts'

export interface RunHistory {
  /** Live VDI uuid → bytes of its delta transfers, newest first (one figure per run, the largest over targets). */
  deltaBytes: Map<string, number[]>
  /** VM uuid → durations (ms) of its successful backups, newest first. */
  vmDurations: Map<string, number[]>
  /** Bytes per second of successful transfers, newest first. */
  rates: number[]
  /** Durations (ms) of snapshots, newest first. */
  snapshots: number[]
  runs: number
}

/** Reads the trees of a job's earlier runs, newest first. */
export function readHistory(runs: readonly TaskNode[]): RunHistory {
  const history: RunHistory = { deltaBytes: new Map(), vmDurations: new Map(), rates: [], snapshots: [], runs: runs.length }
  const push = <K>(map: Map<K, number[]>, key: K, value: number) => map.set(key, [...(map.get(key) ?? []), value])
  for (const run of runs) {
    for (const vm of run.tasks ?? []) {
      if (vm.message !== 'backup VM') continue
      const vmUuid = vm.data?.id as string | undefined
      if (vm.status === 'success' && vmUuid !== undefined && vm.duration !== undefined) push(history.vmDurations, vmUuid, vm.duration)
      const perDisk = new Map<string, number>()
      for (const child of vm.tasks ?? []) {
        if (child.message === 'snapshot' && child.status === 'success' && child.duration !== undefined) history.snapshots.push(child.duration)
        if (child.message !== 'export') continue
        const transfer = child.tasks?.find(task => task.message === 'transfer')
        if (transfer?.status !== 'success') continue
        const result = transfer.result as { size?: number; disks?: Record<string, number> } | undefined
        if (result?.size !== undefined && transfer.duration !== undefined && transfer.duration > 0 && result.size > 0) history.rates.push((result.size * 1000) / transfer.duration)
        if (child.data?.isFull === true) continue
        for (const [disk, bytes] of Object.entries(result?.disks ?? {})) perDisk.set(disk, Math.max(perDisk.get(disk) ?? 0, bytes))
      }
      for (const [disk, bytes] of perDisk) push(history.deltaBytes, disk, bytes)
    }
  }
  return history
}

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
