// Fires job schedules: one timer for the earliest next fire time over all enabled schedules, each
// computed by nextFireTime in the schedule's timezone. The clock is injectable so tests can cross DST.
import { nextFireTime } from '../protocol/cron.ts'

export interface Clock {
  now(): number
  setTimer(fire: () => void, ms: number): unknown
  clearTimer(handle: unknown): void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fire, ms) => setTimeout(fire, ms).unref(),
  clearTimer: handle => clearTimeout(handle as NodeJS.Timeout),
}

export interface ScheduleEntry {
  jobId: string
  scheduleId: string
  cron: string
  timezone: string
}

export type FireListener = (entry: ScheduleEntry, scheduledAt: number) => void

// Long waits are cut so a timer never overflows and a changed system clock is noticed within the hour.
const MAX_WAIT_MS = 3_600_000

export class Scheduler {
  readonly #entries = new Map<string, { entry: ScheduleEntry; next: number | undefined }>()
  #timer: unknown
  #stopped = false

  constructor(
    private readonly onFire: FireListener,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Replaces every schedule (call after any job change). */
  setSchedules(entries: ScheduleEntry[]): void {
    const now = this.clock.now()
    const previous = new Map(this.#entries)
    this.#entries.clear()
    for (const entry of entries) {
      const key = `${entry.jobId}/${entry.scheduleId}`
      const old = previous.get(key)
      // An unchanged schedule keeps its pending fire time, so a job edit never skips or repeats a run.
      const next = old !== undefined && old.entry.cron === entry.cron && old.entry.timezone === entry.timezone ? old.next : nextFireTime(entry, now)
      this.#entries.set(key, { entry, next })
    }
    this.#arm()
  }

  /** When the job's schedules fire next (ms epoch), the earliest of them. */
  nextRun(jobId: string): number | undefined {
    let earliest: number | undefined
    for (const { entry, next } of this.#entries.values()) {
      if (entry.jobId === jobId && next !== undefined && (earliest === undefined || next < earliest)) earliest = next
    }
    return earliest
  }

  stop(): void {
    this.#stopped = true
    if (this.#timer !== undefined) this.clock.clearTimer(this.#timer)
    this.#timer = undefined
  }

  #arm(): void {
    if (this.#timer !== undefined) this.clock.clearTimer(this.#timer)
    this.#timer = undefined
    if (this.#stopped) return
    let earliest: number | undefined
    for (const { next } of this.#entries.values()) if (next !== undefined && (earliest === undefined || next < earliest)) earliest = next
    if (earliest === undefined) return
    const wait = Math.min(Math.max(earliest - this.clock.now(), 0), MAX_WAIT_MS)
    this.#timer = this.clock.setTimer(() => this.#tick(), wait)
  }

  #tick(): void {
    this.#timer = undefined
    const now = this.clock.now()
    const due: Array<[ScheduleEntry, number]> = []
    for (const slot of this.#entries.values()) {
      if (slot.next === undefined || slot.next > now) continue
      due.push([slot.entry, slot.next])
      // From the later of now and the fired time: a late timer (suspended machine) fires once, not once per missed time.
      slot.next = nextFireTime(slot.entry, Math.max(now, slot.next))
    }
    for (const [entry, scheduledAt] of due) {
      try {
        this.onFire(entry, scheduledAt)
      } catch {
        // the listener logs its own failures; one schedule never stops the others
      }
    }
    this.#arm()
  }
}
