// The cleaner (XO's clean-vm) for one VM folder: finishes interrupted merges, merges what retention left
// unreferenced into the backups that need it, and removes what a crash left broken, incomplete or stray.
import { createHash } from 'node:crypto'
import { posix } from 'node:path'
import { BLOCK_HASHES_SUFFIX, blockHashesPath } from '../formats/vhd/index.ts'
import { fileSystemAccess, TEMPORARY_FILE, type FileSystemAccess, type RemoteHandler } from '../storage/index.ts'
import type { Task } from '../tasks/index.ts'
import { mapConcurrently } from '../util/concurrency.ts'
import { errorCode, isLifeboatError } from '../util/errors.ts'
import { writeCache, type VmBackupCache } from './cache.ts'
import { forgetFiles, knownFile, rememberFile } from './known-files.ts'
import { parseXvaChecksum } from './commit.ts'
import { METADATA_FILE, resolveInVmDir, vmDir } from './layout.ts'
import { mergeChain, resumeInterruptedMerges } from './merge-backups.ts'
import { parseBackupMetadata, serializeBackupMetadata, type BackupMetadata, type DeltaBackupMetadata } from './metadata.ts'
import { deltaBackupProblem, diskSize, folderReads, listChainFolders, readChainFolder, unreferencedAncestors, type ChainDisk, type ChainFolder } from './vhd-chains.ts'

export interface CleanVmOptions {
  /** Merge unreferenced VHDs into the oldest kept backup that needs them (retention of delta chains). */
  merge?: boolean
  /**
   * Remove what is broken or unreferenced (orphan VHDs, temp files, incomplete backups, XVAs without JSON, broken
   * chains, aliases with a missing, empty or non-VHD target, VhdDirectories named like aliases, orphan data/ entries).
   */
  remove?: boolean
  signal?: AbortSignal
  /** Logs infos and warnings; each merge runs in a child task 'merge' (properties progress, size). */
  task?: Task
  warn?: (message: string, data?: unknown) => void
  /**
   * Temporary files last changed before this time (ms) are crash leftovers and removed. Default: when the
   * clean starts, since the caller holds the VM's lock and nobody else writes in the folder.
   */
  temporaryFilesBefore?: number
}

export interface CleanVmResult {
  /** VHDs merged into an ancestor. */
  merged: number
  mergedBytes: number
  /** Remote paths removed. */
  removed: string[]
  warnings: string[]
}

interface Backup {
  path: string
  metadata: BackupMetadata
}

/** What one clean knows and does: the options, the outcome so far, and how it logs and removes. */
class Clean {
  readonly result: CleanVmResult = { merged: 0, mergedBytes: 0, removed: [], warnings: [] }
  readonly fs: FileSystemAccess
  readonly handler: RemoteHandler
  readonly options: CleanVmOptions

  constructor(handler: RemoteHandler, options: CleanVmOptions) {
    this.handler = handler
    this.options = options
    this.fs = fileSystemAccess(handler)
  }

  get removing(): boolean {
    return this.options.remove !== false
  }

  warn(message: string, data: Record<string, unknown>): void {
    this.result.warnings.push(`${message}: ${String(data.path ?? data.folder ?? '')}`.replace(/: $/, ''))
    this.options.warn?.(message, data)
    this.options.task?.warning(message, data)
  }

  info(message: string, data: Record<string, unknown>): void {
    this.options.task?.info(message, data)
  }

  /** Removes a file when removing is on; a file already gone is fine, and not reported (a delete cannot tell on object stores). */
  async remove(path: string): Promise<void> {
    if (!this.removing) return
    try {
      await this.handler.stat(path)
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error
      return
    }
    forgetFiles(this.handler, [path])
    await this.handler.unlink(path)
    this.result.removed.push(path)
  }

  /** Removes a folder and all it holds (a VhdDirectory) when removing is on; one already gone is fine. */
  async removeTree(path: string): Promise<void> {
    if (!this.removing) return
    await this.handler.rmtree(path)
    this.result.removed.push(path)
  }

  /**
   * Removes a disk: a VHD file, or an alias and then its target (a crash between the two leaves an orphan data/
   * entry, which the next clean removes). A target outside the folder's data/ is never touched.
   */
  async removeDisk(folder: string, disk: ChainDisk): Promise<void> {
    await this.remove(blockHashesPath(disk.path))
    if (disk.folder) return this.removeTree(disk.path)
    await this.remove(disk.path)
    if (disk.target === undefined || !disk.target.startsWith(`${folder}/data/`)) return
    const target = await this.handler.stat(disk.target).catch(error => (errorCode(error) === 'ENOENT' ? undefined : Promise.reject(error)))
    if (target?.isDirectory === true) await this.removeTree(disk.target)
    else if (target !== undefined) await this.remove(disk.target)
  }

  checkpoint(): void {
    this.options.signal?.throwIfAborted()
  }
}

/** Repairs and merges one VM folder (caller holds its lock). Interrupted merges are resumed FIRST (before orphan detection). */
export async function cleanVm(handler: RemoteHandler, vmUuid: string, options: CleanVmOptions = {}): Promise<CleanVmResult> {
  const clean = new Clean(handler, options)
  const temporaryFilesBefore = options.temporaryFilesBefore ?? Date.now()
  const rootNames = await handler.list(vmDir(vmUuid), { ignoreMissing: true })
  if (rootNames.length === 0) return clean.result

  const folderPaths = await listChainFolders(handler, vmUuid)
  const blocked = await resumeMerges(clean, folderPaths)
  const backups = await readBackups(clean, vmUuid, rootNames)
  const folders = await readFolders(clean, folderPaths, blocked)
  const disks = new Map<string, ChainDisk>()
  for (const folder of folders) for (const disk of folder.disks.values()) disks.set(disk.path, disk)

  const complete = await removeIncompleteBackups(clean, vmUuid, backups, disks, blocked)
  const referenced = new Set<string>()
  for (const backup of complete) if (backup.metadata.mode === 'delta') for (const path of vhdPaths(vmUuid, backup.metadata)) referenced.add(path)
  const merges = await removeUnusedDisks(clean, folders, referenced)
  const mergedInto = options.merge === false ? new Map() : await runMerges(clean, merges)

  await updateMergedMetadata(clean, vmUuid, complete, disks, mergedInto)
  await removeStrayFiles(clean, vmUuid, rootNames, complete, folderPaths, temporaryFilesBefore)
  if (clean.removing) await removeEmptyFolders(handler, folders.map(folder => folder.path))

  const cache: VmBackupCache = {}
  for (const { path, metadata } of clean.removing ? complete : backups) cache[`/${path}`] = { ...metadata, _filename: `/${path}`, id: `/${path}` }
  await writeCache(handler, vmUuid, cache)
  return clean.result
}

/** Finishes the merges a crash interrupted; returns the folders where that failed, to be left as they are. */
async function resumeMerges(clean: Clean, folderPaths: string[]): Promise<Set<string>> {
  const blocked = new Set<string>()
  for (const folder of folderPaths) {
    clean.checkpoint()
    try {
      const resumed = await resumeInterruptedMerges(clean.handler, clean.fs, folder, clean.options.task)
      if (resumed === undefined) continue
      clean.result.merged += resumed.merged
      clean.info('interrupted merge finished', { folder })
    } catch (error) {
      clean.checkpoint()
      // Its disks are half-merged: removing or merging anything there could lose a kept backup.
      blocked.add(folder)
      clean.warn('an interrupted merge could not be finished; this disk folder is left as it is', { folder, error: (error as Error).message })
    }
  }
  return blocked
}

/** The chain folders the clean may change; folders it cannot judge are added to `blocked`. */
async function readFolders(clean: Clean, folderPaths: string[], blocked: Set<string>): Promise<ChainFolder[]> {
  const folders: ChainFolder[] = []
  for (const path of folderPaths) {
    clean.checkpoint()
    if (blocked.has(path)) continue
    const folder = await readChainFolder(clean.handler, clean.fs, path, { remember: true })
    if (folder.forks.length > 0) {
      blocked.add(path)
      clean.warn(`this disk folder is left as it is: a disk has several children (${folder.forks.join(', ')})`, { folder: path })
      continue
    }
    folders.push(folder)
  }
  return folders
}

/**
 * Removes the VHDs no backup needs, and returns the merges to do: each referenced disk with the
 * unreferenced ancestors above it, oldest first (`[ancestor…, referenced]`).
 */
async function removeUnusedDisks(clean: Clean, folders: ChainFolder[], referenced: Set<string>): Promise<ChainDisk[][]> {
  const merges: ChainDisk[][] = []
  for (const folder of folders) {
    clean.checkpoint()
    const claimed = new Set<string>()
    for (const disk of folder.disks.values()) {
      if (!referenced.has(disk.path)) continue
      const ancestors = unreferencedAncestors(folder, disk, referenced)
      if (ancestors.length === 0) continue
      merges.push([...ancestors, disk])
      for (const ancestor of ancestors) claimed.add(ancestor.path)
    }
    for (const disk of folder.disks.values()) {
      if (referenced.has(disk.path) || claimed.has(disk.path)) continue
      if (disk.broken !== undefined) clean.warn('broken VHD', { path: disk.path, reason: disk.broken })
      else clean.info('unused VHD', { path: disk.path })
      await clean.removeDisk(folder.path, disk)
    }
    for (const path of folder.orphanData) {
      clean.warn('VhdDirectory no alias points at (orphaned data)', { path })
      await clean.removeTree(path)
    }
  }
  return merges
}

/** Runs the merges; returns what each merged disk became (its oldest ancestor's type, a new size). */
async function runMerges(clean: Clean, merges: ChainDisk[][]): Promise<Map<string, { differencing: boolean; size: number }>> {
  const { task, signal } = clean.options
  const mergedInto = new Map<string, { differencing: boolean; size: number }>()
  for (const chain of merges) {
    clean.checkpoint()
    const target = chain[chain.length - 1]!
    try {
      const outcome = await mergeChain(clean.handler, clean.fs, chain.map(disk => disk.path), { ...(task && { task }), ...(signal && { signal }) })
      clean.result.merged += outcome.merged
      clean.result.mergedBytes += outcome.mergedBytes
      mergedInto.set(target.path, { differencing: chain[0]!.differencing, size: await diskSize(clean.handler, clean.fs, target.path) })
    } catch (error) {
      clean.checkpoint()
      clean.warn('merge failed; it is resumed by the next clean', { path: target.path, error: (error as Error).message })
    }
  }
  return mergedInto
}

/** Every backup JSON of the folder; one that does not parse is unusable and removed. */
async function readBackups(clean: Clean, vmUuid: string, rootNames: string[]): Promise<Backup[]> {
  const dir = vmDir(vmUuid)
  const paths = rootNames.filter(name => METADATA_FILE.test(name)).map(name => `${dir}/${name}`)
  const read = await mapConcurrently(paths, folderReads(clean.handler), async path => {
    try {
      const statAt = Date.now()
      const stat = await clean.handler.stat(path)
      const known = knownFile<BackupMetadata>(clean.handler, path, stat)
      if (known !== undefined) return { path, metadata: known, error: undefined }
      const metadata = parseBackupMetadata(await clean.handler.readFile(path), path)
      rememberFile(clean.handler, path, stat, metadata, statAt)
      return { path, metadata, error: undefined }
    } catch (error) {
      if (!isLifeboatError(error, 'REPOSITORY_BAD_METADATA')) throw error
      return { path, metadata: undefined, error }
    }
  })
  const backups: Backup[] = []
  for (const { path, metadata, error } of read) {
    if (metadata !== undefined) backups.push({ path, metadata })
    else {
      clean.warn('unreadable backup metadata', { path, error: error?.message })
      await clean.remove(path)
    }
  }
  return backups
}

function vhdPaths(vmUuid: string, metadata: DeltaBackupMetadata): string[] {
  return Object.values(metadata.vhds).map(ref => resolveInVmDir(vmUuid, ref))
}

/** Why a backup cannot be restored (data missing or broken), else undefined; disks in blocked folders are not judged. */
async function incompleteReason(clean: Clean, vmUuid: string, metadata: BackupMetadata, disks: Map<string, ChainDisk>, blocked: Set<string>): Promise<string | undefined> {
  if (metadata.mode === 'full') {
    try {
      const xva = resolveInVmDir(vmUuid, metadata.xva)
      const { size } = await clean.handler.stat(xva)
      if (metadata.size !== undefined && size !== metadata.size) clean.warn('the XVA size differs from the metadata', { path: metadata.xva, size, expected: metadata.size })
      await checkXvaChecksum(clean, xva)
      return undefined
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return `its XVA ${metadata.xva} is missing`
      if (isLifeboatError(error, 'REPOSITORY_BAD_REFERENCE')) return error.message
      throw error
    }
  }
  return deltaBackupProblem(vmUuid, metadata, disks, blocked)?.reason
}

/** XO's `<xva>.checksum`, when there is one, against the XVA's md5: a mismatch is reported, never a reason to delete. */
async function checkXvaChecksum(clean: Clean, xva: string): Promise<void> {
  let text: string
  try {
    text = (await clean.handler.readFile(`${xva}.checksum`)).toString()
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return
    throw error
  }
  const expected = parseXvaChecksum(text)
  if (expected === undefined) return clean.warn('the XVA checksum file is not in XO\'s form ($1$$<md5 hex>); the XVA is not checked', { path: `${xva}.checksum` })
  const md5 = createHash('md5')
  for await (const chunk of await clean.handler.createReadStream(xva)) md5.update(chunk as Buffer)
  const actual = md5.digest('hex')
  if (actual !== expected) clean.warn('the XVA does not match its checksum (changed or damaged since the backup); it is kept: check it before restoring it', { path: xva, expected, actual })
}

/** The backups that can be restored; the JSON of the others is removed (the backup is incomplete). */
async function removeIncompleteBackups(clean: Clean, vmUuid: string, backups: Backup[], disks: Map<string, ChainDisk>, blocked: Set<string>): Promise<Backup[]> {
  const complete: Backup[] = []
  for (const backup of backups) {
    const reason = await incompleteReason(clean, vmUuid, backup.metadata, disks, blocked)
    if (reason === undefined) {
      complete.push(backup)
      continue
    }
    clean.warn('incomplete backup', { path: backup.path, reason })
    await clean.remove(backup.path)
    if (backup.metadata.mode === 'full' && clean.removing) {
      try {
        await clean.remove(`${resolveInVmDir(vmUuid, backup.metadata.xva)}.checksum`)
      } catch (error) {
        if (!isLifeboatError(error, 'REPOSITORY_BAD_REFERENCE')) throw error
      }
    }
  }
  return complete
}

/**
 * After merges the kept backups' disks are no longer differencing and their size changed: XO rewrites
 * `size` and `isVhdDifferencing`. Metadata a crash left stale (merge done, JSON not yet rewritten) is caught too.
 */
async function updateMergedMetadata(clean: Clean, vmUuid: string, backups: Backup[], disks: Map<string, ChainDisk>, mergedInto: Map<string, { differencing: boolean; size: number }>): Promise<void> {
  backups: for (const backup of backups) {
    const { metadata } = backup
    if (metadata.mode !== 'delta') continue
    let merged = false
    let stale = false
    let size = 0
    const isVhdDifferencing: Record<string, boolean> = {}
    for (const [ref, vhd] of Object.entries(metadata.vhds)) {
      const path = resolveInVmDir(vmUuid, vhd)
      const disk = mergedInto.get(path) ?? disks.get(path)
      if (disk === undefined) continue backups // in a folder left untouched: nothing to say about it
      merged ||= mergedInto.has(path)
      const recorded = metadata.isVhdDifferencing?.[ref]
      stale ||= recorded !== undefined && recorded !== disk.differencing
      isVhdDifferencing[ref] = disk.differencing
      size += disk.size
    }
    if (!merged && !stale) continue
    const updated: DeltaBackupMetadata = { ...metadata, size, isVhdDifferencing }
    try {
      forgetFiles(clean.handler, [backup.path])
      await clean.handler.writeFile(backup.path, serializeBackupMetadata(updated))
    } catch (error) {
      if (!isLifeboatError(error, 'REPOSITORY_BAD_METADATA')) throw error
      clean.warn("the merged backup's metadata could not be updated", { path: backup.path, error: error.message })
      continue
    }
    backup.metadata = updated
    clean.info('backup metadata updated after a merge', { path: backup.path, size })
  }
}

/**
 * The folders of the VhdDirectories kept in chain folders, and their `blocks/<n>` folders: a write killed there
 * leaves a temporary file. Only where writes go through a temporary name (atomic rename): object stores leave none.
 */
async function vhdDirectoryFolders(clean: Clean, chainFolders: string[]): Promise<string[]> {
  if (!clean.handler.capabilities.atomicRename) return []
  const out: string[] = []
  for (const folder of chainFolders) {
    for (const name of await clean.handler.list(`${folder}/data`, { ignoreMissing: true })) {
      const data = `${folder}/data/${name}`
      out.push(data, ...(await clean.handler.list(`${data}/blocks`, { ignoreMissing: true }).catch(() => [])).map(group => `${data}/blocks/${group}`))
    }
  }
  return out
}

/** Temporary files a crash left, and XVAs (with their checksums) that no backup names. */
async function removeStrayFiles(clean: Clean, vmUuid: string, rootNames: string[], complete: Backup[], folders: string[], before: number): Promise<void> {
  const dir = vmDir(vmUuid)
  const xvas = new Set(complete.flatMap(({ metadata }) => (metadata.mode === 'full' ? [resolveInVmDir(vmUuid, metadata.xva)] : [])))
  for (const name of rootNames) {
    const path = `${dir}/${name}`
    const xva = name.endsWith('.xva.checksum') ? path.slice(0, -'.checksum'.length) : name.endsWith('.xva') ? path : undefined
    if (xva !== undefined && !name.startsWith('.') && !xvas.has(xva)) {
      clean.warn('XVA without backup metadata', { path })
      await clean.remove(path)
    }
  }
  for (const folder of folders) await removeOrphanBlockHashes(clean, folder)
  for (const folder of [dir, ...folders, ...(await vhdDirectoryFolders(clean, folders))]) {
    for (const name of await clean.handler.list(folder, { ignoreMissing: true })) {
      if (!TEMPORARY_FILE.test(name)) continue
      const path = `${folder}/${name}`
      const stat = await clean.handler.stat(path).catch(error => (errorCode(error) === 'ENOENT' ? undefined : Promise.reject(error)))
      if (stat === undefined || stat.mtimeMs >= before) continue
      clean.warn('temporary file left by an interrupted write', { path })
      await clean.remove(path)
    }
  }
}

/**
 * Block hash sidecars whose VHD is gone (removed or renamed by XO, which does not know them), and the merged hashes a
 * merge keeps beside its state file (`.<ancestor>.merge.lifeboat-hashes`) once that state file is gone.
 */
async function removeOrphanBlockHashes(clean: Clean, folder: string): Promise<void> {
  const names = new Set(await clean.handler.list(folder, { ignoreMissing: true }))
  for (const name of names) {
    if (!name.endsWith(BLOCK_HASHES_SUFFIX)) continue
    const owner = name.slice(0, -BLOCK_HASHES_SUFFIX.length)
    if (names.has(owner) || names.has(`${owner}.json`)) continue
    clean.info('block hashes of a VHD that is gone', { path: `${folder}/${name}` })
    await clean.remove(`${folder}/${name}`)
  }
}

/** Chain folders (their data/ folder, and their job folders) emptied by the clean. */
async function removeEmptyFolders(handler: RemoteHandler, folders: string[]): Promise<void> {
  /** False when the folder stays (not empty, or already gone). */
  const rmdir = async (path: string): Promise<boolean> => {
    try {
      await handler.rmdir(path)
      return true
    } catch (error) {
      if (!['ENOTEMPTY', 'EEXIST', 'ENOENT'].includes(errorCode(error))) throw error
      return false
    }
  }
  for (const folder of folders) {
    await rmdir(`${folder}/data`)
    if (await rmdir(folder)) await rmdir(posix.dirname(folder))
  }
}
