// Fetching files and folders out of a backup: the selection walked into a tar or zip stream, written to a
// path on the appliance (a temporary name renamed when whole, so a failed fetch leaves nothing that looks
// complete) or into a pipe (the CLI's stdout), with progress as files and bytes go by.
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { rename, stat, unlink } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { tarStream, zipStream } from '../../formats/archive/index.ts'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import type { FileSystemBrowser } from './browse.ts'

export type ArchiveFormat = 'tar' | 'zip'

export interface FetchProgress {
  files: number
  /** File bytes read so far (not the archive's headers). */
  bytes: number
}

export interface FetchResult extends FetchProgress {
  /** Bytes of the archive written. */
  archiveBytes: number
  /** Devices, sockets and pipes found in the selection (not archived). */
  skipped: number
}

/** The archive of `paths` as a stream of buffers; `progress` is updated as it is read. */
export function archiveStream(browser: FileSystemBrowser, paths: string[], format: ArchiveFormat, progress: FetchProgress, skipped: { count: number }): AsyncGenerator<Buffer> {
  const counted = async function* () {
    for await (const entry of browser.entries(paths, skipped)) {
      if (entry.type === 'file') progress.files++
      yield entry
    }
  }
  const onData = (bytes: number) => void (progress.bytes += bytes)
  return format === 'tar' ? tarStream(counted(), onData) : zipStream(counted(), onData)
}

/** Writes the archive to `destination` (absolute; a new file, or an existing pipe). */
export async function fetchToPath(browser: FileSystemBrowser, paths: string[], format: ArchiveFormat, destination: string, options: { signal?: AbortSignal; onProgress?: (progress: FetchProgress) => void } = {}): Promise<FetchResult> {
  if (!isAbsolute(destination)) throw new LifeboatError('FILE_RESTORE_BAD_DESTINATION', `The destination "${destination}" must be an absolute path on the appliance.`)
  if (paths.length === 0) throw new LifeboatError('FILE_RESTORE_NOTHING_SELECTED', 'Select at least one file or folder to fetch.')
  for (const path of paths) await browser.stat(await browser.resolve(path))
  const existing = await stat(destination).catch(error => {
    if (errorCode(error) === 'ENOENT') return undefined
    throw error
  })
  if (existing !== undefined && !existing.isFIFO()) throw new LifeboatError('FILE_RESTORE_DESTINATION_EXISTS', `${destination} already exists; give a new file name (nothing is overwritten).`)
  const folder = await stat(dirname(destination)).catch(() => undefined)
  if (existing === undefined && folder?.isDirectory() !== true) throw new LifeboatError('FILE_RESTORE_BAD_DESTINATION', `The folder ${dirname(destination)} does not exist on the appliance; create it first.`)
  const target = existing === undefined ? join(dirname(destination), `.${basename(destination)}.${randomBytes(4).toString('hex')}.partial`) : destination
  const progress: FetchProgress = { files: 0, bytes: 0 }
  const skipped = { count: 0 }
  let archiveBytes = 0
  const ticker = setInterval(() => options.onProgress?.({ files: progress.files, bytes: progress.bytes }), 500)
  try {
    const source = Readable.from(archiveStream(browser, paths, format, progress, skipped), { objectMode: false })
    source.on('data', (chunk: Buffer) => void (archiveBytes += chunk.length))
    await pipeline(source, createWriteStream(target, { flags: existing === undefined ? 'wx' : 'w', mode: 0o600 }), { signal: options.signal })
    if (existing === undefined) await rename(target, destination)
  } catch (error) {
    if (existing === undefined) await unlink(target).catch(() => {})
    throw error
  } finally {
    clearInterval(ticker)
  }
  options.onProgress?.({ files: progress.files, bytes: progress.bytes })
  return { ...progress, archiveBytes, skipped: skipped.count }
}
