// Open data files of a store's layers, with a cap: a lab that runs for weeks keeps thousands of layers, more
// than a process may have open, so the least recently used idle files are closed and reopened on demand.
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'

const DEFAULT_LIMIT = 256

export class FilePool {
  /** insertion order = least recently used first */
  private readonly files = new Map<string, PooledFile>()

  constructor(private readonly limit = DEFAULT_LIMIT) {}

  /** Runs `task` with the file open (created empty when `create` is given its size); it stays open while used. */
  async use<T>(path: string, task: (file: FileHandle) => Promise<T>, create?: { size: number }): Promise<T> {
    let entry = this.files.get(path)
    if (entry === undefined) {
      const opening: PooledFile = { handle: openFile(path, create), users: 0, idle: [] }
      opening.handle.catch(() => this.files.get(path) === opening && this.files.delete(path)) // retried at the next use
      entry = opening
    } else {
      this.files.delete(path)
    }
    this.files.set(path, entry)
    entry.users++
    this.closeIdle()
    try {
      return await task(await entry.handle)
    } finally {
      entry.users--
      if (entry.users === 0) for (const resolve of entry.idle.splice(0)) resolve()
    }
  }

  /** Closes the file of `path` (before it is deleted), once the tasks using it are done. */
  async close(path: string): Promise<void> {
    const entry = this.files.get(path)
    if (entry === undefined) return
    this.files.delete(path)
    if (entry.users > 0) await new Promise<void>(resolve => entry.idle.push(resolve))
    await (await entry.handle.catch(() => undefined))?.close()
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.files.keys()].map(path => this.close(path)))
  }

  private closeIdle(): void {
    for (const [path, entry] of this.files) {
      if (this.files.size <= this.limit) return
      if (entry.users === 0) void this.close(path).catch(() => undefined) // a close failure loses nothing: the data was written
    }
  }
}

interface PooledFile { handle: Promise<FileHandle>; users: number; idle: Array<() => void> }

async function openFile(path: string, create: { size: number } | undefined): Promise<FileHandle> {
  if (create === undefined) return open(path, 'r+')
  const file = await open(path, 'w+')
  await file.truncate(create.size) // sparse: no block is written until a guest writes it
  return file
}
