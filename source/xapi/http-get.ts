// GET of XAPI's export handlers with node's own HTTP client. xen-api's getResource goes through undici
// 6, whose HTTP/1 parser throws an uncatchable AssertionError when a close-delimited body (what XAPI
// sends for exports) ends while the reader applies back-pressure (nodejs/undici#5360; the fix is in no
// undici release that runs on Node 20). A slow remote is exactly that case, and it would kill the daemon.
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { LifeboatError } from '../util/errors.ts'
import { abortReason } from '../util/abort.ts'
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
  const task = conn.xapi.watchTask(taskRef)
  task.catch(() => {})
  const cancelTask = () => void conn.call('task.cancel', taskRef).catch(() => {})
  try {
    let url = new URL(path, conn.url)
    for (const [key, value] of Object.entries({ ...query, session_id: conn.xapi.sessionId ?? '', task_id: taskRef })) url.searchParams.set(key, value)
    for (let redirects = 0; ; redirects++) {
      const response = await get(url, signal)
      const status = response.statusCode ?? 0
      if (status >= 200 && status < 300) {
        signal?.addEventListener('abort', cancelTask, { once: true })
        response.once('close', () => signal?.removeEventListener('abort', cancelTask))
        return { body: response, task }
      }
      response.resume()
      if ((status === 301 || status === 302 || status === 307) && response.headers.location !== undefined && redirects < MAX_REDIRECTS) {
        url = new URL(response.headers.location, url)
        continue
      }
      throw new LifeboatError('XAPI_HTTP_ERROR', `the host answered GET ${path} with HTTP ${status}; check the pool's state and the host logs.`)
    }
  } catch (error) {
    cancelTask()
    throw signal?.aborted === true ? abortReason(signal) : wrapXapiError(error, `GET ${path}`)
  }
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
