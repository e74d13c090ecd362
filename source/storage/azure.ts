// Azure Blob storage (`azure://account:key@account.blob.core.windows.net/container/dir`, and azurite's
// `azurite[+http]://` form): block blobs, streams staged block by block, a blob lease as the native lock.
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { BlobServiceClient, RestError, StorageSharedKeyCredential, type BlobLeaseClient, type BlockBlobClient, type ContainerClient, type ContainerListBlobHierarchySegmentResponse } from '@azure/storage-blob'
import { LifeboatError } from '../util/errors.ts'
import { normalizePath, OBJECT_STORE_CAPABILITIES, type Backend, type Capabilities, type EntryStat, type ListPage, type LockOptions, type RemoteLock, type RemoteSpace, type WriteData, type WriteOptions } from './backend.ts'
import { remoteUnavailable, toRemoteError, writeIncomplete } from './errors.ts'
import { heldLock } from './held-lock.ts'
import type { RemoteUrl } from './url.ts'

const MiB = 1024 * 1024
// Azure's block blob limits: 50,000 committed blocks of at most 4000 MiB each.
const MAX_BLOCKS = 50_000
const MAX_BLOCK_SIZE = 4000 * MiB
const MIN_BLOCK_SIZE = 4 * MiB
// Blocks staged at once by one write: memory stays at (this + 1) blocks whatever the stream's size.
const STAGING = 3
/**
 * A write's request (a block, a commit, a small blob) that Azure does not answer within this long, or a read that
 * waits this long for its next bytes, fails as an unavailable remote, instead of hanging the run on a server that
 * accepted the connection and went silent.
 */
export const REQUEST_TIMEOUT_MS = 10 * 60_000
// Azure's limit of sub-requests in one batch.
const BATCH_SIZE = 256
// Azure's bounds on a lease's duration, in seconds.
const LEASE_MIN_S = 15
const LEASE_MAX_S = 60
const DEFAULT_STALE_MS = 60_000

export class AzureBackend implements Backend {
  readonly label: string
  readonly capabilities: Capabilities = { ...OBJECT_STORE_CAPABILITIES, maxObjectSize: MAX_BLOCKS * MAX_BLOCK_SIZE }

  readonly #container: ContainerClient
  readonly #containerName: string
  readonly #account: string
  /** The remote's folder inside the container, '' or ending with '/'. */
  readonly #root: string

  readonly #requestTimeoutMs: number

  constructor(remote: Extract<RemoteUrl, { type: 'azure' | 'azurite' }>, label: string, options: { requestTimeoutMs?: number } = {}) {
    this.label = label
    this.#requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS
    const [container = '', ...dir] = remote.path.split('/').filter(Boolean)
    this.#containerName = container
    this.#account = remote.username
    this.#root = dir.length === 0 ? '' : `${dir.join('/')}/`
    // Azure names the account in the host (account.blob.core.windows.net); azurite in the endpoint's path.
    const endpoint = remote.type === 'azure' ? `${remote.protocol}://${remote.host}` : `${remote.protocol}://${remote.host}/${encodeURIComponent(remote.username)}`
    // The SDK's own retries stay, short (3 tries, as S3's): a stream's blocks cannot be replayed by the retry decorator, only here.
    const retryOptions = { maxTries: 3, retryDelayInMs: 500, maxRetryDelayInMs: 4000 }
    const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(remote.username, remote.password), { retryOptions })
    this.#container = service.getContainerClient(container)
  }

  async sync(): Promise<void> {
    if (this.#containerName === '') throw new LifeboatError('REMOTE_BAD_URL', `The remote ${this.label} names no container: its path should be /container[/folder].`)
    await this.#guard(async () => {
      await this.#container.getProperties()
    })
  }

  async close(): Promise<void> {}

  async info(): Promise<RemoteSpace> {
    return {}
  }

  list(dir: string, options: { cursor?: string; limit?: number } = {}): Promise<ListPage> {
    return this.#guard(async () => {
      const prefix = this.#prefix(dir)
      const pages = this.#container.listBlobsByHierarchy('/', { prefix }).byPage({
        ...(options.cursor !== undefined && { continuationToken: options.cursor }),
        ...(options.limit !== undefined && { maxPageSize: options.limit }),
      })
      const { value: page } = (await pages.next()) as IteratorResult<ContainerListBlobHierarchySegmentResponse, undefined>
      if (page === undefined) return { entries: [] }
      const entries = [
        ...page.segment.blobPrefixes?.map(p => ({ name: p.name.slice(prefix.length, -1), isDirectory: true })) ?? [],
        ...page.segment.blobItems.map(b => ({ name: b.name.slice(prefix.length), isDirectory: false })),
      ].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      return page.continuationToken ? { entries, next: page.continuationToken } : { entries }
    })
  }

  stat(path: string): Promise<EntryStat> {
    return this.#guard(async () => {
      const name = this.#name(path)
      if (name === this.#root) return { size: 0, mtimeMs: 0, isDirectory: true }
      try {
        const properties = await this.#container.getBlobClient(name).getProperties()
        return { size: properties.contentLength ?? 0, mtimeMs: properties.lastModified?.getTime() ?? 0, isDirectory: false }
      } catch (error) {
        if (!isNotFound(error)) throw error
      }
      const { value: page } = await this.#container.listBlobsFlat({ prefix: `${name}/` }).byPage({ maxPageSize: 1 }).next()
      if ((page?.segment.blobItems.length ?? 0) > 0) return { size: 0, mtimeMs: 0, isDirectory: true }
      throw notFound(path, this.label)
    })
  }

  read(path: string, range?: { start: number; end?: number }): Promise<Readable> {
    return this.#guard(async () => {
      const blob = this.#container.getBlobClient(this.#name(path))
      const start = range?.start ?? 0
      const count = range?.end === undefined ? undefined : range.end - start + 1
      if (count !== undefined && count <= 0) {
        await blob.getProperties().catch(error => Promise.reject(isNotFound(error) ? notFound(path, this.label) : error))
        return Readable.from([])
      }
      // A server that goes silent (before its answer or in the middle of the body) is given up after the same
      // deadline as a write's request, counted only while this read waits for bytes: a slow consumer is not a stall.
      const stalled = new AbortController()
      let timer: NodeJS.Timeout | undefined
      const waiting = (on: boolean) => {
        clearTimeout(timer)
        if (on) timer = setTimeout(() => stalled.abort(), this.#requestTimeoutMs)
      }
      const silent = (error: unknown) => remoteUnavailable(this.label, error, `no byte came for ${Math.round(this.#requestTimeoutMs / 1000)} s during a read (the server accepted the connection and went silent)`)
      try {
        waiting(true)
        const body = await blob.download(start, count, { abortSignal: stalled.signal }).then(response => response.readableStreamBody as Readable, error => Promise.reject(stalled.signal.aborted ? silent(error) : error))
        waiting(false)
        // The body's own failures (the server gone mid-read) get the codes the requests' get. An AbortError not
        // of the deadline is the SDK giving up on a broken connection.
        const mapError = (error: unknown) =>
          stalled.signal.aborted ? silent(error) : error instanceof Error && error.name === 'AbortError' ? remoteUnavailable(this.label, error, 'the connection broke during a read') : this.#remoteError(error)
        return Readable.from(
          (async function* () {
            const chunks = body[Symbol.asyncIterator]()
            try {
              for (;;) {
                waiting(true)
                const next = await chunks.next()
                waiting(false)
                if (next.done === true) return
                yield next.value as Buffer
              }
            } catch (error) {
              throw await mapError(error)
            } finally {
              waiting(false)
              await chunks.return?.()
            }
          })(),
          { objectMode: false },
        )
      } catch (error) {
        waiting(false)
        if (isNotFound(error)) throw notFound(path, this.label)
        // A range that starts at or past the end (Azure answers 416): no bytes, as node's file streams give.
        if (error instanceof RestError && error.statusCode === 416) return Readable.from([])
        throw error
      }
    })
  }

  write(path: string, data: WriteData, options: WriteOptions = {}): Promise<number> {
    return this.#guard(async () => {
      const blob = this.#container.getBlockBlobClient(this.#name(path))
      // Each request its own deadline: the write as a whole may take hours, one request never minutes.
      const bounded: Bounded = call => withDeadline(options.signal, this.#requestTimeoutMs, call)
      const conditions = options.ifAbsent === true ? { ifNoneMatch: '*' } : {}
      const refused = (error: unknown) => options.ifAbsent === true && error instanceof RestError && (error.statusCode === 409 || error.statusCode === 412)
      const checkLength = (size: number) => {
        if (options.length !== undefined && size !== options.length) throw writeIncomplete(path, this.label, size, options.length)
      }
      const upload = async (body: Buffer) => {
        checkLength(body.length)
        await bounded(abortSignal => blob.upload(body, body.length, { conditions, abortSignal })).catch(error => Promise.reject(refused(error) ? alreadyExists(path, this.label) : error))
        return body.length
      }
      if (typeof data === 'string' || Buffer.isBuffer(data)) return upload(Buffer.from(data))

      const staged = await stageBlocks(blob, data, options, bounded, received => writeIncomplete(path, this.label, received, options.length ?? 0))
      // A stream smaller than one block is one request, like a buffer.
      if (staged.ids.length === 0) return upload(staged.rest)
      checkLength(staged.size)
      // Until this commit nothing of that name is visible; a write that fails before never commits its
      // blocks, and Azure discards uncommitted blocks on its own after a week.
      try {
        await bounded(abortSignal => blob.commitBlockList(staged.ids, { conditions, abortSignal }))
      } catch (error) {
        // Another writer's commit of the same name discards our staged blocks (InvalidBlockList): it exists.
        if (refused(error) || (options.ifAbsent === true && (await blob.exists()))) throw alreadyExists(path, this.label)
        throw error
      }
      return staged.size
    }).catch(error => Promise.reject(this.#timedOut(error, options.signal)))
  }

  /** The SDK's abort of a request whose deadline passed (not the run's cancel): the server went silent. */
  #timedOut(error: unknown, signal: AbortSignal | undefined): unknown {
    if (signal?.aborted === true || !(error instanceof Error) || error.name !== 'AbortError') return error
    return remoteUnavailable(this.label, error, `a request got no answer within ${Math.round(this.#requestTimeoutMs / 1000)} s (the server accepted the connection and went silent)`)
  }

  delete(paths: string[]): Promise<void> {
    return this.#guard(() => this.#deleteNames(paths.map(p => this.#name(p)).filter(name => name !== this.#root)))
  }

  /** Everything under a folder, a batch per listed page. */
  rmtree(path: string): Promise<void> {
    return this.#guard(async () => {
      for await (const page of this.#container.listBlobsFlat({ prefix: this.#prefix(path) }).byPage({ maxPageSize: BATCH_SIZE })) {
        await this.#deleteNames(page.segment.blobItems.map(b => b.name))
      }
    })
  }

  /**
   * A lease on the blob `<path>.lock`, renewed while held. A lease not renewed expires on the server
   * (after staleMs, clamped to Azure's 15–60 s), so a crashed holder's lock frees itself.
   */
  lock(path: string, options: LockOptions = {}): Promise<RemoteLock> {
    return this.#guard(async () => {
      const staleMs = options.staleMs ?? DEFAULT_STALE_MS
      const leaseS = Math.min(LEASE_MAX_S, Math.max(LEASE_MIN_S, Math.round(staleMs / 1000)))
      const refreshMs = options.refreshMs ?? Math.max(10, Math.floor(Math.min(staleMs, leaseS * 1000) / 4))
      const lockPath = `${normalizePath(path)}.lock`
      const blob = this.#container.getBlockBlobClient(this.#name(lockPath))
      const lease = blob.getBlobLeaseClient()
      for (let attempt = 0; ; attempt++) {
        await blob.upload('', 0, { conditions: { ifNoneMatch: '*' } }).catch(error => {
          // It exists already (409), or exists and is leased (412): the lease decides.
          if (!(error instanceof RestError && (error.statusCode === 409 || error.statusCode === 412))) throw error
        })
        try {
          await lease.acquireLease(leaseS)
          break
        } catch (error) {
          if (error instanceof RestError && error.code === 'LeaseAlreadyPresent') {
            throw new LifeboatError(
              'REMOTE_LOCKED',
              `${lockPath} on ${this.label} is locked by another backup, merge or clean (a lease on ${lockPath}). Wait for it to finish; a lease not renewed for ${leaseS} s expires and is taken over.`,
            )
          }
          // Its holder released it (and deleted the blob) between our two requests: create it again.
          if (!isNotFound(error) || attempt >= 2) throw error
        }
      }
      return leaseLock(lockPath, blob, lease, leaseS * 1000, refreshMs)
    })
  }

  async #deleteNames(names: string[]): Promise<void> {
    const batches: string[][] = []
    for (let i = 0; i < names.length; i += BATCH_SIZE) batches.push(names.slice(i, i + BATCH_SIZE))
    const batch = this.#container.getBlobBatchClient()
    for (const group of batches) {
      const response = await batch.deleteBlobs(group.map(name => this.#container.getBlobClient(name)))
      const failed = response.subResponses.find(r => r.status !== 404 && (r.status < 200 || r.status >= 300))
      // A missing blob is not an error.
      if (failed !== undefined) throw new RestError(failed.statusMessage, { code: failed.errorCode ?? '', statusCode: failed.status })
    }
  }

  /** The blob name of a path: the remote's folder, then the path ('..' never leaves the remote). */
  #name(path: string): string {
    const normalized = normalizePath(path)
    return normalized === '' ? this.#root : `${this.#root}${normalized}`
  }

  /** The prefix of a folder's children. */
  #prefix(dir: string): string {
    const name = this.#name(dir)
    return name === this.#root ? name : `${name}/`
  }

  async #guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (error) {
      throw await this.#remoteError(error)
    }
  }

  // The SDK's errors hold the request (headers, signature): only their status, code and first line go on.
  async #remoteError(error: unknown): Promise<unknown> {
    // A connection reset or refused outside a request (a body): node's codes, mapped as every backend maps them.
    if (!(error instanceof RestError)) return toRemoteError(error, this.label, async () => false)
    const cause = Object.assign(new Error(`Azure answered ${error.statusCode ?? 'nothing'} ${error.code ?? ''}: ${error.message.split('\n')[0]}`), {
      code: error.code,
      statusCode: error.statusCode,
    })
    const status = error.statusCode
    if (status === undefined || status >= 500) return remoteUnavailable(this.label, cause, status === undefined ? 'it cannot be reached' : `it answered ${status} ${error.code ?? ''}`.trim())
    if (error.code === 'ContainerNotFound') {
      return remoteUnavailable(this.label, cause, `its container ${this.#containerName} does not exist (create it in the storage account, for example with az storage container create)`)
    }
    if (error.code === 'AccountIsDisabled') {
      return new LifeboatError('REMOTE_FULL', `The remote ${this.label} refuses writes: the Azure account ${this.#account} is disabled (a spending limit or an expired credit); enable it again, then run the job again.`, { cause })
    }
    if (status === 401 || status === 403) {
      return new LifeboatError('REMOTE_AUTH', `The remote ${this.label} refused the credentials of account ${this.#account}: check the account name and the account key in the remote's URL.`, { cause })
    }
    return new LifeboatError('REMOTE_ERROR', `The remote ${this.label} refused a request (${cause.message}); check the remote's settings.`, { cause, data: { status, azureCode: error.code } })
  }
}

/** A lease renewed every refreshMs; lost when another holder has it, or when it could not be renewed in time. */
function leaseLock(path: string, blob: BlockBlobClient, lease: BlobLeaseClient, leaseMs: number, refreshMs: number): RemoteLock {
  let renewed = Date.now()
  return heldLock(path, refreshMs, {
    async refresh() {
      try {
        await lease.renewLease()
        renewed = Date.now()
        return true
      } catch (error) {
        // Another holder took it (a lease ID mismatch), or we could not renew it before it expired.
        if (error instanceof RestError && error.statusCode !== undefined && error.statusCode < 500) return false
        return Date.now() - renewed < leaseMs
      }
    },
    // Deleting the blob with our lease ID ends the lease too, and leaves no .lock blob behind.
    release: () => blob.delete({ conditions: { leaseId: lease.leaseId } }).then(() => {}, () => lease.releaseLease().then(() => {}, () => {})),
  })
}

type Bounded = <T>(call: (signal: AbortSignal) => Promise<T>) => Promise<T>

/**
 * Runs one request with a signal that aborts at `ms` or with `signal` (the run's cancel), whichever comes first.
 * Its own controller and timer, not AbortSignal.any over AbortSignal.timeout: on Node 20 such a composite can be
 * collected before its timeout fires, and the request then waits for ever (seen: a write to a silent server hung).
 */
async function withDeadline<T>(signal: AbortSignal | undefined, ms: number, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  const cancel = () => controller.abort(signal?.reason)
  if (signal?.aborted === true) cancel()
  signal?.addEventListener('abort', cancel, { once: true })
  const timer = setTimeout(() => controller.abort(), ms)
  try {
    return await call(controller.signal)
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', cancel)
  }
}

/**
 * Stages a stream's blocks, a few at once (memory stays at a few blocks whatever its size). A stream that
 * ends within its first block stages nothing: its bytes come back as `rest`. More bytes than `length` fail.
 */
async function stageBlocks(blob: BlockBlobClient, data: AsyncIterable<Buffer | Uint8Array>, options: WriteOptions, bounded: Bounded, tooLong: (received: number) => Error): Promise<{ ids: string[]; size: number; rest: Buffer }> {
  const minimum = options.length === undefined ? 0 : Math.ceil(options.length / MAX_BLOCKS)
  // Without a length, blocks double every 10,000 so that any stream fits in 50,000 blocks.
  const blockSize = (index: number) => Math.min(MAX_BLOCK_SIZE, Math.max(minimum, MIN_BLOCK_SIZE * 2 ** Math.floor(index / 10_000)))
  // Every block ID of a blob has the same length; the nonce keeps a concurrent writer's blocks apart.
  const nonce = randomBytes(4).toString('hex')
  const ids: string[] = []
  const staging = new Set<Promise<void>>()
  let failure: { error: unknown } | undefined
  const stage = async (block: Buffer) => {
    const id = Buffer.from(`${nonce}-${String(ids.length).padStart(6, '0')}`).toString('base64')
    ids.push(id)
    const staged: Promise<void> = bounded(abortSignal => blob.stageBlock(id, block, block.length, { abortSignal }))
      .then(
        () => {},
        error => {
          failure ??= { error }
        },
      )
      .finally(() => staging.delete(staged))
    staging.add(staged)
    if (staging.size >= STAGING) await Promise.race(staging)
  }
  const settle = async () => {
    await Promise.all(staging)
    if (failure !== undefined) throw failure.error
  }

  let size = 0
  let chunks: Buffer[] = []
  let buffered = 0
  try {
    for await (const chunk of data) {
      if (failure !== undefined) break
      options.signal?.throwIfAborted()
      let rest = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      size += rest.length
      if (options.length !== undefined && size > options.length) throw tooLong(size)
      while (rest.length > 0) {
        const room = blockSize(ids.length) - buffered
        chunks.push(rest.subarray(0, room))
        buffered += Math.min(room, rest.length)
        rest = rest.subarray(room)
        if (buffered === blockSize(ids.length)) {
          await stage(Buffer.concat(chunks))
          chunks = []
          buffered = 0
        }
      }
    }
  } finally {
    await Promise.all(staging)
  }
  await settle()
  if (ids.length > 0 && buffered > 0) await stage(Buffer.concat(chunks))
  await settle()
  return { ids, size, rest: ids.length === 0 ? Buffer.concat(chunks) : Buffer.alloc(0) }
}

function isNotFound(error: unknown): boolean {
  return error instanceof RestError && error.statusCode === 404 && error.code !== 'ContainerNotFound'
}

function notFound(path: string, label: string): LifeboatError {
  return new LifeboatError('ENOENT', `${normalizePath(path)} does not exist on ${label}.`)
}

function alreadyExists(path: string, label: string): LifeboatError {
  return new LifeboatError('EEXIST', `${normalizePath(path)} already exists on ${label}.`)
}
