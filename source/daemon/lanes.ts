// The lanes view: for each pool, who holds which snapshot and export slot, how far each export got and
// at what speed; sent to subscribers at most 4 times a second while anything changes.
import type { PoolLimitsRegistry, Slots, SlotLease } from '../xapi/index.ts'
import type { RemoteLanes } from '../engine/run/remote-lanes.ts'
import { LANES_INTERVAL_MS } from '../protocol/events.ts'
import type { Lane, LanesSnapshot } from '../protocol/methods.ts'

export interface LaneNames {
  poolName(poolId: string): string
  jobName(jobId: string): string | undefined
}

/** How fast the shown rate follows a change of speed: about this long to move most of the way. */
export const RATE_SMOOTHING_MS = 10_000

export interface RateSample {
  /** The first reading's time: young averages follow the speed faster. */
  since: number
  at: number
  done: number
  /** Bytes per second, smoothed. */
  rate: number
}

/**
 * The rate to show after a new reading: an exponential moving average of the speed between readings, so
 * that ETAs move smoothly (a burst or a pause does not swing them) and a stall shows as a slowing rate;
 * its window grows from the first reading to RATE_SMOOTHING_MS, so a slow start is forgotten quickly.
 */
export function smoothRate(previous: RateSample | undefined, at: number, done: number, average: number | undefined): RateSample {
  if (previous === undefined) return { since: at, at, done, rate: average ?? 0 }
  const elapsed = at - previous.at
  if (elapsed <= 0 || done < previous.done) return previous
  const instant = ((done - previous.done) * 1000) / elapsed
  // The first average includes the export's slow start: a young one follows the speed within seconds.
  const weight = 1 - Math.exp(-elapsed / Math.min(RATE_SMOOTHING_MS, at - previous.since))
  return { since: previous.since, at, done, rate: previous.rate + weight * (instant - previous.rate) }
}

const rates = new WeakMap<SlotLease, RateSample>()

/** The lease's smoothed rate as of `now` (remembered per lease; a lease is one export). */
function rateOf(lease: SlotLease, now: number): number | undefined {
  const progress = lease.progress
  if (progress === undefined) return undefined
  const sample = smoothRate(rates.get(lease), now, progress.done, progress.bytesPerSecond)
  rates.set(lease, sample)
  return sample.rate
}

export function lanesSnapshot(limits: PoolLimitsRegistry, names: LaneNames, now = Date.now(), remoteLanes?: RemoteLanes): LanesSnapshot {
  let totalBytesPerSecond = 0
  const lane = (slots: Slots, exports: boolean): Lane => ({
    limit: slots.limit,
    holders: slots.holders.map(lease => {
      const { holder, progress } = lease
      const bytesPerSecond = rateOf(lease, now)
      if (exports) totalBytesPerSecond += bytesPerSecond ?? 0
      const jobName = holder.jobId === undefined ? undefined : names.jobName(holder.jobId)
      return {
        ...holder,
        ...(jobName !== undefined && { jobName }),
        since: lease.since,
        ...(progress !== undefined && { ...progress, ...(bytesPerSecond !== undefined && { bytesPerSecond }) }),
        ...(Object.keys(lease.targets).length > 0 && { targets: { ...lease.targets } }),
      }
    }),
    waiting: slots.waiting.map(holder => ({ runId: holder.runId, vm: holder.vm, phase: holder.phase, ...(holder.vmName !== undefined && { vmName: holder.vmName }), ...(holder.disk !== undefined && { disk: holder.disk }) })),
  })
  const pools = limits.all().map(limits => ({
    poolId: limits.poolUuid,
    poolName: names.poolName(limits.poolUuid),
    snapshots: lane(limits.snapshots, false),
    vdiExports: lane(limits.vdiExports, true),
    vmExports: lane(limits.vmExports, true),
  }))
  // Remotes read by runs without a pool (mirror, verify): shown while something reads them.
  const remotes = (remoteLanes?.all() ?? []).filter(({ slots }) => slots.holders.length + slots.waiting.length > 0).map(({ remote, slots }) => ({ remote, reads: lane(slots, true) }))
  return { at: now, pools, ...(remotes.length > 0 && { remotes }), totalBytesPerSecond }
}

/** Watches every pool's slots (pools appear as they connect) and calls `send` at most every LANES_INTERVAL_MS. */
export class LanesWatcher {
  readonly #watched = new Set<Slots>()
  #timer: NodeJS.Timeout | undefined
  #lastSent = 0
  #stopped = false

  constructor(
    private readonly limits: PoolLimitsRegistry,
    private readonly send: () => void,
    remoteLanes?: RemoteLanes,
  ) {
    remoteLanes?.on('added', (slots: Slots) => this.#watch(slots))
    for (const { slots } of remoteLanes?.all() ?? []) this.#watch(slots)
  }

  /** Call when pools change: starts watching the slots of new ones (creating them, so none is missed). */
  refresh(poolIds: Iterable<string>): void {
    for (const id of poolIds) this.limits.of(id)
    for (const limits of this.limits.all()) for (const slots of [limits.snapshots, limits.vdiExports, limits.vmExports]) this.#watch(slots)
  }

  #watch(slots: Slots): void {
    if (this.#watched.has(slots) || this.#stopped) return
    this.#watched.add(slots)
    slots.on('change', this.#changed)
    slots.on('progress', this.#changed)
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
