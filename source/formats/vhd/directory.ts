// XO's VhdDirectory (vhd-lib/Vhd/VhdDirectory.js), what XO writes on object stores: a folder holding the raw
// `header` and `footer`, a `bat` bitmap, one file per block, each chunk compressed on its own.
import { join } from 'node:path'
import { promisify } from 'node:util'
import { brotliCompress, brotliDecompress, constants as zlib, gunzip, gzip } from 'node:zlib'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import { isVhdAlias, readVhdAlias } from './aliases.ts'
import { VhdFile } from './file.ts'
import { localFileSystem, type FileSystemAccess } from './fileSystem.ts'
import { checkAllArrived, checkArrivingBlock, checkBlockIndexes, vhdStreamLength, type VhdStreamOptions } from './stream.ts'
import {
  DISK_TYPE_FIXED, VHD_BLOCK_SIZE, VHD_FOOTER_SIZE, VHD_HEADER_SIZE, bitmapSize, decodeFooter, decodeHeader, encodeFooter, encodeHeader,
  fullBitmap, newFooterAndHeader, type VhdFooter, type VhdHeader,
} from './structures.ts'
import type { Vhd } from './vhd.ts'

/** How each chunk is stored: XO's `chunk-filters.json` (["brotli"], ["gzip"], or absent for none). */
export type VhdCompression = 'brotli' | 'gzip' | 'none'

const CHUNK_FILTERS = 'chunk-filters.json'
/** XO's bat for the 4 Mi blocks structures.ts allows; a merge grows the bat before the header, so it can exceed its header's table. */
const MAX_BAT_BYTES = 4 * 1024 * 1024
const WRITE_CONCURRENCY = 4

interface Codec {
  compress(buffer: Buffer): Promise<Buffer>
  /** Refuses output beyond `maxLength`: a damaged or hostile chunk cannot make us allocate without bound. */
  decompress(buffer: Buffer, maxLength: number): Promise<Buffer>
}

const gzipAsync = promisify(gzip)
const gunzipAsync = promisify(gunzip)
const brotliCompressAsync = promisify(brotliCompress)
const brotliDecompressAsync = promisify(brotliDecompress)

// XO's settings: gzip at its fastest level, brotli at its minimum quality.
const CODECS: Record<VhdCompression, Codec> = {
  none: { compress: async buffer => buffer, decompress: async buffer => buffer },
  gzip: {
    compress: buffer => gzipAsync(buffer, { level: zlib.Z_BEST_SPEED }),
    decompress: (buffer, maxLength) => gunzipAsync(buffer, { maxOutputLength: Math.max(1, maxLength) }),
  },
  brotli: {
    compress: buffer => brotliCompressAsync(buffer, { params: { [zlib.BROTLI_PARAM_QUALITY]: zlib.BROTLI_MIN_QUALITY } }),
    decompress: (buffer, maxLength) => brotliDecompressAsync(buffer, { maxOutputLength: Math.max(1, maxLength) }),
  },
}

/** XO's block file name: blocks/<floor(id / 1000)>/<id % 1000>, so that no folder holds more than 1000 blocks. */
export function vhdDirectoryBlockName(index: number): string {
  return `blocks/${Math.floor(index / 1000)}/${index % 1000}`
}

async function readChunkFilters(fs: FileSystemAccess, dir: string): Promise<VhdCompression> {
  let text: string
  try {
    text = (await fs.readFile(join(dir, CHUNK_FILTERS))).toString('utf8')
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return 'none'
    throw error
  }
  let filters: unknown
  try {
    filters = JSON.parse(text)
  } catch {
    filters = undefined
  }
  if (Array.isArray(filters) && filters.length === 0) return 'none'
  if (Array.isArray(filters) && filters.length === 1 && (filters[0] === 'brotli' || filters[0] === 'gzip')) return filters[0]
  throw new LifeboatError('VHD_BAD_CHUNK_FILTERS', `${CHUNK_FILTERS} holds ${JSON.stringify(text.slice(0, 100))}; only ["brotli"], ["gzip"] or none are known, so the blocks cannot be read.`)
}

/** Stores one chunk compressed; returns the bytes stored. */
async function writeChunk(fs: FileSystemAccess, dir: string, name: string, data: Buffer, compression: VhdCompression): Promise<number> {
  const stored = await CODECS[compression].compress(data)
  await fs.writeFile(join(dir, name), stored)
  return stored.length
}

export interface VhdDirectoryOpenOptions {
  fs?: FileSystemAccess
}

export class VhdDirectory implements Vhd {
  readonly path: string
  /** The folder itself (the alias's target when opened through an alias). */
  readonly dataPath: string
  readonly compression: VhdCompression
  private footerValue: VhdFooter
  private headerValue: VhdHeader
  private bat: Buffer
  private readonly fs: FileSystemAccess
  private readonly blockFolder: (index: number) => Promise<void>

  private constructor(path: string, dataPath: string, fs: FileSystemAccess, compression: VhdCompression, footer: VhdFooter, header: VhdHeader, bat: Buffer) {
    this.path = path
    this.dataPath = dataPath
    this.fs = fs
    this.compression = compression
    this.footerValue = footer
    this.headerValue = header
    this.bat = bat
    this.blockFolder = blockFolders(fs, dataPath)
  }

  get footer(): VhdFooter {
    return this.footerValue
  }

  get header(): VhdHeader {
    return this.headerValue
  }

  get blockCount(): number {
    return Math.ceil(this.footerValue.currentSize / this.headerValue.blockSize)
  }

  /** Opens the folder at `path`, or the one an alias at `path` points at. */
  static async open(path: string, options: VhdDirectoryOpenOptions = {}): Promise<VhdDirectory> {
    const fs = options.fs ?? localFileSystem
    const dataPath = isVhdAlias(path) ? await readVhdAlias(fs, path) : path
    try {
      const compression = await readChunkFilters(fs, dataPath)
      const codec = CODECS[compression]
      const readPart = async (name: string, maxLength: number): Promise<Buffer> => {
        let stored: Buffer
        try {
          stored = await fs.readFile(join(dataPath, name))
        } catch (error) {
          if (errorCode(error) === 'ENOENT' || errorCode(error) === 'EISDIR' || errorCode(error) === 'NOT_A_REGULAR_FILE') {
            throw new LifeboatError('VHD_DIRECTORY_INCOMPLETE', `The VhdDirectory has no ${name}: it was not completely written (or is not a VhdDirectory).`, { cause: error })
          }
          throw error
        }
        return decompress(codec, stored, maxLength, `its ${name}`)
      }
      if (!(await existsInside(fs, dataPath, 'footer')) && !(await existsInside(fs, dataPath, 'header')) && !(await existsInside(fs, dataPath, 'bat'))) {
        throw new LifeboatError('NOT_A_REGULAR_FILE', 'This is a directory but not a VhdDirectory (it has no header, footer or bat); give the path of a VHD file, a VhdDirectory or an alias.')
      }
      const footerBytes = await readPart('footer', VHD_FOOTER_SIZE)
      if (footerBytes.length !== VHD_FOOTER_SIZE) throw new LifeboatError('VHD_TRUNCATED', `Its footer has ${footerBytes.length} bytes instead of ${VHD_FOOTER_SIZE}.`)
      const footer = decodeFooter(footerBytes)
      if (footer.diskType === DISK_TYPE_FIXED) throw new LifeboatError('VHD_BAD_DISK_TYPE', 'Its footer says fixed disk; a VhdDirectory is always dynamic or differencing.')
      const headerBytes = await readPart('header', VHD_HEADER_SIZE)
      if (headerBytes.length !== VHD_HEADER_SIZE) throw new LifeboatError('VHD_TRUNCATED', `Its header has ${headerBytes.length} bytes instead of ${VHD_HEADER_SIZE}.`)
      const header = decodeHeader(headerBytes, footer)
      const bat = await readPart('bat', MAX_BAT_BYTES)
      if (bat.length < Math.ceil(header.maxTableEntries / 8)) {
        throw new LifeboatError('VHD_BAD_TABLE', `Its block bitmap (bat) has ${bat.length} bytes, too few for ${header.maxTableEntries} blocks; the VhdDirectory is damaged.`)
      }
      return new VhdDirectory(path, dataPath, fs, compression, footer, header, bat)
    } catch (error) {
      if (error instanceof LifeboatError) throw new LifeboatError(error.code, `${path}: ${error.message}`, { cause: error, data: { path } })
      throw error
    }
  }

  isAllocated(index: number): boolean {
    return Number.isInteger(index) && index >= 0 && index < this.headerValue.maxTableEntries && (this.bat[index >> 3]! & (0x80 >> (index & 7))) !== 0
  }

  allocatedBlocks(): number[] {
    const out: number[] = []
    for (let i = 0; i < this.headerValue.maxTableEntries; i++) if (this.isAllocated(i)) out.push(i)
    return out
  }

  async readBlock(index: number): Promise<{ bitmap: Buffer; data: Buffer }> {
    const { blockSize } = this.headerValue
    if (!this.isAllocated(index)) return { bitmap: Buffer.alloc(bitmapSize(blockSize)), data: Buffer.alloc(blockSize) }
    return this.decodeBlock(index, await this.readStoredBlock(index))
  }

  /** A block's file as stored (compressed): what a merge copies as is into a parent of the same compression. */
  async readStoredBlock(index: number): Promise<Buffer> {
    try {
      return await this.fs.readFile(this.blockPath(index))
    } catch (error) {
      if (errorCode(error) === 'ENOENT') {
        throw new LifeboatError('VHD_BLOCK_MISSING', `${this.path}: block ${index} is in the block bitmap but its file ${vhdDirectoryBlockName(index)} is missing; the VhdDirectory is damaged.`, { cause: error, data: { path: this.path } })
      }
      throw error
    }
  }

  async decodeBlock(index: number, stored: Buffer): Promise<{ bitmap: Buffer; data: Buffer }> {
    const { blockSize } = this.headerValue
    const bitmapBytes = bitmapSize(blockSize)
    const buffer = await decompress(CODECS[this.compression], stored, bitmapBytes + blockSize, `block ${index}`).catch((error: unknown) => {
      throw error instanceof LifeboatError ? new LifeboatError(error.code, `${this.path}: ${error.message}`, { cause: error, data: { path: this.path } }) : error
    })
    if (buffer.length !== bitmapBytes + blockSize) {
      throw new LifeboatError('VHD_BAD_BLOCK', `${this.path}: block ${index} holds ${buffer.length} bytes instead of ${bitmapBytes + blockSize}; the VhdDirectory is damaged.`, { data: { path: this.path } })
    }
    return { bitmap: buffer.subarray(0, bitmapBytes), data: buffer.subarray(bitmapBytes) }
  }

  blockPath(index: number): string {
    return join(this.dataPath, vhdDirectoryBlockName(index))
  }

  /** Where a block's file will go, its folder created where folders are real. */
  async prepareBlockPath(index: number): Promise<string> {
    await this.blockFolder(index)
    return this.blockPath(index)
  }

  /** Writes a block's file (compressed here) and marks it in the in-memory bitmap; `writeBat` saves that. */
  async writeBlock(index: number, bitmap: Buffer, data: Buffer): Promise<void> {
    await this.prepareBlockPath(index)
    await writeChunk(this.fs, this.dataPath, vhdDirectoryBlockName(index), Buffer.concat([bitmap, data]), this.compression)
    this.markAllocated(index)
  }

  /** Stores a block file already compressed the way this folder is. */
  async writeStoredBlock(index: number, stored: Buffer): Promise<void> {
    await this.fs.writeFile(await this.prepareBlockPath(index), stored)
    this.markAllocated(index)
  }

  markAllocated(index: number): void {
    this.growTable(index + 1, false)
    this.bat[index >> 3]! |= 0x80 >> (index & 7)
  }

  /** Room for `entries` blocks; the header says so once `writeHeaderAndFooter` runs (`headerToo`) so a resumed merge sees it. */
  growTable(entries: number, headerToo = true): void {
    if (this.bat.length < batBytes(entries)) {
      const grown = Buffer.alloc(batBytes(entries))
      this.bat.copy(grown)
      this.bat = grown
    }
    if (headerToo && entries > this.headerValue.maxTableEntries) this.headerValue = { ...this.headerValue, maxTableEntries: entries }
  }

  async writeBat(): Promise<void> {
    await writeChunk(this.fs, this.dataPath, 'bat', this.bat, this.compression)
  }

  /** Rewrites the header, then the footer with `changes` (the footer last: the header's larger table stays valid with the old footer). */
  async writeHeaderAndFooter(changes: Partial<Omit<VhdFooter, 'checksum'>> = {}): Promise<void> {
    const header = encodeHeader(this.headerValue)
    const footer = encodeFooter({ ...this.footerValue, ...changes })
    await writeChunk(this.fs, this.dataPath, 'header', header, this.compression)
    await writeChunk(this.fs, this.dataPath, 'footer', footer, this.compression)
    this.headerValue = decodeHeader(header, decodeFooter(footer))
    this.footerValue = decodeFooter(footer)
  }

  async close(): Promise<void> {}
}

/** Creates the folder of a block's file once (where folders are real), however many writes wait for it. */
function blockFolders(fs: FileSystemAccess, dir: string): (index: number) => Promise<void> {
  const made = new Map<number, Promise<void>>()
  return index => {
    const group = Math.floor(index / 1000)
    if (fs.mkdir === undefined) return Promise.resolve()
    let making = made.get(group)
    if (making === undefined) {
      making = fs.mkdir(join(dir, `blocks/${group}`))
      made.set(group, making)
      making.catch(() => made.delete(group))
    }
    return making
  }
}

/** XO's bat: one byte per block allocated (`Buffer.alloc(maxTableEntries)`), of which one bit per block is used. */
function batBytes(entries: number): number {
  return Math.max(entries, Math.ceil(entries / 8))
}

async function decompress(codec: Codec, stored: Buffer, maxLength: number, what: string): Promise<Buffer> {
  try {
    return await codec.decompress(stored, maxLength)
  } catch (error) {
    throw new LifeboatError('VHD_BAD_CHUNK', `${what} cannot be decompressed (damaged, or larger than the ${maxLength} bytes it may hold).`, { cause: error })
  }
}

/** A VhdDirectory's folder is told from a VHD file by the file system or, without that, by its `footer`. */
export async function isVhdDirectory(fs: FileSystemAccess, path: string): Promise<boolean> {
  return fs.isDirectory !== undefined ? fs.isDirectory(path) : existsInside(fs, path, 'footer')
}

/** Whether `dir/name` exists; a `dir` that is a file (ENOTDIR on a local folder) has nothing inside. */
async function existsInside(fs: FileSystemAccess, dir: string, name: string): Promise<boolean> {
  try {
    return await fs.exists(join(dir, name))
  } catch (error) {
    if (errorCode(error) === 'ENOTDIR') return false
    throw error
  }
}

/** Opens a VHD file, a VhdDirectory, or an alias to either (XO's openVhd). */
export async function openVhd(path: string, options: { fs?: FileSystemAccess; force?: boolean } = {}): Promise<Vhd> {
  const fs = options.fs ?? localFileSystem
  const target = isVhdAlias(path) ? await readVhdAlias(fs, path) : path
  if (await isVhdDirectory(fs, target)) return VhdDirectory.open(path, { fs })
  return VhdFile.open(target, { fs, force: options.force, knownAs: path })
}

export interface VhdDirectoryWriteOptions extends Omit<VhdStreamOptions, 'parent' | 'tableOffset'> {
  fs?: FileSystemAccess
  /** XO's default is brotli. */
  compression?: VhdCompression
  /** No parent locator entries: XO writes none for backups. */
  parent?: { uuid: string; unicodeName: string; timestamp?: number }
  /** Blocks compressed and written at once (XO: 16); memory holds about this many blocks. */
  concurrency?: number
}

/**
 * Writes a new VhdDirectory at `path` from the same inputs as createVhdStream: the blocks first, then the
 * bat, the header and the footer last (a folder without a footer is incomplete, as in XO).
 * Returns the size of the same VHD as a file (XO's metadata size) and the bytes actually stored.
 */
export async function writeVhdDirectory(path: string, options: VhdDirectoryWriteOptions): Promise<{ length: number; storedBytes: number }> {
  const fs = options.fs ?? localFileSystem
  const compression = options.compression ?? 'brotli'
  const { footer, header } = newFooterAndHeader({ size: options.size, uuid: options.uuid, creator: options.creator, timestamp: options.timestamp, parent: options.parent })
  const expected = options.blockIndexes
  checkBlockIndexes(expected, header.maxTableEntries)
  if (await existsInside(fs, path, 'footer')) {
    throw new LifeboatError('VHD_DIRECTORY_EXISTS', `${path} already holds a VhdDirectory; write a new backup under a new name.`, { data: { path } })
  }
  await fs.mkdir?.(path)
  const blockFolder = blockFolders(fs, path)
  const bat = Buffer.alloc(batBytes(header.maxTableEntries))
  const bitmap = fullBitmap(VHD_BLOCK_SIZE)
  let storedBytes = 0
  const writeBlock = async (index: number, data: Buffer): Promise<void> => {
    await blockFolder(index)
    const stored = await writeChunk(fs, path, vhdDirectoryBlockName(index), Buffer.concat([bitmap, data]), compression)
    storedBytes += stored // after the await: `x += await` would add to a stale total when writes overlap
    bat[index >> 3]! |= 0x80 >> (index & 7)
  }
  const inFlight: Promise<void>[] = []
  try {
    let k = 0
    for await (const { index, data } of options.blocks) {
      checkArrivingBlock(index, data, expected[k])
      k++
      const write = writeBlock(index, data)
      write.catch(() => {}) // reported when awaited below
      inFlight.push(write)
      if (inFlight.length >= Math.max(1, options.concurrency ?? WRITE_CONCURRENCY)) await inFlight.shift()
    }
    checkAllArrived(k, expected.length)
    await Promise.all(inFlight)
    if (compression !== 'none') {
      const filters = JSON.stringify([compression])
      await fs.writeFile(join(path, CHUNK_FILTERS), filters)
      storedBytes += filters.length
    }
    storedBytes += await writeChunk(fs, path, 'bat', bat, compression)
    storedBytes += await writeChunk(fs, path, 'header', encodeHeader(header), compression)
    storedBytes += await writeChunk(fs, path, 'footer', encodeFooter(footer), compression)
  } catch (error) {
    await Promise.allSettled(inFlight) // no write may land after the folder is removed
    await fs.rmtree?.(path).catch(() => {})
    throw error
  }
  return { length: vhdStreamLength(options.size, expected.length), storedBytes }
}
