// cache.json.gz exactly as XO keeps it: `{ "/xo-vm-backups/<vm>/<date>.json": {...metadata, _filename, id} }`,
// regenerated from the JSONs when missing or unreadable, patched on every write and delete.
import { gunzip, gzip } from 'node:zlib'
import { promisify } from 'node:util'
import type { RemoteHandler } from '../storage/index.ts'
import { backupId, cachePath, METADATA_FILE, vmDir } from './layout.ts'
import { backupMetadataSchema, parseBackupMetadata, type VmBackup } from './metadata.ts'

export type VmBackupCache = Record<string, VmBackup>
export type RepositoryWarning = (message: string, data: Record<string, unknown>) => void

const gzipAsync = promisify(gzip)
const gunzipAsync = promisify(gunzip)
// A cache is a few KiB per backup; a larger one is not ours and is regenerated rather than inflated.
const MAX_CACHE_BYTES = 256 * 1024 * 1024

/** The VM's cache, or undefined when it is missing or unreadable (then regenerate it). */
export async function readCache(handler: RemoteHandler, vmUuid: string): Promise<VmBackupCache | undefined> {
  try {
    const data = JSON.parse((await gunzipAsync(await handler.readFile(cachePath(vmUuid)), { maxOutputLength: MAX_CACHE_BYTES })).toString()) as unknown
    if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined
    const cache: VmBackupCache = {}
    for (const [key, value] of Object.entries(data)) {
      const parsed = backupMetadataSchema.safeParse(value)
      if (!parsed.success) return undefined
      cache[key] = { ...parsed.data, _filename: key, id: key }
    }
    return cache
  } catch (error) {
    const code = (error as { code?: string }).code
    if (code === 'REMOTE_UNAVAILABLE' || code === 'REMOTE_TIMEOUT') throw error
    return undefined
  }
}

export async function writeCache(handler: RemoteHandler, vmUuid: string, cache: VmBackupCache): Promise<void> {
  await handler.writeFile(cachePath(vmUuid), await gzipAsync(JSON.stringify(cache)))
}

/** Reads every backup JSON of the VM (unreadable ones are reported and left out: the cleaner handles them). */
export async function generateCache(handler: RemoteHandler, vmUuid: string, warn: RepositoryWarning = () => {}): Promise<VmBackupCache> {
  const cache: VmBackupCache = {}
  for (const name of await handler.list(vmDir(vmUuid), { ignoreMissing: true })) {
    if (!METADATA_FILE.test(name)) continue
    const id = backupId(vmUuid, name.slice(0, -'.json'.length))
    try {
      cache[id] = { ...parseBackupMetadata(await handler.readFile(id), id), _filename: id, id }
    } catch (error) {
      if ((error as { code?: string }).code === 'REMOTE_UNAVAILABLE') throw error
      warn("can't read VM backup metadata", { file: id, error: (error as Error).message })
    }
  }
  return cache
}

// Writes and deletes of one process patch a cache one at a time (XO: synchronized.withKey).
const pending = new Map<string, Promise<unknown>>()

/** Applies fn to the VM's cache if there is one; without a cache nothing is done (the next listing regenerates it). */
export function updateCache(handler: RemoteHandler, vmUuid: string, fn: (cache: VmBackupCache) => void): Promise<void> {
  const key = `${handler.label}\0${vmUuid}`
  const previous = pending.get(key) ?? Promise.resolve()
  const next = previous.catch(() => {}).then(async () => {
    const cache = await readCache(handler, vmUuid)
    if (cache === undefined) return
    fn(cache)
    await writeCache(handler, vmUuid, cache)
  })
  pending.set(key, next)
  void next.finally(() => pending.get(key) === next && pending.delete(key)).catch(() => {})
  return next
}
