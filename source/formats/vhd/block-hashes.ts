// VHD has no data checksum: for each VHD it writes, Lifeboat keeps the XXH64 of every block (its sector bitmap and its
// 2 MiB of data) in a sidecar `<vhd name>.lifeboat-hashes` beside the VHD file or alias, so that verify can find a
// flipped byte. XO's cleaner and merges ignore the name (they look at `*.vhd`, `.*.merge.json`, `data/`); a sidecar
// records a fingerprint of its VHD, so one that no longer describes it (XO merged or rewrote it) is told and set aside.
import { basename, dirname, join } from 'node:path'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import { loadXxh64 } from '../xxhash.ts'
import { openVhd } from './directory.ts'
import type { FileSystemAccess } from './fileSystem.ts'
import { VHD_BLOCK_SIZE, fullBitmap } from './structures.ts'
import type { Vhd } from './vhd.ts'

export const BLOCK_HASHES_SUFFIX = '.lifeboat-hashes'
const FORMAT = 'lifeboat-block-hashes'
/** Per block: index (u32), XXH64 of its bitmap, XXH64 of its data (u64 each), big-endian, ascending by index. */
const ENTRY_BYTES = 20

export function blockHashesPath(vhdPath: string): string {
  return `${vhdPath}${BLOCK_HASHES_SUFFIX}`
}

/** Where a merge keeps the merged VHD's hashes until it ends: beside its state file (`.<ancestor>.merge.json`). */
export function pendingMergeHashesPath(statePath: string): string {
  return join(dirname(statePath), `${basename(statePath, '.json')}${BLOCK_HASHES_SUFFIX}`)
}

/** The recorded hashes of a VHD's allocated blocks, ascending by index. */
export class BlockHashTable {
  constructor(
    readonly count: number,
    readonly entries: Buffer,
  ) {}

  indexAt(k: number): number {
    return this.entries.readUInt32BE(k * ENTRY_BYTES)
  }

  bitmapHashAt(k: number): bigint {
    return this.entries.readBigUInt64BE(k * ENTRY_BYTES + 4)
  }

  dataHashAt(k: number): bigint {
    return this.entries.readBigUInt64BE(k * ENTRY_BYTES + 12)
  }

  /** The entry of block `index`, or -1. */
  find(index: number): number {
    let low = 0
    let high = this.count - 1
    while (low <= high) {
      const middle = (low + high) >>> 1
      const at = this.indexAt(middle)
      if (at === index) return middle
      if (at < index) low = middle + 1
      else high = middle - 1
    }
    return -1
  }

  sameBlocks(indexes: readonly number[]): boolean {
    return indexes.length === this.count && indexes.every((index, k) => this.indexAt(k) === index)
  }
}

/** Builds a table as blocks pass, in ascending order; room grows by doubling (20 bytes a block). */
class TableBuilder {
  #entries: Buffer
  #count = 0

  constructor(expected: number) {
    this.#entries = Buffer.alloc(Math.max(1, expected) * ENTRY_BYTES)
  }

  add(index: number, bitmapHash: bigint, dataHash: bigint): void {
    if (this.#count > 0 && index <= this.#entries.readUInt32BE((this.#count - 1) * ENTRY_BYTES)) {
      throw new LifeboatError('VHD_BAD_BLOCK_LIST', `Block ${index} came out of ascending order; its hash cannot be recorded.`)
    }
    if ((this.#count + 1) * ENTRY_BYTES > this.#entries.length) {
      const grown = Buffer.alloc(this.#entries.length * 2)
      this.#entries.copy(grown)
      this.#entries = grown
    }
    const at = this.#count * ENTRY_BYTES
    this.#entries.writeUInt32BE(index, at)
    this.#entries.writeBigUInt64BE(bitmapHash, at + 4)
    this.#entries.writeBigUInt64BE(dataHash, at + 12)
    this.#count++
  }

  table(): BlockHashTable {
    return new BlockHashTable(this.#count, this.#entries.subarray(0, this.#count * ENTRY_BYTES))
  }
}

/**
 * The hashes of the blocks of a VHD being written, taken as they pass (each writer stores every block with a full
 * sector bitmap, hashed once). `record` hands the blocks on unchanged; `table` is complete once they have all passed.
 */
/** Blocks already hashed, while their buffer lives (the blocks of a source are never changed once read). */
const hashed = new WeakMap<Buffer, bigint>()

export class BlockHashRecorder {
  readonly #builder: TableBuilder
  readonly #h64: (data: Uint8Array) => bigint
  readonly #bitmapHash: bigint

  private constructor(expected: number, h64: (data: Uint8Array) => bigint) {
    this.#builder = new TableBuilder(expected)
    this.#h64 = h64
    this.#bitmapHash = h64(fullBitmap(VHD_BLOCK_SIZE))
  }

  static async create(expectedBlocks: number): Promise<BlockHashRecorder> {
    return new BlockHashRecorder(expectedBlocks, await loadXxh64())
  }

  async *record<T extends { index: number; data: Buffer }>(blocks: AsyncIterable<T>): AsyncGenerator<T> {
    for await (const block of blocks) {
      this.#builder.add(block.index, this.#bitmapHash, this.#hashOf(block.data))
      yield block
    }
  }

  /** A block fanned out to several remotes is one buffer handed to each: hashed once, by the first. */
  #hashOf(data: Buffer): bigint {
    let hash = hashed.get(data)
    if (hash === undefined) hashed.set(data, (hash = this.#h64(data)))
    return hash
  }

  table(): BlockHashTable {
    return this.#builder.table()
  }
}

/**
 * What a sidecar must match to describe a VHD: its identity (uuid, time, size, type), its parent link, and its
 * allocated blocks. Every merge (XO's or Lifeboat's) gives the VHD under a name another uuid or parent link, and a
 * rewrite that adds or drops blocks changes the allocation; either way the sidecar no longer applies.
 */
export function vhdFingerprint(vhd: Vhd, h64: (data: Uint8Array) => bigint): string {
  const { footer, header } = vhd
  const identity = JSON.stringify([
    footer.uuid, footer.timestamp, footer.currentSize, footer.diskType, header.parentUuid, header.parentTimestamp,
    header.parentUnicodeName, header.blockSize, header.maxTableEntries,
  ])
  const blocks = vhd.allocatedBlocks()
  const bytes = Buffer.alloc(Buffer.byteLength(identity) + blocks.length * 4)
  const end = bytes.write(identity)
  blocks.forEach((index, k) => bytes.writeUInt32BE(index, end + k * 4))
  return h64(bytes).toString(16).padStart(16, '0')
}

const headerSchema = {
  parse(line: string): { uuid?: string; fingerprint?: string; blocks: number; entries: string } | undefined {
    try {
      const value = JSON.parse(line) as Record<string, unknown>
      if (value.format !== FORMAT || value.version !== 1 || value.hash !== 'xxh64') return undefined
      if (typeof value.blocks !== 'number' || !Number.isInteger(value.blocks) || value.blocks < 0 || typeof value.entries !== 'string') return undefined
      const vhd = value.vhd as { uuid?: unknown; fingerprint?: unknown } | undefined
      return {
        blocks: value.blocks, entries: value.entries,
        ...(typeof vhd?.uuid === 'string' && { uuid: vhd.uuid }),
        ...(typeof vhd?.fingerprint === 'string' && { fingerprint: vhd.fingerprint }),
      }
    } catch {
      return undefined
    }
  },
}

function encode(table: BlockHashTable, h64: (data: Uint8Array) => bigint, vhd?: { uuid: string; fingerprint: string }): Buffer {
  const head = JSON.stringify({
    format: FORMAT, version: 1, hash: 'xxh64', ...(vhd !== undefined && { vhd }), blocks: table.count,
    entries: h64(table.entries).toString(16).padStart(16, '0'),
  })
  return Buffer.concat([Buffer.from(`${head}\n`), table.entries])
}

type ReadSidecar =
  | { kind: 'absent' }
  | { kind: 'damaged'; reason: string }
  | { kind: 'read'; table: BlockHashTable; uuid?: string; fingerprint?: string }

async function readSidecar(fs: FileSystemAccess, path: string, h64: (data: Uint8Array) => bigint): Promise<ReadSidecar> {
  let bytes: Buffer
  try {
    bytes = await fs.readFile(path)
  } catch (error) {
    if (errorCode(error) === 'ENOENT' || errorCode(error) === 'FILE_NOT_FOUND') return { kind: 'absent' }
    throw error
  }
  const newline = bytes.indexOf(0x0a)
  const head = newline < 0 ? undefined : headerSchema.parse(bytes.toString('utf8', 0, newline))
  if (head === undefined) return { kind: 'damaged', reason: 'it is not a block hash file of this version' }
  const entries = bytes.subarray(newline + 1)
  if (entries.length !== head.blocks * ENTRY_BYTES) return { kind: 'damaged', reason: `it holds ${entries.length} bytes of hashes where ${head.blocks} blocks need ${head.blocks * ENTRY_BYTES}` }
  if (h64(entries).toString(16).padStart(16, '0') !== head.entries) return { kind: 'damaged', reason: 'its own checksum does not match (the hash file itself changed)' }
  return { kind: 'read', table: new BlockHashTable(head.blocks, entries), ...(head.uuid !== undefined && { uuid: head.uuid }), ...(head.fingerprint !== undefined && { fingerprint: head.fingerprint }) }
}

/** Writes the sidecar of `vhd` (opened where it now lies), atomically; a table that does not list its blocks is a bug. */
export async function writeBlockHashes(fs: FileSystemAccess, vhd: Vhd, table: BlockHashTable): Promise<void> {
  const h64 = await loadXxh64()
  if (!table.sameBlocks(vhd.allocatedBlocks())) {
    throw new Error(`BUG: the block hashes recorded for ${vhd.path} do not list the blocks it holds (${table.count} hashes, ${vhd.allocatedBlocks().length} blocks)`)
  }
  await fs.writeFile(blockHashesPath(vhd.path), encode(table, h64, { uuid: vhd.footer.uuid, fingerprint: vhdFingerprint(vhd, h64) }))
}

/** Why a VHD's blocks cannot be checked against hashes: no sidecar, one for another state of the VHD, or a damaged one. */
export type BlockHashesUnavailable = { kind: 'absent' } | { kind: 'stale' } | { kind: 'damaged'; reason: string }

/** The hashes that describe `vhd` as it is now, or why there are none. */
export async function readBlockHashes(fs: FileSystemAccess, vhd: Vhd): Promise<{ kind: 'hashes'; table: BlockHashTable } | BlockHashesUnavailable> {
  const h64 = await loadXxh64()
  const read = await readSidecar(fs, blockHashesPath(vhd.path), h64)
  if (read.kind !== 'read') return read
  if (read.uuid !== vhd.footer.uuid || read.fingerprint !== vhdFingerprint(vhd, h64) || !read.table.sameBlocks(vhd.allocatedBlocks())) return { kind: 'stale' }
  return { kind: 'hashes', table: read.table }
}

async function unlinkIfAny(fs: FileSystemAccess, path: string): Promise<void> {
  try {
    await fs.unlink(path)
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error
  }
}

/** Removes the sidecar of the VHD at `vhdPath`, if any (the VHD removed, or about to change). */
export function removeBlockHashes(fs: FileSystemAccess, vhdPath: string): Promise<void> {
  return unlinkIfAny(fs, blockHashesPath(vhdPath))
}

/**
 * The hook of a merge starting (before its state file): the merged VHD's hashes — the newest child's for every block
 * a child supplies, the ancestor's for the others — kept beside the state file when every VHD of the chain has true
 * ones and each supplied block is whole (sector bitmap full), else none. The ancestor's own sidecar stays until the
 * merge ends: while the state file lies beside it, verify does not trust it (the ancestor is changing).
 */
export async function prepareMergedBlockHashes(fs: FileSystemAccess, statePath: string, ancestor: Vhd, children: readonly Vhd[]): Promise<void> {
  const h64 = await loadXxh64()
  const pending = pendingMergeHashesPath(statePath)
  const tables: BlockHashTable[] = []
  for (const vhd of [ancestor, ...children]) {
    const read = await readBlockHashes(fs, vhd)
    if (read.kind === 'hashes') tables.push(read.table)
  }
  const merged = tables.length === children.length + 1 ? mergeTables(tables, h64(fullBitmap(ancestor.header.blockSize))) : undefined
  if (merged === undefined) await unlinkIfAny(fs, pending)
  else await fs.writeFile(pending, encode(merged, h64))
}

/** Ancestor first; undefined when a block a child supplies is partial (its merged content is not any one VHD's). */
function mergeTables(tables: readonly BlockHashTable[], fullBitmapHash: bigint): BlockHashTable | undefined {
  const [ancestor, ...children] = tables
  const newestFirst = [...children].reverse()
  const indexes = new Set<number>()
  for (const table of tables) for (let k = 0; k < table.count; k++) indexes.add(table.indexAt(k))
  const builder = new TableBuilder(indexes.size)
  for (const index of [...indexes].sort((a, b) => a - b)) {
    let taken = false
    for (const child of newestFirst) {
      const k = child.find(index)
      if (k < 0) continue
      if (child.bitmapHashAt(k) !== fullBitmapHash) return undefined
      builder.add(index, child.bitmapHashAt(k), child.dataHashAt(k))
      taken = true
      break
    }
    if (taken) continue
    const k = ancestor!.find(index)
    builder.add(index, ancestor!.bitmapHashAt(k), ancestor!.dataHashAt(k))
  }
  return builder.table()
}

/**
 * The hook of a merge ending (its files in their final place, before its state file goes): the merged VHD, under the
 * newest child's name, gets the hashes kept at the start with its new fingerprint, or — none kept (a VHD of the chain
 * had no true hashes) — loses a sidecar that no longer describes it; the other names' sidecars go. Done again on resume.
 */
export async function finishMergedBlockHashes(fs: FileSystemAccess, statePath: string, chain: readonly string[]): Promise<void> {
  const h64 = await loadXxh64()
  const pendingPath = pendingMergeHashesPath(statePath)
  const pending = await readSidecar(fs, pendingPath, h64)
  const merged = await openVhd(chain[chain.length - 1]!, { fs })
  try {
    if (pending.kind === 'read' && pending.table.sameBlocks(merged.allocatedBlocks())) await writeBlockHashes(fs, merged, pending.table)
    else if ((await readBlockHashes(fs, merged)).kind !== 'hashes') await removeBlockHashes(fs, merged.path)
  } finally {
    await merged.close()
  }
  for (const path of chain.slice(0, -1)) await removeBlockHashes(fs, path)
  await unlinkIfAny(fs, pendingPath)
}
