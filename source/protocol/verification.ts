// A restore point's verification state in a few words, the same in the CLI's backup list and the TUI's views.
import type { VerificationState } from './methods.ts'

/** "never", "✔ <date>" or "✖ <date>: <first finding's code>"; " (data)" when every block was read back. */
export function verificationLabel(state: VerificationState | undefined, formatDate: (ms: number) => string): string {
  if (state === undefined) return 'never'
  const when = `${formatDate(state.at)}${state.readData ? ' (data)' : ''}`
  if (state.status === 'verified') return `✔ ${when}`
  const first = state.findings[0]
  return `✖ ${when}${first === undefined ? '' : `: ${first.code}`}`
}
