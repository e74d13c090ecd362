// The bytes a target took, reported for the lanes view: how far each target of an export got, and whether it
// is still in the race (the slowest target sets the pace of a lock-step fan-out).
import type { Readable } from 'node:stream'
import type { ProgressReporter } from '../sources/vm-export.ts'

const REPORT_EVERY_MS = 250

/**
 * Passes the chunks (or disk blocks, with `bytes`) through, reporting the bytes seen under the target's name
 * (at most every 250 ms, and at the end).
 */
export function countedForLanes(source: AsyncIterable<Buffer | Uint8Array> | Readable, target: string, report: ProgressReporter): AsyncGenerator<Buffer>
export function countedForLanes<T>(source: AsyncIterable<T>, target: string, report: ProgressReporter, bytes: (item: T) => number): AsyncGenerator<T>
export async function* countedForLanes(source: AsyncIterable<unknown>, target: string, report: ProgressReporter, bytes = (chunk: unknown) => (chunk as Buffer).length): AsyncGenerator<unknown> {
  let done = 0
  let last = 0
  try {
    for await (const chunk of source) {
      done += bytes(chunk)
      const now = Date.now()
      if (now - last > REPORT_EVERY_MS) {
        last = now
        report(target, { done, state: 'writing' })
      }
      yield chunk
    }
    report(target, { done, state: 'done' })
  } catch (error) {
    report(target, { done, state: 'failed' })
    throw error
  }
}
