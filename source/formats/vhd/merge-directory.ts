// Merging VhdDirectories reached through aliases (XO's merge.js): the children's blocks are copied (or, from
// a single child, moved) into the ancestor's folder, which then takes the newest child's identity; the newest
// alias is pointed at it and the children's folders are removed. A state file makes every step resumable.
import { dirname, join } from 'node:path'
import { throwIfAborted } from '../../util/abort.ts'
import { LifeboatError, isLifeboatError } from '../../util/errors.ts'
import { isVhdAlias, readVhdAlias, writeVhdAlias } from './aliases.ts'
import { finishMergedBlockHashes, prepareMergedBlockHashes } from './block-hashes.ts'
import { ahead, readSyntheticBlock } from './chain.ts'
import { VhdDirectory, openVhd } from './directory.ts'
import { localFileSystem } from './fileSystem.ts'
import {
  STATE_INTERVAL_MS, checkMergeable, identityOf, newState, pendingState, statePathOf, unlinkIfAny, writeState, type MergeOptions, type MergeState,
} from './merge-state.ts'
import { bitmapSize, isBitmapFull, VHD_SECTOR_SIZE } from './structures.ts'
import type { Vhd } from './vhd.ts'

const READ_AHEAD = 2

export async function mergeVhdDirectoryChain(chain: string[], options: MergeOptions = {}): Promise<{ mergedBytes: number; path: string }> {
  const fs = options.fs ?? localFileSystem
  if (fs.rmtree === undefined) throw new LifeboatError('NOT_SUPPORTED', 'This storage cannot remove folders, so merged VhdDirectories could not be removed; it cannot merge them.')
  for (const path of chain) {
    if (!isVhdAlias(path)) throw new LifeboatError('NOT_SUPPORTED', `${path} is not an alias; like XO, Lifeboat merges VhdDirectories only when every one is reached through its alias (*.alias.vhd).`)
  }
  const statePath = statePathOf(chain[0]!)
  let state = await pendingState(fs, chain)
  if (state?.step !== 'cleanup') state = await mergeBlocks(chain, statePath, state, { ...options, fs })
  const newest = chain[chain.length - 1]!
  // Past the alias switch the ancestor's alias is gone and the newest alias already names the merged folder.
  const switched = !(await fs.exists(chain[0]!))
  let merged: string | undefined
  if (!switched) {
    merged = await readVhdAlias(fs, chain[0]!)
    await adoptIdentity(chain[0]!, newest, { ...options, fs })
  }
  for (const intermediate of chain.slice(1, -1)) await unlinkIfAny(fs, intermediate)
  if (merged !== undefined) {
    await writeVhdAlias(fs, newest, merged)
    await unlinkIfAny(fs, chain[0]!)
  }
  for (const folder of state.remove ?? []) await fs.rmtree(join(dirname(statePath), folder))
  await finishMergedBlockHashes(fs, statePath, chain)
  await unlinkIfAny(fs, statePath)
  return { mergedBytes: state.mergedDataSize, path: newest }
}

async function openDirectory(path: string, options: MergeOptions & { fs: NonNullable<MergeOptions['fs']> }): Promise<VhdDirectory> {
  const vhd = await openVhd(path, { fs: options.fs })
  if (vhd instanceof VhdDirectory) return vhd
  await vhd.close()
  throw new LifeboatError('NOT_SUPPORTED', `The alias ${path} points at a VHD file; only aliases of VhdDirectories can be merged.`)
}

/** Done again on resume: by then the newest alias may already name the merged folder, whose footer is the same. */
async function adoptIdentity(ancestor: string, newest: string, options: MergeOptions & { fs: NonNullable<MergeOptions['fs']> }): Promise<void> {
  const child = await openDirectory(newest, options)
  const parent = await openDirectory(ancestor, options)
  parent.growTable(child.blockCount)
  await parent.writeHeaderAndFooter(identityOf(child))
}

async function mergeBlocks(chain: string[], statePath: string, saved: MergeState | undefined, options: MergeOptions & { fs: NonNullable<MergeOptions['fs']> }): Promise<MergeState> {
  const { fs } = options
  const resuming = saved !== undefined
  const parent = await openDirectory(chain[0]!, options)
  const children: VhdDirectory[] = []
  for (const path of chain.slice(1)) children.push(await openDirectory(path, options))
  const newest = children[children.length - 1]!
  checkMergeable(parent, children, saved)
  if (children.some(c => c.dataPath === parent.dataPath)) throw new LifeboatError('VHD_BAD_CHAIN', `${chain.join(', ')}: two aliases of the chain name the same folder ${parent.dataPath}.`)
  const state = saved ?? newState(parent, newest, chain, statePath, children.map(c => c.dataPath))
  const toMerge: number[] = []
  for (let index = 0; index < newest.blockCount; index++) if (children.some(c => c.isAllocated(index))) toMerge.push(index)
  const remaining = toMerge.filter(index => index >= state.currentBlock)
  const { blockSize } = parent.header
  // At most: every block new to the ancestor, stored uncompressed (moved blocks add nothing, but are not known yet).
  await options.checkSpace?.(remaining.filter(index => !parent.isAllocated(index)).length * (bitmapSize(blockSize) + blockSize))
  if (!resuming) await prepareMergedBlockHashes(fs, statePath, parent, children)
  if (!resuming) await writeState(fs, statePath, state)
  parent.growTable(newest.blockCount)
  // XO moves blocks only from a single child (a synthetic of several is copied), and only between the same compression.
  const moving = fs.nativeRename === true && children.length === 1 && newest.compression === parent.compression
  const newestFirst = [...children].reverse()
  const sources: Vhd[] = [...newestFirst, parent]
  const total = toMerge.length * blockSize
  let lastSave = Date.now()
  const prepare = (index: number) => ahead(prepareBlock(newestFirst, sources, parent, index, moving, resuming))
  const pending = remaining.slice(0, READ_AHEAD).map(prepare)
  for (const [k, index] of remaining.entries()) {
    throwIfAborted(options.signal)
    const block = await pending.shift()!
    if (k + READ_AHEAD < remaining.length) pending.push(prepare(remaining[k + READ_AHEAD]!))
    if (block.kind === 'moved') parent.markAllocated(index)
    else if (block.kind === 'move') {
      await fs.rename(newest.blockPath(index), await parent.prepareBlockPath(index))
      parent.markAllocated(index)
    } else if (block.kind === 'stored') await parent.writeStoredBlock(index, block.stored)
    else await parent.writeBlock(index, block.bitmap, block.data)
    state.currentBlock = index + 1
    state.mergedDataSize += blockSize
    if (Date.now() - lastSave >= (options.stateInterval ?? STATE_INTERVAL_MS)) {
      // The bat first: the state then never claims blocks the ancestor's bitmap lacks.
      await parent.writeBat()
      await writeState(fs, statePath, state)
      lastSave = Date.now()
    }
    options.onProgress?.(state.mergedDataSize, total)
  }
  await parent.writeBat()
  state.step = 'cleanup'
  await writeState(fs, statePath, state)
  return state
}

type PreparedBlock =
  | { kind: 'moved' } // moved before a crash: already the ancestor's
  | { kind: 'move' }
  | { kind: 'stored'; stored: Buffer }
  | { kind: 'decoded'; bitmap: Buffer; data: Buffer }

/**
 * What to put in the ancestor for a block: the newest child's file as stored when it holds every sector
 * (copied, or moved), else the sectors merged down the chain, compressed again.
 */
async function prepareBlock(newestFirst: VhdDirectory[], sources: Vhd[], parent: VhdDirectory, index: number, moving: boolean, resuming: boolean): Promise<PreparedBlock> {
  const owner = newestFirst.find(c => c.isAllocated(index))!
  let stored: Buffer
  try {
    stored = await owner.readStoredBlock(index)
  } catch (error) {
    // A block moved just before a crash is gone from the child and already in the ancestor's folder.
    if (moving && resuming && isLifeboatError(error, 'VHD_BLOCK_MISSING')) {
      await parent.decodeBlock(index, await parent.readStoredBlock(index))
      return { kind: 'moved' }
    }
    throw error
  }
  const block = await owner.decodeBlock(index, stored)
  if (isBitmapFull(block.bitmap, parent.header.blockSize / VHD_SECTOR_SIZE)) {
    if (moving) return { kind: 'move' }
    if (owner.compression === parent.compression) return { kind: 'stored', stored }
    return { kind: 'decoded', ...block }
  }
  return { kind: 'decoded', ...(await readSyntheticBlock(sources, index))! }
}
