// GET of XAPI's export handlers with node's own HTTP client. xen-api's getResource goes through undici
// 6, whose HTTP/1 parser throws an uncatchable AssertionError when a close-delimited body (what XAPI
// sends for exports) ends while the reader applies back-pressure (nodejs/undici#5360; the fix is in no
// undici release that runs on Node 20). A slow remote is exactly that case, and it would kill the daemon.
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { LifeboatError } from '../util/errors.ts'
import { abortReason, sleep } from '../util/abort.ts'
import type { PoolConnection } from './connection.ts'
import { wrapXapiError } from './errors.ts'

const MAX_REDIRECTS = 5

export interface ExportResponse {
  body: IncomingMessage
  /** The XAPI task of the transfer: settles when XAPI says the export succeeded or failed. */
  task: Promise<unknown>
}

/** Starts an export: a XAPI task, then the GET (redirects to the host holding the disk followed). */
export async function getExport(conn: PoolConnection, path: string, query: Record<string, string>, signal?: AbortSignal): Promise<ExportResponse> {
  const taskRef = (await conn.call('task.create', `Lifeboat GET ${path}`, '')) as string
  const task = watchTask(conn, taskRef)
  task.catch(() => {})
  const cancelTask = () => void conn.call('task.cancel', taskRef).catch(() => {})
  try {
    let url = new URL(path, conn.url)
    for (const [key, value] of Object.entries({ ...query, session_id: conn.xapi.sessionId ?? '', task_id: taskRef })) url.searchParams.set(key, value)
    for (let redirects = 0; ; redirects++) {
      const response = await get(url, signal)
      const status = response.statusCode ?? 0
      if (status >= 200 && status < 300) {
        response.setTimeout(conn.stallTimeoutMs, () => {
          response.destroy(new LifeboatError('XAPI_EXPORT_STALLED', `the host sent nothing for ${Math.round(conn.stallTimeoutMs / 1000)} s during ${path}; the export was given up. Check the host and the SR, then run the backup again.`))
          cancelTask()
        })
        // A connection closed before the end of a close-delimited body is not always seen as an error:
        // make it one (a destroy of ours above already carries its own).
        response.once('aborted', () => response.destroy(new LifeboatError('XAPI_EXPORT_CUT', `the export ${path} was cut short by the host; run the backup again, and check the host if it keeps happening.`)))
        signal?.addEventListener('abort', cancelTask, { once: true })
        response.once('close', () => signal?.removeEventListener('abort', cancelTask))
        return { body: response, task }
      }
      if ((status === 301 || status === 302 || status === 307) && response.headers.location !== undefined && redirects < MAX_REDIRECTS) {
        response.resume()
        url = new URL(response.headers.location, url)
        continue
      }
      const text = await readSome(response, 4096)
      // XAPI fails the task with the real error code; its body only repeats it as text.
      const taskError = await Promise.race([task.then(() => undefined, (error: unknown) => error), sleep(5000).then(() => undefined)])
      if (taskError !== undefined) throw taskError
      throw new LifeboatError('XAPI_HTTP_ERROR', `the host answered GET ${path} with HTTP ${status} (${text.trim().slice(0, 200) || 'no detail'}); check the pool's state and the host logs.`)
    }
  } catch (error) {
    cancelTask()
    throw signal?.aborted === true ? abortReason(signal) : wrapXapiError(error, `GET ${path}`)
  }
}

async function readSome(response: IncomingMessage, limit: number): Promise<string> {
  let text = ''
  for await (const chunk of response) {
    text += (chunk as Buffer).toString('utf8')
    if (text.length >= limit) break
  }
  response.destroy()
  return text
}

const TASK_POLL_MS = 2000

/**
 * xen-api's watchTask, plus a check that the task still exists: a toolstack restart forgets every task,
 * and a body that ended cleanly just before it would otherwise wait for a result forever.
 */
function watchTask(conn: PoolConnection, taskRef: string): Promise<unknown> {
  const watched = conn.xapi.watchTask(taskRef)
  let timer: NodeJS.Timeout | undefined
  const gone = new Promise<never>((_resolve, reject) => {
    const poll = () => {
      timer = setTimeout(() => {
        conn.call('task.get_status', taskRef).then(poll, error => {
          if ((error as { code?: string }).code === 'XAPI_HANDLE_INVALID') {
            reject(new LifeboatError('XAPI_TASK_GONE', 'the pool forgot the export task (its toolstack restarted); the export result is unknown, so this backup is not kept. Run it again.'))
          } else poll()
        })
      }, TASK_POLL_MS)
      timer.unref()
    }
    poll()
  })
  gone.catch(() => {})
  return Promise.race([watched, gone]).finally(() => clearTimeout(timer))
}

function get(url: URL, signal: AbortSignal | undefined): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const options = { method: 'GET', signal, ...(url.protocol === 'https:' && { rejectUnauthorized: false }) }
    // Pools use self-signed certificates almost everywhere; the administrator chose the URL.
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, resolve)
    req.once('error', reject)
    req.end()
  })
}
