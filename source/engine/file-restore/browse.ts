// Browsing one file system: paths checked (absolute, never through a symbolic link), folders listed a page
// at a time after a name (a cursor), names searched, and the tree under a selection walked for an archive.
import { posix } from 'node:path'
import type { ArchiveEntry } from '../../formats/archive/index.ts'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import type { BrowsableFileSystem, FileEntry } from './filesystem.ts'

export const DEFAULT_PAGE = 200
export const MAX_PAGE = 5000
const NAME_CACHE = 4

export interface FolderPage {
  path: string
  entries: FileEntry[]
  /** Entries in the folder. */
  total: number
  /** Give it back as `after` for the next page; absent on the last page. */
  next?: string
}

export interface FoundEntry extends FileEntry {
  path: string
}

/** A browser over one file system, holding the names of its last few folders (never their stats). */
export class FileSystemBrowser {
  readonly #names = new Map<string, Promise<string[]>>()

  constructor(readonly fs: BrowsableFileSystem) {}

  /** The normalised absolute path, after checking that every folder on the way is a real folder. */
  async resolve(path: string): Promise<string> {
    if (!path.startsWith('/')) throw new LifeboatError('FILE_RESTORE_BAD_PATH', `"${path}" is not an absolute path inside the backup; start it with "/".`)
    const normal = posix.normalize(path).replace(/(.)\/$/, '$1')
    const parts = normal.split('/').filter(Boolean)
    for (let k = 1; k < parts.length; k++) {
      const ancestor = `/${parts.slice(0, k).join('/')}`
      const entry = await this.stat(ancestor)
      if (entry.type !== 'directory') throw new LifeboatError('FILE_RESTORE_BAD_PATH', `${ancestor} is ${entry.type === 'symlink' ? `a symbolic link (to ${entry.target})` : 'not a folder'}; give the path of what it points at.`)
    }
    return normal
  }

  async stat(path: string): Promise<FileEntry> {
    try {
      return await this.fs.stat(path)
    } catch (error) {
      throw notFound(path, error)
    }
  }

  async #namesOf(dir: string): Promise<string[]> {
    let names = this.#names.get(dir)
    if (names === undefined) {
      names = this.fs.names(dir)
      names.catch(() => this.#names.delete(dir))
      this.#names.set(dir, names)
      while (this.#names.size > NAME_CACHE) this.#names.delete(this.#names.keys().next().value!)
    }
    try {
      return await names
    } catch (error) {
      throw notFound(dir, error)
    }
  }

  /** One page of a folder, in byte order of names, starting after the name `after`. */
  async list(path: string, options: { after?: string; limit?: number } = {}): Promise<FolderPage> {
    const dir = await this.resolve(path)
    const entry = await this.stat(dir)
    if (entry.type !== 'directory') throw new LifeboatError('FILE_RESTORE_NOT_A_FOLDER', `${dir} is ${entry.type === 'symlink' ? `a symbolic link to ${entry.target}` : 'a file'}, not a folder.`)
    const names = await this.#namesOf(dir)
    const limit = Math.min(Math.max(1, options.limit ?? DEFAULT_PAGE), MAX_PAGE)
    const start = options.after === undefined ? 0 : firstAfter(names, options.after)
    const page = names.slice(start, start + limit)
    const entries: FileEntry[] = []
    for (const name of page) entries.push(await this.stat(posix.join(dir, name)))
    return { path: dir, entries, total: names.length, ...(start + limit < names.length && { next: page[page.length - 1]! }) }
  }

  /**
   * Entries under `path` whose name contains `query` (case-insensitive; `*` and `?` make it a glob on the
   * whole name), depth first, at most `limit`; `truncated` says there were more.
   */
  async find(path: string, query: string, options: { limit?: number; signal?: AbortSignal } = {}): Promise<{ matches: FoundEntry[]; truncated: boolean }> {
    const limit = Math.min(Math.max(1, options.limit ?? 1000), 100_000)
    const test = matcher(query)
    const matches: FoundEntry[] = []
    const start = await this.resolve(path)
    const walk = async (dir: string): Promise<boolean> => {
      for (const name of await this.fs.names(dir)) {
        options.signal?.throwIfAborted()
        const child = posix.join(dir, name)
        const entry = await this.stat(child)
        if (test(name)) {
          if (matches.length === limit) return false
          matches.push({ ...entry, path: child })
        }
        if (entry.type === 'directory' && !(await walk(child))) return false
      }
      return true
    }
    const complete = await walk(start)
    return { matches, truncated: !complete }
  }

  /**
   * The archive entries of the selected paths: each named from its own folder down (`/etc/ssh` gives
   * `ssh/…`; `/` gives the root's content), folders before their content. Devices, sockets and pipes are
   * counted in `skipped`, not archived.
   */
  /**
   * The archive's entries: each path (a file, or a folder and all under it) named relative to the folder that
   * holds every selected path (one selection: its own folder, as `tar -C`), so that two files of the same name
   * from different folders never collide: /etc/fstab and /srv/fstab are etc/fstab and srv/fstab.
   */
  async *entries(paths: string[], skipped: { count: number } = { count: 0 }): AsyncGenerator<ArchiveEntry> {
    const absolutes = [...new Set(await Promise.all(paths.map(path => this.resolve(path))))]
    const base = commonFolder(absolutes.map(path => posix.dirname(path)))
    for (const absolute of absolutes) {
      const root = await this.stat(absolute)
      yield* this.#tree(absolute, root, absolute === '/' ? '' : posix.relative(base, absolute), skipped)
    }
  }

  async *#tree(path: string, entry: FileEntry, name: string, skipped: { count: number }): AsyncGenerator<ArchiveEntry> {
    if (entry.type === 'other') {
      skipped.count++
      return
    }
    const fs = this.fs
    if (name !== '') {
      yield {
        path: name, type: entry.type, size: entry.size, mtime: entry.mtime, mode: entry.mode, uid: entry.uid, gid: entry.gid,
        ...(entry.target !== undefined && { target: entry.target }),
        ...(entry.type === 'file' && { open: () => fs.createReadStream(path) }),
      }
    }
    if (entry.type !== 'directory') return
    // The names only (a few MiB for a huge folder), each child stat'ed when its turn comes.
    for (const child of await fs.names(path)) {
      const childPath = posix.join(path, child)
      yield* this.#tree(childPath, await this.stat(childPath), name === '' ? child : `${name}/${child}`, skipped)
    }
  }
}

function firstAfter(names: string[], after: string): number {
  let low = 0
  let high = names.length
  while (low < high) {
    const middle = (low + high) >> 1
    if (names[middle]! <= after) low = middle + 1
    else high = middle
  }
  return low
}

function matcher(query: string): (name: string) => boolean {
  if (query === '') throw new LifeboatError('FILE_RESTORE_BAD_QUERY', 'Give a name (or part of one, or a glob like *.conf) to search for.')
  const lower = query.toLowerCase()
  if (!/[*?]/.test(query)) return name => name.toLowerCase().includes(lower)
  const pattern = new RegExp(`^${lower.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')}$`, 's')
  return name => pattern.test(name.toLowerCase())
}

function notFound(path: string, error: unknown): LifeboatError {
  if (error instanceof LifeboatError) return error
  // The message of a mounted file system's error names the mount point: the code is what matters.
  const code = errorCode(error)
  if (code === 'ENOENT' || code === 'ENOTDIR' || /not found|no such/i.test((error as Error).message)) {
    return new LifeboatError('FILE_RESTORE_NOT_FOUND', `${path} is not in this backup; list its folder to see what is there.`, { cause: error })
  }
  return new LifeboatError('FILE_RESTORE_READ_FAILED', `${path} cannot be read from this backup (${code}); the file system may be damaged.`, { cause: error })
}

/** The deepest folder that holds every one of these folders ('/' at worst). */
export function commonFolder(folders: readonly string[]): string {
  if (folders.length === 0) return '/'
  let parts = folders[0]!.split('/').filter(Boolean)
  for (const folder of folders.slice(1)) {
    const other = folder.split('/').filter(Boolean)
    let k = 0
    while (k < parts.length && k < other.length && parts[k] === other[k]) k++
    parts = parts.slice(0, k)
  }
  return `/${parts.join('/')}`
}
