// How a remote stores delta disks, XO's rule (RemoteAdapter.useVhdDirectory): a VhdDirectory behind an alias on
// object stores (they cannot rewrite a file in place, so merges copy blocks) and where the URL asks for it
// (`?useVhdDirectory=true`), a VHD file elsewhere; and XO's isMergeableParent, which keeps a chain of one format.
import { VhdDirectory, openVhdFiles, type Vhd, type VhdCompression } from '../formats/vhd/index.ts'
import { fileSystemAccess, parseRemoteUrl, type RemoteHandler } from '../storage/index.ts'

/** The chunk compression of the VhdDirectories Lifeboat writes: XO's default (backups.vhdDirectoryCompression). */
export const VHD_DIRECTORY_COMPRESSION: VhdCompression = 'brotli'

const OBJECT_STORES = new Set(['s3', 'azure', 'azurite'])

/** How a disk is stored: a VHD file, or a VhdDirectory with its chunk compression. */
export type DiskFormat = { kind: 'file' } | { kind: 'directory'; compression: VhdCompression }

export function diskFormat(vhd: Vhd): DiskFormat {
  return vhd instanceof VhdDirectory ? { kind: 'directory', compression: vhd.compression } : { kind: 'file' }
}

/** Whether delta disks go to this remote as VhdDirectories (through aliases) rather than VHD files. */
export function usesVhdDirectory(handler: RemoteHandler): boolean {
  // A file that cannot be rewritten in place cannot be merged in place.
  if (!handler.capabilities.randomWrite) return true
  let remote: ReturnType<typeof parseRemoteUrl>
  try {
    // The label is the remote's URL with its secrets redacted: its type and options are intact.
    remote = parseRemoteUrl(handler.label)
  } catch {
    return false
  }
  return OBJECT_STORES.has(remote.type) || remote.options.useVhdDirectory === true
}

/**
 * Why a delta written to this remote cannot chain onto the disk at `tip` (XO's isMergeableParent): the tip is
 * not the base snapshot, or some disk of its chain is not of the format the remote writes (VhdDirectory with
 * Lifeboat's compression, or VHD file). Undefined when it can. Completes "the newest backup of this disk …".
 */
export async function chainRefusal(handler: RemoteHandler, tip: string, baseUuid: string): Promise<string | undefined> {
  const chain = await openVhdFiles(tip, { fs: fileSystemAccess(handler) })
  try {
    if (chain[0]!.footer.uuid !== baseUuid) return `is not of the base snapshot ${baseUuid}`
    const directories = usesVhdDirectory(handler)
    for (const format of chain.map(diskFormat)) {
      if (format.kind === 'file' && directories) return 'is in a chain of VHD files, and this remote now stores disks as VhdDirectories (useVhdDirectory): a new chain starts'
      if (format.kind === 'directory' && !directories) return 'is in a chain of VhdDirectories, and this remote now stores disks as VHD files: a new chain starts'
      if (format.kind === 'directory' && format.compression !== VHD_DIRECTORY_COMPRESSION) {
        return `is in a chain of VhdDirectories compressed with ${format.compression}, and Lifeboat writes ${VHD_DIRECTORY_COMPRESSION}: a new chain starts`
      }
    }
    return undefined
  } finally {
    await Promise.all(chain.map(vhd => vhd.close()))
  }
}
