// Writing and deleting backups in XO's commit order: data via temporary name + rename (a VhdDirectory: its
// alias last), then the metadata JSON (the commit marker: a JSON present means a complete backup), then the cache.
import { createHash, type Hash } from 'node:crypto'
import {
  BlockHashRecorder, createVhdStream, isVhdAlias, openVhd, removeBlockHashes, writeBlockHashes, writeVhdAlias, writeVhdDirectory, type VhdStreamOptions,
} from '../formats/vhd/index.ts'
import { fileSystemAccess, type OutputStreamOptions, type RemoteHandler } from '../storage/index.ts'
import { updateCache } from './cache.ts'
import { formatFilenameDate, parseBackupDate, uniqueBackupTimestamp } from './dates.ts'
import { VHD_DIRECTORY_COMPRESSION } from './disk-format.ts'
import { aliasDataPath, backupId, METADATA_FILE, metadataPath, resolveInVmDir, vmDir } from './layout.ts'
import { serializeBackupMetadata, type BackupMetadata, type VmBackup } from './metadata.ts'

/** The timestamp and file-name date of a new backup of this VM, unique within its folder. */
export async function allocateBackupDate(handler: RemoteHandler, vmUuid: string, requested = Date.now()): Promise<{ timestamp: number; date: string }> {
  const taken = (await handler.list(vmDir(vmUuid), { ignoreMissing: true }))
    .filter(name => METADATA_FILE.test(name))
    .map(name => parseBackupDate(name.slice(0, -'.json'.length)))
    .filter((time): time is number => time !== undefined)
    .map(formatFilenameDate)
  const timestamp = uniqueBackupTimestamp(requested, taken)
  return { timestamp, date: formatFilenameDate(timestamp) }
}

export interface BackupFile {
  /** Where metadata names it, relative to the VM folder (`./<date>.xva`, `vdis/<job>/<vdi>/<date>.vhd`). */
  ref: string
  source: AsyncIterable<Buffer | Uint8Array>
  options?: OutputStreamOptions
}

/**
 * Writes one data file of a backup (atomically); returns its size. The backup exists only once its metadata
 * is written. An XVA gets XO's `<xva>.checksum` beside it (XO's cleaner warns about an XVA without one),
 * its md5 taken on the way through.
 */
export async function writeBackupFile(handler: RemoteHandler, vmUuid: string, file: BackupFile): Promise<number> {
  const path = resolveInVmDir(vmUuid, file.ref)
  if (!path.endsWith('.xva')) return handler.outputStream(path, file.source, file.options)
  const md5 = createHash('md5')
  const size = await handler.outputStream(path, hashed(file.source, md5), file.options)
  await handler.writeFile(`${path}.checksum`, formatXvaChecksum(md5.digest('hex')))
  return size
}

/**
 * Writes one delta disk of a backup as a VhdDirectory (XO's order: blocks, then header, footer and BAT, then the
 * alias, written last: until then no disk exists under its name). `ref` names the alias. Returns the bytes XO
 * records for it. A failure leaves at most a data/ entry no alias points at, which the cleaner removes.
 */
export async function writeBackupVhdDirectory(handler: RemoteHandler, vmUuid: string, ref: string, vhd: VhdStreamOptions, options: { signal?: AbortSignal } = {}): Promise<number> {
  const alias = resolveInVmDir(vmUuid, ref)
  const data = aliasDataPath(alias)
  const fs = fileSystemAccess(handler)
  const hashes = await BlockHashRecorder.create(vhd.blockIndexes.length)
  const { length } = await writeVhdDirectory(data, { ...vhd, blocks: hashes.record(untilAborted(vhd.blocks, options.signal)), fs, compression: VHD_DIRECTORY_COMPRESSION })
  await writeVhdAlias(fs, alias, data)
  await writeBackupBlockHashes(handler, alias, hashes)
  return length
}

/**
 * Writes one delta disk of a backup as a VHD file (temporary name + rename), `through` seeing its bytes on the way
 * (progress), then the sidecar of its block hashes. Returns its size.
 */
export async function writeBackupVhdFile(
  handler: RemoteHandler, vmUuid: string, ref: string, vhd: VhdStreamOptions,
  options: { signal?: AbortSignal; through?: (stream: AsyncIterable<Buffer>) => AsyncIterable<Buffer> } = {},
): Promise<number> {
  const path = resolveInVmDir(vmUuid, ref)
  const hashes = await BlockHashRecorder.create(vhd.blockIndexes.length)
  const { length, stream } = createVhdStream({ ...vhd, blocks: hashes.record(vhd.blocks) })
  const size = await handler.outputStream(path, options.through?.(stream) ?? stream, { length, ...(options.signal && { signal: options.signal }) })
  await writeBackupBlockHashes(handler, path, hashes)
  return size
}

/**
 * The sidecar of a disk just written, fingerprinted from the disk as it lies on the remote. Written after the disk
 * and before the metadata: a crash between the two leaves a disk no metadata names (the cleaner removes it).
 */
async function writeBackupBlockHashes(handler: RemoteHandler, path: string, hashes: BlockHashRecorder): Promise<void> {
  const fs = fileSystemAccess(handler)
  const vhd = await openVhd(path, { fs })
  try {
    await writeBlockHashes(fs, vhd, hashes.table())
  } finally {
    await vhd.close()
  }
}

/** The blocks, stopped with the signal's reason (a cancel, a timeout) between two of them. */
async function* untilAborted<T>(source: AsyncIterable<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
  for await (const item of source) {
    signal?.throwIfAborted()
    yield item
  }
}

/** Removes a data file a failed backup wrote (an XVA, a VHD, or an alias with its VhdDirectory); a missing one is fine. */
export async function discardBackupFile(handler: RemoteHandler, vmUuid: string, ref: string): Promise<void> {
  const path = resolveInVmDir(vmUuid, ref)
  await ignoreMissing(handler.unlink(path))
  if (isVhdAlias(path)) await handler.rmtree(aliasDataPath(path))
  if (path.endsWith('.vhd')) await removeBlockHashes(fileSystemAccess(handler), path)
}

async function* hashed(source: AsyncIterable<Buffer | Uint8Array>, hash: Hash): AsyncGenerator<Buffer | Uint8Array> {
  for await (const chunk of source) {
    hash.update(chunk)
    yield chunk
  }
}

/** XO's checksum file: `$1$$` (md5, as in crypt) and the hex digest. */
export function formatXvaChecksum(md5Hex: string): string {
  return `$1$$${md5Hex}`
}

/** The md5 hex of an XO checksum file, or undefined when it is not one. */
export function parseXvaChecksum(text: string): string | undefined {
  return /^\$1\$\$([0-9a-f]{32})\s*$/.exec(text)?.[1]
}

/** Writes the metadata JSON (the commit marker), then patches the cache. Returns the backup as listed. */
export async function writeBackupMetadata(handler: RemoteHandler, metadata: BackupMetadata): Promise<VmBackup> {
  const vmUuid = metadata.vm.uuid
  const date = formatFilenameDate(metadata.timestamp)
  await handler.writeFile(metadataPath(vmUuid, date), serializeBackupMetadata(metadata))
  const id = backupId(vmUuid, date)
  const backup: VmBackup = { ...metadata, _filename: id, id }
  await updateCache(handler, vmUuid, cache => void (cache[id] = backup))
  return backup
}

/**
 * A whole backup in commit order: every data file, then the metadata with `size` set to the bytes written.
 * A failure before the metadata leaves no backup (only data the cleaner removes as unreferenced).
 */
export async function commitBackup(handler: RemoteHandler, metadata: BackupMetadata, files: BackupFile[]): Promise<VmBackup> {
  let size = 0
  for (const file of files) size += await writeBackupFile(handler, metadata.vm.uuid, file)
  return writeBackupMetadata(handler, { ...metadata, size })
}

/**
 * Deletes backups, newest first, as XO's retention does: the JSON first (the backup is gone from then
 * on), then for a full backup its XVA and checksum. Delta VHDs are left for the cleaner, which merges
 * them into the backups that still need them.
 */
export async function deleteBackups(handler: RemoteHandler, backups: VmBackup[]): Promise<void> {
  for (const backup of [...backups].sort((a, b) => b.timestamp - a.timestamp)) {
    const vmUuid = backup.vm.uuid
    await ignoreMissing(handler.unlink(backup._filename))
    await updateCache(handler, vmUuid, cache => void delete cache[backup.id])
    if (backup.mode === 'full') {
      const xva = resolveInVmDir(vmUuid, backup.xva)
      await ignoreMissing(handler.unlink(xva))
      await ignoreMissing(handler.unlink(`${xva}.checksum`))
    }
  }
}

async function ignoreMissing(operation: Promise<void>): Promise<void> {
  try {
    await operation
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENOENT') throw error
  }
}
