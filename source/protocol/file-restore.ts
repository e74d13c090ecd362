// File-level restore over the daemon: a session opens a delta restore point; its disks, their partitions and
// LVM volumes, a folder a page at a time, a name search; files fetched into an archive on the appliance.
import { z } from 'zod'

const text = (what: string) => z.string({ error: `${what} must be a text.` }).min(1, { error: `${what} must not be empty.` }).max(4096, { error: `${what} is too long.` })
const session = text('session')
const volume = { session, disk: text('disk'), volume: text('volume') }

export const fileRestoreParams = {
  'fileRestore.open': z.strictObject({ remote: text('remote'), backupId: text('backupId') }),
  'fileRestore.volumes': z.strictObject({ session, disk: text('disk') }),
  'fileRestore.list': z.strictObject({ ...volume, path: text('path'), after: z.string().max(4096).optional(), limit: z.number().int().min(1).max(5000).optional() }),
  'fileRestore.find': z.strictObject({ ...volume, path: text('path'), query: text('query'), limit: z.number().int().min(1).max(100_000).optional() }),
  'fileRestore.fetch': z.strictObject({
    ...volume,
    paths: z.array(text('a path')).min(1, { error: 'select at least one file or folder.' }).max(10_000),
    format: z.enum(['tar', 'zip'], { error: 'format must be tar or zip.' }),
    destination: text('destination'),
  }),
  'fileRestore.close': z.strictObject({ session }),
} as const

export interface FileRestoreDisk {
  /** What `disk` takes: the VBD position (0, 1…). */
  id: string
  name: string
  size: number
}

export interface FileRestoreVolume {
  /** `1` (partition 1), `1/vg/lv` (a logical volume), `0` (a disk without partition table). */
  id: string
  offset: number
  size: number
  kind: string
  content: 'ext' | 'xfs' | 'ntfs' | 'lvm' | 'swap' | 'luks' | 'btrfs' | 'fat' | 'unknown'
  label?: string
  browsable: boolean
  reason?: string
  /** Browsable, but with a caveat (an ext journal that was not replayed). */
  warning?: string
}

export interface FileRestoreEntry {
  name: string
  type: 'file' | 'directory' | 'symlink' | 'other'
  size: number
  /** ms epoch. */
  mtime: number
  /** Permission bits (0o755…), without the type. */
  mode: number
  uid: number
  gid: number
  /** A symbolic link's target. */
  target?: string
}

export interface FileRestoreResults {
  /** idleSeconds: the session closes by itself after that long unused. */
  'fileRestore.open': { session: string; vm: string; backupDate: number; disks: FileRestoreDisk[]; idleSeconds: number }
  'fileRestore.volumes': FileRestoreVolume[]
  'fileRestore.list': { path: string; entries: FileRestoreEntry[]; total: number; next?: string }
  'fileRestore.find': { matches: Array<FileRestoreEntry & { path: string }>; truncated: boolean }
  'fileRestore.fetch': { runId: string }
  'fileRestore.close': Record<string, never>
}

const TYPE_GLYPH: Record<FileRestoreEntry['type'], string> = { file: '-', directory: 'd', symlink: 'l', other: '?' }

/** An entry's type and permissions as `ls -l` shows them: drwxr-xr-x. */
export function modeText(entry: Pick<FileRestoreEntry, 'type' | 'mode'>): string {
  const bits = ['r', 'w', 'x']
  return TYPE_GLYPH[entry.type] + [6, 3, 0].map(shift => bits.map((bit, k) => ((entry.mode >> (shift + 2 - k)) & 1 ? bit : '-')).join('')).join('')
}
