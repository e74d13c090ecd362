// The entries of an ext directory block (or of inline directory data), read linearly: an htree's index blocks
// look like one empty entry, and the checksum tail of metadata_csum like an entry of inode 0, so both are passed.
import { LifeboatError } from '../../util/errors.ts'

export interface DirectoryEntry {
  name: string
  inode: number
}

const SLASH = 0x2f

function bad(inode: number, detail: string): LifeboatError {
  return new LifeboatError('EXT_BAD_DIRECTORY', `The ext file system's folder at inode ${inode} is damaged (${detail}); run e2fsck on a copy of the disk, or restore the whole VM.`)
}

/** With 64 KiB blocks a record length of 65 536 does not fit in 16 bits: it is written 0 or 65 535, and the low bits carry the high ones. */
function recordLength(raw: number, blockSize: number): number {
  if (blockSize < 65536) return raw
  if (raw === 65535 || raw === 0) return blockSize
  return (raw & 65532) | ((raw & 3) << 16)
}

/** The named entries of `bytes` (one block, or an inline area), "." and ".." left out. */
export function* directoryEntries(bytes: Buffer, options: { fileType: boolean; blockSize: number; inode: number }): Generator<DirectoryEntry> {
  for (let at = 0; at < bytes.length; ) {
    if (at + 8 > bytes.length) throw bad(options.inode, `an entry header cut at byte ${at}`)
    const inode = bytes.readUInt32LE(at)
    const length = recordLength(bytes.readUInt16LE(at + 4), options.blockSize)
    const nameLength = options.fileType ? bytes[at + 6]! : bytes.readUInt16LE(at + 6)
    if (length < 8 || length % 4 !== 0 || at + length > bytes.length) throw bad(options.inode, `an entry of ${length} bytes at byte ${at}`)
    if (inode !== 0) {
      if (nameLength === 0 || 8 + nameLength > length) throw bad(options.inode, `a name of ${nameLength} bytes in an entry of ${length} at byte ${at}`)
      const name = bytes.subarray(at + 8, at + 8 + nameLength)
      if (name.includes(0) || name.includes(SLASH)) throw bad(options.inode, `a name holding "/" or a NUL byte at byte ${at}`)
      const text = name.toString('utf8')
      if (text !== '.' && text !== '..') yield { name: text, inode }
    }
    at += length
  }
}
