// The daemon's backup remotes: opened once by name (the engine gets them as handlers), their status and
// free space for the lists, what each can do (info), and the test (write, read back, time, delete a probe).
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { BackendHandler, fileSystemAccess, openRemote, parseRemoteUrl, redactRemoteUrl, type RemoteHandler } from '../storage/index.ts'
import { describeError, LifeboatError, serializeError } from '../util/errors.ts'
import { formatBytes } from '../util/human.ts'
import type { Remote, RemoteInfo, RemoteTestResult } from '../protocol/methods.ts'

interface RemoteEntry {
  name: string
  url: string
  proxy?: string
  handler: RemoteHandler
  status: Remote['status']
  error?: { code: string; message: string }
  /** The last `remote test` that failed (cleared by one that passes): what a plan of a run warns of (a read-only share). */
  testFailure?: { code: string; message: string; at: number }
}

export const PROBE_BYTES = 64 * 1024 * 1024
const PROBE_CHUNK = 1024 * 1024
const RANGE_BYTES = 1024 * 1024
const SMALL_BYTES = 4096
const LATENCY_SAMPLES = 5

export class Remotes {
  readonly #entries = new Map<string, RemoteEntry>()
  readonly #open: (url: string, proxy?: string) => RemoteHandler

  /** `open` gives a URL's handler, or a remote's on the proxy it lives on (tests wrap it to make a backend misbehave). */
  constructor(open: (url: string, proxy?: string) => RemoteHandler = url => openRemote(url)) {
    this.#open = open
  }

  get handlers(): Map<string, RemoteHandler> {
    return new Map([...this.#entries].map(([name, entry]) => [name, entry.handler]))
  }

  has(name: string): boolean {
    return this.#entries.has(name)
  }

  /** Whether the remote's backend tells its free space (file shares) or cannot (object stores); undefined when it could not be opened. */
  freeSpaceKnown(name: string): boolean | undefined {
    return this.#entries.get(name)?.handler.capabilities.freeSpaceKnown
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
  async open(name: string, url: string, options: { mustBeReachable?: boolean; proxy?: string | undefined; inBackground?: boolean } = {}): Promise<void> {
    const handler = this.#open(url, options.proxy)
    const entry: RemoteEntry = { name, url, handler, status: 'ok', ...(options.proxy !== undefined && { proxy: options.proxy }) }
    const failed = (error: unknown) => {
      const { code, message } = serializeError(error)
      entry.status = 'error'
      entry.error = { code, message }
    }
    if (options.inBackground === true) {
      // Kept at once and made ready meanwhile (a remote on a proxy: ssh may take its connect timeout); a failure is its status.
      await this.#keep(entry)
      handler.sync().catch(failed)
      return
    }
    try {
      await handler.sync()
    } catch (error) {
      if (options.mustBeReachable === true) {
        await handler.close().catch(() => {})
        const { code, message } = serializeError(error)
        throw new LifeboatError(code, `The remote "${name}" was not added: ${message}`, { cause: error })
      }
      failed(error)
    }
    await this.#keep(entry)
  }

  /** Keeps the entry under its name, closing the one it replaces. */
  async #keep(entry: RemoteEntry): Promise<void> {
    await this.#entries.get(entry.name)?.handler.close().catch(() => {})
    this.#entries.set(entry.name, entry)
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
    const remote: Remote = { name, url: redactRemoteUrl(entry.url), type: remoteType(entry.url), status: entry.status, ...(entry.error !== undefined && { error: entry.error }), ...(entry.proxy !== undefined && { proxy: entry.proxy }) }
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

  /** What `remote info` shows: the description, encryption, the VHD layout and what the backend can do. */
  async info(name: string): Promise<RemoteInfo> {
    const remote = await this.describe(name)
    const { handler, url } = this.#entries.get(name)!
    const { options } = parseRemoteUrl(url)
    const vhdDirectory = remote.type === 's3' || remote.type === 'azure' || options.useVhdDirectory === true
    const { capabilities } = handler
    // A native lock is a lock folder where folders exist, a lease elsewhere (Azure); without one the handler keeps a lock object.
    const native = handler instanceof BackendHandler && handler.backend.lock !== undefined
    return {
      ...remote,
      encryption: typeof options.encryptionKey === 'string' && options.encryptionKey !== '',
      vhdDirectory,
      capabilities: {
        commit: capabilities.atomicRename ? 'rename' : 'written last',
        locks: !native ? 'lock object' : capabilities.folders ? 'lock folder' : 'lease',
        merges: vhdDirectory || !capabilities.randomWrite ? 'block copies' : 'in place',
        freeSpaceKnown: capabilities.freeSpaceKnown,
        ...(capabilities.maxObjectSize !== undefined && { maxObjectSize: capabilities.maxObjectSize }),
        connections: capabilities.connections,
      },
    }
  }

  /**
   * Writes a probe of `bytes`, reads it back whole and a range of it (both compared with what was written),
   * times small writes, reads, stats and deletes, then deletes everything it wrote. A failure names its step.
   */
  async test(name: string, bytes = PROBE_BYTES): Promise<RemoteTestResult> {
    const entry = this.#entries.get(name)
    if (entry === undefined) throw new LifeboatError('REMOTE_NOT_FOUND', `No remote is named "${name}"; 'npx lifeboat remote list' shows them.`)
    const handler = entry.handler
    const probe = `.lifeboat-probe-${randomBytes(6).toString('hex')}`
    const small = Array.from({ length: LATENCY_SAMPLES }, (_, i) => `${probe}-small-${i}`)
    const chunk = randomBytes(Math.min(PROBE_CHUNK, bytes))
    const step = async <T>(what: string, body: () => Promise<T>): Promise<T> => {
      try {
        return await body()
      } catch (error) {
        const { code, message } = describeError(error)
        throw new LifeboatError('REMOTE_TEST_FAILED', `The remote "${name}" failed the test while ${what}: ${code}: ${message}`, { cause: error, data: { step: what, code } })
      }
    }
    const timed = async (body: () => Promise<unknown>): Promise<number> => {
      const start = performance.now()
      await body()
      return performance.now() - start
    }
    const unfaithful = (what: string) => new LifeboatError('REMOTE_CORRUPT', `it gave back other bytes than it was given (${what}): it does not store files faithfully. Check the storage underneath before backing up to it.`)
    try {
      await step('preparing it', () => handler.sync())
      const writeMs = await step(`writing a ${formatBytes(bytes)} probe file`, () => timed(() => handler.outputStream(probe, Readable.from(probeChunks(chunk, 0, bytes)), { length: bytes })))
      let read = 0
      const readMs = await step('reading the probe back', () =>
        timed(async () => {
          for await (const data of await handler.createReadStream(probe)) {
            if (!matchesProbe(chunk, read, data as Buffer)) throw unfaithful('the probe read back whole')
            read += (data as Buffer).length
          }
          if (read !== bytes) throw unfaithful(`${read} bytes of a ${bytes}-byte probe`)
        }),
      )
      // An odd offset across a chunk boundary: a backend that ignores or shifts ranges shows it here.
      const start = Math.min(bytes - 1, Math.floor(bytes / 3) + 7)
      const length = Math.min(RANGE_BYTES, bytes - start)
      let ranged = 0
      const rangeMs = await step('reading a range of the probe', () =>
        timed(async () => {
          for await (const data of await handler.createReadStream(probe, { start, end: start + length - 1 })) {
            if (!matchesProbe(chunk, start + ranged, data as Buffer)) throw unfaithful(`the range ${start}-${start + length - 1}`)
            ranged += (data as Buffer).length
          }
          if (ranged !== length) throw unfaithful(`${ranged} bytes of a ${length}-byte range`)
        }),
      )
      const payload = randomBytes(SMALL_BYTES)
      const latency = { write: [] as number[], read: [] as number[], stat: [] as number[], delete: [] as number[] }
      for (const path of small) {
        latency.write.push(await step('writing a small file', () => timed(() => handler.writeFile(path, payload))))
        latency.stat.push(await step('reading the size of a small file', () => timed(() => handler.stat(path))))
        latency.read.push(
          await step('reading a small file', () =>
            timed(async () => {
              if (!(await handler.readFile(path)).equals(payload)) throw unfaithful('a small file read back')
            }),
          ),
        )
      }
      for (const path of small) latency.delete.push(await step('deleting a small file', () => timed(() => handler.unlink(path))))
      await step('deleting the probe file', () => handler.unlink(probe))
      await step('checking that the probe file is gone', async () => {
        if (await fileSystemAccess(handler).exists(probe)) throw new LifeboatError('REMOTE_DELETE_IGNORED', 'the probe file is still there after it was deleted.')
      })
      entry.status = 'ok'
      delete entry.error
      delete entry.testFailure
      const mib = (n: number) => n / (1024 * 1024)
      return {
        ok: true,
        bytes,
        writeMiBps: round(mib(bytes) / (writeMs / 1000)),
        readMiBps: round(mib(bytes) / (readMs / 1000)),
        range: { start, length, ms: round(rangeMs) },
        latencyMs: { write: round(median(latency.write)), read: round(median(latency.read)), stat: round(median(latency.stat)), delete: round(median(latency.delete)) },
        samples: LATENCY_SAMPLES,
      }
    } catch (error) {
      await Promise.all([probe, ...small].map(path => handler.unlink(path).catch(() => {})))
      entry.testFailure = { ...serializeError(error), at: Date.now() }
      throw error
    }
  }

  /** What is known to be wrong with a remote: it could not be opened, or its last test failed. */
  problem(name: string): { code: string; message: string; at?: number } | undefined {
    const entry = this.#entries.get(name)
    return entry?.error ?? entry?.testFailure
  }

  async closeAll(): Promise<void> {
    const entries = [...this.#entries.values()]
    this.#entries.clear()
    await Promise.all(entries.map(entry => entry.handler.close().catch(() => {})))
  }
}

/** The probe is `chunk` repeated: bytes start..end of it, one chunk at most at a time. */
function* probeChunks(chunk: Buffer, start: number, end: number): Generator<Buffer> {
  for (let at = start; at < end; ) {
    const offset = at % chunk.length
    const piece = chunk.subarray(offset, Math.min(chunk.length, offset + end - at))
    yield piece
    at += piece.length
  }
}

function matchesProbe(chunk: Buffer, offset: number, data: Buffer): boolean {
  let at = 0
  for (const piece of probeChunks(chunk, offset, offset + data.length)) {
    if (!piece.equals(data.subarray(at, at + piece.length))) return false
    at += piece.length
  }
  return true
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

function round(value: number): number {
  return Math.round(value * 100) / 100
}

export function remoteType(url: string): Remote['type'] {
  const type = parseRemoteUrl(url).type
  return type === 'azurite' ? 'azure' : type
}
