// The harness every fuzz test shares: one fast-check seed per run (fixed under `npm test`, random under `npm run fuzz`,
// given back with --seed to replay), the number of cases, and the rule for every input: a result or a coded error.
import fc from 'fast-check'
import { isLifeboatError } from '../../source/util/errors.ts'

/** `npm test` replays the same cases every time; `npm run fuzz` (test/fuzz/run.mjs) passes a fresh seed and 10 000 cases. */
const FIXED_SEED = 20261201
export const FUZZ_SEED = process.env.LIFEBOAT_FUZZ_SEED === undefined ? FIXED_SEED : Number(process.env.LIFEBOAT_FUZZ_SEED)
const FUZZ_RUNS = process.env.LIFEBOAT_FUZZ_RUNS === undefined ? undefined : Number(process.env.LIFEBOAT_FUZZ_RUNS)

/** A hang guard, not a speed check: an input that has not ended by then never will. */
export const CASE_TIMEOUT_MS = 10_000
/** How far the process may grow over one property: parsers stream, so mutated sizes must not become allocations. */
export const MEMORY_BOUND_BYTES = 512 * 1024 * 1024

/** Cases for a property: `quick` under `npm test`, the fuzz run's count (10 000 by default) under `npm run fuzz`. */
export function caseCount(quick: number): number {
  return FUZZ_RUNS ?? quick
}

/** How one input ended: 'ok' or the code of the LifeboatError it was refused with. */
export type Outcome = string

/** Runs one input; anything but a result or a coded LifeboatError (an uncoded error, UNKNOWN, a hang) throws. */
export async function endsCleanly(attempt: () => Promise<unknown>, timeoutMs = CASE_TIMEOUT_MS): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the input had not ended after ${timeoutMs} ms (a hang)`)), timeoutMs)
  })
  try {
    await Promise.race([attempt(), hang])
    return 'ok'
  } catch (error) {
    if (isLifeboatError(error) && error.code !== 'UNKNOWN') return error.code
    throw new Error(`the input ended in an uncoded error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, { cause: error })
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Checks `attempt` on `quick` (or the fuzz run's count of) inputs drawn from `inputs`; every one must end cleanly and
 * the process stay within the memory bound. Returns how many inputs ended each way, for the tests to check the
 * mutations reach the checks they aim at. A failure names the seed and fast-check's path to replay and shrink it.
 */
export async function fuzz<T>(name: string, inputs: fc.Arbitrary<T>, attempt: (input: T) => Promise<unknown>, quick: number): Promise<Map<Outcome, number>> {
  const outcomes = new Map<Outcome, number>()
  const numRuns = caseCount(quick)
  const baseline = process.memoryUsage().rss
  console.log(`fuzz ${name}: seed ${FUZZ_SEED}, ${numRuns} cases`)
  try {
    await fc.assert(
      fc.asyncProperty(inputs, async input => {
        const outcome = await endsCleanly(() => attempt(input))
        const growth = process.memoryUsage().rss - baseline
        if (growth > MEMORY_BOUND_BYTES) throw new Error(`the process grew by ${Math.round(growth / 2 ** 20)} MiB (bound ${MEMORY_BOUND_BYTES / 2 ** 20} MiB)`)
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
      }),
      { seed: FUZZ_SEED, numRuns, includeErrorInReport: true },
    )
  } catch (error) {
    const message = `fuzz ${name} failed with seed ${FUZZ_SEED}; replay it with: npm run fuzz -- --seed ${FUZZ_SEED}`
    console.error(message)
    throw new Error(`${message}\n${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  console.log(`fuzz ${name}: ${JSON.stringify(Object.fromEntries(outcomes))}`)
  return outcomes
}

/**
 * Asserts every listed outcome happened at least once (a mutation that never reaches a check tests nothing), on the
 * fixed seed of `npm test`; a random seed only reports it, since a rare outcome may not come up in that draw.
 */
export function assertReached(outcomes: Map<Outcome, number>, expected: Outcome[]): void {
  const missing = expected.filter(outcome => (outcomes.get(outcome) ?? 0) === 0)
  if (missing.length === 0) return
  const message = `no input ended in ${missing.join(', ')}: ${JSON.stringify(Object.fromEntries(outcomes))}`
  if (FUZZ_SEED !== FIXED_SEED) console.log(`fuzz: ${message}`)
  else throw new Error(message)
}
