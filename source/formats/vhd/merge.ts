// Merging delta VHDs into their ancestor (XO's algorithm): in place for VHD files, one pass of whole blocks,
// a state file beside the ancestor so that a merge killed at any point resumes and ends with the same bytes.
import { join } from 'node:path'
import { throwIfAborted } from '../../util/abort.ts'
import { LifeboatError } from '../../util/errors.ts'
import { isVhdAlias } from './aliases.ts'
import { finishMergedBlockHashes, prepareMergedBlockHashes } from './block-hashes.ts'
import { ahead, readSyntheticBlock } from './chain.ts'
import { isVhdDirectory } from './directory.ts'
import { VhdFile } from './file.ts'
import { localFileSystem, type FileSystemAccess } from './fileSystem.ts'
import { mergeVhdDirectoryChain } from './merge-directory.ts'
import {
  STATE_INTERVAL_MS, checkMergeable, identityOf, newState, pendingState, readState, statePathOf, unlinkIfAny, writeState, type MergeOptions, type MergeState,
} from './merge-state.ts'

export type { MergeOptions } from './merge-state.ts'

const READ_AHEAD = 2

/**
 * Merges `chain` (ancestor first) into one VHD named as its newest: in place when they are VHD files, by
 * block copies when they are VhdDirectories reached through aliases (XO merges a VhdDirectory only so).
 */
export async function mergeVhdChain(chain: string[], options: MergeOptions = {}): Promise<{ mergedBytes: number; path: string }> {
  const fs = options.fs ?? localFileSystem
  if (chain.length < 2) throw new LifeboatError('VHD_BAD_CHAIN', 'A merge needs an ancestor and at least one child.')
  throwIfAborted(options.signal)
  if (isVhdAlias(chain[0]!)) return mergeVhdDirectoryChain(chain, { ...options, fs })
  const state = await pendingState(fs, chain)
  if (state?.step !== 'cleanup') await refuseDirectories(fs, chain)
  return mergeVhdFiles(fs, chain, state, options)
}

async function refuseDirectories(fs: FileSystemAccess, chain: string[]): Promise<void> {
  if (await isVhdDirectory(fs, chain[0]!)) {
    throw new LifeboatError('NOT_SUPPORTED', `${chain[0]} is a VhdDirectory reached without an alias; like XO, Lifeboat merges a VhdDirectory only through its alias (*.alias.vhd).`)
  }
  for (const child of chain.slice(1)) {
    if (isVhdAlias(child) || (await isVhdDirectory(fs, child))) {
      throw new LifeboatError('NOT_SUPPORTED', `${child} is a VhdDirectory but its ancestor ${chain[0]} is a VHD file; a chain mixing both cannot be merged (XO starts a new full when the format changes).`)
    }
  }
}

async function mergeVhdFiles(fs: FileSystemAccess, chain: string[], pending: MergeState | undefined, options: MergeOptions): Promise<{ mergedBytes: number; path: string }> {
  const statePath = statePathOf(chain[0]!)
  let state = pending
  if (state?.step !== 'cleanup') state = await mergeBlocks(fs, chain, statePath, state, options)
  const target = chain[chain.length - 1]!
  // After a crash past the rename the ancestor is already gone.
  const renamed = !(await fs.exists(chain[0]!))
  if (!renamed) await adoptFooter(fs, chain[0]!, target)
  for (const intermediate of chain.slice(1, -1)) await unlinkIfAny(fs, intermediate)
  // Renaming over the newest child replaces it atomically.
  if (!renamed) await fs.rename(chain[0]!, target)
  await finishMergedBlockHashes(fs, statePath, chain)
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
    const state = saved ?? newState(parent, newest, chain, statePath)
    const toMerge: number[] = []
    for (let index = 0; index < newest.blockCount; index++) if (children.some(c => c.isAllocated(index))) toMerge.push(index)
    await options.checkSpace?.(parent.growth(newest.blockCount, toMerge.filter(index => index >= state.currentBlock)))
    if (!resuming) await prepareMergedBlockHashes(fs, statePath, parent, children)
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

/** Done again on resume: the footer is the same either way. */
async function adoptFooter(fs: FileSystemAccess, ancestor: string, newest: string): Promise<void> {
  const child = await VhdFile.open(newest, { fs })
  const identity = identityOf(child)
  await child.close()
  const parent = await VhdFile.open(ancestor, { fs, writable: true, force: true })
  try {
    await parent.writeFooter(identity)
  } finally {
    await parent.close()
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
