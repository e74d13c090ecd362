// Which disks of a VM a delta backup exports as deltas (XO's intersection): the source offers a base per disk,
// each delta target in turn removes the ones it cannot chain onto, and forceFull or fullInterval drop them all
// (forceFull before the targets are asked: a new chain; fullInterval after, so that they know their chains).
// The run and the plan of a run (`job plan`) both decide through this one function, so they cannot disagree.
import type { BaseOffer } from '../sources/source.ts'
import type { DeltaBackupTarget, TargetStep } from '../targets/target.ts'

export interface BaseDecision {
  /** Live VDI uuid → the base snapshot VDI uuid its delta is computed from. */
  bases: Map<string, string>
  /** Live VDI uuid → why that disk goes full. */
  fullReasons: Map<string, string>
  /** Live VDI uuid → the target that refused the base, when one did (the source's own reasons have none). */
  refusedBy: Map<string, string>
}

/**
 * Asks each target, one after the other, which bases it can chain onto. A target whose check throws is handed
 * to `onTargetError` and takes no further part (the run drops it; the plan reports it).
 */
export async function decideBases(offer: BaseOffer, targets: readonly DeltaBackupTarget[], step: TargetStep, onTargetError: (target: DeltaBackupTarget, error: unknown) => void): Promise<BaseDecision> {
  const bases = new Map(offer.bases)
  const fullReasons = new Map(offer.fullReasons)
  const refusedBy = new Map<string, string>()
  for (const target of targets) {
    if (bases.size === 0 || offer.forcedBy === 'forceFull') break
    try {
      for (const [live, reason] of await target.checkBases(bases, step)) {
        bases.delete(live)
        fullReasons.set(live, reason)
        refusedBy.set(live, target.name)
      }
    } catch (error) {
      onTargetError(target, error)
    }
  }
  if (offer.forcedFull !== undefined) {
    for (const live of bases.keys()) fullReasons.set(live, offer.forcedFull)
    bases.clear()
  }
  return { bases, fullReasons, refusedBy }
}
