// The lanes view: for each pool, who holds which snapshot and export slot, how far each export got and
// at what speed; sent to subscribers at most 4 times a second while anything changes.
import { allPoolLimits, poolLimits, type Slots } from '../xapi/index.ts'
import { LANES_INTERVAL_MS } from '../protocol/events.ts'
import type { Lane, LanesSnapshot } from '../protocol/methods.ts'

export interface LaneNames {
  poolName(poolId: string): string
  jobName(jobId: string): string | undefined
}

export function lanesSnapshot(names: LaneNames, now = Date.now()): LanesSnapshot {
  let totalBytesPerSecond = 0
  const lane = (slots: Slots, exports: boolean): Lane => ({
    limit: slots.limit,
    holders: slots.holders.map(lease => {
      const { holder, progress } = lease
      if (exports) totalBytesPerSecond += progress?.bytesPerSecond ?? 0
      const jobName = holder.jobId === undefined ? undefined : names.jobName(holder.jobId)
      return {
        ...holder,
        ...(jobName !== undefined && { jobName }),
        since: lease.since,
        ...(progress !== undefined && progress),
        ...(Object.keys(lease.targets).length > 0 && { targets: { ...lease.targets } }),
      }
    }),
    waiting: slots.waiting.map(holder => ({ runId: holder.runId, vm: holder.vm, phase: holder.phase, ...(holder.vmName !== undefined && { vmName: holder.vmName }), ...(holder.disk !== undefined && { disk: holder.disk }) })),
  })
  const pools = allPoolLimits().map(limits => ({
    poolId: limits.poolUuid,
    poolName: names.poolName(limits.poolUuid),
    snapshots: lane(limits.snapshots, false),
    vdiExports: lane(limits.vdiExports, true),
    vmExports: lane(limits.vmExports, true),
  }))
  return { at: now, pools, totalBytesPerSecond }
}

/** Watches every pool's slots (pools appear as they connect) and calls `send` at most every LANES_INTERVAL_MS. */
export class LanesWatcher {
  readonly #watched = new Set<Slots>()
  #timer: NodeJS.Timeout | undefined
  #lastSent = 0
  #stopped = false

  constructor(private readonly send: () => void) {}

  /** Call when pools change: starts watching the slots of new ones (creating them, so none is missed). */
  refresh(poolIds: Iterable<string>): void {
    for (const id of poolIds) poolLimits(id)
    for (const limits of allPoolLimits()) {
      for (const slots of [limits.snapshots, limits.vdiExports, limits.vmExports]) {
        if (this.#watched.has(slots)) continue
        this.#watched.add(slots)
        slots.on('change', this.#changed)
        slots.on('progress', this.#changed)
      }
    }
  }

  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
    for (const slots of this.#watched) {
      slots.off('change', this.#changed)
      slots.off('progress', this.#changed)
    }
    this.#watched.clear()
  }

  readonly #changed = (): void => {
    if (this.#timer !== undefined || this.#stopped) return
    const wait = Math.max(0, this.#lastSent + LANES_INTERVAL_MS - Date.now())
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#lastSent = Date.now()
      this.send()
    }, wait)
    this.#timer.unref()
  }
}
