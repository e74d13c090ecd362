// The delta chains of one VM folder as the cleaner sees them: every disk of every `vdis/<job>/<vdi>/` folder (a
// VHD file, or an alias and its VhdDirectory under data/) opened, linked to its parent by relative name and
// uuid, and marked broken when it or an ancestor is.
import { posix } from 'node:path'
import { isVhdAlias, openVhd, readVhdAlias, vhdStreamLength, type Vhd } from '../formats/vhd/index.ts'
import { DISK_TYPE_DIFFERENCING } from '../formats/vhd/structures.ts'
import { fileSystemAccess, type EntryStat, type FileSystemAccess, type RemoteHandler } from '../storage/index.ts'
import { mapConcurrently } from '../util/concurrency.ts'
import { errorCode, isLifeboatError, type LifeboatError } from '../util/errors.ts'
import { diskFormat, type DiskFormat } from './disk-format.ts'
import { knownFile, rememberFile } from './known-files.ts'
import { resolveInVmDir, vmDir } from './layout.ts'
import type { DeltaBackupMetadata } from './metadata.ts'

/** One disk of a chain folder: a VHD file, or an alias and the VhdDirectory it points at. */
export interface ChainDisk {
  /** Remote path (relative to the remote's root): the VHD file or the alias, as metadata names it. */
  path: string
  /** For an alias: what it points at (remote path), removed with it when it lies in the folder's data/. */
  target: string | undefined
  /** The path is itself a folder (a VhdDirectory named like an alias, which XO removes). */
  folder: boolean
  /** Undefined when the disk does not open. */
  format: DiskFormat | undefined
  /** Footer uuid: the exported snapshot VDI's uuid. */
  uuid: string
  differencing: boolean
  /** Bytes on the remote for a file; the VHD stream's size for a VhdDirectory (what XO records). */
  size: number
  /** The parent's remote path, for a differencing disk whose parent is present and matches. */
  parent: string | undefined
  /** Why the disk cannot be read as a whole disk (it or an ancestor is unreadable or missing), else undefined. */
  broken: string | undefined
  /** The error code of `broken` (VHD_TRUNCATED, VHD_PARENT_MISSING, VHD_BAD_ALIAS…), for reports. */
  brokenCode: string | undefined
}

/** A `vdis/<job>/<vdi>` folder: its disks by path, and the files the cleaner looks at besides them. */
export interface ChainFolder {
  path: string
  disks: Map<string, ChainDisk>
  /** Entries of `data/` no alias points at (a write cut before its alias, a merge's leftover): XO deletes them. */
  orphanData: string[]
  /** Parents with more than one child: XO refuses to clean such a folder, and so do we. */
  forks: string[]
}

const VHD_FILE = /^[^.].*\.vhd$/
const DATA_FOLDER = 'data'
/**
 * Files of a VM folder read at once (a disk's header, footer and table; a backup's JSON), within the remote's
 * connection limit: each is a few small reads, so a folder of 30 restore points costs a few round trips more
 * than one of 3, not ten times as many.
 */
export const folderReads = (handler: RemoteHandler): number => Math.max(1, Math.min(8, handler.capabilities.connections))

/** The chain folders of a VM (`vdis/<jobId>/<vdiUuid>`), remote paths. */
export async function listChainFolders(handler: RemoteHandler, vmUuid: string): Promise<string[]> {
  const vdis = `${vmDir(vmUuid)}/vdis`
  const folders: string[] = []
  for (const job of await handler.list(vdis, { ignoreMissing: true })) {
    if (!(await isFolder(handler, `${vdis}/${job}`))) continue
    for (const vdi of await handler.list(`${vdis}/${job}`, { ignoreMissing: true })) {
      if (await isFolder(handler, `${vdis}/${job}/${vdi}`)) folders.push(`${vdis}/${job}/${vdi}`)
    }
  }
  return folders
}

async function isFolder(handler: RemoteHandler, path: string): Promise<boolean> {
  try {
    return (await handler.stat(path)).isDirectory
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false
    throw error
  }
}

/** What makes a disk unreadable (a bad VHD, a bad alias or a missing target) rather than the remote failing. */
function isDiskProblem(error: unknown): error is LifeboatError {
  return isLifeboatError(error) && (error.code.startsWith('VHD_') || error.code === 'FILE_NOT_FOUND')
}

interface ParentName {
  parentName: string
  parentUuid: string
}

/** Opens one disk of a folder (a VHD file, or an alias and its target), or says why it is broken; with its parent's name for a differencing disk. */
async function readDisk(handler: RemoteHandler, fs: FileSystemAccess, folder: string, name: string, remember: boolean): Promise<FoundDisk> {
  const path = `${folder}/${name}`
  const statAt = Date.now()
  const stat = await handler.stat(path)
  // Only VHD files: an alias keeps its size and time while a merge changes the VhdDirectory it points at.
  const known = remember && !isVhdAlias(name) ? knownFile<FoundDisk>(handler, path, stat) : undefined
  if (known !== undefined) return { disk: { ...known.disk }, ...(known.parent && { parent: { ...known.parent } }) }
  const found = await openDisk(fs, folder, path, name, stat)
  if (remember && !isVhdAlias(name) && found.disk.broken === undefined) rememberFile(handler, path, stat, { disk: { ...found.disk }, parent: found.parent }, statAt)
  return found
}

type FoundDisk = { disk: ChainDisk; parent?: ParentName }

async function openDisk(fs: FileSystemAccess, folder: string, path: string, name: string, stat: EntryStat): Promise<FoundDisk> {
  const disk: ChainDisk = { path, target: undefined, folder: false, format: undefined, uuid: '', differencing: false, size: 0, parent: undefined, broken: undefined, brokenCode: undefined }
  if (isVhdAlias(name)) {
    if (stat.isDirectory) return { disk: { ...disk, folder: true, broken: 'it is a VhdDirectory named like an alias', brokenCode: 'VHD_BAD_ALIAS' } }
    let target: string
    try {
      target = await readVhdAlias(fs, path)
    } catch (error) {
      if (!isDiskProblem(error)) throw error
      return { disk: { ...disk, broken: `its alias is unusable: ${error.message}`, brokenCode: error.code } }
    }
    disk.target = target
    if (!target.endsWith('.vhd')) return { disk: { ...disk, broken: `its alias points at ${posix.relative(folder, target)}, which is not a VHD`, brokenCode: 'VHD_BAD_ALIAS' } }
  } else {
    disk.size = stat.size
  }
  let vhd: Vhd
  try {
    vhd = await openVhd(path, { fs })
  } catch (error) {
    if (!isDiskProblem(error)) throw error
    const aliasToNowhere = disk.target !== undefined && error.code === 'FILE_NOT_FOUND'
    return {
      disk: {
        ...disk,
        broken: disk.target === undefined ? error.message : `the VhdDirectory of its alias is missing or unusable: ${error.message}`,
        brokenCode: aliasToNowhere ? 'VHD_ALIAS_TARGET_MISSING' : error.code,
      },
    }
  }
  try {
    disk.format = diskFormat(vhd)
    disk.uuid = vhd.footer.uuid
    disk.differencing = vhd.footer.diskType === DISK_TYPE_DIFFERENCING
    if (disk.format.kind === 'directory') disk.size = directorySize(vhd)
    return { disk, ...(disk.differencing && { parent: { parentName: vhd.header.parentUnicodeName, parentUuid: vhd.header.parentUuid } }) }
  } finally {
    await vhd.close()
  }
}

// What XO records for a VhdDirectory (its streamSize): the VHD file it would be, not its compressed chunks.
function directorySize(vhd: Vhd): number {
  return vhdStreamLength(vhd.footer.currentSize, vhd.allocatedBlocks().length)
}

/** A disk's size as ChainDisk.size gives it, read again (a merge changed it). */
export async function diskSize(handler: RemoteHandler, fs: FileSystemAccess, path: string): Promise<number> {
  if (!isVhdAlias(path)) return (await handler.stat(path)).size
  const vhd = await openVhd(path, { fs })
  try {
    return directorySize(vhd)
  } finally {
    await vhd.close()
  }
}

/**
 * Opens every disk of a chain folder (VHD files and aliases). A disk that does not open is broken (an alias
 * empty, missing its target or pointing at no VHD too); so is a differencing disk whose parent is missing,
 * broken, or not the disk its header names (uuid). Remote failures are thrown.
 */
export async function readChainFolder(handler: RemoteHandler, fs: FileSystemAccess, folder: string, options: { remember?: boolean } = {}): Promise<ChainFolder> {
  const names = await handler.list(folder)
  const result: ChainFolder = { path: folder, disks: new Map(), orphanData: [], forks: [] }
  const headers = new Map<string, ParentName>()
  const read = await mapConcurrently(names.filter(name => VHD_FILE.test(name)), folderReads(handler), name => readDisk(handler, fs, folder, name, options.remember === true))
  for (const { disk, parent } of read) {
    result.disks.set(disk.path, disk)
    if (parent !== undefined) headers.set(disk.path, parent)
  }
  if (names.includes(DATA_FOLDER)) {
    const targets = new Set([...result.disks.values()].map(disk => disk.target))
    for (const name of await handler.list(`${folder}/${DATA_FOLDER}`, { ignoreMissing: true })) {
      const path = `${folder}/${DATA_FOLDER}/${name}`
      if (!targets.has(path)) result.orphanData.push(path)
    }
  }

  for (const [path, { parentName, parentUuid }] of headers) {
    const disk = result.disks.get(path)!
    const parentPath = posix.join(folder, parentName)
    const parent = posix.dirname(parentPath) === folder ? result.disks.get(parentPath) : undefined
    if (parent === undefined) Object.assign(disk, { broken: `its parent "${parentName}" is missing`, brokenCode: 'VHD_PARENT_MISSING' })
    else if (parent.broken === undefined && parent.uuid !== parentUuid) {
      Object.assign(disk, { broken: `its parent ${parentName} is not the disk it was made from (uuid ${parent.uuid}, expected ${parentUuid})`, brokenCode: 'VHD_PARENT_MISMATCH' })
    } else disk.parent = parentPath
  }

  const children = new Map<string, number>()
  for (const disk of result.disks.values()) if (disk.parent !== undefined) children.set(disk.parent, (children.get(disk.parent) ?? 0) + 1)
  result.forks = [...children].filter(([, count]) => count > 1).map(([path]) => path)

  for (const disk of result.disks.values()) {
    const reason = ancestorProblem(result.disks, disk)
    if (reason !== undefined && disk.broken === undefined) Object.assign(disk, { broken: reason, brokenCode: 'VHD_BROKEN_CHAIN' })
  }
  return result
}

/** Why an ancestor of `disk` is unusable (broken, or a loop), else undefined. */
function ancestorProblem(disks: Map<string, ChainDisk>, disk: ChainDisk): string | undefined {
  const seen = new Set([disk.path])
  for (let current = disk; current.parent !== undefined; ) {
    if (seen.has(current.parent)) return 'its parent chain loops'
    seen.add(current.parent)
    current = disks.get(current.parent)!
    if (current.broken !== undefined) return `its ancestor ${posix.basename(current.path)} is unusable (${current.broken})`
  }
  return undefined
}

/** The disk's ancestors no backup references, oldest first, stopping at the first referenced one or the root. */
export function unreferencedAncestors(folder: ChainFolder, disk: ChainDisk, referenced: ReadonlySet<string>): ChainDisk[] {
  const out: ChainDisk[] = []
  for (let parent = disk.parent; parent !== undefined && !referenced.has(parent); parent = folder.disks.get(parent)!.parent) {
    out.unshift(folder.disks.get(parent)!)
  }
  return out
}

/** What keeps a delta backup from being restored: its code, a sentence, and the remote path it concerns. */
export interface BackupProblem {
  code: string
  reason: string
  path: string
}

/**
 * Why a delta backup cannot be restored from the chain folders read (a disk it names is outside its folder,
 * missing, or broken), else undefined. Disks in `skipped` folders are not judged. The cleaner removes such a
 * backup; verify reports it.
 */
export function deltaBackupProblem(vmUuid: string, metadata: DeltaBackupMetadata, disks: ReadonlyMap<string, ChainDisk>, skipped: ReadonlySet<string> = new Set()): BackupProblem | undefined {
  for (const ref of Object.values(metadata.vhds)) {
    let path: string
    try {
      path = resolveInVmDir(vmUuid, ref)
    } catch (error) {
      if (isLifeboatError(error, 'REPOSITORY_BAD_REFERENCE')) return { code: error.code, reason: error.message, path: `${vmDir(vmUuid)}/${ref}` }
      throw error
    }
    if (skipped.has(posix.dirname(path))) continue
    const disk = disks.get(path)
    if (disk === undefined) return { code: 'VHD_MISSING', reason: `its disk ${ref} is missing`, path }
    if (disk.broken !== undefined) return { code: disk.brokenCode ?? 'VHD_BROKEN', reason: `its disk ${ref} is unusable: ${disk.broken.replaceAll(`${path}: `, '')}`, path }
  }
  return undefined
}

/**
 * The disk of a chain folder whose footer is the base snapshot's, newest first, or why none can take a delta. A
 * disk that does not open is passed over (the base may be another; the clean removes what is broken).
 */
export async function findBaseDisk(handler: RemoteHandler, folder: string, baseUuid: string, remote: string): Promise<{ disk: string } | { refusal: string }> {
  const names = (await handler.list(folder, { ignoreMissing: true })).filter(file => file.endsWith('.vhd') && !file.startsWith('.')).sort()
  if (names.length === 0) return { refusal: `no earlier backup of this disk on remote ${remote}` }
  const fs = fileSystemAccess(handler)
  // Children are newer than their parent: by the time the base is reached, every disk that could name it is read.
  const parents = new Set<string>()
  for (const name of names.reverse()) {
    const vhd = await openVhd(`${folder}/${name}`, { fs }).catch(error => (isDiskProblem(error) ? undefined : Promise.reject(error)))
    if (vhd === undefined) continue
    const { uuid } = vhd.footer
    const parent = vhd.footer.diskType === DISK_TYPE_DIFFERENCING ? posix.basename(vhd.header.parentUnicodeName) : undefined
    await vhd.close()
    if (uuid === baseUuid) {
      return parents.has(name) ? { refusal: `the backup of the base snapshot on remote ${remote} (${name}) already has a delta after it: another would fork its chain` } : { disk: name }
    }
    if (parent !== undefined) parents.add(parent)
  }
  return { refusal: `no backup of this disk on remote ${remote} is of the base snapshot ${baseUuid} (its chain was removed, or made by another job)` }
}
