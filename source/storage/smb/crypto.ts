// The cryptography SMB needs that node 20's OpenSSL 3 lacks without --openssl-legacy-provider (MD4 for the
// NT hash, RC4 for NTLM's key exchange), and what it has no one-call API for (AES-CMAC, the SP800-108 KDF).
import { createCipheriv, createHmac } from 'node:crypto'

/** MD4 (RFC 1320): only for the NT hash of a password, as [MS-NLMP] prescribes. */
export function md4(input: Buffer): Buffer {
  const bitLength = input.length * 8
  const padded = Buffer.alloc((((input.length + 8) >> 6) + 1) * 64)
  input.copy(padded)
  padded[input.length] = 0x80
  padded.writeUInt32LE(bitLength >>> 0, padded.length - 8)
  padded.writeUInt32LE(Math.floor(bitLength / 2 ** 32), padded.length - 4)
  let a = 0x67452301
  let b = 0xefcdab89
  let c = 0x98badcfe
  let d = 0x10325476
  const rotl = (x: number, n: number) => (x << n) | (x >>> (32 - n))
  const x = new Array<number>(16)
  for (let offset = 0; offset < padded.length; offset += 64) {
    for (let i = 0; i < 16; i++) x[i] = padded.readUInt32LE(offset + i * 4)
    const [aa, bb, cc, dd] = [a, b, c, d]
    const f = (p: number, q: number, r: number) => (p & q) | (~p & r)
    const g = (p: number, q: number, r: number) => (p & q) | (p & r) | (q & r)
    const h = (p: number, q: number, r: number) => p ^ q ^ r
    for (const i of [0, 4, 8, 12]) {
      a = rotl((a + f(b, c, d) + x[i]!) | 0, 3)
      d = rotl((d + f(a, b, c) + x[i + 1]!) | 0, 7)
      c = rotl((c + f(d, a, b) + x[i + 2]!) | 0, 11)
      b = rotl((b + f(c, d, a) + x[i + 3]!) | 0, 19)
    }
    for (const i of [0, 1, 2, 3]) {
      a = rotl((a + g(b, c, d) + x[i]! + 0x5a827999) | 0, 3)
      d = rotl((d + g(a, b, c) + x[i + 4]! + 0x5a827999) | 0, 5)
      c = rotl((c + g(d, a, b) + x[i + 8]! + 0x5a827999) | 0, 9)
      b = rotl((b + g(c, d, a) + x[i + 12]! + 0x5a827999) | 0, 13)
    }
    for (const i of [0, 2, 1, 3]) {
      a = rotl((a + h(b, c, d) + x[i]! + 0x6ed9eba1) | 0, 3)
      d = rotl((d + h(a, b, c) + x[i + 8]! + 0x6ed9eba1) | 0, 9)
      c = rotl((c + h(d, a, b) + x[i + 4]! + 0x6ed9eba1) | 0, 11)
      b = rotl((b + h(c, d, a) + x[i + 12]! + 0x6ed9eba1) | 0, 15)
    }
    a = (a + aa) | 0
    b = (b + bb) | 0
    c = (c + cc) | 0
    d = (d + dd) | 0
  }
  const out = Buffer.alloc(16)
  out.writeInt32LE(a, 0)
  out.writeInt32LE(b, 4)
  out.writeInt32LE(c, 8)
  out.writeInt32LE(d, 12)
  return out
}

/** RC4: NTLM's encryption of the exported session key (NTLMSSP_NEGOTIATE_KEY_EXCH). */
export function rc4(key: Buffer, data: Buffer): Buffer {
  const s = new Uint8Array(256)
  for (let i = 0; i < 256; i++) s[i] = i
  for (let i = 0, j = 0; i < 256; i++) {
    j = (j + s[i]! + key[i % key.length]!) & 0xff
    ;[s[i], s[j]] = [s[j]!, s[i]!]
  }
  const out = Buffer.alloc(data.length)
  for (let n = 0, i = 0, j = 0; n < data.length; n++) {
    i = (i + 1) & 0xff
    j = (j + s[i]!) & 0xff
    ;[s[i], s[j]] = [s[j]!, s[i]!]
    out[n] = data[n]! ^ s[(s[i]! + s[j]!) & 0xff]!
  }
  return out
}

export function hmacMd5(key: Buffer, ...data: Buffer[]): Buffer {
  const hmac = createHmac('md5', key)
  for (const part of data) hmac.update(part)
  return hmac.digest()
}

// CMAC's subkey step: shift left one bit, xor 0x87 into the last byte when the top bit fell off.
function doubleBlock(block: Buffer): Buffer {
  const out = Buffer.alloc(16)
  for (let i = 0; i < 16; i++) out[i] = ((block[i]! << 1) | (i < 15 ? block[i + 1]! >> 7 : 0)) & 0xff
  if ((block[0]! & 0x80) !== 0) out[15]! ^= 0x87
  return out
}

/** AES-128-CMAC (RFC 4493), on node's AES-128-CBC with a zero IV: the SMB 3.x signature. */
export function aesCmac(key: Buffer, message: Buffer): Buffer {
  const encrypt = (block: Buffer) => {
    const cipher = createCipheriv('aes-128-ecb', key, null)
    cipher.setAutoPadding(false)
    return cipher.update(block)
  }
  const k1 = doubleBlock(encrypt(Buffer.alloc(16)))
  const k2 = doubleBlock(k1)
  const blocks = Math.max(1, Math.ceil(message.length / 16))
  const complete = message.length > 0 && message.length % 16 === 0
  const last = Buffer.alloc(16)
  message.copy(last, 0, (blocks - 1) * 16)
  if (!complete) last[message.length - (blocks - 1) * 16] = 0x80
  const subkey = complete ? k1 : k2
  for (let i = 0; i < 16; i++) last[i]! ^= subkey[i]!
  const cipher = createCipheriv('aes-128-cbc', key, Buffer.alloc(16))
  cipher.setAutoPadding(false)
  if (blocks > 1) cipher.update(message.subarray(0, (blocks - 1) * 16))
  return cipher.update(last)
}

/** SP800-108 counter-mode KDF with HMAC-SHA256, one 128-bit block ([MS-SMB2] §3.1.4.2): the SMB 3.x keys. */
export function smb3Kdf(key: Buffer, label: Buffer, context: Buffer): Buffer {
  const counter = Buffer.from([0, 0, 0, 1])
  const length = Buffer.from([0, 0, 0, 128])
  return createHmac('sha256', key).update(counter).update(label).update(Buffer.from([0])).update(context).update(length).digest().subarray(0, 16)
}
