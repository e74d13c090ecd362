// One upload of a restore (an XVA, or a disk) as a 'transfer' task: its size, its progress as bytes go by,
// and its outcome; and the stream wiring that guarantees the source is closed however the upload ends.
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import type { Task } from '../../tasks/index.ts'
import { raceAbort } from '../../xapi/index.ts'
import { abortReason } from '../../util/abort.ts'

const REPORT_EVERY_MS = 250

/** Counts bytes on their way to the pool and reports them as progress (0–100) on the task. */
class ProgressMeter extends Transform {
  #done = 0
  #lastReport = 0

  constructor(
    private readonly task: Task | undefined,
    private readonly size: number,
  ) {
    super()
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#done += chunk.length
    const now = Date.now()
    if (this.task !== undefined && now - this.#lastReport >= REPORT_EVERY_MS) {
      this.#lastReport = now
      this.task.set('progress', Math.min(100, Math.floor((this.#done * 100) / Math.max(1, this.size))))
    }
    callback(null, chunk)
  }

  get done(): number {
    return this.#done
  }
}

/**
 * Runs an upload of `size` bytes from `source` inside a 'transfer' task. The upload gets the metered stream
 * (with `length` set, which the XAPI client needs to send an exact Content-Length); the source is destroyed
 * when the upload ends early, so a cancelled restore leaves no open file or HTTP stream.
 */
export async function transfer<T>(
  parent: Task | undefined,
  properties: { size: number; [key: string]: unknown },
  source: Readable,
  upload: (body: Readable) => Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  const task = parent?.child('transfer', properties)
  const meter = new ProgressMeter(task, properties.size)
  source.on('error', error => meter.destroy(error))
  source.pipe(meter)
  Object.assign(meter, { length: properties.size })
  const run = async () => {
    try {
      // The XAPI client's upload can stay pending after a cancel (it waits for a request that was aborted).
      const result = await raceAbort(upload(meter), signal)
      task?.set('progress', 100)
      return result
    } finally {
      if (!source.destroyed) source.destroy()
      if (!meter.destroyed) meter.destroy()
    }
  }
  if (task === undefined) return run()
  try {
    const result = await run()
    task.end({ size: meter.done })
    return result
  } catch (error) {
    task.fail(signal?.aborted === true ? abortReason(signal) : error)
    throw error
  }
}
