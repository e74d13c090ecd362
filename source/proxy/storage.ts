// The proxy's side of the remotes that live on it (`remote add --proxy`): the appliance opens such a remote here
// over its channel and works on it through the storage contract, call by call. The proxy opens the URL as the
// daemon would (its backend, its encryption, no retries: the appliance's decorators retry), holds the sessions,
// streams, files and locks of each connection, and closes them all when the connection goes (a write left
// unfinished leaves nothing visible; a lock is released). The URL and its keys stay in memory.
import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import { openBackend, type Backend, type RandomAccessFile, type RemoteLock } from '../storage/index.ts'
import { LifeboatError } from '../util/errors.ts'
import { STORAGE_CHUNK, type StorageOp, type StorageSession } from '../protocol/proxy.ts'
import type { ClientConnection } from '../daemon/server.ts'

const OPTIONAL_METHODS = ['rename', 'open', 'mkdir', 'rmdir', 'rmtree', 'lock', 'abortStaleUploads'] as const

/** A write whose bytes come by storage.push: the backend pulls them as an async iterable, one chunk at a time. */
class PushedWrite {
  readonly done: Promise<number>
  #waiting: ((chunk: IteratorResult<Buffer>) => void) | undefined
  #offered: { chunk: IteratorResult<Buffer>; taken: () => void } | undefined
  #failed: unknown

  constructor(write: (data: AsyncIterable<Buffer>) => Promise<number>) {
    const source = { [Symbol.asyncIterator]: () => ({ next: () => this.#next() }) }
    this.done = write(source)
    this.done.catch(error => {
      this.#failed = error
      this.#offered?.taken()
    })
  }

  #next(): Promise<IteratorResult<Buffer>> {
    const offered = this.#offered
    if (offered !== undefined) {
      this.#offered = undefined
      offered.taken()
      return Promise.resolve(offered.chunk)
    }
    return new Promise(resolve => (this.#waiting = resolve))
  }

  /** Hands a chunk (or the end) to the backend; resolves once it took it (the backend's pace is the sender's). */
  async offer(chunk: IteratorResult<Buffer>): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed
    const waiting = this.#waiting
    if (waiting !== undefined) {
      this.#waiting = undefined
      waiting(chunk)
      return
    }
    await new Promise<void>(taken => (this.#offered = { chunk, taken }))
    if (this.#failed !== undefined) throw this.#failed
  }
}

interface Connection {
  sessions: Map<string, Backend>
  reads: Map<string, { iterator: AsyncIterator<Buffer>; stream: Readable; left?: Buffer }>
  writes: Map<string, { write: PushedWrite; abort: AbortController }>
  files: Map<string, RandomAccessFile>
  locks: Map<string, RemoteLock>
}

export class ProxyStorage {
  readonly #connections = new Map<ClientConnection, Connection>()

  constructor(private readonly log: (line: string) => void) {}

  #of(client: ClientConnection): Connection {
    let connection = this.#connections.get(client)
    if (connection === undefined) {
      connection = { sessions: new Map(), reads: new Map(), writes: new Map(), files: new Map(), locks: new Map() }
      this.#connections.set(client, connection)
    }
    return connection
  }

  async open(client: ClientConnection, url: string): Promise<StorageSession> {
    const backend = openBackend(url, { retry: false })
    try {
      await backend.sync()
    } catch (error) {
      await backend.close().catch(() => {})
      throw error
    }
    const session = randomUUID()
    this.#of(client).sessions.set(session, backend)
    this.log(`remote ${backend.label} opened for the appliance`)
    return { session, label: backend.label, capabilities: backend.capabilities, methods: OPTIONAL_METHODS.filter(method => backend[method] !== undefined) }
  }

  async call(client: ClientConnection, session: string, op: StorageOp, args: unknown[]): Promise<{ result?: unknown }> {
    const backend = this.#session(client, session)
    const method = (backend as unknown as Record<string, ((...args: unknown[]) => Promise<unknown>) | undefined>)[op]
    if (method === undefined) throw new LifeboatError('STORAGE_OP_UNSUPPORTED', `The remote ${backend.label} has no ${op} operation.`)
    const result = await method.apply(backend, args)
    return result === undefined ? {} : { result }
  }

  async read(client: ClientConnection, session: string, path: string, range: { start: number; end?: number } | undefined): Promise<{ stream: string }> {
    const stream = await this.#session(client, session).read(path, range)
    const id = randomUUID()
    this.#of(client).reads.set(id, { stream, iterator: stream[Symbol.asyncIterator]() })
    return { stream: id }
  }

  /** Up to STORAGE_CHUNK bytes of the stream; the stream is forgotten after its end. */
  async pull(client: ClientConnection, id: string): Promise<{ data: string; end: boolean }> {
    const reads = this.#of(client).reads
    const read = reads.get(id)
    if (read === undefined) throw gone('read stream')
    const parts: Buffer[] = []
    let bytes = 0
    let end = false
    try {
      while (bytes < STORAGE_CHUNK) {
        let chunk = read.left
        read.left = undefined
        if (chunk === undefined) {
          const next = await read.iterator.next()
          if (next.done === true) {
            end = true
            break
          }
          chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array)
        }
        if (bytes + chunk.length > STORAGE_CHUNK) {
          read.left = chunk.subarray(STORAGE_CHUNK - bytes)
          chunk = chunk.subarray(0, STORAGE_CHUNK - bytes)
        }
        parts.push(chunk)
        bytes += chunk.length
      }
    } catch (error) {
      reads.delete(id)
      throw error
    }
    if (end) reads.delete(id)
    return { data: Buffer.concat(parts).toString('base64'), end }
  }

  write(client: ClientConnection, session: string, path: string, options: { length?: number; ifAbsent?: boolean }): { stream: string } {
    const backend = this.#session(client, session)
    const abort = new AbortController()
    const write = new PushedWrite(data => backend.write(path, data, { ...options, signal: abort.signal }))
    const id = randomUUID()
    this.#of(client).writes.set(id, { write, abort })
    write.done.catch(() => {})
    return { stream: id }
  }

  async push(client: ClientConnection, id: string, data: string): Promise<void> {
    const write = this.#of(client).writes.get(id)
    if (write === undefined) throw gone('write stream')
    await write.write.offer({ done: false, value: Buffer.from(data, 'base64') })
  }

  async finish(client: ClientConnection, id: string): Promise<{ size: number }> {
    const writes = this.#of(client).writes
    const write = writes.get(id)
    if (write === undefined) throw gone('write stream')
    try {
      await write.write.offer({ done: true, value: undefined })
      return { size: await write.write.done }
    } finally {
      writes.delete(id)
    }
  }

  /** A write abandoned (nothing of it becomes visible), or a read the appliance stopped before its end. */
  abort(client: ClientConnection, id: string): void {
    const { writes, reads } = this.#of(client)
    writes.get(id)?.abort.abort(new LifeboatError('CANCELLED', 'the appliance abandoned the write'))
    writes.delete(id)
    reads.get(id)?.stream.destroy()
    reads.delete(id)
  }

  async file(client: ClientConnection, session: string, path: string, mode: 'r' | 'r+'): Promise<{ file: string }> {
    const backend = this.#session(client, session)
    if (backend.open === undefined) throw new LifeboatError('STORAGE_OP_UNSUPPORTED', `The remote ${backend.label} has no random access.`)
    const file = await backend.open(path, mode)
    const id = randomUUID()
    this.#of(client).files.set(id, file)
    return { file: id }
  }

  openFile(client: ClientConnection, id: string): RandomAccessFile {
    const file = this.#of(client).files.get(id)
    if (file === undefined) throw gone('file')
    return file
  }

  async fileRead(client: ClientConnection, id: string, position: number, length: number): Promise<{ data: string }> {
    const buffer = Buffer.alloc(length)
    const read = await this.openFile(client, id).read(buffer, position)
    return { data: buffer.subarray(0, read).toString('base64') }
  }

  async fileClose(client: ClientConnection, id: string): Promise<void> {
    const file = this.openFile(client, id)
    this.#of(client).files.delete(id)
    await file.close()
  }

  async lock(client: ClientConnection, session: string, path: string, options: { staleMs?: number; refreshMs?: number }): Promise<{ lock: string; path: string }> {
    const backend = this.#session(client, session)
    if (backend.lock === undefined) throw new LifeboatError('STORAGE_OP_UNSUPPORTED', `The remote ${backend.label} keeps no native lock.`)
    const lock = await backend.lock(path, options)
    const id = randomUUID()
    this.#of(client).locks.set(id, lock)
    return { lock: id, path: lock.path }
  }

  lockState(client: ClientConnection, id: string): { compromised: boolean } {
    const lock = this.#of(client).locks.get(id)
    // A lock this connection no longer holds is lost to it.
    return { compromised: lock === undefined || lock.compromised }
  }

  async unlock(client: ClientConnection, id: string): Promise<void> {
    const locks = this.#of(client).locks
    const lock = locks.get(id)
    locks.delete(id)
    await lock?.release()
  }

  async close(client: ClientConnection, session: string): Promise<void> {
    const connection = this.#of(client)
    const backend = connection.sessions.get(session)
    connection.sessions.delete(session)
    await backend?.close()
  }

  /** The connection went: its writes are abandoned (nothing of them is visible), its files closed, its locks released. */
  async detach(client: ClientConnection): Promise<void> {
    const connection = this.#connections.get(client)
    if (connection === undefined) return
    this.#connections.delete(client)
    for (const { abort } of connection.writes.values()) abort.abort(new LifeboatError('CANCELLED', 'the appliance went away during the write'))
    for (const { stream } of connection.reads.values()) stream.destroy()
    const settled = await Promise.allSettled([
      ...[...connection.files.values()].map(file => file.close()),
      ...[...connection.locks.values()].map(lock => lock.release()),
      ...[...connection.writes.values()].map(({ write }) => write.done),
    ])
    await Promise.allSettled([...connection.sessions.values()].map(backend => backend.close()))
    const failed = settled.filter(outcome => outcome.status === 'rejected' && (outcome.reason as LifeboatError).code !== 'CANCELLED').length
    if (connection.sessions.size > 0) this.log(`the appliance's connection closed: ${connection.sessions.size} remote(s) closed, ${connection.locks.size} lock(s) released${failed > 0 ? `, ${failed} clean-up step(s) failed` : ''}`)
  }

  #session(client: ClientConnection, session: string): Backend {
    const backend = this.#connections.get(client)?.sessions.get(session)
    if (backend === undefined) throw gone('remote session')
    return backend
  }
}

function gone(what: string): LifeboatError {
  return new LifeboatError('STORAGE_SESSION_GONE', `The proxy holds no such ${what} for this connection (it was closed, or the connection was opened again); the appliance opens it again.`)
}
