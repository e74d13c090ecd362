// The file systems file-level restore browses, behind one small interface: ext2/3/4 read in user space
// (formats/ext), XFS and NTFS mounted read-only by the kernel (root only).
import type { Readable } from 'node:stream'
import type { FileRestoreEntry } from '../../protocol/file-restore.ts'

/** An entry as the daemon sends it (protocol/file-restore.ts): one definition for the engine and the clients. */
export type FileEntry = FileRestoreEntry
export type EntryType = FileEntry['type']

export interface BrowsableFileSystem {
  readonly kind: 'ext' | 'xfs' | 'ntfs'
  /** The names in a folder, sorted (only names: a folder of 100 000 entries costs a few MiB, never its stats). */
  names(dir: string): Promise<string[]>
  /** Never follows a symbolic link. */
  stat(path: string): Promise<FileEntry>
  createReadStream(path: string): Readable
  close(): Promise<void>
}

const S_IFMT = 0o170000
const TYPES: Record<number, EntryType> = { 0o100000: 'file', 0o040000: 'directory', 0o120000: 'symlink' }

export function entryType(mode: number): EntryType {
  return TYPES[mode & S_IFMT] ?? 'other'
}

export function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
