// Colours and glyphs for statuses: every status has a glyph, so NO_COLOR terminals and colour-blind
// readers lose nothing (no-color.org: NO_COLOR set to a non-empty value turns colour off).
import type { RunStatus } from './contract.ts'

export const colorEnabled = (process.env.NO_COLOR ?? '') === ''

export type Tone = 'green' | 'red' | 'yellow' | 'cyan' | 'gray' | 'magenta' | 'blue'

/** A colour for Ink's `color` prop, or undefined when colour is off. */
export function tone(name: Tone | undefined): Tone | undefined {
  return colorEnabled ? name : undefined
}

export const STATUS_STYLE: Record<RunStatus | 'disabled', { glyph: string; tone: Tone }> = {
  success: { glyph: '✔', tone: 'green' },
  failure: { glyph: '✖', tone: 'red' },
  skipped: { glyph: '⚠', tone: 'yellow' },
  interrupted: { glyph: '⚠', tone: 'magenta' },
  cancelled: { glyph: '⏸', tone: 'gray' },
  pending: { glyph: '⟳', tone: 'cyan' },
  disabled: { glyph: '⏸', tone: 'gray' },
}
