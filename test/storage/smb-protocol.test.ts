// The SMB client's parts against published test vectors (MD4, NTLMv2, AES-CMAC, the SMB 3 KDF), and against
// a fake SMB2 server for what Samba cannot show on demand: STATUS_PENDING then the answer, answers out of
// order, a frame split across TCP chunks, the credit window, a connection dropped mid-request, a server
// that never answers, a malformed frame or a wrong signature, and refused credentials.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { createServer, type Server, type Socket } from 'node:net'
import { aesCmac, md4, rc4, smb3Kdf } from '../../source/storage/smb/crypto.ts'
import { authenticateMessage, ntlmv2Response, ntowfv2, parseChallenge, type Credentials } from '../../source/storage/smb/ntlm.ts'
import { SmbClient, Access, Disposition } from '../../source/storage/smb/client.ts'
import { SmbBackend, parseSmbTarget } from '../../source/storage/smb.ts'
import { serializeError } from '../../source/util/errors.ts'
import { parseRemoteUrl, redactRemoteUrl } from '../../source/storage/url.ts'

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex')
const u16 = (s: string) => Buffer.from(s, 'utf16le')

test('MD4 gives RFC 1320\'s digests', () => {
  const vectors: Array<[string, string]> = [
    ['', '31d6cfe0d16ae931b73c59d7e0c089c0'],
    ['a', 'bde52cb31de33e46245e05fbdbd6fb24'],
    ['abc', 'a448017aaf21d8525fc10ae87aa6729d'],
    ['message digest', 'd9130a8164549fe818874806e1c7014b'],
    ['abcdefghijklmnopqrstuvwxyz', 'd79e1c308aa5bbcdeea8ed63df412da9'],
    ['12345678901234567890123456789012345678901234567890123456789012345678901234567890', 'e33b4ddc9c38f2199c3e7b164fcc0536'],
  ]
  for (const [input, digest] of vectors) assert.equal(md4(Buffer.from(input)).toString('hex'), digest, `MD4("${input}")`)
})

test('NTLMv2 gives [MS-NLMP] §4.2.4\'s values: NTOWFv2, NTProofStr, the session base key and the encrypted exported key', () => {
  const credentials: Credentials = { username: 'User', password: 'Password', domain: 'Domain' }
  const responseKey = ntowfv2(credentials)
  assert.equal(responseKey.toString('hex'), '0c868a403bfd7a93a3001ef22ef02e3f', 'NTOWFv2')
  const targetInfo = Buffer.concat([Buffer.from([2, 0, 12, 0]), u16('Domain'), Buffer.from([1, 0, 12, 0]), u16('Server'), Buffer.alloc(4)])
  const { ntResponse, sessionBaseKey } = ntlmv2Response(responseKey, hex('0123456789abcdef'), Buffer.alloc(8, 0xaa), Buffer.alloc(8), targetInfo)
  assert.equal(ntResponse.subarray(0, 16).toString('hex'), '68cd0ab851e51c96aabc927bebef6a1c', 'NTProofStr')
  assert.equal(sessionBaseKey.toString('hex'), '8de40ccadbc14a82f15cb0ad0de95ca3', 'the session base key')
  assert.equal(rc4(sessionBaseKey, Buffer.alloc(16, 0x55)).toString('hex'), 'c5dad2544fc9799094ce1ce90bc9d03e', 'the encrypted random session key')

  // The AUTHENTICATE message carries exactly those: an NTLMv2 response, never an NTLMv1 one.
  const challenge = { flags: 0xe28a8235, serverChallenge: hex('0123456789abcdef'), targetInfo }
  const auth = authenticateMessage(credentials, challenge, { clientChallenge: Buffer.alloc(8, 0xaa), exportedSessionKey: Buffer.alloc(16, 0x55), time: Buffer.alloc(8) })
  const field = (offset: number) => auth.message.subarray(auth.message.readUInt32LE(offset + 4), auth.message.readUInt32LE(offset + 4) + auth.message.readUInt16LE(offset))
  assert.ok(field(20).equals(ntResponse), 'the NT response field is the NTLMv2 response')
  assert.ok(field(20).length > 24, 'an NTLMv2 response is longer than the 24 bytes of an NTLMv1 one')
  assert.equal(field(52).toString('hex'), 'c5dad2544fc9799094ce1ce90bc9d03e', 'the encrypted exported key')
  assert.equal(auth.sessionKey.toString('hex'), '55'.repeat(16), 'the key SMB signs with is the exported session key')
  assert.equal(field(36).toString('utf16le'), 'User')
  assert.equal(field(28).toString('utf16le'), 'Domain')
})

test('AES-128-CMAC gives RFC 4493\'s MACs', () => {
  const key = hex('2b7e151628aed2a6abf7158809cf4f3c')
  const message = hex('6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710')
  assert.equal(aesCmac(key, Buffer.alloc(0)).toString('hex'), 'bb1d6929e95937287fa37d129b756746', 'empty message')
  assert.equal(aesCmac(key, message.subarray(0, 16)).toString('hex'), '070a16b46b4d4144f79bdd9dd04a287c', '16 bytes')
  assert.equal(aesCmac(key, message.subarray(0, 40)).toString('hex'), 'dfa66747de9ae63030ca32611497c827', '40 bytes')
  assert.equal(aesCmac(key, message).toString('hex'), '51f0bebf7e3b9d92fc49741779363cfe', '64 bytes')
})

test('the SMB 3 KDF gives the SMB 3.0 signing key of Microsoft\'s published example', () => {
  // "SMB 2 and SMB 3 security in Windows 10: the anatomy of signing and cryptographic keys", appendix.
  const key = smb3Kdf(hex('7CD451825D0450D235424E44BA6E78CC'), Buffer.from('SMB2AESCMAC\0', 'latin1'), Buffer.from('SmbSign\0', 'latin1'))
  assert.equal(key.toString('hex'), '0b7e9c5cac36c0f6ea9ab275298cedce')
})

test('the URL\'s host part gives host, port and share; IPv6 in brackets; 445 by default', () => {
  assert.deepEqual(parseSmbTarget('nas\\backups'), { host: 'nas', port: 445, share: 'backups' })
  assert.deepEqual(parseSmbTarget('127.0.0.1:4445\\backups'), { host: '127.0.0.1', port: 4445, share: 'backups' })
  assert.deepEqual(parseSmbTarget('[::1]:4445\\b'), { host: '::1', port: 4445, share: 'b' })
  assert.throws(() => parseSmbTarget('nas'), { code: 'REMOTE_BAD_URL' })
})

// ---- A fake SMB 2.1 server: the handshake (NTLMv2 checked, replies signed with HMAC-SHA256), files in memory.

const PASSWORD = 'Fake-Pw-99'
const FLAG_RESPONSE = 0x1
const FLAG_ASYNC = 0x2
const FLAG_SIGNED = 0x8

interface FakeRequest {
  command: number
  messageId: bigint
  charge: number
  body: Buffer
  connection: FakeConnection
}

class FakeConnection {
  readonly socket: Socket
  readonly index: number
  sessionKey: Buffer | undefined
  windowEnd = 1n
  readonly violations: string[]
  #challenge = Buffer.from('0123456789abcdef', 'hex')

  constructor(socket: Socket, index: number, violations: string[]) {
    this.socket = socket
    this.index = index
    this.violations = violations
  }

  message(request: FakeRequest, status: number, body: Buffer, options: { credits?: number; asyncId?: bigint; signature?: 'good' | 'bad' | 'none' } = {}): Buffer {
    const message = Buffer.alloc(64 + body.length)
    message.writeUInt32LE(0x424d53fe, 0)
    message.writeUInt16LE(64, 4)
    message.writeUInt32LE(status, 8)
    message.writeUInt16LE(request.command, 12)
    const credits = options.credits ?? 8
    message.writeUInt16LE(credits, 14)
    this.windowEnd += BigInt(credits)
    message.writeUInt32LE(FLAG_RESPONSE | (options.asyncId !== undefined ? FLAG_ASYNC : 0), 16)
    message.writeBigUInt64LE(request.messageId, 24)
    if (options.asyncId !== undefined) message.writeBigUInt64LE(options.asyncId, 32)
    else message.writeUInt32LE(7, 36)
    message.writeBigUInt64LE(0x1234n, 40)
    body.copy(message, 64)
    const signature = options.signature ?? (this.sessionKey !== undefined && status !== 0x103 ? 'good' : 'none')
    if (signature !== 'none') {
      message.writeUInt32LE(message.readUInt32LE(16) | FLAG_SIGNED, 16)
      const mac = createHmac('sha256', this.sessionKey!).update(message).digest().subarray(0, 16)
      if (signature === 'bad') mac[0]! ^= 1
      mac.copy(message, 48)
    }
    return message
  }

  send(...messages: Buffer[]): void {
    for (const message of messages) this.socket.write(frame(message))
  }

  reply(request: FakeRequest, status: number, body: Buffer, options?: Parameters<FakeConnection['message']>[3]): void {
    this.send(this.message(request, status, body, options))
  }

  handshake(request: FakeRequest, credentials: { password: string }, grant: number): boolean {
    if (request.command === 0) {
      const body = Buffer.alloc(64)
      body.writeUInt16LE(65, 0)
      body.writeUInt16LE(1, 2)
      body.writeUInt16LE(0x0210, 4)
      body.writeUInt32LE(0x4, 24) // LARGE_MTU
      body.writeUInt32LE(1 << 20, 28)
      body.writeUInt32LE(1 << 20, 32)
      body.writeUInt32LE(1 << 20, 36)
      body.writeUInt16LE(128, 56)
      this.reply(request, 0, body, { credits: 1 })
      return true
    }
    if (request.command === 1) {
      const offset = request.body.readUInt16LE(12) - 64
      const token = request.body.subarray(offset, offset + request.body.readUInt16LE(14))
      if (token.readUInt32LE(8) === 1) {
        const challenge = Buffer.alloc(56 + 4)
        Buffer.from('NTLMSSP\0', 'latin1').copy(challenge, 0)
        challenge.writeUInt32LE(2, 8)
        // No KEY_EXCH: the session key is the session base key, which the fake can compute.
        challenge.writeUInt32LE(0x00888215, 20)
        this.#challenge.copy(challenge, 24)
        challenge.writeUInt16LE(4, 40)
        challenge.writeUInt16LE(4, 42)
        challenge.writeUInt32LE(56, 44)
        const body = Buffer.alloc(8 + challenge.length)
        body.writeUInt16LE(9, 0)
        body.writeUInt16LE(72, 4)
        body.writeUInt16LE(challenge.length, 6)
        challenge.copy(body, 8)
        this.reply(request, 0xc0000016, body, { credits: 1 })
        return true
      }
      const field = (at: number) => token.subarray(token.readUInt32LE(at + 4), token.readUInt32LE(at + 4) + token.readUInt16LE(at))
      const ntResponse = field(20)
      const responseKey = ntowfv2({ username: field(36).toString('utf16le'), domain: field(28).toString('utf16le'), password: credentials.password })
      const proof = createHmac('md5', responseKey).update(this.#challenge).update(ntResponse.subarray(16)).digest()
      if (!proof.equals(ntResponse.subarray(0, 16))) {
        this.reply(request, 0xc000006d, Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 0]))
        return true
      }
      this.sessionKey = createHmac('md5', responseKey).update(proof).digest()
      this.reply(request, 0, Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 0]), { credits: grant })
      return true
    }
    if (request.command === 3) {
      const body = Buffer.alloc(16)
      body.writeUInt16LE(16, 0)
      body.writeUInt8(1, 2)
      this.reply(request, 0, body, { credits: grant })
      return true
    }
    return false
  }
}

function frame(message: Buffer): Buffer {
  const head = Buffer.alloc(4)
  head.writeUInt32BE(message.length)
  return Buffer.concat([head, message])
}

interface Fake {
  port: number
  connections: FakeConnection[]
  requests: FakeRequest[]
  violations: string[]
  close(): Promise<void>
}

/** `handle` answers what it wants and returns true; the rest gets the in-memory file's default answers. */
async function startFake(handle: (request: FakeRequest) => boolean | void = () => false, file = Buffer.alloc(0), grant = 8): Promise<Fake> {
  const connections: FakeConnection[] = []
  const requests: FakeRequest[] = []
  const violations: string[] = []
  const server: Server = createServer(socket => {
    const connection = new FakeConnection(socket, connections.length, violations)
    connections.push(connection)
    let pending = Buffer.alloc(0)
    socket.on('error', () => {})
    socket.on('data', chunk => {
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
        const message = pending.subarray(4, 4 + pending.readUInt32BE(0))
        pending = pending.subarray(4 + message.length)
        const request: FakeRequest = { command: message.readUInt16LE(12), messageId: message.readBigUInt64LE(24), charge: Math.max(1, message.readUInt16LE(6)), body: message.subarray(64), connection }
        if (request.messageId + BigInt(request.charge) > connection.windowEnd) violations.push(`message ${request.messageId} (charge ${request.charge}) beyond the window ending at ${connection.windowEnd}`)
        requests.push(request)
        if (handle(request) === true) continue
        if (connection.handshake(request, { password: PASSWORD }, grant)) continue
        defaultAnswer(request, file)
      }
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    connections,
    requests,
    violations,
    close: () => new Promise(resolve => {
      for (const connection of connections) connection.socket.destroy()
      server.close(() => resolve())
    }),
  }
}

const CREATE = 5
const CLOSE = 6
const READ = 8
const WRITE = 9

function createAnswer(size: number): Buffer {
  const body = Buffer.alloc(88)
  body.writeUInt16LE(89, 0)
  body.writeBigUInt64LE(BigInt(size), 48)
  body.writeUInt32LE(0x80, 56)
  body.fill(0xab, 64, 80)
  return body
}

function readAnswer(data: Buffer): Buffer {
  const body = Buffer.alloc(16 + data.length)
  body.writeUInt16LE(17, 0)
  body.writeUInt8(80, 2)
  body.writeUInt32LE(data.length, 4)
  data.copy(body, 16)
  return body
}

function readRange(request: FakeRequest): { offset: number; length: number } {
  return { offset: Number(request.body.readBigUInt64LE(8)), length: request.body.readUInt32LE(4) }
}

function defaultAnswer(request: FakeRequest, file: Buffer): void {
  const { connection } = request
  if (request.command === CREATE) return connection.reply(request, 0, createAnswer(file.length))
  if (request.command === CLOSE) return connection.reply(request, 0, Buffer.concat([Buffer.from([60, 0]), Buffer.alloc(58)]))
  if (request.command === READ) {
    const { offset, length } = readRange(request)
    if (offset >= file.length) return connection.reply(request, 0xc0000011, Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 0]))
    return connection.reply(request, 0, readAnswer(file.subarray(offset, offset + length)))
  }
  if (request.command === WRITE) {
    const body = Buffer.alloc(16)
    body.writeUInt16LE(17, 0)
    body.writeUInt32LE(request.body.readUInt32LE(4), 4)
    return connection.reply(request, 0, body)
  }
  connection.reply(request, 0xc00000bb, Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 0]))
}

function clientOf(fake: Fake, options: { timeoutMs?: number; pendingTimeoutMs?: number; retries?: number; password?: string } = {}): SmbClient {
  return new SmbClient({ host: '127.0.0.1', port: fake.port, share: 'share', credentials: { username: 'user', password: options.password ?? PASSWORD, domain: 'DOM' }, ...options })
}

function backendOf(fake: Fake, options: { timeoutMs?: number; retries?: number; password?: string } = {}): SmbBackend {
  const { password = PASSWORD, ...rest } = options
  return new SmbBackend({ type: 'smb', username: 'user', password, domain: 'DOM', host: `127.0.0.1:${fake.port}\\share`, path: '', options: {} }, 'smb://user:***@DOM\\\\fake\\share', rest)
}

const READ_SPEC = { access: Access.READ_DATA | Access.READ_ATTRIBUTES, disposition: Disposition.OPEN }

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

test('STATUS_PENDING is an interim answer: the request waits for the final one with the same MessageId', async () => {
  let finalSent = false
  const fake = await startFake(request => {
    if (request.command !== WRITE) return false
    const { connection } = request
    connection.reply(request, 0x103, Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 0]), { asyncId: 42n })
    setTimeout(() => {
      finalSent = true
      const body = Buffer.alloc(16)
      body.writeUInt16LE(17, 0)
      body.writeUInt32LE(request.body.readUInt32LE(4), 4)
      connection.reply(request, 0, body, { asyncId: 42n, credits: 0 })
    }, 50)
    return true
  })
  const client = clientOf(fake)
  try {
    const handle = await client.open('f', { access: Access.WRITE_DATA, disposition: Disposition.OPEN })
    await handle.write(Buffer.alloc(1000, 1), 0)
    assert.ok(finalSent, 'the write resolved only once the final answer was sent')
    await handle.close()
  } finally {
    await client.close()
    await fake.close()
  }
})

test('answers out of order reach their own requests; a frame split across TCP chunks and frames joined in one are read', async () => {
  const file = Buffer.from(Array.from({ length: 4 * 65536 }, (_, i) => (i * 7) & 0xff))
  const held: FakeRequest[] = []
  const fake = await startFake(request => {
    if (request.command !== READ) return false
    held.push(request)
    if (held.length < 4) return true
    // All four in flight: answer them last first, the first two in one chunk, the others byte by byte.
    const messages = held.reverse().map(r => {
      const { offset, length } = readRange(r)
      return frame(r.connection.message(r, 0, readAnswer(file.subarray(offset, offset + length))))
    })
    const socket = request.connection.socket
    socket.write(Buffer.concat([messages[0]!, messages[1]!]))
    const rest = Buffer.concat([messages[2]!, messages[3]!])
    let at = 0
    const drip = () => {
      if (at >= rest.length) return
      socket.write(rest.subarray(at, at + 997))
      at += 997
      setImmediate(drip)
    }
    drip()
    return true
  }, file)
  const client = clientOf(fake)
  try {
    const handle = await client.open('f', READ_SPEC)
    const parts = await Promise.all([0, 1, 2, 3].map(i => handle.read(i * 65536, 65536)))
    assert.ok(Buffer.concat(parts).equals(file), 'each read has the bytes of its own range')
    await handle.close()
  } finally {
    await client.close()
    await fake.close()
  }
})

test('credits: never past the window the server grants; a read of 256 KiB charges 4 credits', async () => {
  const file = Buffer.alloc(2 << 20, 5)
  // The window: 1 credit after the handshake, 6 more with the open: one 4-credit read in flight at a time.
  const fake = await startFake(request => {
    if (request.command === CREATE) {
      request.connection.reply(request, 0, createAnswer(file.length), { credits: 6 })
      return true
    }
    if (request.command !== READ) return false
    const { offset, length } = readRange(request)
    if (length === 262144 && request.charge !== 4) request.connection.violations.push(`a 256 KiB read charged ${request.charge}`)
    // One credit back per credit used, a little later: the window stays as narrow as the server wants it.
    setTimeout(() => request.connection.reply(request, 0, readAnswer(file.subarray(offset, offset + length)), { credits: request.charge }), 5)
    return true
  }, file, 1)
  const client = clientOf(fake)
  try {
    const handle = await client.open('f', READ_SPEC)
    const parts = await Promise.all(Array.from({ length: 8 }, (_, i) => handle.read(i * 262144, 262144)))
    assert.ok(Buffer.concat(parts).equals(file), 'the reads are whole')
    assert.deepEqual(fake.violations, [], 'no request beyond the granted window, every charge right')
    await handle.close()
  } finally {
    await client.close()
    await fake.close()
  }
})

test('a connection dropped mid-request: the client reconnects, re-opens the handle and sends the read again', async () => {
  const file = Buffer.from('the bytes after the reconnect')
  let dropped = false
  const fake = await startFake(request => {
    if (request.command !== READ || dropped) return false
    dropped = true
    request.connection.socket.destroy()
    return true
  }, file)
  const backend = backendOf(fake)
  try {
    assert.equal((await collect(await backend.read('f'))).toString(), file.toString())
    assert.equal(fake.connections.length, 2, 'a second connection was opened')
    assert.equal(fake.requests.filter(r => r.command === CREATE && r.connection.index === 1).length, 1, 'the file was opened again on it')
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('a connection that drops every time: a bounded number of retries, then REMOTE_UNAVAILABLE', async () => {
  const fake = await startFake(request => {
    if (request.command !== READ) return false
    request.connection.socket.destroy()
    return true
  }, Buffer.alloc(10))
  const backend = backendOf(fake, { retries: 2 })
  try {
    const stream = await backend.read('f')
    await assert.rejects(collect(stream), { code: 'REMOTE_UNAVAILABLE' })
    assert.equal(fake.requests.filter(r => r.command === READ).length, 3, 'the read was sent once and retried twice')
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('a server that never answers: the request times out (REMOTE_UNAVAILABLE, a sentence), even after STATUS_PENDING', async () => {
  const fake = await startFake(request => {
    if (request.command === READ) return true
    if (request.command !== WRITE) return false
    request.connection.reply(request, 0x103, Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 0]), { asyncId: 9n })
    return true
  }, Buffer.alloc(10))
  const client = clientOf(fake, { timeoutMs: 300, pendingTimeoutMs: 600, retries: 0 })
  try {
    const handle = await client.open('f', READ_SPEC)
    await assert.rejects(handle.read(0, 10), (error: Error & { code?: string }) => error.code === 'ETIMEDOUT' && /did not answer READ within/.test(error.message))
    const again = await client.open('f', READ_SPEC)
    await assert.rejects(again.write(Buffer.alloc(4), 0), (error: Error & { code?: string }) => error.code === 'ETIMEDOUT' && /did not answer WRITE within 1 s/.test(error.message))
  } finally {
    await client.close()
    await fake.close()
  }
  const silent = await startFake(request => request.command === READ)
  const backend = backendOf(silent, { timeoutMs: 300, retries: 0 })
  try {
    await assert.rejects(backend.open('f', 'r').then(file => file.read(Buffer.alloc(4), 0)), (error: Error & { code?: string }) => error.code === 'REMOTE_UNAVAILABLE' && /did not answer READ/.test(error.message))
  } finally {
    await backend.close()
    await silent.close()
  }
})

test('a malformed frame or a wrong signature ends the connection with a clear error; the next request works on a new one', async () => {
  let mode: 'garbage' | 'bad-signature' | 'fine' = 'garbage'
  const fake = await startFake(request => {
    if (request.command !== READ || mode === 'fine') return false
    if (mode === 'garbage') request.connection.socket.write(Buffer.concat([Buffer.from([0, 0, 0, 70]), Buffer.alloc(70, 0x41)]))
    else request.connection.reply(request, 0, readAnswer(Buffer.from('forged')), { signature: 'bad' })
    return true
  }, Buffer.from('genuine'))
  const client = clientOf(fake, { retries: 0 })
  try {
    const first = await client.open('f', READ_SPEC)
    await assert.rejects(first.read(0, 7), (error: Error & { code?: string }) => error.code === 'EPROTO' && /not SMB2/.test(error.message))
    mode = 'bad-signature'
    const second = await client.open('f', READ_SPEC)
    await assert.rejects(second.read(0, 7), (error: Error & { code?: string }) => error.code === 'EPROTO' && /signature is wrong/.test(error.message))
    mode = 'fine'
    const third = await client.open('f', READ_SPEC)
    assert.equal((await third.read(0, 7)).toString(), 'genuine')
    await third.close()
  } finally {
    await client.close()
    await fake.close()
  }
})

test('refused credentials are REMOTE_AUTH with a sentence naming the user, never the password', async () => {
  const fake = await startFake()
  const wrong = 'Wrong-Secret-77'
  const backend = backendOf(fake, { password: wrong })
  try {
    const error = await backend.sync().then(() => undefined, (e: unknown) => e)
    assert.equal((error as { code?: string } | undefined)?.code, 'REMOTE_AUTH', `REMOTE_AUTH (${String(error)})`)
    const text = JSON.stringify(serializeError(error))
    assert.match(text, /DOM\\\\user/, 'the message names the user')
    assert.match(text, /STATUS_LOGON_FAILURE/, 'and the status')
    assert.ok(!text.includes(wrong) && !text.includes(PASSWORD), `no password in ${text}`)
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('the challenge parser refuses what is not an NTLM challenge', () => {
  assert.throws(() => parseChallenge(Buffer.from('not a challenge at all, just bytes in a row here')), /no valid NTLM challenge/)
})

test('a share that requires encryption is refused with NOT_SUPPORTED and a sentence saying what to change', async () => {
  const fake = await startFake(request => {
    if (request.command !== 3) return false
    const body = Buffer.alloc(16)
    body.writeUInt16LE(16, 0)
    body.writeUInt8(1, 2)
    body.writeUInt32LE(0x8000, 4) // SMB2_SHAREFLAG_ENCRYPT_DATA
    request.connection.reply(request, 0, body)
    return true
  })
  const backend = backendOf(fake)
  try {
    await assert.rejects(backend.sync(), (error: Error & { code?: string }) => error.code === 'NOT_SUPPORTED' && /requires encryption \(smb encrypt = required\).*set smb encrypt = desired/.test(error.message))
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('a read stream reads ahead a few chunks only: a reader that stops holds the rest back (memory flat)', async () => {
  const file = Buffer.alloc(32 << 20, 1)
  const fake = await startFake(() => false, file)
  const backend = backendOf(fake)
  try {
    const stream = await backend.read('f')
    const iterator = stream[Symbol.asyncIterator]()
    assert.equal(((await iterator.next()).value as Buffer).length, 1 << 20, 'the first chunk is 1 MiB')
    // Let whatever the stream would read ahead arrive; a reader that ignored backpressure would read all 32.
    await new Promise(resolve => setTimeout(resolve, 300))
    const reads = fake.requests.filter(r => r.command === READ).length
    assert.ok(reads <= 8, `${reads} of 32 chunks were read while the reader waited`)
    await iterator.return?.()
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('a server granting fewer credits than a 1 MiB read charges: the client asks for more with an ECHO, never waits forever', async () => {
  const file = Buffer.from(Array.from({ length: 3 << 20 }, (_, i) => (i >> 10) & 0xff))
  // 8 credits an answer, and 16 for each 1 MiB read.
  const fake = await startFake(() => false, file)
  const backend = backendOf(fake)
  try {
    assert.ok((await collect(await backend.read('f'))).equals(file), 'the file reads whole')
    assert.ok(fake.requests.some(r => r.command === 13), 'the client asked for credits with an ECHO')
    assert.deepEqual(fake.violations, [], 'and never went past the window')
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('a NetBIOS keepalive before an answer is skipped', async () => {
  const fake = await startFake(request => {
    if (request.command !== READ) return false
    request.connection.socket.write(Buffer.from([0x85, 0, 0, 0]))
    return false
  }, Buffer.from('after a keepalive'))
  const client = clientOf(fake)
  try {
    const handle = await client.open('f', READ_SPEC)
    assert.equal((await handle.read(0, 100)).toString(), 'after a keepalive')
    await handle.close()
  } finally {
    await client.close()
    await fake.close()
  }
})

test("the backend's label shows XO's NUL as \\0, as `remote list` shows it and a shell types it, and never the password", () => {
  const url = 'smb://backup:S3cret@WORKGROUP\\\\nas:4445\\backups\0site-a\\lifeboat'
  const backend = new SmbBackend(parseRemoteUrl(url) as Extract<ReturnType<typeof parseRemoteUrl>, { type: 'smb' }>, redactRemoteUrl(url))
  assert.equal(backend.label, 'smb://backup:***@WORKGROUP\\\\nas:4445\\backups\\0site-a\\lifeboat')
})
