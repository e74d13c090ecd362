// Opening a file that must be a regular one: a FIFO, a device or a folder where a file is expected
// (a VHD's parent, a backup on a remote) would block the open or the reads for ever.
import { constants } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { LifeboatError } from './errors.ts'

/** Opens `path` for reading (or reading and writing with 'r+'), refusing anything but a regular file with NOT_A_REGULAR_FILE. */
export async function openRegularFile(path: string, mode: 'r' | 'r+'): Promise<FileHandle> {
  // O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting; regular files ignore it.
  const handle = await open(path, (mode === 'r+' ? constants.O_RDWR : constants.O_RDONLY) | constants.O_NONBLOCK)
  try {
    const stats = await handle.stat()
    if (stats.isFile()) return handle
    const kind = stats.isDirectory() ? 'a directory' : stats.isFIFO() ? 'a FIFO' : stats.isSocket() ? 'a socket' : 'a device'
    throw new LifeboatError('NOT_A_REGULAR_FILE', `${path} is ${kind}, not a regular file; give the path of a file.`, { data: { path } })
  } catch (error) {
    await handle.close()
    throw error
  }
}
