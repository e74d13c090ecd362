// A run's export budget (the job's maxExportRate, bytes per second): every export of the run takes from
// one bucket before its bytes reach the targets, so the cap holds for the run whatever its concurrency.
import { sleep } from '../../util/abort.ts'

/** Bursts up to this long at the full rate are allowed (a 2 MiB block at a low rate would otherwise stall). */
const BURST_SECONDS = 1

export class RateLimit {
  #readyAt: number

  constructor(
    readonly bytesPerSecond: number,
    private readonly clock: { now(): number; sleep(ms: number, signal?: AbortSignal): Promise<void> } = { now: () => performance.now(), sleep },
  ) {
    this.#readyAt = clock.now()
  }

  /** Waits until `bytes` fit in the budget; the wait ends early (rejecting) when the signal aborts. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const now = this.clock.now()
    this.#readyAt = Math.max(this.#readyAt, now - BURST_SECONDS * 1000) + (bytes / this.bytesPerSecond) * 1000
    const wait = this.#readyAt - now
    if (wait > 0) await this.clock.sleep(wait, signal)
  }
}
