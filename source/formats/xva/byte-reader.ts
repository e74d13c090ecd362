// Pull exact byte counts out of an async stream of buffers of any size, holding only what was asked for.
import { LifeboatError } from '../../util/errors.ts'

export class ByteReader {
  private readonly iterator: AsyncIterator<Buffer>
  private pending: Buffer[] = []
  private pendingBytes = 0
  private ended = false

  constructor(source: AsyncIterable<Buffer> | Iterable<Buffer>) {
    this.iterator = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : fromSync(source)
  }

  /** Up to `length` bytes; fewer only at the end of the stream. */
  async readUpTo(length: number): Promise<Buffer> {
    await this.fill(length)
    return this.take(Math.min(length, this.pendingBytes))
  }

  /** Exactly `length` bytes, else XVA_TRUNCATED. */
  async read(length: number): Promise<Buffer> {
    const data = await this.readUpTo(length)
    if (data.length < length) throw truncated()
    return data
  }

  /** The first `length` bytes (fewer at the end of the stream), left in place. */
  async peek(length: number): Promise<Buffer> {
    await this.fill(length)
    const head = this.take(Math.min(length, this.pendingBytes))
    this.pending.unshift(head)
    this.pendingBytes += head.length
    return head
  }

  /** Everything not read yet, as a stream (to feed a decompressor). */
  async *rest(): AsyncGenerator<Buffer> {
    while (this.pending.length > 0) {
      const head = this.pending.shift()!
      this.pendingBytes -= head.length
      yield head
    }
    for (;;) {
      const next = await this.iterator.next()
      if (next.done === true) return
      yield toBuffer(next.value)
    }
  }

  async close(): Promise<void> {
    this.pending = []
    this.pendingBytes = 0
    if (!this.ended) {
      this.ended = true
      await this.iterator.return?.()
    }
  }

  private async fill(length: number): Promise<void> {
    while (this.pendingBytes < length && !this.ended) {
      const next = await this.iterator.next()
      if (next.done === true) {
        this.ended = true
        break
      }
      const chunk = toBuffer(next.value)
      if (chunk.length === 0) continue
      this.pending.push(chunk)
      this.pendingBytes += chunk.length
    }
  }

  private take(length: number): Buffer {
    if (length === 0) return Buffer.alloc(0)
    const head = this.pending[0]!
    if (head.length >= length) {
      if (head.length === length) this.pending.shift()
      else this.pending[0] = head.subarray(length)
      this.pendingBytes -= length
      return head.subarray(0, length)
    }
    const out = Buffer.allocUnsafe(length)
    let filled = 0
    while (filled < length) {
      const chunk = this.pending[0]!
      const used = Math.min(chunk.length, length - filled)
      chunk.copy(out, filled, 0, used)
      filled += used
      if (used === chunk.length) this.pending.shift()
      else this.pending[0] = chunk.subarray(used)
    }
    this.pendingBytes -= length
    return out
  }
}

async function* fromSync(source: Iterable<Buffer>): AsyncGenerator<Buffer> {
  yield* source
}

function toBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (typeof value === 'string') return Buffer.from(value)
  throw new LifeboatError('XVA_BAD_SOURCE', 'The XVA source produced something other than bytes; this is a bug in the caller.')
}

export function truncated(): LifeboatError {
  return new LifeboatError('XVA_TRUNCATED', 'The XVA ends too early: the export was cut short or the file is incomplete. Export it again.')
}
