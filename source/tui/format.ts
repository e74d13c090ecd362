// How numbers read on an 80-column screen: sizes, speeds, durations, dates, and cells cut to width.
import stringWidth from 'string-width'
import { terminalSafeLine } from '../util/terminal-text.ts'
import { formatElapsed } from '../util/human.ts'

export { formatBytes, formatSpeed, formatElapsed } from '../util/human.ts'

/** Time left at the current speed, or '-' when it cannot be known. */
export function formatEta(done: number | undefined, total: number | undefined, bytesPerSecond: number | undefined): string {
  if (done === undefined || total === undefined || bytesPerSecond === undefined || bytesPerSecond <= 0) return '-'
  return formatElapsed(((total - done) / bytesPerSecond) * 1000)
}

const pad2 = (n: number) => String(n).padStart(2, '0')

const zoneFormats = new Map<string, Intl.DateTimeFormat>()

/** The wall-clock fields of an instant in a timezone (default: the local one). */
function wallClock(ms: number, timeZone: string | undefined): Record<string, string> {
  const id = timeZone ?? ''
  let format = zoneFormats.get(id)
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', { ...(timeZone !== undefined && { timeZone }), hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short' })
    zoneFormats.set(id, format)
  }
  return Object.fromEntries(format.formatToParts(new Date(ms)).map(part => [part.type, part.value]))
}

export const localTimezone = (): string => Intl.DateTimeFormat().resolvedOptions().timeZone

/** Date and time, compact: 2026-11-22 03:00 (local, or in `timeZone`; `seconds` adds :SS). */
export function formatDate(ms: number | undefined, options: { timeZone?: string; seconds?: boolean } = {}): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-'
  const d = wallClock(ms, options.timeZone)
  return `${d.year}-${d.month}-${d.day} ${pad2(Number(d.hour) % 24)}:${d.minute}${options.seconds === true ? `:${d.second}` : ''}`
}

/**
 * A time in a schedule's timezone, which is named when it is not the local one ("2026-11-22 03:00
 * Europe/Paris"); `short` gives the compact form for tables ("11-22 03:00 GMT+1").
 */
export function formatZoned(ms: number | undefined, timeZone: string, short = false): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-'
  const text = formatDate(ms, { timeZone })
  const date = short ? text.slice(5) : text
  if (timeZone === localTimezone()) return date
  return `${date} ${short ? wallClock(ms, timeZone).timeZoneName : timeZone}`
}

const PLAIN = /^[\x20-\x7e]*$/

/** Terminal columns of a text; printable ASCII (most cells) skips the Unicode measurement. */
export function textWidth(text: string): number {
  return PLAIN.test(text) ? text.length : stringWidth(text)
}

/** Cuts or pads text to exactly `width` terminal columns (wide glyphs count double). */
export function fit(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  if (width <= 0) return ''
  let out = PLAIN.test(text) ? text : terminalSafeLine(text)
  let used = textWidth(out)
  if (used > width) {
    if (PLAIN.test(out)) out = out.slice(0, width - 1)
    else {
      let kept = ''
      let keptWidth = 0
      for (const char of out) {
        const charWidth = textWidth(char)
        if (keptWidth + charWidth > width - 1) break
        kept += char
        keptWidth += charWidth
      }
      out = kept
    }
    out += '…'
    used = textWidth(out)
  }
  const padding = ' '.repeat(Math.max(0, width - used))
  return align === 'left' ? out + padding : padding + out
}

/** Text cut into lines of at most `width` columns, at spaces where it can (a long word is cut where it must). */
export function wrapText(text: string, width: number): string[] {
  const lines: string[] = []
  for (const paragraph of text.split('\n')) {
    let line = ''
    for (const word of paragraph.split(' ')) {
      let rest = word
      while (textWidth(rest) > width) {
        if (line !== '') lines.push(line)
        const head = fit(rest, width + 1).slice(0, -1)
        lines.push(head)
        rest = rest.slice(head.length)
        line = ''
      }
      const next = line === '' ? rest : `${line} ${rest}`
      if (textWidth(next) > width) {
        lines.push(line)
        line = rest
      } else line = next
    }
    lines.push(line)
  }
  return lines
}

/** A bar of `width` cells: '█' done, '░' to do; no colour needed to read it. */
export function progressBar(done: number | undefined, total: number | undefined, width: number): string {
  if (width <= 0) return ''
  const ratio = done !== undefined && total !== undefined && total > 0 ? Math.min(1, Math.max(0, done / total)) : 0
  const filled = Math.round(ratio * width)
  return '█'.repeat(filled) + '░'.repeat(width - filled)
}

export function percent(done: number | undefined, total: number | undefined): string {
  if (done === undefined || total === undefined || total <= 0) return '  -%'
  return `${Math.floor(Math.min(1, done / total) * 100)}%`.padStart(4)
}
