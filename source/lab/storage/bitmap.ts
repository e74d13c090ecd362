// A growable bit set stored MSB-first (bit 0 is 0x80 of byte 0), the order XAPI's list_changed_blocks uses,
// so a CBT log can be handed out as is.

export class Bitmap {
  bytes: Uint8Array
  bitCount: number

  constructor(bitCount: number, bytes?: Uint8Array) {
    this.bitCount = bitCount
    this.bytes = new Uint8Array(Math.ceil(bitCount / 8))
    if (bytes !== undefined) this.bytes.set(bytes.subarray(0, this.bytes.length))
    this.clearTail()
  }

  get(index: number): boolean {
    return index >= 0 && index < this.bitCount && (this.bytes[index >> 3]! & (0x80 >> (index & 7))) !== 0
  }

  set(index: number): void {
    this.bytes[index >> 3]! |= 0x80 >> (index & 7)
  }

  /** Sets bits first..last inclusive. */
  setRange(first: number, last: number): void {
    for (let index = first; index <= last; index++) this.set(index)
  }

  /** Grows (never shrinks) to bitCount bits; new bits are clear. */
  grow(bitCount: number): void {
    if (bitCount <= this.bitCount) return
    const bytes = new Uint8Array(Math.ceil(bitCount / 8))
    bytes.set(this.bytes)
    this.bytes = bytes
    this.bitCount = bitCount
  }

  or(other: Bitmap): void {
    const length = Math.min(this.bytes.length, other.bytes.length)
    for (let i = 0; i < length; i++) this.bytes[i]! |= other.bytes[i]!
    this.clearTail()
  }

  count(): number {
    let total = 0
    for (const byte of this.bytes) {
      let b = byte
      while (b !== 0) {
        b &= b - 1
        total++
      }
    }
    return total
  }

  /** Indexes of the set bits, ascending. */
  indexes(): number[] {
    const out: number[] = []
    for (let i = 0; i < this.bytes.length; i++) {
      const byte = this.bytes[i]!
      if (byte === 0) continue
      for (let bit = 0; bit < 8; bit++) if ((byte & (0x80 >> bit)) !== 0) out.push(i * 8 + bit)
    }
    return out
  }

  clear(): void {
    this.bytes.fill(0)
  }

  toBase64(): string {
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength).toString('base64')
  }

  static fromBase64(bitCount: number, text: string): Bitmap {
    return new Bitmap(bitCount, Buffer.from(text, 'base64'))
  }

  private clearTail(): void {
    const spare = this.bytes.length * 8 - this.bitCount
    if (spare > 0) this.bytes[this.bytes.length - 1]! &= (0xff << spare) & 0xff
  }
}
