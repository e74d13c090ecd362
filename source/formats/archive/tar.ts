// A POSIX tar (pax) writer: ustar headers, with a pax extended header for what ustar cannot hold (names past
// 100 bytes, non-ASCII names, sizes past 8 GiB, long link targets), which GNU tar and bsdtar read.
import { entryData, type ArchiveEntry } from './entry.ts'

export const TAR_BLOCK = 512
const TYPE_FLAG = { file: '0', symlink: '2', directory: '5' } as const
const MAX_OCTAL_SIZE = 8 ** 11 - 1

export function tarPadding(size: number): Buffer {
  return Buffer.alloc((TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK)
}

export interface TarHeaderFields {
  name: string
  type: 'file' | 'directory' | 'symlink' | 'pax'
  size: number
  mtime: number
  mode: number
  uid?: number
  gid?: number
  linkname?: string
}

/** One 512-byte ustar header; the caller makes sure the fields fit (or writes a pax header first). */
export function tarHeader(fields: TarHeaderFields): Buffer {
  const header = Buffer.alloc(TAR_BLOCK)
  Buffer.from(fields.name).copy(header, 0, 0, 100)
  writeOctal(header, 100, 8, fields.mode & 0o7777)
  writeOctal(header, 108, 8, fields.uid ?? 0)
  writeOctal(header, 116, 8, fields.gid ?? 0)
  writeOctal(header, 124, 12, Math.min(fields.size, MAX_OCTAL_SIZE))
  writeOctal(header, 136, 12, Math.max(0, Math.floor(fields.mtime)))
  header.write('        ', 148, 'latin1')
  header.write(fields.type === 'pax' ? 'x' : TYPE_FLAG[fields.type], 156, 'latin1')
  if (fields.linkname !== undefined) Buffer.from(fields.linkname).copy(header, 157, 0, 100)
  header.write('ustar\u000000', 257, 'latin1')
  header.write('root', 265, 'latin1')
  header.write('root', 297, 'latin1')
  let sum = 0
  for (const byte of header) sum += byte
  header.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1')
  return header
}

function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\u0000`, offset, 'latin1')
}

/** A pax record: "<length> <key>=<value>\n", the length counting itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`
  let length = Buffer.byteLength(body) + 1
  while (String(length).length + Buffer.byteLength(body) !== length) length++
  return `${length}${body}`
}

const fitsUstar = (text: string) => Buffer.byteLength(text) <= 100 && /^[\x20-\x7e]*$/.test(text)

function headersOf(entry: ArchiveEntry): Buffer[] {
  const name = entry.type === 'directory' ? `${entry.path}/` : entry.path
  const size = entry.type === 'file' ? entry.size : 0
  const records: string[] = []
  if (!fitsUstar(name)) records.push(paxRecord('path', name))
  if (entry.target !== undefined && !fitsUstar(entry.target)) records.push(paxRecord('linkpath', entry.target))
  if (size > MAX_OCTAL_SIZE) records.push(paxRecord('size', String(size)))
  if (entry.mtime % 1000 !== 0) records.push(paxRecord('mtime', (entry.mtime / 1000).toFixed(3)))
  const main = tarHeader({ name, type: entry.type, size, mtime: entry.mtime / 1000, mode: entry.mode, uid: entry.uid, gid: entry.gid, ...(entry.target !== undefined && { linkname: entry.target }) })
  if (records.length === 0) return [main]
  const pax = Buffer.from(records.join(''))
  return [tarHeader({ name: 'PaxHeader', type: 'pax', size: pax.length, mtime: entry.mtime / 1000, mode: 0o644 }), pax, tarPadding(pax.length), main]
}

/** The archive of `entries`, in order; `onData` counts file bytes as they pass. */
export async function* tarStream(entries: AsyncIterable<ArchiveEntry>, onData?: (bytes: number) => void): AsyncGenerator<Buffer> {
  for await (const entry of entries) {
    yield* headersOf(entry)
    if (entry.type !== 'file') continue
    yield* entryData(entry, onData)
    yield tarPadding(entry.size)
  }
  yield Buffer.alloc(2 * TAR_BLOCK)
}
