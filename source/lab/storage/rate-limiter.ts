// The host's transfer throughput model (xapi.md §6.5): each stream has its own token bucket, and a host-wide
// cap is shared fairly among the streams running, so one export runs at ~30 MiB/s and parallel ones add up to the cap.
import { Transform, pipeline } from 'node:stream'
import type { Readable, TransformCallback } from 'node:stream'

const MiB = 1024 * 1024
/** How far ahead of its rate a stream may run after a pause (the bucket's depth). */
const BURST_MS = 50
/** A stream that asked for no bytes for this long (its reader is slow) leaves its share of the host cap to the others. */
const DEMAND_WINDOW_MS = 200

export interface RateLimits {
  /** one stream's rate; undefined = uncapped */
  perStreamMiBs?: number | undefined
  /** all streams together; undefined = uncapped */
  hostMiBs?: number | undefined
}

export class RateLimiter {
  private limits: RateLimits
  /** open streams, with when each last had a chunk to pass */
  private readonly streams = new Set<{ lastDemand: number }>()

  constructor(limits: RateLimits = {}) {
    this.limits = { ...limits }
  }

  /** Takes effect from the next chunk of every stream, running ones included. */
  setLimits(limits: RateLimits): void {
    this.limits = { ...limits }
  }

  get activeStreams(): number {
    return this.streams.size
  }

  /** Bytes per millisecond one stream may use now: its cap, or its share of the host cap among the streams moving data. */
  private streamRate(now: number): number {
    const perStream = this.limits.perStreamMiBs ?? Infinity
    let moving = 0
    if (this.limits.hostMiBs !== undefined) for (const stream of this.streams) if (now - stream.lastDemand < DEMAND_WINDOW_MS) moving++
    const share = (this.limits.hostMiBs ?? Infinity) / Math.max(1, moving)
    return (Math.min(perStream, share) * MiB) / 1000
  }

  /**
   * `source` paced by the model. Chunks pass through untouched (no copies); the pause happens before a chunk is
   * handed on, so back-pressure reaches the source; destroying either end destroys the other.
   */
  throttle(source: Readable): Readable {
    let readyAt = performance.now()
    const state = { lastDemand: readyAt }
    const pace = new Transform({
      transform: (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) => {
        const now = performance.now()
        state.lastDemand = now
        const rate = this.streamRate(now)
        if (rate === Infinity) return callback(null, chunk)
        readyAt = Math.max(readyAt, now - BURST_MS) + chunk.length / rate
        state.lastDemand = Math.max(now, readyAt) // a stream waiting for its turn still wants its share
        const wait = readyAt - now
        if (wait <= 0) return callback(null, chunk)
        setTimeout(() => callback(null, chunk), wait)
      },
    })
    this.streams.add(state)
    pace.once('close', () => this.streams.delete(state))
    pipeline(source, pace, () => undefined) // errors reach the consumer through `pace` itself
    return pace
  }
}
