// Merging the VHDs retention left unreferenced into the oldest kept backup that needs them, each merge in
// its own 'merge' task; merges a crash interrupted are finished first, from their state files.
import { mergeVhdChain, resumeVhdMergeIfAny } from '../formats/vhd/index.ts'
import { remoteFull, type FileSystemAccess, type RemoteHandler } from '../storage/index.ts'
import type { Task } from '../tasks/index.ts'
import { isLifeboatError } from '../util/errors.ts'
import { forgetFiles } from './known-files.ts'

const MERGE_STATE_FILE = /^\..+\.merge\.json$/
// Progress is a task property: a few updates per second at most, whatever the disk size.
const PROGRESS_INTERVAL_MS = 1000

export interface MergeOutcome {
  /** VHDs folded into their ancestor (each ends up gone or renamed). */
  merged: number
  mergedBytes: number
}

/**
 * Finishes the merges interrupted in a chain folder. Returns undefined when there were none, and
 * throws when one cannot be finished (its files are then left as they are for an administrator).
 */
export async function resumeInterruptedMerges(handler: RemoteHandler, fs: FileSystemAccess, folder: string, task?: Task): Promise<MergeOutcome | undefined> {
  const states = (await handler.list(folder)).filter(name => MERGE_STATE_FILE.test(name))
  if (states.length === 0) return undefined
  let merged = 0
  for (const name of states) merged += await mergedCount(handler, `${folder}/${name}`)
  const space = spaceGuard(handler, 'finishing an interrupted merge')
  const resume = () => space.explain(() => resumeVhdMergeIfAny(folder, { fs, checkSpace: space.check }))
  const finished = task === undefined ? await resume() : await task.child('merge', { resumed: true, folder }).run(resume)
  // An orphan state (its ancestor already gone) is dropped without merging anything.
  return { merged: finished.length === 0 ? 0 : merged, mergedBytes: 0 }
}

// How many children a saved merge folds in: read before it is resumed, since the state file goes away.
async function mergedCount(handler: RemoteHandler, statePath: string): Promise<number> {
  try {
    const { chain } = JSON.parse((await handler.readFile(statePath)).toString()) as { chain?: unknown }
    return Array.isArray(chain) ? Math.max(0, chain.length - 1) : 0
  } catch {
    return 0 // unreadable: resumeVhdMergeIfAny reports it
  }
}

/**
 * A merge's free-space check: refused before it writes anything when the remote says it lacks the room, and
 * a REMOTE_FULL met anyway (the space was taken meanwhile) names the space it needed.
 */
function spaceGuard(handler: RemoteHandler, what: string) {
  let needed: number | undefined
  return {
    async check(bytes: number): Promise<void> {
      needed = bytes
      const { available } = await handler.getInfo()
      if (available !== undefined && available < bytes) throw remoteFull(handler.label, undefined, { what, bytes, available })
    },
    async explain<T>(merge: () => Promise<T>): Promise<T> {
      try {
        return await merge()
      } catch (error) {
        if (!isLifeboatError(error, 'REMOTE_FULL') || needed === undefined || error.data?.needed !== undefined) throw error
        throw remoteFull(handler.label, error, { what, bytes: needed })
      }
    },
  }
}

/** Merges `chain` (remote paths, oldest first) into one file named like its last, in a 'merge' task. */
export async function mergeChain(handler: RemoteHandler, fs: FileSystemAccess, chain: string[], options: { task?: Task; signal?: AbortSignal } = {}): Promise<MergeOutcome> {
  const merge = async (task?: Task): Promise<MergeOutcome> => {
    forgetFiles(handler, chain)
    let lastProgress = 0
    const onProgress = (done: number, total: number) => {
      const now = Date.now()
      if (task === undefined || (now - lastProgress < PROGRESS_INTERVAL_MS && done < total)) return
      lastProgress = now
      task.set('progress', total === 0 ? 100 : Math.round((done / total) * 100))
    }
    const space = spaceGuard(handler, `merging ${chain.length - 1} old backup${chain.length > 2 ? 's' : ''} of ${chain.at(-1)}`)
    const { mergedBytes } = await space.explain(() => mergeVhdChain(chain, { fs, onProgress, checkSpace: space.check, ...(options.signal && { signal: options.signal }) }))
    task?.set('size', mergedBytes)
    return { merged: chain.length - 1, mergedBytes }
  }
  if (options.task === undefined) return merge()
  return options.task.child('merge', { chain }).run(merge, options.signal === undefined ? {} : { signal: options.signal })
}
