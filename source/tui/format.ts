// How numbers read on an 80-column screen: sizes, speeds, durations, dates, and cells cut to width.
import stringWidth from 'string-width'

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined || !Number.isFinite(bytes)) return '-'
  let value = bytes
  let unit = 0
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`
}

export function formatSpeed(bytesPerSecond: number | undefined): string {
  if (bytesPerSecond === undefined || !Number.isFinite(bytesPerSecond)) return '-'
  return `${(bytesPerSecond / 1024 / 1024).toFixed(1)} MiB/s`
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return '-'
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  const h = Math.floor(m / 60)
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`
  return `${Math.floor(h / 24)}d${h % 24}h`
}

/** Time left at the current speed, or '-' when it cannot be known. */
export function formatEta(done: number | undefined, total: number | undefined, bytesPerSecond: number | undefined): string {
  if (done === undefined || total === undefined || bytesPerSecond === undefined || bytesPerSecond <= 0) return '-'
  return formatDuration(((total - done) / bytesPerSecond) * 1000)
}

const pad2 = (n: number) => String(n).padStart(2, '0')

/** Local date and time, compact: 2026-11-22 03:00. */
export function formatDate(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-'
  const d = new Date(ms)
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`
}

const PLAIN = /^[\x20-\x7e]*$/

/** Terminal columns of a text; printable ASCII (most cells) skips the Unicode measurement. */
export function textWidth(text: string): number {
  return PLAIN.test(text) ? text.length : stringWidth(text)
}

/** Cuts or pads text to exactly `width` terminal columns (wide glyphs count double). */
export function fit(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  if (width <= 0) return ''
  let out = text
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
