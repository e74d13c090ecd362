// Durations as people write them in job files ('4h', '30m', '1h30m', '90s'), to milliseconds.
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y

/** Milliseconds, or undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim()
  if (trimmed === '' || trimmed.length > 64) return undefined
  PART.lastIndex = 0
  let total = 0
  while (PART.lastIndex < trimmed.length) {
    const match = PART.exec(trimmed)
    if (match === null) return undefined
    total += Number(match[1]) * UNITS[match[2]!]!
  }
  return Number.isFinite(total) ? Math.round(total) : undefined
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', UNITS.d!], ['h', UNITS.h!], ['m', UNITS.m!], ['s', UNITS.s!]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms}ms`
}
