// A fetch of files out of a backup as a run of its own (RPC fileRestore.fetch): logged and streamed like any
// run, cancellable, its progress in files and bytes, its result the archive written.
import type { FileSystemBrowser } from '../file-restore/index.ts'
import { fetchToPath, type ArchiveFormat } from '../file-restore/index.ts'
import { startRun, type RunOptions, type StartedRun } from './backup-run.ts'

export interface FileFetchRequest {
  remote: string
  backupId: string
  disk: string
  volume: string
  paths: string[]
  format: ArchiveFormat
  destination: string
}

export function startFileFetchRun(browser: FileSystemBrowser, request: FileFetchRequest, options: RunOptions & { onEnd?: () => void } = {}): StartedRun {
  const started = startRun({ name: 'file restore', data: { ...request } }, 0, options, async (task, signal) => {
    const transfer = task.child('transfer', { destination: request.destination, format: request.format })
    try {
      const result = await fetchToPath(browser, request.paths, request.format, request.destination, {
        signal,
        onProgress: progress => {
          transfer.set('files', progress.files)
          transfer.set('done', progress.bytes)
        },
      })
      if (result.skipped > 0) task.warning(`${result.skipped} device, socket or pipe file(s) were left out of the archive`)
      transfer.end({ size: result.archiveBytes, files: result.files, bytes: result.bytes })
      return { destination: request.destination, files: result.files, bytes: result.bytes, size: result.archiveBytes }
    } catch (error) {
      transfer.fail(error)
      throw error
    }
  })
  if (options.onEnd !== undefined) void started.done.finally(options.onEnd)
  return started
}
