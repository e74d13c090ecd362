// XDR (RFC 4506), the encoding of every ONC RPC message: big-endian 4-byte units, opaques padded to 4.
// Large opaques (a WRITE's data) are kept as separate buffers so that a block is never copied to be sent.

/** A reply that does not decode: the server sent something other than what the protocol says. */
export class XdrError extends Error {
  readonly code = 'EBADRPC'
}

export class XdrWriter {
  readonly #parts: Buffer[] = []
  #current = Buffer.allocUnsafe(256)
  #used = 0

  #room(bytes: number): void {
    if (this.#used + bytes <= this.#current.length) return
    this.#flush()
    this.#current = Buffer.allocUnsafe(Math.max(256, bytes))
  }

  #flush(): void {
    if (this.#used > 0) this.#parts.push(this.#current.subarray(0, this.#used))
    this.#current = this.#current.subarray(this.#used)
    this.#used = 0
  }

  uint(value: number): this {
    this.#room(4)
    this.#current.writeUInt32BE(value >>> 0, this.#used)
    this.#used += 4
    return this
  }

  bool(value: boolean): this {
    return this.uint(value ? 1 : 0)
  }

  uhyper(value: number | bigint): this {
    this.#room(8)
    this.#current.writeBigUInt64BE(BigInt(value), this.#used)
    this.#used += 8
    return this
  }

  /** Fixed-length opaque (a cookie verifier, a write verifier). */
  fixed(data: Buffer): this {
    this.#room(data.length)
    data.copy(this.#current, this.#used)
    this.#used += data.length
    return this
  }

  /** Variable-length opaque; big ones are referenced, not copied. */
  opaque(data: Buffer): this {
    this.uint(data.length)
    if (data.length >= 4096) {
      this.#flush()
      this.#parts.push(data)
    } else this.fixed(data)
    const pad = (4 - (data.length % 4)) % 4
    if (pad > 0) this.fixed(Buffer.alloc(pad))
    return this
  }

  string(value: string): this {
    return this.opaque(Buffer.from(value, 'utf8'))
  }

  /** The encoded message as buffers to write one after the other. */
  parts(): Buffer[] {
    this.#flush()
    return this.#parts
  }
}

export class XdrReader {
  readonly #data: Buffer
  #offset: number

  constructor(data: Buffer, offset = 0) {
    this.#data = data
    this.#offset = offset
  }

  #take(bytes: number): number {
    const at = this.#offset
    if (at + bytes > this.#data.length) throw new XdrError(`the reply ends after ${this.#data.length} bytes where ${at + bytes} were expected`)
    this.#offset += bytes
    return at
  }

  uint(): number {
    return this.#data.readUInt32BE(this.#take(4))
  }

  bool(): boolean {
    const value = this.uint()
    if (value > 1) throw new XdrError(`a boolean of the reply is ${value}`)
    return value === 1
  }

  /** A 64-bit count (sizes, offsets): exact up to 2^53, which every size Lifeboat writes is below. */
  uhyper(): number {
    return Number(this.bigUhyper())
  }

  bigUhyper(): bigint {
    return this.#data.readBigUInt64BE(this.#take(8))
  }

  fixed(length: number): Buffer {
    const at = this.#take(length)
    return this.#data.subarray(at, at + length)
  }

  /** Variable-length opaque, at most `max` bytes; a view into the reply, not a copy. */
  opaque(max = 0xffffffff): Buffer {
    const length = this.uint()
    if (length > max) throw new XdrError(`an opaque of the reply is ${length} bytes, more than the ${max} allowed`)
    const data = this.fixed(length)
    this.#take((4 - (length % 4)) % 4)
    return data
  }

  string(max?: number): string {
    return this.opaque(max).toString('utf8')
  }

  skip(bytes: number): void {
    this.#take(bytes)
  }
}
