// Retention of one VM's backups (or replicas) of one schedule, over one target or, in distributed mode,
// over several as one pool: every target lists what it holds, the old ones are chosen once over them all
// (copies of one restore point count once), and each is deleted where it lies, in that target's way.
import { oldCopies, retentionRules, type LongTermRetention } from '../../repository/index.ts'
import type { TargetStep } from './target.ts'

/** A target's part in a retention. */
export interface RetentionHolder<Entry extends { timestamp: number } = { timestamp: number }> {
  /** This schedule's restore points of the VM on this target (backups, replicas), in any order. */
  retentionEntries(step: TargetStep): Promise<Entry[]>
  /** The snapshot an entry was made from: entries of one snapshot on several targets are copies of one restore point. */
  restorePoint(entry: Entry): string
  /**
   * Deletes those entries (perhaps none: a remote still merges what earlier deletions released), reporting
   * under the step's task.
   */
  deleteEntries(old: Entry[], step: TargetStep): Promise<void>
}

export interface RetentionRules {
  /** How many of the newest restore points to keep, across every holder. */
  keep: number
  longTerm?: LongTermRetention
  /** The schedule's IANA timezone (long-term retention cuts days in it). */
  timezone?: string
}

/**
 * Applies one retention over the holders; returns how many entries each deleted. Every holder deletes its
 * part even when another fails; the first failure is thrown after all have run.
 */
export async function retainAcross<Entry extends { timestamp: number }>(holders: ReadonlyArray<RetentionHolder<Entry>>, rules: RetentionRules, step: TargetStep): Promise<number[]> {
  const held = await Promise.all(holders.map(async (holder, index) => {
    // Copies are on different targets: two entries of one target are two points even when made from one snapshot.
    const seen = new Map<string, number>()
    return (await holder.retentionEntries(step)).map(entry => {
      const snapshot = holder.restorePoint(entry)
      const count = seen.get(snapshot) ?? 0
      seen.set(snapshot, count + 1)
      return { timestamp: entry.timestamp, point: count === 0 ? snapshot : `${snapshot} #${count}`, entry, index }
    })
  }))
  const old = oldCopies(Math.max(0, rules.keep), held.flat(), retentionRules(rules))
  const parts = holders.map((_, index) => old.filter(item => item.index === index).map(item => item.entry))
  const outcomes = await Promise.allSettled(holders.map((holder, index) => holder.deleteEntries(parts[index]!, step)))
  const failed = outcomes.find(outcome => outcome.status === 'rejected')
  if (failed !== undefined) throw failed.reason
  return parts.map(part => part.length)
}
