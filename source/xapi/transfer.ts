// Disk and VM streams to and from a pool over XAPI's HTTP handlers, each within the pool's export slots.
// The slot is held until the stream ends or is destroyed, and its lease reports bytes for the lanes view.
import { Readable, Transform, type TransformCallback } from 'node:stream'
import { CancelToken } from 'promise-toolbox'
import { LifeboatError } from '../util/errors.ts'
import { abortReason, throwIfAborted } from '../util/abort.ts'
import { raceAbort, type PoolConnection } from './connection.ts'
import { getExport } from './http-get.ts'
import { wrapXapiError, xapiError } from './errors.ts'
import { httpError, withXapiTask } from './xapi-task.ts'
import type { SlotHolder, SlotLease, Slots } from './slots.ts'

export interface ExportStream {
  stream: Readable
  /** Settles with the XAPI task: rejects when XAPI reports a failure (the body may just look short). */
  task: Promise<unknown>
  /** The export slot this stream holds until it closes (writers report their progress on it). */
  lease: SlotLease
  /** The exact size once known (a VHD's block table tells it), for progress and ETA. */
  setExpectedSize(bytes: number): void
}

interface ExportOptions {
  holder: SlotHolder
  signal?: AbortSignal
  /** Expected size for progress (virtual size for a VHD, an estimate for an XVA). */
  expectedSize?: number
}

/** A VDI as a VHD stream: full, or the blocks changed since `baseRef` (a snapshot of the same disk). */
export function exportVdiVhd(conn: PoolConnection, vdiRef: string, options: ExportOptions & { baseRef?: string }): Promise<ExportStream> {
  const query: Record<string, string> = { format: 'vhd', vdi: vdiRef }
  if (options.baseRef !== undefined) query.base = options.baseRef
  return exportResource(conn, conn.limits.vdiExports, '/export_raw_vdi/', query, options)
}

/** A halted VM or a snapshot as an XVA stream, compressed by the host when asked. */
export function exportVmXva(conn: PoolConnection, vmRef: string, options: ExportOptions & { compression?: 'gzip' | 'zstd' }): Promise<ExportStream> {
  const compression = options.compression === undefined ? 'false' : options.compression
  return exportResource(conn, conn.limits.vmExports, '/export/', { ref: vmRef, use_compression: compression }, options)
}

async function exportResource(conn: PoolConnection, slots: Slots, path: string, query: Record<string, string>, options: ExportOptions): Promise<ExportStream> {
  const lease = await slots.acquire(options.holder, options.signal)
  try {
    const response = await getExport(conn, path, query, options.signal)
    const task = response.task.catch(error => {
      throw wrapXapiError(error, `export task of ${path}`)
    })
    task.catch(() => {})
    const guard = new ExportGuard(lease, options.expectedSize)
    const stream = response.body.pipe(guard)
    response.body.on('error', error => stream.destroy(wrapXapiError(error, `GET ${path}`) as Error))
    stream.once('close', () => {
      lease.release()
      if (!response.body.destroyed) response.body.destroy()
    })
    return { stream, task, lease, setExpectedSize: bytes => (guard.expected = bytes) }
  } catch (error) {
    lease.release()
    throw error
  }
}

const EMBEDDED_ERROR = Buffer.from('HTTP/1.1 500')

/**
 * Counts bytes for the slot's progress, and turns XAPI's "200 with an HTTP 500 in the body" bug
 * (xen-api#4603) into the coded error it means.
 */
class ExportGuard extends Transform {
  #done = 0
  #started = Date.now()
  #lastReport = 0
  #head: Buffer | undefined = Buffer.alloc(0)

  constructor(
    private readonly lease: SlotLease,
    public expected: number | undefined,
  ) {
    super()
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#head !== undefined) {
      this.#head = Buffer.concat([this.#head, chunk])
      if (this.#head.length < EMBEDDED_ERROR.length) return callback()
      const head = this.#head
      this.#head = undefined
      if (head.subarray(0, EMBEDDED_ERROR.length).equals(EMBEDDED_ERROR)) return callback(embeddedError(head))
      chunk = head
    }
    this.#done += chunk.length
    const now = Date.now()
    if (now - this.#lastReport > 250) {
      this.#lastReport = now
      this.lease.report({ done: this.#done, total: this.expected, bytesPerSecond: (this.#done * 1000) / Math.max(1, now - this.#started) })
    }
    callback(null, chunk)
  }

  override _flush(callback: TransformCallback): void {
    if (this.#head !== undefined && this.#head.length > 0) {
      const head = this.#head
      this.#head = undefined
      this.#done += head.length
      this.push(head)
    }
    callback()
  }
}

function embeddedError(head: Buffer): Error {
  const text = head.toString('latin1', 0, Math.min(head.length, 4096))
  const match = /(SR_BACKEND_FAILURE_\d+)/.exec(text)
  return match === null
    ? new LifeboatError('XAPI_EXPORT_FAILED', 'the host answered the export with an internal error; check the SR and the host logs.')
    : xapiError(match[1]!, [text.slice(text.indexOf(match[1]!), text.indexOf(match[1]!) + 300).replace(/\s+/g, ' ')], 'export')
}

/** Uploads a VHD onto an existing VDI (a delta onto a clone of its base, or a whole disk). */
export async function importVdiVhd(conn: PoolConnection, vdiRef: string, body: Readable, length: number, signal?: AbortSignal): Promise<void> {
  await putResource(conn, body, length, '/import_raw_vdi/', { format: 'vhd', vdi: vdiRef }, signal)
}

/**
 * Imports an XVA onto an SR; resolves with the new VM's ref. `onTask` learns the import's XAPI task first: the
 * VM XAPI creates early carries it in current_operations (engine/import-watch.ts finds it by that).
 */
export async function importVmXva(conn: PoolConnection, body: Readable, length: number | undefined, srRef: string, signal?: AbortSignal, onTask?: (taskRef: string) => void): Promise<string> {
  const result = await putResource(conn, body, length, '/import/', { sr_id: srRef }, signal, onTask)
  const ref = Array.isArray(result) ? result[0] : result
  if (typeof ref !== 'string') throw new LifeboatError('XAPI_IMPORT_NO_VM', 'the pool accepted the XVA but reported no VM; check the pool for a half-imported VM.')
  return ref
}

/**
 * An upload under a XAPI task of our own, so that a cancel (even one landing before the PUT starts)
 * cancels that task, and the caller is released at once: xen-api's own promise can wait on a request
 * that was aborted. A body without `length` must not end before the host answers (xen-api then cuts
 * the socket with bytes still buffered): callers give the length whenever they know it.
 */
async function putResource(conn: PoolConnection, body: Readable, length: number | undefined, path: string, query: Record<string, string>, signal?: AbortSignal, onTask?: (taskRef: string) => void): Promise<unknown> {
  if (length !== undefined) Object.assign(body, { length })
  try {
    return await withXapiTask(conn, `PUT ${path}`, signal, async task => {
      onTask?.(task.ref)
      throwIfAborted(signal)
      const token = CancelToken.from(signal ?? new AbortController().signal)
      // The task is watched by us, not by xen-api: its watch of a body without length rejects unhandled when the
      // connection breaks mid-body (a toolstack restart during a replica's import), and that ends the process.
      const upload = conn.xapi.putResource(token, body, path, { query: { ...query, task_id: task.ref }, task: false }).catch(error => {
        const status = (error as { response?: { statusCode?: number } }).response?.statusCode
        throw status === undefined ? error : httpError(`PUT ${path}`, status, String((error as Error).message))
      })
      await raceAbort(upload, signal)
      return await raceAbort(task.outcome, signal)
    }, () => !body.readableDidRead) // a 401 comes on xen-api's empty probe request, before the body is read
  } catch (error) {
    if (signal?.aborted === true) throw abortReason(signal)
    throw wrapXapiError(error, `PUT ${path}`)
  }
}
