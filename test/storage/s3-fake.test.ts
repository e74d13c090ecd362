// The S3 backend with a fake client, for what s3rver cannot show: IfNoneMatch refusals, multipart aborts,
// refused credentials, error mapping, part sizes, stale uploads, and the client's settings from the URL.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { S3Client } from '@aws-sdk/client-s3'
import { s3ClientConfig, S3Backend, uploadShape, type S3Remote } from '../../source/storage/s3.ts'
import { parseRemoteUrl } from '../../source/storage/url.ts'
import { serializeError } from '../../source/util/errors.ts'

const MiB = 1024 * 1024
const SECRET = 'the/secret+key%'
const ACCESS_KEY = 'AKIAFAKEKEY'

interface Call {
  command: string
  input: Record<string, unknown>
}

type Answer = (command: string, input: Record<string, unknown>) => unknown

/** A client whose `send` records each command and answers with `answer` (throwing what it throws). */
function fakeClient(answer: Answer): { client: S3Client; calls: Call[] } {
  const calls: Call[] = []
  const client = {
    // What lib-storage's Upload reads from a client's configuration.
    config: {
      requestChecksumCalculation: async () => 'WHEN_REQUIRED',
      endpoint: async () => ({ protocol: 'http:', hostname: 'fake', port: 80, path: '/' }),
      forcePathStyle: true,
      requestHandler: {},
    },
    async send(command: { constructor: { name: string }; input: Record<string, unknown> }) {
      const name = command.constructor.name.replace(/Command$/, '')
      calls.push({ command: name, input: command.input })
      return answer(name, command.input)
    },
    destroy() {},
  }
  return { client: client as unknown as S3Client, calls }
}

/** An error shaped as the SDK throws them, carrying the access key as S3's XML answers do. */
function sdkError(name: string, status?: number, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`${name} from the server`), { name, ...(status !== undefined && { $metadata: { httpStatusCode: status } }), AWSAccessKeyId: ACCESS_KEY, ...extra })
}

const remote = parseRemoteUrl(`s3://${ACCESS_KEY}:${encodeURIComponent(SECRET)}@s3.example.net/bucket/dir`) as S3Remote
const LABEL = 's3://AKIA…:***@s3.example.net/bucket/dir'

function backend(answer: Answer) {
  const { client, calls } = fakeClient(answer)
  return { s3: new S3Backend(remote, LABEL, { client }), calls }
}

const notFound = () => {
  throw sdkError('NotFound', 404)
}

async function* chunks(count: number, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < count; i++) yield Buffer.alloc(size, i)
}

function assertClean(error: unknown): void {
  const serialized = JSON.stringify(serializeError(error))
  assert.ok(!serialized.includes(ACCESS_KEY) && !serialized.includes(SECRET) && !serialized.includes(encodeURIComponent(SECRET)), `the error carries no key: ${serialized}`)
}

test('the client settings come from the URL: decoded keys, path-style unless refused, region, self-signed certificates only when asked', () => {
  const config = s3ClientConfig(parseRemoteUrl('s3://AK%2BI%25A:se%2Fcr%2Bet%25%3D@s3.example.net/b/d') as S3Remote)
  assert.deepEqual(config.credentials, { accessKeyId: 'AK+I%A', secretAccessKey: 'se/cr+et%=' })
  assert.equal(config.endpoint, 'https://s3.example.net')
  assert.equal(config.forcePathStyle, true)
  assert.equal(config.region, 'us-east-1')
  const handler = config.requestHandler as { httpsAgent: { rejectUnauthorized: boolean } }
  assert.equal(handler.httpsAgent.rejectUnauthorized, true)

  const other = s3ClientConfig(parseRemoteUrl('s3+http://k:s@s3.eu-west-3.amazonaws.com/b?forcePathStyle=false&allowUnauthorized=true') as S3Remote)
  assert.equal(other.endpoint, 'http://s3.eu-west-3.amazonaws.com')
  assert.equal(other.forcePathStyle, false)
  assert.equal(other.region, 'eu-west-3')
  assert.equal((other.requestHandler as { httpsAgent: { rejectUnauthorized: boolean } }).httpsAgent.rejectUnauthorized, false)
  assert.equal(s3ClientConfig(parseRemoteUrl('s3://k:s@minio.lan:9000/b#eu-central-1') as S3Remote).region, 'eu-central-1')
  assert.throws(() => new S3Backend(parseRemoteUrl('s3://k:s@host/') as S3Remote, 's3://k:***@host/'), { code: 'REMOTE_BAD_URL' })
})

test('part sizes follow the length: 5 MiB up to 50 GB, more beyond and never over 10000 parts, 5 GiB at most; memory in flight bounded', () => {
  assert.deepEqual(uploadShape(20 * MiB), { partSize: 5 * MiB, queueSize: 4 })
  const tebibyte = 1024 * 1024 * MiB
  for (const length of [50 * 1000 * MiB, tebibyte, 2 * tebibyte + 12345, 5 * tebibyte]) {
    const { partSize, queueSize } = uploadShape(length)
    assert.ok(partSize >= 5 * MiB && partSize <= 5 * 1024 * MiB, `a part of ${partSize} B is within S3's bounds`)
    assert.ok(Math.ceil(length / partSize) <= 10_000, `${length} B fit in 10000 parts of ${partSize} B`)
    assert.ok(queueSize >= 1 && queueSize * partSize <= Math.max(128 * MiB, partSize), `${queueSize} parts of ${partSize} B in flight stay bounded`)
  }
  assert.ok(uploadShape(tebibyte).partSize > 5 * MiB, 'a 1 TiB stream gets parts above 5 MiB')
  const unknown = uploadShape(undefined)
  assert.ok(unknown.partSize * 10_000 >= 500 * 1024 * MiB, 'a stream of unknown length can still hold a 500 GiB disk')
  assert.ok(unknown.partSize * unknown.queueSize <= 128 * MiB, 'and keeps at most 128 MiB in flight')
})

test('a stream is uploaded in parts sized from its length', async () => {
  const { s3, calls } = backend(command => {
    if (command === 'HeadObject') notFound()
    if (command === 'CreateMultipartUpload') return { UploadId: 'u1' }
    if (command === 'UploadPart') return { ETag: '"e"' }
    return {}
  })
  assert.equal(await s3.write('vm/disk.vhd', chunks(12, MiB), { length: 12 * MiB }), 12 * MiB)
  const parts = calls.filter(c => c.command === 'UploadPart').map(c => (c.input.Body as Buffer).length)
  assert.deepEqual(parts.sort((a, b) => b - a), [5 * MiB, 5 * MiB, 2 * MiB])
  assert.equal(calls.find(c => c.command === 'CompleteMultipartUpload')?.input.Key, 'dir/vm/disk.vhd')
})

test('a stream is read only as far as the parts in flight need: memory stays flat while the server is slow', async () => {
  const { partSize, queueSize } = uploadShape(200 * MiB)
  let delivered = 0
  let pending: Array<() => void> = []
  let sawFull!: () => void
  const full = new Promise<void>(resolve => (sawFull = resolve))
  const { s3 } = backend(async command => {
    if (command === 'CreateMultipartUpload') return { UploadId: 'u1' }
    if (command !== 'UploadPart') return {}
    // Parts wait until the test lets them go: the uploader must stop reading meanwhile.
    await new Promise<void>(resolve => {
      pending.push(resolve)
      if (pending.length === queueSize) sawFull()
    })
    return { ETag: '"e"' }
  })
  async function* source() {
    for (let i = 0; i < 200; i++) {
      delivered += MiB
      yield Buffer.alloc(MiB, i)
    }
  }
  const written = s3.write('vm/disk.vhd', source(), { length: 200 * MiB })
  await full
  // Give the reader every chance to run ahead before looking.
  await new Promise(resolve => setTimeout(resolve, 200))
  assert.ok(delivered <= (queueSize + 1) * partSize + MiB, `${delivered / MiB} MiB read with ${queueSize} parts of ${partSize / MiB} MiB in flight`)
  const release = setInterval(() => {
    for (const resolve of pending) resolve()
    pending = []
  }, 5)
  try {
    assert.equal(await written, 200 * MiB)
  } finally {
    clearInterval(release)
  }
})

test('ifAbsent: a write the server refuses by IfNoneMatch (412) is EEXIST, for a PutObject and a multipart upload', async () => {
  const { s3, calls } = backend(command => {
    if (command === 'HeadObject') notFound()
    if (command === 'PutObject' || command === 'CompleteMultipartUpload') throw sdkError('PreconditionFailed', 412)
    if (command === 'CreateMultipartUpload') return { UploadId: 'u1' }
    if (command === 'UploadPart') return { ETag: '"e"' }
    return {}
  })
  await assert.rejects(s3.write('locks/vm', 'owner', { ifAbsent: true }), { code: 'EEXIST' })
  assert.equal(calls.find(c => c.command === 'PutObject')?.input.IfNoneMatch, '*')
  await assert.rejects(s3.write('locks/big', chunks(6, MiB), { ifAbsent: true, length: 6 * MiB }), { code: 'EEXIST' })
  assert.equal(calls.find(c => c.command === 'CompleteMultipartUpload')?.input.IfNoneMatch, '*')
  assert.ok(calls.some(c => c.command === 'AbortMultipartUpload' && c.input.UploadId === 'u1'), 'the refused upload is aborted')
  // Found by the look first, the server is not even asked.
  const seen = backend(command => (command === 'HeadObject' ? { ContentLength: 5 } : assert.fail(`${command} sent for an existing object`)))
  await assert.rejects(seen.s3.write('locks/vm', 'owner', { ifAbsent: true }), { code: 'EEXIST' })
})

test('a failed multipart upload is aborted, and an abort that fails does not hide the cause', async () => {
  for (const abortFails of [false, true]) {
    const { s3, calls } = backend(command => {
      if (command === 'CreateMultipartUpload') return { UploadId: 'u2' }
      if (command === 'UploadPart') throw sdkError('InternalError', 500)
      if (command === 'AbortMultipartUpload' && abortFails) throw sdkError('MethodNotAllowed', 405)
      return {}
    })
    await assert.rejects(s3.write('vm/disk.vhd', chunks(12, MiB), { length: 12 * MiB }), (error: Error & { code?: string; data?: { s3Code?: string } }) => {
      assert.equal(error.code, 'REMOTE_ERROR')
      assert.equal(error.data?.s3Code, 'InternalError', 'the part upload failure is reported, not the abort')
      assertClean(error)
      return true
    })
    const abort = calls.find(c => c.command === 'AbortMultipartUpload')
    assert.deepEqual(abort?.input, { Bucket: 'bucket', Key: 'dir/vm/disk.vhd', UploadId: 'u2' })
    assert.ok(!calls.some(c => c.command === 'CompleteMultipartUpload'), 'a failed upload is never completed')
  }
  // The source's own failure comes out as it is.
  const { s3, calls } = backend(command => {
    if (command === 'AbortMultipartUpload') throw sdkError('MethodNotAllowed', 405)
    return command === 'CreateMultipartUpload' ? { UploadId: 'u3' } : { ETag: '"e"' }
  })
  async function* failing() {
    yield* chunks(6, MiB)
    throw new Error('export cut short')
  }
  await assert.rejects(s3.write('vm/disk.vhd', failing(), { length: 12 * MiB }), /export cut short/)
  assert.ok(calls.some(c => c.command === 'AbortMultipartUpload' && c.input.UploadId === 'u3'), 'the upload of a failed source is aborted')
})

test('errors map to the codes the engine acts on, and carry neither key', async () => {
  const cases: Array<[Error, string]> = [
    [sdkError('AccessDenied', 403), 'REMOTE_AUTH'],
    [sdkError('InvalidAccessKeyId', 403), 'REMOTE_AUTH'],
    [sdkError('SignatureDoesNotMatch', 403, { StringToSign: `AWS4 ${ACCESS_KEY}` }), 'REMOTE_AUTH'],
    [sdkError('Unknown', 401), 'REMOTE_AUTH'],
    [sdkError('NoSuchKey', 404), 'ENOENT'],
    [sdkError('NoSuchBucket', 404), 'REMOTE_UNAVAILABLE'],
    [Object.assign(new Error(`connect ECONNREFUSED 10.0.0.1:443`), { code: 'ECONNREFUSED' }), 'REMOTE_UNAVAILABLE'],
    [Object.assign(new Error('getaddrinfo ENOTFOUND s3.example.net'), { code: 'ENOTFOUND' }), 'REMOTE_UNAVAILABLE'],
    [sdkError('TimeoutError'), 'REMOTE_UNAVAILABLE'],
    [sdkError('EntityTooLarge', 400), 'REMOTE_FULL'],
    [sdkError('QuotaExceeded', 403), 'REMOTE_FULL'],
    [sdkError('XMinioStorageFull', 507), 'REMOTE_FULL'],
    [sdkError('MethodNotAllowed', 405), 'NOT_SUPPORTED'],
    [sdkError('NotImplemented', 501), 'NOT_SUPPORTED'],
    [sdkError('SlowDown', 503), 'REMOTE_ERROR'],
    [sdkError('PermanentRedirect', 301), 'REMOTE_BAD_URL'],
    [sdkError('AuthorizationHeaderMalformed', 400), 'REMOTE_BAD_URL'],
  ]
  for (const [thrown, code] of cases) {
    const { s3 } = backend(() => {
      throw thrown
    })
    for (const operation of [s3.read('a'), s3.list('a'), s3.write('a', 'b'), s3.delete(['a'])]) {
      await assert.rejects(operation, (error: Error & { code?: string }) => {
        assert.equal(error.code, code, `${thrown.name}: ${error.message}`)
        assertClean(error)
        assert.equal(error.cause, undefined, "the SDK's error is not kept as the cause")
        return true
      })
    }
  }
  const refused = backend(() => {
    throw sdkError('Forbidden', 403)
  })
  await assert.rejects(refused.s3.sync(), (error: Error & { code?: string }) => error.code === 'REMOTE_AUTH' && /check the access key and the secret key/.test(error.message))
  const elsewhere = backend(() => {
    throw sdkError('Unknown', 301)
  })
  await assert.rejects(elsewhere.s3.sync(), (error: Error & { code?: string }) => error.code === 'REMOTE_BAD_URL' && /another region than us-east-1 .*after '#'/.test(error.message))
  const gone = backend(() => {
    throw sdkError('NotFound', 404)
  })
  await assert.rejects(gone.s3.sync(), (error: Error & { code?: string }) => error.code === 'REMOTE_UNAVAILABLE' && /bucket bucket does not exist \(create the bucket/.test(error.message))
})

test('delete sends batches of 1000 keys; missing keys are fine, refused ones are thrown', async () => {
  const { s3, calls } = backend(() => ({}))
  await s3.delete(Array.from({ length: 2500 }, (_, i) => `f${i}`))
  const batches = calls.filter(c => c.command === 'DeleteObjects').map(c => (c.input.Delete as { Objects: Array<{ Key: string }> }).Objects)
  assert.deepEqual(batches.map(b => b.length), [1000, 1000, 500])
  assert.equal(batches[2]![499]!.Key, 'dir/f2499')

  const partly = backend(() => ({ Errors: [{ Key: 'dir/gone', Code: 'NoSuchKey' }] }))
  await partly.s3.delete(['gone'])
  const refused = backend(() => ({ Errors: [{ Key: 'dir/kept', Code: 'AccessDenied', Message: `denied to ${ACCESS_KEY}` }] }))
  await assert.rejects(refused.s3.delete(['kept', 'other']), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'REMOTE_AUTH')
    assert.match(error.message, /kept/)
    assertClean(error)
    return true
  })
})

test('abortStaleUploads aborts the uploads under the remote older than the bound, page after page; a store without the listing has nothing to do', async () => {
  const now = Date.now()
  const { s3, calls } = backend((command, input) => {
    if (command !== 'ListMultipartUploads') return {}
    assert.equal(input.Prefix, 'dir/')
    if (input.KeyMarker === undefined) {
      return {
        IsTruncated: true,
        NextKeyMarker: 'dir/b',
        NextUploadIdMarker: 'u-b',
        Uploads: [
          { Key: 'dir/a', UploadId: 'u-a', Initiated: new Date(now - 3 * 3_600_000) },
          { Key: 'dir/b', UploadId: 'u-b', Initiated: new Date(now - 60_000) },
        ],
      }
    }
    assert.equal(input.UploadIdMarker, 'u-b')
    return { IsTruncated: false, Uploads: [{ Key: 'dir/c', UploadId: 'u-c', Initiated: new Date(now - 2 * 3_600_000) }] }
  })
  assert.equal(await s3.abortStaleUploads(3_600_000), 2)
  assert.deepEqual(
    calls.filter(c => c.command === 'AbortMultipartUpload').map(c => c.input),
    [
      { Bucket: 'bucket', Key: 'dir/a', UploadId: 'u-a' },
      { Bucket: 'bucket', Key: 'dir/c', UploadId: 'u-c' },
    ],
  )
  const unsupported = backend(() => {
    throw sdkError('NotImplemented', 501)
  })
  assert.equal(await unsupported.s3.abortStaleUploads(0), 0)
  const refused = backend(() => {
    throw sdkError('AccessDenied', 403)
  })
  await assert.rejects(refused.s3.abortStaleUploads(0), { code: 'REMOTE_AUTH' })
})
