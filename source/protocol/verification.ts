// A restore point's verification state in a few words, the same in the CLI's backup list and the TUI's views.
import type { VerificationState } from './methods.ts'

/** "never", "✔ <date>" or "✖ <date>: <first finding's code>"; " (data)" when every block was read back. */
export function verificationLabel(state: VerificationState | undefined, formatDate: (ms: number) => string): string {
  if (state === undefined) return 'never'
  const when = `${formatDate(state.at)}${state.readData ? ' (data)' : ''}`
  if (state.status === 'verified') return `✔ ${when}${structureOnly(state)}`
  const first = state.findings[0]
  return `✖ ${when}${first === undefined ? '' : `: ${first.code}`}`
}

/** " — N disk(s) structure only" when some disks had no block hashes to check their data against. */
export function structureOnly(state: VerificationState): string {
  const disks = new Set((state.notes ?? []).map(note => note.path)).size
  return disks === 0 || !state.readData ? '' : `, ${disks} disk${disks === 1 ? '' : 's'} structure only`
}
