// Disk transfers with XAPI's HTTP framing (xapi.md §1.6): raw status line and headers written on the socket,
// bodies delimited by the connection close, PUT answered before the body is read; each transfer runs as a task,
// attaches the disk to dom0 for its duration and detaches it a little after (the VDI_IN_USE window backups hit).
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { PassThrough, type Readable } from 'node:stream'
import { ApiError } from './errors.ts'
import type { FaultAction } from './faults.ts'
import { NULL_REF } from './schema.ts'
import { exportRaw, exportVhd, importRaw, importVhd } from './storage/index.ts'
import { delay, type Toolstack } from './toolstack.ts'
import { createVdi, refreshSr } from './vdi.ts'
import { exportXva, importXva } from './xva.ts'

export const TRANSFER_PATHS = new Set(['/export_raw_vdi/', '/import_raw_vdi/', '/export/', '/import/'])

export interface Transfer {
  xapi: Toolstack
  request: IncomingMessage
  socket: Socket
  query: URLSearchParams
  task: string
  signal: AbortSignal
  fault: FaultAction | undefined
}

const IO_ERROR = () => new ApiError('VDI_IO_ERROR', ['Device I/O errors'])

export async function handleTransfer(xapi: Toolstack, request: IncomingMessage, url: URL): Promise<void> {
  const socket = request.socket
  const path = url.pathname.replace(/\/?$/, '/')
  const query = url.searchParams
  const session = query.get('session_id') ?? cookie(request, 'session_id')
  if (session === undefined || !xapi.sessions.has(session)) {
    writeHead(socket, 401, 'Unauthorised', {})
    socket.end()
    return
  }
  const given = query.get('task_id') ?? undefined
  const task = given !== undefined && xapi.db.has('task', given) ? given : xapi.createTask(`Internal ${path}`, '')
  const handler = { '/export_raw_vdi/': exportRawVdi, '/import_raw_vdi/': importRawVdi, '/export/': exportXva, '/import/': importXva }[path]!
  const kind = ({ '/export_raw_vdi/': 'vdiExport', '/import_raw_vdi/': 'vdiImport', '/export/': 'vmExport', '/import/': 'vmImport' } as const)[path]!
  await xapi.activity.track(kind, () => xapi.runTask(task, ({ signal }) => handler({ xapi, request, socket, query, task, signal, fault: undefined })))
  if (!answered.has(socket) && !socket.destroyed) {
    const failure = xapi.db.has('task', task) ? (xapi.db.row('task', task).error_info as string[]) : []
    writeHead(socket, 500, 'Internal Server Error', { 'content-type': 'text/plain' })
    socket.write(`${failure.join(' ')}\n`)
  }
  if (!socket.destroyed) socket.end()
  // Without a task_id the handler's own task is internal and goes away with the request.
  if (task !== given && xapi.db.has('task', task)) xapi.db.delete('task', task)
}

function cookie(request: IncomingMessage, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, value] = part.trim().split('=')
    if (key === name && value !== undefined) return decodeURIComponent(value)
  }
  return undefined
}

// Sockets whose status line is written: a handler that fails before that gets a plain 500.
const answered = new WeakSet<Socket>()

export function writeHead(socket: Socket, status: number, reason: string, headers: Record<string, string>, version = '1.1'): void {
  answered.add(socket)
  const lines = [`HTTP/${version} ${status} ${reason}`, 'connection: close', 'cache-control: no-cache, no-store',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)]
  socket.write(`${lines.join('\r\n')}\r\n\r\n`)
}

/** A VDI given as ref or uuid, as XAPI's handlers accept both. */
function vdiParam(xapi: Toolstack, value: string | null): string {
  if (value !== null && xapi.db.has('VDI', value)) return value
  try {
    return xapi.db.byUuid('VDI', value ?? '')
  } catch {
    throw new ApiError('HANDLE_INVALID', ['VDI', String(value)])
  }
}

/** Plugs the VDI into the control domain for a transfer; the returned detach honours the configured lag. */
export async function attachToDom0(xapi: Toolstack, vdi: string, signal: AbortSignal): Promise<() => void> {
  const { db } = xapi
  const dom0 = db.row('host', xapi.masterRef).control_domain as string
  const vbd = db.create('VBD', { VM: dom0, VDI: vdi, currently_attached: true, mode: 'RO', type: 'Disk', userdevice: 'autodetect', device: 'xvdz',
    unpluggable: true, other_config: {} })
  const detach = () => {
    const drop = () => db.has('VBD', vbd) && db.delete('VBD', vbd)
    if (xapi.knobs.detachLagMs > 0) setTimeout(drop, xapi.knobs.detachLagMs).unref()
    else drop()
  }
  try {
    await delay(xapi.knobs.attachMs, signal)
  } catch (error) {
    detach()
    throw error
  }
  return detach
}

function socketWrite(socket: Socket, chunk: Buffer): Promise<void> {
  if (socket.destroyed) return Promise.reject(IO_ERROR())
  if (socket.write(chunk)) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const done = (error?: unknown) => {
      socket.off('drain', done)
      socket.off('close', closed)
      if (error === undefined) resolve()
      else reject(error)
    }
    const closed = () => done(IO_ERROR())
    socket.on('drain', done)
    socket.on('close', closed)
  })
}

const BODY_BUFFER_LIMIT = 32 * 1024 * 1024

/**
 * The PUT body as it arrives. A client that cuts the connection once it has sent everything (xen-api's 1 PiB upload)
 * must not lose the bytes already received: the body then just ends, and the reader sees how far it got.
 */
export function receivedBody(request: IncomingMessage): Readable {
  const body = new PassThrough()
  request.on('data', (chunk: Buffer) => {
    body.write(chunk)
    if (body.writableLength > BODY_BUFFER_LIMIT) request.pause()
  })
  body.on('drain', () => request.resume())
  request.on('end', () => body.end())
  request.on('close', () => body.end())
  return body
}

/** Streams a body to the client, applying the transfer's fault (cut short, stall) and reporting progress about every second. */
export async function pump(transfer: Transfer, source: Readable, expectedLength: number | undefined): Promise<number> {
  const { socket, signal, fault, xapi, task } = transfer
  let sent = 0
  let stalled = false
  let lastProgress = Date.now()
  const throttled = xapi.rates.throttle(source)
  try {
    for await (const chunk of throttled as AsyncIterable<Buffer>) {
      if (signal.aborted) throw signal.reason
      if (fault?.type === 'truncate' && sent + chunk.length >= fault.afterBytes) {
        await socketWrite(socket, chunk.subarray(0, fault.afterBytes - sent))
        sent = fault.afterBytes
        if (fault.mode === 'rst') socket.resetAndDestroy()
        else socket.end()
        throw IO_ERROR()
      }
      if (fault?.type === 'stall' && !stalled && sent + chunk.length > (fault.afterBytes ?? 0)) {
        stalled = true
        await stall(fault.ms, socket, signal)
      }
      await socketWrite(socket, chunk)
      sent += chunk.length
      if (expectedLength !== undefined && Date.now() - lastProgress >= 1000) {
        lastProgress = Date.now()
        xapi.progress(task, sent / expectedLength)
      }
    }
  } finally {
    throttled.destroy()
    source.destroy()
  }
  return sent
}

/** Nothing sent for `ms`, ended early by a cancel or by the client going away (XAPI's next write would fail). */
function stall(ms: number, socket: Socket, signal: AbortSignal): Promise<void> {
  if (socket.destroyed) return Promise.reject(IO_ERROR())
  const gone = new AbortController()
  const onClose = () => gone.abort(IO_ERROR())
  socket.once('close', onClose)
  return delay(ms, AbortSignal.any([signal, gone.signal])).finally(() => socket.off('close', onClose))
}

/** The 200 whose body is an HTTP 500 page (xen-api#4603): the export task fails with SR_BACKEND_FAILURE_46. */
export function embedded500(transfer: Transfer, vdiUuid: string): never {
  const detail = `The VDI is not available [opterr=VDI ${vdiUuid} not detached cleanly]`
  transfer.socket.write(`HTTP/1.1 500 Internal Error\r\ncontent-type: text/html\r\n\r\n<html><body><h1>HTTP 500 internal server error</h1>` +
    `An unexpected error occurred; please wait a while and try again. If the problem persists, please contact your support representative.` +
    `<h1> Additional information </h1>SR_BACKEND_FAILURE_46: [ ; ${detail}; ]</body></html>`)
  throw new ApiError('SR_BACKEND_FAILURE_46', ['', detail, ''])
}

async function exportRawVdi(transfer: Transfer): Promise<void> {
  const { xapi, query, socket, signal } = transfer
  const { db, store } = xapi
  const format = query.get('format') ?? 'raw'
  if (format !== 'raw' && format !== 'vhd') {
    writeHead(socket, 404, 'Not Found', {}, '1.0')
    throw new ApiError('INTERNAL_ERROR', [`Unknown format ${format}`])
  }
  const vdi = vdiParam(xapi, query.get('vdi'))
  const record = db.row('VDI', vdi)
  const baseParam = query.get('base')
  const base = baseParam === null || baseParam === '' || baseParam === NULL_REF ? undefined : vdiParam(xapi, baseParam)
  if (base !== undefined && db.row('VDI', base).type === 'cbt_metadata') {
    writeHead(socket, 500, 'Internal Server Error', {})
    throw new ApiError('VDI_INCOMPATIBLE_TYPE', [base, 'cbt_metadata'])
  }
  const fault = xapi.faults.forTransfer(xapi, '/export_raw_vdi/', record.uuid as string)
  const detach = await attachToDom0(xapi, vdi, signal)
  try {
    writeHead(socket, 200, 'OK', {
      'content-type': format === 'vhd' ? 'application/vhd' : 'application/octet-stream',
      'content-disposition': `attachment; filename="${String(record.uuid)}.${format === 'vhd' ? 'vhd' : 'raw'}"`,
      'task-id': transfer.task,
    })
    if (fault?.type === 'embedded500') embedded500(transfer, record.uuid as string)
    const leaf = record.location as string
    const body = format === 'vhd'
      ? exportVhd(store, leaf, base === undefined ? {} : { base: db.row('VDI', base).location as string })
      : { stream: exportRaw(store, leaf), length: record.virtual_size as number }
    await pump({ ...transfer, fault }, body.stream, body.length)
  } finally {
    detach()
  }
}

async function importRawVdi(transfer: Transfer): Promise<string> {
  const { xapi, query, socket, request, signal } = transfer
  const { db, store } = xapi
  const format = query.get('format') ?? 'raw'
  if (request.headers['transfer-encoding'] !== undefined) {
    writeHead(socket, 404, 'Not Found', {}, '1.0')
    throw new ApiError('INTERNAL_ERROR', [`Cannot handle encoding: ${request.headers['transfer-encoding']}`])
  }
  if (format !== 'raw' && format !== 'vhd') {
    writeHead(socket, 404, 'Not Found', {}, '1.0')
    throw new ApiError('INTERNAL_ERROR', [`Unknown format ${format}`])
  }
  const vdi = query.get('vdi') === null && query.get('sr_id') !== null && format === 'raw'
    ? await createVdi(xapi, { SR: query.get('sr_id'), virtual_size: Number(request.headers['content-length'] ?? 0), name_label: 'Imported VDI' })
    : vdiParam(xapi, query.get('vdi'))
  // Headers first: the client's probe PUT (announcing 1 PiB, or nothing) waits for them before it sends anything.
  writeHead(socket, 200, 'OK', { 'task-id': transfer.task, 'content-type': 'application/octet-stream' })
  const detach = await attachToDom0(xapi, vdi, signal)
  try {
    const { location: leaf, uuid } = db.row('VDI', vdi) as { location: string; uuid: string }
    const source = receivedBody(request)
    const counted = (offset: number, length: number) => xapi.activity.recordImport(uuid, offset, length)
    try {
      await (format === 'vhd' ? importVhd(store, leaf, source, counted) : importRaw(store, leaf, source, counted))
    } catch (error) {
      if (signal.aborted) throw error
      throw (error as { code?: string }).code?.startsWith('SR_BACKEND_FAILURE') === true ? error : IO_ERROR()
    }
    return vdi
  } finally {
    refreshSr(xapi, db.row('VDI', vdi).SR as string)
    detach()
  }
}
