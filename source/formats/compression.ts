// Whole-stream compression of exports and backups: gzip through node's zlib, zstd through the `zstd` program
// (node 20 has no zstd). Streams keep back-pressure, forward errors as coded ones, and clean up when abandoned.
import { spawn } from 'node:child_process'
import { PassThrough, Transform } from 'node:stream'
import type { Readable } from 'node:stream'
import { createGunzip, createGzip } from 'node:zlib'
import { LifeboatError } from '../util/errors.ts'

export type Compression = 'gzip' | 'zstd'

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b])
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd])

export function detectCompression(head: Buffer): Compression | undefined {
  if (head.length >= GZIP_MAGIC.length && head.subarray(0, GZIP_MAGIC.length).equals(GZIP_MAGIC)) return 'gzip'
  if (head.length >= ZSTD_MAGIC.length && head.subarray(0, ZSTD_MAGIC.length).equals(ZSTD_MAGIC)) return 'zstd'
  return undefined
}

export function compressStream(source: Readable, kind: Compression): Readable {
  const failure = (detail: string) =>
    new LifeboatError('COMPRESSION_FAILED', `Compressing the stream with ${kind} failed (${detail}); check free memory and the ${kind} installation, then retry.`)
  return kind === 'gzip' ? throughZlib(source, createGzip(), failure) : throughZstd(source, ['-c', '-q', '-T1'], failure)
}

export function decompressStream(source: Readable, kind: Compression): Readable {
  const failure = (detail: string) =>
    new LifeboatError('COMPRESSION_CORRUPT', `The ${kind} data is corrupt or cut short (${detail}); the file or the transfer is damaged, use another copy.`)
  return kind === 'gzip' ? throughZlib(source, createGunzip(), failure) : throughZstd(source, ['-d', '-c', '-q'], failure)
}

/** Source errors are forwarded unchanged (they are not the codec's fault); codec errors become coded ones. */
function throughZlib(source: Readable, codec: Transform, failure: (detail: string) => LifeboatError): Readable {
  const output = new PassThrough()
  const fail = (error: Error) => {
    source.destroy()
    codec.destroy()
    output.destroy(error)
  }
  source.on('error', fail)
  codec.on('error', (error: Error) => fail(failure(error.message)))
  output.on('close', () => {
    if (!output.readableEnded) {
      source.destroy()
      codec.destroy()
    }
  })
  source.pipe(codec).pipe(output)
  return output
}

/** The output ends only once zstd has exited 0, so a failure can never pass for a shorter, complete stream. */
function throughZstd(source: Readable, args: string[], failure: (detail: string) => LifeboatError): Readable {
  const child = spawn('zstd', args, { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (data: Buffer) => {
    if (stderr.length < 4096) stderr += data.toString()
  })
  const exited = new Promise<Error | undefined>(resolve => {
    child.on('error', (error: NodeJS.ErrnoException) => {
      resolve(
        error.code === 'ENOENT'
          ? new LifeboatError('ZSTD_MISSING', 'The zstd program is not installed; install it with: apt-get install -y zstd')
          : failure(error.message),
      )
    })
    child.on('close', (code, signal) => resolve(code === 0 ? undefined : failure(stderr.trim() || `zstd exited with ${code ?? signal}`)))
  })
  const output = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      callback(null, chunk)
    },
    flush(callback) {
      void exited.then(error => callback(error))
    },
  })
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    source.destroy()
  }
  source.on('error', (error: Error) => {
    stop()
    output.destroy(error)
  })
  // EPIPE when zstd dies early: its exit status says why.
  child.stdin.on('error', () => {})
  child.stdout.on('error', () => {})
  void exited.then(error => {
    if (error !== undefined) {
      source.destroy()
      output.destroy(error)
    }
  })
  output.on('close', () => {
    if (!output.readableEnded) stop()
  })
  source.pipe(child.stdin)
  child.stdout.pipe(output)
  return output
}
