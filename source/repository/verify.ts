// Verification of one VM folder of a repository: every backup judged with the cleaner's structural checks
// (shared, in vhd-chains.ts), and with `readData` every block and chunk read back. It reads, never writes.
import { createHash, type Hash } from 'node:crypto'
import { posix } from 'node:path'
import { ahead, openVhd, type Vhd } from '../formats/vhd/index.ts'
import { readXva } from '../formats/xva/index.ts'
import { fileSystemAccess, type FileSystemAccess, type RemoteHandler } from '../storage/index.ts'
import type { Task } from '../tasks/index.ts'
import { LifeboatError, errorCode, isLifeboatError } from '../util/errors.ts'
import { parseXvaChecksum } from './commit.ts'
import { backupId, METADATA_FILE, resolveInVmDir, vmDir } from './layout.ts'
import { parseBackupMetadata, type BackupMetadata, type FullBackupMetadata } from './metadata.ts'
import { deltaBackupProblem, listChainFolders, readChainFolder, type BackupProblem, type ChainDisk } from './vhd-chains.ts'

/** One thing wrong: its code, the remote path it concerns, and why. */
export type VerifyFinding = BackupProblem

export interface BackupVerdict {
  /** The backup's id (its metadata path with a leading slash), as `backup list` names it. */
  id: string
  /** Undefined when the metadata does not parse. */
  mode: 'full' | 'delta' | undefined
  /** Empty: the backup verified. */
  findings: VerifyFinding[]
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
  const dataChecks = new DataChecks(handler, fs, options)
  const verdicts: BackupVerdict[] = []
  for (const name of names.filter(name => METADATA_FILE.test(name)).sort()) {
    options.signal?.throwIfAborted()
    const path = `${dir}/${name}`
    const verdict = async (): Promise<BackupVerdict> => {
      let metadata: BackupMetadata
      try {
        metadata = parseBackupMetadata(await handler.readFile(path), path)
      } catch (error) {
        if (!isLifeboatError(error, 'REPOSITORY_BAD_METADATA')) throw error
        return { id: `/${path}`, mode: undefined, findings: [{ code: error.code, path, reason: error.message }] }
      }
      const findings = metadata.mode === 'full' ? await dataChecks.xva(vmUuid, metadata) : await deltaFindings(vmUuid, metadata, disks, dataChecks)
      return { id: backupId(vmUuid, name.slice(0, -'.json'.length)), mode: metadata.mode, findings }
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

async function deltaFindings(vmUuid: string, metadata: Extract<BackupMetadata, { mode: 'delta' }>, disks: Map<string, ChainDisk>, dataChecks: DataChecks): Promise<VerifyFinding[]> {
  const problem = deltaBackupProblem(vmUuid, metadata, disks)
  if (problem !== undefined) return [problem]
  const findings: VerifyFinding[] = []
  for (const ref of Object.values(metadata.vhds)) {
    // Each disk of the chain, newest first; a file shared by several backups is read once.
    for (let disk = disks.get(resolveInVmDir(vmUuid, ref)); disk !== undefined; disk = disk.parent === undefined ? undefined : disks.get(disk.parent)) {
      const finding = await dataChecks.vhd(disk.path)
      if (finding !== undefined) findings.push(finding)
    }
  }
  return findings
}

/** A failed backup's task lists every finding as a warning and fails with the first; a verified one ends as such. */
function reportVerdict(task: Task, verdict: BackupVerdict): void {
  const [first, ...others] = verdict.findings
  if (first === undefined) return task.end({ verified: true })
  for (const finding of verdict.findings) task.warning(`${finding.path}: ${finding.reason}`, finding)
  const more = others.length === 0 ? '' : ` (and ${others.length} more finding${others.length === 1 ? '' : 's'})`
  task.fail(new LifeboatError(first.code, `${first.path}: ${first.reason}${more}`, { data: { path: first.path } }))
}

/** The reads of `readData`, each file read once per verify even when several backups share it. */
class DataChecks {
  readonly #vhds = new Map<string, Promise<VerifyFinding | undefined>>()
  readonly #depth: number

  constructor(
    private readonly handler: RemoteHandler,
    private readonly fs: FileSystemAccess,
    private readonly options: VerifyOptions,
  ) {
    // A few reads in flight, never more than the remote's connections.
    this.#depth = Math.max(1, Math.min(4, handler.capabilities.connections))
  }

  /** Every allocated block of the VHD (file, VhdDirectory, or alias to one) read and decoded. */
  vhd(path: string): Promise<VerifyFinding | undefined> {
    if (this.options.readData !== true) return Promise.resolve(undefined)
    let checked = this.#vhds.get(path)
    if (checked === undefined) {
      checked = this.#readVhd(path)
      this.#vhds.set(path, checked)
    }
    return checked
  }

  async #readVhd(path: string): Promise<VerifyFinding | undefined> {
    let vhd: Vhd
    try {
      vhd = await openVhd(path, { fs: this.fs })
    } catch (error) {
      return asFinding(error, path)
    }
    try {
      const blocks = vhd.allocatedBlocks()
      const pending: Array<Promise<{ bitmap: Buffer; data: Buffer }>> = []
      let next = 0
      for (let k = 0; k < blocks.length; k++) {
        this.options.signal?.throwIfAborted()
        while (next < blocks.length && pending.length < this.#depth) pending.push(ahead(vhd.readBlock(blocks[next++]!)))
        const { bitmap, data } = await pending.shift()!
        this.options.onRead?.(bitmap.length + data.length)
      }
      return undefined
    } catch (error) {
      return asFinding(error, path)
    } finally {
      await vhd.close()
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
