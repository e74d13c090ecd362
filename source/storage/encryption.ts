// Encryption at rest exactly as Xen Orchestra's @xen-orchestra/fs does it, as a decorator on a Backend, so an
// encrypted remote moves between XO and Lifeboat both ways: same files, same algorithms, same object layout.
//
// XO's layout (its _encryptor.js): every object is nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes), ONE AEAD
// over the whole object, keyed by the UTF-8 bytes of the URL's `encryptionKey` (32 characters), no chunking,
// no associated data (so objects can be renamed). What that framing allows:
// - streams stay streams: both ciphers are stream ciphers, ciphertext is produced and consumed chunk by chunk,
//   only the last 16 bytes are held back (they may be the tag); memory is flat whatever the object's size;
// - no padding, so the plaintext size is the stored size minus 28 (XO's getSize refuses on an encrypted
//   remote; Lifeboat can tell it exactly);
// - the tag authenticates the whole object only, so a ranged read decrypts from the start and reads on to the
//   end to check the tag (it costs a whole read of the object; with VhdDirectory, which encryption requires,
//   objects are blocks of 2 MiB); there is no random write at all (no open 'r+').
//
// Files at the remote's root (XO's sync): `encryption.json` is plaintext ({"algorithm": …}, never the key);
// `metadata.json` is encrypted ({"random": uuid}) and proves the key. Every other object is encrypted.
import { createCipheriv, createDecipheriv, randomBytes, randomUUID, type CipherGCM, type DecipherGCM } from 'node:crypto'
import { Readable } from 'node:stream'
import { LifeboatError } from '../util/errors.ts'
import { terminalSafeLine } from '../util/terminal-text.ts'
import { normalizePath, type Backend, type EntryStat, type WriteData, type WriteOptions } from './backend.ts'
import type { RemoteUrl } from './url.ts'

/** Plaintext: names the algorithm, so a reader knows how to decrypt. */
export const ENCRYPTION_FILE = 'encryption.json'
/** Encrypted `{"random": uuid}`: decrypts only with the remote's key. */
export const KEY_CHECK_FILE = 'metadata.json'

export const ENCRYPTION_ALGORITHMS = ['chacha20-poly1305', 'aes-256-gcm'] as const
export type EncryptionAlgorithm = (typeof ENCRYPTION_ALGORITHMS)[number]
/** XO's default since 5.103 (aes-256-gcm remotes made before stay aes-256-gcm, read and written as such). */
export const DEFAULT_ENCRYPTION_ALGORITHM: EncryptionAlgorithm = 'chacha20-poly1305'

const NONCE_BYTES = 12
const TAG_BYTES = 16
/** Bytes an encrypted object has beyond its plaintext. */
export const ENCRYPTION_OVERHEAD = NONCE_BYTES + TAG_BYTES
// XO's key: Buffer.from(key) must be 32 bytes and key.length 32, so 32 ASCII characters.
const KEY_FORM = /^[\x00-\x7f]{32}$/
// Root entries that do not make a remote "not empty" (XO's #canWriteMetadata).
const isHousekeeping = (name: string) => name.startsWith('.') || name === ENCRYPTION_FILE || name === KEY_CHECK_FILE
// A root file larger than this is not one of XO's small JSON files.
const MAX_ROOT_FILE_BYTES = 64 * 1024

/**
 * The encryption key a remote URL asks for, or undefined when it asks for none. Refuses (REMOTE_BAD_URL) what
 * XO refuses or cannot use: encryptionKey without VhdDirectory (file, NFS and SMB need useVhdDirectory=true;
 * S3 and Azure always use it), or a key that is not 32 ASCII characters. The key is never in the message.
 */
export function remoteEncryptionKey(remote: RemoteUrl): string | undefined {
  if (!('encryptionKey' in remote.options)) return undefined
  const key = remote.options.encryptionKey
  if (typeof key !== 'string' || !KEY_FORM.test(key)) {
    throw new LifeboatError('REMOTE_BAD_URL', 'The remote URL\'s encryptionKey is not usable: it must be exactly 32 ASCII characters, JSON-quoted in the URL (encryptionKey="…"), as Xen Orchestra requires.')
  }
  const vhdDirectory = remote.type === 's3' || remote.type === 'azure' || remote.type === 'azurite' || remote.options.useVhdDirectory === true
  if (!vhdDirectory) {
    throw new LifeboatError('REMOTE_BAD_URL', 'An encrypted remote must store disks as VHD directories: add useVhdDirectory=true to the URL (Xen Orchestra refuses encryptionKey without it, and an encrypted VHD file cannot be read in parts).')
  }
  return key
}

/**
 * The backend encrypting every object on write and decrypting it on read, as XO does; sync() checks the
 * key (or makes an empty remote encrypted). Without a key, a pass-through whose sync() refuses a remote that
 * is encrypted. Compose it right above the bare backend, below retries and limits.
 */
export function withEncryption(inner: Backend, key: string | undefined): Backend {
  if (key === undefined) return forward(inner, { sync: () => refuseEncryptedRemote(inner) })
  if (!KEY_FORM.test(key)) throw new LifeboatError('REMOTE_BAD_URL', 'The encryption key must be exactly 32 ASCII characters, as Xen Orchestra requires.')
  return new EncryptedBackend(inner, Buffer.from(key))
}

class EncryptedBackend implements Backend {
  readonly #inner: Backend
  // In a private field: never printed with the object, never serialised.
  readonly #key: Buffer
  #algorithm: EncryptionAlgorithm | undefined
  readonly label: string
  readonly capabilities: Backend['capabilities']
  rename?: Backend['rename']
  mkdir?: Backend['mkdir']
  rmdir?: Backend['rmdir']
  rmtree?: Backend['rmtree']
  abortStaleUploads?: Backend['abortStaleUploads']
  lock?: Backend['lock']

  constructor(inner: Backend, key: Buffer) {
    this.#inner = inner
    this.#key = key
    this.label = inner.label
    const { maxObjectSize } = inner.capabilities
    // No random write: a byte changed in place would need the whole object re-encrypted and a new tag.
    this.capabilities = { ...inner.capabilities, randomWrite: false, ...(maxObjectSize !== undefined && { maxObjectSize: maxObjectSize - ENCRYPTION_OVERHEAD }) }
    // Names, folders and locks are not encrypted (XO's neither): these go straight through.
    forwardNative(inner, this, PASSED_THROUGH)
  }

  async sync(): Promise<void> {
    await this.#inner.sync()
    const declared = await readEncryptionFile(this.#inner)
    const algorithm = declared ?? DEFAULT_ENCRYPTION_ALGORITHM
    const check = isSupported(algorithm) ? await this.#checkKey(algorithm) : 'unsupported'
    if (check === 'match') {
      this.#algorithm = algorithm as EncryptionAlgorithm
      return
    }
    // XO: an empty remote whose files do not match the URL takes the URL's settings (a key changed before any backup).
    if (await isEmpty(this.#inner)) return this.#initialise()
    if (declared === undefined || declared === 'none') {
      throw new LifeboatError('REMOTE_NOT_EMPTY', `The remote ${this.label} already holds unencrypted files: Lifeboat (like Xen Orchestra) only makes an empty remote encrypted. Use an empty folder or bucket for the encrypted remote, or remove encryptionKey from the URL to use this one unencrypted.`)
    }
    if (check === 'unsupported') {
      throw new LifeboatError('REMOTE_BAD_ENCRYPTION', `The remote ${this.label} is encrypted with ${terminalSafeLine(declared)} (its encryption.json), which Lifeboat cannot read: only chacha20-poly1305 and aes-256-gcm are supported.`)
    }
    if (check === 'missing') {
      throw new LifeboatError('REMOTE_NOT_EMPTY', `The remote ${this.label} has an encryption.json but no metadata.json to check the key against, and it holds other files: Lifeboat cannot tell whether the key is right. Use an empty folder or bucket for an encrypted remote.`)
    }
    throw new LifeboatError('REMOTE_BAD_KEY', `The encryption key given for the remote ${this.label} does not match the key this remote was encrypted with (its metadata.json does not decrypt with it); give the remote's own key. Nothing was written to the remote.`)
  }

  close(): Promise<void> {
    return this.#inner.close()
  }

  info(): ReturnType<Backend['info']> {
    return this.#inner.info()
  }

  list(dir: string, options?: { cursor?: string; limit?: number }): ReturnType<Backend['list']> {
    return this.#inner.list(dir, options)
  }

  delete(paths: string[]): Promise<void> {
    return this.#inner.delete(paths)
  }

  async stat(path: string): Promise<EntryStat> {
    const stat = await this.#inner.stat(path)
    if (stat.isDirectory || isPlaintext(path)) return stat
    if (stat.size < ENCRYPTION_OVERHEAD) throw this.#undecryptable(path)
    return { ...stat, size: stat.size - ENCRYPTION_OVERHEAD }
  }

  async read(path: string, range?: { start: number; end?: number }): Promise<Readable> {
    if (isPlaintext(path)) return this.#inner.read(path, range)
    const algorithm = this.#ready()
    const stored = await this.#inner.read(path)
    return Readable.from(decrypt(algorithm, this.#key, stored, range, () => this.#undecryptable(path)), { objectMode: false })
  }

  async write(path: string, data: WriteData, options: WriteOptions = {}): Promise<number> {
    if (isPlaintext(path)) return this.#inner.write(path, data, options)
    const algorithm = this.#ready()
    const sealed = typeof data === 'string' || Buffer.isBuffer(data) ? encryptBuffer(algorithm, this.#key, Buffer.isBuffer(data) ? data : Buffer.from(data)) : encrypt(algorithm, this.#key, data)
    const length = options.length === undefined ? undefined : options.length + ENCRYPTION_OVERHEAD
    const size = await this.#inner.write(path, sealed, { ...options, ...(length !== undefined && { length }) })
    return size - ENCRYPTION_OVERHEAD
  }

  #ready(): EncryptionAlgorithm {
    if (this.#algorithm === undefined) throw new LifeboatError('REMOTE_NOT_SYNCED', `The encrypted remote ${this.label} was used before sync(); this is a bug in Lifeboat, please report it.`)
    return this.#algorithm
  }

  /** Whether metadata.json decrypts to JSON with this key; 'missing' when there is none. */
  async #checkKey(algorithm: EncryptionAlgorithm): Promise<'match' | 'mismatch' | 'missing'> {
    let stored: Buffer
    try {
      stored = await readSmall(this.#inner, KEY_CHECK_FILE)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing'
      throw error
    }
    try {
      JSON.parse(decryptBuffer(algorithm, this.#key, stored).toString())
      return 'match'
    } catch {
      return 'mismatch'
    }
  }

  /** XO's #createMetadata: the algorithm in plaintext, then the key check encrypted with it. */
  async #initialise(): Promise<void> {
    const algorithm = DEFAULT_ENCRYPTION_ALGORITHM
    await this.#inner.write(ENCRYPTION_FILE, JSON.stringify({ algorithm }))
    await this.#inner.write(KEY_CHECK_FILE, encryptBuffer(algorithm, this.#key, Buffer.from(JSON.stringify({ random: randomUUID() }))))
    this.#algorithm = algorithm
  }

  #undecryptable(path: string): LifeboatError {
    return new LifeboatError('REMOTE_DECRYPT_FAILED', `${terminalSafeLine(path)} on the remote ${this.label} does not decrypt with the remote's key: it was damaged or changed after it was written. Restore from another copy of this backup.`, { data: { path } })
  }
}

/** Without a key: XO reads an encrypted remote's objects as garbage, Lifeboat refuses to start. */
async function refuseEncryptedRemote(inner: Backend): Promise<void> {
  await inner.sync()
  const declared = await readEncryptionFile(inner)
  if (declared !== undefined && declared !== 'none') {
    throw new LifeboatError('REMOTE_ENCRYPTED', `The remote ${inner.label} is encrypted (${terminalSafeLine(declared)}, its encryption.json says): add its key to the URL (encryptionKey="…" with useVhdDirectory=true) to use it.`)
  }
}

/** The algorithm encryption.json names, or undefined when there is no such file. */
async function readEncryptionFile(inner: Backend): Promise<string | undefined> {
  let text: string
  try {
    text = (await readSmall(inner, ENCRYPTION_FILE)).toString()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  let algorithm: unknown
  try {
    algorithm = (JSON.parse(text) as { algorithm?: unknown } | null)?.algorithm
  } catch {
    algorithm = undefined
  }
  if (typeof algorithm !== 'string') throw new LifeboatError('REMOTE_BAD_ENCRYPTION', `The remote ${inner.label} has an encryption.json that does not name an algorithm ({"algorithm": "chacha20-poly1305"}); repair it (it is plaintext) or use another remote.`)
  return algorithm
}

async function readSmall(inner: Backend, path: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of await inner.read(path, { start: 0, end: MAX_ROOT_FILE_BYTES })) {
    chunks.push(chunk as Buffer)
    size += (chunk as Buffer).length
  }
  if (size > MAX_ROOT_FILE_BYTES) throw new LifeboatError('REMOTE_BAD_ENCRYPTION', `The remote ${inner.label}'s ${path} is larger than ${MAX_ROOT_FILE_BYTES} bytes: it is not the small JSON file Xen Orchestra writes; move it away.`)
  return Buffer.concat(chunks)
}

/** XO's #canWriteMetadata: nothing at the root but dot-files and the two encryption files. */
async function isEmpty(inner: Backend): Promise<boolean> {
  let cursor: string | undefined
  do {
    const page = await inner.list('', cursor === undefined ? {} : { cursor })
    if (page.entries.some(entry => !isHousekeeping(entry.name))) return false
    cursor = page.next
  } while (cursor !== undefined)
  return true
}

function isSupported(algorithm: string): algorithm is EncryptionAlgorithm {
  return (ENCRYPTION_ALGORITHMS as readonly string[]).includes(algorithm)
}

function isPlaintext(path: string): boolean {
  return normalizePath(path) === ENCRYPTION_FILE
}

function cipher(algorithm: EncryptionAlgorithm, key: Buffer, nonce: Buffer): CipherGCM {
  return createCipheriv(algorithm as 'aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
}

function decipher(algorithm: EncryptionAlgorithm, key: Buffer, nonce: Buffer): DecipherGCM {
  return createDecipheriv(algorithm as 'aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
}

/** XO's encryptData. */
export function encryptBuffer(algorithm: EncryptionAlgorithm, key: Buffer, plaintext: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES)
  const sealing = cipher(algorithm, key, nonce)
  const body = sealing.update(plaintext)
  const rest = sealing.final()
  return Buffer.concat([nonce, body, rest, sealing.getAuthTag()])
}

/** XO's decryptData; throws when the tag does not match. */
export function decryptBuffer(algorithm: EncryptionAlgorithm, key: Buffer, stored: Buffer): Buffer {
  if (stored.length < ENCRYPTION_OVERHEAD) throw new Error('too short to be an encrypted object')
  const opening = decipher(algorithm, key, stored.subarray(0, NONCE_BYTES))
  opening.setAuthTag(stored.subarray(stored.length - TAG_BYTES))
  return Buffer.concat([opening.update(stored.subarray(NONCE_BYTES, stored.length - TAG_BYTES)), opening.final()])
}

/** XO's encryptStream: the nonce, the ciphertext as the plaintext comes, the tag last. */
async function* encrypt(algorithm: EncryptionAlgorithm, key: Buffer, source: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<Buffer> {
  const nonce = randomBytes(NONCE_BYTES)
  const sealing = cipher(algorithm, key, nonce)
  yield nonce
  for await (const chunk of source) {
    const out = sealing.update(chunk)
    if (out.length > 0) yield out
  }
  const rest = sealing.final()
  if (rest.length > 0) yield rest
  yield sealing.getAuthTag()
}

/**
 * XO's decryptStream, the last 16 bytes held back as the possible tag; with a range, only the plaintext from
 * start to end (inclusive) is yielded, and the rest is still decrypted to check the tag.
 */
async function* decrypt(algorithm: EncryptionAlgorithm, key: Buffer, stored: AsyncIterable<Buffer | Uint8Array>, range: { start: number; end?: number } | undefined, undecryptable: () => Error): AsyncGenerator<Buffer> {
  const start = range?.start ?? 0
  const end = range?.end === undefined ? Infinity : range.end + 1
  let position = 0
  let nonce = Buffer.alloc(0)
  let opening: DecipherGCM | undefined
  let held = Buffer.alloc(0)
  // The plaintext's bytes in [start, end), positioned.
  const slice = (plain: Buffer): Buffer | undefined => {
    const from = position
    position += plain.length
    if (position <= start || from >= end) return undefined
    return plain.subarray(Math.max(0, start - from), Math.min(plain.length, end - from))
  }
  for await (const raw of stored) {
    let chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw)
    if (opening === undefined) {
      nonce = Buffer.concat([nonce, chunk])
      if (nonce.length < NONCE_BYTES) continue
      opening = decipher(algorithm, key, nonce.subarray(0, NONCE_BYTES))
      chunk = nonce.subarray(NONCE_BYTES)
    }
    // The last 16 bytes seen may be the tag: hold them back until more comes (XO's fast path: no concat of big chunks).
    let parts: Buffer[]
    if (chunk.length >= TAG_BYTES) {
      parts = [held, chunk.subarray(0, chunk.length - TAG_BYTES)]
      held = Buffer.from(chunk.subarray(chunk.length - TAG_BYTES))
    } else {
      const joined = Buffer.concat([held, chunk])
      const cut = Math.max(0, joined.length - TAG_BYTES)
      parts = [joined.subarray(0, cut)]
      held = joined.subarray(cut)
    }
    for (const part of parts) {
      if (part.length === 0) continue
      const out = slice(opening.update(part))
      if (out !== undefined && out.length > 0) yield out
    }
  }
  if (opening === undefined || held.length < TAG_BYTES) throw undecryptable()
  opening.setAuthTag(held)
  let rest: Buffer
  try {
    rest = opening.final()
  } catch {
    throw undecryptable()
  }
  const out = slice(rest)
  if (out !== undefined && out.length > 0) yield out
}

/** A pass-through backend but for the given operations. */
function forward(inner: Backend, overrides: Pick<Backend, 'sync'>): Backend {
  const backend: Backend = {
    label: inner.label,
    capabilities: inner.capabilities,
    sync: overrides.sync,
    close: () => inner.close(),
    info: () => inner.info(),
    list: (dir, options) => inner.list(dir, options),
    stat: path => inner.stat(path),
    read: (path, range) => inner.read(path, range),
    write: (path, data, options) => inner.write(path, data, options),
    delete: paths => inner.delete(paths),
  }
  forwardNative(inner, backend, [...PASSED_THROUGH, 'open'])
  return backend
}

// The optional native operations an encrypted backend keeps as they are (all but open).
const PASSED_THROUGH = ['rename', 'mkdir', 'rmdir', 'rmtree', 'lock', 'abortStaleUploads'] as const
type NativeOperation = (typeof PASSED_THROUGH)[number] | 'open'

function forwardNative(inner: Backend, target: Backend, names: readonly NativeOperation[]): void {
  for (const name of names) {
    const operation = inner[name]
    if (operation !== undefined) Object.assign(target, { [name]: operation.bind(inner) })
  }
}
