// Merging delta VHDs into their ancestor in place (XO's algorithm): one pass of whole blocks, a state file
// beside the ancestor so that a merge killed at any point resumes and ends with the same bytes.
import { basename, dirname, join, normalize, relative } from 'node:path'
import { z } from 'zod'
import { throwIfAborted } from '../../util/abort.ts'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import { ahead, readSyntheticBlock } from './chain.ts'
import { VhdFile } from './file.ts'
import { localFileSystem, type FileSystemAccess } from './fileSystem.ts'
import { DISK_TYPE_DIFFERENCING, DISK_TYPE_FIXED } from './structures.ts'

const STATE_INTERVAL_MS = 10_000
const READ_AHEAD = 2

const mergeStateSchema = z.object({
  child: z.object({ uuid: z.string() }),
  parent: z.object({ uuid: z.string() }),
  chain: z.array(z.string()).min(2),
  currentBlock: z.number().nullable().transform(n => (n === null || !Number.isFinite(n) || n < 0 ? 0 : Math.floor(n))),
  mergedDataSize: z.number(),
  step: z.enum(['mergeBlocks', 'cleanup']),
  diskSize: z.number(),
})
type MergeState = z.output<typeof mergeStateSchema>

export interface MergeOptions {
  fs?: FileSystemAccess
  onProgress?: (done: number, total: number) => void
  /** Stops the merge between blocks with the signal's coded reason (CANCELLED, TIMEOUT); the state file lets it resume. */
  signal?: AbortSignal
  /** How often progress is saved to the state file (XO: every 10 s). */
  stateInterval?: number
  /** Told the bytes the ancestor grows by before anything is written; throwing (not enough free space) stops the merge there. */
  checkSpace?: (bytes: number) => Promise<void>
}

function statePathOf(ancestor: string): string {
  return join(dirname(ancestor), `.${basename(ancestor)}.merge.json`)
}

async function readState(fs: FileSystemAccess, path: string): Promise<MergeState | undefined> {
  if (!(await fs.exists(path))) return undefined
  let json: unknown
  try {
    json = JSON.parse((await fs.readFile(path)).toString('utf8'))
  } catch {
    json = undefined
  }
  const result = mergeStateSchema.safeParse(json)
  if (!result.success) throw new LifeboatError('VHD_BAD_MERGE_STATE', `The merge state ${path} is unreadable; remove it and check the VHD chain before merging again.`)
  return result.data
}

function writeState(fs: FileSystemAccess, path: string, state: MergeState): Promise<void> {
  return fs.writeFile(path, JSON.stringify(state))
}

async function unlinkIfAny(fs: FileSystemAccess, path: string): Promise<void> {
  try {
    await fs.unlink(path)
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error
  }
}

export async function mergeVhdChain(chain: string[], options: MergeOptions = {}): Promise<{ mergedBytes: number; path: string }> {
  const fs = options.fs ?? localFileSystem
  if (chain.length < 2) throw new LifeboatError('VHD_BAD_CHAIN', 'A merge needs an ancestor and at least one child.')
  throwIfAborted(options.signal)
  const dir = dirname(chain[0]!)
  const statePath = statePathOf(chain[0]!)
  let state = await readState(fs, statePath)
  if (state !== undefined) {
    // join, not resolve: paths may be relative to a remote's root, never to this process's folder.
    const saved = state.chain.map(p => join(dir, p))
    if (saved.length !== chain.length || saved.some((p, i) => p !== normalize(chain[i]!))) {
      throw new LifeboatError('VHD_MERGE_STATE_MISMATCH', `An interrupted merge of ${saved.join(', ')} is pending beside ${chain[0]}; finish it first (resumeVhdMergeIfAny).`)
    }
  }
  if (state?.step !== 'cleanup') state = await mergeBlocks(fs, chain, statePath, state, options)
  const target = chain[chain.length - 1]!
  // After a crash past the rename the ancestor is already gone.
  const renamed = !(await fs.exists(chain[0]!))
  if (!renamed) await adoptFooter(fs, chain[0]!, target)
  for (const intermediate of chain.slice(1, -1)) await unlinkIfAny(fs, intermediate)
  // Renaming over the newest child replaces it atomically.
  if (!renamed) await fs.rename(chain[0]!, target)
  await unlinkIfAny(fs, statePath)
  return { mergedBytes: state.mergedDataSize, path: target }
}

async function mergeBlocks(fs: FileSystemAccess, chain: string[], statePath: string, saved: MergeState | undefined, options: MergeOptions): Promise<MergeState> {
  const resuming = saved !== undefined
  const files: VhdFile[] = []
  try {
    // The ancestor's closing footer is overwritten by appended blocks, hence `force` when resuming.
    const parent = await VhdFile.open(chain[0]!, { fs, writable: true, force: resuming })
    files.push(parent)
    for (const path of chain.slice(1)) files.push(await VhdFile.open(path, { fs }))
    const children = files.slice(1)
    const newest = children[children.length - 1]!
    checkMergeable(parent, children, saved)
    const state: MergeState = saved ?? {
      child: { uuid: newest.footer.uuid },
      parent: { uuid: parent.footer.uuid },
      chain: chain.map(p => relative(dirname(statePath), p)),
      currentBlock: 0,
      mergedDataSize: 0,
      step: 'mergeBlocks',
      diskSize: newest.footer.currentSize,
    }
    const toMerge: number[] = []
    for (let index = 0; index < newest.blockCount; index++) if (children.some(c => c.isAllocated(index))) toMerge.push(index)
    await options.checkSpace?.(parent.growth(newest.blockCount, toMerge.filter(index => index >= state.currentBlock)))
    if (!resuming) await writeState(fs, statePath, state)
    await parent.growTable(newest.blockCount)
    const newestFirst = [...children].reverse()
    const sources = [...newestFirst, parent]
    const { blockSize } = parent.header
    const total = toMerge.length * blockSize
    let lastSave = Date.now()
    const remaining = toMerge.filter(index => index >= state.currentBlock)
    // The next blocks are read while the current one is written; writes stay one at a time, in order.
    const read = (index: number) => ahead(readSyntheticBlock(sources, index))
    const pending = remaining.slice(0, READ_AHEAD).map(read)
    for (const [k, index] of remaining.entries()) {
      throwIfAborted(options.signal)
      const block = (await pending.shift()!)!
      if (k + READ_AHEAD < remaining.length) pending.push(read(remaining[k + READ_AHEAD]!))
      await parent.writeBlock(index, block.bitmap, block.data)
      state.currentBlock = index + 1
      state.mergedDataSize += blockSize
      if (Date.now() - lastSave >= (options.stateInterval ?? STATE_INTERVAL_MS)) {
        await writeState(fs, statePath, state)
        lastSave = Date.now()
      }
      options.onProgress?.(state.mergedDataSize, total)
    }
    // Saved before the ancestor takes the newest child's footer: until then every chain still reads as before.
    state.step = 'cleanup'
    await writeState(fs, statePath, state)
    return state
  } finally {
    await Promise.all(files.map(f => f.close().catch(() => {})))
  }
}

/** The merged ancestor takes the newest child's identity (uuid, size, time), as the file it replaces; done again on resume. */
async function adoptFooter(fs: FileSystemAccess, ancestor: string, newest: string): Promise<void> {
  const child = await VhdFile.open(newest, { fs })
  const { uuid, timestamp, currentSize, originalSize, geometry } = child.footer
  await child.close()
  const parent = await VhdFile.open(ancestor, { fs, writable: true, force: true })
  try {
    await parent.writeFooter({ uuid, timestamp, currentSize, originalSize, geometry })
  } finally {
    await parent.close()
  }
}

function checkMergeable(parent: VhdFile, children: VhdFile[], saved: MergeState | undefined): void {
  if (parent.footer.diskType === DISK_TYPE_FIXED) throw new LifeboatError('VHD_BAD_DISK_TYPE', `${parent.path} is a fixed VHD; deltas can only be merged into dynamic or differencing VHDs.`)
  const newest = children[children.length - 1]!
  // Once the ancestor's footer is rewritten it carries the newest child's uuid.
  const ancestorUuids = saved === undefined ? [parent.footer.uuid] : [saved.parent.uuid, saved.child.uuid]
  if (!ancestorUuids.includes(parent.footer.uuid) || (saved !== undefined && newest.footer.uuid !== saved.child.uuid)) {
    throw new LifeboatError('VHD_MERGE_STATE_MISMATCH', `The files of the interrupted merge into ${parent.path} changed since it started; check the chain by hand.`)
  }
  let expectedParent = saved?.parent.uuid ?? parent.footer.uuid
  let previous = parent
  for (const child of children) {
    if (child.footer.diskType !== DISK_TYPE_DIFFERENCING) throw new LifeboatError('VHD_BAD_DISK_TYPE', `${child.path} is not a differencing VHD; only deltas can be merged into a parent.`)
    if (child.header.parentUuid !== expectedParent) {
      throw new LifeboatError('VHD_PARENT_MISMATCH', `${child.path} expects parent ${child.header.parentUuid} but ${previous.path} is ${expectedParent}; the chain is not in order.`)
    }
    if (child.header.blockSize !== parent.header.blockSize) throw new LifeboatError('VHD_BAD_BLOCK_SIZE', `${child.path} and ${parent.path} have different block sizes.`)
    expectedParent = child.footer.uuid
    previous = child
  }
}

/** Finishes the merges found interrupted in `dir`; returns the final path of each. */
export async function resumeVhdMergeIfAny(dir: string, options: Pick<MergeOptions, 'fs' | 'checkSpace'> = {}): Promise<string[]> {
  const fs = options.fs ?? localFileSystem
  if (fs.list === undefined) throw new LifeboatError('NOT_SUPPORTED', 'This storage cannot list folders, so interrupted merges cannot be found on it.')
  const done: string[] = []
  for (const name of (await fs.list(dir)).sort()) {
    if (!/^\..+\.merge\.json$/.test(name)) continue
    const statePath = join(dir, name)
    const state = await readState(fs, statePath)
    if (state === undefined) continue
    const chain = state.chain.map(p => join(dir, p))
    if (state.step === 'mergeBlocks' && !(await fs.exists(chain[0]!))) {
      await unlinkIfAny(fs, statePath) // orphan state: its ancestor is gone (XO does the same)
      continue
    }
    done.push((await mergeVhdChain(chain, { ...options, fs })).path)
  }
  return done
}
