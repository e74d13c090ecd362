// What an archive holds: folders, files (their bytes streamed when their turn comes) and symbolic links.
export interface ArchiveEntry {
  /** Relative, '/'-separated, no leading '/' (a folder's without its trailing '/'). */
  path: string
  type: 'file' | 'directory' | 'symlink'
  /** For a file: the exact byte count its stream gives. */
  size: number
  /** ms epoch. */
  mtime: number
  /** Permission bits. */
  mode: number
  uid: number
  gid: number
  target?: string
  /** A file's bytes. */
  open?: () => AsyncIterable<Buffer | Uint8Array>
}

/** Streams a file's bytes, failing when they are not exactly `entry.size` (the archive would be corrupt). */
export async function* entryData(entry: ArchiveEntry, onData?: (bytes: number) => void): AsyncGenerator<Buffer> {
  let seen = 0
  for await (const chunk of entry.open!()) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)
    seen += buffer.length
    if (seen > entry.size) throw new Error(`${entry.path} gave more than the ${entry.size} bytes it was stat'ed at.`)
    onData?.(buffer.length)
    yield buffer
  }
  if (seen !== entry.size) throw new Error(`${entry.path} gave ${seen} bytes instead of ${entry.size}.`)
}
