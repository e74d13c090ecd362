// Backups for the cleaner's tests: delta chains built the way the backup writer lands them (createVhdStream
// + commitBackup, or VhdDirectories behind aliases), a model of every restore point's raw disk, and a remote that crashes at its Nth change.
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { VHD_BLOCK_SIZE, VhdChain, createVhdStream, type VhdStreamOptions } from '../../source/formats/vhd/index.ts'
import { commitBackup, formatFilenameDate, vhdAliasRef, vhdRef, vmDir, writeBackupMetadata, writeBackupVhdDirectory, xvaRef, type BackupMetadata, type VmBackup } from '../../source/repository/index.ts'
import { BackendHandler, LocalBackend, type Backend, type RandomAccessFile, type RemoteHandler } from '../../source/storage/index.ts'

export const VM = '0b3e6a9c-1111-4a2b-8c3d-00000000c1ea'
export const JOB = '59af07fc-2222-4a2b-8c3d-000000000002'
export const SCHEDULE = '1c7cfc78-3333-4a2b-8c3d-000000000003'
export const OTHER_SCHEDULE = '1c7cfc78-3333-4a2b-8c3d-0000000000ff'
export const DISKS = ['aaaaaaaa-4444-4a2b-8c3d-000000000001', 'aaaaaaaa-4444-4a2b-8c3d-000000000002']
export const START = Date.UTC(2026, 0, 1, 2)

const vmRecord = { uuid: VM, name_label: 'db', tags: [], other_config: {}, power_state: 'Running' }

/** The snapshot VDI uuid of a disk at one backup: the footer uuid XO gives that backup's VHD. */
export function snapshotVdiUuid(disk: number, generation: number): string {
  return `cccccccc-${String(disk).padStart(4, '0')}-4000-8000-${String(generation).padStart(12, '0')}`
}

function block(disk: number, generation: number, index: number): Buffer {
  const data = Buffer.alloc(VHD_BLOCK_SIZE)
  for (let i = 0; i < VHD_BLOCK_SIZE; i += 512) data.writeUInt32BE(((disk + 1) * 1_000_003 + generation * 7919 + index * 104_729 + i) >>> 0, i)
  return data
}

/** A small deterministic generator, so a failing history can be rebuilt from its seed. */
export function random(seed: number): () => number {
  let x = seed | 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 2 ** 32
  }
}

export interface DiskHistory {
  /** Blocks written at each generation (generation 0 is the full backup). */
  layers: Array<Map<number, Buffer>>
  sizeBlocks: number
  /** Generations that started a new chain (a full hides everything before it). */
  fulls: Set<number>
}

/** The raw disk of restore point `generation`: newest block of each layer up to it, zeros elsewhere. */
export function modelHash(disk: DiskHistory, generation: number): string {
  const hash = createHash('sha256')
  for (let index = 0; index < disk.sizeBlocks; index++) {
    let data: Buffer | undefined
    for (let g = generation; g >= 0 && data === undefined; g--) {
      data = disk.layers[g]!.get(index)
      if (disk.fulls.has(g)) break
    }
    hash.update(data ?? Buffer.alloc(VHD_BLOCK_SIZE))
  }
  return hash.digest('hex')
}

export interface BackupOptions {
  scheduleId?: string
  /** Full backup of every disk (new chain) at this generation. */
  full?: boolean
  /** Disks as VhdDirectories behind aliases (an object store's layout), not VHD files. */
  directory?: boolean
}

/**
 * Writes one delta backup (generation `generation`) of every disk in `disks`, differencing on the previous
 * generation unless `full`. Each disk gets 1–3 random blocks (a full gets half of its blocks).
 */
export async function writeDeltaBackup(handler: RemoteHandler, disks: DiskHistory[], generation: number, rand: () => number, options: BackupOptions = {}): Promise<VmBackup> {
  const timestamp = START + generation * 3_600_000
  const date = formatFilenameDate(timestamp)
  const previousDate = formatFilenameDate(timestamp - 3_600_000)
  const full = options.full === true || generation === 0
  const files = []
  let directoriesSize = 0
  const metadata: BackupMetadata = {
    version: '2.0.0', jobId: JOB, scheduleId: options.scheduleId ?? SCHEDULE, mode: 'delta', timestamp, vm: vmRecord,
    vmSnapshot: { ...vmRecord, uuid: `dddddddd-0000-4000-8000-${String(generation).padStart(12, '0')}`, is_a_snapshot: true },
    vdis: {}, vbds: {}, vifs: {}, vtpms: [], vhds: {}, isVhdDifferencing: {},
  }
  for (const [d, disk] of disks.entries()) {
    const layer = new Map<number, Buffer>()
    const count = Math.min(disk.sizeBlocks, full ? Math.ceil(disk.sizeBlocks / 2) : 1 + Math.floor(rand() * 3))
    while (layer.size < count) {
      const index = Math.floor(rand() * disk.sizeBlocks)
      layer.set(index, block(d, generation, index))
    }
    disk.layers[generation] = layer
    if (full) disk.fulls.add(generation)
    const blockIndexes = [...layer.keys()].sort((a, b) => a - b)
    const vhd: VhdStreamOptions = {
      size: disk.sizeBlocks * VHD_BLOCK_SIZE,
      uuid: snapshotVdiUuid(d, generation),
      blockIndexes,
      blocks: (async function* () {
        for (const index of blockIndexes) yield { index, data: layer.get(index)! }
      })(),
      ...(!full && { parent: { uuid: snapshotVdiUuid(d, generation - 1), unicodeName: options.directory === true ? `${previousDate}.alias.vhd` : `${previousDate}.vhd` } }),
    }
    const ref = `OpaqueRef:vdi-${d}`
    const uuid = snapshotVdiUuid(d, generation)
    metadata.vdis[ref] = { uuid, $snapshot_of$uuid: DISKS[d], $SR$uuid: 'sr-1', other_config: full ? {} : { 'xo:base_delta_vdi': snapshotVdiUuid(d, generation - 1) } }
    metadata.vbds[`OpaqueRef:vbd-${d}`] = { VDI: ref, userdevice: String(d) }
    metadata.vhds[ref] = options.directory === true ? vhdAliasRef(JOB, DISKS[d]!, date) : vhdRef(JOB, DISKS[d]!, date)
    metadata.isVhdDifferencing![ref] = !full
    if (options.directory === true) {
      directoriesSize += await writeBackupVhdDirectory(handler, VM, metadata.vhds[ref]!, vhd)
      continue
    }
    const { length, stream } = createVhdStream(vhd)
    files.push({ ref: metadata.vhds[ref]!, source: stream, options: { length } })
  }
  if (options.directory === true) return writeBackupMetadata(handler, { ...metadata, size: directoriesSize })
  return commitBackup(handler, metadata, files)
}

export function newDisks(count: number, sizeBlocks: number): DiskHistory[] {
  return Array.from({ length: count }, () => ({ layers: [], sizeBlocks, fulls: new Set<number>() }))
}

/** Writes a full (XVA) backup at generation `generation`. */
export async function writeFullBackup(handler: RemoteHandler, generation: number): Promise<VmBackup> {
  const timestamp = START + generation * 3_600_000
  const date = formatFilenameDate(timestamp)
  const metadata: BackupMetadata = {
    version: '2.0.0', jobId: JOB, scheduleId: SCHEDULE, mode: 'full', timestamp, vm: vmRecord,
    vmSnapshot: { ...vmRecord, uuid: 'snap', is_a_snapshot: true }, xva: xvaRef(date),
  }
  return commitBackup(handler, metadata, [{ ref: metadata.xva, source: Readable.from([Buffer.alloc(4096, 7)]) }])
}

/** The remote path of disk `d`'s VHD (or alias, `directory`) at one generation. */
export function vhdPath(d: number, generation: number, directory = false): string {
  return `${vmDir(VM)}/${(directory ? vhdAliasRef : vhdRef)(JOB, DISKS[d]!, formatFilenameDate(START + generation * 3_600_000))}`
}

export function jsonPath(generation: number): string {
  return `${vmDir(VM)}/${formatFilenameDate(START + generation * 3_600_000)}.json`
}

/** sha256 of the raw disk a backup's VHD (with its parents) describes. */
export async function chainHash(root: string, path: string): Promise<string> {
  const chain = await VhdChain.open(join(root, path))
  try {
    const hash = createHash('sha256')
    for await (const chunk of chain.rawStream()) hash.update(chunk as Buffer)
    return hash.digest('hex')
  } finally {
    await chain.close()
  }
}

/** The raw disk of a small chain, whole (tests use disks of a few MiB). */
export async function chainRaw(root: string, path: string): Promise<Buffer> {
  const chain = await VhdChain.open(join(root, path))
  try {
    return await buffer(chain.rawStream())
  } finally {
    await chain.close()
  }
}

/**
 * A local remote that stops at its `stopAt`-th change (write, truncate, writeFile, rename, unlink, rmdir),
 * before doing it, as a crash would: `onStop` decides how (throw, or block until the process is killed).
 */
export function crashingRemote(root: string, stopAt: number, onStop: () => never): { handler: RemoteHandler; changes: () => number } {
  const local = new LocalBackend(root)
  let changes = 0
  const change = () => {
    if (++changes >= stopAt) onStop()
  }
  const wrapFile = (file: RandomAccessFile): RandomAccessFile => ({
    read: (buffer, position) => file.read(buffer, position),
    write: async (buffer, position) => (change(), file.write(buffer, position)),
    size: () => file.size(),
    truncate: async size => (change(), file.truncate(size)),
    close: () => file.close(),
  })
  const backend: Backend = {
    label: local.label,
    capabilities: local.capabilities,
    sync: () => local.sync(),
    close: () => local.close(),
    info: () => local.info(),
    list: (dir, options) => local.list(dir, options),
    stat: path => local.stat(path),
    read: (path, range) => local.read(path, range),
    write: async (path, data, options) => (change(), local.write(path, data, options)),
    delete: async paths => (change(), local.delete(paths)),
    rename: async (from, to) => (change(), local.rename(from, to)),
    rmdir: async path => (change(), local.rmdir(path)),
    rmtree: async path => (change(), local.rmtree(path)),
    mkdir: path => local.mkdir(path),
    open: async (path, mode) => wrapFile(await local.open(path, mode)),
    lock: (path, options) => local.lock(path, options),
  }
  return { handler: new BackendHandler(backend), changes: () => changes }
}
