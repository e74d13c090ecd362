// Partition tables read from a disk's first sectors: MBR (with logical partitions in an extended one) and
// GPT (the primary header; a damaged one falls back to the backup at the disk's end). A disk with neither is
// one volume.
import { LifeboatError } from '../../util/errors.ts'
import type { DiskReader } from './reader.ts'

export const SECTOR = 512

export interface Partition {
  /** 1-based, as Linux numbers them (logical MBR partitions from 5). */
  number: number
  offset: number
  size: number
  /** '0x83' for MBR, the type GUID (lower case) for GPT. */
  type: string
  /** What the type means to an administrator ("Linux", "LVM", "Microsoft basic data"…). */
  kind: string
  /** The GPT partition name, when set. */
  name?: string
}

export interface PartitionTable {
  scheme: 'mbr' | 'gpt' | 'none'
  partitions: Partition[]
}

const MBR_TYPES: Record<number, string> = {
  0x07: 'NTFS/exFAT', 0x0b: 'FAT32', 0x0c: 'FAT32', 0x0e: 'FAT16', 0x27: 'Windows recovery', 0x82: 'Linux swap', 0x83: 'Linux', 0x8e: 'LVM',
  0xfd: 'Linux RAID', 0xef: 'EFI system',
}
const EXTENDED = new Set([0x05, 0x0f, 0x85])
const GPT_TYPES: Record<string, string> = {
  '0fc63daf-8483-4772-8e79-3d69d8477de4': 'Linux',
  'e6d6d379-f507-44c2-a23c-238f2a3df928': 'LVM',
  '0657fd6d-a4ab-43c4-84e5-0933c84b4f4f': 'Linux swap',
  'ebd0a0a2-b9e5-4433-87c0-68b6b72699c7': 'Microsoft basic data',
  'e3c9e316-0b5c-4db8-817d-f92df00215ae': 'Microsoft reserved',
  'de94bba4-06d1-4d40-a16a-bfd50179d6ac': 'Windows recovery',
  'c12a7328-f81f-11d2-ba4b-00a0c93ec93b': 'EFI system',
  '21686148-6449-6e6f-744e-656564454649': 'BIOS boot',
  'a19d880f-05fc-4d3b-a006-743f0f84911e': 'Linux RAID',
  '4f68bce3-e8cd-4db1-96e7-fbcaf984b709': 'Linux root (x86-64)',
  '933ac7e1-2eb4-4f13-b844-0e14e2aef915': 'Linux home',
}
const MAX_LOGICAL = 128
const MAX_GPT_ENTRIES = 1024

/** The disk's partitions, in table order; `none` when it has no table (the whole disk is then one file system or PV). */
export async function readPartitionTable(disk: DiskReader): Promise<PartitionTable> {
  if (disk.size < SECTOR * 2) return { scheme: 'none', partitions: [] }
  const mbr = await disk.read(0, SECTOR)
  if (mbr.readUInt16LE(510) !== 0xaa55) return { scheme: 'none', partitions: [] }
  const entries = [0, 1, 2, 3].map(k => mbrEntry(mbr, k))
  if (entries.some(entry => entry.type === 0xee)) return { scheme: 'gpt', partitions: await readGpt(disk) }
  // A boot sector (FAT, NTFS) also ends with 55AA: its "entries" are code, so a table must be coherent.
  const used = entries.filter(entry => entry.type !== 0 && entry.count > 0)
  if (used.length === 0 || used.some(entry => (entry.status & 0x7f) !== 0 || (entry.start + entry.count) * SECTOR > disk.size)) return { scheme: 'none', partitions: [] }
  const partitions: Partition[] = []
  for (const [k, entry] of entries.entries()) {
    if (entry.type === 0 || entry.count === 0) continue
    if (EXTENDED.has(entry.type)) partitions.push(...(await readLogical(disk, entry.start)))
    else partitions.push(mbrPartition(k + 1, entry.type, entry.start, entry.count))
  }
  return { scheme: 'mbr', partitions: partitions.sort((a, b) => a.number - b.number) }
}

function mbrEntry(sector: Buffer, k: number): { status: number; type: number; start: number; count: number } {
  const at = 446 + k * 16
  return { status: sector[at]!, type: sector[at + 4]!, start: sector.readUInt32LE(at + 8), count: sector.readUInt32LE(at + 12) }
}

function mbrPartition(number: number, type: number, start: number, count: number): Partition {
  return { number, offset: start * SECTOR, size: count * SECTOR, type: `0x${type.toString(16).padStart(2, '0')}`, kind: MBR_TYPES[type] ?? 'unknown' }
}

/** The chain of extended boot records: each holds one logical partition and the link to the next. */
async function readLogical(disk: DiskReader, extendedStart: number): Promise<Partition[]> {
  const out: Partition[] = []
  const seen = new Set<number>()
  for (let ebr = extendedStart; out.length < MAX_LOGICAL; ) {
    if (seen.has(ebr) || (ebr + 1) * SECTOR > disk.size) break
    seen.add(ebr)
    const sector = await disk.read(ebr * SECTOR, SECTOR)
    if (sector.readUInt16LE(510) !== 0xaa55) break
    const logical = mbrEntry(sector, 0)
    if (logical.type !== 0 && logical.count > 0) out.push(mbrPartition(5 + out.length, logical.type, ebr + logical.start, logical.count))
    const next = mbrEntry(sector, 1)
    if (!EXTENDED.has(next.type) || next.start === 0) break
    ebr = extendedStart + next.start
  }
  return out
}

async function readGpt(disk: DiskReader): Promise<Partition[]> {
  let header = await disk.read(SECTOR, SECTOR)
  if (header.toString('latin1', 0, 8) !== 'EFI PART') {
    const backup = Math.floor(disk.size / SECTOR) - 1
    header = await disk.read(backup * SECTOR, SECTOR)
    if (header.toString('latin1', 0, 8) !== 'EFI PART') {
      throw new LifeboatError('DISK_BAD_GPT', 'The disk has a protective MBR but neither GPT header (sector 1, last sector) is readable; its partition table is damaged.')
    }
  }
  const entriesAt = Number(header.readBigUInt64LE(72))
  const count = header.readUInt32LE(80)
  const entrySize = header.readUInt32LE(84)
  if (entrySize < 128 || entrySize > 4096 || count > MAX_GPT_ENTRIES || (entriesAt * SECTOR + count * entrySize) > disk.size) {
    throw new LifeboatError('DISK_BAD_GPT', `The GPT header describes ${count} entries of ${entrySize} bytes at sector ${entriesAt}, which the disk cannot hold; its partition table is damaged.`)
  }
  const table = await disk.read(entriesAt * SECTOR, count * entrySize)
  const out: Partition[] = []
  for (let k = 0; k < count; k++) {
    const entry = table.subarray(k * entrySize, (k + 1) * entrySize)
    const type = guid(entry.subarray(0, 16))
    if (type === '00000000-0000-0000-0000-000000000000') continue
    const first = Number(entry.readBigUInt64LE(32))
    const last = Number(entry.readBigUInt64LE(40))
    if (last < first || (last + 1) * SECTOR > disk.size) continue
    const name = entry.subarray(56, 128).toString('utf16le').replace(/\0.*$/s, '')
    out.push({ number: k + 1, offset: first * SECTOR, size: (last - first + 1) * SECTOR, type, kind: GPT_TYPES[type] ?? 'unknown', ...(name !== '' && { name }) })
  }
  return out
}

/** A GUID as written: its first three fields little-endian. */
function guid(bytes: Buffer): string {
  const hex = (b: Buffer) => b.toString('hex')
  const le = (start: number, end: number) => hex(Buffer.from(bytes.subarray(start, end)).reverse())
  return `${le(0, 4)}-${le(4, 6)}-${le(6, 8)}-${hex(bytes.subarray(8, 10))}-${hex(bytes.subarray(10, 16))}`
}
