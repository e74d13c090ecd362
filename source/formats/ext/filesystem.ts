// An ext2/3/4 file system read through a DiskReader, read-only: inodes found through the group descriptors,
// folders read in one pass over their blocks (linear and htree alike) and held for a few folders, paths
// resolved from the root without following symbolic links, file contents streamed run by run (holes as zeros).
// The journal is never replayed: a file system whose journal needs recovery is read as it lies on the disk.
import type { DiskReader } from '../disk/index.ts'
import { LifeboatError } from '../../util/errors.ts'
import { blockMap, type BlockDevice } from './blocks.ts'
import { directoryEntries } from './directory.ts'
import { I_BLOCK_BYTES, INODE_FLAGS, ROOT_INODE, badInode, hasInlineData, isDirectory, isSymlink, parseInode, type Inode } from './inode.ts'
import { inodeTableBlock, readSuperblock, type Superblock } from './superblock.ts'

/** File data is read at most this much at a time (one run of blocks may be far longer). */
const CHUNK_BYTES = 1024 * 1024
const MAX_SYMLINK = 4096
const INLINE_PARENT_BYTES = 4

export interface FolderCacheLimits {
  /** Folders held (the ones of the paths being browsed), and their entries in all (a huge folder alone is always held). */
  folders: number
  entries: number
}
const DEFAULT_FOLDER_CACHE: FolderCacheLimits = { folders: 16, entries: 1_000_000 }

/** A folder's entries: name → inode number. */
export type Folder = ReadonlyMap<string, number>

export class ExtFileSystem implements BlockDevice {
  readonly superblock: Superblock
  readonly #disk: DiskReader
  readonly #inodeTables = new Map<number, Promise<number>>()
  readonly #folders = new Map<number, { folder: Promise<Folder>; entries: number }>()
  readonly #limits: FolderCacheLimits

  private constructor(disk: DiskReader, superblock: Superblock, limits: FolderCacheLimits) {
    this.#disk = disk
    this.superblock = superblock
    this.#limits = limits
  }

  static async open(disk: DiskReader, options: { folderCache?: FolderCacheLimits } = {}): Promise<ExtFileSystem> {
    const fs = new ExtFileSystem(disk, await readSuperblock(disk), options.folderCache ?? DEFAULT_FOLDER_CACHE)
    const root = await fs.inode(ROOT_INODE)
    if (!isDirectory(root)) throw badInode(ROOT_INODE, 'the root is not a folder')
    return fs
  }

  get blockSize(): number {
    return this.superblock.blockSize
  }

  get blocksCount(): number {
    return this.superblock.blocksCount
  }

  /** True when the journal holds transactions not written in place: the newest changes may be missing. */
  get needsRecovery(): boolean {
    return this.superblock.needsRecovery
  }

  readBlock(block: number): Promise<Buffer> {
    if (!Number.isSafeInteger(block) || block < 0 || block >= this.superblock.blocksCount) {
      return Promise.reject(new LifeboatError('EXT_BAD_BLOCK', `The ext file system points at block ${block}, outside its ${this.superblock.blocksCount} blocks; it is damaged: run e2fsck on a copy of the disk, or restore the whole VM.`))
    }
    return this.#disk.read(block * this.blockSize, this.blockSize)
  }

  async inode(number: number): Promise<Inode> {
    const sb = this.superblock
    if (!Number.isSafeInteger(number) || number < 1 || number > sb.inodesCount) {
      throw new LifeboatError('EXT_BAD_INODE', `The ext file system refers to inode ${number}, outside its ${sb.inodesCount} inodes; it is damaged: run e2fsck on a copy of the disk, or restore the whole VM.`)
    }
    const group = Math.floor((number - 1) / sb.inodesPerGroup)
    let table = this.#inodeTables.get(group)
    if (table === undefined) {
      table = inodeTableBlock(this.#disk, sb, group)
      table.catch(() => this.#inodeTables.delete(group))
      this.#inodeTables.set(group, table)
    }
    const raw = await this.#disk.read((await table) * sb.blockSize + ((number - 1) % sb.inodesPerGroup) * sb.inodeSize, sb.inodeSize)
    return parseInode(sb, number, raw)
  }

  /** The inode at an absolute path, undefined when there is none; symbolic links are not followed. */
  async lookup(path: string): Promise<Inode | undefined> {
    let inode = await this.inode(ROOT_INODE)
    const visited = new Set([ROOT_INODE])
    for (const name of path.split('/').filter(part => part !== '' && part !== '.')) {
      if (!isDirectory(inode)) return undefined
      const child = (await this.folder(inode)).get(name)
      if (child === undefined) return undefined
      inode = await this.inode(child)
      if (isDirectory(inode)) {
        if (visited.has(child)) throw new LifeboatError('EXT_DIRECTORY_LOOP', `The ext file system's folder ${path} contains itself (inode ${child} twice on the way); it is damaged: run e2fsck on a copy of the disk, or restore the whole VM.`)
        visited.add(child)
      }
    }
    return inode
  }

  /** A folder's entries, read in one pass over its blocks; the last few folders are held. */
  folder(inode: Inode): Promise<Folder> {
    const held = this.#folders.get(inode.number)
    if (held !== undefined) {
      this.#folders.delete(inode.number)
      this.#folders.set(inode.number, held)
      return held.folder
    }
    const slot = { folder: this.#readFolder(inode), entries: 0 }
    this.#folders.set(inode.number, slot)
    slot.folder.then(
      folder => {
        slot.entries = folder.size
        this.#trimFolders()
      },
      () => this.#folders.delete(inode.number),
    )
    return slot.folder
  }

  #trimFolders(): void {
    let entries = 0
    for (const slot of this.#folders.values()) entries += slot.entries
    while (this.#folders.size > 1 && (this.#folders.size > this.#limits.folders || entries > this.#limits.entries)) {
      const [oldest, slot] = this.#folders.entries().next().value!
      this.#folders.delete(oldest)
      entries -= slot.entries
    }
  }

  async #readFolder(inode: Inode): Promise<Folder> {
    if (!isDirectory(inode)) throw new LifeboatError('EXT_NOT_A_FOLDER', `The ext file system's inode ${inode.number} is not a folder.`)
    refuseEncrypted(inode)
    const sb = this.superblock
    const folder = new Map<string, number>()
    const add = (bytes: Buffer) => {
      for (const entry of directoryEntries(bytes, { fileType: sb.fileType, blockSize: sb.blockSize, inode: inode.number })) {
        if (entry.inode > sb.inodesCount) throw badInode(inode.number, `its entry "${entry.name}" points at inode ${entry.inode}, outside the file system`)
        folder.set(entry.name, entry.inode)
      }
    }
    if (hasInlineData(inode)) {
      add(inode.block.subarray(INLINE_PARENT_BYTES))
      if (inode.inlineTail !== undefined && inode.inlineTail.length > 0) add(inode.inlineTail)
      return folder
    }
    const blocks = Math.ceil(inode.size / sb.blockSize)
    const map = blockMap(this, inode)
    const chunkBlocks = Math.max(1, CHUNK_BYTES / sb.blockSize)
    for (let at = 0; at < blocks; ) {
      // Holes are skipped whole (a damaged size must not become a long walk through nothing).
      const run = await map(at, blocks - at)
      if (run.physical !== undefined) {
        for (let done = 0; done < run.length; done += chunkBlocks) {
          const count = Math.min(chunkBlocks, run.length - done)
          const bytes = await this.#disk.read((run.physical + done) * sb.blockSize, count * sb.blockSize)
          for (let k = 0; k < count; k++) add(bytes.subarray(k * sb.blockSize, (k + 1) * sb.blockSize))
        }
      }
      at += run.length
    }
    return folder
  }

  /** A file's bytes, exactly `inode.size` of them, at most 1 MiB a chunk; holes and unwritten extents as zeros. */
  async *content(inode: Inode): AsyncGenerator<Buffer> {
    refuseEncrypted(inode)
    const { size } = inode
    if (hasInlineData(inode)) {
      const bytes = Buffer.concat([inode.block, inode.inlineTail ?? Buffer.alloc(0)])
      if (bytes.length < size) throw badInode(inode.number, `${size} bytes of inline data where the inode holds ${bytes.length}`)
      yield bytes.subarray(0, size)
      return
    }
    const { blockSize } = this.superblock
    const blocks = Math.ceil(size / blockSize)
    const map = blockMap(this, inode)
    for (let at = 0; at < blocks; ) {
      const run = await map(at, Math.min(blocks - at, Math.max(1, CHUNK_BYTES / blockSize)))
      const bytes = Math.min(run.length * blockSize, size - at * blockSize)
      yield run.physical === undefined ? Buffer.alloc(bytes) : await this.#disk.read(run.physical * blockSize, bytes)
      at += run.length
    }
  }

  /** A symbolic link's target: in i_block (a fast link), inline, or in a block. */
  async readLink(inode: Inode): Promise<string> {
    if (!isSymlink(inode)) throw new LifeboatError('EXT_NOT_A_SYMLINK', `The ext file system's inode ${inode.number} is not a symbolic link.`)
    if (inode.size === 0 || inode.size > MAX_SYMLINK) throw badInode(inode.number, `a symbolic link of ${inode.size} bytes`)
    // As the kernel tells them: a fast link holds no block but its extended attribute block.
    const ownBlocks = inode.blocks - (inode.xattrBlock !== 0 ? this.blockSize / 512 : 0)
    if (!hasInlineData(inode) && ownBlocks === 0) {
      if (inode.size > I_BLOCK_BYTES) throw badInode(inode.number, `a fast symbolic link of ${inode.size} bytes`)
      return inode.block.toString('utf8', 0, inode.size)
    }
    const parts: Buffer[] = []
    for await (const part of this.content(inode)) parts.push(part)
    return Buffer.concat(parts).toString('utf8')
  }
}

function refuseEncrypted(inode: Inode): void {
  if ((inode.flags & INODE_FLAGS.encrypted) !== 0) {
    throw new LifeboatError('EXT_ENCRYPTED', `The ext file system's inode ${inode.number} is encrypted (fscrypt); its content can only be read on the running system with its key.`)
  }
}
