// The host's transfer throughput model (xapi.md §6.5): each stream has its own token bucket, and a host-wide
// cap is shared fairly among the streams running, so one export runs at ~30 MiB/s and parallel ones add up to the cap.
import { Transform, pipeline } from 'node:stream'
import type { Readable, TransformCallback } from 'node:stream'

const MiB = 1024 * 1024
/** How far ahead of its rate a stream may run after a pause (the bucket's depth). */
const BURST_MS = 50

export interface RateLimits {
  /** one stream's rate; undefined = uncapped */
  perStreamMiBs?: number | undefined
  /** all streams together; undefined = uncapped */
  hostMiBs?: number | undefined
}

export class RateLimiter {
  private limits: RateLimits
  private active = 0

  constructor(limits: RateLimits = {}) {
    this.limits = { ...limits }
  }

  /** Takes effect from the next chunk of every stream, running ones included. */
  setLimits(limits: RateLimits): void {
    this.limits = { ...limits }
  }

  get activeStreams(): number {
    return this.active
  }

  /** Bytes per millisecond one stream may use now; Infinity when uncapped. */
  private streamRate(): number {
    const perStream = this.limits.perStreamMiBs ?? Infinity
    const share = (this.limits.hostMiBs ?? Infinity) / Math.max(1, this.active)
    return (Math.min(perStream, share) * MiB) / 1000
  }

  /**
   * `source` paced by the model. Chunks pass through untouched (no copies); the pause happens before a chunk is
   * handed on, so back-pressure reaches the source; destroying either end destroys the other.
   */
  throttle(source: Readable): Readable {
    let readyAt = performance.now()
    const pace = new Transform({
      transform: (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) => {
        const rate = this.streamRate()
        if (rate === Infinity) return callback(null, chunk)
        const now = performance.now()
        readyAt = Math.max(readyAt, now - BURST_MS) + chunk.length / rate
        const wait = readyAt - now
        if (wait <= 0) return callback(null, chunk)
        setTimeout(() => callback(null, chunk), wait)
      },
    })
    this.active++
    let counted = true
    pace.once('close', () => {
      if (counted) this.active--
      counted = false
    })
    pipeline(source, pace, () => undefined) // errors reach the consumer through `pace` itself
    return pace
  }
}
