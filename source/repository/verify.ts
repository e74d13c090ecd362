// Verification of one VM folder of a repository: every backup judged with the cleaner's structural checks
// (shared, in vhd-chains.ts), and with `readData` every block and chunk read back, each VHD block against the hash
// Lifeboat recorded when it wrote it (block-hashes.ts). It reads, never writes.
import { createHash, type Hash } from 'node:crypto'
import { posix } from 'node:path'
import { ahead, mergeStatePath, openVhd, readBlockHashes, type BlockHashTable, type Vhd } from '../formats/vhd/index.ts'
import { loadXxh64 } from '../formats/xxhash.ts'
import { readXva } from '../formats/xva/index.ts'
import { fileSystemAccess, type FileSystemAccess, type RemoteHandler } from '../storage/index.ts'
import type { Task } from '../tasks/index.ts'
import { LifeboatError, errorCode, isLifeboatError } from '../util/errors.ts'
import { parseXvaChecksum } from './commit.ts'
import { backupId, METADATA_FILE, resolveInVmDir, vmDir } from './layout.ts'
import { parseBackupMetadata, type BackupMetadata, type FullBackupMetadata } from './metadata.ts'
import { deltaBackupProblem, listChainFolders, readChainFolder, type BackupProblem, type ChainDisk } from './vhd-chains.ts'

/** One thing wrong: its code, the remote path it concerns, and why; a block that changed also names its blocks and the restore points that read them. */
export type VerifyFinding = BackupProblem & { blocks?: number[]; restorePoints?: string[] }

export interface BackupVerdict {
  /** The backup's id (its metadata path with a leading slash), as `backup list` names it. */
  id: string
  /** Undefined when the metadata does not parse. */
  mode: 'full' | 'delta' | undefined
  /** Empty: the backup verified. */
  findings: VerifyFinding[]
  /** What could not be checked, for information (never a failure): disks without block hashes, checked for structure only. */
  notes: VerifyFinding[]
}

export interface VerifyOptions {
  /** Read every block of every VHD and every chunk of every XVA (checksums checked), not only the structure. */
  readData?: boolean
  signal?: AbortSignal
  /** Each backup is verified in a child task 'verify backup' (failed with its first finding, each finding a warning). */
  task?: Task
  /** Told the bytes of each read, as they come (progress, throughput). */
  onRead?: (bytes: number) => void
  /** Told each backup's verdict once judged. */
  onVerdict?: (verdict: BackupVerdict) => void
}

/** A file system over the remote that refuses every change: verify can never repair, even by mistake. */
function readOnlyAccess(handler: RemoteHandler): FileSystemAccess {
  const access = fileSystemAccess(handler)
  const refuse = (): never => {
    throw new LifeboatError('VERIFY_READ_ONLY', 'Verify tried to change the remote; it only reads. This is a bug in Lifeboat.')
  }
  return {
    ...access,
    open: (path, mode) => (mode === 'r' ? access.open(path, mode) : refuse()),
    writeFile: refuse,
    rename: refuse,
    unlink: refuse,
    mkdir: refuse,
    rmtree: refuse,
  }
}

/** What verify found in one VM folder, each backup with its findings (none: verified). */
export async function verifyVm(handler: RemoteHandler, vmUuid: string, options: VerifyOptions = {}): Promise<BackupVerdict[]> {
  const fs = readOnlyAccess(handler)
  const dir = vmDir(vmUuid)
  const names = await handler.list(dir, { ignoreMissing: true })
  const disks = new Map<string, ChainDisk>()
  for (const folder of await listChainFolders(handler, vmUuid)) {
    options.signal?.throwIfAborted()
    for (const disk of (await readChainFolder(handler, fs, folder)).disks.values()) disks.set(disk.path, disk)
  }
  const backups: Array<{ path: string; name: string; metadata: BackupMetadata | LifeboatError }> = []
  for (const name of names.filter(name => METADATA_FILE.test(name)).sort()) {
    options.signal?.throwIfAborted()
    const path = `${dir}/${name}`
    try {
      backups.push({ path, name, metadata: parseBackupMetadata(await handler.readFile(path), path) })
    } catch (error) {
      if (!isLifeboatError(error, 'REPOSITORY_BAD_METADATA')) throw error
      backups.push({ path, name, metadata: error })
    }
  }
  const dataChecks = new DataChecks(handler, fs, options, restorePointsByDisk(vmUuid, backups, disks))
  const verdicts: BackupVerdict[] = []
  for (const { path, name, metadata } of backups) {
    options.signal?.throwIfAborted()
    const verdict = async (): Promise<BackupVerdict> => {
      if (metadata instanceof LifeboatError) return { id: `/${path}`, mode: undefined, findings: [{ code: metadata.code, path, reason: metadata.message }], notes: [] }
      const checked = metadata.mode === 'full' ? { findings: await dataChecks.xva(vmUuid, metadata), notes: [] } : await deltaFindings(vmUuid, metadata, disks, dataChecks)
      return { id: backupId(vmUuid, name.slice(0, -'.json'.length)), mode: metadata.mode, ...checked }
    }
    const task = options.task?.child('verify backup', { backupId: `/${path}` })
    let result: BackupVerdict
    try {
      result = await verdict()
    } catch (error) {
      task?.fail(error)
      throw error
    }
    verdicts.push(result)
    options.onVerdict?.(result)
    if (task !== undefined) reportVerdict(task, result)
  }
  return verdicts
}

/** Each disk of a delta chain, with the dates of the restore points whose chain includes it (a disk serves every newer delta of its chain). */
function restorePointsByDisk(vmUuid: string, backups: ReadonlyArray<{ name: string; metadata: BackupMetadata | LifeboatError }>, disks: ReadonlyMap<string, ChainDisk>): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const { name, metadata } of backups) {
    if (metadata instanceof LifeboatError || metadata.mode !== 'delta') continue
    for (const ref of Object.values(metadata.vhds)) {
      let path: string
      try {
        path = resolveInVmDir(vmUuid, ref)
      } catch {
        continue
      }
      const seen = new Set<string>()
      for (let disk = disks.get(path); disk !== undefined && !seen.has(disk.path); disk = disk.parent === undefined ? undefined : disks.get(disk.parent)) {
        seen.add(disk.path)
        const points = out.get(disk.path) ?? []
        const date = name.slice(0, -'.json'.length)
        if (!points.includes(date)) points.push(date)
        out.set(disk.path, points)
      }
    }
  }
  return out
}

async function deltaFindings(vmUuid: string, metadata: Extract<BackupMetadata, { mode: 'delta' }>, disks: Map<string, ChainDisk>, dataChecks: DataChecks): Promise<{ findings: VerifyFinding[]; notes: VerifyFinding[] }> {
  const problem = deltaBackupProblem(vmUuid, metadata, disks)
  if (problem !== undefined) return { findings: [problem], notes: [] }
  const findings: VerifyFinding[] = []
  const notes: VerifyFinding[] = []
  for (const ref of Object.values(metadata.vhds)) {
    // Each disk of the chain, newest first; a file shared by several backups is read once.
    for (let disk = disks.get(resolveInVmDir(vmUuid, ref)); disk !== undefined; disk = disk.parent === undefined ? undefined : disks.get(disk.parent)) {
      const checked = await dataChecks.vhd(disk.path)
      findings.push(...checked.findings)
      notes.push(...checked.notes)
    }
  }
  return { findings, notes }
}

/** A failed backup's task lists every finding as a warning and fails with the first; a verified one ends as such. Notes are infos either way. */
function reportVerdict(task: Task, verdict: BackupVerdict): void {
  for (const note of verdict.notes) task.info(`${note.path}: ${note.reason}`, note)
  const [first, ...others] = verdict.findings
  if (first === undefined) return task.end({ verified: true, ...(verdict.notes.length > 0 && { structureOnly: verdict.notes.length }) })
  for (const finding of verdict.findings) task.warning(`${finding.path}: ${finding.reason}`, finding)
  const more = others.length === 0 ? '' : ` (and ${others.length} more finding${others.length === 1 ? '' : 's'})`
  task.fail(new LifeboatError(first.code, `${first.path}: ${first.reason}${more}`, { data: { path: first.path } }))
}

/** Block numbers named in a finding; the rest are counted. */
const NAMED_BLOCKS = 8

interface VhdCheck {
  findings: VerifyFinding[]
  notes: VerifyFinding[]
}

/** The reads of `readData`, each file read once per verify even when several backups share it. */
class DataChecks {
  readonly #vhds = new Map<string, Promise<VhdCheck>>()
  readonly #depth: number

  constructor(
    private readonly handler: RemoteHandler,
    private readonly fs: FileSystemAccess,
    private readonly options: VerifyOptions,
    /** Disk path → the restore points (dates) whose chain includes it. */
    private readonly restorePoints: ReadonlyMap<string, string[]>,
  ) {
    // A few reads in flight, never more than the remote's connections.
    this.#depth = Math.max(1, Math.min(4, handler.capabilities.connections))
  }

  /** Every allocated block of the VHD (file, VhdDirectory, or alias to one) read and decoded, and checked against its recorded hash. */
  vhd(path: string): Promise<VhdCheck> {
    if (this.options.readData !== true) return Promise.resolve({ findings: [], notes: [] })
    let checked = this.#vhds.get(path)
    if (checked === undefined) {
      checked = this.#readVhd(path)
      this.#vhds.set(path, checked)
    }
    return checked
  }

  async #readVhd(path: string): Promise<VhdCheck> {
    let vhd: Vhd
    try {
      vhd = await openVhd(path, { fs: this.fs })
    } catch (error) {
      return { findings: [asFinding(error, path)], notes: [] }
    }
    try {
      const hashes = await this.#hashes(vhd)
      const h64 = await loadXxh64()
      const differing: number[] = []
      const blocks = vhd.allocatedBlocks()
      const pending: Array<Promise<{ bitmap: Buffer; data: Buffer }>> = []
      let next = 0
      for (let k = 0; k < blocks.length; k++) {
        this.options.signal?.throwIfAborted()
        while (next < blocks.length && pending.length < this.#depth) pending.push(ahead(vhd.readBlock(blocks[next++]!)))
        const { bitmap, data } = await pending.shift()!
        this.options.onRead?.(bitmap.length + data.length)
        // The table lists exactly the allocated blocks (checked with its fingerprint): entry k is block k's.
        if (hashes.table !== undefined && (h64(data) !== hashes.table.dataHashAt(k) || h64(bitmap) !== hashes.table.bitmapHashAt(k))) differing.push(blocks[k]!)
      }
      return { findings: differing.length === 0 ? [] : [this.#hashMismatch(path, differing)], notes: hashes.note === undefined ? [] : [hashes.note] }
    } catch (error) {
      return { findings: [asFinding(error, path)], notes: [] }
    } finally {
      await vhd.close()
    }
  }

  /** The recorded hashes that describe the VHD as it is, or the note that says why its blocks are checked for structure only. */
  async #hashes(vhd: Vhd): Promise<{ table?: BlockHashTable; note?: VerifyFinding }> {
    const path = vhd.path
    if (await this.fs.exists(mergeStatePath(path))) {
      return { note: { code: 'VHD_MERGE_PENDING', path, reason: 'a merge into this disk is in progress or was interrupted (the cleaner finishes it); structure checked only' } }
    }
    const read = await readBlockHashes(this.fs, vhd)
    if (read.kind === 'hashes') return { table: read.table }
    if (read.kind === 'damaged') return { note: { code: 'VHD_BLOCK_HASHES_DAMAGED', path, reason: `its block hash file is damaged (${read.reason}); structure checked only` } }
    return { note: { code: 'VHD_NO_BLOCK_HASHES', path, reason: 'no block hashes for this disk (written or changed by another tool); structure checked only' } }
  }

  #hashMismatch(path: string, blocks: number[]): VerifyFinding {
    const named = blocks.slice(0, NAMED_BLOCKS).join(', ')
    const which = blocks.length === 1 ? `block ${named}` : `${blocks.length} blocks (${named}${blocks.length > NAMED_BLOCKS ? ', …' : ''})`
    const points = this.restorePoints.get(path) ?? []
    const pointsText = points.length === 0 ? 'no restore point names this disk' : `the restore point${points.length === 1 ? '' : 's'} ${points.join(', ')} read${points.length === 1 ? 's' : ''} it and cannot be trusted`
    return {
      code: 'VHD_BLOCK_HASH_MISMATCH',
      path,
      reason: `${which} of this disk no longer match${blocks.length === 1 ? 'es' : ''} the hash recorded when Lifeboat wrote it: the data changed on the remote since; ${pointsText}. Run a full backup of this VM (a schedule with forceFull) and do not restore from ${points.length === 1 ? 'it' : 'them'}.`,
      blocks: blocks.slice(0, NAMED_BLOCKS),
      restorePoints: points,
    }
  }

  /**
   * The XVA named by full metadata: present, of the size recorded, its tar framing and ova.xml sound, its
   * chunks in order within their disks; with `readData`, every chunk against its checksum entry (xxhash or
   * sha1, as XAPI writes them) and the whole file against XO's `.checksum` (md5) when there is one.
   */
  async xva(vmUuid: string, metadata: FullBackupMetadata): Promise<VerifyFinding[]> {
    let path: string
    try {
      path = resolveInVmDir(vmUuid, metadata.xva)
    } catch (error) {
      return [asFinding(error, `${vmDir(vmUuid)}/${metadata.xva}`)]
    }
    const findings: VerifyFinding[] = []
    let size: number
    try {
      size = (await this.handler.stat(path)).size
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return [{ code: 'XVA_MISSING', path, reason: `its XVA ${metadata.xva} is missing` }]
      throw error
    }
    if (metadata.size !== undefined && size !== metadata.size) {
      findings.push({ code: 'XVA_SIZE_MISMATCH', path, reason: `the XVA holds ${size} bytes where the metadata records ${metadata.size}: it was cut short or changed` })
    }
    const readData = this.options.readData === true
    const expectedMd5 = readData ? await this.#xoChecksum(path, findings) : undefined
    const md5 = expectedMd5 === undefined ? undefined : createHash('md5')
    try {
      const stream = await this.handler.createReadStream(path)
      for await (const _entry of readXva(counted(stream, this.options, md5), { verifyChecksums: readData })) this.options.signal?.throwIfAborted()
    } catch (error) {
      this.options.signal?.throwIfAborted()
      findings.push(asFinding(error, path))
      return findings
    }
    const actual = md5?.digest('hex')
    if (actual !== undefined && actual !== expectedMd5) {
      findings.push({ code: 'XVA_BAD_CHECKSUM', path, reason: `the XVA's md5 is ${actual} where ${posix.basename(path)}.checksum records ${expectedMd5}: it changed since the backup` })
    }
    return findings
  }

  /** The md5 XO's `<xva>.checksum` records, undefined when there is none (Lifeboat's own XVAs have none). */
  async #xoChecksum(path: string, findings: VerifyFinding[]): Promise<string | undefined> {
    let text: string
    try {
      text = (await this.handler.readFile(`${path}.checksum`)).toString()
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined
      throw error
    }
    const expected = parseXvaChecksum(text)
    if (expected === undefined) findings.push({ code: 'XVA_BAD_CHECKSUM_FILE', path: `${path}.checksum`, reason: "the checksum file is not in XO's form ($1$$<md5 hex>)" })
    return expected
  }
}

/** The stream's chunks, each told to `onRead` and fed to `md5` on the way. */
async function* counted(stream: AsyncIterable<unknown>, options: VerifyOptions, md5: Hash | undefined): AsyncGenerator<Buffer> {
  for await (const chunk of stream) {
    const buffer = chunk as Buffer
    options.onRead?.(buffer.length)
    md5?.update(buffer)
    yield buffer
  }
}

/** What a failed read says about the data (a coded format error, a missing file); the remote failing is thrown. */
function asFinding(error: unknown, path: string): VerifyFinding {
  if (isLifeboatError(error) && (/^(VHD|XVA|REPOSITORY)_/.test(error.code) || error.code === 'FILE_NOT_FOUND' || error.code === 'REMOTE_DECRYPT_FAILED')) return { code: error.code, path, reason: error.message }
  if (errorCode(error) === 'ENOENT') return { code: 'FILE_NOT_FOUND', path, reason: `${path} is missing` }
  throw error
}
