// The small part of POSIX tar that XVA needs: regular files with short names, 512-byte blocks, two zero
// blocks at the end. Reads what GNU tar, ocaml-tar and XAPI write (ustar, GNU and pax headers).
import { LifeboatError } from '../../util/errors.ts'
import type { ByteReader } from './byte-reader.ts'
import { TAR_BLOCK, tarHeader, tarPadding } from '../archive/index.ts'

export { TAR_BLOCK, tarPadding }
export const TAR_END = Buffer.alloc(2 * TAR_BLOCK)

/** Metadata entries (pax, GNU long names) are tiny; anything bigger is damage. */
const MAX_META_SIZE = 64 * 1024

/** A ustar header for a regular file; names are at most 100 bytes (XVA's are ~30). */
export function renderTarHeader(name: string, size: number, mtime: number): Buffer {
  if (Buffer.byteLength(name) > 100) throw new LifeboatError('XVA_BAD_REF', `The tar entry name "${name}" is longer than 100 bytes; use a shorter disk reference.`)
  return tarHeader({ name, type: 'file', size, mtime, mode: 0o644 })
}

export interface TarEntry {
  name: string
  size: number
}

/** Reads entry headers in order; the caller must read (or skip) each entry's data before asking for the next. */
export class TarReader {
  private dataLeft = 0
  private paddingLeft = 0

  constructor(private readonly input: ByteReader) {}

  /** The next regular file, or undefined at the end of the archive. Directories are passed over. */
  async next(): Promise<TarEntry | undefined> {
    if (this.dataLeft > 0) throw new Error('TarReader.next called before the entry data was read')
    await this.input.read(this.paddingLeft)
    this.paddingLeft = 0
    let override: { name?: string; size?: number } = {}
    for (;;) {
      const block = await this.input.readUpTo(TAR_BLOCK)
      // A stream that stops cleanly between entries, before the end blocks, is still cut short.
      if (block.length < TAR_BLOCK) throw truncatedTar()
      if (isZero(block)) {
        const second = await this.input.readUpTo(TAR_BLOCK)
        if (second.length === 0 || isZero(second)) return undefined
        throw badTar('a lone zero block in the middle of the archive')
      }
      const header = parseHeader(block)
      const name = override.name ?? header.name
      const size = override.size ?? header.size
      switch (header.type) {
        case 'file':
          override = {}
          if (name === '') throw badTar('an entry without a name')
          this.dataLeft = size
          this.paddingLeft = tarPadding(size).length
          return { name, size }
        case 'directory':
          if (size !== 0) throw badTar(`the directory entry "${name.slice(0, 100)}" has data`)
          override = {}
          break
        case 'pax-global':
          await this.skipMeta(size)
          break
        case 'pax':
          override = { ...override, ...parsePax(await this.readMeta(size)) }
          break
        case 'gnu-long-name':
          override = { ...override, name: (await this.readMeta(size)).toString('utf8').replace(/\0.*$/s, '') }
          break
      }
    }
  }

  /** The current entry's data (bounded by the caller, who checked the size). */
  async readData(): Promise<Buffer> {
    const data = await this.input.read(this.dataLeft)
    this.dataLeft = 0
    return data
  }

  private async readMeta(size: number): Promise<Buffer> {
    if (size > MAX_META_SIZE) throw badTar(`an extended header of ${size} bytes`)
    const data = await this.input.read(size)
    await this.input.read(tarPadding(size).length)
    return data
  }

  private async skipMeta(size: number): Promise<void> {
    await this.readMeta(size)
  }
}

type HeaderType = 'file' | 'directory' | 'pax' | 'pax-global' | 'gnu-long-name'

function parseHeader(block: Buffer): { name: string; size: number; type: HeaderType } {
  const stored = parseOctal(block, 148, 8, 'checksum')
  let unsigned = 0
  let signed = 0
  for (let i = 0; i < TAR_BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!
    unsigned += byte
    signed += byte > 127 ? byte - 256 : byte
  }
  if (stored !== unsigned && stored !== signed) throw badTar('a header checksum does not match')
  const magic = block.toString('latin1', 257, 263)
  let name = cString(block, 0, 100)
  // Only POSIX ustar has a name prefix; GNU tar keeps other fields there.
  if (magic === 'ustar\u0000') {
    const prefix = cString(block, 345, 155)
    if (prefix !== '') name = `${prefix}/${name}`
  }
  const size = parseSize(block)
  const flag = String.fromCharCode(block[156]!)
  const type: HeaderType | undefined =
    flag === '0' || flag === '\u0000' || flag === '7' ? 'file'
    : flag === '5' ? 'directory'
    : flag === 'x' ? 'pax'
    : flag === 'g' ? 'pax-global'
    : flag === 'L' ? 'gnu-long-name'
    : undefined
  if (type === undefined) throw badTar(`an entry of unsupported type "${flag.replace(/[^\x20-\x7e]/g, '?')}"`)
  // A regular file whose name ends with "/" is an old-style directory.
  return { name, size, type: type === 'file' && name.endsWith('/') ? 'directory' : type }
}

function parseSize(block: Buffer): number {
  // GNU base-256: high bit set, big-endian binary in the rest of the field.
  if ((block[124]! & 0x80) !== 0) {
    let size = block[124]! & 0x7f
    for (let i = 125; i < 136; i++) {
      size = size * 256 + block[i]!
      if (size > Number.MAX_SAFE_INTEGER) throw badTar('an entry size beyond 2^53')
    }
    return size
  }
  return parseOctal(block, 124, 12, 'size')
}

function parseOctal(block: Buffer, offset: number, length: number, field: string): number {
  const text = block.toString('latin1', offset, offset + length).replace(/[\0 ]+$/, '').replace(/^ +/, '')
  if (!/^[0-7]*$/.test(text)) throw badTar(`the ${field} field is not an octal number`)
  return text === '' ? 0 : parseInt(text, 8)
}

function cString(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length)
  const end = field.indexOf(0)
  return field.toString('utf8', 0, end < 0 ? length : end)
}

/** pax records are "<length> <key>=<value>\n"; only path and size matter here. */
function parsePax(data: Buffer): { name?: string; size?: number } {
  const out: { name?: string; size?: number } = {}
  let position = 0
  while (position < data.length) {
    const space = data.indexOf(0x20, position)
    const length = space < 0 ? NaN : Number(data.toString('latin1', position, space))
    if (!Number.isSafeInteger(length) || length <= space - position || position + length > data.length) throw badTar('a malformed pax record')
    const record = data.toString('utf8', space + 1, position + length - 1)
    const equals = record.indexOf('=')
    if (equals < 0) throw badTar('a malformed pax record')
    const key = record.slice(0, equals)
    const value = record.slice(equals + 1)
    if (key === 'path') out.name = value
    else if (key === 'size') {
      if (!/^\d{1,15}$/.test(value)) throw badTar('a malformed pax size')
      out.size = Number(value)
    }
    position += length
  }
  return out
}

function isZero(block: Buffer): boolean {
  for (const byte of block) if (byte !== 0) return false
  return true
}

export function badTar(detail: string): LifeboatError {
  return new LifeboatError('XVA_BAD_TAR', `The XVA is not a valid tar archive (${detail}); the file is damaged or is not an XVA.`)
}

function truncatedTar(): LifeboatError {
  return new LifeboatError('XVA_TRUNCATED', 'The XVA ends in the middle of the archive (no end-of-archive blocks): the export was cut short. Export it again.')
}
