// The daemon's backup remotes: opened once by name (the engine gets them as handlers), their status and
// free space for the lists, and the speed test (write, read back, delete a probe file).
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { openRemote, parseRemoteUrl, redactRemoteUrl, type RemoteHandler } from '../storage/index.ts'
import { LifeboatError, serializeError } from '../util/errors.ts'
import type { Remote, RemoteTestResult } from '../protocol/methods.ts'

interface RemoteEntry {
  name: string
  url: string
  handler: RemoteHandler
  status: Remote['status']
  error?: { code: string; message: string }
}

export const PROBE_BYTES = 64 * 1024 * 1024
const PROBE_CHUNK = 1024 * 1024

export class Remotes {
  readonly #entries = new Map<string, RemoteEntry>()

  get handlers(): Map<string, RemoteHandler> {
    return new Map([...this.#entries].map(([name, entry]) => [name, entry.handler]))
  }

  has(name: string): boolean {
    return this.#entries.has(name)
  }

  get(name: string): RemoteHandler {
    const entry = this.#entries.get(name)
    if (entry === undefined) throw new LifeboatError('REMOTE_NOT_FOUND', `No remote is named "${name}"; 'npx lifeboat remote list' shows them.`)
    return entry.handler
  }

  /**
   * Opens a remote; a URL that cannot be parsed, a backend or an option not supported fails at once. An
   * unreachable remote is kept with status error (it may come back), unless `mustBeReachable` (remote.add).
   */
  async open(name: string, url: string, options: { mustBeReachable?: boolean } = {}): Promise<void> {
    const handler = openRemote(url)
    const entry: RemoteEntry = { name, url, handler, status: 'ok' }
    try {
      await handler.sync()
    } catch (error) {
      const { code, message } = serializeError(error)
      if (options.mustBeReachable === true) {
        await handler.close().catch(() => {})
        throw new LifeboatError(code, `The remote "${name}" was not added: ${message}`, { cause: error })
      }
      entry.status = 'error'
      entry.error = { code, message }
    }
    await this.#entries.get(name)?.handler.close().catch(() => {})
    this.#entries.set(name, entry)
  }

  async remove(name: string): Promise<void> {
    const entry = this.#entries.get(name)
    if (entry === undefined) throw new LifeboatError('REMOTE_NOT_FOUND', `No remote is named "${name}"; 'npx lifeboat remote list' shows them.`)
    this.#entries.delete(name)
    await entry.handler.close().catch(() => {})
  }

  async describe(name: string): Promise<Remote> {
    const entry = this.#entries.get(name)
    if (entry === undefined) throw new LifeboatError('REMOTE_NOT_FOUND', `No remote is named "${name}".`)
    const remote: Remote = { name, url: redactRemoteUrl(entry.url), type: remoteType(entry.url), status: entry.status, ...(entry.error !== undefined && { error: entry.error }) }
    if (entry.status === 'ok') {
      try {
        const info = await entry.handler.getInfo()
        if ('size' in info) remote.space = { size: info.size, used: info.used, free: info.available }
      } catch (error) {
        const { code, message } = serializeError(error)
        return { ...remote, status: 'error', error: { code, message } }
      }
    }
    return remote
  }

  async list(): Promise<Remote[]> {
    return Promise.all([...this.#entries.keys()].map(name => this.describe(name)))
  }

  /** Writes a probe of `bytes`, reads it back, deletes it; speeds in MiB/s. A failure says which step failed. */
  async test(name: string, bytes = PROBE_BYTES): Promise<RemoteTestResult> {
    const entry = this.#entries.get(name)
    if (entry === undefined) throw new LifeboatError('REMOTE_NOT_FOUND', `No remote is named "${name}"; 'npx lifeboat remote list' shows them.`)
    const handler = entry.handler
    const path = `.lifeboat-probe-${randomBytes(6).toString('hex')}`
    const chunk = randomBytes(Math.min(PROBE_CHUNK, bytes))
    const step = async <T>(what: string, body: () => Promise<T>): Promise<T> => {
      try {
        return await body()
      } catch (error) {
        const { code, message } = serializeError(error)
        throw new LifeboatError('REMOTE_TEST_FAILED', `The remote "${name}" failed the test while ${what}: ${code}: ${message}`, { cause: error })
      }
    }
    try {
      await step('preparing it', () => handler.sync())
      const writeStart = performance.now()
      await step('writing a probe file', () => handler.outputStream(path, Readable.from(probeChunks(chunk, bytes)), { length: bytes }))
      const writeMs = performance.now() - writeStart
      const readStart = performance.now()
      const read = await step('reading the probe back', async () => {
        let total = 0
        for await (const data of await handler.createReadStream(path)) total += (data as Buffer).length
        return total
      })
      const readMs = performance.now() - readStart
      if (read !== bytes) throw new LifeboatError('REMOTE_TEST_FAILED', `The remote "${name}" gave back ${read} bytes of a ${bytes}-byte probe file; it does not store files faithfully.`)
      await step('deleting the probe file', () => handler.unlink(path))
      entry.status = 'ok'
      delete entry.error
      const mib = bytes / (1024 * 1024)
      return { ok: true, writeMiBps: round(mib / (writeMs / 1000)), readMiBps: round(mib / (readMs / 1000)), bytes }
    } catch (error) {
      await handler.unlink(path).catch(() => {})
      throw error
    }
  }

  async closeAll(): Promise<void> {
    const entries = [...this.#entries.values()]
    this.#entries.clear()
    await Promise.all(entries.map(entry => entry.handler.close().catch(() => {})))
  }
}

function* probeChunks(chunk: Buffer, bytes: number): Generator<Buffer> {
  for (let left = bytes; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left)
}

function round(value: number): number {
  return Math.round(value * 10) / 10
}

export function remoteType(url: string): Remote['type'] {
  const type = parseRemoteUrl(url).type
  return type === 'azurite' ? 'azure' : type
}
