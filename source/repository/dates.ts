// The two date forms XO uses: file names `YYYYMMDDTHHmmssZ` (UTC, one-second precision) and XAPI
// other_config `YYYYMMDDTHH:MM:SSZ`; readers accept the legacy variants.
const pad = (n: number, width = 2) => String(n).padStart(width, '0')

function parts(timestamp: number) {
  const d = new Date(timestamp)
  if (Number.isNaN(d.getTime())) throw new RangeError(`${timestamp} is not a valid timestamp`)
  return { date: `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}`, h: pad(d.getUTCHours()), m: pad(d.getUTCMinutes()), s: pad(d.getUTCSeconds()) }
}

export function formatFilenameDate(timestamp: number): string {
  const { date, h, m, s } = parts(timestamp)
  return `${date}T${h}${m}${s}Z`
}

export function formatOtherConfigDate(timestamp: number): string {
  const { date, h, m, s } = parts(timestamp)
  return `${date}T${h}:${m}:${s}Z`
}

const FORMS = /^(\d{4})(\d{2})(\d{2})T(\d{2}):?(\d{2}):?(\d{2})Z?$/

/** Either form (file name or other_config, with or without Z) to milliseconds; undefined when it is neither. */
export function parseBackupDate(text: string): number | undefined {
  const match = FORMS.exec(text)
  if (match === null) return undefined
  const [, y, mo, d, h, mi, s] = match.map(Number) as number[]
  const time = Date.UTC(y!, mo! - 1, d!, h!, mi!, s!)
  // Refuse what Date.UTC would silently roll over (month 13, second 61…).
  return formatFilenameDate(time) === `${match[1]}${match[2]}${match[3]}T${match[4]}${match[5]}${match[6]}Z` ? time : undefined
}

/**
 * The timestamp a new backup will carry: the requested time at one-second precision, moved to the next
 * free second when a backup of the same VM already uses that name (two runs in the same second).
 */
export function uniqueBackupTimestamp(requested: number, takenDates: Iterable<string>): number {
  const taken = new Set(takenDates)
  let timestamp = Math.floor(requested / 1000) * 1000
  while (taken.has(formatFilenameDate(timestamp))) timestamp += 1000
  return timestamp
}
