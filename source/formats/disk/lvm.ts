// LVM2 read without the kernel: the physical-volume label (one of the first four sectors), its metadata area,
// the newest text metadata in it, and each logical volume as a disk of its own, mapped through its linear and
// striped segments onto the physical volumes.
import { LifeboatError } from '../../util/errors.ts'
import { SECTOR } from './partitions.ts'
import type { DiskReader } from './reader.ts'

const LABEL = 'LABELONE'
const LABEL_TYPE = 'LVM2 001'
const MDA_MAGIC = ' LVM2 x[5A%r0N*>'
const MAX_METADATA = 16 * 1024 * 1024

export interface PhysicalVolume {
  /** The PV uuid as LVM prints it (without dashes here). */
  uuid: string
  /** The volume group's text metadata, newest copy; undefined for a PV without a metadata area. */
  metadata: string | undefined
}

/** Reads the LVM2 label of a partition (or a whole disk); undefined when there is none. */
export async function readPhysicalVolume(disk: DiskReader): Promise<PhysicalVolume | undefined> {
  if (disk.size < 4 * SECTOR) return undefined
  const head = await disk.read(0, 4 * SECTOR)
  for (let sector = 0; sector < 4; sector++) {
    const label = head.subarray(sector * SECTOR, (sector + 1) * SECTOR)
    if (label.toString('latin1', 0, 8) !== LABEL || label.toString('latin1', 24, 32) !== LABEL_TYPE) continue
    const pvHeader = label.subarray(label.readUInt32LE(20))
    const uuid = pvHeader.toString('latin1', 0, 32)
    // Two lists of (offset, size) pairs, each ended by a zero pair: data areas, then metadata areas.
    let at = 40
    const lists: Array<Array<{ offset: number; size: number }>> = [[], []]
    for (const list of lists) {
      for (; at + 16 <= pvHeader.length; at += 16) {
        const offset = Number(pvHeader.readBigUInt64LE(at))
        const size = Number(pvHeader.readBigUInt64LE(at + 8))
        if (offset === 0 && size === 0) break
        list.push({ offset, size })
      }
      at += 16
    }
    const area = lists[1]![0]
    return { uuid, metadata: area === undefined ? undefined : await readMetadataArea(disk, area.offset, area.size) }
  }
  return undefined
}

/** The metadata area's header points at the newest metadata text, which may wrap around the circular buffer. */
async function readMetadataArea(disk: DiskReader, offset: number, size: number): Promise<string | undefined> {
  const header = await disk.read(offset, SECTOR)
  if (header.toString('latin1', 4, 20) !== MDA_MAGIC) throw damaged('its metadata area header has no LVM2 magic')
  const textOffset = Number(header.readBigUInt64LE(40))
  const textSize = Number(header.readBigUInt64LE(48))
  if (textSize === 0) return undefined
  if (textSize > MAX_METADATA || textOffset >= size || textSize > size - SECTOR) throw damaged(`its metadata text (${textSize} bytes at ${textOffset}) does not fit its area`)
  const first = Math.min(textSize, size - textOffset)
  const parts = [await disk.read(offset + textOffset, first)]
  if (first < textSize) parts.push(await disk.read(offset + SECTOR, textSize - first))
  return Buffer.concat(parts).toString('utf8').replace(/\0+$/, '')
}

function damaged(why: string): LifeboatError {
  return new LifeboatError('LVM_BAD_METADATA', `The LVM physical volume is damaged: ${why}. Restore from another restore point, or read this disk with the LVM tools.`)
}

// The text format: `name = value`, `name { … }`, values are numbers, "strings" or [lists]; # comments.
export type LvmValue = number | string | LvmValue[] | LvmSection
export interface LvmSection {
  [key: string]: LvmValue
}

export function parseLvmText(text: string): LvmSection {
  const tokens = [...text.matchAll(/#[^\n]*|"((?:[^"\\]|\\.)*)"|([{}[\]=,])|([^\s{}[\]=,"#]+)/g)].filter(m => !m[0].startsWith('#'))
  let k = 0
  const peek = () => tokens[k]
  const fail = (why: string): never => {
    throw new LifeboatError('LVM_BAD_METADATA', `The LVM metadata text cannot be read (${why} at token ${k}); the volume group's metadata is damaged.`)
  }
  const value = (): LvmValue => {
    const token = tokens[k++] ?? fail('unexpected end')
    if (token[1] !== undefined) return token[1].replace(/\\(.)/g, '$1')
    if (token[2] === '[') {
      const list: LvmValue[] = []
      while (peek()?.[2] !== ']') {
        if (peek() === undefined) fail('a list is not closed')
        list.push(value())
        if (peek()?.[2] === ',') k++
      }
      k++
      return list
    }
    const number = Number(token[3])
    return token[3] !== undefined && Number.isFinite(number) ? number : fail(`"${token[0]}" is not a value`)
  }
  const section = (closed: boolean): LvmSection => {
    const out: LvmSection = {}
    for (;;) {
      const token = peek()
      if (token === undefined) return closed ? fail('a section is not closed') : out
      if (token[2] === '}') {
        if (!closed) fail('an extra "}"')
        k++
        return out
      }
      const name = token[3] ?? fail(`"${token[0]}" is not a name`)
      k++
      const next = tokens[k++]
      if (next?.[2] === '=') out[name] = value()
      else if (next?.[2] === '{') out[name] = section(true)
      else fail(`"${name}" is followed by neither "=" nor "{"`)
    }
  }
  return section(false)
}

export interface LogicalVolumeSegment {
  startExtent: number
  extentCount: number
  /** Sectors per stripe chunk (striped with more than one stripe). */
  stripeSize: number
  stripes: Array<{ pv: string; extent: number }>
}

export interface LogicalVolume {
  vg: string
  name: string
  size: number
  /** Why it cannot be read here (a mirror, thin, cache or snapshot segment; a PV on another disk), else undefined. */
  unsupported?: string
  segments: LogicalVolumeSegment[]
}

export interface VolumeGroup {
  name: string
  /** Bytes per extent. */
  extentSize: number
  /** PV name in the metadata (pv0…) → its uuid (no dashes) and where its extents start (bytes). */
  pvs: Map<string, { uuid: string; peStart: number }>
  lvs: LogicalVolume[]
}

/** The volume group and its visible logical volumes, from the metadata text. */
export function volumeGroupOf(text: string): VolumeGroup {
  const root = parseLvmText(text)
  const entry = Object.entries(root).find(([, v]) => typeof v === 'object' && !Array.isArray(v))
  if (entry === undefined) throw damaged('its metadata text holds no volume group')
  const [name, vg] = entry as [string, LvmSection]
  const extentSize = num(vg.extent_size) * SECTOR
  if (!(extentSize > 0)) throw damaged(`the volume group ${name} has no extent size`)
  const pvs = new Map<string, { uuid: string; peStart: number }>()
  for (const [pvName, pv] of Object.entries(sectionOf(vg.physical_volumes))) {
    const section = pv as LvmSection
    pvs.set(pvName, { uuid: String(section.id ?? '').replaceAll('-', ''), peStart: num(section.pe_start) * SECTOR })
  }
  const lvs: LogicalVolume[] = []
  for (const [lvName, lvValue] of Object.entries(sectionOf(vg.logical_volumes))) {
    const lv = lvValue as LvmSection
    const status = Array.isArray(lv.status) ? lv.status.map(String) : []
    if (!status.includes('VISIBLE')) continue
    const segments: LogicalVolumeSegment[] = []
    let unsupported: string | undefined
    for (let s = 1; s <= num(lv.segment_count); s++) {
      const segment = sectionOf(lv[`segment${s}`])
      const type = String(segment.type ?? '')
      if (type !== 'striped') {
        unsupported ??= `its segment ${s} is of type "${type}" (only linear and striped volumes are read)`
        continue
      }
      const list = Array.isArray(segment.stripes) ? segment.stripes : []
      const stripes: Array<{ pv: string; extent: number }> = []
      for (let k = 0; k + 1 < list.length; k += 2) stripes.push({ pv: String(list[k]), extent: num(list[k + 1]) })
      if (stripes.length === 0 || stripes.length !== num(segment.stripe_count ?? stripes.length)) {
        unsupported ??= `its segment ${s} lists ${stripes.length} stripes for a stripe_count of ${String(segment.stripe_count)}`
        continue
      }
      segments.push({ startExtent: num(segment.start_extent), extentCount: num(segment.extent_count), stripeSize: num(segment.stripe_size ?? 0), stripes })
    }
    const extents = segments.reduce((sum, segment) => sum + segment.extentCount, 0)
    lvs.push({ vg: name, name: lvName, size: extents * extentSize, segments, ...(unsupported !== undefined && { unsupported }) })
  }
  return { name, extentSize, pvs, lvs }
}

function sectionOf(value: LvmValue | undefined): LvmSection {
  return value !== undefined && typeof value === 'object' && !Array.isArray(value) ? value : {}
}

function num(value: LvmValue | undefined): number {
  return typeof value === 'number' ? value : Number.NaN
}

/**
 * A logical volume as a disk: each byte found through its segment, stripe and extent on a physical volume.
 * `pvReader` gives the reader of a PV by uuid (no dashes), undefined for one that is not on these disks.
 */
export function logicalVolumeReader(vg: VolumeGroup, lv: LogicalVolume, pvReader: (uuid: string) => DiskReader | undefined): DiskReader {
  if (lv.unsupported !== undefined) throw new LifeboatError('LVM_UNSUPPORTED_VOLUME', `The logical volume ${vg.name}/${lv.name} cannot be read: ${lv.unsupported}.`)
  const extent = vg.extentSize
  const physical = new Map<string, { reader: DiskReader; peStart: number }>()
  for (const segment of lv.segments) {
    for (const stripe of segment.stripes) {
      const pv = vg.pvs.get(stripe.pv)
      const reader = pv === undefined ? undefined : pvReader(pv.uuid)
      if (pv === undefined || reader === undefined) {
        throw new LifeboatError('LVM_PV_MISSING', `The logical volume ${vg.name}/${lv.name} lies partly on the physical volume ${stripe.pv}, which is on none of this backup's disks; it cannot be read.`)
      }
      physical.set(stripe.pv, { reader, peStart: pv.peStart })
    }
  }
  const segments = [...lv.segments].sort((a, b) => a.startExtent - b.startExtent)
  /** Where `length` bytes at `at` (inside one stripe chunk) lie on which PV. */
  const locate = (at: number): { pv: string; offset: number; room: number } => {
    const segment = segments.find(s => at < (s.startExtent + s.extentCount) * extent && at >= s.startExtent * extent)
    if (segment === undefined) throw new LifeboatError('LVM_BAD_METADATA', `The logical volume ${vg.name}/${lv.name} has no segment at byte ${at}; its metadata is damaged.`)
    const within = at - segment.startExtent * extent
    const segmentEnd = segment.extentCount * extent - within
    if (segment.stripes.length === 1) {
      const [stripe] = segment.stripes
      return { pv: stripe!.pv, offset: physical.get(stripe!.pv)!.peStart + stripe!.extent * extent + within, room: segmentEnd }
    }
    const chunk = segment.stripeSize * SECTOR
    const index = Math.floor(within / chunk)
    const stripe = segment.stripes[index % segment.stripes.length]!
    const row = Math.floor(index / segment.stripes.length)
    const inChunk = within % chunk
    return { pv: stripe.pv, offset: physical.get(stripe.pv)!.peStart + stripe.extent * extent + row * chunk + inChunk, room: Math.min(chunk - inChunk, segmentEnd) }
  }
  return {
    size: lv.size,
    async read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > lv.size) {
        throw new LifeboatError('DISK_BAD_RANGE', `The range ${offset}+${length} lies outside the logical volume ${vg.name}/${lv.name} (${lv.size} bytes).`)
      }
      const parts: Buffer[] = []
      for (let at = offset; at < offset + length; ) {
        const { pv, offset: where, room } = locate(at)
        const count = Math.min(room, offset + length - at)
        parts.push(await physical.get(pv)!.reader.read(where, count))
        at += count
      }
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
    },
  }
}
