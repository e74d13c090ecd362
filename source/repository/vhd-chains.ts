// The delta chains of one VM folder as the cleaner sees them: every VHD of every `vdis/<job>/<vdi>/` folder
// opened once, linked to its parent by relative name and uuid, and marked broken when it or an ancestor is.
import { posix } from 'node:path'
import { VhdFile } from '../formats/vhd/index.ts'
import { DISK_TYPE_DIFFERENCING } from '../formats/vhd/structures.ts'
import type { FileSystemAccess, RemoteHandler } from '../storage/index.ts'
import { errorCode, isLifeboatError } from '../util/errors.ts'
import { vmDir } from './layout.ts'

/** One VHD file of a chain folder. */
export interface ChainDisk {
  /** Remote path (relative to the remote's root). */
  path: string
  /** Footer uuid: the exported snapshot VDI's uuid. */
  uuid: string
  differencing: boolean
  /** Bytes on the remote. */
  size: number
  /** The parent's remote path, for a differencing disk whose parent is present and matches. */
  parent: string | undefined
  /** Why the disk cannot be read as a whole disk (it or an ancestor is unreadable or missing), else undefined. */
  broken: string | undefined
}

/** A `vdis/<job>/<vdi>` folder: its disks by path, and the files the cleaner looks at besides them. */
export interface ChainFolder {
  path: string
  disks: Map<string, ChainDisk>
  /** Names Lifeboat does not handle (VhdDirectory aliases, `data/`): the folder is then left untouched. */
  unsupported: string[]
  /** Parents with more than one child: XO refuses to clean such a folder, and so do we. */
  forks: string[]
}

const VHD_FILE = /^[^.].*\.vhd$/
const ALIAS_FILE = /\.alias\.vhd$/

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

/**
 * Opens every VHD of a chain folder. A file that does not open as a VHD is broken; so is a differencing
 * disk whose parent is missing, broken, or not the disk its header names (uuid). Remote failures are thrown.
 */
export async function readChainFolder(handler: RemoteHandler, fs: FileSystemAccess, folder: string): Promise<ChainFolder> {
  const names = await handler.list(folder)
  const result: ChainFolder = { path: folder, disks: new Map(), unsupported: names.filter(name => ALIAS_FILE.test(name) || name === 'data'), forks: [] }
  const headers = new Map<string, { parentName: string; parentUuid: string }>()
  for (const name of names) {
    if (!VHD_FILE.test(name) || ALIAS_FILE.test(name)) continue
    const path = `${folder}/${name}`
    const size = (await handler.stat(path)).size
    let file: VhdFile
    try {
      file = await VhdFile.open(path, { fs })
    } catch (error) {
      if (!isLifeboatError(error) || !error.code.startsWith('VHD_')) throw error
      result.disks.set(path, { path, uuid: '', differencing: false, size, parent: undefined, broken: error.message })
      continue
    }
    await file.close()
    const differencing = file.footer.diskType === DISK_TYPE_DIFFERENCING
    result.disks.set(path, { path, uuid: file.footer.uuid, differencing, size, parent: undefined, broken: undefined })
    if (differencing) headers.set(path, { parentName: file.header.parentUnicodeName, parentUuid: file.header.parentUuid })
  }

  for (const [path, { parentName, parentUuid }] of headers) {
    const disk = result.disks.get(path)!
    const parentPath = posix.join(folder, parentName)
    const parent = posix.dirname(parentPath) === folder ? result.disks.get(parentPath) : undefined
    if (parent === undefined) disk.broken = `its parent "${parentName}" is missing`
    else if (parent.broken === undefined && parent.uuid !== parentUuid) disk.broken = `its parent ${parentName} is not the disk it was made from (uuid ${parent.uuid}, expected ${parentUuid})`
    else disk.parent = parentPath
  }

  const children = new Map<string, number>()
  for (const disk of result.disks.values()) if (disk.parent !== undefined) children.set(disk.parent, (children.get(disk.parent) ?? 0) + 1)
  result.forks = [...children].filter(([, count]) => count > 1).map(([path]) => path)

  for (const disk of result.disks.values()) {
    const reason = ancestorProblem(result.disks, disk)
    if (reason !== undefined && disk.broken === undefined) disk.broken = reason
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
