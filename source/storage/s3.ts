// The S3 backend (AWS and every S3-compatible store): objects under `<bucket>/<dir>/`, folders are
// key prefixes, streams are multipart uploads sized from their length. Errors come out as the codes the
// engine acts on, and never carry the SDK's error (it can hold the access key).
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { Readable, addAbortSignal } from 'node:stream'
import { abortReason, throwIfAborted } from '../util/abort.ts'
import { LifeboatError } from '../util/errors.ts'
import { normalizePath, OBJECT_STORE_CAPABILITIES, type Backend, type Capabilities, type EntryStat, type ListPage, type RemoteSpace, type WriteData, type WriteOptions } from './backend.ts'
import { remoteFull, remoteUnavailable, writeIncomplete } from './errors.ts'
import type { RemoteUrl } from './url.ts'

export type S3Remote = Extract<RemoteUrl, { type: 's3' }>

const MiB = 1024 * 1024
const GiB = 1024 * MiB
// S3's limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html).
const MIN_PART_SIZE = 5 * MiB
const MAX_PART_SIZE = 5 * GiB
const MAX_PARTS = 10_000
const MAX_OBJECT_SIZE = 5 * 1024 * GiB
const MAX_DELETE_KEYS = 1000
// Parts are buffered whole: the parts in flight (queue × part size) stay within this, whatever the stream.
const UPLOAD_MEMORY = 128 * MiB
// Without a length: 64 MiB parts cap a stream at 625 GiB, with 2 parts (128 MiB) in memory.
const UNKNOWN_LENGTH_PART_SIZE = 64 * MiB

/** Part size and parallel parts of a multipart upload: enough parts for the length, memory bounded by UPLOAD_MEMORY (one part at least). */
export function uploadShape(length: number | undefined): { partSize: number; queueSize: number } {
  const partSize = length === undefined ? UNKNOWN_LENGTH_PART_SIZE : Math.min(Math.max(Math.ceil(length / MAX_PARTS), MIN_PART_SIZE), MAX_PART_SIZE)
  return { partSize, queueSize: Math.min(4, Math.max(1, Math.floor(UPLOAD_MEMORY / partSize))) }
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ECONNABORTED', 'TimeoutError', 'RequestTimeout'])
const AUTH = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden', 'ExpiredToken', 'InvalidToken'])
const FULL = new Set(['EntityTooLarge', 'QuotaExceeded', 'XMinioStorageFull', 'InsufficientStorage', 'StorageFull'])
const UNSUPPORTED = new Set(['NotImplemented', 'MethodNotAllowed'])
// The bucket lives in another region than the one requests are signed for.
const WRONG_REGION = new Set(['PermanentRedirect', 'AuthorizationHeaderMalformed', 'IncorrectEndpoint'])
// Node's TLS verification failures: the server is there, its certificate is not trusted here.
const UNTRUSTED = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID'])

interface SdkError {
  name?: string
  code?: string
  Code?: string
  $metadata?: { httpStatusCode?: number }
}

/** The SDK client's settings for a remote: its endpoint, region, addressing, keys and TLS. */
export function s3ClientConfig(remote: S3Remote): S3ClientConfig {
  return {
    endpoint: `${remote.protocol}://${remote.host}`,
    region: regionOf(remote),
    // Path-style by default, as Xen Orchestra (and every S3-compatible server) does; `?forcePathStyle=false` for virtual hosts.
    forcePathStyle: remote.options.forcePathStyle !== false,
    credentials: { accessKeyId: remote.username, secretAccessKey: remote.password },
    // The SDK's own retries stay (3 attempts): a stream's parts cannot be replayed by the retry decorator, only here.
    maxAttempts: 3,
    // Stores other than AWS refuse the SDK's newer default checksum headers (aws-sdk-js-v3#6810).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: 30_000,
      socketTimeout: 10 * 60_000,
      httpAgent: { keepAlive: true },
      // Self-signed certificates only when the URL asks for it (XO's allowUnauthorized).
      httpsAgent: { keepAlive: true, rejectUnauthorized: remote.options.allowUnauthorized !== true },
    },
  }
}

export class S3Backend implements Backend {
  readonly label: string
  readonly capabilities: Capabilities = { ...OBJECT_STORE_CAPABILITIES, maxObjectSize: MAX_OBJECT_SIZE }
  readonly #client: S3Client
  readonly #bucket: string
  readonly #root: string
  readonly #region: string

  /** `client` replaces the SDK's client (unit tests give a fake with `send`). */
  constructor(remote: S3Remote, label: string, options: { client?: S3Client } = {}) {
    this.label = label
    const [bucket = '', ...dir] = remote.path.split('/').filter(part => part !== '')
    if (bucket === '') throw new LifeboatError('REMOTE_BAD_URL', `The remote ${label} names no bucket: its path should be /bucket or /bucket/folder.`)
    this.#bucket = bucket
    this.#root = normalizePath(dir.join('/'))
    this.#region = regionOf(remote)
    this.#client = options.client ?? new S3Client(s3ClientConfig(remote))
  }

  async sync(): Promise<void> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.#bucket }))
    } catch (error) {
      if (status(error) === 404) throw this.#missingBucket()
      throw this.#error(error, 'open', '')
    }
  }

  async close(): Promise<void> {
    this.#client.destroy()
  }

  async info(): Promise<RemoteSpace> {
    return {}
  }

  async list(dir: string, options: { cursor?: string; limit?: number } = {}): Promise<ListPage> {
    const prefix = this.#prefix(dir)
    const page = await this.#call('list', dir, () =>
      this.#client.send(
        new ListObjectsV2Command({
          Bucket: this.#bucket,
          Prefix: prefix,
          Delimiter: '/',
          ...(options.cursor !== undefined && { ContinuationToken: options.cursor }),
          ...(options.limit !== undefined && { MaxKeys: options.limit }),
        }),
      ),
    )
    const entries = [
      ...(page.CommonPrefixes ?? []).map(p => ({ name: (p.Prefix ?? '').slice(prefix.length, -1), isDirectory: true })),
      // A key equal to the prefix is a folder marker some tools create, not a child.
      ...(page.Contents ?? []).map(o => ({ name: (o.Key ?? '').slice(prefix.length), isDirectory: false })).filter(e => e.name !== ''),
    ].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    return { entries, ...(page.IsTruncated === true && page.NextContinuationToken !== undefined && { next: page.NextContinuationToken }) }
  }

  async stat(path: string): Promise<EntryStat> {
    const key = this.#key(path)
    if (key === this.#root) return { size: 0, mtimeMs: 0, isDirectory: true }
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }))
      return { size: head.ContentLength ?? 0, mtimeMs: head.LastModified?.getTime() ?? 0, isDirectory: false }
    } catch (error) {
      if (status(error) !== 404) throw this.#error(error, 'stat', path)
    }
    const under = await this.#call('stat', path, () => this.#client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: `${key}/`, MaxKeys: 1 })))
    const first = under.Contents?.[0]
    if (first === undefined) throw notFound(path, this.label)
    return { size: 0, mtimeMs: first.LastModified?.getTime() ?? 0, isDirectory: true }
  }

  async read(path: string, range?: { start: number; end?: number }): Promise<Readable> {
    const whole = range === undefined || (range.start === 0 && range.end === undefined)
    let object
    try {
      object = await this.#client.send(
        new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(path), ...(!whole && { Range: `bytes=${range.start}-${range.end ?? ''}` }) }),
      )
    } catch (error) {
      // A range starting at or past the end: no bytes, as a file read there gives.
      if (status(error) === 416) return Readable.from([])
      throw this.#error(error, 'read', path)
    }
    const body = this.#mapped(object.Body as Readable, path)
    if (whole) return body
    // A server that serves more than the range (s3rver reads 'bytes=0-0' as the whole object, some ignore Range): cut it to the range.
    const served = /^bytes (\d+)-(\d+)\//.exec(object.ContentRange ?? '')
    const servedStart = served === null ? 0 : Number(served[1])
    const servedEnd = served === null ? servedStart + (object.ContentLength ?? 0) - 1 : Number(served[2])
    const end = range.end ?? servedEnd
    if (servedStart === range.start && servedEnd <= end) return body
    return Readable.from(slice(body, range.start - servedStart, end - range.start + 1))
  }

  async write(path: string, data: WriteData, options: WriteOptions = {}): Promise<number> {
    const key = this.#key(path)
    throwIfAborted(options.signal)
    // s3rver and some stores ignore IfNoneMatch: the look first refuses the sequential case everywhere.
    if (options.ifAbsent === true && (await this.#exists(key, path))) throw alreadyExists(path, this.label)
    const params = { Bucket: this.#bucket, Key: key, ...(options.ifAbsent === true && { IfNoneMatch: '*' }) }
    if (typeof data === 'string' || Buffer.isBuffer(data)) {
      const size = Buffer.byteLength(data)
      if (options.length !== undefined && size !== options.length) throw writeIncomplete(path, this.label, size, options.length)
      await this.#call('write', path, sent => this.#client.send(new PutObjectCommand({ ...params, Body: data }), sent), options.signal)
      return size
    }
    let size = 0
    let sourceError: { error: unknown } | undefined
    const { length } = options
    const cap = length ?? UNKNOWN_LENGTH_PART_SIZE * MAX_PARTS
    const tooMuch = () => (length === undefined ? this.#tooLarge(path, cap) : writeIncomplete(path, this.label, size, length))
    const failed = (error: unknown) => {
      sourceError = { error }
      return error
    }
    const counted = (async function* () {
      for await (const chunk of pull(data, failed)) {
        size += chunk.length
        if (size > cap) throw tooMuch()
        yield chunk
      }
      // Thrown before the last part is handed over: the upload is never completed with missing bytes.
      if (length !== undefined && size !== length) throw tooMuch()
    })()
    // One chunk ahead at most: the parts in flight are the memory a write holds.
    const body = Readable.from(counted, { highWaterMark: 1 })
    if (options.signal !== undefined) addAbortSignal(options.signal, body)
    const upload = new Upload({ client: this.#client, params: { ...params, Body: body }, ...uploadShape(options.length), leavePartsOnError: true })
    try {
      await upload.done()
      return size
    } catch (error) {
      // An abort that fails (s3rver: MethodNotAllowed) must not hide why the upload failed; abortStaleUploads retries it later.
      if (upload.uploadId !== undefined) await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: key, UploadId: upload.uploadId })).catch(() => {})
      if (options.signal?.aborted === true) throw abortReason(options.signal)
      // The source's own failure (an export cut short) is the cause, whatever the upload made of it.
      if (sourceError !== undefined) throw sourceError.error
      throw this.#error(error, 'write', path)
    }
  }

  async delete(paths: string[]): Promise<void> {
    // The remote's own folder is no object of it.
    const keys = paths.map(path => this.#key(path)).filter(key => key !== this.#root)
    for (let i = 0; i < keys.length; i += MAX_DELETE_KEYS) await this.#deleteKeys(keys.slice(i, i + MAX_DELETE_KEYS))
  }

  /** Everything under a folder, a DeleteObjects per listed page (no walk folder by folder). */
  async rmtree(path: string): Promise<void> {
    const prefix = this.#prefix(path)
    let cursor: string | undefined
    do {
      const page = await this.#call('rmtree', path, () => this.#client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: prefix, ...(cursor !== undefined && { ContinuationToken: cursor }) })))
      const keys = (page.Contents ?? []).flatMap(o => (o.Key === undefined ? [] : [o.Key]))
      if (keys.length > 0) await this.#deleteKeys(keys)
      cursor = page.IsTruncated === true ? page.NextContinuationToken : undefined
    } while (cursor !== undefined)
  }

  async #deleteKeys(keys: string[]): Promise<void> {
    const relative = (key: string) => key.slice(this.#prefix('').length)
    const answer = await this.#call('delete', relative(keys[0]!), () =>
      this.#client.send(new DeleteObjectsCommand({ Bucket: this.#bucket, Delete: { Objects: keys.map(Key => ({ Key })), Quiet: true } })),
    )
    const failed = (answer.Errors ?? []).filter(e => e.Code !== 'NoSuchKey')
    const first = failed[0]
    if (first !== undefined) {
      throw this.#error({ name: first.Code, $metadata: { httpStatusCode: first.Code === 'AccessDenied' ? 403 : 500 } }, `delete (${failed.length} of ${keys.length} objects refused)`, relative(first.Key ?? ''))
    }
  }

  /** Aborts the multipart uploads under this remote started more than `olderThanMs` ago (interrupted writes); returns how many. */
  async abortStaleUploads(olderThanMs: number): Promise<number> {
    const before = Date.now() - olderThanMs
    let aborted = 0
    let markers: { KeyMarker?: string; UploadIdMarker?: string } = {}
    for (;;) {
      let page
      try {
        page = await this.#client.send(new ListMultipartUploadsCommand({ Bucket: this.#bucket, Prefix: this.#prefix(''), ...markers }))
      } catch (error) {
        // s3rver and some stores do not list uploads: then there is nothing we can find to abort.
        if (this.#error(error, 'list uploads', '').code === 'NOT_SUPPORTED') return aborted
        throw this.#error(error, 'list uploads', '')
      }
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined || (upload.Initiated?.getTime() ?? 0) >= before) continue
        const { Key, UploadId } = upload
        await this.#call('abort upload', Key.slice(this.#prefix('').length), () => this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key, UploadId })))
        aborted++
      }
      if (page.IsTruncated !== true) return aborted
      markers = { ...(page.NextKeyMarker !== undefined && { KeyMarker: page.NextKeyMarker }), ...(page.NextUploadIdMarker !== undefined && { UploadIdMarker: page.NextUploadIdMarker }) }
    }
  }

  async #exists(key: string, path: string): Promise<boolean> {
    try {
      await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }))
      return true
    } catch (error) {
      if (status(error) === 404) return false
      throw this.#error(error, 'write', path)
    }
  }

  /** Runs one request; its error comes out as ours (the signal's reason when it was aborted). */
  async #call<T>(operation: string, path: string, request: (options: { abortSignal?: AbortSignal }) => Promise<T>, signal?: AbortSignal): Promise<T> {
    try {
      return await request(signal === undefined ? {} : { abortSignal: signal })
    } catch (error) {
      if (signal?.aborted === true) throw abortReason(signal)
      throw this.#error(error, operation, path)
    }
  }

  /** The body of an object, its failures mid-way (the server gone) as ours. */
  #mapped(body: Readable, path: string): Readable {
    return Readable.from(pull(body as AsyncIterable<Buffer>, error => this.#error(error, 'read', path)), { objectMode: false })
  }

  #key(path: string): string {
    return [this.#root, normalizePath(path)].filter(part => part !== '').join('/')
  }

  #prefix(dir: string): string {
    const key = this.#key(dir)
    return key === '' ? '' : `${key}/`
  }

  #missingBucket(): LifeboatError {
    return remoteUnavailable(this.label, undefined, `its bucket ${this.#bucket} does not exist (create the bucket, or correct the URL)`)
  }

  #tooLarge(path: string, cap: number): LifeboatError {
    return new LifeboatError('REMOTE_OBJECT_TOO_LARGE', `Writing ${path} on ${this.label} went past ${cap / GiB} GiB, the most an S3 upload of unknown length can hold; nothing was committed (give the stream's length).`)
  }

  /** The SDK's error as ours: a code, the HTTP status and a sentence, never the SDK's object (it may hold the access key). */
  #error(error: unknown, operation: string, path: string): LifeboatError {
    if (error instanceof LifeboatError) return error
    const sdk = (error ?? {}) as SdkError
    const name = sdk.Code ?? sdk.name ?? 'Error'
    const code = sdk.code ?? name
    const httpStatus = sdk.$metadata?.httpStatusCode
    const data = { operation, ...(path !== '' && { path }), s3Code: name, ...(httpStatus !== undefined && { status: httpStatus }) }
    const where = path === '' ? this.label : `${path} on ${this.label}`
    if (name === 'NoSuchBucket') return this.#missingBucket()
    if (httpStatus === 404 || name === 'NoSuchKey' || name === 'NotFound') return notFound(path, this.label)
    if (httpStatus === 412 || name === 'PreconditionFailed') return alreadyExists(path, this.label)
    if (httpStatus === 507 || FULL.has(name)) return remoteFull(this.label, undefined)
    if (httpStatus === 301 || WRONG_REGION.has(name)) {
      return new LifeboatError('REMOTE_BAD_URL', `The bucket ${this.#bucket} of ${this.label} is in another region than ${this.#region} (${name}); put its region after '#' at the end of the remote's URL (…/${this.#bucket}/dir#eu-west-3).`, { data })
    }
    if (httpStatus === 401 || httpStatus === 403 || AUTH.has(name)) {
      return new LifeboatError('REMOTE_AUTH', `The S3 server of ${this.label} refused the credentials (${name}) for ${operation} ${path === '' ? 'the bucket' : path}; check the access key and the secret key of the remote, and that they may use the bucket ${this.#bucket}.`, { data })
    }
    if (UNTRUSTED.has(code)) {
      return new LifeboatError('REMOTE_CERTIFICATE', `The S3 server of ${this.label} presented a certificate this machine does not trust (${code}); install its authority's certificate, or add ?allowUnauthorized=true to the remote's URL if you trust that server.`, { data })
    }
    if (UNREACHABLE.has(code) || UNREACHABLE.has(name)) return remoteUnavailable(this.label, undefined, `its S3 server cannot be reached (${code})`)
    if (httpStatus === 405 || httpStatus === 501 || UNSUPPORTED.has(name)) {
      return new LifeboatError('NOT_SUPPORTED', `The S3 server of ${this.label} does not support ${operation} (${name}); use a store that implements it.`, { data })
    }
    return new LifeboatError('REMOTE_ERROR', `${operation} ${where} failed: the S3 server answered ${name}${httpStatus === undefined ? '' : ` (HTTP ${httpStatus})`}; try again, and check the server if it persists.`, { data })
  }
}

/**
 * The chunks of a source, closed when the consumer stops early. Only the source's own failures go through
 * `failed`: an error thrown in by a consumer that stops (lib-storage ends its body with AbortError) is not one.
 */
async function* pull<T>(source: AsyncIterable<T>, failed: (error: unknown) => unknown): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]()
  let ended = false
  try {
    for (;;) {
      let next: IteratorResult<T>
      try {
        next = await iterator.next()
      } catch (error) {
        ended = true
        throw failed(error)
      }
      if (next.done === true) {
        ended = true
        return
      }
      yield next.value
    }
  } finally {
    if (!ended) await iterator.return?.()
  }
}

/** `take` bytes of a stream after its first `skip`; stops reading (and closes it) once they are out. */
async function* slice(stream: Readable, skip: number, take: number): AsyncGenerator<Buffer> {
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const from = Math.min(skip, chunk.length)
    skip -= from
    const part = chunk.subarray(from, from + take)
    take -= part.length
    if (part.length > 0) yield part
    if (take === 0) return
  }
}

function status(error: unknown): number | undefined {
  return (error as SdkError | undefined)?.$metadata?.httpStatusCode
}

function notFound(path: string, label: string): LifeboatError {
  return new LifeboatError('ENOENT', `${path} does not exist on ${label}.`)
}

function alreadyExists(path: string, label: string): LifeboatError {
  return new LifeboatError('EEXIST', `${path} already exists on ${label}.`)
}

// The URL's '#region', else the one an AWS endpoint names (s3.eu-west-3.amazonaws.com), else us-east-1.
function regionOf(remote: S3Remote): string {
  return remote.region ?? /^s3[.-]([a-z0-9-]+)\.amazonaws\.com$/.exec(remote.host)?.[1] ?? 'us-east-1'
}
