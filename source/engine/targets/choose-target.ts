// Distributed mode's rule, as a pure function (the run calls it, and so can a plan of a run, without side
// effects): which one of several remotes, or SRs, a VM's backup goes to. A chain stays where it is; a new
// one goes to the target with the most free space, a tie broken at random; when no target can tell its
// free space (S3, Azure) the choice is uniformly random; targets of both kinds cannot be pooled.
import { LifeboatError } from '../../util/errors.ts'
import { formatBytes } from '../../util/human.ts'

export interface Candidate {
  /** The remote's name or the SR's uuid. */
  name: string
  /** How the log names it (a remote's name, an SR's name label). */
  label?: string
  /** Free bytes; undefined when the target cannot tell (an object store). */
  free: number | undefined
}

export type ChoiceReason = 'chain' | 'most free space' | 'tie' | 'random'

export interface TargetChoice {
  /** The chosen candidate's name. */
  target: string
  reason: ChoiceReason
  /** Every candidate with its free space, as the choice saw them. */
  candidates: Candidate[]
  /** The sentence the log gives: which target and why, with the figures. */
  why: string
}

export interface ChoiceInput {
  candidates: readonly Candidate[]
  /**
   * The targets holding a chain the backup continues (delta): one keeps the backup whatever the free space;
   * when several do (the job was not distributed before), the rule chooses among them.
   */
  chainHolders?: readonly string[]
  /** A number in [0, 1), as Math.random gives: tests pass a seeded one. */
  random: () => number
}

/** Names each target's free space: "a 1.5 GiB free, b 3.0 GiB free". */
function figures(candidates: readonly Candidate[]): string {
  return candidates.map(c => `${c.label ?? c.name} ${c.free === undefined ? 'free space unknown' : `${formatBytes(c.free)} free`}`).join(', ')
}

/**
 * The target of one VM's backup. Refuses (DISTRIBUTED_MIXED_SPACE) candidates of which some tell their free
 * space and some cannot: the rule would have nothing to compare them by.
 */
export function chooseTarget(input: ChoiceInput): TargetChoice {
  const candidates = [...input.candidates]
  if (candidates.length === 0) throw new LifeboatError('NO_TARGET', 'None of the targets of the distributed job is available for this VM; check the remotes or SRs.')
  const problem = mixedSpaceProblem(candidates.map(c => ({ name: c.label ?? c.name, freeSpaceKnown: c.free !== undefined })))
  if (problem !== undefined) throw problem
  const holders = candidates.filter(c => input.chainHolders?.includes(c.name))
  if (holders.length === 1) return named(holders[0]!, 'chain', `it holds the VM's chain, which this backup continues (${figures(candidates)})`, candidates)
  if (holders.length > 1) {
    const among = byRule(holders, input.random)
    return named(among.target, 'chain', `${holders.length} targets hold a chain this backup continues; among them, ${among.why}`, candidates)
  }
  const rule = byRule(candidates, input.random)
  return named(rule.target, rule.reason, rule.why, candidates)
}

function named(target: Candidate, reason: ChoiceReason, why: string, candidates: Candidate[]): TargetChoice {
  return { target: target.name, reason, candidates, why: `${target.label ?? target.name}, ${why}` }
}

/** The rule for a new chain: the most free space, a tie at random; nobody telling its free space, at random. */
function byRule(candidates: readonly Candidate[], random: () => number): { target: Candidate; reason: Exclude<ChoiceReason, 'chain'>; why: string } {
  const pick = (among: readonly Candidate[]) => among[Math.min(among.length - 1, Math.floor(random() * among.length))]!
  if (candidates[0]!.free === undefined) return { target: pick(candidates), reason: 'random', why: `chosen at random: none of the ${candidates.length} targets can tell its free space` }
  const most = Math.max(...candidates.map(c => c.free!))
  const best = candidates.filter(c => c.free === most)
  if (best.length === 1) return { target: best[0]!, reason: 'most free space', why: `the most free space (${figures(candidates)})` }
  return { target: pick(best), reason: 'tie', why: `chosen at random among the ${best.length} with the most free space (${figures(candidates)})` }
}

/**
 * DISTRIBUTED_MIXED_SPACE when some targets tell their free space (local, NFS, SMB) and others cannot (S3,
 * Azure), else undefined: checked when the job is saved and again when a run starts.
 */
export function mixedSpaceProblem(targets: ReadonlyArray<{ name: string; freeSpaceKnown: boolean }>): LifeboatError | undefined {
  const known = targets.filter(t => t.freeSpaceKnown).map(t => t.name)
  const unknown = targets.filter(t => !t.freeSpaceKnown).map(t => t.name)
  if (known.length === 0 || unknown.length === 0) return undefined
  return new LifeboatError(
    'DISTRIBUTED_MIXED_SPACE',
    `A distributed job picks the remote with the most free space, but ${list(known)} ${known.length === 1 ? 'tells its' : 'tell their'} free space and ${list(unknown)} cannot (object stores): they cannot be pooled. Keep only remotes of one kind in the job (file shares or object stores), or turn distributeBackups off.`,
    { data: { known, unknown } },
  )
}

const list = (names: string[]) => names.map(name => `"${name}"`).join(', ')
