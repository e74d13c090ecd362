// What the two merges (in place in a VHD file, block copies into a VhdDirectory) share: the state file
// beside the ancestor that lets a killed merge resume, and the checks that the chain may be merged.
import { basename, dirname, join, normalize, relative } from 'node:path'
import { z } from 'zod'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import type { FileSystemAccess } from './fileSystem.ts'
import { DISK_TYPE_DIFFERENCING, DISK_TYPE_FIXED } from './structures.ts'
import type { Vhd } from './vhd.ts'

export const STATE_INTERVAL_MS = 10_000

const mergeStateSchema = z.object({
  child: z.object({ uuid: z.string() }),
  parent: z.object({ uuid: z.string() }),
  chain: z.array(z.string()).min(2),
  currentBlock: z.number().nullable().transform(n => (n === null || !Number.isFinite(n) || n < 0 ? 0 : Math.floor(n))),
  mergedDataSize: z.number(),
  step: z.enum(['mergeBlocks', 'cleanup']),
  diskSize: z.number(),
  /** VhdDirectory merges: the children's folders (relative to the state file), removed last. */
  remove: z.array(z.string()).optional(),
})
export type MergeState = z.output<typeof mergeStateSchema>

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

export function statePathOf(ancestor: string): string {
  return join(dirname(ancestor), `.${basename(ancestor)}.merge.json`)
}

export async function readState(fs: FileSystemAccess, path: string): Promise<MergeState | undefined> {
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

/** The state of an interrupted merge of exactly `chain`, if any; one left for other files is refused. */
export async function pendingState(fs: FileSystemAccess, chain: string[]): Promise<MergeState | undefined> {
  const statePath = statePathOf(chain[0]!)
  const state = await readState(fs, statePath)
  if (state !== undefined) {
    // join, not resolve: paths may be relative to a remote's root, never to this process's folder.
    const saved = state.chain.map(p => join(dirname(statePath), p))
    if (saved.length !== chain.length || saved.some((p, i) => p !== normalize(chain[i]!))) {
      throw new LifeboatError('VHD_MERGE_STATE_MISMATCH', `An interrupted merge of ${saved.join(', ')} is pending beside ${chain[0]}; finish it first (resumeVhdMergeIfAny).`)
    }
  }
  return state
}

/** The state of a merge starting now; `remove` lists folders to delete at the end (relative to the state file, as the chain). */
export function newState(parent: Vhd, newest: Vhd, chain: string[], statePath: string, remove?: string[]): MergeState {
  const relativeToState = (p: string) => relative(dirname(statePath), p)
  return {
    child: { uuid: newest.footer.uuid },
    parent: { uuid: parent.footer.uuid },
    chain: chain.map(relativeToState),
    currentBlock: 0,
    mergedDataSize: 0,
    step: 'mergeBlocks',
    diskSize: newest.footer.currentSize,
    ...(remove !== undefined && { remove: remove.map(relativeToState) }),
  }
}

export function writeState(fs: FileSystemAccess, path: string, state: MergeState): Promise<void> {
  return fs.writeFile(path, JSON.stringify(state))
}

export async function unlinkIfAny(fs: FileSystemAccess, path: string): Promise<void> {
  try {
    await fs.unlink(path)
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error
  }
}

export function checkMergeable(parent: Vhd, children: Vhd[], saved: MergeState | undefined): void {
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

/** The merged ancestor takes the newest child's identity (uuid, size, time, geometry), as the VHD it replaces. */
export function identityOf(newest: Vhd): Pick<Vhd['footer'], 'uuid' | 'timestamp' | 'currentSize' | 'originalSize' | 'geometry'> {
  const { uuid, timestamp, currentSize, originalSize, geometry } = newest.footer
  return { uuid, timestamp, currentSize, originalSize, geometry }
}
