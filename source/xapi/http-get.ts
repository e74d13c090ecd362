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
import { httpError, withXapiTask } from './xapi-task.ts'

const MAX_REDIRECTS = 5

export interface ExportResponse {
  body: IncomingMessage
  /** The XAPI task of the transfer: settles when XAPI says the export succeeded or failed. */
  task: Promise<unknown>
}

/** Starts an export: a XAPI task, then the GET (redirects to the host holding the disk followed). */
export async function getExport(conn: PoolConnection, path: string, query: Record<string, string>, signal?: AbortSignal): Promise<ExportResponse> {
  const stalled = (what: string) => new LifeboatError('XAPI_EXPORT_STALLED', `the host sent nothing for ${Math.round(conn.stallTimeoutMs / 1000)} s ${what} ${path}; the export was given up. Check the host and the SR, then run the backup again.`)
  try {
    return await withXapiTask(conn, `GET ${path}`, signal, async (task, sessionId) => {
      let url = new URL(path, conn.url)
      for (const [key, value] of Object.entries({ ...query, session_id: sessionId, task_id: task.ref })) url.searchParams.set(key, value)
      for (let redirects = 0; ; redirects++) {
        const response = await get(url, conn.stallTimeoutMs, () => stalled('before answering'), signal)
        const status = response.statusCode ?? 0
        if (status >= 200 && status < 300) {
          response.setTimeout(conn.stallTimeoutMs, () => {
            response.destroy(stalled('during'))
            task.cancel()
          })
          // A connection closed before the end of a close-delimited body is not always seen as an error:
          // make it one (a destroy of ours above already carries its own).
          response.once('aborted', () => response.destroy(new LifeboatError('XAPI_EXPORT_CUT', `the export ${path} was cut short by the host; run the backup again, and check the host if it keeps happening.`)))
          return { body: response, task: task.outcome }
        }
        if ((status === 301 || status === 302 || status === 307) && response.headers.location !== undefined && redirects < MAX_REDIRECTS) {
          response.resume()
          url = new URL(response.headers.location, url)
          continue
        }
        const text = await readSome(response, 4096)
        // XAPI fails the task with the real error code; its body only repeats it as text. A 401 is the session.
        const taskError = status === 401 ? undefined : await Promise.race([task.outcome.then(() => undefined, (error: unknown) => error), sleep(5000).then(() => undefined)])
        if (taskError !== undefined) throw taskError
        throw httpError(`GET ${path}`, status, text)
      }
    })
  } catch (error) {
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

/** The response's status line and headers, or `stalled()` when the host sends nothing for `timeoutMs`. */
function get(url: URL, timeoutMs: number, stalled: () => Error, signal: AbortSignal | undefined): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const options = { method: 'GET', signal, ...(url.protocol === 'https:' && { rejectUnauthorized: false }) }
    // Pools use self-signed certificates almost everywhere; the administrator chose the URL.
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, response => {
      // From here the response's own inactivity bound applies.
      req.off('timeout', onTimeout).setTimeout(0)
      resolve(response)
    })
    const onTimeout = () => req.destroy(stalled())
    req.setTimeout(timeoutMs).on('timeout', onTimeout)
    req.once('error', reject)
    req.end()
  })
}
