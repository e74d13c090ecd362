// NTLMSSP with NTLMv2 responses only ([MS-NLMP]): Samba's default (`ntlm auth = ntlmv2-only`) refuses NTLMv1,
// and so do we — no LM or NTLMv1 response is ever computed. MD4 and RC4 come from ./crypto.ts (not OpenSSL).
import { randomBytes } from 'node:crypto'
import { hmacMd5, md4, rc4 } from './crypto.ts'

const SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1')

export const Flags = {
  UNICODE: 0x1,
  REQUEST_TARGET: 0x4,
  SIGN: 0x10,
  NTLM: 0x200,
  ALWAYS_SIGN: 0x8000,
  EXTENDED_SESSIONSECURITY: 0x80000,
  TARGET_INFO: 0x800000,
  VERSION: 0x2000000,
  N128: 0x20000000,
  KEY_EXCH: 0x40000000,
  N56: 0x80000000,
} as const

const CLIENT_FLAGS =
  Flags.UNICODE | Flags.REQUEST_TARGET | Flags.SIGN | Flags.NTLM | Flags.ALWAYS_SIGN | Flags.EXTENDED_SESSIONSECURITY | Flags.TARGET_INFO | Flags.VERSION | Flags.N128 | Flags.KEY_EXCH | Flags.N56

// Windows 10 build 19041, NTLM revision 15: the version a client announces (informational only).
const VERSION = Buffer.from([10, 0, 0x61, 0x4a, 0, 0, 0, 15])
const AV_EOL = 0
const AV_TIMESTAMP = 7

export interface Credentials {
  username: string
  password: string
  domain: string
}

export interface Challenge {
  flags: number
  serverChallenge: Buffer
  targetInfo: Buffer
}

export class NtlmError extends Error {}

export function negotiateMessage(): Buffer {
  const message = Buffer.alloc(40)
  SIGNATURE.copy(message, 0)
  message.writeUInt32LE(1, 8)
  message.writeUInt32LE(CLIENT_FLAGS >>> 0, 12)
  // Domain and workstation fields empty (offset at the end of the message).
  message.writeUInt32LE(40, 20)
  message.writeUInt32LE(40, 28)
  VERSION.copy(message, 32)
  return message
}

export function parseChallenge(message: Buffer): Challenge {
  if (message.length < 48 || !message.subarray(0, 8).equals(SIGNATURE) || message.readUInt32LE(8) !== 2) throw new NtlmError('the server sent no valid NTLM challenge')
  const flags = message.readUInt32LE(20)
  const serverChallenge = Buffer.from(message.subarray(24, 32))
  const infoLength = message.readUInt16LE(40)
  const infoOffset = message.readUInt32LE(44)
  if (infoOffset + infoLength > message.length) throw new NtlmError('the NTLM challenge is truncated')
  return { flags, serverChallenge, targetInfo: Buffer.from(message.subarray(infoOffset, infoOffset + infoLength)) }
}

/** NTOWFv2: HMAC-MD5 keyed with the NT hash (MD4 of the UTF-16 password) over the upper-cased user and the domain. */
export function ntowfv2(credentials: Credentials): Buffer {
  const ntHash = md4(Buffer.from(credentials.password, 'utf16le'))
  return hmacMd5(ntHash, Buffer.from(credentials.username.toUpperCase() + credentials.domain, 'utf16le'))
}

/** The NTLMv2 response and its session base key ([MS-NLMP] §3.3.2). */
export function ntlmv2Response(responseKey: Buffer, serverChallenge: Buffer, clientChallenge: Buffer, time: Buffer, targetInfo: Buffer) {
  const temp = Buffer.concat([Buffer.from([1, 1, 0, 0, 0, 0, 0, 0]), time, clientChallenge, Buffer.alloc(4), targetInfo, Buffer.alloc(4)])
  const ntProof = hmacMd5(responseKey, serverChallenge, temp)
  return { ntResponse: Buffer.concat([ntProof, temp]), sessionBaseKey: hmacMd5(responseKey, ntProof) }
}

function avPair(targetInfo: Buffer, id: number): Buffer | undefined {
  for (let offset = 0; offset + 4 <= targetInfo.length; ) {
    const type = targetInfo.readUInt16LE(offset)
    const length = targetInfo.readUInt16LE(offset + 2)
    if (type === AV_EOL) return undefined
    if (type === id) return targetInfo.subarray(offset + 4, offset + 4 + length)
    offset += 4 + length
  }
  return undefined
}

function fileTimeNow(): Buffer {
  const time = Buffer.alloc(8)
  time.writeBigUInt64LE((BigInt(Date.now()) + 11_644_473_600_000n) * 10_000n)
  return time
}

export interface Authentication {
  message: Buffer
  /** The key SMB signs with: the exported session key. */
  sessionKey: Buffer
}

/** The AUTHENTICATE message answering a challenge; `random` fixes the client challenge and exported key (tests). */
export function authenticateMessage(credentials: Credentials, challenge: Challenge, random: { clientChallenge?: Buffer; exportedSessionKey?: Buffer; time?: Buffer } = {}): Authentication {
  const responseKey = ntowfv2(credentials)
  const clientChallenge = random.clientChallenge ?? randomBytes(8)
  const timestamp = avPair(challenge.targetInfo, AV_TIMESTAMP)
  const time = random.time ?? (timestamp !== undefined ? Buffer.from(timestamp) : fileTimeNow())
  const { ntResponse, sessionBaseKey } = ntlmv2Response(responseKey, challenge.serverChallenge, clientChallenge, time, challenge.targetInfo)
  // With a server timestamp the LMv2 response is left empty (Z(24)), as [MS-NLMP] §3.1.5.1.2 says.
  const lmResponse = timestamp !== undefined ? Buffer.alloc(24) : Buffer.concat([hmacMd5(responseKey, challenge.serverChallenge, clientChallenge), clientChallenge])
  const flags = (CLIENT_FLAGS & challenge.flags) >>> 0
  let sessionKey: Buffer = sessionBaseKey
  let encryptedKey: Buffer = Buffer.alloc(0)
  if ((flags & Flags.KEY_EXCH) !== 0) {
    sessionKey = random.exportedSessionKey ?? randomBytes(16)
    encryptedKey = rc4(sessionBaseKey, sessionKey)
  }
  const fields = [lmResponse, ntResponse, Buffer.from(credentials.domain, 'utf16le'), Buffer.from(credentials.username, 'utf16le'), Buffer.alloc(0), encryptedKey]
  const header = Buffer.alloc(88)
  SIGNATURE.copy(header, 0)
  header.writeUInt32LE(3, 8)
  let offset = header.length
  fields.forEach((field, i) => {
    header.writeUInt16LE(field.length, 12 + i * 8)
    header.writeUInt16LE(field.length, 14 + i * 8)
    header.writeUInt32LE(offset, 16 + i * 8)
    offset += field.length
  })
  header.writeUInt32LE(flags, 60)
  VERSION.copy(header, 64)
  return { message: Buffer.concat([header, ...fields]), sessionKey }
}
