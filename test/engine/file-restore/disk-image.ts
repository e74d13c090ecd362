// Disk images built by the tests with the system's tools: a GPT or MBR table (sfdisk), ext4 filled from a
// folder (mkfs.ext4 -d), XFS and NTFS filled through a loop mount (root), and LVM2 physical volumes whose
// label, metadata area and text metadata the test writes itself, with one linear (two segments) and one
// striped logical volume across two PVs — or that lvm2's own commands write (lvmByTools).
import { mkdir, open, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { run, requireTool } from '../../helpers/tools.ts'

export const MiB = 1024 * 1024
const SECTOR = 512

export function requireDiskTools(): void {
  requireTool('sfdisk', 'fdisk')
  requireTool('mkfs.ext4', 'e2fsprogs')
  requireTool('mkfs.xfs', 'xfsprogs')
  requireTool('mkfs.ntfs', 'ntfs-3g')
  requireTool('ntfs-3g', 'ntfs-3g')
}

export async function sparseFile(path: string, size: number): Promise<void> {
  const handle = await open(path, 'w')
  await handle.truncate(size)
  await handle.close()
}

/** An ext4 image of `size` bytes holding a copy of `folder`. */
export async function ext4Image(path: string, size: number, folder: string, options: { label?: string; inodes?: number } = {}): Promise<void> {
  await sparseFile(path, size)
  await run('mkfs.ext4', ['-q', '-F', '-E', 'root_owner=0:0', '-L', options.label ?? 'data', ...(options.inodes === undefined ? [] : ['-N', String(options.inodes)]), '-d', folder, path])
}

/** An XFS or NTFS image holding a copy of `folder`, filled through a loop mount (needs root). */
export async function mountedImage(kind: 'xfs' | 'ntfs', path: string, size: number, folder: string, scratch: string): Promise<void> {
  await sparseFile(path, size)
  if (kind === 'xfs') await run('mkfs.xfs', ['-q', '-L', 'xfsdata', path])
  else await run('mkfs.ntfs', ['-q', '-F', '-f', '-L', 'ntfsdata', path])
  const mountPoint = join(scratch, `mnt-${kind}`)
  await mkdir(mountPoint, { recursive: true })
  if (kind === 'xfs') await run('mount', ['-o', 'loop', path, mountPoint])
  else await run('ntfs-3g', [path, mountPoint])
  try {
    await run('cp', ['-a', '--no-preserve=ownership', `${folder}/.`, mountPoint])
  } finally {
    await run('umount', [mountPoint])
  }
}

export interface PartitionSpec {
  /** MiB from the disk's start, and size in MiB. */
  startMiB: number
  sizeMiB: number
  /** sfdisk type: a GUID for GPT, a hex byte for MBR. */
  type: string
}

export async function partitionedDisk(path: string, sizeMiB: number, label: 'gpt' | 'dos', partitions: PartitionSpec[]): Promise<void> {
  await sparseFile(path, sizeMiB * MiB)
  const script = [`label: ${label}`, ...partitions.map(p => `start=${p.startMiB * 2048}, size=${p.sizeMiB * 2048}, type=${p.type}`)].join('\n')
  await run('sfdisk', ['-q', path], { input: Buffer.from(`${script}\n`) })
}

/** Copies `image` into `disk` at `offset` (sparse: all-zero chunks are skipped). */
export async function place(disk: string, offset: number, image: string): Promise<void> {
  const source = await open(image, 'r')
  const target = await open(disk, 'r+')
  try {
    const chunk = Buffer.alloc(MiB)
    for (let at = 0; ; at += MiB) {
      const { bytesRead } = await source.read(chunk, 0, MiB, at)
      if (bytesRead === 0) break
      const part = chunk.subarray(0, bytesRead)
      if (part.some(b => b !== 0)) await target.write(part, 0, bytesRead, offset + at)
    }
  } finally {
    await source.close()
    await target.close()
  }
}

// LVM2 as pvcreate/vgcreate/lvcreate write it: the label in sector 1, the metadata area at 4 KiB, extents from 1 MiB.
const EXTENT_SECTORS = 2048
const PE_START = MiB
const MDA_OFFSET = 4096
const MDA_SIZE = PE_START - MDA_OFFSET

export interface LvmLayout {
  /** Byte offsets of the two PV partitions on the disk, and their size. */
  pvs: Array<{ offset: number; size: number; uuid: string }>
  linear: { image: string }
  striped: { image: string }
}

/** The extents of the two logical volumes (16 MiB each): `linear` on pv0 20…27 then pv1 0…7; `striped` over pv0 0…7 and pv1 8…15 in 64 KiB chunks. */
const LINEAR = [{ pv: 0, extent: 20, count: 8 }, { pv: 1, extent: 0, count: 8 }]
const STRIPED = { stripeSectors: 128, stripes: [{ pv: 0, extent: 0 }, { pv: 1, extent: 8 }], extents: 16 }

function vgText(uuids: string[], pvSize: number): string {
  const dashed = (uuid: string) => `${uuid.slice(0, 6)}-${uuid.slice(6, 10)}-${uuid.slice(10, 14)}-${uuid.slice(14, 18)}-${uuid.slice(18, 22)}-${uuid.slice(22, 26)}-${uuid.slice(26)}`
  const pvs = uuids.map((uuid, k) => `\t\tpv${k} {\n\t\t\tid = "${dashed(uuid)}"\n\t\t\tdevice = "/dev/xvda${k + 2}"\t# Hint only\n\t\t\tstatus = ["ALLOCATABLE"]\n\t\t\tflags = []\n\t\t\tdev_size = ${pvSize / SECTOR}\n\t\t\tpe_start = ${PE_START / SECTOR}\n\t\t\tpe_count = ${Math.floor((pvSize - PE_START) / (EXTENT_SECTORS * SECTOR))}\n\t\t}\n`).join('')
  const linear = LINEAR.map((s, k) => `\t\t\tsegment${k + 1} {\n\t\t\t\tstart_extent = ${k === 0 ? 0 : LINEAR[0]!.count}\n\t\t\t\textent_count = ${s.count}\n\t\t\t\ttype = "striped"\n\t\t\t\tstripe_count = 1\t# linear\n\t\t\t\tstripes = [\n\t\t\t\t\t"pv${s.pv}", ${s.extent}\n\t\t\t\t]\n\t\t\t}\n`).join('')
  return `# Generated by LVM2 version 2.03.16(2) (2022-05-18): Tue Dec  1 23:00:00 2026\n\ncontents = "Text Format Volume Group"\nversion = 1\n\ndescription = "Written by the Lifeboat test"\n\n` +
    `vg_test {\n\tid = "Ab12Cd-Ef34-Gh56-Ij78-Kl90-Mn12-Op34Qr"\n\tseqno = 4\n\tformat = "lvm2"\n\tstatus = ["RESIZEABLE", "READ", "WRITE"]\n\tflags = []\n\textent_size = ${EXTENT_SECTORS}\n\tmax_lv = 0\n\tmax_pv = 0\n\tmetadata_copies = 0\n\n` +
    `\tphysical_volumes {\n${pvs}\t}\n\n\tlogical_volumes {\n` +
    `\t\tlinear {\n\t\t\tid = "lin000-0000-0000-0000-0000-0000-000000"\n\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]\n\t\t\tflags = []\n\t\t\tcreation_time = 1796166000\n\t\t\tsegment_count = 2\n\n${linear}\t\t}\n` +
    `\t\tstriped {\n\t\t\tid = "str000-0000-0000-0000-0000-0000-000000"\n\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]\n\t\t\tflags = []\n\t\t\tsegment_count = 1\n\n\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = ${STRIPED.extents}\n\t\t\t\ttype = "striped"\n\t\t\t\tstripe_count = 2\n\t\t\t\tstripe_size = ${STRIPED.stripeSectors}\n\n\t\t\t\tstripes = [\n\t\t\t\t\t"pv0", ${STRIPED.stripes[0]!.extent},\n\t\t\t\t\t"pv1", ${STRIPED.stripes[1]!.extent}\n\t\t\t\t]\n\t\t\t}\n\t\t}\n` +
    `\t\tswap_hidden {\n\t\t\tid = "hid000-0000-0000-0000-0000-0000-000000"\n\t\t\tstatus = ["READ", "WRITE"]\n\t\t\tsegment_count = 1\n\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 1\n\t\t\t\ttype = "striped"\n\t\t\t\tstripe_count = 1\n\t\t\t\tstripes = ["pv1", 30]\n\t\t\t}\n\t\t}\n` +
    `\t}\n}\n`
}

/** Writes both PV labels, their metadata (the same text on each, as LVM keeps it) and the volumes' images through their extents. */
export async function writeLvm(disk: string, layout: LvmLayout): Promise<void> {
  const text = Buffer.from(vgText(layout.pvs.map(pv => pv.uuid), layout.pvs[0]!.size))
  const handle = await open(disk, 'r+')
  try {
    for (const pv of layout.pvs) {
      const label = Buffer.alloc(SECTOR)
      label.write('LABELONE', 0, 'latin1')
      label.writeBigUInt64LE(1n, 8)
      label.writeUInt32LE(32, 20)
      label.write('LVM2 001', 24, 'latin1')
      label.write(pv.uuid, 32, 'latin1')
      label.writeBigUInt64LE(BigInt(pv.size), 64)
      label.writeBigUInt64LE(BigInt(PE_START), 72)
      label.writeBigUInt64LE(BigInt(MDA_OFFSET), 104)
      label.writeBigUInt64LE(BigInt(MDA_SIZE), 112)
      await handle.write(label, 0, SECTOR, pv.offset + SECTOR)
      const mda = Buffer.alloc(SECTOR)
      mda.write(' LVM2 x[5A%r0N*>', 4, 'latin1')
      mda.writeUInt32LE(1, 20)
      mda.writeBigUInt64LE(BigInt(MDA_OFFSET), 24)
      mda.writeBigUInt64LE(BigInt(MDA_SIZE), 32)
      mda.writeBigUInt64LE(BigInt(SECTOR), 40)
      mda.writeBigUInt64LE(BigInt(text.length), 48)
      await handle.write(mda, 0, SECTOR, pv.offset + MDA_OFFSET)
      await handle.write(text, 0, text.length, pv.offset + MDA_OFFSET + SECTOR)
    }
    const extent = EXTENT_SECTORS * SECTOR
    const extentAt = (pv: number, index: number) => layout.pvs[pv]!.offset + PE_START + index * extent
    const linear = await readFile(layout.linear.image)
    let at = 0
    for (const segment of LINEAR) {
      const bytes = segment.count * extent
      await handle.write(linear, at, bytes, extentAt(segment.pv, segment.extent))
      at += bytes
    }
    const striped = await readFile(layout.striped.image)
    const chunk = STRIPED.stripeSectors * SECTOR
    for (let index = 0; index * chunk < striped.length; index++) {
      const stripe = STRIPED.stripes[index % 2]!
      const row = Math.floor(index / 2)
      await handle.write(striped, index * chunk, chunk, extentAt(stripe.pv, stripe.extent) + row * chunk)
    }
  } finally {
    await handle.close()
  }
}

export const LV_SIZE = 16 * MiB

/** lvm2's own commands, kept to `devices` and away from device-mapper (absent in containers; never wanted here). */
function lvmCommand(devices: string[]) {
  const config = 'activation { udev_sync = 0 udev_rules = 0 monitoring = 0 } devices { obtain_device_list_from_udev = 0 }'
  return async (command: string, args: string[]): Promise<string> =>
    (await run('timeout', ['60', command, ...args, '--driverloaded', 'n', '--devices', devices.join(','), '--config', config])).stdout.toString()
}

interface ReportedSegment { lv_name: string; seg_start: string; seg_size: string; segtype: string; stripes: string; stripe_size: string; seg_pe_ranges: string }

/**
 * LVM2 written by pvcreate, vgcreate, lvcreate and lvextend on loop devices over two partitions of `disk`, VG `vg`
 * (default 4 MiB extents): `one`, linear, 8 MiB on the first PV then, extended after `two`, 8 MiB on the second;
 * `two`, striped over both PVs in 64 KiB chunks, 16 MiB. Each volume's image is written through the extents that
 * lvs reports, as the kernel would map them; the VG is deactivated and the loops detached on every path out.
 */
export async function lvmByTools(disk: string, vg: string, pvs: Array<{ offset: number; size: number }>, images: { one: string; two: string }): Promise<string> {
  const loops: string[] = []
  let report = ''
  try {
    for (const pv of pvs) loops.push((await run('losetup', ['--find', '--show', '--offset', String(pv.offset), '--sizelimit', String(pv.size), disk])).stdout.toString().trim())
    const lvm = lvmCommand(loops)
    await lvm('pvcreate', ['-q', ...loops])
    await lvm('vgcreate', ['-q', vg, ...loops])
    try {
      await lvm('lvcreate', ['-q', '-an', '-Zn', '-L', '8M', '-n', 'one', vg, loops[0]!])
      await lvm('lvcreate', ['-q', '-an', '-Zn', '-L', '16M', '-i', '2', '-I', '64k', '-n', 'two', vg])
      await lvm('lvextend', ['-q', '-L', '+8M', `${vg}/one`, loops[1]!])
      const extentSize = Number((await lvm('vgs', ['--noheadings', '--units', 'b', '--nosuffix', '-o', 'vg_extent_size', vg])).trim())
      const peStart = new Map((await lvm('pvs', ['--noheadings', '--units', 'b', '--nosuffix', '-o', 'pv_name,pe_start'])).trim().split('\n').map(line => {
        const [name, start] = line.trim().split(/\s+/)
        return [name!, Number(start)] as const
      }))
      report = await lvm('lvs', ['--segments', '--units', 'b', '--nosuffix', '--reportformat', 'json', '-o', 'lv_name,seg_start,seg_size,segtype,stripes,stripe_size,seg_pe_ranges', vg])
      const segments = (JSON.parse(report) as { report: Array<{ seg: ReportedSegment[] }> }).report[0]!.seg
      for (const segment of segments) {
        const image = await readFile(images[segment.lv_name as 'one' | 'two'])
        // "/dev/loop0:2-3 /dev/loop1:0-1": where each stripe's extents lie (one range for a linear segment).
        const stripes = segment.seg_pe_ranges.trim().split(/\s+/).map(range => {
          const [device, extents] = range.split(':')
          return { device: device!, at: peStart.get(device!)! + Number(extents!.split('-')[0]) * extentSize }
        })
        const chunk = stripes.length === 1 ? Number(segment.seg_size) : Number(segment.stripe_size)
        for (let k = 0; k * chunk < Number(segment.seg_size); k++) {
          const stripe = stripes[k % stripes.length]!
          const target = await open(stripe.device, 'r+')
          try {
            await target.write(image, Number(segment.seg_start) + k * chunk, chunk, stripe.at + Math.floor(k / stripes.length) * chunk)
          } finally {
            await target.close()
          }
        }
      }
    } finally {
      await lvm('vgchange', ['-q', '-an', vg])
    }
  } finally {
    for (const loop of loops) await run('losetup', ['-d', loop])
  }
  return report
}
